"""Travis CI end to end: a signed build notification → the app (the key fetched from the
fake Travis API's `/config`) → real Redis → the ARQ worker (burst) → the report handler →
the Travis client against the fake Travis API → the GitHub client against the fake GitHub,
and back as one check run and one sticky PR comment; then a `/retest` comment on that pull
request → one restart of the failed job on the fake Travis."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.reports.markdown import md_link
from providers.github.client import RETEST_POLICY
from providers.github.publish import reply_marker
from tests.fakes import github_comments
from tests.fakes import herald as harness
from tests.fakes.github import FakeGitHub
from tests.fakes.travis import FakeTravis, ReportHost, TravisJob
from tests.github.conftest import github_env, payload
from tests.reports.checks import outside_code_blocks
from tests.travis.conftest import travis_env
from tests.travis.world import (
    BUILD_ID,
    HEAD,
    LEG_311,
    PR,
    REPO,
    notification,
    seed_build,
    signed,
)

pytestmark = pytest.mark.e2e

CHECK_NAME = f"Herald (travis: {REPO} (pull request))"
BUILD_PAGE = f"https://app.travis-ci.com/github/{REPO}/builds/{BUILD_ID}"
BUILD = rf"/build/{BUILD_ID}"


class Herald(harness.Herald):
    async def notify(self, payload_json: bytes, *, forged: bool = False) -> httpx.Response:
        """What Travis CI sends for the `notifications.webhooks` of docs/travis.md."""
        body, headers = signed(payload_json)
        if forged:
            body, _ = signed(payload_json.replace(b'"failed"', b'"passed"'))
        return await self.http.post("/webhooks/travis", content=body, headers=headers)

    async def comment(self, body: dict[str, Any]) -> httpx.Response:
        return await github_comments.deliver(self.http, body)

    async def rerun_pressed(self, fake: FakeGitHub, check: dict[str, Any]) -> httpx.Response:
        """GitHub's "Re-run" on the check run Herald published for the Travis build."""
        event = copy.deepcopy(payload("check_run_rerequested.json"))
        event["check_run"].update(id=check["id"], external_id=check["external_id"],
                                  head_sha=check["head_sha"], name=check["name"])
        event["repository"]["full_name"] = REPO
        event["installation"]["id"] = fake.installation_id
        return await github_comments.deliver(self.http, event, event_name="check_run")


def start(redis_url: str, tmp_path: Path, github: FakeGitHub, travis: FakeTravis,
          **env: str) -> contextlib.AbstractAsyncContextManager[Herald]:
    return harness.running(Herald, redis_url, tmp_path,
                           {**github_env(github), **travis_env(travis), **env})


@pytest.fixture
async def herald(redis_url: str, tmp_path: Path, fake: FakeGitHub,
                 travis: FakeTravis) -> AsyncIterator[Herald]:
    fake.add_pull(REPO, PR, HEAD)
    async with start(redis_url, tmp_path, fake, travis,
                     HERALD_TRAVIS_LOG_SUMMARY="pytest") as running:
        yield running


def retest_comment(fake: FakeGitHub, author: str, comment_id: int = 2498765432,
                   body: str = "/retest") -> dict[str, Any]:
    return github_comments.issue_comment(fake, REPO, PR, author, comment_id, body)


async def test_a_finished_build_is_reported_once_across_redeliveries(
    fake, travis, herald, redis_url
) -> None:
    seed_build(travis)
    body = notification()
    await herald.deliver_three_times(lambda: herald.notify(body), redis_url)

    [check] = fake.repo(REPO).check_runs
    assert check["name"] == CHECK_NAME
    assert (check["head_sha"], check["conclusion"]) == (HEAD, "failure")
    # Both legs ran the same five tests: ten executions, two failed, none folded.
    assert check["output"]["title"].startswith("2 failed, 8 passed")
    assert check["details_url"] == BUILD_PAGE
    [comment] = fake.repo(REPO).comments[PR]
    assert comment["body"].startswith("<!-- herald:report:travis%3Aorbit%2Dlabs%2Ftelemetry")
    assert "expected 3 batches, got 2" in comment["body"]
    assert f"https://app.travis-ci.com/github/{REPO}/jobs/{LEG_311}" in comment["body"]
    assert len(fake.calls_to("POST", f"/repos/{REPO}/check-runs")) == 1
    assert len(fake.calls_to("POST", f"/repos/{REPO}/issues/{PR}/comments")) == 1


@pytest.mark.parametrize(("status", "headers"), [(502, {}), (429, {"Retry-After": "1"})])
async def test_a_5xx_or_429_from_travis_once_then_one_report(
    fake, travis, herald, status, headers
) -> None:
    seed_build(travis)
    travis.fail("GET", BUILD, status=status, headers=headers)
    await herald.notify(notification())
    await herald.work()
    assert [c.fault for c in travis.calls_to("GET", f"^{BUILD}$")] == [status, None]
    assert len(fake.repo(REPO).check_runs) == 1
    assert len(fake.repo(REPO).comments[PR]) == 1


async def test_a_notification_that_does_not_verify_is_refused_and_reads_nothing(
    fake, travis, herald
) -> None:
    seed_build(travis)
    refused = await herald.notify(notification(), forged=True)
    assert refused.status_code == 401
    await herald.work()
    # At most the key was fetched (the process keeps it an hour): no build was read.
    assert {c.path for c in travis.calls} <= {"/config"}
    assert fake.repo(REPO).check_runs == []


async def test_a_failed_job_without_any_result_is_a_named_failure_never_green(
    fake, travis, herald
) -> None:
    seed_build(travis, legs=[TravisJob(LEG_311, "1042.1", "errored", {"name": "lint"},
                                       log=b"$ flake8\nsrc/a.py:1:1: F401\n")])
    await herald.notify(notification(state="errored"))
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    assert check["output"]["title"].startswith("1 error")
    [comment] = fake.repo(REPO).comments[PR]
    assert "job 1042.1 (lint)" in comment["body"]


async def test_retest_from_a_trusted_user_restarts_the_failed_job_once(
    fake, travis, herald
) -> None:
    seed_build(travis)
    await herald.notify(notification())
    await herald.work()
    fake.grant(REPO, "lena", "write", "maintain")

    await herald.comment(retest_comment(fake, "lena"))
    await herald.work()
    assert travis.restarts == [LEG_311]
    reply = fake.repo(REPO).comments[PR][-1]["body"]
    assert reply == (f"{reply_marker('2498765432')}\n@lena re-running the failed jobs of "
                     f"{md_link(f'Travis CI build #1042 of {REPO}', BUILD_PAGE)}.")
    assert fake.repo(REPO).reactions == [{"comment_id": 2498765432, "content": "eyes"}]

    # Another /retest while the restarted job waits asks for nothing more.
    await herald.comment(retest_comment(fake, "lena", comment_id=2498765433))
    await herald.work()
    assert travis.restarts == [LEG_311]
    assert "nothing to retest" in fake.repo(REPO).comments[PR][-1]["body"]


async def test_retest_whose_restart_answer_was_lost_restarts_once(fake, travis, herald) -> None:
    seed_build(travis)
    await herald.notify(notification())
    await herald.work()
    fake.grant(REPO, "lena", "write")
    travis.lose_answer(rf"^POST /job/{LEG_311}/restart$")
    await herald.comment(retest_comment(fake, "lena"))
    await herald.work()
    assert travis.restarts == [LEG_311]
    assert "re-running the failed jobs" in fake.repo(REPO).comments[PR][-1]["body"]


async def test_retest_from_an_untrusted_user_is_politely_refused(fake, travis, herald) -> None:
    seed_build(travis)
    await herald.notify(notification())
    await herald.work()
    fake.grant(REPO, "drive-by", "read")

    await herald.comment(retest_comment(fake, "drive-by"))
    await herald.work()
    assert travis.restarts == []
    assert travis.calls_to("POST", r".*") == []
    assert fake.repo(REPO).comments[PR][-1]["body"] == (
        f"{reply_marker('2498765432')}\n"
        f"@drive-by sorry, I can't retest on your request. {RETEST_POLICY}"
    )


async def test_a_restart_travis_refuses_is_said_in_the_reply(fake, travis, herald) -> None:
    seed_build(travis)
    await herald.notify(notification())
    await herald.work()
    fake.grant(REPO, "lena", "write")
    travis.may_restart = False
    await herald.comment(retest_comment(fake, "lena"))
    await herald.work()
    reply = fake.repo(REPO).comments[PR][-1]["body"]
    assert "Could not rerun" in reply and "operation requires restart access to job" in reply


async def test_test_names_from_the_log_are_inert_on_github(fake, travis, herald) -> None:
    seed_build(travis)
    await herald.notify(notification())
    await herald.work()
    [comment] = fake.repo(REPO).comments[PR]
    prose = "\n".join(outside_code_blocks(comment["body"]))
    assert "closes" in prose  # the hostile case is shown...
    for live in ("@maintainers", "#123"):  # ...but mentions and links nobody
        assert live not in prose


async def test_urls_a_notification_names_on_other_hosts_see_no_request(
    fake, travis, herald, capture
) -> None:
    seed_build(travis)
    await herald.notify(notification(build_url=f"{capture.url}/builds/1",
                                     compare_url=f"{capture.url}/compare"))
    await herald.work()
    assert capture.requests == []
    assert len(fake.repo(REPO).check_runs) == 1


async def test_report_files_are_read_per_job_and_a_redirect_to_a_private_host_is_refused(
    redis_url, tmp_path, fake, travis, reports: ReportHost, capture
) -> None:
    fake.add_pull(REPO, PR, HEAD)
    seed_build(travis)
    reports.files["/r/1042.1.xml"] = (
        b'<testsuite name="upload"><testcase classname="t" name="offline">'
        b'<failure message="boom"/></testcase><testcase classname="t" name="ok"/></testsuite>')
    reports.redirects["/r/1042.2.xml"] = f"{capture.url}/latest/meta-data/"
    async with start(redis_url, tmp_path, fake, travis,
                     HERALD_TRAVIS_REPORT_URL=f"{reports.url}/r/{{job_number}}.xml") as herald:
        await herald.notify(notification())
        await herald.work()
    assert capture.requests == []
    assert all("authorization" not in headers for _, _, headers in reports.requests)
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    assert check["output"]["title"].startswith("1 failed, 1 passed")
    text = check["output"]["summary"] + (check["output"].get("text") or "")
    assert "refused to connect to" in text


async def test_a_failed_job_whose_report_file_is_missing_is_named_and_the_check_fails(
    redis_url, tmp_path, fake, travis, reports: ReportHost
) -> None:
    fake.add_pull(REPO, PR, HEAD)
    seed_build(travis)
    reports.files["/r/1042.2.xml"] = b'<testsuite name="upload"><testcase name="ok"/></testsuite>'
    async with start(redis_url, tmp_path, fake, travis,
                     HERALD_TRAVIS_REPORT_URL=f"{reports.url}/r/{{job_number}}.xml") as herald:
        await herald.notify(notification())
        await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"  # not "neutral": Travis said the job failed
    [comment] = fake.repo(REPO).comments[PR]
    assert "job 1042.1 (os: linux, language: python, python: 3.11)" in comment["body"]
    assert "could not all be read" in comment["body"]
    assert "404" in check["output"]["summary"] + (check["output"].get("text") or "")


async def test_github_s_rerun_button_on_the_travis_check_restarts_the_failed_job(
    fake, travis, herald
) -> None:
    seed_build(travis)
    await herald.notify(notification())
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert (await herald.rerun_pressed(fake, check)).status_code == 202
    await herald.work()
    assert travis.restarts == [LEG_311]


async def test_a_redelivered_retest_comment_restarts_and_replies_once(fake, travis, herald
                                                                      ) -> None:
    seed_build(travis)
    await herald.notify(notification())
    await herald.work()
    fake.grant(REPO, "lena", "write")
    await herald.comment(retest_comment(fake, "lena"))
    await herald.comment(retest_comment(fake, "lena"))  # a resend, with a new delivery id
    await herald.work()
    assert travis.restarts == [LEG_311]
    replies = [c for c in fake.repo(REPO).comments[PR] if "herald:reply" in c["body"]]
    assert len(replies) == 1
