"""GitHub end to end: a signed webhook → the app → real Redis → the ARQ worker (burst) →
the report and /retest handlers → gidgethub → the fake GitHub, and back as a check run and
a sticky PR comment."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.github.client import RETEST_POLICY
from providers.github.publish import reply_marker
from tests.fakes import herald as harness
from tests.fakes import zipped
from tests.fakes.github import FakeGitHub
from tests.github.conftest import REPO, WEBHOOK_SECRET, github_env, payload
from tests.github.world import PR, SHA, seed_run, workflow_run

pytestmark = pytest.mark.e2e

CHECKS = "/repos/heraldhq/herald/check-runs"
CHECK = r"/repos/heraldhq/herald/check-runs/\d+"


class Herald(harness.Herald):
    async def deliver(self, event: str, body: dict[str, Any], *,
                      delivery: str | None = None) -> httpx.Response:
        raw = json.dumps(body).encode()
        signature = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return await self.http.post("/webhooks/github", content=raw, headers={
            "content-type": "application/json",
            "x-github-event": event,
            "x-github-delivery": delivery or str(uuid.uuid4()),
            "x-hub-signature-256": f"sha256={signature}",
            "user-agent": "GitHub-Hookshot/test",
        })


def start(redis_url: str, tmp_path: Path, fake: FakeGitHub, **env: str
          ) -> contextlib.AbstractAsyncContextManager[Herald]:
    """The web app (over ASGI, with its lifespan) configured for the fake GitHub."""
    return harness.running(Herald, redis_url, tmp_path, {**github_env(fake), **env})


@pytest.fixture
async def herald(redis_url: str, tmp_path: Path, fake: FakeGitHub) -> AsyncIterator[Herald]:
    async with start(redis_url, tmp_path, fake) as running:
        yield running


def run_completed(run: dict[str, Any], fixture: str = "workflow_run_completed.json"
                  ) -> dict[str, Any]:
    body = copy.deepcopy(payload(fixture))
    body["workflow_run"] = copy.deepcopy(run)
    return body


def retest_comment(author: str = "octo-dev", body: str = "/retest") -> dict[str, Any]:
    event = copy.deepcopy(payload("issue_comment_created.json"))
    event["comment"].update(body=body)
    event["comment"]["user"].update(login=author, type="User")
    return event


async def test_a_failed_run_is_reported_once_across_redeliveries_and_retries(fake, herald):
    run = seed_run(fake, failures=2, passes=3)
    body = run_completed(run)
    first = await herald.deliver("workflow_run", body, delivery="delivery-1")
    assert first.status_code == 202
    again = await herald.deliver("workflow_run", body, delivery="delivery-1")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    await herald.work()
    # A second delivery of the same run (another event, a manual redelivery after the
    # dedupe window) runs the job again: it must update, never add.
    await herald.deliver("workflow_run", body, delivery="delivery-2")
    await herald.work()

    [check] = fake.repo(REPO).check_runs
    assert check["name"] == "Herald (CI)"
    assert check["conclusion"] == "failure"
    assert check["output"]["title"].startswith("2 failed, 3 passed")
    assert len(check["annotations"]) == 2
    [comment] = fake.repo(REPO).comments[PR]
    assert comment["body"].startswith(f"<!-- herald:report:CI run={run['id']}.2 -->")
    assert "test-results" in comment["body"]  # the artifact, linked with its size
    assert "dist" not in comment["body"].split("Artifacts")[-1]
    assert len(fake.calls_to("POST", CHECKS)) == 1
    assert len(fake.calls_to("POST", rf"/repos/heraldhq/herald/issues/{PR}/comments")) == 1
    # The artifact was fetched from the storage host, and never with our token.
    assert fake.blob_requests
    assert all("authorization" not in headers for headers in fake.blob_requests)


async def test_120_failures_are_annotated_in_three_requests(fake, herald) -> None:
    run = seed_run(fake, failures=120, passes=0)
    await herald.deliver("workflow_run", run_completed(run))
    await herald.work()
    sent = [len((c.json.get("output") or {}).get("annotations") or [])
            for c in fake.calls if c.path.startswith(CHECKS)]
    assert sent == [50, 50, 20]
    assert len(fake.repo(REPO).check_runs[0]["annotations"]) == 120


async def test_a_429_then_success_posts_once(fake, herald) -> None:
    run = seed_run(fake)
    fake.fail("POST", CHECKS, status=429, headers={"retry-after": "1"},
              body={"message": "API rate limit exceeded for installation."})
    await herald.deliver("workflow_run", run_completed(run))
    await herald.work()
    assert [c.fault for c in fake.calls_to("POST", CHECKS)] == [429, None]
    assert len(fake.repo(REPO).check_runs) == 1
    assert len(fake.repo(REPO).comments[PR]) == 1


async def test_a_fork_pr_gets_its_comment(fake, herald) -> None:
    fork = payload("workflow_run_completed_fork.json")["workflow_run"]
    run = seed_run(fake, **{k: fork[k] for k in ("id", "head_sha", "head_repository",
                                                 "pull_requests", "run_attempt", "html_url")})
    # GitHub lists the fork's PR among the open PRs, not under the commit.
    fake.add_pull(REPO, 491, fork["head_sha"], listed_for_commit=False)
    await herald.deliver("workflow_run", run_completed(run, "workflow_run_completed_fork.json"))
    await herald.work()
    [comment] = fake.repo(REPO).comments[491]
    assert "Failed Tests" in comment["body"]
    assert fake.repo(REPO).check_runs[0]["head_sha"] == fork["head_sha"]


async def test_a_job_that_gives_up_leaves_a_check_run_saying_why(
    redis_url, tmp_path, fake
) -> None:
    run = seed_run(fake)
    fake.fail("GET", rf"/repos/heraldhq/herald/actions/runs/{run['id']}", times=6, status=502)
    async with start(redis_url, tmp_path, fake, HERALD_JOB_MAX_TRIES="2") as herald:
        await herald.deliver("workflow_run", run_completed(run))
        await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "neutral"
    assert check["output"]["title"] == "Herald could not report on this run"
    assert "GitHub answered 502" in check["output"]["summary"]
    assert "Re-run the CI run" in check["output"]["summary"]


async def test_another_apps_check_suite_gets_no_error_check_run(fake, herald) -> None:
    # Its id is no Actions run id: asking for the run would 404 and leave a "could not
    # report" check run on every commit some other CI app reports on.
    body = copy.deepcopy(payload("check_suite_completed.json"))
    body["repository"]["full_name"] = REPO
    assert (await herald.deliver("check_suite", body)).status_code == 202
    await herald.work()
    assert fake.repo(REPO).check_runs == []
    assert not [c for c in fake.calls if "/actions/" in c.path or "/check-runs" in c.path]


async def test_retest_from_a_trusted_user_reruns_the_failed_jobs(fake, herald) -> None:
    failed = seed_run(fake, id=5001, workflow_id=1, name="CI", conclusion="failure")
    seed_run(fake, id=5002, workflow_id=2, name="Lint", conclusion="success")
    fake.grant(REPO, "octo-dev", "write", "maintain")
    await herald.deliver("issue_comment", retest_comment())
    await herald.work()
    repo = fake.repo(REPO)
    assert repo.reactions == [{"comment_id": 2498765432, "content": "eyes"}]
    assert repo.reruns == [(5001, "rerun-failed-jobs")]
    assert repo.comments[PR][-1]["body"] == (
        f"{reply_marker('2498765432')}\n"
        f"@octo-dev re-running the failed jobs of [CI]({failed['html_url']})."
    )
    # The 👀 reaction went out before the rerun was asked for.
    order = [c.path for c in fake.calls if c.method == "POST" and "token" not in c.path]
    assert order.index(f"/repos/{REPO}/issues/comments/2498765432/reactions") < order.index(
        f"/repos/{REPO}/actions/runs/5001/rerun-failed-jobs")


async def test_retest_from_an_untrusted_user_is_politely_refused(fake, herald) -> None:
    seed_run(fake, id=5001, conclusion="failure")
    fake.grant(REPO, "drive-by", "read")
    await herald.deliver("issue_comment", retest_comment(author="drive-by"))
    await herald.work()
    repo = fake.repo(REPO)
    assert repo.reruns == []
    assert repo.reactions == []
    assert repo.comments[PR][-1]["body"] == (
        f"{reply_marker('2498765432')}\n"
        f"@drive-by sorry, I can't retest on your request. {RETEST_POLICY}"
    )


async def test_the_re_run_button_on_our_check_reruns_that_run(fake, herald) -> None:
    run = seed_run(fake)
    event = copy.deepcopy(payload("check_run_requested_action.json"))
    event["check_run"]["external_id"] = f"{run['id']}/2"
    await herald.deliver("check_run", event)
    await herald.work()
    assert fake.repo(REPO).reruns == [(run["id"], "rerun-failed-jobs")]


async def test_an_unsafe_archive_member_is_refused_and_named_in_the_report(fake, herald):
    run = workflow_run()
    fake.add_run(REPO, run, artifacts={"test-results": zipped({
        "ok.xml": b'<testsuite name="s"><testcase name="t"/></testsuite>',
        "../../etc/evil.xml": b"<testsuite/>",
    })})
    fake.add_pull(REPO, PR, SHA)
    await herald.deliver("workflow_run", run_completed(run))
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert "refused: '..' in path" in check["output"]["summary"]
    # The refused member might have held the failure: not a plain success.
    assert check["output"]["title"] == "1 test passed in 0.0s; 1 input could not be read"
    assert check["conclusion"] == "neutral"


async def test_storage_on_a_private_address_that_is_not_allowed_is_never_contacted(
    fake, redis_url, tmp_path
) -> None:
    """An artifact redirect to loopback (a hostile or misconfigured storage hop) is
    refused before connecting; the report names the artifact and why, not a green run."""
    run = seed_run(fake, failures=1, passes=1)
    async with start(redis_url, tmp_path, fake, HERALD_EGRESS_ALLOWED_HOSTS="") as herald:
        await herald.deliver("workflow_run", run_completed(run))
        await herald.work()
    assert fake.blob_requests == []
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] != "success"
    text = check["output"]["summary"] + (check["output"].get("text") or "")
    assert "test-results" in text and "refused to connect to 127.0.0.1" in text


async def test_a_job_that_gave_up_without_app_credentials_reports_once_they_are_set(
    fake, redis_url: str, tmp_path: Path
) -> None:
    run = seed_run(fake, failures=1, passes=1)
    body = run_completed(run)
    unconfigured = {"HERALD_GITHUB_APP_ID": "", "HERALD_GITHUB_PRIVATE_KEY": ""}
    async with start(redis_url, tmp_path, fake, **unconfigured) as herald:
        assert (await herald.deliver("workflow_run", body, delivery="d-nc")).status_code == 202
        await herald.work()
        assert fake.repo(REPO).check_runs == []  # nothing could be published

    # The operator sets the App's credentials, restarts Herald and redelivers the webhook.
    async with start(redis_url, tmp_path, fake) as herald:
        again = await herald.deliver("workflow_run", body, delivery="d-nc")
        await herald.work()
        after = await herald.deliver("workflow_run", body, delivery="d-nc")

    assert (again.status_code, again.json()["status"]) == (202, "queued")
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    # Once reported, a further copy is a duplicate again.
    assert (after.status_code, after.json()["status"]) == (200, "duplicate")
