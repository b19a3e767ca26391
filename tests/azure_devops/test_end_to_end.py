"""Azure DevOps end to end: a service hook with its shared secret → the app → real Redis →
the ARQ worker → the report and /retest handlers → the real httpx client → the fake
Azure DevOps, and back as one pull request status and one sticky thread."""

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

from providers.azure_devops.client import GENRE, RETEST_POLICY
from tests.azure_devops.world import BUILD, DEFINITION, GUEST, PRIYA, PULL, THREAD
from tests.fakes import herald as harness
from tests.fakes.azure_devops import TOKEN, FakeAzureDevOps
from tests.providers.senders import fixture_json

pytestmark = pytest.mark.e2e

SECRET = "azure-devops-hook-secret-for-tests"


class Herald(harness.Herald):
    async def deliver(self, payload: dict[str, Any], *, secret: str = SECRET) -> httpx.Response:
        return await self.http.post("/webhooks/azure-devops", content=json.dumps(payload),
                                    headers={"content-type": "application/json",
                                             "x-herald-token": secret})


@pytest.fixture
async def herald(redis_url: str, tmp_path: Path,
                 azure: FakeAzureDevOps) -> AsyncIterator[Herald]:
    async with harness.running(Herald, redis_url, tmp_path, {
        "HERALD_AZURE_DEVOPS_WEBHOOK_SECRET": SECRET,
        "HERALD_AZURE_DEVOPS_URL": azure.url,
        "HERALD_AZURE_DEVOPS_TOKEN": TOKEN,
        "HERALD_AZURE_DEVOPS_TIMEOUT": "3",
    }) as running:
        yield running


def build_complete(event_id: str | None = None) -> dict[str, Any]:
    payload = copy.deepcopy(fixture_json("azure-devops", "build_complete.json"))
    payload["id"] = event_id or str(uuid.uuid4())
    return payload


def comment_event(azure: FakeAzureDevOps, author_id: str, name: str) -> dict[str, Any]:
    """The comment service hook for a `/retest` that exists on the fake's pull request."""
    azure.add_comment(PULL, "/retest", author={"id": author_id, "uniqueName": name},
                      thread_id=THREAD)
    payload = copy.deepcopy(fixture_json("azure-devops", "pullrequest_comment_created.json"))
    payload["id"] = str(uuid.uuid4())
    payload["resource"]["comment"]["author"].update(id=author_id, uniqueName=name)
    return payload


def statuses(azure: FakeAzureDevOps) -> list[dict[str, Any]]:
    return azure.herald_statuses(f"pr:{PULL}")


def report(azure: FakeAzureDevOps) -> str:
    [thread] = azure.our_threads(PULL)
    content: str = thread["comments"][0]["content"]
    return content


async def test_a_failed_build_gets_one_status_and_one_thread(
    herald: Herald, azure: FakeAzureDevOps,
) -> None:
    assert (await herald.deliver(build_complete())).status_code == 202
    await herald.work()
    [status] = statuses(azure)
    assert (status["state"], status["context"]) == (
        "failed", {"name": DEFINITION[1], "genre": GENRE})
    assert status["description"].startswith("8 failed, 1 error, 4 passed, 1 skipped")
    body = report(azure)
    assert "8 failed, 1 error of 14 executions" in body
    for shown in ("test\\_refunds", "Test / unit tests", "Failed jobs: [unit tests]",
                  "Artifacts: [drop]"):
        assert shown in body
    # The test runs are the source: the JUnit artifact is linked, never parsed again.
    assert azure.calls_to("GET", "/artifacts$") and not [
        c for c in azure.calls if c.query.get("$format") == "zip"]


async def test_redeliveries_edit_the_same_thread_and_add_no_status(
    herald: Herald, azure: FakeAzureDevOps,
) -> None:
    await herald.deliver(build_complete("event-1"))
    await herald.work()
    first = azure.our_threads(PULL)[0]["id"]
    assert (await herald.deliver(build_complete("event-1"))).status_code == 200  # a resend
    assert (await herald.deliver(build_complete("event-2"))).status_code == 202
    await herald.work()
    assert [t["id"] for t in azure.our_threads(PULL)] == [first]
    assert len(azure.calls_to("POST", r"/threads$")) == 1
    assert len(statuses(azure)) == 1


async def test_a_rate_limited_thread_is_posted_once_after_the_wait(
    herald: Herald, azure: FakeAzureDevOps,
) -> None:
    azure.fail_next(r"POST .*/threads$", status=429)
    await herald.deliver(build_complete())
    started = time.monotonic()
    await herald.work()
    assert time.monotonic() - started >= 1.0  # Retry-After: 1
    assert len(azure.calls_to("POST", r"/threads$")) == 2  # refused once, then accepted
    assert len(azure.our_threads(PULL)) == 1
    assert len(statuses(azure)) == 1


async def test_a_delayed_answer_slows_the_next_request_down(
    herald: Herald, azure: FakeAzureDevOps,
) -> None:
    azure.delay_next(r"GET .*/test/runs$", 2)
    await herald.deliver(build_complete())
    started = time.monotonic()
    await herald.work()
    assert time.monotonic() - started >= 2.0
    assert len(azure.calls_to("GET", r"/test/runs$")) == 1
    assert len(azure.our_threads(PULL)) == 1


async def test_a_report_that_cannot_be_made_says_so_on_the_pull_request(
    herald: Herald, azure: FakeAzureDevOps,
) -> None:
    azure.fail_next(r"GET .*/test/runs$", status=403, times=5)
    await herald.deliver(build_complete())
    await herald.work()
    [status] = statuses(azure)
    assert status["state"] == "error"
    assert status["description"].startswith("Herald could not report on this run")
    assert azure.our_threads(PULL) == []


async def test_retest_by_someone_who_may_queue_builds_retries_the_failed_stage(
    herald: Herald, azure: FakeAzureDevOps,
) -> None:
    await herald.deliver(build_complete())
    await herald.work()
    assert (await herald.deliver(comment_event(azure, PRIYA, "priya@contoso.com"))
            ).status_code == 202
    await herald.work()
    assert azure.retried_stages == [(BUILD, "Test")]
    assert len(azure.likes) == 1
    [thread] = [t for t in azure.threads[PULL] if t["id"] == THREAD]
    reply = thread["comments"][-1]
    assert reply["author"]["id"] == azure.me["id"] and reply["parentCommentId"] == 1
    assert "@priya@contoso.com re-running the failed jobs of" in reply["content"]


async def test_retest_by_a_reader_is_politely_refused_once(
    herald: Herald, azure: FakeAzureDevOps,
) -> None:
    event = comment_event(azure, GUEST, "guest@contoso.com")
    await herald.deliver(event)
    await herald.work()
    await herald.deliver({**event, "id": str(uuid.uuid4())})  # redelivered under a new id
    await herald.work()
    assert azure.retried_stages == [] and azure.queued == [] and azure.likes == []
    [thread] = [t for t in azure.threads[PULL] if t["id"] == THREAD]
    replies = [c for c in thread["comments"] if c["author"]["id"] == azure.me["id"]]
    assert len(replies) == 1
    assert RETEST_POLICY in replies[0]["content"]
    assert "@guest@contoso.com sorry" in replies[0]["content"]


async def test_a_service_identity_never_retests(
    herald: Herald, azure: FakeAzureDevOps,
) -> None:
    event = comment_event(azure, PRIYA, "Build\\7f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8")
    event["resource"]["comment"]["author"]["descriptor"] = "svc.YzEyZDBlYjg"
    assert (await herald.deliver(event)).status_code == 202
    await herald.work()
    assert azure.calls == []


async def test_a_wrong_secret_makes_no_job(herald: Herald, azure: FakeAzureDevOps) -> None:
    assert (await herald.deliver(build_complete(), secret="guess")).status_code == 401
    await herald.work()
    assert azure.calls == []
