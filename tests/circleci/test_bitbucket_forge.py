"""A CircleCI workflow of a Bitbucket Cloud repository: the real Bitbucket client (against
the fake Bitbucket) is the forge, as it is for Bitbucket's own pipelines: the commit
status, the Code Insights report and the sticky pull request comment, once across
retries."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bot.settings import ProviderSettings
from handlers.report import report
from providers.bitbucket import client as bitbucket_client
from providers.circleci import client as circleci_client
from tests.bitbucket.world import REPO, build_world
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
from tests.fakes.bitbucket import TOKEN, FakeBitbucket, serve


@pytest.fixture
def bitbucket() -> Iterator[FakeBitbucket]:
    fake = FakeBitbucket()
    with serve(fake) as url:
        fake.url = url
        build_world(fake)
        fake.repos[REPO].commits.append(SHA)  # the workflow's commit is on Bitbucket
        fake.add_pullrequest(REPO, PR, sha=SHA, branch="fix/rounding")
        yield fake


async def test_a_circleci_workflow_on_bitbucket_gets_one_status_report_and_comment(
    circleci, bitbucket, http: httpx.AsyncClient, redis
) -> None:
    env = {**circleci_env(circleci), "HERALD_BITBUCKET_API_URL": f"{bitbucket.url}/2.0",
           "HERALD_BITBUCKET_TOKEN": TOKEN, "HERALD_BITBUCKET_TIMEOUT": "2"}
    remote = f"{bitbucket.url}/{REPO}"
    vcs = {"provider_name": "bitbucket", "origin_repository_url": remote,
           "target_repository_url": remote, "revision": SHA, "branch": "fix/rounding"}
    seed(circleci, vcs=vcs)
    body = webhook()
    body["project"]["slug"] = "bb/acme-eng/checkout-service"
    body["pipeline"]["vcs"] = vcs
    ref = ref_of(body)
    clients = CircleCIAndForge(
        circleci_client.create_client(ProviderSettings("circleci", env), http), "bitbucket",
        bitbucket_client.create_client(ProviderSettings("bitbucket", env), http))
    for job_try in (1, 2):  # a retried job, or a redelivery: nothing twice
        ctx = context(completed(ref), redis, environ=env, job_try=job_try)
        ctx.clients = clients
        await report(ctx)

    repo = bitbucket.repos[REPO]
    [status] = [s for (sha, _), s in repo.statuses.items() if sha == SHA]
    assert status["name"] == f"Herald (circleci: {NAME})"
    assert status["state"] == "FAILED"
    assert status["url"].endswith(f"/workflows/{WORKFLOW}")
    assert len([r for (sha, _), r in repo.reports.items() if sha == SHA]) == 1
    [comment] = bitbucket.our_comments(REPO, PR)
    assert "settles" in comment["content"]["raw"]
