"""Fixtures: the fake Travis CI API on loopback (its `/config` publishing the key the
notifications are signed with), a report host, a capture server standing for any other
host, and the real Travis client configured for the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.egress import EgressPolicy, guarded_transport
from bot.settings import ProviderSettings, Settings
from providers.travis.client import TravisClient, create_client
from tests.fakes.github import serve
from tests.fakes.travis import TOKEN, FakeTravis, ReportHost

# The GitHub the builds' code lives on, the capture server standing for any other host,
# an HTTP client and Redis: the same as Jenkins' tests use.
from tests.jenkins.conftest import capture, fake, http, redis  # noqa: F401
from tests.providers.senders import travis_key_pair


@pytest.fixture
async def travis() -> AsyncIterator[FakeTravis]:
    _, public = travis_key_pair(0)
    api = FakeTravis(public_key=public)
    async with serve(api) as url:
        api.url = url
        yield api
        api.release()


@pytest.fixture
async def reports() -> AsyncIterator[ReportHost]:
    host = ReportHost()
    async with serve(host) as url:
        host.url = url
        yield host


def travis_env(api: FakeTravis, **extra: str) -> dict[str, str]:
    return {
        "HERALD_TRAVIS_API_URL": api.url,
        "HERALD_TRAVIS_TOKEN": TOKEN,
        "HERALD_TRAVIS_TIMEOUT": "2",
        **extra,
    }


@pytest.fixture
async def make_client(travis: FakeTravis) -> AsyncIterator[Callable[..., TravisClient]]:
    """The client over an HTTP client guarded as the worker's is (`bot.egress`): private
    addresses are refused unless the settings trust them."""
    made: list[httpx.AsyncClient] = []

    def make(**extra: Any) -> TravisClient:
        env = travis_env(travis, **extra)
        policy = EgressPolicy.from_settings(Settings.from_env(env))
        guarded = httpx.AsyncClient(transport=guarded_transport(policy), follow_redirects=False)
        made.append(guarded)
        return create_client(ProviderSettings("travis", env), guarded)

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
def client(make_client: Callable[..., TravisClient]) -> TravisClient:
    return make_client()
