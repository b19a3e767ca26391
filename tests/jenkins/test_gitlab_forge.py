"""A Jenkins build of code on GitLab: the real GitLab client (against the fake GitLab) is the
forge, as it is for GitLab's own pipelines. The report handler publishes the commit status
and the sticky merge request note once across retries, and `/retest` on the merge request
builds the Jenkins job again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, Comment, Event, RunRef
from bot.settings import ProviderSettings
from handlers.report import report
from handlers.retest import retest
from providers.gitlab import client as gitlab_client
from providers.jenkins import client as jenkins_client
from tests.fakes import context
from tests.fakes.ci_world import (
    DEVELOPER_ID,
    GITLAB_PROJECT,
    GUEST_ID,
    gitlab_env,
    gitlab_project,
)
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.jenkins import FakeJenkins
from tests.jenkins.conftest import JOB, PR, SHA, jenkins_env
from tests.jenkins.world import JenkinsAndForge, notification, ref_of, seed_build

PROJECT, PATH = GITLAB_PROJECT, "acme/inventory"


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with gitlab_project(PATH, PR, SHA, "stock-ledger") as fake:
        yield fake


@pytest.fixture
async def world(jenkins: FakeJenkins, gitlab: FakeGitLab, http: httpx.AsyncClient
                ) -> AsyncIterator[tuple[dict[str, str], JenkinsAndForge]]:
    env = {**jenkins_env(jenkins), **gitlab_env(gitlab)}
    forge = gitlab_client.create_client(ProviderSettings("gitlab", env), None)
    ci = jenkins_client.create_client(ProviderSettings("jenkins", env), http)
    yield env, JenkinsAndForge(ci, "gitlab", forge)
    await forge.aclose()


def gitlab_build(jenkins: FakeJenkins, gitlab: FakeGitLab) -> RunRef:
    remote = f"{gitlab.url}/{PATH}.git"
    seed_build(jenkins, checkouts=[(remote, SHA)])
    return ref_of(notification(scm={"url": remote, "branch": "PR-64", "commit": SHA}))


async def test_a_jenkins_build_on_gitlab_gets_one_status_and_one_note(
    jenkins, gitlab, world, redis
) -> None:
    env, clients = world
    ref = gitlab_build(jenkins, gitlab)
    event = Event(provider="jenkins", name=BUILD_COMPLETED, native_name="build:FINALIZED",
                  delivery_id="d-1", repo=ref.repo, run=ref)
    for job_try in (1, 2):  # a retried job, or a redelivery: nothing twice
        ctx = context(event, redis, environ=env, job_try=job_try)
        ctx.clients = clients
        await report(ctx)

    [status] = gitlab.statuses[(PROJECT, SHA)]
    assert status["status"] == "failed"
    assert status["description"].startswith("2 failed, 2 passed, 1 skipped")
    assert status["target_url"] == f"{jenkins.url}/job/acme/job/inventory/job/PR-64/17/"
    [note] = gitlab.our_notes(PROJECT, PR)
    assert "rejectsNegativeStock" in note["body"]
    assert gitlab.quick_actions == [] and gitlab.mentions == []


@pytest.mark.parametrize(("user_id", "author", "rebuilds"), [
    (DEVELOPER_ID, "mkovac", [(JOB, {})]),
    (GUEST_ID, "visitor", []),
])
async def test_retest_on_the_merge_request_builds_the_jenkins_job_for_developers_only(
    jenkins, gitlab, world, redis, user_id, author, rebuilds
) -> None:
    env, clients = world
    ref = gitlab_build(jenkins, gitlab)
    ctx = context(Event(provider="jenkins", name=BUILD_COMPLETED, native_name="build:FINALIZED",
                        delivery_id="d-1", repo=ref.repo, run=ref), redis, environ=env)
    ctx.clients = clients
    await report(ctx)

    posted = gitlab.add_note(PROJECT, PR, "/retest", author_id=user_id, username=author)
    comment = Comment(id=str(posted["id"]), body="/retest", author=author, change=PR,
                      extra={"project_id": PROJECT, "user_id": user_id, "last_commit_sha": SHA})
    ctx = context(Event(provider="gitlab", name=COMMENT_CREATED, native_name="note",
                        delivery_id="d-2", repo=PATH, comment=comment), redis, environ=env)
    ctx.clients = clients
    await retest(ctx)
    assert jenkins.rebuilds == rebuilds
    reply = gitlab.notes[(PROJECT, PR)][-1]["body"]
    assert ("re-running the failed jobs of" in reply) == bool(rebuilds)
