"""What the tests of a CI source that reports on another system's forge (Jenkins,
Travis CI, TeamCity) share: the fake GitHub its builds' code lives on, a capture server standing for
any other host, the test's HTTP client and Redis, and the worker's `ctx.clients` with that
CI source and one forge's real client. A provider's conftest imports the fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Final

import httpx
import pytest
import redis.asyncio as aioredis

from tests.fakes import github_comments
from tests.fakes import gitlab as gitlab_fake
from tests.fakes import herald as harness
from tests.fakes.github import FakeGitHub, running_fake, serve
from tests.fakes.jenkins import CaptureServer
from tests.github.conftest import app_key


@pytest.fixture
async def fake() -> AsyncIterator[FakeGitHub]:
    """The fake GitHub the builds' code lives on (the forge Herald reports to)."""
    private, public = app_key()
    async with running_fake(FakeGitHub(private_key=private, public_key=public)) as running:
        yield running


@pytest.fixture
async def capture() -> AsyncIterator[CaptureServer]:
    server = CaptureServer()
    async with serve(server) as url:
        server.url = url.replace("127.0.0.1", "localhost")
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


class SourceAndForge:
    """`ctx.clients` of a worker with one CI source and one forge's real client."""

    def __init__(self, source_name: str, source: Any, forge_name: str, forge: Any) -> None:
        self.by_name = {source_name: source, forge_name: forge}
        self.forge_name = forge_name

    def source(self, provider: str) -> Any:
        return self.by_name[provider]

    def forge(self, provider: str) -> Any:
        assert provider == self.forge_name
        return self.by_name[provider]


class HeraldOnGitHub(harness.Herald):
    """Herald in an end-to-end test, with GitHub's signed `issue_comment` webhook."""

    async def comment(self, body: dict[str, Any]) -> httpx.Response:
        return await github_comments.deliver(self.http, body)

    async def github(self, event: str, body: dict[str, Any]) -> httpx.Response:
        """A signed GitHub App delivery of `event` (`check_run`: the Re-run button)."""
        return await github_comments.deliver(self.http, body, event_name=event)


#: GitHub's `issue_comment` webhook of an author writing `/retest` on a pull request.
retest_comment = github_comments.issue_comment
#: As if the dedupe window had passed: a resend is taken again.
forget_deliveries = harness.forget_deliveries


#: The GitLab project a build's code lives on, and who may (and may not) retest there.
GITLAB_PROJECT: Final = 48213
DEVELOPER_ID, GUEST_ID = 4127, 5001


@contextmanager
def gitlab_project(path: str, number: int, sha: str, branch: str
                   ) -> Iterator[gitlab_fake.FakeGitLab]:
    """The fake GitLab serving project `path` with merge request `number` at `sha`, a
    Developer (`mkovac`) and a Guest (`visitor`)."""
    fake = gitlab_fake.FakeGitLab()
    with gitlab_fake.serve(fake) as url:
        fake.url = url
        fake.add_project(GITLAB_PROJECT, path)
        fake.add_merge_request(GITLAB_PROJECT, number, sha=sha, source_branch=branch)
        fake.add_member(GITLAB_PROJECT, DEVELOPER_ID, "mkovac", gitlab_fake.DEVELOPER)
        fake.add_member(GITLAB_PROJECT, GUEST_ID, "visitor", gitlab_fake.GUEST)
        yield fake


def gitlab_env(fake: gitlab_fake.FakeGitLab) -> dict[str, str]:
    """The settings of the real GitLab client against `fake`."""
    return {"HERALD_GITLAB_URL": fake.url, "HERALD_GITLAB_TOKEN": gitlab_fake.TOKEN,
            "HERALD_GITLAB_TIMEOUT": "2"}
