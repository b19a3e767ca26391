"""TeamCity end to end: TeamCity's build-finished webhook → the app → real Redis → the ARQ
worker (burst) → the report handler → the TeamCity client against the fake TeamCity → the
GitHub client against the fake GitHub, and back as one check run and one sticky PR
comment; then a `/retest` comment on that pull request → one queued build on the fake
TeamCity."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.reports.markdown import md_link
from providers.github.client import RETEST_POLICY
from providers.github.publish import reply_marker
from tests.fakes import ci_world as world
from tests.fakes import herald as harness
from tests.fakes.github import FakeGitHub
from tests.fakes.teamcity import FakeTeamCity, occurrence, problem
from tests.github.conftest import github_env
from tests.providers.senders import basic
from tests.reports.checks import outside_code_blocks
from tests.teamcity.conftest import BUILD_ID, BUILD_TYPE, PR, REPO, SECRET, SHA, teamcity_env
from tests.teamcity.world import notification, seed_build

pytestmark = pytest.mark.e2e

CHECK_NAME = "Herald (teamcity: Storefront / Build)"
BUILD = rf"/app/rest/builds/id:{BUILD_ID}"
QUEUE = "/app/rest/buildQueue"


class Herald(world.HeraldOnGitHub):
    async def notify(self, body: dict[str, Any], *, secret: str = SECRET) -> httpx.Response:
        """What TeamCity's own webhooks send (HTTP Basic from the internal parameters)."""
        return await self.http.post("/webhooks/teamcity", content=json.dumps(body).encode(),
                                    headers={"content-type": "application/json",
                                             "authorization": basic(secret.encode())})


def start(redis_url: str, tmp_path: Path, github: FakeGitHub, teamcity: FakeTeamCity,
          **env: str) -> contextlib.AbstractAsyncContextManager[Herald]:
    return harness.running(Herald, redis_url, tmp_path,
                           {**github_env(github), **teamcity_env(teamcity), **env})


@pytest.fixture
async def herald(redis_url: str, tmp_path: Path, fake: FakeGitHub,
                 teamcity: FakeTeamCity) -> AsyncIterator[Herald]:
    fake.add_pull(REPO, PR, SHA)
    async with start(redis_url, tmp_path, fake, teamcity) as running:
        yield running


def retest_comment(fake: FakeGitHub, author: str, comment_id: int = 2498765432
                   ) -> dict[str, Any]:
    return world.retest_comment(fake, REPO, PR, author, comment_id)


async def test_a_finished_build_is_reported_once_across_redeliveries(
    fake, teamcity, herald, redis_url
) -> None:
    seed_build(teamcity)
    body = notification()
    await herald.deliver_three_times(lambda: herald.notify(body), redis_url)

    [check] = fake.repo(REPO).check_runs
    assert check["name"] == CHECK_NAME
    assert (check["head_sha"], check["conclusion"]) == (SHA, "failure")
    assert check["output"]["title"].startswith("2 failed, 2 passed, 1 skipped")
    build_page = f"{teamcity.url}/buildConfiguration/{BUILD_TYPE}/{BUILD_ID}"
    assert check["details_url"] == build_page
    [comment] = fake.repo(REPO).comments[PR]
    assert "appliesCoupon" in comment["body"] and "chargesCard" in comment["body"]
    assert f"{build_page}?buildTab=tests" in comment["body"]
    assert len(fake.calls_to("POST", f"/repos/{REPO}/check-runs")) == 1
    assert len(fake.calls_to("POST", f"/repos/{REPO}/issues/{PR}/comments")) == 1
    # TeamCity's own surface, second: the build's comment, written once.
    assert teamcity.comments == [(BUILD_ID, check["output"]["title"].join((
        "Herald: ", f" (reported on github {REPO}, pull request {PR})")))]


@pytest.mark.parametrize(("status", "headers"), [(502, {}), (429, {"Retry-After": "1"})])
async def test_a_5xx_or_429_from_teamcity_once_then_one_report(
    fake, teamcity, herald, status, headers
) -> None:
    seed_build(teamcity)
    teamcity.fail("GET", BUILD, status=status, headers=headers)
    await herald.notify(notification())
    await herald.work()
    assert [c.fault for c in teamcity.calls_to("GET", BUILD)] == [status, None]
    assert len(fake.repo(REPO).check_runs) == 1
    assert len(fake.repo(REPO).comments[PR]) == 1


async def test_a_build_that_failed_to_compile_is_reported_failed_with_the_problem(
    fake, teamcity, herald
) -> None:
    seed_build(teamcity, tests=[], status_text="Compilation error: src/Cart.kt", problems=[
        problem("TC_COMPILATION_ERROR", "kotlinc", "src/Cart.kt:12: unresolved reference"),
    ])
    await herald.notify(notification(statusText="Compilation error: src/Cart.kt"))
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    [comment] = fake.repo(REPO).comments[PR]
    assert "kotlinc" in comment["body"] and "unresolved reference" in comment["body"]


async def test_each_build_of_a_chain_is_its_own_report(fake, teamcity, herald) -> None:
    seed_build(teamcity)
    seed_build(teamcity, 204119, build_type="Storefront_Integration", name="Integration",
               tests=[occurrence("it: com.acme.Api.answers", "FAILURE", details="503")])
    await herald.notify(notification())
    await herald.notify(notification(id=204119, buildTypeId="Storefront_Integration",
                                     webUrl="https://teamcity.acme.example/x/204119"))
    await herald.work()
    names = sorted(c["name"] for c in fake.repo(REPO).check_runs)
    assert names == [CHECK_NAME, "Herald (teamcity: Storefront / Integration)"]
    assert len(fake.repo(REPO).comments[PR]) == 2


async def test_a_wrongly_authenticated_webhook_is_refused_and_reads_nothing(
    fake, teamcity, herald
) -> None:
    seed_build(teamcity)
    refused = await herald.notify(notification(), secret="herald:guessed")
    assert refused.status_code == 401
    await herald.work()
    assert teamcity.calls == [] and fake.repo(REPO).check_runs == []


async def test_a_tcwebhooks_payload_is_reported_the_same_way(fake, teamcity, herald) -> None:
    seed_build(teamcity)
    build = {"notifyType": "buildFailed", "buildId": str(BUILD_ID), "buildTypeId": BUILD_TYPE,
             "buildExternalTypeId": BUILD_TYPE, "buildName": "Build",
             "projectName": "Storefront", "buildNumber": "512", "buildResult": "failure",
             "branchName": "pull/118",
             "buildStatusUrl": f"https://teamcity.acme.example/viewLog.html?buildId={BUILD_ID}"}
    for notify in ("buildFinished", "buildFailed"):  # both ticked in the hook: one report
        assert (await herald.notify({"build": {**build, "notifyType": notify}})
                ).status_code in (200, 202)
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert check["name"] == CHECK_NAME and check["conclusion"] == "failure"


async def test_retest_from_a_trusted_user_queues_the_failed_build_once(
    fake, teamcity, herald
) -> None:
    seed_build(teamcity)
    await herald.notify(notification())
    await herald.work()
    fake.grant(REPO, "lena", "write", "maintain")

    await herald.comment(retest_comment(fake, "lena"))
    await herald.work()
    [queued] = teamcity.queued
    assert queued["buildType"] == {"id": BUILD_TYPE}
    assert queued["revisions"]["revision"][0]["version"] == SHA
    assert queued["comment"]["text"].startswith("Herald: /retest by @lena on github [")
    reply = fake.repo(REPO).comments[PR][-1]["body"]
    build_page = f"{teamcity.url}/buildConfiguration/{BUILD_TYPE}/{BUILD_ID}"
    # The build's name is inert in Markdown (`#512` is no issue link).
    assert reply == (f"{reply_marker('2498765432')}\n@lena re-running the failed jobs of "
                     f"{md_link('Storefront / Build #512', build_page)} on TeamCity.")

    # Another /retest while that build waits in TeamCity's queue asks for nothing more.
    await herald.comment(retest_comment(fake, "lena", comment_id=2498765433))
    await herald.work()
    assert len(teamcity.calls_to("POST", QUEUE)) == 1
    assert "nothing to retest" in fake.repo(REPO).comments[PR][-1]["body"]


async def test_retest_from_an_untrusted_user_is_politely_refused(fake, teamcity, herald) -> None:
    seed_build(teamcity)
    await herald.notify(notification())
    await herald.work()
    fake.grant(REPO, "drive-by", "read")

    await herald.comment(retest_comment(fake, "drive-by"))
    await herald.work()
    assert teamcity.queued == [] and not teamcity.calls_to("POST", QUEUE)
    assert fake.repo(REPO).comments[PR][-1]["body"] == (
        f"{reply_marker('2498765432')}\n"
        f"@drive-by sorry, I can't retest on your request. {RETEST_POLICY}"
    )


async def test_test_names_from_the_build_are_inert_on_github(fake, teamcity, herald) -> None:
    hostile = "unit: com.acme.Evil.@everyone <img src=x onerror=alert(1)> closes #123"
    seed_build(teamcity, tests=[occurrence(
        hostile, "FAILURE", details="/retest @maintainers ![x](https://evil.example/x.png)")])
    await herald.notify(notification())
    await herald.work()
    [comment] = fake.repo(REPO).comments[PR]
    prose = "\n".join(outside_code_blocks(comment["body"]))
    assert "Evil" in prose
    assert fake.repo(REPO).check_runs[0]["output"]["title"].startswith("1 failed")
    for live in ("@everyone", "@maintainers", "<img", "![x](", "#123"):
        assert live not in prose


async def test_a_build_teamcity_does_not_have_leaves_a_check_run_saying_why(
    fake, teamcity, herald
) -> None:
    await herald.notify(notification())  # build 204118 was cleaned up since
    await herald.work()
    # The webhook's revision names the VCS root, so the answer lands on the commit.
    [check] = fake.repo(REPO).check_runs
    assert (check["name"], check["conclusion"]) == (CHECK_NAME, "neutral")
    assert check["output"]["title"] == "Herald could not report on this run"
    assert "TeamCity answered 404" in check["output"]["summary"]


async def test_without_the_comment_permission_the_report_on_github_stands_alone(
    fake, teamcity, herald
) -> None:
    teamcity.may_comment = False
    seed_build(teamcity)
    await herald.notify(notification())
    await herald.work()
    assert teamcity.calls_to("PUT", rf"{BUILD}/comment") and teamcity.comments == []
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    assert len(fake.repo(REPO).comments[PR]) == 1


async def test_urls_a_webhook_names_on_other_hosts_see_no_request(
    fake, teamcity, herald, capture
) -> None:
    seed_build(teamcity)
    await herald.notify(notification(
        webUrl=f"{capture.url}/buildConfiguration/{BUILD_TYPE}/{BUILD_ID}",
        href=f"{capture.url}/app/rest/builds/id:{BUILD_ID}",
        artifacts={"href": f"{capture.url}/app/rest/builds/id:{BUILD_ID}/artifacts/"}))
    await herald.work()
    assert capture.requests == []
    [check] = fake.repo(REPO).check_runs
    assert check["details_url"].startswith(teamcity.url)


async def test_an_artifact_redirected_to_a_private_address_is_never_contacted(
    fake, teamcity, herald, capture
) -> None:
    """The worker's guarded client: a redirect to loopback is refused before connecting;
    the other file is still read, and the report names the refused one."""
    junit = b'<testsuite name="s"><testcase name="t"/></testsuite>'
    seed_build(teamcity, status="SUCCESS", tests=[], artifacts={
        "reports/unit-junit.xml": junit, "reports/it-junit.xml": b""})
    teamcity.server.redirects[(BUILD_ID, "reports/it-junit.xml")] = f"{capture.url}/it.xml"
    await herald.notify(notification(status="SUCCESS"))
    await herald.work()
    assert capture.requests == []
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "neutral"  # the unread file may have held a failure
    text = check["output"]["summary"] + (check["output"].get("text") or "")
    assert "reports/it-junit.xml" in text and "refused to connect to" in text
