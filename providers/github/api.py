"""gidgethub over Herald's shared HTTP layer, and what GitHub's answers say about limits.

gidgethub builds GitHub's requests and reads its answers; the one I/O method it leaves to
its subclass, `GitHubAPI._request`, goes through `providers.http.HttpSession`, which adds
the timeouts, quick jittered retries, one-origin rule and per-call log line every
provider client gets (its module docstring has the rules). gidgethub keeps the status
code: `GitHubClient` turns its `HTTPException` into the typed errors of `providers.http`.

GitHub's own parts, set here:

- rate limits (docs: rest/using-the-rest-api/rate-limits-for-the-rest-api): a 429, or a
  403 with `x-ratelimit-remaining: 0`, a `retry-after` or a secondary-limit message, is a
  refusal that blocks the installation until `retry-after` (seconds or an HTTP date),
  else `x-ratelimit-reset`, else one minute; a success that leaves `remaining` at 0
  blocks it until the reset as well. While blocked nothing is sent for it: each request
  raises `TransientError(retry_after)` at once (`max_inline_wait` 0);
- content-creating requests (POST, PATCH, PUT, DELETE) of one installation go one at a
  time, as the secondary-limit guidance asks (`serialize_writes`);
- whether a request may be resent: gidgethub's `post`/`patch`/`getitem` reach
  `_request` with no room for options of ours, so the caller's declaration travels in a
  context variable set by `retry_policy(idempotent=...)`; without one, only reads are.

The blocked-until times and write locks are per process (`Throttle`), shared by all the
API objects a client makes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

import gidgethub.httpx
import httpx

from providers.http import (
    SAFE_METHODS,
    HttpSession,
    Policy,
    RateLimit,
    Throttle,
    number,
    origin,
    parse_retry_after,
)

__all__ = ["DEFAULT_TIMEOUT", "GitHubAPI", "Throttle", "origin", "rate_limit", "retry_policy"]

#: When GitHub signals a secondary limit without saying for how long.
SECONDARY_LIMIT_SECONDS: Final = 60.0
DEFAULT_TIMEOUT: Final = httpx.Timeout(15.0, connect=5.0)

_IDEMPOTENT: ContextVar[bool | None] = ContextVar("herald_github_idempotent", default=None)


@contextmanager
def retry_policy(*, idempotent: bool) -> Iterator[None]:
    """Declare whether the requests sent inside may be resent after an ambiguous fault
    (task-local, so concurrent jobs never see each other's)."""
    token = _IDEMPOTENT.set(idempotent)
    try:
        yield
    finally:
        _IDEMPOTENT.reset(token)


def rate_limit(status: int, headers: Mapping[str, str], body: bytes, now: float) -> RateLimit:
    """GitHub's primary and secondary limits, read from one answer."""
    remaining = headers.get("x-ratelimit-remaining")
    reset = number(headers.get("x-ratelimit-reset"))
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    # +1: the reset second itself may still be inside the spent window.
    until_reset = reset - now + 1 if reset is not None else None
    refused = status == 429 or (
        status == 403 and (remaining == "0" or retry_after is not None or _mentions_limit(body))
    )
    if refused:
        if retry_after is not None:
            return RateLimit(refused=True, wait=retry_after)
        if remaining == "0" and until_reset is not None:
            return RateLimit(refused=True, wait=until_reset)
        return RateLimit(refused=True, wait=SECONDARY_LIMIT_SECONDS)
    if remaining == "0" and until_reset is not None and until_reset > 0:
        return RateLimit(wait=until_reset)
    return RateLimit()


def _mentions_limit(body: bytes) -> bool:
    text = body[:2000].lower()
    return b"rate limit" in text or b"abuse" in text


def policy(timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> Policy:
    return Policy(timeout=timeout, max_inline_wait=0.0, serialize_writes=True,
                  default_rate_limit_wait=SECONDARY_LIMIT_SECONDS)


class GitHubAPI(gidgethub.httpx.GitHubAPI):
    """gidgethub over the shared HTTP layer, for one installation (or the App itself)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        scope: str,
        throttle: Throttle,
        base_url: str,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(http, "herald", base_url=base_url)
        self.scope = scope
        self.session = HttpSession(
            http,
            provider="github",
            label="GitHub",
            base_url=base_url,
            policy=policy(timeout),
            rate_limits=rate_limit,
            throttle=throttle,
        )

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        return await self.send(method, url, headers, body, idempotent=_IDEMPOTENT.get())

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        idempotent: bool | None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request as gidgethub wants it answered: (status, headers, body).
        `idempotent` None means: only if the method is a read."""
        if idempotent is None:
            idempotent = method.upper() in SAFE_METHODS
        response = await self.session.send(
            method, url, headers, body, idempotent=idempotent, scope=self.scope
        )
        return response.status_code, response.headers, response.content
