"""Fixtures: the fake Jenkins on loopback, a capture server standing for any other host,
and the real Jenkins client configured for the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from bot.settings import ProviderSettings
from providers.jenkins.client import JenkinsClient, create_client
from tests.fakes.github import FakeGitHub, running_fake, serve
from tests.fakes.jenkins import TOKEN, USER, CaptureServer, FakeJenkins
from tests.github.conftest import app_key

#: The job of a multibranch pull request in nested folders, as in the webhook fixture.
JOB = "acme/inventory/PR-64"
REMOTE = "https://github.com/acme/inventory.git"
SHA = "6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b"
PR = 64


@pytest.fixture
async def jenkins() -> AsyncIterator[FakeJenkins]:
    fake = FakeJenkins()
    async with serve(fake) as url:
        fake.url = url
        yield fake
        fake.release()  # hanging requests let go before the server stops


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


def jenkins_env(fake: FakeJenkins, **extra: str) -> dict[str, str]:
    return {
        "HERALD_JENKINS_URL": fake.url,
        "HERALD_JENKINS_USER": USER,
        "HERALD_JENKINS_TOKEN": TOKEN,
        "HERALD_JENKINS_TIMEOUT": "2",
        "HERALD_JENKINS_WEBHOOK_SECRET": "jenkins-notify-token",
        **extra,
    }


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


@pytest.fixture
def make_client(jenkins: FakeJenkins, http: httpx.AsyncClient) -> Callable[..., JenkinsClient]:
    def make(**extra: Any) -> JenkinsClient:
        return create_client(ProviderSettings("jenkins", jenkins_env(jenkins, **extra)), http)

    return make


@pytest.fixture
def client(make_client: Callable[..., JenkinsClient]) -> JenkinsClient:
    return make_client()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
