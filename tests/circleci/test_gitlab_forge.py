"""A CircleCI workflow of a GitLab project: the real GitLab client (against the fake
GitLab) is the forge, as it is for GitLab's own pipelines. CircleCI's GitLab projects
describe the commit in the pipeline's `trigger_parameters` (no `vcs`); the report is the
commit status and the sticky merge request note, once across retries, and `/retest` on
the merge request reruns the workflow from failed for Developers only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bot.events import COMMENT_CREATED, Comment, Event, RunRef
from bot.settings import ProviderSettings
from handlers.report import report
from handlers.retest import retest
from providers.circleci import client as circleci_client
from providers.gitlab import client as gitlab_client
from tests.circleci.conftest import circleci_env
from tests.circleci.world import (
    NAME,
    PR,
    SHA,
    WORKFLOW,
    CircleCIAndForge,
    completed,
    ref_of,
    seed,
    webhook,
)
from tests.fakes import context
from tests.fakes.circleci import FakeCircleCI
from tests.fakes.gitlab import DEVELOPER, GUEST, TOKEN, FakeGitLab, serve

PROJECT, PATH = 48213, "acme-fin/ledger"
DEVELOPER_ID, GUEST_ID = 4127, 5001
SLUG = "circleci/f22b6566-597d-46d5-ba74-99ef5bb3d85c/84996744-a854-4f5e-aea3-04e2851dc1d2"


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    fake = FakeGitLab()
    with serve(fake) as url:
        fake.url = url
        fake.add_project(PROJECT, PATH)
        fake.add_merge_request(PROJECT, PR, sha=SHA, source_branch="fix/rounding")
        fake.add_member(PROJECT, DEVELOPER_ID, "mkovac", DEVELOPER)
        fake.add_member(PROJECT, GUEST_ID, "visitor", GUEST)
        yield fake


@pytest.fixture
async def world(circleci: FakeCircleCI, gitlab: FakeGitLab, http: httpx.AsyncClient
                ) -> AsyncIterator[tuple[dict[str, str], CircleCIAndForge]]:
    env = {**circleci_env(circleci), "HERALD_GITLAB_URL": gitlab.url,
           "HERALD_GITLAB_TOKEN": TOKEN, "HERALD_GITLAB_TIMEOUT": "2"}
    forge = gitlab_client.create_client(ProviderSettings("gitlab", env), None)
    ci = circleci_client.create_client(ProviderSettings("circleci", env), http)
    yield env, CircleCIAndForge(ci, "gitlab", forge)
    await forge.aclose()


def gitlab_workflow(circleci: FakeCircleCI, gitlab: FakeGitLab) -> RunRef:
    circleci.add_pipeline("1285fe1f-d3a6-44fc-8886-8979558254c4", number=1285, slug=SLUG,
                          trigger_parameters={
                              "gitlab": {"web_url": f"{gitlab.url}/{PATH}", "checkout_sha": SHA},
                              "git": {"checkout_sha": SHA, "branch": "fix/rounding"}})
    seed(circleci)
    body = webhook()
    body["project"]["slug"] = SLUG
    del body["pipeline"]["vcs"]
    body["pipeline"]["trigger_parameters"]["git"] = {"checkout_sha": SHA}
    return ref_of(body)


async def test_a_circleci_workflow_on_gitlab_gets_one_status_and_one_note(
    circleci, gitlab, world, redis
) -> None:
    env, clients = world
    ref = gitlab_workflow(circleci, gitlab)
    for job_try in (1, 2):  # a retried job, or a redelivery: nothing twice
        ctx = context(completed(ref), redis, environ=env, job_try=job_try)
        ctx.clients = clients
        await report(ctx)

    [status] = gitlab.statuses[(PROJECT, SHA)]
    assert status["status"] == "failed"
    assert status["name"] == f"herald (circleci: {NAME})"  # as the GitLab forge names another CI
    assert status["description"].startswith("2 failed, 2 passed, 1 skipped")
    assert status["target_url"].endswith(f"/workflows/{WORKFLOW}")
    [note] = gitlab.our_notes(PROJECT, PR)
    assert "settles" in note["body"]
    assert gitlab.quick_actions == [] and gitlab.mentions == []


@pytest.mark.parametrize(("user_id", "author", "reruns"), [
    (DEVELOPER_ID, "mkovac", [(WORKFLOW, {"from_failed": True})]),
    (GUEST_ID, "visitor", []),
])
async def test_retest_on_the_merge_request_reruns_the_workflow_for_developers_only(
    circleci, gitlab, world, redis, user_id, author, reruns
) -> None:
    env, clients = world
    ref = gitlab_workflow(circleci, gitlab)
    ctx = context(completed(ref), redis, environ=env)
    ctx.clients = clients
    await report(ctx)

    posted = gitlab.add_note(PROJECT, PR, "/retest", author_id=user_id, username=author)
    comment = Comment(id=str(posted["id"]), body="/retest", author=author, change=PR,
                      extra={"project_id": PROJECT, "user_id": user_id, "last_commit_sha": SHA})
    ctx = context(Event(provider="gitlab", name=COMMENT_CREATED, native_name="note",
                        delivery_id="d-2", repo=PATH, comment=comment), redis, environ=env)
    ctx.clients = clients
    await retest(ctx)
    assert circleci.reruns == reruns
    reply = gitlab.notes[(PROJECT, PR)][-1]["body"]
    assert ("re-running the failed jobs of" in reply) == bool(reruns)
