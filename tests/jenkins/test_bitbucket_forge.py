"""A Jenkins build of code on Bitbucket Cloud: the real Bitbucket client (against the fake
Bitbucket) is the forge, as it is for Bitbucket's own pipelines: the commit status, the
Code Insights report and the sticky pull request comment, once across retries."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, Comment, Event
from bot.settings import ProviderSettings
from handlers.report import report
from handlers.retest import retest
from providers.bitbucket import client as bitbucket_client
from providers.jenkins import client as jenkins_client
from tests.bitbucket.world import READER_ID, READER_NAME, REPO, WRITER_ID, WRITER_NAME, build_world
from tests.fakes import context
from tests.fakes.bitbucket import TOKEN, FakeBitbucket, serve
from tests.jenkins.conftest import JOB, PR, SHA, jenkins_env
from tests.jenkins.world import JenkinsAndForge, notification, ref_of, seed_build


@pytest.fixture
def bitbucket() -> Iterator[FakeBitbucket]:
    fake = FakeBitbucket()
    with serve(fake) as url:
        fake.url = url
        build_world(fake)
        fake.repos[REPO].commits.append(SHA)  # the Jenkins build's commit is on Bitbucket
        fake.add_pullrequest(REPO, PR, sha=SHA, branch="stock-ledger")
        yield fake


def world(jenkins, bitbucket, http: httpx.AsyncClient
          ) -> tuple[dict[str, str], JenkinsAndForge, Event]:
    """The settings, `ctx.clients` and notification of a Jenkins build on Bitbucket."""
    env = {**jenkins_env(jenkins), "HERALD_BITBUCKET_API_URL": f"{bitbucket.url}/2.0",
           "HERALD_BITBUCKET_TOKEN": TOKEN, "HERALD_BITBUCKET_TIMEOUT": "2"}
    remote = f"{bitbucket.url}/{REPO}.git"
    seed_build(jenkins, checkouts=[(remote, SHA)])
    ref = ref_of(notification(scm={"url": remote, "branch": "PR-64", "commit": SHA}))
    clients = JenkinsAndForge(
        jenkins_client.create_client(ProviderSettings("jenkins", env), http), "bitbucket",
        bitbucket_client.create_client(ProviderSettings("bitbucket", env), http))
    event = Event(provider="jenkins", name=BUILD_COMPLETED, native_name="build:FINALIZED",
                  delivery_id="d-1", repo=ref.repo, run=ref)
    return env, clients, event


async def test_a_jenkins_build_on_bitbucket_gets_one_status_report_and_comment(
    jenkins, bitbucket, http: httpx.AsyncClient, redis
) -> None:
    env, clients, event = world(jenkins, bitbucket, http)
    for job_try in (1, 2):  # a retried job, or a redelivery: nothing twice
        ctx = context(event, redis, environ=env, job_try=job_try)
        ctx.clients = clients
        await report(ctx)

    repo = bitbucket.repos[REPO]
    [status] = [s for (sha, _), s in repo.statuses.items() if sha == SHA]
    assert status["name"] == f"Herald (jenkins: {JOB})"
    assert status["state"] == "FAILED"
    assert status["url"] == f"{jenkins.url}/job/acme/job/inventory/job/PR-64/17/"
    assert len([r for (sha, _), r in repo.reports.items() if sha == SHA]) == 1
    [comment] = bitbucket.our_comments(REPO, PR)
    assert "rejectsNegativeStock" in comment["content"]["raw"]


@pytest.mark.parametrize(("account", "author", "rebuilds"), [
    (WRITER_ID, WRITER_NAME, [(JOB, {})]),
    (READER_ID, READER_NAME, []),
])
async def test_retest_on_the_pull_request_builds_the_jenkins_job_for_writers_only(
    jenkins, bitbucket, http: httpx.AsyncClient, redis, account, author, rebuilds
) -> None:
    env, clients, event = world(jenkins, bitbucket, http)
    ctx = context(event, redis, environ=env)
    ctx.clients = clients
    await report(ctx)

    asked = bitbucket.add_comment(REPO, PR, "/retest", bitbucket.users[account])
    comment = Comment(id=str(asked["id"]), body="/retest", author=author, change=PR,
                      extra={"account_id": account})
    for delivery in ("d-2", "d-2"):  # a redelivered comment reruns nothing twice
        ctx = context(Event(provider="bitbucket", name=COMMENT_CREATED,
                            native_name="pullrequest:comment_created", delivery_id=delivery,
                            repo=REPO, comment=comment), redis, environ=env)
        ctx.clients = clients
        await retest(ctx)

    assert jenkins.rebuilds == rebuilds
    [reply] = [c for c in bitbucket.our_comments(REPO, PR) if c.get("parent")]
    text = reply["content"]["raw"]
    # The reply says what was rerun, and where: not in Bitbucket Pipelines but Jenkins.
    assert ("re-running the failed jobs of" in text and text.endswith(") on Jenkins.")
            ) == bool(rebuilds)
