"""A CI system that is not GitHub reports on GitHub: a CircleCI-shaped run, read from its
CI source, is published by the real GitHub client (against the fake GitHub) as a check run
and a sticky comment of its own, beside the Actions report on the same commit, and `/retest`
on the pull request reruns its failed work too, because Herald recorded reporting it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.events import BUILD_COMPLETED, CHECK_REREQUESTED, COMMENT_CREATED, Event, RunRef
from bot.ports import Build, Change, ReportOrigin
from handlers.report import report
from handlers.retest import rerequested, retest
from providers.github.client import GitHubClient
from tests.fakes import FakeCI, context, publish, zipped
from tests.fakes.github import FakeGitHub
from tests.github.conftest import REPO, github_env
from tests.github.world import PR, SHA, comment, junit, ref_for, seed_run

PIPELINE = "5f3c1b7e-8a2d-4c11-9e0a-2b6d7f4c9a10"  # CircleCI ids are UUIDs, not numbers


class CircleCI(FakeCI):
    """A CircleCI-shaped CI source: its runs build code on GitHub, and it knows the change
    only from the pipeline's VCS data, with no installation id and no PR number."""

    async def get_build(self, ref: RunRef) -> Build:
        self.calls.append(("get_build", ref.run_id))
        return Build(ref=ref, status="failed", failed=True, name="build-and-test",
                     url=f"https://app.circleci.com/pipelines/gh/{REPO}/42", sha=SHA)

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        return Change(forge="github", repo=REPO, sha=SHA, numbers=(PR,))

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        return ReportOrigin(run=ref, name="build-and-test", sequence=42, number="42",
                            url=build.url if build else None, failed=True)


class UnknownChange(CircleCI):
    """A CI system that knows the commit but not its pull requests (CircleCI's webhooks
    carry no PR number): the forge finds them."""

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        return Change(forge="github", repo=REPO, sha=SHA, numbers_known=False)


class PushBuild(CircleCI):
    """A CI system that says there is no pull request (a push to a branch)."""

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        return Change(forge="github", repo=REPO, sha=SHA)


def circleci_ref() -> RunRef:
    return RunRef(provider="circleci", repo=f"gh/{REPO}", run_id=PIPELINE, sha=SHA,
                  extra={"name": "build-and-test"})


class Clients:
    """The worker's clients: CircleCI as CI source, the real GitHub client as forge."""

    def __init__(self, circleci: CircleCI, github: GitHubClient) -> None:
        self.sources: dict[str, Any] = {"circleci": circleci, "github": github}
        self.github = github

    def source(self, provider: str) -> Any:
        return self.sources[provider]

    def forge(self, provider: str) -> Any:
        assert provider == "github"
        return self.github


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def report_event(ref: RunRef) -> Event:
    return Event(provider=ref.provider, name=BUILD_COMPLETED, native_name="workflow-completed",
                 delivery_id="delivery-1", repo=ref.repo, run=ref)


async def report_circleci(fake: FakeGitHub, client: GitHubClient, redis: Any,
                          kind: type[CircleCI] = CircleCI) -> CircleCI:
    circleci = kind(artifacts={"test-results": zipped({"junit.xml": junit(failures=2)})})
    ctx = context(report_event(circleci_ref()), redis, environ=github_env(fake))
    ctx.clients = Clients(circleci, client)
    await report(ctx)
    return circleci


async def test_a_circleci_run_gets_its_own_check_run_on_the_github_commit(
    fake: FakeGitHub, client: GitHubClient, redis: Any
) -> None:
    seed_run(fake)

    await report_circleci(fake, client, redis)
    # CircleCI knows no installation id: the App's installation is found by the repository.
    assert fake.calls_to("GET", f"/repos/{REPO}/installation")
    (check,) = fake.repo(REPO).check_runs
    assert check["name"] == "Herald (circleci: build-and-test)"
    assert check["external_id"] == f"circleci:{PIPELINE}/1"
    assert check["head_sha"] == SHA and check["conclusion"] == "failure"
    assert check["details_url"] == f"https://app.circleci.com/pipelines/gh/{REPO}/42"
    # GitHub's button would come back to Herald as an Actions rerun: not offered.
    assert not check.get("actions")
    (posted,) = fake.repo(REPO).comments[PR]
    assert posted["body"].startswith("<!-- herald:report:circleci%3Abuild%2Dand%2Dtest run=42.1")


async def test_the_pull_request_is_found_from_the_commit_when_the_ci_cannot_say(
    fake: FakeGitHub, client: GitHubClient, redis: Any
) -> None:
    seed_run(fake)
    fake.add_pull(REPO, 77, "0" * 40)  # open, but its head is another commit
    await report_circleci(fake, client, redis, UnknownChange)
    assert fake.calls_to("GET", rf"/repos/{REPO}/commits/{SHA}/pulls")
    (posted,) = fake.repo(REPO).comments[PR]
    assert posted["body"].startswith("<!-- herald:report:circleci")
    assert not fake.repo(REPO).comments.get(77)


async def test_a_ci_that_says_there_is_no_pull_request_gets_only_its_check_run(
    fake: FakeGitHub, client: GitHubClient, redis: Any
) -> None:
    seed_run(fake)
    await report_circleci(fake, client, redis, PushBuild)
    assert not fake.calls_to("GET", rf"/repos/{REPO}/commits/{SHA}/pulls")
    assert len(fake.repo(REPO).check_runs) == 1
    assert not fake.repo(REPO).comments.get(PR)


async def test_actions_and_circleci_reports_on_one_commit_never_overwrite_each_other(
    fake: FakeGitHub, client: GitHubClient, redis: Any
) -> None:
    run = seed_run(fake)
    ref = ref_for(fake, run)
    await publish(client, ref, _failing(), await client.get_build(ref))
    await report_circleci(fake, client, redis)
    await publish(client, ref, _failing(), await client.get_build(ref))  # Actions again
    names = sorted(c["name"] for c in fake.repo(REPO).check_runs)
    assert names == [f"Herald ({run['name']})", "Herald (circleci: build-and-test)"]
    markers = sorted(c["body"].split(" run=")[0] for c in fake.repo(REPO).comments[PR])
    assert markers == ["<!-- herald:report:CI", "<!-- herald:report:circleci%3Abuild%2Dand%2Dtest"]


async def test_retest_on_the_pull_request_reruns_circleci_s_failed_work_too(
    fake: FakeGitHub, client: GitHubClient, redis: Any
) -> None:
    actions = seed_run(fake, conclusion="failure")
    circleci = await report_circleci(fake, client, redis)
    circleci.failed = [circleci_ref()]
    fake.grant(REPO, "octo-dev", "write")
    event = Event(provider="github", name=COMMENT_CREATED, native_name="issue_comment",
                  delivery_id="delivery-2", repo=REPO, comment=comment(fake))
    ctx = context(event, redis, environ=github_env(fake))
    ctx.clients = Clients(circleci, client)
    await retest(ctx)
    assert ("latest_failed_runs", SHA) in circleci.calls
    assert ("rerun", PIPELINE, True) in circleci.calls
    # The Actions run of the same commit is GitHub's to rerun, as before, in the same reply.
    assert fake.calls_to("POST", rf".*/actions/runs/{actions['id']}/rerun-failed-jobs")
    (reply,) = [c for c in fake.repo(REPO).comments[PR] if "herald:reply" in c["body"]]
    assert "build-and-test" in reply["body"] and actions["name"] in reply["body"]


def _failing() -> Any:
    from bot.results.model import Status, Suite, TestCase, TestRun

    return TestRun(id="r", suites=[Suite("pytest", [
        TestCase(name="test_bad", classname="tests.test_calc", status=Status.FAILED,
                 message="boom"),
    ])])


def rerun_pressed(external_id: str) -> Event:
    """GitHub's "Re-run" on one of Herald's check runs, as the webhook parser reads it."""
    ref = RunRef(provider="github", repo=REPO, run_id=external_id, sha=SHA,
                 extra={"external_id": external_id, "action": "rerequested"})
    return Event(provider="github", name=CHECK_REREQUESTED, native_name="check_run",
                 delivery_id="delivery-3", repo=REPO, run=ref)


async def test_github_s_rerun_button_on_a_circleci_check_reruns_in_circleci(
    fake: FakeGitHub, client: GitHubClient, redis: Any
) -> None:
    seed_run(fake)
    circleci = await report_circleci(fake, client, redis)
    (check,) = fake.repo(REPO).check_runs
    ctx = context(rerun_pressed(check["external_id"]), redis, environ=github_env(fake))
    ctx.clients = Clients(circleci, client)
    await rerequested(ctx)
    assert ("rerun", PIPELINE, True) in circleci.calls
    assert not fake.calls_to("POST", r".*/actions/runs/.*/rerun")


async def test_the_rerun_button_reruns_only_what_herald_recorded_reporting(
    fake: FakeGitHub, client: GitHubClient, redis: Any
) -> None:
    seed_run(fake)
    circleci = await report_circleci(fake, client, redis)
    # An external id naming a run Herald never reported on this commit: nothing runs.
    ctx = context(rerun_pressed("circleci:some-other-workflow/1"), redis,
                  environ=github_env(fake))
    ctx.clients = Clients(circleci, client)
    await rerequested(ctx)
    assert not [call for call in circleci.calls if call[0] == "rerun"]


async def test_the_rerun_button_on_a_commits_one_report_reruns_what_failed_everywhere(
    fake: FakeGitHub, client: GitHubClient, redis: Any
) -> None:
    actions = seed_run(fake, conclusion="failure")
    circleci = await report_circleci(fake, client, redis)
    circleci.failed = [circleci_ref()]
    ctx = context(rerun_pressed(f"commit:{SHA[:12]}/1"), redis, environ=github_env(fake))
    ctx.clients = Clients(circleci, client)

    await rerequested(ctx)
    await rerequested(ctx)  # the job retried: each run is rerun once

    assert [c for c in circleci.calls if c[0] == "rerun"] == [("rerun", PIPELINE, True)]
    assert len(fake.calls_to("POST", rf".*/actions/runs/{actions['id']}/rerun-failed-jobs")) == 1


MAIN_SHA = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"


class MainBuild(CircleCI):
    """The same CircleCI workflow on `main`, a commit before the pull request's."""

    async def get_build(self, ref: RunRef) -> Build:
        return Build(ref=ref, status="failed", failed=True, name="build-and-test",
                     url=f"https://app.circleci.com/pipelines/gh/{REPO}/41", sha=MAIN_SHA)

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        return Change(forge="github", repo=REPO, sha=MAIN_SHA)

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        return ReportOrigin(run=ref, name="build-and-test", sequence=41, number="41",
                            failed=True)


async def test_a_ci_that_names_no_target_branch_is_compared_with_the_one_github_names(
    fake: FakeGitHub, client: GitHubClient, redis: Any, redis_url: str
) -> None:
    from bot.history import Retention
    from bot.history.redis import RedisHistory

    fake.add_pull(REPO, PR, SHA, base="main", base_sha=MAIN_SHA)
    history = RedisHistory(aioredis.Redis.from_url(redis_url), Retention())
    main_ref = RunRef(provider="circleci", repo=f"gh/{REPO}", run_id="main-41", sha=MAIN_SHA,
                      branch="main", extra={"name": "build-and-test"})
    pull_ref = RunRef(provider="circleci", repo=f"gh/{REPO}", run_id=PIPELINE, sha=SHA,
                      branch="feature/cart", extra={"name": "build-and-test"})
    for ci, ref, failures in ((MainBuild, main_ref, 1), (CircleCI, pull_ref, 2)):
        source = ci(artifacts={"test-results": zipped({"junit.xml": junit(failures=failures)})})
        ctx = context(report_event(ref), redis, environ=github_env(fake))
        ctx.clients = Clients(source, client)
        ctx.history = history
        await report(ctx)
    await history.close()

    [report_comment] = [c for c in fake.repo(REPO).comments[PR] if "herald:report" in c["body"]]
    body = report_comment["body"]
    assert "Compared with main" in body
    assert "1 new failure, 1 failing on main already" in body
