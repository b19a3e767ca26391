"""Bitbucket Cloud deliveries: commit statuses as finished builds, PR comments, pings."""

from __future__ import annotations

import json

import pytest

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, PING, Event, Ignored
from providers.bitbucket import BitbucketProvider
from tests.providers.senders import fixture, hex_hmac

SECRET = b"bitbucket-webhook-secret"
provider = BitbucketProvider()


def deliver(event_key: str, body: bytes, **headers: str) -> Event | Ignored:
    signed = {
        "X-Event-Key": event_key,
        "X-Hub-Signature": "sha256=" + hex_hmac(SECRET, body),
        **headers,
    }
    return provider.parse(signed, body, [SECRET])


def test_a_final_pipelines_status_is_a_finished_build_keyed_by_its_build_number() -> None:
    event = deliver(
        "repo:commit_status_updated",
        fixture("bitbucket", "commit_status_updated_failed.json"),
        **{"X-Request-UUID": "6c1c2f6e-req"},
    )

    assert isinstance(event, Event) and event.run is not None
    assert (event.name, event.native_name, event.delivery_id, event.repo) == (
        BUILD_COMPLETED,
        "repo:commit_status_updated",
        "6c1c2f6e-req",
        "acme-eng/checkout-service",
    )
    run = event.run
    assert (run.provider, run.repo, run.run_id, run.sha, run.branch, run.change, run.status) == (
        "bitbucket",
        "acme-eng/checkout-service",
        "318",
        "5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d",
        "feature/retry-payments",
        None,
        "FAILED",
    )
    assert run.url == "https://bitbucket.org/acme-eng/checkout-service/pipelines/results/318"
    assert run.extra == {
        "status_key": "{b1a2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d}",
        "status_name": "Pipeline #318 for feature/retry-payments",
        "status_type": "build",
        "pipeline_build_number": 318,
        "repository_uuid": "{3f0a1b2c-4d5e-46f7-8a9b-0c1d2e3f4a5b}",
    }


def test_a_status_of_another_ci_is_keyed_by_its_status_key() -> None:
    event = deliver(
        "repo:commit_status_created", fixture("bitbucket", "commit_status_created_external_ci.json")
    )
    assert isinstance(event, Event) and event.run is not None
    assert event.run.run_id == "JENKINS-checkout-main"
    assert event.run.status == "SUCCESSFUL"
    assert event.run.extra["pipeline_build_number"] is None


@pytest.mark.parametrize(
    ("state", "final"),
    [("SUCCESSFUL", True), ("FAILED", True), ("STOPPED", True), ("INPROGRESS", False)],
)
def test_only_final_commit_status_states_are_reported(state: str, final: bool) -> None:
    payload = json.loads(fixture("bitbucket", "commit_status_updated_inprogress.json"))
    payload["commit_status"]["state"] = state
    result = deliver("repo:commit_status_updated", json.dumps(payload).encode())
    if final:
        assert isinstance(result, Event) and result.run is not None
        assert result.run.status == state
    else:
        assert isinstance(result, Ignored)
        assert result.reason == f"commit status state {state!r} is not final"


def test_a_pull_request_comment_is_a_comment() -> None:
    event = deliver(
        "pullrequest:comment_created", fixture("bitbucket", "pullrequest_comment_created.json")
    )

    assert isinstance(event, Event) and event.comment is not None
    assert (event.name, event.repo) == (COMMENT_CREATED, "acme-eng/checkout-service")
    comment = event.comment
    assert (comment.id, comment.body, comment.author, comment.change, comment.author_is_bot) == (
        "512870233",
        "/retest",
        "sokafor",
        91,
        False,
    )
    assert comment.url == (
        "https://bitbucket.org/acme-eng/checkout-service/pull-requests/91/_/diff#comment-512870233"
    )
    assert comment.extra == {
        "account_id": "712020:4b6e1c3a-9d2f-4e8b-a1c5-7f3e9d2b6a41",
        "user_uuid": "{6e5d4c3b-2a1f-4e0d-9c8b-7a6f5e4d3c2b}",
        "inline": False,
        "parent_id": None,
        "source_commit": "5c6d7e8f9a0b",
        "source_branch": "feature/retry-payments",
    }


def test_comments_by_app_users_are_marked_as_bots() -> None:
    payload = json.loads(fixture("bitbucket", "pullrequest_comment_created.json"))
    payload["comment"]["user"]["type"] = "app_user"
    event = deliver("pullrequest:comment_created", json.dumps(payload).encode())
    assert isinstance(event, Event) and event.comment is not None
    assert event.comment.author_is_bot is True


def test_the_data_center_test_connection_is_a_ping() -> None:
    event = deliver("diagnostics:ping", b'{"test": true}')
    assert isinstance(event, Event)
    assert event.name == PING


def test_without_a_request_uuid_the_delivery_id_is_a_hash_of_the_body() -> None:
    body = fixture("bitbucket", "commit_status_updated_failed.json")
    first = deliver("repo:commit_status_updated", body)
    again = deliver("repo:commit_status_updated", body)
    assert isinstance(first, Event) and isinstance(again, Event)
    assert first.delivery_id == again.delivery_id
    assert len(first.delivery_id) == 64
