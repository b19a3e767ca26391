"""Jenkins end to end: a Jenkins notification → the app → real Redis → the ARQ worker
(burst) → the report handler → the Jenkins client against the fake Jenkins → the GitHub
client against the fake GitHub, and back as one check run and one sticky PR comment; then
a `/retest` comment on that pull request → one rebuild on the fake Jenkins."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bot.queue import DEDUPE_PREFIX
from bot.reports.markdown import md_link
from providers.github.client import RETEST_POLICY
from providers.github.publish import reply_marker
from tests.fakes import herald as harness
from tests.fakes.github import FakeGitHub
from tests.fakes.jenkins import FakeJenkins
from tests.github.conftest import github_env
from tests.jenkins.conftest import JOB, PR, REMOTE, SHA, jenkins_env
from tests.jenkins.world import SECRET, failing_report, notification, seed_build
from tests.reports.checks import outside_code_blocks

pytestmark = pytest.mark.e2e

REPO = "acme/inventory"
CHECK_NAME = f"Herald (jenkins: {JOB})"
BUILD = r"/job/acme/job/inventory/job/PR-64/17/api/json"


class Herald(harness.OnGitHub):
    async def notify(self, body: dict[str, Any], *, token: str = SECRET) -> httpx.Response:
        """What the Jenkinsfile step of docs/jenkins.md sends."""
        return await self.http.post("/webhooks/jenkins", content=json.dumps(body).encode(),
                                    headers={"content-type": "application/json",
                                             "x-herald-token": token})


def start(redis_url: str, tmp_path: Path, github: FakeGitHub, jenkins: FakeJenkins,
          **env: str) -> contextlib.AbstractAsyncContextManager[Herald]:
    return harness.running(Herald, redis_url, tmp_path,
                           {**github_env(github), **jenkins_env(jenkins), **env})


@pytest.fixture
async def herald(redis_url: str, tmp_path: Path, fake: FakeGitHub,
                 jenkins: FakeJenkins) -> AsyncIterator[Herald]:
    fake.add_pull(REPO, PR, SHA)
    async with start(redis_url, tmp_path, fake, jenkins) as running:
        yield running


def retest_comment(fake: FakeGitHub, author: str, comment_id: int = 2498765432,
                   body: str = "/retest") -> dict[str, Any]:
    return harness.pull_request_comment(fake, REPO, PR, author, comment_id, body)


def forget_deliveries(redis_url: str) -> None:
    """As if the dedupe window had passed: a resend is taken again."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{DEDUPE_PREFIX}*"):
        client.delete(key)
    client.close()


async def test_a_finished_build_is_reported_once_across_redeliveries(
    fake, jenkins, herald, redis_url
) -> None:
    seed_build(jenkins)
    body = notification()
    first = await herald.notify(body)
    assert first.status_code == 202
    again = await herald.notify(body)  # the plugin's retry of the same notification
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    await herald.work()
    # A resend after the dedupe window runs the job again: it must update, never add.
    forget_deliveries(redis_url)
    assert (await herald.notify(body)).status_code == 202
    await herald.work()

    [check] = fake.repo(REPO).check_runs
    assert check["name"] == CHECK_NAME
    assert (check["head_sha"], check["conclusion"]) == (SHA, "failure")
    assert check["output"]["title"].startswith("2 failed, 2 passed, 1 skipped")
    build_page = f"{jenkins.url}/job/acme/job/inventory/job/PR-64/17/"
    assert check["details_url"] == build_page
    [comment] = fake.repo(REPO).comments[PR]
    assert comment["body"].startswith("<!-- herald:report:jenkins%3Aacme%2Finventory%2FPR%2D64"
                                      " run=17.1 -->")
    assert "rejectsNegativeStock" in comment["body"]
    assert f"{build_page}testReport/" in comment["body"]
    assert len(fake.calls_to("POST", f"/repos/{REPO}/check-runs")) == 1
    assert len(fake.calls_to("POST", f"/repos/{REPO}/issues/{PR}/comments")) == 1
    # Jenkins' own surface, second: the build's description, written once.
    assert jenkins.descriptions == [(JOB, 17, check["output"]["title"].join((
        "Herald: ", f" (reported on github {REPO}, pull request {PR})")))]


@pytest.mark.parametrize(("status", "headers"), [(502, {}), (429, {"Retry-After": "1"})])
async def test_a_5xx_or_429_from_jenkins_once_then_one_report(
    fake, jenkins, herald, status, headers
) -> None:
    seed_build(jenkins)
    jenkins.fail("GET", BUILD, status=status, headers=headers)
    await herald.notify(notification())
    await herald.work()
    assert [c.fault for c in jenkins.calls_to("GET", BUILD)] == [status, None]
    assert len(fake.repo(REPO).check_runs) == 1
    assert len(fake.repo(REPO).comments[PR]) == 1


async def test_a_later_build_of_the_job_updates_the_same_check_name_and_comment(
    fake, jenkins, herald
) -> None:
    seed_build(jenkins, 17)
    await herald.notify(notification())
    await herald.work()
    seed_build(jenkins, 18, result="SUCCESS", report=None,
               artifacts={"target/surefire-reports/TEST-a.xml":
                          b'<testsuite name="a"><testcase name="t"/></testsuite>'})
    await herald.notify(notification(number=18, status="SUCCESS", full_url=(
        "https://ci.acme.example/job/acme/job/inventory/job/PR-64/18/")))
    await herald.work()
    # One check run per build (each is a run of its own), one comment for the job.
    assert [c["name"] for c in fake.repo(REPO).check_runs] == [CHECK_NAME, CHECK_NAME]
    [comment] = fake.repo(REPO).comments[PR]
    assert " run=18.1 -->" in comment["body"].splitlines()[0]


async def test_a_wrongly_authenticated_notification_is_refused_and_reads_nothing(
    fake, jenkins, herald
) -> None:
    seed_build(jenkins)
    refused = await herald.notify(notification(), token="guessed")
    assert refused.status_code == 401
    await herald.work()
    assert jenkins.calls == [] and fake.repo(REPO).check_runs == []


async def test_retest_from_a_trusted_user_builds_the_failed_job_once(
    fake, jenkins, herald
) -> None:
    seed_build(jenkins)
    await herald.notify(notification())
    await herald.work()
    fake.grant(REPO, "lena", "write", "maintain")

    await herald.comment(retest_comment(fake, "lena"))
    await herald.work()
    assert jenkins.rebuilds == [(JOB, {})]
    reply = fake.repo(REPO).comments[PR][-1]["body"]
    build_page = f"{jenkins.url}/job/acme/job/inventory/job/PR-64/17/"
    # The job's name is inert in Markdown (`#17` is no issue link): shown as `run_label` does.
    assert reply == (f"{reply_marker('2498765432')}\n@lena re-running the failed jobs of "
                     f"{md_link(f'{JOB} #17', build_page)}.")
    assert fake.repo(REPO).reactions == [{"comment_id": 2498765432, "content": "eyes"}]

    # Another /retest while that rebuild waits in Jenkins' queue asks for nothing more.
    await herald.comment(retest_comment(fake, "lena", comment_id=2498765433))
    await herald.work()
    assert jenkins.rebuilds == [(JOB, {})]
    assert "nothing to retest" in fake.repo(REPO).comments[PR][-1]["body"]


async def test_retest_from_an_untrusted_user_is_politely_refused(fake, jenkins, herald) -> None:
    seed_build(jenkins)
    await herald.notify(notification())
    await herald.work()
    fake.grant(REPO, "drive-by", "read")

    await herald.comment(retest_comment(fake, "drive-by"))
    await herald.work()
    assert jenkins.rebuilds == []
    assert not jenkins.calls_to("POST", r".*/build(WithParameters)?")
    assert fake.repo(REPO).comments[PR][-1]["body"] == (
        f"{reply_marker('2498765432')}\n"
        f"@drive-by sorry, I can't retest on your request. {RETEST_POLICY}"
    )


async def test_test_names_from_the_build_are_inert_on_github(fake, jenkins, herald) -> None:
    from tests.fakes.jenkins import case, junit_report, suite

    hostile = "@everyone <img src=x onerror=alert(1)> closes #123"
    seed_build(jenkins, report=junit_report([suite("com.acme.Evil", [
        case(hostile, "FAILED", details="/retest @maintainers ![x](https://evil.example/x.png)"),
    ])]))
    await herald.notify(notification())
    await herald.work()
    [comment] = fake.repo(REPO).comments[PR]
    # Inside code blocks GitHub renders nothing; everywhere else the names are escaped.
    prose = "\n".join(outside_code_blocks(comment["body"]))
    assert "Evil" in prose  # the hostile case is in the comment, shown
    assert fake.repo(REPO).check_runs[0]["output"]["title"].startswith("1 failed")
    for live in ("@everyone", "@maintainers", "<img", "![x](", "#123"):
        assert live not in prose


async def test_a_build_jenkins_does_not_have_leaves_a_check_run_saying_why(
    fake, jenkins, herald
) -> None:
    jenkins.job(JOB)  # the job exists, build 17 does not (discarded by its log rotation)
    await herald.notify(notification())
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert (check["name"], check["conclusion"]) == (CHECK_NAME, "neutral")
    assert check["output"]["title"] == "Herald could not report on this run"
    assert "Jenkins answered 404" in check["output"]["summary"]


async def test_a_description_of_the_build_s_own_is_kept(fake, jenkins, herald) -> None:
    seed_build(jenkins)["description"] = "Deployed to <b>staging</b>"
    await herald.notify(notification())
    await herald.work()
    assert jenkins.descriptions == []
    assert jenkins.job(JOB).builds[17]["description"] == "Deployed to <b>staging</b>"
    assert len(fake.repo(REPO).check_runs) == 1


async def test_without_run_update_the_report_on_github_stands_alone(
    fake, jenkins, herald
) -> None:
    jenkins.may_describe = False
    seed_build(jenkins)
    await herald.notify(notification())
    await herald.work()
    assert jenkins.calls_to("POST", r".*/17/submitDescription")
    assert jenkins.descriptions == []
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    assert len(fake.repo(REPO).comments[PR]) == 1


async def test_a_plain_job_s_build_is_commented_on_the_pull_request_of_its_commit(
    fake, jenkins, herald
) -> None:
    # Not a multibranch PR job: no CHANGE_ID, no `PR-<n>` name; GitHub knows the PR.
    jenkins.add_build("inventory-ci", 40, checkouts=[(REMOTE, SHA)], report=failing_report())
    body = notification(number=40, full_url="https://ci.acme.example/job/inventory-ci/40/",
                        parameters={})
    body.update(name="inventory-ci", url="job/inventory-ci/")
    await herald.notify(body)
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert check["name"] == "Herald (jenkins: inventory-ci)"
    [comment] = fake.repo(REPO).comments[PR]
    assert "rejectsNegativeStock" in comment["body"]


async def test_urls_a_notification_names_on_other_hosts_see_no_request(
    fake, jenkins, herald, capture
) -> None:
    seed_build(jenkins)
    body = notification(full_url=f"{capture.url}/job/acme/job/inventory/job/PR-64/17/",
                        artifacts={"report.xml": {"archive": f"{capture.url}/report.xml"}})
    body["url"] = f"{capture.url}/job/acme/job/inventory/job/PR-64/"
    await herald.notify(body)
    await herald.work()
    assert capture.requests == []
    [check] = fake.repo(REPO).check_runs
    assert check["details_url"].startswith(jenkins.url)


async def test_an_archived_file_redirected_to_a_private_address_is_never_contacted(
    fake, jenkins, herald, capture
) -> None:
    """A redirect to loopback (a hostile or misconfigured storage hop) is refused before
    connecting; the other file is still read, and the report names the refused one."""
    junit = b'<testsuite name="s"><testcase name="t"/></testsuite>'
    seed_build(jenkins, result="SUCCESS", report=None, artifacts={
        "reports/unit-junit.xml": junit, "reports/it-junit.xml": b""})
    jenkins.redirects[(JOB, 17, "reports/it-junit.xml")] = f"{capture.url}/bucket/it.xml"
    await herald.notify(notification(status="SUCCESS"))
    await herald.work()
    assert capture.requests == []
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "neutral"  # the unread file may have held a failure
    assert check["output"]["title"] == "1 test passed in 0.0s; 1 input could not be read"
    text = check["output"]["summary"] + (check["output"].get("text") or "")
    assert "reports/it-junit.xml" in text and "refused to connect to" in text
