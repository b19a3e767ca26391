"""Fixtures: the fake GitLab served on loopback, object storage on another port, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from bot.settings import ProviderSettings
from providers.gitlab.client import GitLabClient, create_client
from tests.fakes.gitlab import TOKEN, FakeGitLab, ObjectStorage, serve
from tests.gitlab.world import Jobs, build_world


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    fake = FakeGitLab()
    with serve(fake) as url:
        fake.url = url
        yield fake


@pytest.fixture
def world(gitlab: FakeGitLab) -> Jobs:
    return build_world(gitlab)


@pytest.fixture
def storage(gitlab: FakeGitLab) -> Iterator[ObjectStorage]:
    """Object storage on another origin (localhost, another port) that artifact downloads
    are redirected to."""
    store = ObjectStorage(gitlab)
    with serve(store) as url:
        gitlab.redirect_artifacts_to = url.replace("127.0.0.1", "localhost")
        yield store


def gitlab_settings(url: str, **env: str) -> ProviderSettings:
    values = {"HERALD_GITLAB_URL": url, "HERALD_GITLAB_TOKEN": TOKEN,
              "HERALD_GITLAB_TIMEOUT": "2"}
    values.update({f"HERALD_{key.upper()}": value for key, value in env.items()})
    return ProviderSettings("gitlab", values)


ClientFactory = Callable[..., GitLabClient]


@pytest.fixture
async def make_client(gitlab: FakeGitLab) -> AsyncIterator[ClientFactory]:
    made: list[GitLabClient] = []

    def make(**env: Any) -> GitLabClient:
        client = create_client(gitlab_settings(gitlab.url, **env), None)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
def client(make_client: ClientFactory, world: Jobs) -> GitLabClient:
    return make_client()
