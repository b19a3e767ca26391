"""A Travis CI build of code on GitLab (`vcs_type: GitlabRepository`): the real GitLab
client (against the fake GitLab) is the forge. The report handler publishes the commit
status and the sticky merge request note once across retries, and `/retest` on the merge
request restarts the failed Travis job, for Developers only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, Comment, Event
from bot.settings import ProviderSettings
from handlers.report import report
from handlers.retest import retest
from providers.gitlab import client as gitlab_client
from providers.travis import client as travis_client
from tests.fakes import context
from tests.fakes.ci_world import (
    DEVELOPER_ID,
    GUEST_ID,
    gitlab_env,
    gitlab_project,
)
from tests.fakes.ci_world import GITLAB_PROJECT as PROJECT
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.travis import FakeTravis
from tests.travis.conftest import travis_env
from tests.travis.world import (
    HEAD,
    LEG_311,
    PR,
    REPO,
    REPO_ID,
    TravisAndForge,
    notification,
    ref_of,
    seed_build,
)


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with gitlab_project(REPO, PR, HEAD, "offline-batches") as fake:
        yield fake


@pytest.fixture
async def world(travis: FakeTravis, gitlab: FakeGitLab, http: httpx.AsyncClient
                ) -> AsyncIterator[tuple[dict[str, str], TravisAndForge]]:
    env = {**travis_env(travis, HERALD_TRAVIS_LOG_SUMMARY="pytest"), **gitlab_env(gitlab)}
    forge = gitlab_client.create_client(ProviderSettings("gitlab", env), None)
    ci = travis_client.create_client(ProviderSettings("travis", env), http)
    travis.add_repo(REPO_ID, REPO, "GitlabRepository")
    seed_build(travis)
    yield env, TravisAndForge(ci, "gitlab", forge)
    await forge.aclose()


def build_event() -> Event:
    ref = ref_of(notification())
    return Event(provider="travis", name=BUILD_COMPLETED, native_name="build:failed",
                 delivery_id="d-1", repo=ref.repo, run=ref)


async def test_a_travis_build_on_gitlab_gets_one_status_and_one_note(
    travis, gitlab, world, redis
) -> None:
    env, clients = world
    for job_try in (1, 2):  # a retried job, or a redelivery: nothing twice
        ctx = context(build_event(), redis, environ=env, job_try=job_try)
        ctx.clients = clients
        await report(ctx)

    [status] = gitlab.statuses[(PROJECT, HEAD)]
    assert status["status"] == "failed"
    assert status["description"].startswith("2 failed, 8 passed")
    assert status["target_url"].endswith(f"/{REPO}/builds/271834455")
    [note] = gitlab.our_notes(PROJECT, PR)
    assert "expected 3 batches, got 2" in note["body"]
    assert gitlab.quick_actions == [] and gitlab.mentions == []


@pytest.mark.parametrize(("user_id", "author", "restarts"), [
    (DEVELOPER_ID, "mkovac", [LEG_311]),
    (GUEST_ID, "visitor", []),
])
async def test_retest_on_the_merge_request_restarts_the_failed_job_for_developers_only(
    travis, gitlab, world, redis, user_id, author, restarts
) -> None:
    env, clients = world
    ctx = context(build_event(), redis, environ=env)
    ctx.clients = clients
    await report(ctx)

    posted = gitlab.add_note(PROJECT, PR, "/retest", author_id=user_id, username=author)
    comment = Comment(id=str(posted["id"]), body="/retest", author=author, change=PR,
                      extra={"project_id": PROJECT, "user_id": user_id,
                             "last_commit_sha": HEAD})
    ctx = context(Event(provider="gitlab", name=COMMENT_CREATED, native_name="note",
                        delivery_id="d-2", repo=REPO, comment=comment), redis, environ=env)
    ctx.clients = clients
    await retest(ctx)
    assert travis.restarts == restarts
    reply = gitlab.notes[(PROJECT, PR)][-1]["body"]
    assert ("re-running the failed jobs of" in reply) == bool(restarts)
