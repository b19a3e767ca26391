"""The shared HTTP layer (providers/http.py): what every provider client gets from it.

Most cases run against `httpx.MockTransport`, where the network itself is not the point and
the fake records each request as the layer sent it; the redirect cases run on loopback,
two uvicorn servers on two ports, so "another origin" is a real one.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from providers.base import OutcomeUnknown, PermanentError, TransientError
from providers.github.api import rate_limit as github_rate_limit
from providers.gitlab.api import rate_limit as gitlab_rate_limit
from providers.http import (
    ClientError,
    Fault,
    Forbidden,
    HttpSession,
    NotFound,
    Policy,
    RateLimit,
    RateLimited,
    ServerError,
    StatusError,
    Throttle,
    TooLarge,
    Unauthorized,
    error_for_status,
    loggable,
    parse_retry_after,
    retry_after_only,
    retrying,
)
from tests.fakes.gitlab import serve

API = "https://api.example"
NOW = 1_800_000_000.0

Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """An injected sleep that records each wait and lets time pass on `clock`."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.waits: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.now += seconds


def answers(*responses: httpx.Response | type[Exception]) -> tuple[Handler, list[httpx.Request]]:
    """A transport handler giving `responses` in turn (an exception class is raised, as a
    transport fault), and the list of requests it saw."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, type):
            raise item("fault", request=request)  # type: ignore[call-arg]
        return item

    return handle, seen


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def session_for(
    handler: Handler,
    *,
    sleeps: Sleeps | None = None,
    clock: Clock | None = None,
    **options: Any,
) -> HttpSession:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpSession(
        client,
        provider="test",
        label="Test",
        base_url=API,
        sleep=sleeps or Sleeps(),
        clock=clock or Clock(),
        **options,
    )


# ---- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", 0.0),  # never a wait into the past
        (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
        (email.utils.formatdate(NOW - 90, usegmt=True), 0.0),
        ("soon", None),
        ("nan", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_as_an_http_date(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value, NOW) == seconds


async def test_a_429_with_an_http_date_retry_after_comes_back_then() -> None:
    handler, _ = answers(
        httpx.Response(429, headers={"retry-after": email.utils.formatdate(NOW + 45, usegmt=True)})
    )
    with pytest.raises(RateLimited) as caught:
        await session_for(handler).send("GET", f"{API}/x", idempotent=True)
    assert caught.value.retry_after == pytest.approx(45, abs=1)
    assert caught.value.status == 429


# ---- rate-limit headers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, {"x-ratelimit-remaining": "12"}, b"", RateLimit()),
        # spent by this answer: the next request waits for the reset (+1 s)
        (200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 120)}, b"",
         RateLimit(wait=121)),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 120)}, b"",
         RateLimit(refused=True, wait=121)),
        (403, {}, b'{"message": "You have exceeded a secondary rate limit."}',
         RateLimit(refused=True, wait=60)),
        (403, {"retry-after": "30"}, b"", RateLimit(refused=True, wait=30)),
        (429, {}, b"", RateLimit(refused=True, wait=60)),
        (403, {}, b'{"message": "Resource not accessible by integration"}', RateLimit()),
    ],
)
def test_github_reads_its_primary_and_secondary_limits(
    status: int, headers: dict[str, str], body: bytes, expected: RateLimit
) -> None:
    assert github_rate_limit(status, httpx.Headers(headers), body, NOW) == expected


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {"RateLimit-Remaining": "599"}, RateLimit()),
        (200, {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 30)},
         RateLimit(wait=30)),
        # RateLimit-Reset is a Unix time, not a delta
        (429, {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(NOW) + 42)},
         RateLimit(refused=True, wait=42)),
        (429, {"Retry-After": "7", "RateLimit-Reset": str(int(NOW) + 42)},
         RateLimit(refused=True, wait=7)),
        (429, {}, RateLimit(refused=True, wait=None)),
    ],
)
def test_gitlab_reads_ratelimit_remaining_and_reset(
    status: int, headers: dict[str, str], expected: RateLimit
) -> None:
    assert gitlab_rate_limit(status, httpx.Headers(headers), b"", NOW) == expected


async def test_a_spent_window_blocks_the_scope_without_sending() -> None:
    clock = Clock()
    handler, seen = answers(
        httpx.Response(200, headers={"x-ratelimit-remaining": "0",
                                     "x-ratelimit-reset": str(int(NOW) + 100)})
    )
    session = session_for(handler, clock=clock, rate_limits=github_rate_limit)
    await session.send("GET", f"{API}/a", idempotent=True, scope="installation-1")
    with pytest.raises(TransientError, match="rate limit") as caught:
        await session.send("GET", f"{API}/b", idempotent=True, scope="installation-1")
    assert caught.value.retry_after == pytest.approx(101)
    assert len(seen) == 1
    # Another scope (another installation) is not blocked.
    await session.send("GET", f"{API}/c", idempotent=True, scope="installation-2")
    assert len(seen) == 2


async def test_a_short_block_is_slept_through_when_the_policy_allows() -> None:
    clock = Clock()
    sleeps = Sleeps(clock)
    handler, seen = answers(
        httpx.Response(200, headers={"RateLimit-Remaining": "0",
                                     "RateLimit-Reset": str(int(NOW) + 1)}),
        httpx.Response(200),
    )
    session = session_for(handler, sleeps=sleeps, clock=clock, rate_limits=gitlab_rate_limit,
                          policy=Policy(max_inline_wait=2.0))
    await session.send("GET", f"{API}/a", idempotent=True)
    await session.send("GET", f"{API}/b", idempotent=True)
    assert sleeps.waits == [pytest.approx(1.0)]
    assert len(seen) == 2


async def test_a_provider_without_headers_of_its_own_still_honours_a_429() -> None:
    handler, _ = answers(httpx.Response(429, headers={"retry-after": "12"}))
    with pytest.raises(RateLimited) as caught:
        await session_for(handler, rate_limits=retry_after_only).send(
            "GET", f"{API}/x", idempotent=True
        )
    assert caught.value.retry_after == 12


async def test_a_provider_plugs_in_its_own_rate_limit_headers() -> None:
    def bitbucket_like(status: int, headers: Any, body: bytes, now: float) -> RateLimit:
        if headers.get("x-ratelimit-nearlimit") == "true":
            return RateLimit(wait=5)
        return RateLimit()

    handler, seen = answers(httpx.Response(200, headers={"x-ratelimit-nearlimit": "true"}))
    session = session_for(handler, rate_limits=bitbucket_like)
    await session.send("GET", f"{API}/a", idempotent=True)
    with pytest.raises(TransientError) as caught:
        await session.send("GET", f"{API}/b", idempotent=True)
    assert caught.value.retry_after == pytest.approx(5)
    assert len(seen) == 1


def test_a_block_never_outlasts_an_hour() -> None:
    throttle = Throttle(Clock())
    assert throttle.block("s", 10**9) == 3600


# ---- retries: only what may be sent twice --------------------------------------------------


async def test_a_5xx_on_an_idempotent_request_is_retried_then_succeeds(sleeps: Sleeps) -> None:
    handler, seen = answers(httpx.Response(502), httpx.Response(502), httpx.Response(200))
    response = await session_for(handler, sleeps=sleeps).send("GET", f"{API}/x", idempotent=True)
    assert response.status_code == 200
    assert len(seen) == 3
    assert len(sleeps.waits) == 2


async def test_a_lasting_5xx_becomes_a_server_error_with_its_status() -> None:
    handler, seen = answers(httpx.Response(503))
    with pytest.raises(ServerError, match="503") as caught:
        await session_for(handler).send("GET", f"{API}/x", idempotent=True)
    assert caught.value.status == 503
    assert len(seen) == Policy().attempts


@pytest.mark.parametrize(
    "fault", [httpx.Response(502), httpx.ReadTimeout, httpx.RemoteProtocolError]
)
async def test_a_write_that_may_have_happened_is_never_resent(fault: Any) -> None:
    handler, seen = answers(fault)
    with pytest.raises(OutcomeUnknown):
        await session_for(handler).send("POST", f"{API}/comments", content=b"{}", idempotent=False)
    assert len(seen) == 1


async def test_a_write_that_never_left_is_retried_and_stays_an_ordinary_transient_error() -> None:
    handler, seen = answers(httpx.ConnectError)
    with pytest.raises(TransientError) as caught:
        await session_for(handler).send("POST", f"{API}/comments", content=b"{}", idempotent=False)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert "ConnectError" in str(caught.value)
    assert len(seen) == Policy().attempts


async def test_a_4xx_is_answered_at_once_never_retried() -> None:
    handler, seen = answers(httpx.Response(422, json={"message": "Validation Failed"}))
    with pytest.raises(ClientError) as caught:
        await session_for(handler).request("GET", f"{API}/x", idempotent=True, what="read x")
    assert (caught.value.status, caught.value.detail) == (422, "Validation Failed")
    assert str(caught.value) == "read x: Test answered 422: Validation Failed"
    assert len(seen) == 1


async def test_a_refused_request_is_not_retried_in_place() -> None:
    handler, seen = answers(httpx.Response(429, headers={"retry-after": "1"}))
    with pytest.raises(RateLimited):
        await session_for(handler).send("GET", f"{API}/x", idempotent=True)
    assert len(seen) == 1


async def test_jittered_waits_stay_within_the_doubling_window() -> None:
    policy = Policy(attempts=6, backoff=0.25, max_backoff=4.0)
    for _ in range(50):
        sleeps = Sleeps()
        with pytest.raises(TransientError):
            await retrying(_always_unsent, idempotent=True, policy=policy, sleep=sleeps)
        assert len(sleeps.waits) == 5
        for retry, wait in enumerate(sleeps.waits):
            assert 0 <= wait <= min(4.0, 0.25 * 2**retry)


async def _always_unsent(attempt: int) -> None:
    raise Fault(f"attempt {attempt}", unsent=True)


async def test_writes_of_one_scope_go_one_at_a_time_when_the_policy_says() -> None:
    in_flight = most = 0

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(201)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    session = HttpSession(client, provider="t", label="T", base_url=API,
                          policy=Policy(serialize_writes=True))
    await asyncio.gather(*(session.send("POST", f"{API}/c", content=b"{}", idempotent=False)
                           for _ in range(4)))
    assert most == 1


# ---- errors typed by status ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "permanent"),
    [
        (400, ClientError, True),
        (401, Unauthorized, True),
        (403, Forbidden, True),
        (404, NotFound, True),
        (410, NotFound, True),
        (422, ClientError, True),
        (500, ServerError, False),
        (503, ServerError, False),
    ],
)
def test_each_status_has_its_error_type(status: int, kind: type, permanent: bool) -> None:
    error = error_for_status(status, "what", detail="said")
    assert type(error) is kind
    assert isinstance(error, PermanentError) is permanent
    assert isinstance(error, TransientError) is not permanent
    assert isinstance(error, StatusError) and error.status == status


async def test_requests_outside_the_api_origin_are_refused() -> None:
    handler, seen = answers(httpx.Response(200))
    with pytest.raises(PermanentError, match="outside"):
        await session_for(handler).send("GET", "https://evil.example/steal", idempotent=True)
    assert seen == []


def test_the_log_line_masks_secret_query_values() -> None:
    assert loggable("https://Host.example/a/b?page=2&private_token=abc&sig=x") == (
        "host.example", "/a/b?page=2&private_token=***&sig=***"
    )


# ---- downloads: capped, streamed, credentials only on the API origin -----------------------


class Storage:
    """Object storage on another origin: records the headers it is sent."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.seen: list[dict[str, str]] = []
        self.app = Starlette(routes=[Route("/blob", self.blob)])

    async def blob(self, request: Request) -> Response:
        self.seen.append({k.lower(): v for k, v in request.headers.items()})

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(self.data), 1000):
                yield self.data[start : start + 1000]

        return StreamingResponse(chunks())  # no Content-Length: the cap is counted


class Api:
    """The API origin: one redirect to `target`, which may come back to the API."""

    def __init__(self) -> None:
        self.target = ""
        self.seen: list[dict[str, str]] = []
        self.app = Starlette(routes=[Route("/artifact", self.artifact),
                                     Route("/direct", self.direct),
                                     Route("/gone", self.gone)])

    async def artifact(self, request: Request) -> Response:
        self.seen.append({k.lower(): v for k, v in request.headers.items()})
        return RedirectResponse(self.target, status_code=302)

    async def direct(self, request: Request) -> Response:
        self.seen.append({k.lower(): v for k, v in request.headers.items()})
        return Response(b"x" * 5000)

    async def gone(self, request: Request) -> Response:
        return Response(b'{"message": "artifact expired"}', status_code=410)


@pytest.fixture
def origins() -> Iterator[tuple[Api, Storage, str, str]]:
    api, storage = Api(), Storage(b"PK" + b"z" * 9_998)
    with serve(api.app) as api_url, serve(storage.app) as storage_url:
        api.target = f"{storage_url.replace('127.0.0.1', 'localhost')}/blob?sig=short-lived"
        yield api, storage, api_url, storage_url


CREDENTIALS = {"Authorization": "token t0ken", "PRIVATE-TOKEN": "glpat-x",
               "Circle-Token": "cc-x", "Cookie": "session=s3cret"}


async def _download(session: HttpSession, url: str, max_bytes: int = 1_000_000) -> bytes:
    chunks = [c async for c in session.download(url, what="artifact", max_bytes=max_bytes,
                                                headers=CREDENTIALS)]
    return b"".join(chunks)


async def test_a_cross_origin_redirect_drops_every_credential(origins: Any) -> None:
    api, storage, api_url, _ = origins
    async with httpx.AsyncClient(headers={"Authorization": "Bearer client-default"},
                                 cookies={"jar": "s3cret"}) as client:
        session = HttpSession(client, provider="t", label="T", base_url=api_url)
        data = await _download(session, f"{api_url}/artifact")
    assert data == storage.data
    [sent] = storage.seen
    assert not {"authorization", "private-token", "circle-token", "cookie"} & set(sent)
    # ...while the API origin itself was sent them.
    [asked] = api.seen
    assert asked["private-token"] == "glpat-x" and asked["authorization"] == "token t0ken"


async def test_a_download_origin_keeps_the_credentials_and_a_hop_elsewhere_drops_them(
    origins: Any,
) -> None:
    """A second origin the provider serves downloads from (CircleCI's artifact host) is
    asked with the credentials, directly; any other origin still gets none."""
    api, storage, api_url, storage_url = origins
    storage_origin = storage_url.replace("127.0.0.1", "localhost")
    async with httpx.AsyncClient() as client:
        session = HttpSession(client, provider="t", label="T", base_url=api_url,
                              download_origins=[storage_origin])
        data = await _download(session, f"{storage_origin}/blob")
        api.target = f"{storage_url}/blob"  # 127.0.0.1: not the download origin
        await _download(session, f"{api_url}/artifact")
        with pytest.raises(PermanentError, match="outside"):
            await _download(session, f"{storage_url}/blob")
    assert data == storage.data
    direct, redirected = storage.seen
    assert direct["circle-token"] == "cc-x" and direct["private-token"] == "glpat-x"
    assert not {"authorization", "private-token", "circle-token", "cookie"} & set(redirected)


async def test_a_download_over_the_cap_stops_while_streaming(origins: Any) -> None:
    _, storage, api_url, _ = origins
    async with httpx.AsyncClient() as client:
        session = HttpSession(client, provider="t", label="T", base_url=api_url)
        with pytest.raises(TooLarge, match="4,096-byte limit"):
            await _download(session, f"{api_url}/artifact", max_bytes=4096)
    assert len(storage.seen) == 1


async def test_a_declared_length_over_the_cap_is_refused_before_reading(origins: Any) -> None:
    _, _, api_url, _ = origins
    async with httpx.AsyncClient() as client:
        session = HttpSession(client, provider="t", label="T", base_url=api_url)
        with pytest.raises(TooLarge, match="5,000 bytes is over the 100-byte limit"):
            await _download(session, f"{api_url}/direct", max_bytes=100)


async def test_an_expired_download_is_not_found_with_the_server_s_words(origins: Any) -> None:
    _, _, api_url, _ = origins
    async with httpx.AsyncClient() as client:
        session = HttpSession(client, provider="t", label="T", base_url=api_url)
        with pytest.raises(NotFound) as caught:
            await _download(session, f"{api_url}/gone")
    assert (caught.value.status, caught.value.detail) == (410, "artifact expired")


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("ftp://storage.example/a.zip", "refusing to download from ftp"),
        ("https://user:pw@storage.example/a.zip", "carries credentials"),
    ],
)
async def test_odd_redirect_targets_are_refused(location: str, message: str) -> None:
    handler, seen = answers(httpx.Response(302, headers={"location": location}))
    with pytest.raises(PermanentError, match=message):
        await _download(session_for(handler), f"{API}/artifact")
    assert len(seen) == 1


async def test_a_download_follows_no_more_redirects_than_allowed() -> None:
    handler, seen = answers(httpx.Response(302, headers={"location": f"{API}/again"}))
    session = session_for(handler)
    with pytest.raises(PermanentError, match="more than 2 redirects"):
        async for _ in session.download(f"{API}/a", what="artifact", max_bytes=10,
                                        max_redirects=2):
            pass
    assert len(seen) == 3


async def test_a_download_never_starts_outside_the_api_origin() -> None:
    handler, seen = answers(httpx.Response(200))
    with pytest.raises(PermanentError, match="outside"):
        await _download(session_for(handler), "https://storage.example/a.zip")
    assert seen == []


# ---- one log line per request --------------------------------------------------------------


async def test_each_attempt_writes_one_line_with_its_status_and_number() -> None:
    handler, _ = answers(httpx.Response(502), httpx.Response(200))
    with capture_logs() as lines:
        await session_for(handler).send("GET", f"{API}/runs/1?access_token=abc", idempotent=True)
    calls = [line for line in lines if line["event"] == "http request"]
    assert [(c["method"], c["host"], c["path"], c["status"], c["attempt"]) for c in calls] == [
        ("GET", "api.example", "/runs/1?access_token=***", 502, 1),
        ("GET", "api.example", "/runs/1?access_token=***", 200, 2),
    ]
    assert all(c["provider"] == "test" and c["duration_ms"] >= 0 for c in calls)


async def test_credentials_stay_dropped_when_a_redirect_leads_back_to_the_api() -> None:
    handler, seen = answers(
        httpx.Response(302, headers={"location": "https://storage.example/a"}),
        httpx.Response(302, headers={"location": f"{API}/again"}),
        httpx.Response(200, content=b"data"),
    )
    assert await _download(session_for(handler), f"{API}/artifact") == b"data"
    assert [str(r.url) for r in seen] == [
        f"{API}/artifact", "https://storage.example/a", f"{API}/again"
    ]
    assert "private-token" in seen[0].headers
    assert not any({"authorization", "private-token", "circle-token", "cookie"}
                   & set(r.headers) for r in seen[1:])


async def test_object_storage_that_says_429_is_transient_not_permanent() -> None:
    handler, _ = answers(
        httpx.Response(302, headers={"location": "https://storage.example/a"}),
        httpx.Response(429, headers={"retry-after": "20"}),
    )
    with pytest.raises(RateLimited) as caught:
        await _download(session_for(handler), f"{API}/artifact")
    assert caught.value.retry_after == 20
