"""Fixtures for the web app and worker: a signed test provider, apps bound to a test Redis.

`hmac-test` is a test double of a provider, registered for each test: it signs like GitHub (hex
HMAC-SHA256 of the body in a header) so the ingress is tested independently of any real
provider's payload shapes. End-to-end tests use the real GitHub provider.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette

import providers
from bot.composition import create_app, create_worker
from bot.embedded_redis import free_port
from bot.events import BUILD_COMPLETED, PING, Event, Ignored, RunRef
from bot.queue import RedisQueue
from bot.routing import Router
from bot.settings import Settings
from providers.base import BadPayload, Headers, InvalidSignature, NotConfigured, Provider

TEST_PROVIDER = "hmac-test"
SECRET = "s3cr3t-value-for-tests"
OLD_SECRET = "previous-secret-still-valid"


class HmacTestProvider(Provider):
    """Signed like GitHub; `X-Test-Event: build` is a build, `ping` a ping, others ignored."""

    name: ClassVar[str] = TEST_PROVIDER

    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        if not secrets:
            raise NotConfigured("no webhook secret configured: set HERALD_HMAC_TEST_WEBHOOK_SECRET")
        signature = headers.get("x-test-signature")
        if signature is None:
            raise InvalidSignature("missing X-Test-Signature header")
        expected = [hmac.new(s, body, hashlib.sha256).hexdigest().encode() for s in secrets]
        if not any(hmac.compare_digest(signature.encode(), e) for e in expected):
            raise InvalidSignature("X-Test-Signature does not match any configured secret")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise BadPayload(f"invalid JSON: {exc}") from None
        event = headers.get("x-test-event", "")
        delivery = headers.get("x-test-delivery") or hashlib.sha256(body).hexdigest()
        if event == "build":
            run = RunRef(TEST_PROVIDER, payload.get("repo", "org/repo"), str(payload.get("run", 1)))
            return Event(TEST_PROVIDER, BUILD_COMPLETED, "build", delivery, repo=run.repo,
                         run=run, payload=payload)
        if event == "ping":
            return Event(TEST_PROVIDER, PING, "ping", delivery, payload=payload)
        return Ignored(TEST_PROVIDER, event or "none", f"event {event!r} is not used")


@pytest.fixture(autouse=True)
def test_provider_registered() -> Iterator[None]:
    """`hmac-test` exists only while a test of this package runs (the registry is global)."""
    providers.register(TEST_PROVIDER, HmacTestProvider)
    try:
        yield
    finally:
        providers._registry.pop(TEST_PROVIDER, None)
        providers._instances.pop(TEST_PROVIDER, None)


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_headers(
    body: bytes, *, event: str = "build", delivery: str | None = None, secret: str = SECRET
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-test-event": event,
        "x-test-delivery": delivery or str(uuid.uuid4()),
        "x-test-signature": sign(body, secret),
    }


BUILD_BODY = json.dumps({"repo": "org/repo", "run": 42, "status": "failed"}).encode()


def make_settings(redis_url: str, state_dir: Path, **env: str) -> Settings:
    return Settings.from_env(
        {
            "HERALD_REDIS_URL": redis_url,
            "HERALD_STATE_DIR": str(state_dir),
            "HERALD_HMAC_TEST_WEBHOOK_SECRET": SECRET,
            "HERALD_LOG_FORMAT": "json",
            **env,
        }
    )


@dataclass
class RunningApp:
    app: Starlette
    client: httpx.AsyncClient
    settings: Settings

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def post(self, body: bytes = BUILD_BODY, provider: str = TEST_PROVIDER,
                   **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", None) or delivery_headers(body, **kwargs)
        return await self.client.post(f"/webhooks/{provider}", content=body, headers=headers)


AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[RunningApp]]


@pytest.fixture
def start_app(redis_url: str, tmp_path: Path) -> AppFactory:
    """`async with start_app(**env) as running:` an app with its lifespan, over ASGI."""

    @contextlib.asynccontextmanager
    async def start(redis: str | None = None, **env: str) -> AsyncIterator[RunningApp]:
        settings = make_settings(redis or redis_url, tmp_path / "state", **env)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://herald") as client:
                yield RunningApp(app, client, settings)

    return start


@pytest.fixture
async def running(start_app: AppFactory) -> AsyncIterator[RunningApp]:
    async with start_app() as app:
        yield app


@dataclass
class ServerThread:
    """A real uvicorn server on a free loopback port, in a thread with its own loop."""

    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread


@pytest.fixture
def serve_app(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def start(**env: str) -> ServerThread:
        settings = make_settings(redis_url, tmp_path / "state", **env)
        port = free_port()
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                log_config=None, access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        running = ServerThread(f"http://127.0.0.1:{port}", port, server, thread)
        started.append(running)
        return running

    yield start
    for running in started:
        running.server.should_exit = True
        running.thread.join(timeout=10)



#: The queue name the queue and worker tests use: the default, with today's key layout.
QUEUE = "herald:queue"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def queue(redis: Redis) -> AsyncIterator[RedisQueue]:
    queue = RedisQueue(redis, queue_name=QUEUE)
    yield queue
    await queue.aclose()


async def run_burst(settings: Settings, router: Router) -> None:
    """A burst worker with `router`'s handlers, until the queue is empty."""
    worker = create_worker(settings, router, burst=True, handle_signals=False)
    try:
        await worker.async_run()
    finally:
        await worker.close()
