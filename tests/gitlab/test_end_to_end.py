"""GitLab end to end: a signed webhook → the app → real Redis → the ARQ worker → the report
and /retest handlers → python-gitlab → the fake GitLab, and back as a status and a note."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.gitlab import notes
from providers.gitlab.client import RETEST_POLICY, STATUS_NAME
from tests.fakes import herald as harness
from tests.fakes.gitlab import TOKEN, FakeGitLab
from tests.gitlab.world import (
    CHILD,
    DEVELOPER_ID,
    DEVELOPER_NAME,
    GUEST_ID,
    GUEST_NAME,
    MR,
    PATH,
    PROJECT,
    ROOT,
    SHA,
    Jobs,
)
from tests.providers.senders import fixture_json

pytestmark = pytest.mark.e2e

SECRET = "gitlab-hook-secret-for-tests"
WEB = f"https://gitlab.example.com/{PATH}"


class Herald(harness.Herald):
    async def deliver(self, event: str, payload: dict[str, Any], *,
                      key: str | None = None, secret: str = SECRET) -> httpx.Response:
        return await self.http.post("/webhooks/gitlab", content=json.dumps(payload), headers={
            "content-type": "application/json",
            "x-gitlab-event": event,
            "x-gitlab-token": secret,
            "idempotency-key": key or str(uuid.uuid4()),
            "user-agent": "GitLab/18.6.0",
        })


@pytest.fixture
async def herald(redis_url: str, tmp_path: Path, gitlab: FakeGitLab,
                 world: Jobs) -> AsyncIterator[Herald]:
    async with harness.running(Herald, redis_url, tmp_path, {
        "HERALD_GITLAB_WEBHOOK_SECRET": SECRET,
        "HERALD_GITLAB_URL": gitlab.url,
        "HERALD_GITLAB_TOKEN": TOKEN,
        "HERALD_GITLAB_TIMEOUT": "3",
    }) as running:
        yield running


def pipeline_hook(pipeline_id: int = ROOT, status: str = "failed") -> dict[str, Any]:
    """GitLab's Pipeline Hook for one of the world's pipelines (fixture, with its ids)."""
    payload = copy.deepcopy(fixture_json("gitlab", "pipeline_success.json"))
    attributes = payload["object_attributes"]
    attributes.update(id=pipeline_id, status=status, sha=SHA,
                      url=f"{WEB}/-/pipelines/{pipeline_id}")
    payload["project"].update(id=PROJECT, path_with_namespace=PATH, web_url=WEB)
    payload["merge_request"].update(iid=MR, url=f"{WEB}/-/merge_requests/{MR}")
    if pipeline_id == CHILD:
        attributes["source"] = "parent_pipeline"
        payload["source_pipeline"] = {
            "project": {"id": PROJECT, "web_url": WEB, "path_with_namespace": PATH},
            "pipeline_id": ROOT, "job_id": 1}
    return payload


def note_hook(gitlab: FakeGitLab, user_id: int, username: str,
              body: str = "/retest") -> dict[str, Any]:
    """A Note Hook for a comment that exists on the fake's merge request."""
    posted = gitlab.add_note(PROJECT, MR, body, author_id=user_id, username=username)
    payload = copy.deepcopy(fixture_json("gitlab", "note_merge_request.json"))
    payload["user"].update(id=user_id, username=username)
    payload["project_id"] = PROJECT
    payload["project"].update(id=PROJECT, path_with_namespace=PATH, web_url=WEB)
    payload["object_attributes"].update(
        id=posted["id"], note=body, author_id=user_id, project_id=PROJECT,
        url=f"{WEB}/-/merge_requests/{MR}#note_{posted['id']}")
    payload["merge_request"].update(iid=MR, source_branch="flaky-report")
    payload["merge_request"]["last_commit"]["id"] = SHA
    return payload


def report_note(gitlab: FakeGitLab) -> dict[str, Any]:
    [note] = [n for n in gitlab.our_notes(PROJECT, MR) if notes.is_report(n["body"])]
    return note


def herald_statuses(gitlab: FakeGitLab) -> list[dict[str, Any]]:
    return [s for s in gitlab.statuses.get((PROJECT, SHA), []) if s["name"] == STATUS_NAME]


async def test_a_failed_pipeline_gets_one_status_and_one_note(herald: Herald,
                                                              gitlab: FakeGitLab,
                                                              world: Jobs) -> None:
    accepted = await herald.deliver("Pipeline Hook", pipeline_hook(), key="delivery-1")
    assert accepted.status_code == 202
    await herald.work()

    [status] = herald_statuses(gitlab)
    assert (status["status"], status["pipeline_id"], status["target_url"]) == (
        "failed", ROOT, f"{WEB}/-/pipelines/{ROOT}")
    assert status["description"].startswith("4 failed, 1 error, 3 passed, 1 skipped")
    body = report_note(gitlab)["body"]
    # GitLab's own test report, parent and child, and the one archive it did not parse.
    for shown in ("checkout flow", "test\\_refunds", "e2e / e2e-chrome"):
        assert shown in body
    assert f"{WEB}/-/jobs/{world.build['id']}/artifacts/browse" in body
    assert gitlab.quick_actions == []
    assert gitlab.mentions == []
    # The unit-tests archive holds the JUnit file GitLab parsed: never downloaded.
    assert gitlab.calls_to("GET", f"/jobs/{world.unit['id']}/artifacts") == []
    assert len(gitlab.calls_to("GET", f"/jobs/{world.integration['id']}/artifacts")) == 1


async def test_redeliveries_and_the_child_hook_update_the_same_note(
    herald: Herald, gitlab: FakeGitLab
) -> None:
    await herald.deliver("Pipeline Hook", pipeline_hook(), key="delivery-1")
    await herald.work()
    first = report_note(gitlab)
    again = await herald.deliver("Pipeline Hook", pipeline_hook(), key="delivery-1")
    assert again.status_code == 200  # GitLab's resend: same Idempotency-Key, no new job
    assert (await herald.deliver("Pipeline Hook", pipeline_hook(), key="delivery-2")
            ).status_code == 202
    assert (await herald.deliver("Pipeline Hook", pipeline_hook(CHILD), key="delivery-3")
            ).status_code == 202
    await herald.work()
    assert report_note(gitlab)["id"] == first["id"]
    assert len(gitlab.calls_to("POST", f"/merge_requests/{MR}/notes$")) == 1
    assert len(herald_statuses(gitlab)) == 1
    # The child's hook reported its parent, not a second pipeline.
    assert {s["pipeline_id"] for s in herald_statuses(gitlab)} == {ROOT}


async def test_a_rate_limited_note_is_posted_once_after_the_wait(herald: Herald,
                                                                 gitlab: FakeGitLab) -> None:
    gitlab.fail_next(rf"POST /projects/{PROJECT}/merge_requests/{MR}/notes$", status=429,
                     headers={"Retry-After": "1", "RateLimit-Remaining": "0",
                              "RateLimit-Reset": str(int(time.time()) + 1)})
    await herald.deliver("Pipeline Hook", pipeline_hook())
    started = time.monotonic()
    await herald.work()
    assert time.monotonic() - started >= 1.0  # the worker waited as GitLab asked
    posts = gitlab.calls_to("POST", f"/merge_requests/{MR}/notes$")
    assert len(posts) == 2  # refused once, then accepted
    assert len(gitlab.our_notes(PROJECT, MR)) == 1
    assert len(herald_statuses(gitlab)) == 1


async def test_retest_by_a_developer_retries_the_failed_jobs(herald: Herald,
                                                             gitlab: FakeGitLab) -> None:
    hook = note_hook(gitlab, DEVELOPER_ID, DEVELOPER_NAME)
    assert (await herald.deliver("Note Hook", hook)).status_code == 202
    await herald.work()
    assert gitlab.retried == [ROOT]
    note_id = hook["object_attributes"]["id"]
    assert [a["name"] for a in gitlab.awards[note_id]] == ["eyes"]
    [reply] = gitlab.our_notes(PROJECT, MR)
    assert reply["body"].startswith(
        f"{notes.reply_marker(str(note_id))}\n@{DEVELOPER_NAME} re-running the failed jobs of"
    )
    assert f"({WEB}/-/pipelines/{ROOT})" in reply["body"]
    assert gitlab.mentions == [DEVELOPER_NAME]


async def test_retest_by_a_guest_is_politely_refused(herald: Herald,
                                                     gitlab: FakeGitLab) -> None:
    hook = note_hook(gitlab, GUEST_ID, GUEST_NAME)
    await herald.deliver("Note Hook", hook)
    await herald.work()
    await herald.deliver("Note Hook", hook)  # a redelivery with a new key: no second reply
    await herald.work()
    assert gitlab.retried == []
    assert gitlab.awards == {}
    [reply] = gitlab.our_notes(PROJECT, MR)
    assert RETEST_POLICY in reply["body"]
    marker = notes.reply_marker(str(hook["object_attributes"]["id"]))
    assert reply["body"].startswith(f"{marker}\n@{GUEST_NAME} sorry")


async def test_a_wrong_hook_secret_makes_no_job(herald: Herald, gitlab: FakeGitLab) -> None:
    refused = await herald.deliver("Pipeline Hook", pipeline_hook(), secret="guess")
    assert refused.status_code == 401
    await herald.work()
    assert gitlab.calls == []
