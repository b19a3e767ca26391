"""Fixtures: the fake TeamCity on loopback, a capture server standing for any other host,
and the real TeamCity client configured for the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from bot.settings import ProviderSettings
from providers.teamcity.client import TeamCityClient, create_client
from tests.fakes.ci_world import capture, fake, http, redis  # noqa: F401 (fixtures)
from tests.fakes.github import serve
from tests.fakes.teamcity import TOKEN, FakeTeamCity

BUILD_ID = 204118
BUILD_TYPE = "Storefront_Build"
INSTANCE, ROOT = "1201", "Storefront_GitHub"
#: The VCS root's URL as TeamCity keeps it (scp-like, as the webhook fixture names it).
REMOTE = "git@github.com:acme/storefront.git"
REPO = "acme/storefront"
SHA = "d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5"
PR = 118
SECRET = "herald:teamcity-webhook-password"


@pytest.fixture
async def teamcity() -> AsyncIterator[FakeTeamCity]:
    server = FakeTeamCity()
    async with serve(server) as url:
        server.url = url
        server.add_root(INSTANCE, ROOT, REMOTE)
        yield server
        server.release()  # hanging requests let go before the server stops


def teamcity_env(server: FakeTeamCity, **extra: str) -> dict[str, str]:
    return {
        "HERALD_TEAMCITY_URL": server.url,
        "HERALD_TEAMCITY_TOKEN": TOKEN,
        "HERALD_TEAMCITY_TIMEOUT": "2",
        "HERALD_TEAMCITY_WEBHOOK_SECRET": SECRET,
        **extra,
    }


@pytest.fixture
def make_client(
    teamcity: FakeTeamCity, http: httpx.AsyncClient  # noqa: F811 (the fixture)
) -> Callable[..., TeamCityClient]:
    def make(**extra: Any) -> TeamCityClient:
        return create_client(ProviderSettings("teamcity", teamcity_env(teamcity, **extra)),
                             http)

    return make


@pytest.fixture
def client(make_client: Callable[..., TeamCityClient]) -> TeamCityClient:
    return make_client()

