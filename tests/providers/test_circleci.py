"""CircleCI deliveries: the documented signature vectors and workflow events."""

from __future__ import annotations

import pytest

from bot.events import BUILD_COMPLETED, PING, Event, Ignored
from providers.base import InvalidSignature
from providers.circleci import CircleCIProvider
from providers.signatures import hex_hmac_matches
from tests.providers.senders import fixture, hex_hmac

SECRET = b"circleci-signing-secret"
provider = CircleCIProvider()


@pytest.mark.parametrize(
    ("body", "secret", "v1"),
    [
        (
            b"hello world",
            b"secret",
            "734cc62f32841568f45715aeb9f4d7891324e6d948e4c6c60c0621cdac48623a",
        ),
        (
            b"lalala",
            b"another-secret",
            "daa220016c8f29a8b214fbfc3671aeec2145cfb1e6790184ffb38b6d0425fa00",
        ),
        (
            b"an-important-request-payload",
            b"hunter123",
            "9be2242094a9a8c00c64306f382a7f9d691de910b4a266f67bd314ef18ac49fa",
        ),
        (b"foo", b"secret", "773ba44693c7553d6ee20f61ea5d2757a9a4f4a44d2841ae4e95b52e4cd62db4"),
    ],
)
def test_the_documented_signature_vectors_verify(body: bytes, secret: bytes, v1: str) -> None:
    assert hex_hmac_matches(body, [v1], [secret])
    assert not hex_hmac_matches(body + b" ", [v1], [secret])


def deliver(name: str, event_type: str, signature: str | None = None) -> Event | Ignored:
    body = fixture("circleci", name)
    headers = {
        "circleci-event-type": event_type,
        "circleci-signature": signature or "v1=" + hex_hmac(SECRET, body),
    }
    return provider.parse(headers, body, [SECRET])


def test_a_completed_workflow_is_a_finished_build() -> None:
    event = deliver("workflow_completed.json", "workflow-completed")

    assert isinstance(event, Event) and event.run is not None
    assert (event.name, event.native_name, event.delivery_id, event.repo) == (
        BUILD_COMPLETED,
        "workflow-completed",
        "3888f21b-eaa7-38e3-8f3d-75a63bba8895",
        "gh/acme-fin/ledger",
    )
    run = event.run
    assert (run.provider, run.repo, run.run_id, run.sha, run.branch, run.change, run.status) == (
        "circleci",
        "gh/acme-fin/ledger",
        "fda08377-fe7e-46b1-8992-3a7aaecac9c3",
        "f454a02b5d10fcccfd7d9dd7608a76d6493a98b4",
        "fix/rounding",
        None,
        "failed",
    )
    assert run.url == (
        "https://app.circleci.com/pipelines/github/acme-fin/ledger/1285/workflows/"
        "fda08377-fe7e-46b1-8992-3a7aaecac9c3"
    )
    assert run.extra == {
        "workflow_name": "build-and-test",
        "pipeline_id": "1285fe1f-d3a6-44fc-8886-8979558254c4",
        "pipeline_number": 1285,
        "project_id": "84996744-a854-4f5e-aea3-04e2851dc1d2",
        "project_name": "ledger",
        "organization_id": "f22b6566-597d-46d5-ba74-99ef5bb3d85c",
        "organization_name": "acme-fin",
        "vcs_provider": "github",
        "origin_repository_url": "https://github.com/acme-fin/ledger",
        "target_repository_url": "https://github.com/acme-fin/ledger",
        "tag": None,
        "trigger_type": "webhook",
    }


def test_a_github_app_project_reads_the_commit_from_trigger_parameters() -> None:
    event = deliver("workflow_completed_github_app.json", "workflow-completed")

    assert isinstance(event, Event) and event.run is not None
    assert event.run.repo == (
        "circleci/f22b6566-597d-46d5-ba74-99ef5bb3d85c/84996744-a854-4f5e-aea3-04e2851dc1d2"
    )
    assert (event.run.sha, event.run.branch, event.run.status) == (
        "0aa1bb2cc3dd4ee5ff60718293a4b5c6d7e8f901",
        "main",
        "success",
    )


def test_job_events_are_ignored_because_herald_reports_per_workflow() -> None:
    result = deliver("job_completed.json", "job-completed")
    assert isinstance(result, Ignored)
    assert result.reason == "Herald reports per workflow, not per job"


def test_the_test_ping_is_a_ping() -> None:
    event = deliver("ping.json", "ping")
    assert isinstance(event, Event)
    assert (event.name, event.repo) == (PING, "gh/acme-fin/ledger")


def test_a_signature_list_matches_on_any_v1_entry_and_never_on_other_versions() -> None:
    body = fixture("circleci", "workflow_completed.json")
    good = hex_hmac(SECRET, body)

    assert isinstance(
        deliver("workflow_completed.json", "workflow-completed", f"v2=abc,v1={'0' * 64},v1={good}"),
        Event,
    )
    with pytest.raises(InvalidSignature, match="has no v1= signature"):
        deliver("workflow_completed.json", "workflow-completed", f"v0={good},v2={good}")
