"""Bitbucket Cloud's REST API (2.0) over Herald's shared HTTP layer.

Everything goes through `providers.http.HttpSession`: the timeouts, quick jittered
retries, the one-origin rule (a `next` page link must stay on the configured API origin),
the typed errors and the one log line per request. What is Bitbucket's own:

- credentials (https://developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication):
  a repository, project or workspace access token is sent as `Authorization: Bearer`; an
  API token of a user goes as HTTP Basic with the Atlassian account's email. App passwords
  are retired (creation stopped on 9 September 2025, removed on 28 July 2026) and are not
  offered;
- rate limits (https://support.atlassian.com/bitbucket-cloud/docs/api-request-limits/):
  a rolling hour per resource; a refusal is a 429. Bitbucket documents no `Retry-After`,
  so one is honoured when it comes and `DEFAULT_RATE_LIMIT_WAIT` is waited otherwise;
  `X-RateLimit-NearLimit: true` is only logged by the caller's line, never acted on;
- errors: Bitbucket's `{"type": "error", "error": {"message": ..., "detail": ...}}` is
  kept as the error's `detail`, the message saying what was being done;
- lists: `{"values": [...], "next": "<url>"}`, followed while `next` is given, up to the
  caller's limit.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any, Final
from urllib.parse import quote, urlencode

import httpx

from providers.base import PermanentError, ProviderError
from providers.http import (
    ClientError,
    Forbidden,
    HttpSession,
    NotFound,
    Policy,
    RateLimit,
    Unauthorized,
    error_for_status,
    parse_retry_after,
)

__all__ = ["BitbucketAPI", "ClientError", "Forbidden", "NotFound", "Unauthorized", "rate_limit"]

DEFAULT_TIMEOUT: Final = 15.0
#: When Bitbucket refuses a request for its rate limit without saying for how long.
DEFAULT_RATE_LIMIT_WAIT: Final = 60.0
#: Short waits are slept through in place; longer ones go back to the queue.
MAX_INLINE_WAIT: Final = 2.0
#: Items per page: Bitbucket's maximum for most lists.
PAGELEN: Final = 100
#: A list is read up to this many items unless the caller says otherwise.
DEFAULT_LIMIT: Final = 2000
#: The whole token is one scope: Bitbucket counts per credential.
SCOPE: Final = "token"


def rate_limit(status: int, headers: Mapping[str, str], body: bytes, now: float) -> RateLimit:
    """A 429 is a refusal, for `Retry-After` when sent (Bitbucket documents none)."""
    if status == 429:
        return RateLimit(refused=True, wait=parse_retry_after(headers.get("retry-after"), now))
    return RateLimit()


def segment(value: str) -> str:
    """One path segment: `{uuid}` braces and slashes encoded."""
    return quote(value, safe="")


def _bitbucket_detail(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        parts = [error.get("message"), error.get("detail")]
        text = ": ".join(str(p) for p in parts if isinstance(p, str | dict) and p)
        return text
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return ""


class BitbucketAPI:
    """One Bitbucket Cloud API origin with one credential."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        token: str,
        username: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if username:
            pair = f"{username}:{token}".encode()
            self._auth = f"Basic {base64.b64encode(pair).decode('ascii')}"
        else:
            self._auth = f"Bearer {token}"
        self.session = HttpSession(
            http,
            provider="bitbucket",
            label="Bitbucket",
            base_url=self.base_url,
            policy=Policy(
                timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
                max_inline_wait=MAX_INLINE_WAIT,
                default_rate_limit_wait=DEFAULT_RATE_LIMIT_WAIT,
            ),
            rate_limits=rate_limit,
        )

    def url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        url = f"{self.base_url}{path}"
        return f"{url}?{urlencode(query)}" if query else url

    def _headers(self, body: bool) -> dict[str, str]:
        headers = {"Authorization": self._auth, "Accept": "application/json",
                   "User-Agent": "Herald"}
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    async def call(
        self,
        method: str,
        what: str,
        url: str,
        body: Any = None,
        *,
        idempotent: bool,
    ) -> Any:
        """One request; the decoded JSON answer (None for an empty one). `idempotent` is
        the caller's promise that sending it twice does what sending it once does."""
        content = b"" if body is None else json.dumps(body).encode()
        response = await self.session.send(
            method, url, self._headers(body is not None), content,
            idempotent=idempotent, scope=SCOPE,
        )
        return self._answer(what, response)

    def _answer(self, what: str, response: httpx.Response) -> Any:
        """The decoded JSON of an answer (None for an empty one), or its typed error."""
        if response.status_code >= 300:
            raise self._refusal(what, response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise PermanentError(f"{what}: Bitbucket sent malformed JSON") from exc

    def _refusal(self, what: str, response: httpx.Response) -> ProviderError:
        detail = _bitbucket_detail(response.content)
        status = response.status_code
        return error_for_status(status, f"{what}: {self._said(status, detail)}", detail=detail)

    @staticmethod
    def _said(status: int, detail: str) -> str:
        said = f" ({detail})" if detail else ""
        if status == 401:
            return (f"Bitbucket refused the credential (401){said}; check "
                    "HERALD_BITBUCKET_TOKEN and HERALD_BITBUCKET_USERNAME")
        if status == 403:
            return f"forbidden (403){said}; see docs/bitbucket.md for the scopes Herald needs"
        if status == 404:
            return f"not found (404){said}"
        return f"Bitbucket answered {status}{said}"

    async def get(self, what: str, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return await self.call("GET", what, self.url(path, query), idempotent=True)

    async def post(self, what: str, path: str, body: Any, *, idempotent: bool) -> Any:
        return await self.call("POST", what, self.url(path), body, idempotent=idempotent)

    async def put(self, what: str, path: str, body: Any) -> Any:
        """A PUT sets the whole of what it names: repeating it changes nothing more."""
        return await self.call("PUT", what, self.url(path), body, idempotent=True)

    async def delete(self, what: str, path: str) -> None:
        """A DELETE; one already gone is no error (a repeat, or another process)."""
        try:
            await self.call("DELETE", what, self.url(path), idempotent=True)
        except NotFound:
            pass

    async def list(
        self,
        what: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
        stop: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Items of a paginated list, following `next`, up to `limit` (or the first that
        `stop` accepts, included). The flag says whether items were left unread."""
        url: str | None = self.url(path, {"pagelen": PAGELEN, **(query or {})})
        items: list[dict[str, Any]] = []
        while url:
            page = await self.call("GET", what, url, idempotent=True)
            if not isinstance(page, dict):
                raise PermanentError(f"{what}: Bitbucket sent no page")
            for item in page.get("values") or []:
                if not isinstance(item, dict):
                    continue
                if len(items) >= limit:
                    return items, True
                items.append(item)
                if stop is not None and stop(item):
                    return items, False
            following = page.get("next")
            url = following if isinstance(following, str) and following else None
        return items, False

    async def upload(
        self, what: str, path: str, content_type: str, body: Callable[[], AsyncIterable[bytes]],
        size: int, *, idempotent: bool,
    ) -> Any:
        """A POST of `size` bytes streamed from `body()` (a file from disk); the decoded JSON
        answer (None for an empty one)."""
        headers = {**self._headers(False), "Content-Type": content_type,
                   "Content-Length": str(size)}
        response = await self.session.send("POST", self.url(path), headers, body,
                                           idempotent=idempotent, scope=SCOPE)
        return self._answer(what, response)

    async def exists(self, what: str, path: str) -> bool:
        """Whether a GET of `path` finds something: a redirect (a download's file on the
        object store, not followed) or a 200 is yes, a 404 no."""
        response = await self.session.send("GET", self.url(path), self._headers(False),
                                           idempotent=True, scope=SCOPE)
        if response.status_code < 400:
            return True
        if response.status_code == 404:
            return False
        raise self._refusal(what, response)
