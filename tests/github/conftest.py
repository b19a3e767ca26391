"""Fixtures for the GitHub App tests: a test App key, the fake GitHub on loopback, a client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from bot.settings import ProviderSettings
from providers.github.client import GitHubClient, create_client
from tests.fakes.github import FakeGitHub, generate_app_key, running_fake

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks" / "github"
REPO = "heraldhq/herald"
WEBHOOK_SECRET = "webhook-secret-for-tests"


@cache
def app_key() -> tuple[str, bytes]:
    return generate_app_key()


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@pytest.fixture
async def fake() -> AsyncIterator[FakeGitHub]:
    private, public = app_key()
    async with running_fake(FakeGitHub(private_key=private, public_key=public)) as running:
        yield running


def github_env(fake: FakeGitHub, **extra: str) -> dict[str, str]:
    return {
        "HERALD_GITHUB_APP_ID": str(fake.app_id),
        "HERALD_GITHUB_PRIVATE_KEY": fake.private_key,
        "HERALD_GITHUB_API_URL": fake.base_url,
        "HERALD_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HERALD_GITHUB_REQUEST_TIMEOUT": "2",
        # GitHub redirects artifact downloads to its storage, here a second loopback
        # server: loopback is refused unless allowed, as an internal store would be.
        "HERALD_EGRESS_ALLOWED_HOSTS": urlsplit(fake.blob_url).netloc,
        **extra,
    }


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # Like the worker's: no redirects followed behind our back.
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client


@pytest.fixture
def make_client(fake: FakeGitHub, http: httpx.AsyncClient):
    def make(**extra: str) -> GitHubClient:
        return create_client(ProviderSettings("github", github_env(fake, **extra)), http)

    return make


@pytest.fixture
def client(make_client) -> GitHubClient:
    return make_client()
