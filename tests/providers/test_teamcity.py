"""TeamCity native webhooks: finished and interrupted builds."""

from __future__ import annotations

import hashlib
import json

import pytest

from bot.events import BUILD_COMPLETED, Event, Ignored
from providers.base import BadPayload
from providers.teamcity import TeamCityProvider
from providers.teamcity.webhook import change_from_branch
from tests.providers.senders import basic, fixture

CREDENTIAL = b"herald:teamcity-webhook-password"
provider = TeamCityProvider()


def deliver(body: bytes) -> Event | Ignored:
    return provider.parse({"Authorization": basic(CREDENTIAL)}, body, [CREDENTIAL])


def test_a_finished_build_is_a_finished_build() -> None:
    event = deliver(fixture("teamcity", "build_finished.json"))

    assert isinstance(event, Event) and event.run is not None
    web_url = "https://teamcity.acme.example/buildConfiguration/Storefront_Build/204118"
    assert (event.name, event.native_name, event.repo) == (
        BUILD_COMPLETED,
        "BUILD_FINISHED",
        "Storefront_Build",
    )
    assert (
        event.delivery_id
        == hashlib.sha256(web_url.encode() + b"\x00BUILD_FINISHED\x00").hexdigest()
    )
    run = event.run
    assert (run.provider, run.repo, run.run_id, run.sha, run.branch, run.change, run.status) == (
        "teamcity",
        "Storefront_Build",
        "204118",
        "d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5",
        "pull/118",
        118,
        "FAILURE",
    )
    assert run.url == web_url
    assert run.extra == {
        "event_type": "BUILD_FINISHED",
        "interrupted": False,
        "number": "512",
        "state": "finished",
        "status_text": "Tests failed: 2 (1 new), passed: 731, ignored: 4",
        "build_type_name": "Build",
        "project_id": "Storefront",
        "project_name": "Storefront",
        "default_branch": False,
        "vcs_root_id": "Storefront_GitHub",
        "vcs_root_instance_id": "1201",
    }


def test_an_interrupted_build_is_final_too_because_it_never_finishes() -> None:
    event = deliver(fixture("teamcity", "build_interrupted.json"))
    assert isinstance(event, Event) and event.run is not None
    assert (event.run.status, event.run.branch, event.run.change) == ("UNKNOWN", "main", None)
    assert event.run.extra["interrupted"] is True


def test_a_started_build_is_ignored() -> None:
    result = deliver(fixture("teamcity", "build_started.json"))
    assert isinstance(result, Ignored)
    assert result.reason == "teamcity event 'BUILD_STARTED' is not a finished build"


def test_a_body_that_is_not_the_webhook_envelope_is_bad() -> None:
    with pytest.raises(BadPayload, match=r"expected \{eventType, payload\}"):
        deliver(b'{"build": {"buildId": "1"}}')


@pytest.mark.parametrize(
    ("branch", "change"),
    [
        ("pull/118", 118),
        ("refs/pull/118/head", 118),
        ("merge-requests/7", 7),
        ("pull-requests/31", 31),
        ("main", None),
        ("feature/pull-5", None),
        (None, None),
    ],
)
def test_pull_request_branches_name_their_change(branch: str | None, change: int | None) -> None:
    assert change_from_branch(branch) == change


def tcwebhooks(notify: str, **build: object) -> bytes:
    """tcWebHooks' JSON payload of build 204118 (its `legacy JSON` / `JSON` templates)."""
    fields: dict[str, object] = {
        "notifyType": notify, "buildId": "204118", "buildTypeId": "Storefront_Build",
        "buildExternalTypeId": "Storefront_Build", "buildInternalTypeId": "bt12",
        "buildName": "Build", "projectName": "Storefront", "buildNumber": "512",
        "buildResult": "failure", "branchName": "pull/118", "branchIsDefault": False,
        "buildStatusUrl": "https://teamcity.acme.example/viewLog.html?buildId=204118",
    }
    fields.update(build)
    return json.dumps({"build": fields}).encode()


def test_a_tcwebhooks_finished_build_is_a_finished_build() -> None:
    event = deliver(tcwebhooks("buildFinished"))
    assert isinstance(event, Event) and event.run is not None
    run = event.run
    assert (run.repo, run.run_id, run.sha, run.branch, run.change, run.status) == (
        "Storefront_Build", "204118", None, "pull/118", 118, "FAILURE")
    assert (run.extra["build_type_name"], run.extra["project_name"]) == ("Build", "Storefront")


def test_every_final_tcwebhooks_state_of_one_build_is_one_delivery() -> None:
    deliveries = {
        event.delivery_id
        for notify in ("buildFinished", "buildFailed", "buildBroken", "buildInterrupted")
        if isinstance(event := deliver(tcwebhooks(notify)), Event)
    }
    assert len(deliveries) == 1


def test_a_tcwebhooks_build_that_has_not_finished_is_ignored() -> None:
    result = deliver(tcwebhooks("beforeBuildFinish"))
    assert isinstance(result, Ignored)
    assert result.reason == "tcWebHooks state 'beforeBuildFinish' is not a finished build"


def test_a_tcwebhooks_payload_without_a_build_id_is_bad() -> None:
    with pytest.raises(BadPayload, match="lacks buildId or buildTypeId"):
        deliver(tcwebhooks("buildFinished", buildId=None))
