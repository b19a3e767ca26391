"""GitLab deliveries: secret token, signing token with its replay window, and events."""

from __future__ import annotations

import hashlib
import json

import pytest

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, Event, Ignored
from providers.base import InvalidSignature
from providers.gitlab import GitLabProvider
from tests.providers.senders import NOW, fixture, gitlab_signature_headers, gitlab_signing_token

TOKEN = b"gitlab-secret-token"
provider = GitLabProvider(clock=lambda: NOW)


def deliver(event: str, name: str, **headers: str) -> Event | Ignored:
    return deliver_body(event, fixture("gitlab", name), **headers)


def deliver_json(event: str, payload: object) -> Event | Ignored:
    """A fixture edited by the test, as GitLab would send it."""
    return deliver_body(event, json.dumps(payload).encode())


def deliver_body(event: str, body: bytes, **headers: str) -> Event | Ignored:
    return provider.parse(
        {"X-Gitlab-Event": event, "X-Gitlab-Token": TOKEN.decode(), **headers}, body, [TOKEN]
    )


def test_a_finished_merge_request_pipeline_is_a_finished_build() -> None:
    event = deliver("Pipeline Hook", "pipeline_success.json", **{"Idempotency-Key": "idem-1"})

    assert isinstance(event, Event) and event.run is not None
    assert (event.name, event.native_name, event.delivery_id, event.repo) == (
        BUILD_COMPLETED,
        "Pipeline Hook",
        "idem-1",
        "platform/herald",
    )
    run = event.run
    assert (run.provider, run.repo, run.run_id, run.sha, run.branch, run.change) == (
        "gitlab",
        "platform/herald",
        "1093377",
        "e3b4f1a2c5d6e7f8091a2b3c4d5e6f708192a3b4",
        "flaky-report",
        57,
    )
    assert run.url == "https://gitlab.example.com/platform/herald/-/pipelines/1093377"
    assert run.status == "success"
    assert run.extra == {
        "project_id": 48213,
        "project_web_url": "https://gitlab.example.com/platform/herald",
        "pipeline_iid": 812,
        "source": "merge_request_event",
        "tag": False,
        "merge_request_url": "https://gitlab.example.com/platform/herald/-/merge_requests/57",
        "parent_pipeline": None,
        "base_branch": "main",
    }


def test_a_child_pipeline_names_its_parent() -> None:
    event = deliver("Pipeline Hook", "pipeline_failed_child.json")

    assert isinstance(event, Event) and event.run is not None
    assert event.run.status == "failed"
    assert event.run.extra["source"] == "parent_pipeline"
    assert event.run.extra["parent_pipeline"] == {
        "project_id": 48001,
        "project_path": "platform/monorepo",
        "pipeline_id": 1093300,
        "job_id": 5520990,
    }


@pytest.mark.parametrize("status", ["success", "failed", "canceled", "skipped"])
def test_every_final_pipeline_status_is_reported(status: str) -> None:
    payload = json.loads(fixture("gitlab", "pipeline_running.json"))
    payload["object_attributes"]["status"] = status
    result = deliver_json("Pipeline Hook", payload)
    assert isinstance(result, Event) and result.run is not None
    assert result.run.status == status


@pytest.mark.parametrize("status", ["running", "pending", "created", "manual", "preparing"])
def test_pipelines_that_have_not_finished_are_ignored(status: str) -> None:
    payload = json.loads(fixture("gitlab", "pipeline_running.json"))
    payload["object_attributes"]["status"] = status
    result = deliver_json("Pipeline Hook", payload)
    assert isinstance(result, Ignored)
    assert result.reason == f"pipeline status {status!r} is not final"


def test_a_merged_results_pipeline_takes_its_merge_request_from_the_ref() -> None:
    payload = json.loads(fixture("gitlab", "pipeline_success.json"))
    del payload["merge_request"]
    payload["object_attributes"]["ref"] = "refs/merge-requests/57/merge"
    result = deliver_json("Pipeline Hook", payload)
    assert isinstance(result, Event) and result.run is not None
    assert result.run.change == 57


def test_a_new_comment_on_a_merge_request_is_a_comment() -> None:
    event = deliver("Note Hook", "note_merge_request.json", **{"X-Gitlab-Event-UUID": "uuid-7"})

    assert isinstance(event, Event) and event.comment is not None
    assert (event.name, event.native_name, event.delivery_id, event.repo) == (
        COMMENT_CREATED,
        "Note Hook",
        "uuid-7",
        "platform/herald",
    )
    comment = event.comment
    assert (comment.id, comment.body, comment.author, comment.change, comment.author_is_bot) == (
        "2219876",
        "/retest",
        "mkovac",
        57,
        False,
    )
    assert (
        comment.url == "https://gitlab.example.com/platform/herald/-/merge_requests/57#note_2219876"
    )
    assert comment.extra == {
        "project_id": 48213,
        "note_url": "https://gitlab.example.com/platform/herald/-/merge_requests/57#note_2219876",
        "merge_request_state": "opened",
        "last_commit_sha": "e3b4f1a2c5d6e7f8091a2b3c4d5e6f708192a3b4",
        "source_branch": "flaky-report",
        "user_id": 4127,
        "discussion_id": "8d2f9c0a1b3e4d5f6a7b8c9d0e1f2a3b4c5d6e7f",
    }


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("note_merge_request_system.json", "system note"),
        ("note_issue.json", "note on a Issue, not an MR"),
    ],
)
def test_notes_that_are_not_a_person_on_a_merge_request_are_ignored(name: str, reason: str) -> None:
    result = deliver("Note Hook", name)
    assert isinstance(result, Ignored)
    assert reason in result.reason


def test_an_edited_note_is_ignored() -> None:
    payload = json.loads(fixture("gitlab", "note_merge_request.json"))
    payload["object_attributes"]["action"] = "update"
    result = deliver_json("Note Hook", payload)
    assert isinstance(result, Ignored)
    assert "only new comments" in result.reason


def test_the_delivery_id_is_the_idempotency_key_then_the_event_uuid_then_a_body_hash() -> None:
    body = fixture("gitlab", "pipeline_success.json")
    base = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": TOKEN.decode()}
    both = {**base, "Idempotency-Key": "idem", "X-Gitlab-Event-UUID": "uuid"}
    ids = [
        provider.parse(headers, body, [TOKEN])
        for headers in (both, {**base, "X-Gitlab-Event-UUID": "uuid"}, base)
    ]
    assert [event.delivery_id for event in ids if isinstance(event, Event)] == [
        "idem",
        "uuid",
        hashlib.sha256(body + b"\x00").hexdigest(),
    ]


# ---- the signing token (Standard Webhooks) ------------------------------------------


def signed(token: bytes, body: bytes, **overrides: str) -> dict[str, str]:
    return {"X-Gitlab-Event": "Pipeline Hook", **gitlab_signature_headers(token, body), **overrides}


@pytest.mark.parametrize(
    ("sent_at", "accepted"),
    [
        (NOW, True),
        (NOW - 299, True),
        (NOW + 299, True),
        (NOW - 301, False),
        (NOW + 301, False),
        (NOW - 86_400, False),
    ],
    ids=["now", "almost 5 min old", "almost 5 min ahead", "stale", "from the future", "a day old"],
)
def test_signed_deliveries_are_accepted_only_within_five_minutes(
    sent_at: float, accepted: bool
) -> None:
    token = gitlab_signing_token()
    body = fixture("gitlab", "pipeline_success.json")
    headers = {
        "X-Gitlab-Event": "Pipeline Hook",
        **gitlab_signature_headers(token, body, timestamp=sent_at),
    }
    if accepted:
        assert isinstance(provider.parse(headers, body, [token]), Event)
    else:
        with pytest.raises(InvalidSignature, match="stale or replayed"):
            provider.parse(headers, body, [token])


def test_the_replay_window_follows_the_injected_clock() -> None:
    token = gitlab_signing_token()
    body = fixture("gitlab", "pipeline_success.json")
    headers = signed(token, body)
    later = GitLabProvider(clock=lambda: NOW + 3600)
    with pytest.raises(InvalidSignature, match="3600 s away"):
        later.parse(headers, body, [token])


def test_a_signature_header_with_several_signatures_matches_any_of_them() -> None:
    token = gitlab_signing_token()
    body = fixture("gitlab", "pipeline_success.json")
    headers = signed(token, body)
    good = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1,bm90IHRoZSBzaWduYXR1cmU= v2,xyz {good}"
    assert isinstance(provider.parse(headers, body, [token]), Event)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"webhook-id": "msg_other"}, "does not match"),
        ({"webhook-timestamp": "yesterday"}, "not a Unix time"),
        ({"webhook-signature": "v2,abc"}, "does not match"),
    ],
    ids=["another message id", "timestamp not a number", "unknown version only"],
)
def test_the_signature_covers_the_message_id_and_timestamp(
    change: dict[str, str], reason: str
) -> None:
    token = gitlab_signing_token()
    body = fixture("gitlab", "pipeline_success.json")
    with pytest.raises(InvalidSignature, match=reason):
        provider.parse(signed(token, body, **change), body, [token])


def test_a_signing_token_with_an_empty_key_accepts_nothing() -> None:
    """`whsec_` alone decodes to an empty HMAC key, with which anyone can sign."""
    body = fixture("gitlab", "pipeline_success.json")
    with pytest.raises(InvalidSignature, match="configured whsec_ signing token is empty"):
        provider.parse(signed(b"whsec_", body), body, [b"whsec_", TOKEN])


def test_a_signed_delivery_needs_its_id_and_timestamp() -> None:
    token = gitlab_signing_token()
    body = fixture("gitlab", "pipeline_success.json")
    headers = signed(token, body)
    del headers["webhook-id"]
    with pytest.raises(InvalidSignature, match="lacks webhook-id or webhook-timestamp"):
        provider.parse(headers, body, [token])


def test_with_both_schemes_configured_either_is_accepted_during_a_migration() -> None:
    token = gitlab_signing_token()
    body = fixture("gitlab", "pipeline_success.json")
    configured = [token, TOKEN]

    by_signature = provider.parse(signed(token, body), body, configured)
    by_token = provider.parse(
        {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": TOKEN.decode()}, body, configured
    )

    assert isinstance(by_signature, Event)
    assert isinstance(by_token, Event)


def test_when_only_a_signing_token_is_configured_the_plain_token_is_not_enough() -> None:
    token = gitlab_signing_token()
    body = fixture("gitlab", "pipeline_success.json")
    headers = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": token.decode()}
    with pytest.raises(InvalidSignature, match="missing webhook-signature header"):
        provider.parse(headers, body, [token])


def test_a_present_but_wrong_signature_is_not_rescued_by_the_token() -> None:
    token = gitlab_signing_token()
    body = fixture("gitlab", "pipeline_success.json")
    headers = signed(gitlab_signing_token(), body, **{"X-Gitlab-Token": TOKEN.decode()})
    with pytest.raises(InvalidSignature, match="webhook-signature does not match"):
        provider.parse(headers, body, [token, TOKEN])


def test_a_malformed_signing_token_in_the_configuration_is_named() -> None:
    body = fixture("gitlab", "pipeline_success.json")
    with pytest.raises(InvalidSignature, match="whsec_ signing token is not valid base64"):
        provider.parse(signed(gitlab_signing_token(), body), body, [b"whsec_not*base64"])
