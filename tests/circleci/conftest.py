"""Fixtures: the fake CircleCI on loopback, a capture server standing for any other host,
the fake GitHub the workflows' code lives on, and the real CircleCI client configured for
the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.settings import ProviderSettings
from providers.circleci.client import CircleCIClient, create_client
from tests.fakes.circleci import TOKEN, FakeCircleCI
from tests.fakes.github import serve
from tests.jenkins import conftest as jenkins

SECRET = "circleci-webhook-secret"

# The same GitHub forge, capture server, HTTP client and Redis fixtures as the Jenkins tests.
fake, capture, http, redis = jenkins.fake, jenkins.capture, jenkins.http, jenkins.redis


@pytest.fixture
async def circleci() -> AsyncIterator[FakeCircleCI]:
    api = FakeCircleCI()
    async with serve(api) as url:
        api.served = url
        yield api
        api.release()  # hanging requests let go before the server stops


def circleci_env(api: FakeCircleCI, **extra: str) -> dict[str, str]:
    return {
        "HERALD_CIRCLECI_API_URL": api.url,
        "HERALD_CIRCLECI_TOKEN": TOKEN,
        "HERALD_CIRCLECI_TIMEOUT": "2",
        "HERALD_CIRCLECI_ARTIFACT_HOSTS": api.artifact_host,
        "HERALD_CIRCLECI_WEBHOOK_SECRET": SECRET,
        # The fake's artifact host is loopback, as a CircleCI server's may be private.
        "HERALD_EGRESS_ALLOWED_HOSTS": api.artifact_host,
        **extra,
    }


@pytest.fixture
def make_client(circleci: FakeCircleCI, http: httpx.AsyncClient
                ) -> Callable[..., CircleCIClient]:
    def make(**extra: Any) -> CircleCIClient:
        return create_client(ProviderSettings("circleci", circleci_env(circleci, **extra)), http)

    return make


@pytest.fixture
def client(make_client: Callable[..., CircleCIClient]) -> CircleCIClient:
    return make_client()
