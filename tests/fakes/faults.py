"""What every loopback fake of a provider API does the same way: faults injected by
request (`"METHOD /path"` matched by a pattern), answers lost after the work was done, a
hang held until the client gives up, and the uvicorn thread that serves the fake.

A fake keeps one `Faults` and asks it, for each request, whether to fail it
(`take_fault`) or to lose its answer (`take_lost`); how a failure is answered (the body,
GitLab's or Bitbucket's words) stays the fake's own.
"""

from __future__ import annotations

import abc
import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bot.embedded_redis import free_port
from tests.fakes.lost import drop_answer


@dataclass(frozen=True)
class Call:
    """One request a fake received, as it came (a `fault` it was answered with instead)."""

    method: str
    path: str  # as sent, still URL-encoded
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]
    fault: int | str | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Fault:
    pattern: re.Pattern[str]
    times: int
    status: int = 429
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class LostAnswer:
    pattern: re.Pattern[str]
    times: int
    how: str  # "timeout": never answered, until the client gives up; "reset": RST


class Faults:
    """The faults and lost answers a test asked for, used up request by request."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.lost_answers: list[LostAnswer] = []
        self._lock = threading.Lock()
        self._released = threading.Event()

    def fail(self, pattern: str, *, times: int, status: int, hang: bool,
             headers: dict[str, str]) -> None:
        self.faults.append(Fault(re.compile(pattern), times, status, hang, headers))

    def lose(self, pattern: str, *, how: str, times: int) -> None:
        if how not in ("timeout", "reset"):
            raise ValueError(f"a lost answer times out or resets, not {how!r}")
        self.lost_answers.append(LostAnswer(re.compile(pattern), times, how))

    def take_fault(self, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.pattern.search(target):
                    fault.times -= 1
                    return fault
        return None

    def take_lost(self, target: str) -> str | None:
        with self._lock:
            for lost in self.lost_answers:
                if lost.times > 0 and lost.pattern.search(target):
                    lost.times -= 1
                    return lost.how
        return None

    async def hold(self, request: Request) -> None:
        """Answer nothing until the client hangs up or the test ends."""
        while not self._released.is_set():
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.05)

    def release(self) -> None:
        """Let every hanging request finish (at teardown)."""
        self._released.set()


class FakeAPI(abc.ABC):
    """The ASGI side every provider fake shares: each request is answered by the fake's
    `_handle`, or done and its answer lost when `lose_answer` asked (`_handle` marks the
    request `herald.lost`); what was asked is in `calls`."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.injected = Faults()
        #: (pattern, seconds): requests matching a pattern are answered that much later.
        self.slow: list[tuple[re.Pattern[str], float]] = []
        #: Requests being answered now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0

    def delay(self, pattern: str, seconds: float) -> None:
        """Answer every request whose `"METHOD /path"` (as sent) matches `pattern` only after
        `seconds`: a slow API, whose requests a client should have in flight together."""
        self.slow.append((re.compile(pattern), seconds))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        target = f"{scope['method']} {unquote(scope['path'])}"
        pause = max((s for p, s in self.slow if p.search(target)), default=0.0)
        self.in_flight += 1  # one event loop serves the fake: no lock needed
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if pause:
                await asyncio.sleep(pause)
            response = await self._handle(request)
        finally:
            self.in_flight -= 1
        lost = scope.get("herald.lost")
        if lost is None:
            await response(scope, receive, send)
        else:
            await drop_answer(lost, receive, send)

    @abc.abstractmethod
    async def _handle(self, request: Request) -> Response:
        """The fake's answer to one request (its routes, checks and recorded calls)."""

    #: (method, compiled path pattern, handler) of each endpoint the fake serves.
    routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]]

    def route(self, method: str, raw_path: str) -> tuple[Callable[..., Any], dict[str, str]]:
        """The handler of `method` on `raw_path` (percent-encoded as sent) and its decoded
        path parameters; `LookupError` when the fake serves no such endpoint."""
        for route_method, pattern, handler in self.routes:
            match = pattern.match(raw_path)
            if match and route_method == method:
                return handler, {k: unquote(v) for k, v in match.groupdict().items()}
        raise LookupError(f"{method} {raw_path}")

    def intercept(self, request: Request, target: str) -> tuple[Fault | None, str | None]:
        """The fault to answer `target` (`"METHOD /path"`) with, or how its answer is to be
        lost once it is done (marked on the request for `__call__`)."""
        fault = self.injected.take_fault(target)
        lost = self.injected.take_lost(target) if fault is None else None
        if lost is not None:
            request.scope["herald.lost"] = lost
        return fault, lost

    async def received(self, request: Request) -> tuple[Call, Fault | None]:
        """Record `request` as sent (raw path, query, body, lower-case headers) and say the
        fault to answer it with instead of doing it; a hanging one is held here until the
        client gives up."""
        raw = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        path = raw.split("?", 1)[0]
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        fault, lost = self.intercept(request, f"{request.method} {path}")
        outcome: int | str | None = lost
        if fault is not None:
            outcome = "hang" if fault.hang else fault.status
        call = Call(request.method, path, dict(request.query_params.items()), body, headers,
                    outcome)
        self.calls.append(call)
        if fault is not None and fault.hang:
            await self.injected.hold(request)
        return call, fault

    def lose_answer(self, pattern: str, *, how: str = "timeout", times: int = 1) -> None:
        """Do the next `times` requests whose `"METHOD /path"` matches `pattern`, then lose
        their answers: `how="timeout"` sends nothing until the client hangs up, `"reset"`
        resets the connection at once."""
        self.injected.lose(pattern, how=how, times=times)

    def release(self) -> None:
        """Let every hanging request finish (at teardown)."""
        self.injected.release()

    def calls_to(self, method: str, pattern: str) -> list[Any]:
        regex = re.compile(pattern)
        return [c for c in self.calls if c.method == method and regex.search(c.path)]


@contextmanager
def serve(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Run `app` with uvicorn on a free loopback port in a thread; yields its base URL.
    A fake with a `release()` has its hanging requests let go before the server stops."""
    port = free_port()
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                            lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://{host}:{port}"
    finally:
        release = getattr(app, "release", None)
        if callable(release):
            release()
        server.should_exit = True
        thread.join(timeout=10)
