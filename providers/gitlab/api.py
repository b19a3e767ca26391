"""The seam between Herald's async worker and python-gitlab's synchronous HTTP calls.

python-gitlab talks through `requests`, which blocks. Every call therefore runs on a small
thread pool of this client's own (never the event loop, never the default executor shared
with everything else), so one slow GitLab request never stalls other jobs.

What this layer adds on top of python-gitlab:

- rate limits: a 429 becomes `TransientError(retry_after)` from `Retry-After`, else
  `RateLimit-Reset` (a Unix time, not a delta), and a response that says
  `RateLimit-Remaining: 0` pauses further calls until the reset instead of spending them
  (https://docs.gitlab.com/security/rate_limits/);
- faults: 5xx, timeouts and dropped connections get a couple of quick retries with jitter,
  then `TransientError`; python-gitlab's own sleeping retry loop is switched off. Each
  call says whether it is idempotent (`call(..., idempotent=...)`): a write that appends
  (a note, a status, an award, a pipeline retry) is repeated only when it surely never
  reached GitLab; otherwise it fails with `OutcomeUnknown` and the client reads back what
  GitLab holds before sending it again (`providers.gitlab.client`);
- tokens: `PRIVATE-TOKEN` never follows a redirect to another origin (artifact downloads
  redirect to object storage; `requests` itself only strips `Authorization`);
- errors: GitLab's `{"message": ...}` / `{"error": ...}` bodies become provider errors that
  say what was being done.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import quote

import gitlab
import gitlab.exceptions
import requests
import requests.adapters
import urllib3.exceptions

from providers.base import OutcomeUnknown, PermanentError, TransientError

T = TypeVar("T")

#: Per-request timeout (connect, read) in seconds: far below ARQ's job timeout, so a job
#: never dies of the job timeout (which ARQ does not retry) while waiting on GitLab.
DEFAULT_TIMEOUT: Final = 15.0
DEFAULT_WORKERS: Final = 8
#: Quick retries of 5xx / timeouts inside one job, before handing back to the queue.
DEFAULT_RETRIES: Final = 2
RETRY_BASE_DELAY: Final = 0.25
#: When GitLab names no wait on a 429 at all.
DEFAULT_RATE_LIMIT_WAIT: Final = 60.0
#: Waits up to this long are slept through in place; longer ones go back to the queue.
MAX_INLINE_WAIT: Final = 2.0
MAX_RETRY_AFTER: Final = 3600.0
#: A JSON answer (a pipeline test report can be tens of MB) is read up to this size.
DEFAULT_MAX_JSON_BYTES: Final = 64 * 1024 * 1024
CHUNK_BYTES: Final = 64 * 1024
#: Every header a GitLab credential can travel in.
TOKEN_HEADERS: Final = ("PRIVATE-TOKEN", "JOB-TOKEN", "Authorization")


class NotFound(PermanentError):
    """GitLab answered 404: the object does not exist or the token may not see it."""


class TooLarge(PermanentError):
    """A download went over its size cap."""


class _Retryable(Exception):
    """A fault worth a quick retry inside this call (5xx, timeout, connection reset).

    `unsent` is true when the request surely never reached GitLab (it could not connect,
    or GitLab said it is unavailable), the only case in which a write is repeated inline:
    a write that timed out may have happened, and the job-level retry goes through
    find-then-update instead of posting blindly twice.
    """

    def __init__(self, message: str, *, unsent: bool) -> None:
        super().__init__(message)
        self.unsent = unsent


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether a transport fault came before the request left: no connection was made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)  # urllib3's MaxRetryError
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def encode_id(project: int | str) -> str:
    """A project reference as GitLab's paths take it: a number or a URL-encoded path."""
    return str(project) if isinstance(project, int) else quote(str(project), safe="")


class TokenSafeSession(requests.Session):
    """A `requests.Session` that drops every GitLab credential on a cross-origin redirect.

    `requests` strips only `Authorization` when a redirect changes host (its
    `should_strip_auth`); python-gitlab sends `PRIVATE-TOKEN`, which would otherwise
    travel on to whatever host a redirect names.
    """

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        previous = response.request.url if response.request is not None else None
        if (
            previous
            and prepared_request.url
            and self.should_strip_auth(previous, prepared_request.url)
        ):
            for name in TOKEN_HEADERS:
                prepared_request.headers.pop(name, None)
        super().rebuild_auth(prepared_request, response)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """What GitLab's last answer said about the rate limit."""

    remaining: int | None
    reset_at: float | None  # Unix time
    retry_after: float | None  # seconds, from Retry-After


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` is either delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    with suppress(TypeError, ValueError, IndexError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    return None


def rate_limit(headers: Any, now: float) -> RateLimit:
    remaining = _number(headers.get("RateLimit-Remaining"))
    return RateLimit(
        remaining=int(remaining) if remaining is not None else None,
        reset_at=_number(headers.get("RateLimit-Reset")),
        retry_after=parse_retry_after(headers.get("Retry-After"), now),
    )


def _gitlab_message(body: bytes | None, fallback: str) -> str:
    """GitLab's own words from an error body: `{"message": ...}` or `{"error": ...}`."""
    if not body:
        return fallback
    try:
        data = json.loads(body)
    except ValueError:
        return fallback
    if isinstance(data, dict):
        for key in ("message", "error"):
            if key in data:
                value = data[key]
                return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return fallback


class GitLabAPI:
    """python-gitlab behind a bounded thread pool, with Herald's retry and token rules."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        workers: int = DEFAULT_WORKERS,
        retries: int = DEFAULT_RETRIES,
        max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.max_json_bytes = max_json_bytes
        self._clock = clock
        self._session = TokenSafeSession()
        self._session.max_redirects = 5
        adapter = requests.adapters.HTTPAdapter(pool_connections=workers, pool_maxsize=workers)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.hooks["response"].append(self._observe)
        self.gl = gitlab.Gitlab(
            self.url,
            private_token=token,
            session=self._session,
            timeout=timeout,
            retry_transient_errors=False,
            user_agent="Herald",
        )
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="herald-gitlab")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._paused_until = 0.0

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    # ---- rate-limit bookkeeping (runs in the worker threads) -----------------------------

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        limit = rate_limit(response.headers, self._clock())
        self._local.last = limit
        if limit.remaining is not None and limit.remaining <= 0 and limit.reset_at:
            with self._lock:
                self._paused_until = max(self._paused_until, limit.reset_at)

    def _last_limit(self) -> RateLimit | None:
        last: RateLimit | None = getattr(self._local, "last", None)
        return last

    def paused_for(self) -> float:
        """Seconds until GitLab's rate-limit window resets, when we spent it all."""
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    # ---- calls --------------------------------------------------------------------------

    async def call(self, what: str, fn: Callable[[gitlab.Gitlab], T], *, idempotent: bool) -> T:
        """Run `fn(gl)` on the pool; `what` names the action for error messages.

        `idempotent` is the caller's promise that doing `fn` twice leaves GitLab as doing
        it once does; only then is it repeated after a fault that may have come after
        GitLab acted.
        """
        loop = asyncio.get_running_loop()
        for attempt in range(self.retries + 1):
            await self._respect_pause(what)
            try:
                return await loop.run_in_executor(self._executor, self._run, what, fn)
            except _Retryable as exc:
                if not (idempotent or exc.unsent):
                    raise OutcomeUnknown(f"{what}: {exc}") from exc
                if attempt >= self.retries:
                    raise TransientError(f"{what}: {exc}") from exc
                # Full jitter: retries of many jobs spread out instead of arriving together.
                await asyncio.sleep(random.uniform(0, RETRY_BASE_DELAY * 2**attempt))
        raise AssertionError("unreachable")

    async def _respect_pause(self, what: str) -> None:
        wait = self.paused_for()
        if wait <= 0:
            return
        if wait <= MAX_INLINE_WAIT:
            await asyncio.sleep(wait)
            return
        raise TransientError(
            f"{what}: GitLab rate limit spent until its reset",
            retry_after=min(wait, MAX_RETRY_AFTER),
        )

    def _run(self, what: str, fn: Callable[[gitlab.Gitlab], T]) -> T:
        self._local.last = None
        try:
            return fn(self.gl)
        except (
            requests.Timeout,
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise _Retryable(type(exc).__name__, unsent=_never_sent(exc)) from exc
        except gitlab.exceptions.GitlabError as exc:
            if exc.response_code is not None:
                raise self._translate(
                    what, exc.response_code, exc.error_message, exc.response_body
                ) from exc
            # Parsing errors, refused redirects of a POST: retrying will not change them.
            raise PermanentError(f"{what}: {exc.error_message}") from exc

    def _translate(
        self, what: str, status: int | None, message: Any, body: bytes | None
    ) -> Exception:
        text = message if isinstance(message, str) else _gitlab_message(body, str(message))
        if status == 429:
            limit = self._last_limit()
            now = self._clock()
            wait = None
            if limit is not None:
                wait = limit.retry_after
                if wait is None and limit.reset_at is not None:
                    wait = max(0.0, limit.reset_at - now)
            return TransientError(
                f"{what}: GitLab rate limit (429)",
                retry_after=min(
                    wait if wait is not None else DEFAULT_RATE_LIMIT_WAIT, MAX_RETRY_AFTER
                ),
            )
        if status is not None and status >= 500:
            return _Retryable(f"GitLab answered {status}", unsent=status == 503)
        if status == 401:
            return PermanentError(
                f"{what}: GitLab refused the token (401 {text}); check HERALD_GITLAB_TOKEN"
            )
        if status == 403:
            return PermanentError(
                f"{what}: forbidden (403 {text}); the token needs scope "
                "`api` and the Developer role on the project"
            )
        if status == 404:
            return NotFound(f"{what}: not found (404 {text})")
        return PermanentError(f"{what}: GitLab answered {status}: {text}")

    # ---- python-gitlab shortcuts: never sleep inside python-gitlab -----------------------

    @staticmethod
    def _opts() -> dict[str, Any]:
        return {"obey_rate_limit": False, "retry_transient_errors": False, "max_retries": 0}

    async def get(self, what: str, path: str, query: dict[str, Any] | None = None) -> Any:
        def run(gl: gitlab.Gitlab) -> Any:
            return gl.http_get(path, query_data=query or {}, **self._opts())

        return await self.call(what, run, idempotent=True)

    async def get_json_capped(
        self, what: str, path: str, query: dict[str, Any] | None = None
    ) -> Any:
        """A GET whose JSON answer may be huge (test reports): read with a size cap."""
        cap = self.max_json_bytes

        def run(gl: gitlab.Gitlab) -> Any:
            response = gl.http_get(
                path, query_data=query or {}, streamed=True, raw=True, **self._opts()
            )
            assert isinstance(response, requests.Response)
            with response:
                buffer = bytearray()
                for chunk in response.iter_content(CHUNK_BYTES):
                    buffer += chunk
                    if len(buffer) > cap:
                        raise TooLarge(f"{what}: answer larger than {cap:,} bytes")
            try:
                return json.loads(bytes(buffer))
            except ValueError as exc:
                raise PermanentError(f"{what}: GitLab sent malformed JSON") from exc

        return await self.call(what, run, idempotent=True)

    async def post(
        self, what: str, path: str, body: dict[str, Any] | None = None, *, idempotent: bool
    ) -> Any:
        """A POST; most create something, so the caller says whether a repeat is harmless."""

        def run(gl: gitlab.Gitlab) -> Any:
            return gl.http_post(path, post_data=body or {}, **self._opts())

        return await self.call(what, run, idempotent=idempotent)

    async def put(self, what: str, path: str, body: dict[str, Any]) -> Any:
        """A PUT sets the whole of what it names: repeating it changes nothing more."""

        def run(gl: gitlab.Gitlab) -> Any:
            return gl.http_put(path, post_data=body, **self._opts())

        return await self.call(what, run, idempotent=True)

    async def delete(self, what: str, path: str) -> None:
        """A DELETE: a repeat finds the object gone (404, which callers expect)."""

        def run(gl: gitlab.Gitlab) -> None:
            gl.http_delete(path, **self._opts())

        await self.call(what, run, idempotent=True)

    async def list(
        self, what: str, path: str, query: dict[str, Any] | None = None, *, limit: int = 2000
    ) -> list[dict[str, Any]]:
        """Every item of a paginated list (following `Link: rel=next`), up to `limit`."""

        def run(gl: gitlab.Gitlab) -> list[dict[str, Any]]:
            return list(self._iterate(gl, path, query, limit))

        return await self.call(what, run, idempotent=True)

    async def find(
        self,
        what: str,
        path: str,
        query: dict[str, Any] | None,
        match: Callable[[dict[str, Any]], bool],
        *,
        limit: int = 5000,
    ) -> dict[str, Any] | None:
        """The first item of a paginated list that `match`es; stops paging once found."""

        def run(gl: gitlab.Gitlab) -> dict[str, Any] | None:
            for item in self._iterate(gl, path, query, limit):
                if match(item):
                    return item
            return None

        return await self.call(what, run, idempotent=True)

    def _iterate(
        self, gl: gitlab.Gitlab, path: str, query: dict[str, Any] | None, limit: int
    ) -> Iterator[dict[str, Any]]:
        data = {"per_page": 100, **(query or {})}
        items = gl.http_list(path, query_data=data, iterator=True, **self._opts())
        for count, item in enumerate(items):
            if count >= limit:
                return
            if isinstance(item, dict):
                yield item

    async def stream(self, what: str, path: str, max_bytes: int) -> AsyncIterator[bytes]:
        """The body of a GET, chunk by chunk, refusing more than `max_bytes` in total.

        Each chunk is read on the pool; the response is closed however the consumer stops.
        """
        loop = asyncio.get_running_loop()

        def start(gl: gitlab.Gitlab) -> requests.Response:
            response = gl.http_get(path, streamed=True, raw=True, **self._opts())
            assert isinstance(response, requests.Response)
            declared = _number(response.headers.get("Content-Length"))
            if declared is not None and declared > max_bytes:
                response.close()
                raise TooLarge(
                    f"{what}: {int(declared):,} bytes is over the {max_bytes:,}-byte limit"
                )
            return response

        response = await self.call(what, start, idempotent=True)
        chunks = response.iter_content(CHUNK_BYTES)
        received = 0
        try:
            while True:
                try:
                    chunk = await loop.run_in_executor(self._executor, next, chunks, None)
                except (requests.RequestException, OSError) as exc:
                    raise TransientError(
                        f"{what}: download interrupted ({type(exc).__name__})"
                    ) from exc
                if chunk is None:
                    return
                received += len(chunk)
                if received > max_bytes:
                    raise TooLarge(f"{what}: more than {max_bytes:,} bytes")
                yield chunk
        finally:
            with suppress(Exception):
                await loop.run_in_executor(self._executor, response.close)
