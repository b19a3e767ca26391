"""The HTTP seam under gidgethub: timeouts, retries, rate limits, one host only.

Every request Herald sends to GitHub's API goes through `GitHubAPI._request` (gidgethub's
one I/O method, over the worker's shared httpx client), which adds what gidgethub leaves
to its caller:

- only the configured API origin is ever contacted (pagination links included);
- every request has its own timeout, well inside ARQ's job timeout;
- a request that surely never reached GitHub (no connection, no pooled slot) is retried
  twice with jittered back-off, whatever it is;
- 5xx answers, timeouts and dropped connections are retried the same way only when the
  caller declared the request idempotent (`retry_policy(idempotent=True)`; without one,
  only GET and HEAD are), then become `TransientError`. A write that appends (a comment,
  a check run, an annotation batch, a rerun) is never sent again here, because GitHub may
  have acted on it: it fails with `OutcomeUnknown`, and the client reads back what GitHub
  holds before sending what is missing (`providers.github.client`);
- rate limits (docs: rest/using-the-rest-api/rate-limits-for-the-rest-api): a 429, or a
  403 with `x-ratelimit-remaining: 0` or a secondary-limit message, blocks the
  installation until `retry-after`, else `x-ratelimit-reset`, else one minute; while it is
  blocked no request is sent for it at all, each raising `TransientError(retry_after)`;
  a success that leaves `remaining` at 0 blocks it until the reset as well;
- content-creating requests (POST, PATCH, PUT, DELETE) of one installation go one at a
  time, as GitHub's secondary-limit guidance asks.

The blocked-until times and write locks are per process (`Throttle`), shared by all the
API objects a client makes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final
from urllib.parse import urlsplit

import gidgethub.httpx
import httpx

from providers.base import OutcomeUnknown, PermanentError, TransientError

WRITE_METHODS: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: Methods resent after a fault when the caller declared nothing: reads only. A PATCH is
#: not among them, because a check run PATCH carrying annotations appends them.
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
#: Faults that happen before a request leaves this process: GitHub cannot have acted.
UNSENT_FAULTS: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
QUICK_RETRIES: Final = 2
BACKOFF_SECONDS: Final = 0.5
#: When GitHub signals a secondary limit without saying for how long.
SECONDARY_LIMIT_SECONDS: Final = 60.0
MAX_BLOCK_SECONDS: Final = 3600.0
DEFAULT_TIMEOUT: Final = httpx.Timeout(15.0, connect=5.0)


_IDEMPOTENT: ContextVar[bool | None] = ContextVar("herald_github_idempotent", default=None)


@contextmanager
def retry_policy(*, idempotent: bool) -> Iterator[None]:
    """Declare whether the requests sent inside may be resent after an ambiguous fault.

    gidgethub's `post`/`patch`/`getitem` reach `GitHubAPI._request` with no room for
    options of ours, so the declaration travels in a context variable (task-local, so
    concurrent jobs never see each other's).
    """
    token = _IDEMPOTENT.set(idempotent)
    try:
        yield
    finally:
        _IDEMPOTENT.reset(token)


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class Throttle:
    """Per-installation state: blocked-until times and one write lock each."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._blocked: dict[str, float] = {}
        self._writes: dict[str, asyncio.Lock] = {}

    def wait_left(self, scope: str) -> float:
        return max(0.0, self._blocked.get(scope, 0.0) - self._clock())

    def check(self, scope: str) -> None:
        left = self.wait_left(scope)
        if left > 0:
            raise TransientError(
                f"GitHub rate limit for {scope}: no requests for {left:.0f} s", retry_after=left
            )

    def block(self, scope: str, seconds: float) -> float:
        seconds = min(max(seconds, 1.0), MAX_BLOCK_SECONDS)
        until = self._clock() + seconds
        self._blocked[scope] = max(self._blocked.get(scope, 0.0), until)
        return seconds

    def write_lock(self, scope: str) -> asyncio.Lock:
        return self._writes.setdefault(scope, asyncio.Lock())

    def observe(self, scope: str, status: int, headers: Mapping[str, str], body: bytes) -> float:
        """Record what a response says about the limits; the seconds to wait when the
        request itself was refused for a rate limit, else 0."""
        remaining = headers.get("x-ratelimit-remaining")
        reset = _number(headers.get("x-ratelimit-reset"))
        retry_after = _number(headers.get("retry-after"))
        until_reset = reset - self._clock() + 1 if reset is not None else None
        refused = status == 429 or (
            status == 403 and (remaining == "0" or retry_after is not None or _mentions_limit(body))
        )
        if refused:
            if retry_after is not None:
                wait = retry_after
            elif remaining == "0" and until_reset is not None:
                wait = until_reset
            else:
                wait = SECONDARY_LIMIT_SECONDS
            return self.block(scope, wait)
        if remaining == "0" and until_reset is not None and until_reset > 0:
            self.block(scope, until_reset)
        return 0.0


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _mentions_limit(body: bytes) -> bool:
    text = body[:2000].lower()
    return b"rate limit" in text or b"abuse" in text


class GitHubAPI(gidgethub.httpx.GitHubAPI):
    """gidgethub over the shared httpx client, for one installation (or the App itself)."""

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
        self.throttle = throttle
        self.timeout = timeout
        self._origin = origin(base_url)

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
        """One request to the API host, with the rules in the module docstring. Redirects
        are returned, not followed (the artifact download follows its own). `idempotent`
        None means: only if the method is a read."""
        if idempotent is None:
            idempotent = method.upper() in SAFE_METHODS
        if origin(url) != self._origin:
            raise PermanentError(f"refusing to send a GitHub request outside {self.base_url}")
        self.throttle.check(self.scope)
        if method.upper() in WRITE_METHODS:
            async with self.throttle.write_lock(self.scope):
                self.throttle.check(self.scope)
                return await self._send(method, url, headers, body, idempotent)
        return await self._send(method, url, headers, body, idempotent)

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, idempotent: bool
    ) -> tuple[int, Mapping[str, str], bytes]:
        what = f"{method} {urlsplit(url).path}"
        # What an ambiguous fault becomes when the request may not be sent again.
        lost = TransientError if idempotent else OutcomeUnknown
        for attempt in range(QUICK_RETRIES + 1):
            last = attempt == QUICK_RETRIES
            try:
                response = await self._client.request(
                    method,
                    url,
                    headers=dict(headers),
                    content=body,
                    timeout=self.timeout,
                    follow_redirects=False,
                )
            except UNSENT_FAULTS as exc:
                if not last:
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise TransientError(f"GitHub did not answer {what}: {type(exc).__name__}") from exc
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if idempotent and not last:
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise lost(f"GitHub did not answer {what}: {type(exc).__name__}") from exc
            wait = self.throttle.observe(
                self.scope, response.status_code, response.headers, response.content
            )
            if wait:
                raise TransientError(
                    f"GitHub rate limit on {what}: retrying in {wait:.0f} s", retry_after=wait
                )
            if response.status_code >= 500:
                if idempotent and not last:
                    await asyncio.sleep(_backoff(attempt))
                    continue
                raise lost(f"GitHub answered {response.status_code} to {what}")
            return response.status_code, response.headers, response.content
        raise AssertionError("unreachable")


def _backoff(attempt: int) -> float:
    """Full jitter: anywhere up to 0.5 s, then up to 1 s."""
    return random.uniform(0, BACKOFF_SECONDS * 2**attempt)
