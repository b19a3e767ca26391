"""Azure DevOps' REST API over Herald's shared HTTP layer, and what its answers say about limits.

One `AzureDevOpsAPI` per organization (its URL: `https://dev.azure.com/{organization}`
or an Azure DevOps Server collection), over the worker's httpx client through
`providers.http.HttpSession`, which brings the timeouts, quick jittered retries, the
one-origin rule, typed errors and one log line per request. Azure DevOps' own parts:

- authentication: a personal access token as HTTP Basic with an empty user name
  (https://learn.microsoft.com/azure/devops/organizations/accounts/use-personal-access-tokens-to-authenticate);
- `api-version` on every call (`API_VERSION`; the stages API is a preview, its own);
- rate limits (https://learn.microsoft.com/azure/devops/integrate/concepts/rate-limits):
  a request over the global consumption limit is first *delayed* (answered, after a wait,
  with `Retry-After` on a 200), then *blocked* (429 with `Retry-After`). Both block the
  organization's scope for the seconds named: a delayed answer is kept, and the requests
  after it wait, in place up to `MAX_INLINE_WAIT`, longer back on the queue;
- identities live on another host for Azure DevOps Services (`vssps.dev.azure.com`), the
  same one for a Server collection (`identity_url`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import httpx

from providers.base import PermanentError
from providers.http import (
    HttpSession,
    Policy,
    RateLimit,
    Throttle,
    number,
    parse_retry_after,
)

API_VERSION: Final = "7.1"
#: The stages API (retry a failed stage) exists only as a preview.
STAGES_API_VERSION: Final = "7.1-preview.1"
DEFAULT_TIMEOUT: Final = 15.0
#: Waits up to this long (a delayed request's `Retry-After`) are slept through in place.
MAX_INLINE_WAIT: Final = 5.0
#: When a 429 names no wait at all.
DEFAULT_RATE_LIMIT_WAIT: Final = 30.0
#: Pages of a list followed at most (`x-ms-continuationtoken`).
MAX_PAGES: Final = 20
CONTINUATION: Final = "x-ms-continuationtoken"


def rate_limit(status: int, headers: Mapping[str, str], body: bytes, now: float) -> RateLimit:
    """Azure DevOps' limits from one answer: a 429 is a refusal; a `Retry-After` on any
    other answer (a delayed request) asks for a pause before the next one."""
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    if status == 429:
        if retry_after is None:
            reset = number(headers.get("x-ratelimit-reset"))
            retry_after = max(0.0, reset - now) if reset is not None else None
        return RateLimit(refused=True, wait=retry_after)
    if retry_after is not None and retry_after > 0:
        return RateLimit(wait=retry_after)
    return RateLimit()


def identity_url(organization_url: str) -> str:
    """Where the identities API of an organization is: `vssps.dev.azure.com/{org}` for
    Azure DevOps Services, the collection itself for a Server."""
    parts = urlsplit(organization_url)
    if (parts.hostname or "").lower() == "dev.azure.com":
        return f"{parts.scheme}://vssps.dev.azure.com{parts.path}".rstrip("/")
    return organization_url.rstrip("/")


class AzureDevOpsAPI:
    """JSON requests to one organization (and its identities host), `api-version` added."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        throttle: Throttle | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.scope = urlsplit(self.url).path.strip("/") or "organization"
        per_request = httpx.Timeout(timeout, connect=min(5.0, timeout))
        policy = Policy(
            timeout=per_request,
            download_timeout=httpx.Timeout(max(60.0, timeout), connect=min(10.0, timeout)),
            max_inline_wait=MAX_INLINE_WAIT,
            default_rate_limit_wait=DEFAULT_RATE_LIMIT_WAIT,
        )
        throttle = throttle or Throttle()
        basic = base64.b64encode(f":{token}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}", "Accept": "application/json",
                        "User-Agent": "Herald"}
        self.session = HttpSession(http, provider="azure-devops", label="Azure DevOps",
                                   base_url=self.url, policy=policy, rate_limits=rate_limit,
                                   throttle=throttle)
        self.identities = self.session
        vssps = identity_url(self.url)
        if vssps != self.url:
            self.identities = HttpSession(http, provider="azure-devops", label="Azure DevOps",
                                          base_url=vssps, policy=policy,
                                          rate_limits=rate_limit, throttle=throttle)

    def address(self, path: str, query: Mapping[str, Any] | None = None, *,
                version: str = API_VERSION, base: str | None = None) -> str:
        params = {**(query or {}), "api-version": version}
        return f"{base or self.url}{path}?{urlencode(params, safe='/:$')}"

    async def call(
        self,
        what: str,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        *,
        idempotent: bool,
        version: str = API_VERSION,
        identities: bool = False,
    ) -> tuple[Any, httpx.Headers]:
        """One request; its JSON answer and headers. Errors are typed by status."""
        session = self.identities if identities else self.session
        headers = dict(self.headers)
        content = b""
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
        response = await session.request(
            method, self.address(path, query, version=version, base=session.base_url),
            headers, content, idempotent=idempotent, scope=self.scope, what=what,
        )
        if not response.content:
            return None, response.headers
        try:
            return response.json(), response.headers
        except ValueError:
            raise PermanentError(f"{what}: Azure DevOps sent no JSON") from None

    async def get(self, what: str, path: str, query: Mapping[str, Any] | None = None,
                  **options: Any) -> Any:
        data, _ = await self.call(what, "GET", path, query, idempotent=True, **options)
        return data

    async def list(self, what: str, path: str, query: Mapping[str, Any] | None = None,
                   **options: Any) -> list[dict[str, Any]]:
        """`value` of a list answer, following `x-ms-continuationtoken` pages."""
        found: list[dict[str, Any]] = []
        params = dict(query or {})
        for _ in range(MAX_PAGES):
            data, headers = await self.call(what, "GET", path, params, idempotent=True,
                                            **options)
            values = data.get("value") if isinstance(data, dict) else None
            found.extend(v for v in values or [] if isinstance(v, dict))
            token = headers.get(CONTINUATION)
            if not token:
                break
            params["continuationToken"] = token
        return found

    async def post(self, what: str, path: str, body: Any, *, idempotent: bool,
                   query: Mapping[str, Any] | None = None, **options: Any) -> Any:
        data, _ = await self.call(what, "POST", path, query, body, idempotent=idempotent,
                                  **options)
        return data

    async def patch(self, what: str, path: str, body: Any, *, idempotent: bool,
                    query: Mapping[str, Any] | None = None, **options: Any) -> Any:
        data, _ = await self.call(what, "PATCH", path, query, body, idempotent=idempotent,
                                  **options)
        return data

    async def delete(self, what: str, path: str) -> None:
        await self.call(what, "DELETE", path, idempotent=True)
