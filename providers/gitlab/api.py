"""The seam between Herald's async worker and GitLab: python-gitlab for the API, the shared
HTTP layer for bytes.

python-gitlab (which the product names) talks through `requests`, which blocks, and has
no httpx backend for REST (its httpx transport serves GraphQL only). So its calls run on
a small thread pool of this client's own (never the event loop, never the default
executor shared with everything else), with its own sleeping retry loop and rate-limit
waits switched off (`retry_transient_errors=False`, `obey_rate_limit=False`,
`max_retries=0`), and Herald's policy from `providers.http` put around them instead:

- retries: `providers.http.retrying` (tenacity, full jitter), the same as every other
  client. Each call says whether it is idempotent (`call(..., idempotent=...)`): a write
  that appends (a note, a status, an award, a pipeline retry) is repeated only when it
  surely never reached GitLab; otherwise it fails with `OutcomeUnknown` and the client
  reads back what GitLab holds before sending it again (`providers.gitlab.client`);
- rate limits: `rate_limit` reads GitLab's headers from every answer (a `requests`
  response hook): a 429 becomes `RateLimited(retry_after)` from `Retry-After` (seconds or
  an HTTP date), else `RateLimit-Reset` (a Unix time, not a delta), and a response that
  says `RateLimit-Remaining: 0` pauses further calls until the reset instead of spending
  them (https://docs.gitlab.com/security/rate_limits/). The pause is the shared
  `Throttle`: up to `MAX_INLINE_WAIT` is slept through, longer goes back to the queue;
- errors: typed by status (`providers.http.error_for_status`), GitLab's `{"message": ...}`
  / `{"error": ...}` kept as `detail`, the message saying what was being done;
- one log line per request (`providers.http.log_call`), from the same response hook;
- tokens: `PRIVATE-TOKEN` never follows a redirect to another origin (`requests` itself
  only strips `Authorization`).

Artifact archives and pipeline test reports are bytes to stream under a size cap, which
python-gitlab would read on a thread one chunk per executor hop; they go through the
shared layer's `HttpSession.download` instead (httpx, streamed, capped, redirects to
object storage followed without credentials), over the worker's httpx client.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode

import gitlab
import gitlab.exceptions
import httpx
import requests
import requests.adapters
import urllib3.exceptions

from providers.base import PermanentError
from providers.http import (
    CREDENTIAL_HEADERS,
    Fault,
    HttpSession,
    NotFound,
    Policy,
    RateLimit,
    RateLimited,
    Throttle,
    TooLarge,
    error_for_status,
    log_call,
    number,
    parse_retry_after,
    retrying,
)

__all__ = ["GitLabAPI", "NotFound", "TooLarge", "encode_id", "rate_limit"]

T = TypeVar("T")

#: Per-request timeout (connect, read) in seconds: far below ARQ's job timeout, so a job
#: never dies of the job timeout (which ARQ does not retry) while waiting on GitLab.
DEFAULT_TIMEOUT: Final = 15.0
DEFAULT_WORKERS: Final = 8
#: Quick retries of 5xx / timeouts inside one job, before handing back to the queue.
DEFAULT_RETRIES: Final = 2
#: When GitLab names no wait on a 429 at all.
DEFAULT_RATE_LIMIT_WAIT: Final = 60.0
#: Waits up to this long are slept through in place; longer ones go back to the queue.
MAX_INLINE_WAIT: Final = 2.0
#: A JSON answer (a pipeline test report can be tens of MB) is read up to this size.
DEFAULT_MAX_JSON_BYTES: Final = 64 * 1024 * 1024
#: Object storage is one redirect away; a chain longer than this is not GitLab's.
MAX_REDIRECTS: Final = 5
#: The whole token is one scope: GitLab counts per user (and per IP).
SCOPE: Final = "token"


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
    """A `requests.Session` that drops every credential header on a cross-origin redirect
    and writes the shared layer's line for each request it sends.

    `requests` strips only `Authorization` when a redirect changes host (its
    `should_strip_auth`); python-gitlab sends `PRIVATE-TOKEN`, which would otherwise
    travel on to whatever host a redirect names.
    """

    def __init__(self) -> None:
        super().__init__()
        self.attempt = threading.local()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        started = time.monotonic()
        method, url = str(request.method), str(request.url)
        attempt = getattr(self.attempt, "number", 1)
        try:
            response = super().send(request, **kwargs)
        except requests.RequestException as exc:
            log_call("gitlab", method, url, status=None, seconds=time.monotonic() - started,
                     attempt=attempt, fault=type(exc).__name__)
            raise
        log_call("gitlab", method, url, status=response.status_code,
                 seconds=time.monotonic() - started, attempt=attempt)
        return response

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        previous = response.request.url if response.request is not None else None
        if (
            previous
            and prepared_request.url
            and self.should_strip_auth(previous, prepared_request.url)
        ):
            for name in CREDENTIAL_HEADERS:
                prepared_request.headers.pop(name, None)
        super().rebuild_auth(prepared_request, response)


def rate_limit(status: int, headers: Mapping[str, str], body: bytes, now: float) -> RateLimit:
    """GitLab's limits from one answer: a 429 is a refusal; `RateLimit-Remaining: 0`
    spends the window until `RateLimit-Reset` (a Unix time)."""
    remaining = number(headers.get("RateLimit-Remaining"))
    reset_at = number(headers.get("RateLimit-Reset"))
    until_reset = max(0.0, reset_at - now) if reset_at is not None else None
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After"), now)
        return RateLimit(refused=True, wait=retry_after if retry_after is not None else until_reset)
    if remaining is not None and remaining <= 0 and until_reset:
        return RateLimit(wait=until_reset)
    return RateLimit()


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
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.max_json_bytes = max_json_bytes
        self._token = token
        self._clock = clock
        per_request = httpx.Timeout(timeout, connect=min(5.0, timeout))
        self.policy = Policy(
            timeout=per_request,
            # HERALD_GITLAB_TIMEOUT bounds each read of a download too, as it always has.
            download_timeout=per_request,
            attempts=retries + 1,
            max_inline_wait=MAX_INLINE_WAIT,
            default_rate_limit_wait=DEFAULT_RATE_LIMIT_WAIT,
        )
        self.throttle = Throttle(clock)
        self._http = http
        self._owns_http = http is None
        self._bytes: HttpSession | None = None
        self._session = TokenSafeSession()
        self._session.max_redirects = MAX_REDIRECTS
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

    # ---- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the pool and python-gitlab's session (`aclose` also closes an httpx
        client this object made for itself)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    async def aclose(self) -> None:
        self.close()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None
            self._bytes = None

    def _byte_session(self) -> HttpSession:
        """The shared layer's session for downloads, made on first use (with an httpx
        client of its own only when the worker passed none)."""
        if self._bytes is None:
            if self._http is None:
                self._http = httpx.AsyncClient()
            self._bytes = HttpSession(
                self._http,
                provider="gitlab",
                label="GitLab",
                base_url=self.url,
                policy=self.policy,
                rate_limits=rate_limit,
                throttle=self.throttle,
            )
        return self._bytes

    # ---- what each answer says (runs in the worker threads) ------------------------------

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        limit = rate_limit(response.status_code, response.headers, b"", self._clock())
        self._local.wait = self.throttle.observe(SCOPE, limit, DEFAULT_RATE_LIMIT_WAIT)

    def paused_for(self) -> float:
        """Seconds until GitLab's rate-limit window resets, when we spent it all."""
        return self.throttle.wait_left(SCOPE)

    # ---- calls --------------------------------------------------------------------------

    async def call(self, what: str, fn: Callable[[gitlab.Gitlab], T], *, idempotent: bool) -> T:
        """Run `fn(gl)` on the pool; `what` names the action for error messages.

        `idempotent` is the caller's promise that doing `fn` twice leaves GitLab as doing
        it once does; only then is it repeated after a fault that may have come after
        GitLab acted.
        """
        loop = asyncio.get_running_loop()

        async def attempt(number: int) -> T:
            await self.throttle.wait_for_window(
                SCOPE, f"{what}: GitLab rate limit", MAX_INLINE_WAIT, asyncio.sleep
            )
            return await loop.run_in_executor(self._executor, self._run, what, fn, number)

        return await retrying(attempt, idempotent=idempotent, policy=self.policy)

    def _run(self, what: str, fn: Callable[[gitlab.Gitlab], T], attempt: int) -> T:
        self._local.wait = None
        self._session.attempt.number = attempt
        try:
            return fn(self.gl)
        except (
            requests.Timeout,
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise Fault(f"{what}: {type(exc).__name__}", unsent=_never_sent(exc)) from exc
        except gitlab.exceptions.GitlabError as exc:
            if exc.response_code is not None:
                raise self._translate(
                    what, exc.response_code, exc.error_message, exc.response_body
                ) from exc
            # Parsing errors, refused redirects of a POST: retrying will not change them.
            raise PermanentError(f"{what}: {exc.error_message}") from exc

    def _translate(self, what: str, status: int, message: Any, body: bytes | None) -> Exception:
        text = message if isinstance(message, str) else _gitlab_message(body, str(message))
        if status == 429:
            wait = getattr(self._local, "wait", None)
            return RateLimited(
                f"{what}: GitLab rate limit (429)",
                status=status,
                retry_after=wait if wait is not None else DEFAULT_RATE_LIMIT_WAIT,
                detail=text,
            )
        if status >= 500:
            return Fault(f"{what}: GitLab answered {status}", unsent=False, status=status)
        if status == 401:
            said = f"GitLab refused the token (401 {text}); check HERALD_GITLAB_TOKEN"
        elif status == 403:
            said = (
                f"forbidden (403 {text}); the token needs scope "
                "`api` and the Developer role on the project"
            )
        elif status == 404:
            said = f"not found (404 {text})"
        else:
            said = f"GitLab answered {status}: {text}"
        return error_for_status(status, f"{what}: {said}", detail=text)

    # ---- python-gitlab shortcuts: never sleep inside python-gitlab -----------------------

    @staticmethod
    def _opts() -> dict[str, Any]:
        return {"obey_rate_limit": False, "retry_transient_errors": False, "max_retries": 0}

    async def get(self, what: str, path: str, query: dict[str, Any] | None = None) -> Any:
        def run(gl: gitlab.Gitlab) -> Any:
            return gl.http_get(path, query_data=query or {}, **self._opts())

        return await self.call(what, run, idempotent=True)

    async def head(
        self, what: str, path: str, query: dict[str, Any] | None = None
    ) -> dict[str, str]:
        """A HEAD: the answer's headers, lower-cased (GitLab's repository files API says a
        file's blob id and size there, without the content)."""

        def run(gl: gitlab.Gitlab) -> dict[str, str]:
            response = gl.http_request("head", path, query_data=query or {}, **self._opts())
            return {name.lower(): value for name, value in response.headers.items()}

        return await self.call(what, run, idempotent=True)

    def _url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = f"{self.gl.api_url}{path}"
        return f"{url}?{urlencode(query)}" if query else url

    async def get_json_capped(
        self, what: str, path: str, query: dict[str, Any] | None = None
    ) -> Any:
        """A GET whose JSON answer may be huge (test reports): read with a size cap."""
        buffer = bytearray()
        async for chunk in self.stream(what, path, self.max_json_bytes, query):
            buffer += chunk
        try:
            return json.loads(bytes(buffer))
        except ValueError as exc:
            raise PermanentError(f"{what}: GitLab sent malformed JSON") from exc

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

    async def stream(
        self, what: str, path: str, max_bytes: int, query: Mapping[str, Any] | None = None
    ) -> AsyncIterator[bytes]:
        """The body of a GET, chunk by chunk, refusing more than `max_bytes` in total.

        Through the shared layer: object storage redirects are followed without the token,
        the response is closed however the consumer stops.
        """
        chunks = self._byte_session().download(
            self._url(path, query),
            what=what,
            max_bytes=max_bytes,
            headers={"PRIVATE-TOKEN": self._token, "User-Agent": "Herald"},
            scope=SCOPE,
            max_redirects=MAX_REDIRECTS,
        )
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    async def upload(
        self, what: str, path: str, body: Callable[[], AsyncIterable[bytes]], size: int,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        """A PUT of `size` bytes streamed from `body()` (a file on disk), through the shared
        layer as downloads go; sent once: GitLab keeps every upload of a package file, so
        the caller reads back after a lost answer. The decoded JSON answer."""
        response = await self._byte_session().request(
            "PUT", self._url(path, query),
            {"PRIVATE-TOKEN": self._token, "User-Agent": "Herald",
             "Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body, idempotent=False, scope=SCOPE, what=what,
        )
        try:
            return response.json()
        except ValueError as exc:
            raise PermanentError(f"{what}: GitLab sent malformed JSON") from exc
