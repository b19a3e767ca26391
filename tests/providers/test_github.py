"""GitHub App deliveries: the documented signature, and each event Herald reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.events import BUILD_COMPLETED, CHECK_REREQUESTED, COMMENT_CREATED, PING, Event, Ignored
from providers.base import BadPayload, InvalidSignature
from providers.github import GitHubProvider
from providers.signatures import hex_hmac_matches
from tests.providers.senders import fixture, hex_hmac

SECRET = b"github-webhook-secret"
DELIVERY = "9f2f8c70-cb1e-11ef-8f5e-2b6d0f3e7a11"
provider = GitHubProvider()

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
VECTOR_SECRET = b"It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIGNATURE = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def deliver(event: str, name: str, **extra_headers: str) -> Event | Ignored:
    body = fixture("github", name)
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": DELIVERY,
        "X-Hub-Signature-256": "sha256=" + hex_hmac(SECRET, body),
        **extra_headers,
    }
    return provider.parse(headers, body, [SECRET])


def test_the_documented_test_vector_verifies() -> None:
    assert hex_hmac(VECTOR_SECRET, VECTOR_BODY) == VECTOR_SIGNATURE
    assert hex_hmac_matches(VECTOR_BODY, [VECTOR_SIGNATURE], [VECTOR_SECRET])
    headers = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": f"sha256={VECTOR_SIGNATURE}"}
    # The signature holds, so the provider goes on to read the body, which is not JSON.
    with pytest.raises(BadPayload, match="invalid JSON"):
        provider.parse(headers, VECTOR_BODY, [b"another secret", VECTOR_SECRET])
    with pytest.raises(InvalidSignature, match="does not match"):
        provider.parse(headers, VECTOR_BODY, [b"It's a secret to everybody"])


@pytest.mark.parametrize(
    ("signature_headers", "reason"),
    [
        ({"X-Hub-Signature": "sha1=" + "0" * 40}, "missing X-Hub-Signature-256 header: the SHA-1"),
        ({}, "missing X-Hub-Signature-256 header"),
        ({"X-Hub-Signature-256": "sha1=" + "0" * 40}, "must look like 'sha256=<hex>'"),
        ({"X-Hub-Signature-256": VECTOR_SIGNATURE}, "must look like 'sha256=<hex>'"),
        ({"X-Hub-Signature-256": "sha256="}, "must look like 'sha256=<hex>'"),
    ],
    ids=["sha1 only", "no signature", "sha1 in the sha256 header", "no prefix", "empty digest"],
)
def test_signatures_other_than_sha256_are_refused_with_a_reason(
    signature_headers: dict[str, str], reason: str
) -> None:
    headers = {"X-GitHub-Event": "ping", **signature_headers}
    with pytest.raises(InvalidSignature, match=reason):
        provider.parse(headers, VECTOR_BODY, [VECTOR_SECRET])


def test_a_completed_workflow_run_is_a_finished_build() -> None:
    event = deliver("workflow_run", "workflow_run_completed.json")

    assert isinstance(event, Event)
    assert (event.name, event.native_name, event.delivery_id, event.repo) == (
        BUILD_COMPLETED,
        "workflow_run.completed",
        DELIVERY,
        "heraldhq/herald",
    )
    run = event.run
    assert run is not None
    assert (run.provider, run.repo, run.run_id, run.sha, run.branch, run.change) == (
        "github",
        "heraldhq/herald",
        "11850412377",
        "3f9b1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
        "feature/flaky-retries",
        482,
    )
    assert run.url == "https://github.com/heraldhq/herald/actions/runs/11850412377"
    assert run.status == "failure"
    assert run.extra == {
        "installation_id": 52817364,
        "run_attempt": 2,
        "run_number": 1873,
        "workflow_id": 81236421,
        "workflow_name": "CI",
        "event": "pull_request",
        "head_repository": "heraldhq/herald",
        "check_suite_id": 30412987654,
        # The pull request's target and its commit, for the comparison with the base.
        "base_branch": "main",
        "base_sha": "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b",
    }


def test_a_run_for_a_fork_pull_request_has_no_change_but_names_the_head_repository() -> None:
    event = deliver("workflow_run", "workflow_run_completed_fork.json")

    assert isinstance(event, Event) and event.run is not None
    assert event.run.change is None
    assert event.run.status == "success"
    assert event.run.extra["head_repository"] == "contributor-jo/herald"
    assert event.run.extra["run_attempt"] == 1


def test_check_suite_completed_by_another_app_is_a_finished_build() -> None:
    event = deliver("check_suite", "check_suite_completed.json")

    assert isinstance(event, Event) and event.run is not None
    assert event.name == BUILD_COMPLETED
    assert event.native_name == "check_suite.completed"
    run = event.run
    assert (run.repo, run.run_id, run.sha, run.branch, run.change, run.status) == (
        "heraldhq/herald",
        "30415550001",
        "c0ffee1234567890abcdef1234567890abcdef12",
        "feature/flaky-retries",
        482,
        "failure",
    )
    assert run.extra == {
        "installation_id": 52817364,
        "check_suite_id": 30415550001,
        "app_id": 31337,
        "app_slug": "buildkite",
    }


APP_HOOK = {
    "X-GitHub-Hook-Installation-Target-Type": "integration",
    "X-GitHub-Hook-Installation-Target-ID": "424242",
}


@pytest.mark.parametrize(
    ("name", "headers", "expected"),
    [
        ("check_suite_completed_own_app.json", APP_HOOK, "Herald's own app (id 424242)"),
        ("check_suite_completed_actions.json", APP_HOOK, "reported from workflow_run"),
        ("check_suite_completed.json", APP_HOOK, BUILD_COMPLETED),
        # A repository hook names the repository, not an app: the suite is not ours to skip.
        (
            "check_suite_completed_own_app.json",
            {
                "X-GitHub-Hook-Installation-Target-Type": "repository",
                "X-GitHub-Hook-Installation-Target-ID": "424242",
            },
            BUILD_COMPLETED,
        ),
    ],
    ids=["own app", "github actions", "another app", "repository hook"],
)
def test_check_suites_of_our_own_app_and_of_actions_are_not_reported_again(
    name: str, headers: dict[str, str], expected: str
) -> None:
    result = deliver("check_suite", name, **headers)

    if expected == BUILD_COMPLETED:
        assert isinstance(result, Event) and result.name == BUILD_COMPLETED
    else:
        assert isinstance(result, Ignored)
        assert expected in result.reason


@pytest.mark.parametrize(
    ("name", "action", "requested_action"),
    [
        ("check_run_rerequested.json", "rerequested", None),
        ("check_run_requested_action.json", "requested_action", "rerun-failed"),
    ],
)
def test_a_rerun_request_on_our_check_run_names_the_run_it_reported(
    name: str, action: str, requested_action: str | None
) -> None:
    event = deliver("check_run", name)

    assert isinstance(event, Event) and event.run is not None
    assert event.name == CHECK_REREQUESTED
    assert event.native_name == f"check_run.{action}"
    run = event.run
    assert (run.repo, run.run_id, run.sha, run.change) == (
        "heraldhq/herald",
        "github:heraldhq/herald:11850412377",
        "3f9b1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
        482,
    )
    assert run.extra == {
        "installation_id": 52817364,
        "action": action,
        "check_run_id": 33112233445,
        "external_id": "github:heraldhq/herald:11850412377",
        "check_name": "Herald test report",
        "check_suite_id": 30412999999,
        "requested_action": requested_action,
    }


def test_a_new_comment_on_a_pull_request_is_a_comment() -> None:
    event = deliver("issue_comment", "issue_comment_created.json")

    assert isinstance(event, Event) and event.comment is not None
    assert (event.name, event.native_name, event.repo) == (
        COMMENT_CREATED,
        "issue_comment.created",
        "heraldhq/herald",
    )
    comment = event.comment
    assert (comment.id, comment.body, comment.author, comment.change) == (
        "2498765432",
        "/retest",
        "octo-dev",
        482,
    )
    assert comment.author_is_bot is False
    assert comment.url == "https://github.com/heraldhq/herald/pull/482#issuecomment-2498765432"
    assert comment.extra == {
        "installation_id": 52817364,
        "author_association": "MEMBER",
        "node_id": "IC_kwDOLfZ3Bc6U7pR4",
        "issue_number": 482,
    }


@pytest.mark.parametrize(
    ("user", "is_bot"),
    [
        ({"login": "dependabot[bot]", "type": "Bot"}, True),
        ({"login": "herald-ci[bot]", "type": "User"}, True),
        ({"login": "renovate", "type": "Bot"}, True),
        ({"login": "octo-dev", "type": "User"}, False),
        ({"login": "robot-fan", "type": "User"}, False),
    ],
)
def test_comments_by_bots_are_marked_so_commands_from_them_are_ignored(
    user: dict[str, Any], is_bot: bool
) -> None:
    payload = json.loads(fixture("github", "issue_comment_created.json"))
    payload["comment"]["user"].update(user)
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": "issue_comment",
        "X-Hub-Signature-256": "sha256=" + hex_hmac(SECRET, body),
    }
    event = provider.parse(headers, body, [SECRET])

    assert isinstance(event, Event) and event.comment is not None
    assert event.comment.author_is_bot is is_bot


def test_the_bot_fixture_is_a_bot_comment() -> None:
    event = deliver("issue_comment", "issue_comment_created_by_bot.json")
    assert isinstance(event, Event) and event.comment is not None
    assert event.comment.author == "dependabot[bot]"
    assert event.comment.author_is_bot is True


@pytest.mark.parametrize(
    ("event_name", "name", "reason"),
    [
        ("issue_comment", "issue_comment_edited.json", "issue_comment 'edited': only new"),
        ("issue_comment", "issue_comment_created_on_issue.json", "on an issue, not on a pull"),
        ("workflow_run", "workflow_run_requested.json", "only once it is completed"),
        ("push", "push.json", "github event 'push' is not used by Herald"),
        ("pull_request", "push.json", "github event 'pull_request' is not used by Herald"),
    ],
)
def test_events_herald_does_not_act_on_are_ignored_with_the_reason(
    event_name: str, name: str, reason: str
) -> None:
    result = deliver(event_name, name)

    assert isinstance(result, Ignored)
    assert result.provider == "github"
    assert reason in result.reason


def test_ping_is_a_ping() -> None:
    event = deliver("ping", "ping.json")

    assert isinstance(event, Event)
    assert (event.name, event.native_name, event.delivery_id) == (PING, "ping", DELIVERY)


def test_a_delivery_without_an_event_header_is_a_bad_payload() -> None:
    body = fixture("github", "ping.json")
    headers = {"X-Hub-Signature-256": "sha256=" + hex_hmac(SECRET, body)}
    with pytest.raises(BadPayload, match="X-GitHub-Event"):
        provider.parse(headers, body, [SECRET])


def test_a_workflow_run_without_its_run_is_a_bad_payload() -> None:
    body = b'{"action": "completed", "repository": {"full_name": "o/r"}}'
    headers = {
        "X-GitHub-Event": "workflow_run",
        "X-Hub-Signature-256": "sha256=" + hex_hmac(SECRET, body),
    }
    with pytest.raises(BadPayload, match=r"workflow_run\.id"):
        provider.parse(headers, body, [SECRET])
