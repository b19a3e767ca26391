"""Fixtures: the fake Bitbucket served on loopback, its world, and a client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from bot.settings import ProviderSettings
from providers.bitbucket.client import BitbucketClient, create_client
from tests.bitbucket.world import build_world
from tests.fakes.bitbucket import TOKEN, FakeBitbucket, serve


@pytest.fixture
def bitbucket() -> Iterator[FakeBitbucket]:
    fake = FakeBitbucket()
    with serve(fake) as url:
        fake.url = url
        build_world(fake)
        yield fake


def bitbucket_settings(url: str, **env: str) -> ProviderSettings:
    values = {"HERALD_BITBUCKET_API_URL": f"{url}/2.0", "HERALD_BITBUCKET_TOKEN": TOKEN,
              "HERALD_BITBUCKET_TIMEOUT": "2"}
    values.update({f"HERALD_BITBUCKET_{key.upper()}": value for key, value in env.items()})
    return ProviderSettings("bitbucket", values)


ClientFactory = Callable[..., BitbucketClient]


@pytest.fixture
async def make_client(bitbucket: FakeBitbucket) -> AsyncIterator[ClientFactory]:
    async with httpx.AsyncClient() as http:

        def make(**env: Any) -> BitbucketClient:
            return create_client(bitbucket_settings(bitbucket.url, **env), http)

        yield make


@pytest.fixture
def client(make_client: ClientFactory) -> BitbucketClient:
    return make_client()
