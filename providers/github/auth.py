"""GitHub App authentication: the App's JWT and per-installation access tokens.

- JWT (docs: apps/creating-github-apps/authenticating-with-a-github-app/
  generating-a-json-web-token-jwt-for-a-github-app): RS256, `iat` 60 s in the past for
  clock drift, `exp` 9 minutes ahead (GitHub refuses more than 10), `iss` the App's client
  id when configured (GitHub's recommendation) or its numeric id.
- Installation tokens (…/authenticating-as-a-github-app-installation): `POST
  /app/installations/{id}/access_tokens` with the JWT; valid one hour. Cached per
  installation in process until 5 minutes before expiry, so a request never starts with a
  token about to lapse; one refresh at a time per installation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import jwt as pyjwt

from bot.settings import Secret

JWT_BACKDATE_SECONDS: Final = 60
JWT_LIFETIME_SECONDS: Final = 9 * 60
#: A cached token is replaced this long before GitHub says it expires.
TOKEN_REFRESH_MARGIN_SECONDS: Final = 5 * 60


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    private_key: Secret
    client_id: str | None = None

    @property
    def issuer(self) -> str:
        return self.client_id or self.app_id


@dataclass(frozen=True)
class TokenCredentials:
    """A plain token instead of the App: a workflow's `GITHUB_TOKEN` in push mode
    (`bot.push`), or another token handed to Herald. GitHub attributes what it writes to
    the token's owner, `login`: `github-actions[bot]` for a workflow's token, which GitHub
    documents as the actor of everything that token does. Neither `GET /user` nor `GET /app`
    answers an Actions token, so the login is configured, not asked."""

    token: Secret
    login: str = "github-actions[bot]"


class FixedToken:
    """`InstallationTokens`' interface over one token that never changes: a refused one
    cannot be refreshed, so the second 401 reaches the caller."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    async def get(self, installation_id: str) -> Secret:
        return self._token

    def invalidate(self, installation_id: str, token: Secret) -> None:
        return None


class AppJWT:
    """Signs App JWTs, reusing one until it is within a minute of its expiry."""

    def __init__(self, credentials: AppCredentials, clock: Callable[[], float] = time.time):
        self._credentials = credentials
        self._clock = clock
        self._cached: tuple[str, float] | None = None

    def token(self) -> str:
        now = self._clock()
        if self._cached is not None and now < self._cached[1] - 60:
            return self._cached[0]
        issued = int(now) - JWT_BACKDATE_SECONDS
        expires = int(now) + JWT_LIFETIME_SECONDS
        claims = {"iat": issued, "exp": expires, "iss": self._credentials.issuer}
        signed = pyjwt.encode(claims, self._credentials.private_key.reveal(), algorithm="RS256")
        self._cached = (signed, float(expires))
        return signed


@dataclass(frozen=True)
class InstallationToken:
    token: Secret
    expires_at: float

    @classmethod
    def from_response(cls, data: dict[str, object]) -> InstallationToken:
        expires = str(data.get("expires_at") or "")
        try:
            when = datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()
        except ValueError:
            when = time.time() + 3600  # GitHub documents one hour
        return cls(Secret(str(data["token"])), when)


class InstallationTokens:
    """Per-installation token cache. `fetch(installation_id)` asks GitHub for a new one."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[InstallationToken]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._tokens: dict[str, InstallationToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, installation_id: str) -> Secret:
        cached = self._fresh(installation_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._fresh(installation_id)  # another task may have just refreshed
            if cached is not None:
                return cached
            token = await self._fetch(installation_id)
            self._tokens[installation_id] = token
            return token.token

    def invalidate(self, installation_id: str, token: Secret) -> None:
        """Drop `token` after GitHub refused it (401), unless it was already replaced."""
        cached = self._tokens.get(installation_id)
        if cached is not None and cached.token == token:
            del self._tokens[installation_id]

    def _fresh(self, installation_id: str) -> Secret | None:
        cached = self._tokens.get(installation_id)
        if cached is None or self._clock() >= cached.expires_at - TOKEN_REFRESH_MARGIN_SECONDS:
            return None
        return cached.token
