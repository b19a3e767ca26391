"""Travis CI's webhook public key: configured, or fetched from its API and cached.

The key is configured (`HERALD_TRAVIS_PUBLIC_KEY` or `_FILE`) or fetched from
`HERALD_TRAVIS_API_URL` (default https://api.travis-ci.com, `/config`,
`config.notifications.webhook.public_key`) and cached for an hour. When a delivery fails
verification the ingress calls `refresh`, which refetches the key (at most once a minute,
so forged traffic cannot make Herald hammer the API) in case Travis CI rotated it, and the
delivery is parsed once more. The I/O side of `providers.travis.webhook`, which stays pure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

import httpx

from bot.settings import ProviderSettings
from providers.base import NotConfigured, PermanentError, TransientError
from providers.signatures import dig
from providers.travis.webhook import split_pem

DEFAULT_API_URL: Final = "https://api.travis-ci.com"
KEY_TTL_SECONDS: Final = 3600.0
MIN_REFRESH_INTERVAL_SECONDS: Final = 60.0


class TravisKeys:
    """The keys a Travis CI notification is verified against (`bot.ports.SecretSource`).
    `clock` (monotonic seconds) is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cached: list[bytes] = []
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def secrets(self, settings: ProviderSettings, http: Any) -> list[bytes]:
        configured = settings.secret("public_key")
        if configured is not None:
            keys = split_pem(bytes(configured))
            if not keys:
                raise NotConfigured("HERALD_TRAVIS_PUBLIC_KEY holds no PEM public key")
            return keys
        async with self._lock:
            fresh = (
                self._fetched_at is not None and self._clock() - self._fetched_at < KEY_TTL_SECONDS
            )
            if not fresh:
                await self._fetch(settings, http)
            return list(self._cached)

    async def refresh(self, settings: ProviderSettings, http: Any) -> list[bytes] | None:
        if settings.secret("public_key") is not None:
            return None
        async with self._lock:
            if (
                self._fetched_at is not None
                and self._clock() - self._fetched_at < MIN_REFRESH_INTERVAL_SECONDS
            ):
                return None
            before = list(self._cached)
            await self._fetch(settings, http)
            return list(self._cached) if self._cached != before else None

    async def _fetch(self, settings: ProviderSettings, http: Any) -> None:
        url = (settings.get("api_url") or DEFAULT_API_URL).rstrip("/") + "/config"
        try:
            response = await http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TransientError(
                f"could not fetch the Travis CI public key from {url}: {exc}"
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(
                f"could not fetch the Travis CI public key from {url}: HTTP {response.status_code}"
            )
        if response.status_code != 200:
            raise PermanentError(
                f"could not fetch the Travis CI public key from {url}: HTTP {response.status_code}"
            )
        try:
            data = response.json()
        except ValueError as exc:
            raise PermanentError(f"{url} did not answer JSON: {exc}") from exc
        key = dig(data, "config", "notifications", "webhook", "public_key")
        keys = split_pem(key.encode()) if isinstance(key, str) else []
        if not keys:
            raise PermanentError(f"{url} has no config.notifications.webhook.public_key")
        self._cached = keys
        self._fetched_at = self._clock()

