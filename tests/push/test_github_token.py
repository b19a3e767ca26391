"""The GitHub client's plain-token credential: what push mode authenticates with."""

from __future__ import annotations

import httpx
import pytest

from bot.ports import NotConfigured
from bot.settings import ProviderSettings
from providers.github.auth import AppCredentials, TokenCredentials
from providers.github.client import create_client
from tests.github.conftest import app_key


def client_for(env: dict[str, str]) -> object:
    return create_client(ProviderSettings("github", env), httpx.AsyncClient()).credentials


def test_a_token_alone_makes_a_token_client_credited_to_github_actions() -> None:
    credentials = client_for({"HERALD_GITHUB_TOKEN": "ghs_abc "})
    assert isinstance(credentials, TokenCredentials)
    assert credentials.token.reveal() == "ghs_abc"
    assert credentials.login == "github-actions[bot]"


def test_the_app_wins_over_a_token_when_both_are_set() -> None:
    private, _public = app_key()
    credentials = client_for({"HERALD_GITHUB_APP_ID": "4242", "HERALD_GITHUB_PRIVATE_KEY": private,
                              "HERALD_GITHUB_TOKEN": "ghs_abc"})
    assert isinstance(credentials, AppCredentials)


def test_neither_names_both_ways_to_configure() -> None:
    with pytest.raises(NotConfigured, match=r"HERALD_GITHUB_APP_ID.*HERALD_GITHUB_TOKEN"):
        client_for({})


def test_the_token_is_not_in_the_credentials_repr() -> None:
    assert "ghs_abc" not in repr(client_for({"HERALD_GITHUB_TOKEN": "ghs_abc"}))
