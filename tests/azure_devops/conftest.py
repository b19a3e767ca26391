"""Fixtures: the fake Azure DevOps organization served on loopback, and a client of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from bot.settings import ProviderSettings
from providers.azure_devops.client import AzureDevOpsClient, create_client
from tests.azure_devops.world import ORG, build_world
from tests.fakes.azure_devops import TOKEN, FakeAzureDevOps
from tests.fakes.faults import serve


@pytest.fixture
def azure() -> Iterator[FakeAzureDevOps]:
    fake = FakeAzureDevOps()
    with serve(fake) as url:
        fake.url = f"{url}/{ORG}"
        build_world(fake)
        yield fake


def azure_settings(url: str, **env: str) -> ProviderSettings:
    values = {"HERALD_AZURE_DEVOPS_URL": url, "HERALD_AZURE_DEVOPS_TOKEN": TOKEN,
              "HERALD_AZURE_DEVOPS_TIMEOUT": "2"}
    values.update({f"HERALD_{key.upper()}": value for key, value in env.items()})
    return ProviderSettings("azure-devops", values)


ClientFactory = Callable[..., AzureDevOpsClient]


@pytest.fixture
async def make_client(azure: FakeAzureDevOps) -> AsyncIterator[ClientFactory]:
    async with httpx.AsyncClient() as http:

        def make(**env: Any) -> AzureDevOpsClient:
            return create_client(azure_settings(azure.url, **env), http)

        yield make


@pytest.fixture
def client(make_client: ClientFactory) -> AzureDevOpsClient:
    return make_client()
