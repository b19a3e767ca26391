"""The one HTTP layer under every provider client: timeouts, retries, rate limits, errors.

Each provider client makes one `HttpSession` per API it talks to, over the worker's one
`httpx.AsyncClient` (made in `bot.worker`, closed on shutdown). What a session adds:

- one origin: requests go only to the configured API origin (pagination links included);
  a download may be redirected elsewhere, and then goes on without credentials;
- a timeout per request (`Policy.timeout`), which the factories check is shorter than
  the job's, so ARQ never cancels a job (never retried) while a request hangs;
- quick retries with full jitter (tenacity's `wait_random_exponential`), inside one job:
  a request that surely never left (no connection, no pooled slot) is retried whatever it
  is; one whose answer was lost (a timeout after sending, a reset, a 5xx) only when the
  caller declared it idempotent. A write that appends is never resent here: it fails with
  `OutcomeUnknown` and `providers.writes.append_once` reads back what the server holds;
- rate limits: each provider reads its own headers (`RateLimitReader`: GitHub's
  `x-ratelimit-*` and secondary limits, GitLab's `RateLimit-*`; `Retry-After` in seconds
  or as an HTTP date for everyone, RFC 9110 §10.2.3). A refused request raises
  `RateLimited(retry_after)`; a spent window blocks the scope (an installation, a token)
  until it resets: short waits are slept through, longer ones go back to the queue;
- errors typed by status code (`error_for_status`): `NotFound`, `Unauthorized`,
  `Forbidden`, `ClientError` are `PermanentError`s, `ServerError` and `RateLimited`
  are `TransientError`s; each keeps `status` and the server's own words in `detail`,
  so no caller reads a message to decide what to do;
- downloads (`HttpSession.download`): streamed, refused over a size cap (declared or
  counted), starting on the API origin and following redirects by hand, where a hop to
  another origin drops every credential header and cookie (httpx itself strips only
  `Authorization`; `PRIVATE-TOKEN` or `Circle-Token` would travel on);
- one log line per request (`http request`): provider, method, host, path (query values
  that may be secrets masked), status or fault, duration and attempt.

tenacity rather than stamina: tenacity's retry predicate sees the exception, which is
where the idempotent/unsent decision lives, and its `sleep` is injectable per call, so
the tests see every back-off; stamina adds process-global switches and instruments
itself through structlog and prometheus when they are installed (both are), which would
write a second, differently shaped line per retry and register metrics nobody asked for.

This module knows no provider: a provider passes its name, origin, policy, rate-limit
reader and extra credential headers.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import tenacity

from bot.logging import get_logger
from bot.settings import Settings
from providers.base import OutcomeUnknown, PermanentError, ProviderError, TransientError

T = TypeVar("T")

#: The logger's name; `log_call` asks for it on each call rather than holding one from
#: import time, whose first use would tie it to whichever logging setup was current then
#: (structlog's `cache_logger_on_first_use`), however the process configures logging later.
LOGGER: Final = "herald.http"

#: Methods a request may be resent with when the caller declared nothing: reads only.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_METHODS: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: Faults that happen before a request leaves this process: the server cannot have acted.
UNSENT_FAULTS: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
#: Headers that carry a credential in any provider Herald speaks to. Dropped on every hop
#: to another origin; a provider adds its own through `HttpSession(credential_headers=)`.
CREDENTIAL_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "private-token",  # GitLab
        "job-token",  # GitLab
        "circle-token",  # CircleCI
        "travis-api-token",
        "x-api-key",
    }
)
#: Query parameters whose values are never logged.
SECRET_QUERY_WORDS: Final = ("token", "secret", "key", "sig", "password", "auth", "code")
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
#: When a provider refuses a request for a rate limit without saying for how long.
DEFAULT_RATE_LIMIT_WAIT: Final = 60.0
MAX_RETRY_AFTER: Final = 3600.0
CHUNK_BYTES: Final = 64 * 1024
#: An error answer is read up to this much (for its message), never more.
MAX_ERROR_BODY: Final = 64 * 1024
#: Headers that describe the body as sent, not as kept once decoded.
_DECODED: Final = frozenset({"content-encoding", "content-length", "transfer-encoding"})


# ---- errors typed by status ------------------------------------------------------------


class StatusError(ProviderError):
    """An answer with an HTTP status that says what went wrong. `detail` holds the
    server's own words (GitLab's `message`, GitHub's `message`), `str()` our context."""

    def __init__(self, message: str, *, status: int, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class ClientError(StatusError, PermanentError):
    """A 4xx other than a rate limit: the same request will be refused again."""


class Unauthorized(ClientError):
    """401: the credential was refused (expired, revoked); a fresh one may pass."""


class Forbidden(ClientError):
    """403 that is not a rate limit: the credential lacks a permission."""


class NotFound(ClientError):
    """404 or 410: the object does not exist, or the credential may not see it."""


class ServerError(StatusError, TransientError):
    """A 5xx that lasted through the quick retries."""


class RateLimited(StatusError, TransientError):
    """The provider refused the request for a rate limit; `retry_after` says when."""

    def __init__(
        self, message: str, *, status: int, retry_after: float, detail: str = ""
    ) -> None:
        super().__init__(message, status=status, detail=detail)
        self.retry_after = retry_after


class TooLarge(PermanentError):
    """A download went over its size cap."""


def error_for_status(status: int, message: str, *, detail: str = "") -> ProviderError:
    """The typed error for a final (not retried) answer of `status`."""
    kind: type[StatusError]
    if status == 401:
        kind = Unauthorized
    elif status == 403:
        kind = Forbidden
    elif status in (404, 410):
        kind = NotFound
    elif status >= 500:
        kind = ServerError
    else:
        kind = ClientError
    return kind(message, status=status, detail=detail)


# ---- rate limits -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimit:
    """What one answer says about the rate limit.

    `refused`: the request was not done because of a rate limit. `wait`: seconds until
    requests may be sent again (for a refusal, None means the provider did not say).
    """

    refused: bool = False
    wait: float | None = None


class RateLimitReader(Protocol):
    def __call__(
        self, status: int, headers: Mapping[str, str], body: bytes, now: float
    ) -> RateLimit: ...


def number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        parsed = float(value.strip())
    except ValueError:
        return None
    return parsed if parsed == parsed else None  # NaN says nothing


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from `now`: delay-seconds or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    seconds = number(value)
    if seconds is not None:
        return max(0.0, seconds)
    with suppress(TypeError, ValueError, IndexError, OverflowError):
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    return None


def retry_after_only(status: int, headers: Mapping[str, str], body: bytes, now: float) -> RateLimit:
    """The reader for a provider with no rate-limit headers of its own: a 429, waiting
    `Retry-After` when it says."""
    if status == 429:
        return RateLimit(refused=True, wait=parse_retry_after(headers.get("retry-after"), now))
    return RateLimit()


Sleep = Callable[[float], Awaitable[None]]
#: A request's body: bytes, or a function making its chunks afresh for each attempt.
Body = bytes | Callable[[], AsyncIterable[bytes]]


class Throttle:
    """Blocked-until times per scope (an installation, a token) and one write lock each.

    Thread-safe: python-gitlab's calls record limits from its worker threads.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._blocked: dict[str, float] = {}
        self._writes: dict[str, asyncio.Lock] = {}
        self._lock = threading.Lock()

    def wait_left(self, scope: str) -> float:
        with self._lock:
            return max(0.0, self._blocked.get(scope, 0.0) - self._clock())

    def block(self, scope: str, seconds: float) -> float:
        """Send nothing for `scope` for `seconds` (bounded); the seconds it will be."""
        seconds = min(max(seconds, 0.0), MAX_RETRY_AFTER)
        with self._lock:
            until = self._clock() + seconds
            self._blocked[scope] = max(self._blocked.get(scope, 0.0), until)
        return seconds

    async def wait_for_window(
        self, scope: str, what: str, max_inline_wait: float, sleep: Sleep
    ) -> None:
        """Before a request of `scope`: sleep through a block of up to `max_inline_wait`,
        raise `TransientError(retry_after)` for a longer one, sending nothing."""
        left = self.wait_left(scope)
        if left <= 0:
            return
        if left <= max_inline_wait:
            await sleep(left)
            return
        raise TransientError(f"{what}: no requests for {left:.0f} s", retry_after=left)

    def write_lock(self, scope: str) -> asyncio.Lock:
        return self._writes.setdefault(scope, asyncio.Lock())

    def observe(self, scope: str, limit: RateLimit, default_wait: float) -> float | None:
        """Record `limit`; for a refused request, the seconds to come back in."""
        if limit.refused:
            return self.block(scope, limit.wait if limit.wait is not None else default_wait)
        if limit.wait is not None and limit.wait > 0:
            self.block(scope, limit.wait)
        return None


# ---- the retry policy --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """How one provider's requests are timed, retried and throttled."""

    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(15.0, connect=5.0))
    #: For the hops of a download: one read may take longer than an API answer.
    download_timeout: httpx.Timeout = field(
        default_factory=lambda: httpx.Timeout(60.0, connect=10.0)
    )
    #: Tries per request inside one job, the first included.
    attempts: int = 3
    #: Full jitter: the n-th retry waits uniformly up to `backoff * 2**(n-1)` seconds.
    backoff: float = 0.25
    max_backoff: float = 4.0
    #: A blocked scope waits in place up to this long; longer goes back to the queue.
    max_inline_wait: float = 0.0
    #: Writes of one scope one at a time (GitHub's secondary-limit guidance).
    serialize_writes: bool = False
    default_rate_limit_wait: float = DEFAULT_RATE_LIMIT_WAIT

    def wait(self) -> tenacity.wait.wait_base:
        return tenacity.wait_random_exponential(multiplier=self.backoff, max=self.max_backoff)


class Fault(Exception):
    """A failure worth a quick retry in place: no answer, or a 5xx.

    `unsent` is true when the request surely never reached the server (no connection);
    only then is a request that is not idempotent sent again.
    """

    def __init__(self, message: str, *, unsent: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.unsent = unsent
        self.status = status


async def retrying(
    attempt: Callable[[int], Awaitable[T]],
    *,
    idempotent: bool,
    policy: Policy,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """`attempt(n)` for n = 1, 2, ... while it raises a `Fault` that may be retried.

    The last fault becomes a `TransientError` (a `ServerError` for a 5xx) when resending
    was allowed, else `OutcomeUnknown`: the request was sent, its outcome is not known.
    Any other exception goes straight through.
    """

    def may_retry(exc: BaseException) -> bool:
        return isinstance(exc, Fault) and (idempotent or exc.unsent)

    retryer = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=policy.wait(),
        retry=tenacity.retry_if_exception(may_retry),
        sleep=sleep,
        reraise=True,
    )
    try:
        async for state in retryer:
            with state:
                result = await attempt(state.retry_state.attempt_number)
            if not state.retry_state.outcome or not state.retry_state.outcome.failed:
                return result
    except Fault as fault:
        if not (idempotent or fault.unsent):
            raise OutcomeUnknown(str(fault)) from fault
        if fault.status is not None:
            raise ServerError(str(fault), status=fault.status) from fault
        raise TransientError(str(fault)) from fault
    raise AssertionError("unreachable")


# ---- helpers -----------------------------------------------------------------------------


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def loggable(url: str) -> tuple[str, str]:
    """(host, path with the values of secret-looking query parameters masked)."""
    parts = urlsplit(url)
    query = [
        (k, "***" if any(word in k.lower() for word in SECRET_QUERY_WORDS) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    path = parts.path + (f"?{urlencode(query, safe='*')}" if query else "")
    return parts.netloc.lower(), path


def strip_credentials(headers: httpx.Headers, extra: Iterable[str] = ()) -> None:
    for name in (*CREDENTIAL_HEADERS, *extra):
        if name in headers:
            del headers[name]


def log_call(
    provider: str,
    method: str,
    url: str,
    *,
    status: int | None,
    seconds: float,
    attempt: int,
    fault: str | None = None,
) -> None:
    """The one line per request, whichever client library sent it."""
    host, path = loggable(url)
    get_logger(LOGGER).info(
        "http request",
        provider=provider,
        method=method,
        host=host,
        path=path,
        status=status,
        fault=fault,
        duration_ms=round(seconds * 1000, 1),
        attempt=attempt,
    )


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= cap:
            break
    return bytes(data[:cap])


def _detail(body: bytes) -> str:
    """The server's own words from a JSON error body (`message` or `error`; Travis CI's
    `error_message`), if any."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        for key in ("message", "error", "error_description", "error_message"):
            value = data.get(key)
            if value is not None:
                return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return ""


# ---- the session -------------------------------------------------------------------------


class HttpSession:
    """One provider API over the shared httpx client (see the module docstring)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        provider: str,
        label: str,
        base_url: str,
        policy: Policy | None = None,
        rate_limits: RateLimitReader = retry_after_only,
        throttle: Throttle | None = None,
        credential_headers: Iterable[str] = (),
        download_origins: Iterable[str] = (),
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.provider = provider
        self.label = label  # "GitHub", "GitLab": how messages name the provider
        self.base_url = base_url.rstrip("/")
        self.policy = policy or Policy()
        self.rate_limits = rate_limits
        self.throttle = throttle or Throttle(clock)
        self.credential_headers = tuple(h.lower() for h in credential_headers)
        self._sleep = sleep
        self._clock = clock
        self._origin = origin(self.base_url)
        #: Origins beside the API's where a download may start and credentials travel
        #: (CircleCI's artifact host): a hop to any other origin still drops them.
        self._download_origins = frozenset(origin(url) for url in download_origins) | {
            self._origin}

    # ---- the API origin ------------------------------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        content: Body = b"",
        *,
        idempotent: bool,
        scope: str = "",
    ) -> httpx.Response:
        """One request to the API origin, body read, with the rules of the module
        docstring. `content` may be a function making the body's chunks (a file streamed
        from disk, with its `Content-Length` in `headers`), called afresh for each attempt.
        Any answer below 500 that is not a rate limit is returned as it is (redirects are
        not followed); see `request` for one that raises on 4xx."""
        method = method.upper()
        if origin(url) != self._origin:
            raise PermanentError(f"refusing to send a {self.label} request outside {self.base_url}")
        await self.wait_for_window(scope, f"{method} {urlsplit(url).path}")
        if self.policy.serialize_writes and method in WRITE_METHODS:
            async with self.throttle.write_lock(scope):
                await self.wait_for_window(scope, f"{method} {urlsplit(url).path}")
                return await self._send(method, url, headers, content, idempotent, scope)
        return await self._send(method, url, headers, content, idempotent, scope)

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        content: Body = b"",
        *,
        idempotent: bool,
        scope: str = "",
        what: str | None = None,
    ) -> httpx.Response:
        """`send`, and a typed error (`error_for_status`) for any answer of 300 or more."""
        response = await self.send(
            method, url, headers, content, idempotent=idempotent, scope=scope
        )
        if response.status_code >= 300:
            raise self._error(response.status_code, response.content, what or f"{method} {url}")
        return response

    async def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        content: Body,
        idempotent: bool,
        scope: str,
    ) -> httpx.Response:
        async def attempt(number: int) -> httpx.Response:
            # httpx times each chunk written, so a large file goes up as long as it flows.
            request = self.client.build_request(
                method, url, headers=dict(headers or {}),
                content=content() if callable(content) else content,
                timeout=self.policy.timeout,
            )
            response = await self._exchange(request, number, scope=scope, stream=False)
            return response

        return await retrying(attempt, idempotent=idempotent, policy=self.policy, sleep=self._sleep)

    async def _exchange(
        self, request: httpx.Request, attempt: int, *, scope: str | None, stream: bool
    ) -> httpx.Response:
        """Send once; log it; turn faults and 5xx into `Fault`, rate limits into
        `RateLimited`. `scope` None: not the API origin, whose limits do not apply."""
        what = f"{request.method} {request.url.path}"
        started = time.monotonic()
        try:
            response = await self.client.send(request, stream=stream, follow_redirects=False)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            log_call(self.provider, request.method, str(request.url), status=None,
                     seconds=time.monotonic() - started, attempt=attempt,
                     fault=type(exc).__name__)
            raise Fault(
                f"{self.label} did not answer {what}: {type(exc).__name__}",
                unsent=isinstance(exc, UNSENT_FAULTS),
            ) from exc
        log_call(self.provider, request.method, str(request.url), status=response.status_code,
                 seconds=time.monotonic() - started, attempt=attempt)
        status = response.status_code
        if stream and status >= 400:
            # An error answer is read whole (bounded) and closed here, once.
            body = await _read_capped(response, MAX_ERROR_BODY)
            await response.aclose()
            kept = [(k, v) for k, v in response.headers.items() if k.lower() not in _DECODED]
            response = httpx.Response(status, headers=kept, content=body, request=request)
        body = response.content if status >= 400 else b""
        wait: float | None
        if scope is not None:
            limit = self.rate_limits(status, response.headers, body, self._clock())
            wait = self.throttle.observe(scope, limit, self.policy.default_rate_limit_wait)
        else:
            # Another origin (object storage): its 429 is honoured, its limits not kept.
            limit = retry_after_only(status, response.headers, body, self._clock())
            wait = None
            if limit.refused:
                wait = min(limit.wait if limit.wait is not None
                           else self.policy.default_rate_limit_wait, MAX_RETRY_AFTER)
        if wait is not None:
            await response.aclose()
            raise RateLimited(
                f"{self.label} rate limit on {what}: retrying in {wait:.0f} s",
                status=status, retry_after=wait, detail=_detail(body),
            )
        if status >= 500:
            await response.aclose()
            raise Fault(f"{self.label} answered {status} to {what}", unsent=False, status=status)
        return response

    async def wait_for_window(self, scope: str, what: str) -> None:
        await self.throttle.wait_for_window(
            scope, f"{self.label} rate limit ({what})", self.policy.max_inline_wait, self._sleep
        )

    def _error(self, status: int, body: bytes, what: str) -> ProviderError:
        detail = _detail(body)
        said = f": {detail}" if detail else ""
        return error_for_status(status, f"{what}: {self.label} answered {status}{said}",
                                detail=detail)

    # ---- downloads ---------------------------------------------------------------------

    def checked_location(self, location: str, what: str) -> str:
        """A redirect target a download may follow: http(s) only (http only when the API
        itself is plain http, as in tests), with no credentials in the URL."""
        parts = urlsplit(location)
        allowed = {"https"} | ({"http"} if self._origin[0] == "http" else set())
        if parts.scheme.lower() not in allowed or not parts.hostname:
            raise PermanentError(f"{what}: refusing to download from {parts.scheme}://")
        if parts.username or parts.password:
            raise PermanentError(f"{what}: refusing a download link that carries credentials")
        return location

    async def download_json(
        self,
        url: str,
        *,
        what: str,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        scope: str = "",
    ) -> object:
        """A JSON answer read as a `download` (streamed, capped, under the download
        timeout), for APIs whose answers can be large; `PermanentError` when it is not JSON."""
        body = bytearray()
        async for chunk in self.download(url, what=what, max_bytes=max_bytes, headers=headers,
                                         scope=scope):
            body += chunk
        try:
            return json.loads(bytes(body))
        except ValueError:
            raise PermanentError(f"{what}: {self.label} sent no JSON") from None

    async def download(
        self,
        url: str,
        *,
        what: str,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        scope: str = "",
        max_redirects: int = 3,
    ) -> AsyncGenerator[bytes, None]:
        """The body of a GET that starts on the API origin, streamed, at most `max_bytes`.

        Redirects are followed by hand: a hop to another origin (object storage, a blob
        host) goes without any credential header or cookie, and stays without them even
        if it leads back. Each hop is retried like any read; an error answer is typed by
        status (`NotFound` for an expired artifact). The response is closed however the
        consumer stops. A download may also start on one of the session's
        `download_origins`, which keeps the credentials as the API origin does.
        """
        if origin(url) not in self._download_origins:
            raise PermanentError(f"refusing to send a {self.label} request outside {self.base_url}")
        await self.wait_for_window(scope, f"GET {urlsplit(url).path}")
        current = url
        foreign = False
        response: httpx.Response | None = None
        for _hop in range(max_redirects + 1):
            hop_url, hop_foreign = current, foreign

            async def attempt(
                number: int, hop_url: str = hop_url, hop_foreign: bool = hop_foreign
            ) -> httpx.Response:
                request = self.client.build_request(
                    "GET", hop_url, headers=dict(headers or {}),
                    timeout=self.policy.download_timeout,
                )
                if hop_foreign:
                    # The shared client's defaults and cookies must not travel there either.
                    strip_credentials(request.headers, self.credential_headers)
                # The API's rate limits are its own: another origin's are not kept.
                api = not hop_foreign and origin(hop_url) == self._origin
                return await self._exchange(
                    request, number, scope=scope if api else None, stream=True
                )

            response = await retrying(attempt, idempotent=True, policy=self.policy,
                                      sleep=self._sleep)
            if response.status_code not in REDIRECT_STATUSES:
                break
            location = response.headers.get("location")
            await response.aclose()
            response = None
            if not location:
                raise PermanentError(f"{what}: a redirect without a location")
            current = self.checked_location(urljoin(current, location), what)
            foreign = foreign or origin(current) not in self._download_origins
        if response is None:
            raise PermanentError(f"{what}: more than {max_redirects} redirects")
        try:
            if response.status_code >= 300:
                raise self._error(response.status_code, response.content, what)
            declared = number(response.headers.get("content-length"))
            if declared is not None and declared > max_bytes:
                raise TooLarge(
                    f"{what}: {int(declared):,} bytes is over the {max_bytes:,}-byte limit"
                )
            received = 0
            try:
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    received += len(chunk)
                    if received > max_bytes:
                        raise TooLarge(f"{what} is larger than the {max_bytes:,}-byte limit")
                    yield chunk
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                raise TransientError(
                    f"{what}: download interrupted ({type(exc).__name__})"
                ) from exc
        finally:
            await response.aclose()


def streamed_session(
    http: httpx.AsyncClient | None, *, provider: str, label: str, base_url: str,
    seconds: float, download_origins: Iterable[str] = (),
) -> HttpSession:
    """A session for an API whose JSON answers are streamed too (`download_json`): one timeout
    for every read, which httpx counts per chunk, so a large artifact still streams as
    long as it flows; connecting takes 5 s at most. Over a client of its own when `http`
    is None (the caller then owns it)."""
    timeout = httpx.Timeout(seconds, connect=min(5.0, seconds))
    return HttpSession(
        http if http is not None else httpx.AsyncClient(follow_redirects=False),
        provider=provider, label=label, base_url=base_url,
        policy=Policy(timeout=timeout, download_timeout=timeout),
        download_origins=download_origins,
    )


class SessionClient:
    """What every client over one `HttpSession` shares: the session, the settings it was
    made from, the artifact size cap, and closing the HTTP client only when it made it
    (the worker's is closed by the worker)."""

    def __init__(self, session: HttpSession, *, settings: Settings, max_artifact_bytes: int,
                 owns_http: bool = False) -> None:
        self.session = session
        self.settings = settings
        self.max_artifact_bytes = max_artifact_bytes
        self._owns_http = owns_http

    async def aclose(self) -> None:
        if self._owns_http:
            await self.session.client.aclose()

    @property
    def base_url(self) -> str:
        return self.session.base_url
