"""providers.azure_devops.api: where identities live, and what an answer says of limits."""

from __future__ import annotations

import pytest

from providers.azure_devops.api import identity_url, rate_limit
from providers.http import RateLimit

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("organization", "identities"), [
    ("https://dev.azure.com/contoso", "https://vssps.dev.azure.com/contoso"),
    ("https://tfs.example.com/tfs/DefaultCollection",
     "https://tfs.example.com/tfs/DefaultCollection"),
])
def test_identities_are_on_vssps_for_the_service_and_at_home_on_a_server(
    organization: str, identities: str,
) -> None:
    assert identity_url(organization) == identities


@pytest.mark.parametrize(("status", "headers", "expected"), [
    (429, {"retry-after": "12"}, RateLimit(refused=True, wait=12.0)),
    (429, {"x-ratelimit-reset": str(int(NOW) + 30)}, RateLimit(refused=True, wait=30.0)),
    (429, {}, RateLimit(refused=True, wait=None)),
    # A delayed request: answered, and the next one should wait.
    (200, {"retry-after": "3", "x-ratelimit-delay": "1.5"}, RateLimit(wait=3.0)),
    (200, {"x-ratelimit-remaining": "10"}, RateLimit()),
])
def test_what_an_answer_says_about_the_rate_limit(
    status: int, headers: dict[str, str], expected: RateLimit,
) -> None:
    assert rate_limit(status, headers, b"", NOW) == expected
