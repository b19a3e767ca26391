"""Azure DevOps service hooks: builds, pipeline runs and pull request comments."""

from __future__ import annotations

import json

import pytest

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, Event, Ignored
from providers.azure_devops import AzureDevOpsProvider
from providers.base import BadPayload
from tests.providers.senders import fixture

TOKEN = "azure-devops-hook-token"
provider = AzureDevOpsProvider()


def deliver(body: bytes) -> Event | Ignored:
    return provider.parse({"X-Herald-Token": TOKEN}, body, [TOKEN.encode()])


def test_a_completed_build_is_a_finished_build_of_its_pull_request() -> None:
    event = deliver(fixture("azure-devops", "build_complete.json"))

    assert isinstance(event, Event) and event.run is not None
    assert (event.name, event.native_name, event.delivery_id, event.repo) == (
        BUILD_COMPLETED,
        "build.complete",
        "2b8f7a9c-0d1e-4f2a-8b3c-4d5e6f7a8b9c",
        "contoso/Payments",
    )
    run = event.run
    assert (run.provider, run.repo, run.run_id, run.sha, run.branch, run.change, run.status) == (
        "azure-devops",
        "contoso/Payments",
        "90817",
        "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
        "refs/pull/1187/merge",
        1187,
        "failed",
    )
    assert run.url == (
        "https://dev.azure.com/contoso/7f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8/_build/results?buildId=90817"
    )
    assert run.extra == {
        "organization": "contoso",
        "project": "Payments",
        "project_id": "7f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8",
        "definition_id": 64,
        "definition_name": "payments-api-ci",
        "build_number": "20261125.3",
        "reason": "pullRequest",
        "repository_id": "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d",
        "repository_type": "TfsGit",
        "repository_name": "payments-api",
    }


def test_the_pull_request_comes_from_the_source_branch_without_trigger_info() -> None:
    payload = json.loads(fixture("azure-devops", "build_complete.json"))
    del payload["resource"]["triggerInfo"]
    payload["resource"]["sourceBranch"] = "refs/pull/77/merge"
    event = deliver(json.dumps(payload).encode())
    assert isinstance(event, Event) and event.run is not None
    assert event.run.change == 77


def test_the_old_payload_shape_with_the_result_in_status_still_maps() -> None:
    """The 2015-era sample: result in `status`, no project object, no baseUrl."""
    payload = {
        "id": "4a5d99d6-1c75-4e53-91b9-ee80057d4ce3",
        "eventType": "build.complete",
        "resource": {
            "id": 2,
            "buildNumber": "ConsumerAddressModule_20150407.1",
            "url": "https://fabrikam-fiber-inc.visualstudio.com/DefaultCollection/71777fbc-1cf2-4bd1-9540-128c1c71f766/_apis/build/Builds/2",
            "status": "succeeded",
            "sourceGetVersion": "LG:refs/heads/master:600c52d2d5b655caa111abfd863e5a9bd304bb0e",
        },
    }
    event = deliver(json.dumps(payload).encode())
    assert isinstance(event, Event) and event.run is not None
    assert (event.run.repo, event.run.status) == (
        "fabrikam-fiber-inc/71777fbc-1cf2-4bd1-9540-128c1c71f766",
        "succeeded",
    )


def test_a_completed_pipeline_run_is_a_finished_build() -> None:
    event = deliver(fixture("azure-devops", "run_state_changed_completed.json"))

    assert isinstance(event, Event) and event.run is not None
    assert event.native_name == "ms.vss-pipelines.run-state-changed-event"
    run = event.run
    assert (run.repo, run.run_id, run.sha, run.branch, run.change, run.status) == (
        "contoso/7f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8",
        "90822",
        "1f2e3d4c5b6a79880f1e2d3c4b5a69788796a5b4",
        "main",
        None,
        "succeeded",
    )
    assert run.extra == {
        "organization": "contoso",
        "project": "7f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8",
        "project_id": "7f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8",
        "pipeline_id": 71,
        "pipeline_name": "payments-api-yaml",
        "run_name": "20261125.4",
    }


def test_a_pipeline_run_that_is_still_going_is_ignored() -> None:
    result = deliver(fixture("azure-devops", "run_state_changed_in_progress.json"))
    assert isinstance(result, Ignored)
    assert result.reason == "pipeline run state 'inProgress' is not final"


def test_a_new_pull_request_comment_is_a_comment() -> None:
    event = deliver(fixture("azure-devops", "pullrequest_comment_created.json"))

    assert isinstance(event, Event) and event.comment is not None
    assert (event.name, event.repo) == (COMMENT_CREATED, "contoso/Payments")
    comment = event.comment
    assert (comment.id, comment.body, comment.author, comment.change, comment.author_is_bot) == (
        "1",
        "/retest",
        "priya@contoso.com",
        1187,
        False,
    )
    assert (
        comment.url == "https://dev.azure.com/contoso/Payments/_git/payments-api/pullrequest/1187"
    )
    assert comment.extra == {
        "organization": "contoso",
        "project": "Payments",
        "author_id": "3c2b1a09-8f7e-4d6c-b5a4-f3e2d1c0b9a8",
        "author_display_name": "Priya Nair",
        "thread_id": 8841,
        "parent_comment_id": 0,
        "repository_id": "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d",
        "repository_name": "payments-api",
        "pull_request_status": "active",
        "source_ref": "refs/heads/feature/idempotent-refunds",
        "last_merge_source_commit": "0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a69788796",
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"lastContentUpdatedDate": "2026-11-25T09:20:03.101Z"}, "edited"),
        ({"commentType": "system"}, "system comment"),
    ],
)
def test_edits_and_system_comments_are_ignored(change: dict[str, str], reason: str) -> None:
    payload = json.loads(fixture("azure-devops", "pullrequest_comment_created.json"))
    payload["resource"]["comment"].update(change)
    result = deliver(json.dumps(payload).encode())
    assert isinstance(result, Ignored)
    assert reason in result.reason


def test_the_edited_fixture_is_ignored() -> None:
    assert isinstance(deliver(fixture("azure-devops", "pullrequest_comment_edited.json")), Ignored)


@pytest.mark.parametrize(
    ("descriptor", "unique_name", "is_bot"),
    [
        ("svc.YzEyZDBlYjg", "Build\\7f3e2d1c", True),
        ("s2s.MDAwMDAwMDI", "00000002@2c895908", True),
        ("aad.M2MyYjFhMDk", "priya@contoso.com", False),
    ],
)
def test_service_identities_are_marked_as_bots(
    descriptor: str, unique_name: str, is_bot: bool
) -> None:
    payload = json.loads(fixture("azure-devops", "pullrequest_comment_created.json"))
    payload["resource"]["comment"]["author"].update(
        {"descriptor": descriptor, "uniqueName": unique_name}
    )
    event = deliver(json.dumps(payload).encode())
    assert isinstance(event, Event) and event.comment is not None
    assert event.comment.author_is_bot is is_bot


def test_without_an_event_id_the_delivery_id_is_the_notification_id() -> None:
    payload = json.loads(fixture("azure-devops", "build_complete.json"))
    del payload["id"]
    event = deliver(json.dumps(payload).encode())
    assert isinstance(event, Event)
    assert event.delivery_id == "41"


def test_a_payload_without_an_event_type_is_bad() -> None:
    with pytest.raises(BadPayload, match="no eventType"):
        deliver(b'{"resource": {}}')
