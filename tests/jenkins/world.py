"""Builders for Jenkins test data: the Notification plugin's JSON and the run it names."""

from __future__ import annotations

import copy
import json
from typing import Any

from bot.events import Event, RunRef
from providers.jenkins import JenkinsProvider
from tests.fakes import SourceAndForge
from tests.fakes.jenkins import FakeJenkins, case, junit_report, suite
from tests.jenkins.conftest import JOB, REMOTE, SHA
from tests.providers.senders import fixture

SECRET = "jenkins-notify-token"


def notification(**build: Any) -> dict[str, Any]:
    """The fixture's FINALIZED notification (job `acme/inventory/PR-64`, build 17), with
    `build` fields replaced."""
    body: dict[str, Any] = json.loads(fixture("jenkins", "finalized.json"))
    body = copy.deepcopy(body)
    body["build"].update(build)
    return body


def ref_of(body: dict[str, Any]) -> RunRef:
    event = JenkinsProvider().parse({"X-Herald-Token": SECRET}, json.dumps(body).encode(),
                                    [SECRET.encode()])
    assert isinstance(event, Event) and event.run is not None
    return event.run


def failing_report() -> dict[str, Any]:
    """Two failures among five, one skipped: what `UNSTABLE` build 17 recorded."""
    return junit_report([suite("com.acme.StockLedgerTest", [
        case("opensLedger"),
        case("postsEntry"),
        case("rejectsNegativeStock", "REGRESSION", details="expected:<0> but was:<-3>"),
        case("balancesAfterReturn", "FAILED", details="expected:<12> but was:<11>"),
        case("legacyImport", "SKIPPED"),
    ])])


def seed_build(jenkins: FakeJenkins, number: int = 17, **changes: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"checkouts": [(REMOTE, SHA)], "report": failing_report()}
    options.update(changes)
    return jenkins.add_build(JOB, number, **options)


def JenkinsAndForge(jenkins: Any, forge_name: str, forge: Any) -> SourceAndForge:
    """`ctx.clients` with Jenkins as CI source and one forge's real client."""
    return SourceAndForge("jenkins", jenkins, forge_name, forge)
