"""Jenkins notifications: the Notification plugin's JSON, reported once per build."""

from __future__ import annotations

import hashlib
import json

import pytest

from bot.events import BUILD_COMPLETED, Event, Ignored
from providers.jenkins import JenkinsProvider
from providers.jenkins.webhook import job_path
from tests.providers.senders import fixture

TOKEN = "jenkins-notify-token"
provider = JenkinsProvider()


def deliver(body: bytes) -> Event | Ignored:
    return provider.parse({"X-Herald-Token": TOKEN}, body, [TOKEN.encode()])


def test_a_finalized_build_is_a_finished_build() -> None:
    event = deliver(fixture("jenkins", "finalized.json"))

    assert isinstance(event, Event) and event.run is not None
    full_url = "https://ci.acme.example/job/acme/job/inventory/job/PR-64/17/"
    assert (event.name, event.native_name, event.repo) == (
        BUILD_COMPLETED,
        "build:FINALIZED",
        "acme/inventory/PR-64",
    )
    assert (
        event.delivery_id
        == hashlib.sha256(full_url.encode() + b"\x00" + b"FINALIZED\x00").hexdigest()
    )
    run = event.run
    assert (run.provider, run.repo, run.run_id, run.sha, run.branch, run.change, run.status) == (
        "jenkins",
        "acme/inventory/PR-64",
        "17",
        "6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b",
        "PR-64",
        64,
        "UNSTABLE",
    )
    assert run.url == full_url
    assert run.extra == {
        "job_name": "PR-64",
        "job_url": "job/acme/job/inventory/job/PR-64/",
        "display_name": "#17",
        "queue_id": 88213,
        "scm_url": "https://github.com/acme/inventory.git",
        "change_url": None,  # the fixture's parameters carry no CHANGE_URL
        "phase": "FINALIZED",
    }


@pytest.mark.parametrize("name", ["completed.json", "started.json"])
def test_earlier_phases_are_ignored_so_each_build_is_reported_once(name: str) -> None:
    result = deliver(fixture("jenkins", name))
    assert isinstance(result, Ignored)
    assert "is not FINALIZED" in result.reason


def test_the_pull_request_comes_from_the_multibranch_job_name_without_parameters() -> None:
    payload = json.loads(fixture("jenkins", "finalized.json"))
    payload["build"]["parameters"] = {}
    payload["build"]["scm"]["branch"] = "origin/main"
    event = deliver(json.dumps(payload).encode())
    assert isinstance(event, Event) and event.run is not None
    assert (event.run.change, event.run.branch) == (64, "main")


@pytest.mark.parametrize("change_id", ["²", "1²", "⑦"], ids=["superscript", "mixed", "circled"])
def test_a_change_id_parameter_that_only_looks_numeric_falls_back_to_the_job_name(
    change_id: str,
) -> None:
    """Build parameters are free text: str.isdigit() accepts these, int() does not."""
    payload = json.loads(fixture("jenkins", "finalized.json"))
    payload["build"]["parameters"] = {"CHANGE_ID": change_id}
    event = deliver(json.dumps(payload).encode())
    assert isinstance(event, Event) and event.run is not None
    assert event.run.change == 64


def test_a_resend_of_the_same_build_and_phase_dedupes() -> None:
    first = deliver(fixture("jenkins", "finalized.json"))
    payload = json.loads(fixture("jenkins", "finalized.json"))
    payload["build"]["log"] = "a different log tail"
    again = deliver(json.dumps(payload).encode())
    assert isinstance(first, Event) and isinstance(again, Event)
    assert first.delivery_id == again.delivery_id


@pytest.mark.parametrize(
    ("url", "full_name"),
    [
        ("job/acme/job/inventory/job/PR-64/", "acme/inventory/PR-64"),
        ("https://ci.example/jenkins/job/tools/job/release%20train/12/", "tools/release train"),
        ("job/solo/", "solo"),
        ("", None),
    ],
)
def test_job_urls_become_full_job_names(url: str, full_name: str | None) -> None:
    assert job_path(url) == full_name
