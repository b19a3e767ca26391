"""Builders for TeamCity test data: the native webhook's JSON and the build it names."""

from __future__ import annotations

import copy
import json
from typing import Any

from bot.events import Event, RunRef
from providers.teamcity import TeamCityProvider
from tests.fakes.ci_world import SourceAndForge
from tests.fakes.teamcity import FakeTeamCity, occurrence
from tests.providers.senders import basic, fixture
from tests.teamcity.conftest import BUILD_ID, BUILD_TYPE, INSTANCE, SECRET, SHA


def notification(**build: Any) -> dict[str, Any]:
    """The fixture's BUILD_FINISHED webhook (build 204118 of `Storefront_Build` on
    `pull/118`), with `payload` fields replaced."""
    body: dict[str, Any] = copy.deepcopy(json.loads(fixture("teamcity", "build_finished.json")))
    body["payload"].update(build)
    return body


def ref_of(body: dict[str, Any]) -> RunRef:
    event = TeamCityProvider().parse({"Authorization": basic(SECRET.encode())},
                                     json.dumps(body).encode(), [SECRET.encode()])
    assert isinstance(event, Event) and event.run is not None
    return event.run


def failing_tests() -> list[dict[str, Any]]:
    """Two failures among five, one ignored: what build 204118 recorded."""
    return [
        occurrence("unit: com.acme.cart.CartTest.addsItem", number=1),
        occurrence("unit: com.acme.cart.CartTest.removesItem", number=2),
        occurrence("unit: com.acme.cart.CartTest.appliesCoupon", "FAILURE", number=3,
                   details="expected:<90> but was:<100>\n\tat com.acme.cart.CartTest"),
        occurrence("unit: com.acme.cart.CheckoutTest.chargesCard", "FAILURE", number=4,
                   details="java.lang.IllegalStateException: card declined"),
        occurrence("unit: com.acme.cart.CheckoutTest.legacyPayPal", "UNKNOWN", number=5,
                   ignored=True, details="@Disabled until the sandbox is back"),
    ]


def seed_build(teamcity: FakeTeamCity, build_id: int = BUILD_ID,
               build_type: str = BUILD_TYPE, **changes: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"revisions": [(INSTANCE, SHA)], "tests": failing_tests()}
    options.update(changes)
    return teamcity.add_build(build_id, build_type, **options)


class TeamCityAndForge(SourceAndForge):
    """`ctx.clients` of a worker with TeamCity as CI source and one forge's real client."""

    def __init__(self, teamcity: Any, forge_name: str, forge: Any) -> None:
        super().__init__("teamcity", teamcity, forge_name, forge)
