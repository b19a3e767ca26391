"""A TeamCity build of code on Bitbucket Cloud: the real Bitbucket client (against the fake
Bitbucket) is the forge, as it is for Bitbucket's own pipelines: the commit status, the
Code Insights report and the sticky pull request comment, once across retries."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bot.events import BUILD_COMPLETED, Event
from bot.settings import ProviderSettings
from handlers.report import report
from providers.bitbucket import client as bitbucket_client
from providers.teamcity import client as teamcity_client
from tests.bitbucket.world import REPO, build_world
from tests.fakes import context
from tests.fakes.bitbucket import TOKEN, FakeBitbucket, serve
from tests.teamcity.conftest import BUILD_ID, BUILD_TYPE, INSTANCE, PR, ROOT, SHA, teamcity_env
from tests.teamcity.world import TeamCityAndForge, notification, ref_of, seed_build


@pytest.fixture
def bitbucket() -> Iterator[FakeBitbucket]:
    fake = FakeBitbucket()
    with serve(fake) as url:
        fake.url = url
        build_world(fake)
        fake.repos[REPO].commits.append(SHA)  # the TeamCity build's commit is on Bitbucket
        fake.add_pullrequest(REPO, PR, sha=SHA, branch="coupons")
        yield fake


async def test_a_teamcity_build_on_bitbucket_gets_one_status_report_and_comment(
    teamcity, bitbucket, http: httpx.AsyncClient, redis
) -> None:
    env = {**teamcity_env(teamcity), "HERALD_BITBUCKET_API_URL": f"{bitbucket.url}/2.0",
           "HERALD_BITBUCKET_TOKEN": TOKEN, "HERALD_BITBUCKET_TIMEOUT": "2"}
    teamcity.add_root(INSTANCE, ROOT, f"{bitbucket.url}/{REPO}.git")
    seed_build(teamcity)
    ref = ref_of(notification())
    clients = TeamCityAndForge(
        teamcity_client.create_client(ProviderSettings("teamcity", env), http), "bitbucket",
        bitbucket_client.create_client(ProviderSettings("bitbucket", env), http))
    event = Event(provider="teamcity", name=BUILD_COMPLETED, native_name="BUILD_FINISHED",
                  delivery_id="d-1", repo=ref.repo, run=ref)
    for job_try in (1, 2):  # a retried job, or a redelivery: nothing twice
        ctx = context(event, redis, environ=env, job_try=job_try)
        ctx.clients = clients
        await report(ctx)

    repo = bitbucket.repos[REPO]
    [status] = [s for (sha, _), s in repo.statuses.items() if sha == SHA]
    assert status["name"] == "Herald (teamcity: Storefront / Build)"
    assert status["state"] == "FAILED"
    assert status["url"] == f"{teamcity.url}/buildConfiguration/{BUILD_TYPE}/{BUILD_ID}"
    assert len([r for (sha, _), r in repo.reports.items() if sha == SHA]) == 1
    [comment] = bitbucket.our_comments(REPO, PR)
    assert "appliesCoupon" in comment["content"]["raw"]
