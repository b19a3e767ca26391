"""A TeamCity build of code on GitLab: the real GitLab client (against the fake GitLab) is
the forge, as it is for GitLab's own pipelines. The report handler publishes the commit
status and the sticky merge request note once across retries, and `/retest` on the merge
request queues the TeamCity build again, for Developers only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, Comment, Event, RunRef
from bot.settings import ProviderSettings
from handlers.report import report
from handlers.retest import retest
from providers.gitlab import client as gitlab_client
from providers.teamcity import client as teamcity_client
from tests.fakes import context
from tests.fakes.ci_world import (
    DEVELOPER_ID,
    GITLAB_PROJECT,
    GUEST_ID,
    gitlab_env,
    gitlab_project,
)
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.teamcity import FakeTeamCity
from tests.teamcity.conftest import BUILD_ID, BUILD_TYPE, INSTANCE, PR, ROOT, SHA, teamcity_env
from tests.teamcity.world import TeamCityAndForge, notification, ref_of, seed_build

PROJECT, PATH = GITLAB_PROJECT, "acme/storefront"


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with gitlab_project(PATH, PR, SHA, "coupons") as fake:
        yield fake


@pytest.fixture
async def world(teamcity: FakeTeamCity, gitlab: FakeGitLab, http: httpx.AsyncClient
                ) -> AsyncIterator[tuple[dict[str, str], TeamCityAndForge]]:
    env = {**teamcity_env(teamcity), **gitlab_env(gitlab)}
    forge = gitlab_client.create_client(ProviderSettings("gitlab", env), None)
    ci = teamcity_client.create_client(ProviderSettings("teamcity", env), http)
    yield env, TeamCityAndForge(ci, "gitlab", forge)
    await forge.aclose()


def gitlab_build(teamcity: FakeTeamCity, gitlab: FakeGitLab) -> RunRef:
    teamcity.add_root(INSTANCE, ROOT, f"{gitlab.url}/{PATH}.git")
    seed_build(teamcity, branch="merge-requests/118")
    return ref_of(notification(branchName="merge-requests/118"))


def finished(ref: RunRef) -> Event:
    return Event(provider="teamcity", name=BUILD_COMPLETED, native_name="BUILD_FINISHED",
                 delivery_id="d-1", repo=ref.repo, run=ref)


async def test_a_teamcity_build_on_gitlab_gets_one_status_and_one_note(
    teamcity, gitlab, world, redis
) -> None:
    env, clients = world
    ref = gitlab_build(teamcity, gitlab)
    for job_try in (1, 2):  # a retried job, or a redelivery: nothing twice
        ctx = context(finished(ref), redis, environ=env, job_try=job_try)
        ctx.clients = clients
        await report(ctx)

    [status] = gitlab.statuses[(PROJECT, SHA)]
    assert status["status"] == "failed"
    assert status["description"].startswith("2 failed, 2 passed, 1 skipped")
    assert status["target_url"] == f"{teamcity.url}/buildConfiguration/{BUILD_TYPE}/{BUILD_ID}"
    [note] = gitlab.our_notes(PROJECT, PR)
    assert "appliesCoupon" in note["body"]
    assert gitlab.quick_actions == [] and gitlab.mentions == []


@pytest.mark.parametrize(("user_id", "author", "queued"), [
    (DEVELOPER_ID, "mkovac", 1),
    (GUEST_ID, "visitor", 0),
])
async def test_retest_on_the_merge_request_queues_the_teamcity_build_for_developers_only(
    teamcity, gitlab, world, redis, user_id, author, queued
) -> None:
    env, clients = world
    ref = gitlab_build(teamcity, gitlab)
    ctx = context(finished(ref), redis, environ=env)
    ctx.clients = clients
    await report(ctx)

    posted = gitlab.add_note(PROJECT, PR, "/retest", author_id=user_id, username=author)
    comment = Comment(id=str(posted["id"]), body="/retest", author=author, change=PR,
                      extra={"project_id": PROJECT, "user_id": user_id, "last_commit_sha": SHA})
    ctx = context(Event(provider="gitlab", name=COMMENT_CREATED, native_name="note",
                        delivery_id="d-2", repo=PATH, comment=comment), redis, environ=env)
    ctx.clients = clients
    await retest(ctx)
    assert len(teamcity.queued) == queued
    if queued:
        assert teamcity.queued[0]["branchName"] == "merge-requests/118"
        assert teamcity.queued[0]["comment"]["text"].startswith(
            "Herald: /retest by @mkovac on gitlab [")
    reply = gitlab.notes[(PROJECT, PR)][-1]["body"]
    assert ("re-running the failed jobs of" in reply) == bool(queued)
