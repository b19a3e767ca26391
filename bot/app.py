"""The web app: webhook ingress, health, readiness and metrics, assembled from plain lists.

`create_app(settings)` builds it; the lifespan owns the long-lived clients (one Redis pool,
one httpx client, the queue and its spool drainer). Run it alone with
`uvicorn bot.composition:create_app --factory` or `herald web`, or beside a worker with `herald
serve`.

Ingress settings (declared, with defaults and bounds, in `bot.config`):
`HERALD_MAX_BODY_BYTES` and `HERALD_MAX_BUFFERED_BYTES` (one delivery's cap, and what all
requests of the process may hold at once), `HERALD_BODY_TIMEOUT_SECONDS`,
`HERALD_RETRY_AFTER_SECONDS` and `HERALD_SECRETS_CACHE_SECONDS` (secrets read from files or
provider APIs are re-read that often, so rotation needs no restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot import logging as herald_logging
from bot.egress import EgressPolicy, guarded_transport
from bot.files import serve_file
from bot.metrics import CONTENT_TYPE, Metrics
from bot.ports import NotConfigured, ProviderDirectory
from bot.queue import RedisQueue
from bot.redis_url import redis_client as connect_redis
from bot.settings import DEFAULT_MAX_BUFFERED_BYTES, ConfigError, Settings
from bot.spool import Spool, SpoolingQueue
from bot.webhooks import BodyBudget, BodyDeadlines, WebhookEndpoint, handle, provider_from_path

log = herald_logging.get_logger("herald.app")

REFRESH_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class AppConfig:
    max_body_bytes: int
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    body_timeout_seconds: float = 10.0
    retry_after_seconds: int = 30
    secrets_cache_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AppConfig:
        config = settings.config
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_buffered_bytes=settings.max_buffered_bytes(),
            body_timeout_seconds=config.body_timeout_seconds,
            retry_after_seconds=config.retry_after_seconds,
            secrets_cache_seconds=config.secrets_cache_seconds,
        )


def redis_client(url: str) -> Redis[bytes]:
    """The Redis pool of a process: short connect timeout so an outage is noticed fast."""
    return connect_redis(
        url, socket_connect_timeout=1.0, socket_timeout=5.0, health_check_interval=30
    )


@dataclass
class Runtime:
    """Everything a request handler needs, made once in the lifespan."""

    settings: Settings
    config: AppConfig
    metrics: Metrics
    redis: Redis[bytes]
    http: httpx.AsyncClient
    queue: SpoolingQueue
    body_deadlines: BodyDeadlines
    body_budget: BodyBudget
    directory: ProviderDirectory
    _secrets: dict[str, tuple[float, list[bytes]]] = field(default_factory=dict)
    _refreshed: dict[str, float] = field(default_factory=dict)

    @classmethod
    async def start(
        cls, settings: Settings, metrics: Metrics, directory: ProviderDirectory
    ) -> Runtime:
        if not settings.redis_url:
            raise ConfigError(
                "HERALD_REDIS_URL (or REDIS_URL) is required; `herald serve` starts an "
                "embedded Redis when none is set"
            )
        redis = redis_client(settings.redis_url)
        queue = SpoolingQueue(
            RedisQueue(redis, queue_name=settings.queue_name),
            Spool(settings.state_dir / "spool"),
        )
        queue.start()
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0),
            transport=guarded_transport(EgressPolicy.from_settings(settings)),
        )
        config = AppConfig.from_settings(settings)
        return cls(settings, config, metrics, redis, http, queue,
                   BodyDeadlines(config.body_timeout_seconds),
                   BodyBudget(config.max_buffered_bytes), directory)

    async def aclose(self) -> None:
        self.body_deadlines.close()
        await self.queue.aclose()
        await self.http.aclose()
        await self.redis.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5

    async def secrets(self, name: str) -> list[bytes]:
        cached = self._secrets.get(name)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            source = self.directory.secret_source(name)
            values = await source.secrets(self.settings.provider(name), self.http)
        except ConfigError as exc:
            raise NotConfigured(str(exc)) from exc
        self._secrets[name] = (now + self.config.secrets_cache_seconds, values)
        return values

    async def refresh_secrets(self, name: str) -> list[bytes] | None:
        """Refetched secrets after a failed verification, at most once a minute per provider
        (a stream of forged deliveries must not become a stream of key fetches)."""
        now = time.monotonic()
        if now - self._refreshed.get(name, -REFRESH_INTERVAL_SECONDS) < REFRESH_INTERVAL_SECONDS:
            return None
        self._refreshed[name] = now
        source = self.directory.secret_source(name)
        fresh = await source.refresh(self.settings.provider(name), self.http)
        if fresh is not None:
            self._secrets[name] = (now + self.config.secrets_cache_seconds, fresh)
        return fresh


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    spooled = runtime.queue.spool.pending
    try:
        async with asyncio.timeout(1.0):
            await runtime.redis.ping()
    except (RedisError, OSError, TimeoutError):
        return JSONResponse(
            {"status": "unavailable", "reason": "redis unreachable", "spooled": spooled}, 503
        )
    return JSONResponse({"status": "ready", "spooled": spooled})


async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        async with asyncio.timeout(0.5):
            runtime.metrics.queue_depth.set(await runtime.queue.depth())
        runtime.metrics.redis_up.set(1)
    except (RedisError, OSError, TimeoutError):
        runtime.metrics.redis_up.set(0)
    runtime.metrics.spool_depth.set(runtime.queue.spool.pending)
    return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE)


ROUTES = [
    Route("/webhooks/{provider}", WebhookEndpoint(), methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    # Signed, expiring links to files (bot.files); 404 unless HERALD_URL_SIGNING_KEY is set.
    Route("/files/{key:path}", serve_file, methods=["GET", "HEAD"]),
]


def create_app(
    settings: Settings | None = None,
    *,
    directory: ProviderDirectory,
    configure_logging: bool = True,
) -> Starlette:
    """The ASGI app over the providers of `directory`; with no settings, it reads the
    environment. `bot.composition.create_app` wires the built-in providers in."""
    settings = settings or Settings.from_env()
    if configure_logging:
        herald_logging.configure(settings)
    app_metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings, app_metrics, directory)
        app.state.runtime = runtime
        if isinstance(app, HeraldApp):
            app.runtime = runtime
        log.info("web app ready", queue=settings.queue_name,
                 max_body_bytes=runtime.config.max_body_bytes,
                 max_buffered_bytes=runtime.config.max_buffered_bytes)
        try:
            yield
        finally:
            if isinstance(app, HeraldApp):
                app.runtime = None
            await runtime.aclose()

    app = HeraldApp(routes=list(ROUTES), lifespan=lifespan)
    app.state.metrics = app_metrics
    return app


class HeraldApp(Starlette):
    """Starlette, with `POST /webhooks/{provider}` answered before its middleware and router.

    The webhook endpoint handles every error itself, so the stack in front of it only added
    cost (measured at about a fifth of a delivery's time). Anything else, and the webhook
    path before the lifespan has started or under a mount prefix, takes the normal route,
    which serves the same endpoint.
    """

    runtime: Runtime | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        if (
            runtime is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            name = provider_from_path(scope["path"])
            if name is not None:
                scope["app"] = self
                await handle(runtime, name, scope, receive, send)
                return
        await super().__call__(scope, receive, send)
