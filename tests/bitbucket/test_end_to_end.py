"""Bitbucket end to end: a signed webhook → the app → real Redis → the ARQ worker → the report
and /retest handlers → the shared HTTP layer → the fake Bitbucket, and back as a build
status, a Code Insights report with annotations, and one pull request comment."""

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

from providers.bitbucket import insights
from providers.bitbucket.client import RETEST_POLICY
from tests.bitbucket.world import (
    BRANCH,
    NUMBER,
    PR,
    READER_ID,
    READER_NAME,
    REPO,
    SHA,
    WEB,
    WRITER_ID,
)
from tests.fakes import herald as harness
from tests.fakes.bitbucket import TOKEN, FakeBitbucket
from tests.providers.senders import fixture_json, hex_hmac

pytestmark = pytest.mark.e2e

SECRET = "bitbucket-hook-secret-for-tests"


class Herald(harness.Herald):
    async def deliver(self, event: str, payload: dict[str, Any], *,
                      request: str | None = None, secret: str = SECRET) -> httpx.Response:
        body = json.dumps(payload).encode()
        signature = hex_hmac(secret.encode(), body)
        return await self.http.post("/webhooks/bitbucket", content=body, headers={
            "content-type": "application/json",
            "x-event-key": event,
            "x-hub-signature": f"sha256={signature}",
            "x-request-uuid": request or str(uuid.uuid4()),
            "x-hook-uuid": "{8f0e2a6c-1b3d-4e5f-9a7b-6c5d4e3f2a1b}",
            "x-attempt-number": "1",
            "user-agent": "Bitbucket-Webhooks/2.0",
        })


@pytest.fixture
async def herald(redis_url: str, tmp_path: Path,
                 bitbucket: FakeBitbucket) -> AsyncIterator[Herald]:
    async with harness.running(Herald, redis_url, tmp_path, {
        "HERALD_BITBUCKET_WEBHOOK_SECRET": SECRET,
        "HERALD_BITBUCKET_API_URL": f"{bitbucket.url}/2.0",
        "HERALD_BITBUCKET_TOKEN": TOKEN,
        "HERALD_BITBUCKET_TIMEOUT": "3",
    }) as running:
        yield running


def status_hook() -> dict[str, Any]:
    """Pipelines' `repo:commit_status_updated` for pipeline #318 (the fixture as sent)."""
    return copy.deepcopy(fixture_json("bitbucket", "commit_status_updated_failed.json"))


def comment_hook(bitbucket: FakeBitbucket, account: str, body: str = "/retest") -> dict[str, Any]:
    """`pullrequest:comment_created` for a comment that exists on the fake's pull request."""
    user = bitbucket.users[account]
    posted = bitbucket.add_comment(REPO, PR, body, user)
    payload = copy.deepcopy(fixture_json("bitbucket", "pullrequest_comment_created.json"))
    payload["actor"] = user
    payload["comment"].update(id=posted["id"], user=user,
                              content={"type": "rendered", "raw": body, "markup": "markdown"})
    return payload


def report_comment(bitbucket: FakeBitbucket) -> dict[str, Any]:
    [comment] = [c for c in bitbucket.our_comments(REPO, PR)
                 if "herald:report:" in c["content"]["raw"]]
    return comment


def herald_statuses(bitbucket: FakeBitbucket) -> list[dict[str, Any]]:
    return [s for (sha, key), s in bitbucket.repos[REPO].statuses.items()
            if sha == SHA and key.startswith("herald")]


async def test_a_failed_pipeline_gets_one_status_one_report_and_one_comment(
    herald: Herald, bitbucket: FakeBitbucket
) -> None:
    accepted = await herald.deliver("repo:commit_status_updated", status_hook())
    assert accepted.status_code == 202
    await herald.work()

    [status] = herald_statuses(bitbucket)
    assert (status["state"], status["url"]) == ("FAILED", f"{WEB}/pipelines/results/{NUMBER}")
    assert status["description"].startswith("5 failed, 1 error, 3 passed, 1 skipped")
    [(report_key, report)] = bitbucket.repos[REPO].reports.items()
    assert report_key[1] == status["key"]
    assert (report["report_type"], report["result"]) == ("TEST", "FAILED")
    fields = {f["title"]: f["value"] for f in report["data"]}
    assert (fields["Failed"], fields["Errors"], fields["Passed"]) == (5, 1, 3)
    [annotations] = bitbucket.repos[REPO].annotations.values()
    assert len(annotations) == 6  # five failures and an error, the twins apart
    body = report_comment(bitbucket)["content"]["raw"]
    assert "test\\_retry\\[503\\]" in body and "shard (2)" in body
    assert bitbucket.mentions == []


async def test_redeliveries_and_reprocessing_post_nothing_twice(
    herald: Herald, bitbucket: FakeBitbucket
) -> None:
    await herald.deliver("repo:commit_status_updated", status_hook(), request="delivery-1")
    await herald.work()
    first = report_comment(bitbucket)
    again = await herald.deliver("repo:commit_status_updated", status_hook(),
                                 request="delivery-1")
    assert again.status_code == 200  # Bitbucket's resend: same X-Request-UUID, no new job
    created = await herald.deliver("repo:commit_status_created", status_hook(),
                                   request="delivery-2")
    assert created.status_code == 202
    await herald.work()
    assert report_comment(bitbucket)["id"] == first["id"]
    assert len(bitbucket.calls_to("POST", rf"/pullrequests/{PR}/comments$")) == 1
    assert len(herald_statuses(bitbucket)) == 1
    assert len(bitbucket.repos[REPO].reports) == 1
    [annotations] = bitbucket.repos[REPO].annotations.values()
    assert len(annotations) == 6


async def test_a_newer_passing_pipeline_turns_the_same_report_green_and_a_late_old_one_not_back(
    herald: Herald, bitbucket: FakeBitbucket
) -> None:
    await herald.deliver("repo:commit_status_updated", status_hook())
    await herald.work()
    first = report_comment(bitbucket)
    newer = bitbucket.add_pipeline(REPO, NUMBER + 1, sha=SHA, branch=BRANCH,
                                   result="SUCCESSFUL")
    bitbucket.add_step(REPO, newer, "unit tests", result="SUCCESSFUL", cases=[
        {"name": "test_login", "package_name": "auth.LoginTest", "status": "SUCCESSFUL"}])
    hook = status_hook()
    hook["commit_status"].update(key=newer["uuid"], state="SUCCESSFUL",
                                 url=f"{WEB}/pipelines/results/{NUMBER + 1}")
    await herald.deliver("repo:commit_status_updated", hook)
    await herald.work()
    await herald.deliver("repo:commit_status_updated", status_hook())  # #318, late
    await herald.work()

    [status] = herald_statuses(bitbucket)
    assert (status["state"], status["url"]) == (
        "SUCCESSFUL", f"{WEB}/pipelines/results/{NUMBER + 1}")
    [report] = bitbucket.repos[REPO].reports.values()
    assert (report["result"], insights.reported_run(report)) == ("PASSED", NUMBER + 1)
    [annotations] = bitbucket.repos[REPO].annotations.values()
    assert annotations == []  # the fixed failures' annotations are gone
    comment = report_comment(bitbucket)
    assert comment["id"] == first["id"]
    assert insights.reported_order(comment["content"]["raw"]) == (NUMBER + 1,)


async def test_herald_s_own_status_does_not_report_again(herald: Herald,
                                                         bitbucket: FakeBitbucket) -> None:
    own = status_hook()
    own["commit_status"]["key"] = insights.KEY_PREFIX + "-0123456789ab"
    answer = await herald.deliver("repo:commit_status_updated", own)
    assert answer.status_code == 202
    assert answer.json()["status"] == "ignored"
    await herald.work()
    assert bitbucket.calls == []


async def test_a_rate_limited_comment_is_posted_once_after_the_wait(
    herald: Herald, bitbucket: FakeBitbucket
) -> None:
    bitbucket.fail_next(rf"POST .*/pullrequests/{PR}/comments$", retry_after="1")
    await herald.deliver("repo:commit_status_updated", status_hook())
    started = time.monotonic()
    await herald.work()
    assert time.monotonic() - started >= 1.0  # the worker waited as Bitbucket asked
    assert len(bitbucket.calls_to("POST", rf"/pullrequests/{PR}/comments$")) == 2
    assert len(bitbucket.our_comments(REPO, PR)) == 1
    assert len(herald_statuses(bitbucket)) == 1


async def test_a_job_that_gives_up_leaves_a_failed_status_saying_why(
    herald: Herald, bitbucket: FakeBitbucket
) -> None:
    bitbucket.fail_next(r"GET .*/pipelines/\{", status=403, times=10)
    await herald.deliver("repo:commit_status_updated", status_hook())
    await herald.work()
    [status] = herald_statuses(bitbucket)
    assert status["state"] == "FAILED"
    assert status["description"].startswith("Herald could not report on this run")
    assert bitbucket.our_comments(REPO, PR) == []


async def test_retest_by_a_writer_starts_a_new_pipeline_and_links_it(
    herald: Herald, bitbucket: FakeBitbucket
) -> None:
    hook = comment_hook(bitbucket, WRITER_ID)
    assert (await herald.deliver("pullrequest:comment_created", hook)).status_code == 202
    await herald.work()
    [created] = bitbucket.created_pipelines
    assert created["target"]["commit"]["hash"] == SHA
    [reply] = bitbucket.our_comments(REPO, PR)
    raw = reply["content"]["raw"]
    assert raw.startswith(insights.reply_marker(str(hook["comment"]["id"])))
    assert f"@{{{WRITER_ID}}} re-running the failed jobs of" in raw
    assert f"({WEB}/pipelines/results/{created['build_number']})" in raw
    assert reply["parent"] == {"id": hook["comment"]["id"]}
    assert bitbucket.mentions == [WRITER_ID]


async def test_a_redelivered_retest_starts_one_pipeline_and_replies_once(
    herald: Herald, bitbucket: FakeBitbucket
) -> None:
    hook = comment_hook(bitbucket, WRITER_ID)
    await herald.deliver("pullrequest:comment_created", hook, request="retest-1")
    await herald.work()
    await herald.deliver("pullrequest:comment_created", hook, request="retest-2")
    await herald.work()
    assert len(bitbucket.created_pipelines) == 1
    assert len(bitbucket.our_comments(REPO, PR)) == 1


async def test_retest_by_a_reader_is_politely_refused_once(herald: Herald,
                                                           bitbucket: FakeBitbucket) -> None:
    hook = comment_hook(bitbucket, READER_ID)
    await herald.deliver("pullrequest:comment_created", hook)
    await herald.work()
    await herald.deliver("pullrequest:comment_created", hook)  # a redelivery: no second reply
    await herald.work()
    assert bitbucket.created_pipelines == []
    [reply] = bitbucket.our_comments(REPO, PR)
    assert RETEST_POLICY in reply["content"]["raw"]
    assert f"@{{{READER_ID}}} sorry" in reply["content"]["raw"]
    assert READER_NAME not in bitbucket.mentions


async def test_a_bot_s_retest_runs_nothing(herald: Herald, bitbucket: FakeBitbucket) -> None:
    hook = comment_hook(bitbucket, WRITER_ID)
    hook["comment"]["user"] = {**hook["comment"]["user"], "type": "app_user"}
    await herald.deliver("pullrequest:comment_created", hook)
    await herald.work()
    assert bitbucket.created_pipelines == []
    assert bitbucket.our_comments(REPO, PR) == []


async def test_a_quoted_retest_runs_nothing(herald: Herald, bitbucket: FakeBitbucket) -> None:
    await herald.deliver("pullrequest:comment_created",
                         comment_hook(bitbucket, WRITER_ID, "> /retest\n\n```\n/retest\n```"))
    await herald.work()
    assert bitbucket.created_pipelines == []
    assert bitbucket.our_comments(REPO, PR) == []


async def test_a_wrong_signature_makes_no_job(herald: Herald, bitbucket: FakeBitbucket) -> None:
    refused = await herald.deliver("repo:commit_status_updated", status_hook(), secret="guess")
    assert refused.status_code == 401
    await herald.work()
    assert bitbucket.calls == []
