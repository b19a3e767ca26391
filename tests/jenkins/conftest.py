"""Fixtures: the fake Jenkins on loopback, a capture server standing for any other host,
and the real Jenkins client configured for the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.settings import ProviderSettings
from providers.jenkins.client import JenkinsClient, create_client
from tests.fakes.ci_world import capture, fake, http, redis  # noqa: F401 (fixtures)
from tests.fakes.github import serve
from tests.fakes.jenkins import TOKEN, USER, FakeJenkins

#: The job of a multibranch pull request in nested folders, as in the webhook fixture.
JOB = "acme/inventory/PR-64"
REMOTE = "https://github.com/acme/inventory.git"
SHA = "6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b"
PR = 64


@pytest.fixture
async def jenkins() -> AsyncIterator[FakeJenkins]:
    server = FakeJenkins()
    async with serve(server) as url:
        server.url = url
        yield server
        server.release()  # hanging requests let go before the server stops


def jenkins_env(server: FakeJenkins, **extra: str) -> dict[str, str]:
    return {
        "HERALD_JENKINS_URL": server.url,
        "HERALD_JENKINS_USER": USER,
        "HERALD_JENKINS_TOKEN": TOKEN,
        "HERALD_JENKINS_TIMEOUT": "2",
        "HERALD_JENKINS_WEBHOOK_SECRET": "jenkins-notify-token",
        **extra,
    }


@pytest.fixture
def make_client(
    jenkins: FakeJenkins, http: httpx.AsyncClient  # noqa: F811 (the fixture)
) -> Callable[..., JenkinsClient]:
    def make(**extra: Any) -> JenkinsClient:
        return create_client(ProviderSettings("jenkins", jenkins_env(jenkins, **extra)), http)

    return make


@pytest.fixture
def client(make_client: Callable[..., JenkinsClient]) -> JenkinsClient:
    return make_client()

