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

Every answer is JSON, errors included (`{"status": "error", "reason": …}`): the router's
404 and 405 and an unexpected 500 go through `json_error`. Two exceptions carry other
content by nature: `/metrics` (Prometheus' text format) and the files `/files/…` serves.

`GET /status` (`bot.status.collect`: live workers, queue depth, oldest waiting job, recent
failures) names hosts, repositories and error texts, so it asks for
`Authorization: Bearer <HERALD_STATUS_TOKEN>`; without a token configured it answers 403
and says so (`/metrics` stays open, as Prometheus scrapers expect: its labels name only
providers, handlers and outcomes). `herald status` prints the same from Redis directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot import __version__
from bot import logging as herald_logging
from bot.egress import EgressPolicy, guarded_transport
from bot.files import serve_file
from bot.metrics import CONTENT_TYPE, Metrics
from bot.ports import NotConfigured, ProviderDirectory
from bot.queue import RedisQueue
from bot.redis_url import redis_client as connect_redis
from bot.settings import DEFAULT_MAX_BUFFERED_BYTES, ConfigError, Settings
from bot.spool import Spool, SpoolingQueue
from bot.status import collect, live_workers, stats_key
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
    queue_name = runtime.settings.queue_name
    try:
        async with asyncio.timeout(0.5):
            runtime.metrics.queue_depth.set(await runtime.queue.depth())
            # bounded: providers x handlers x outcomes, written by every worker
            runtime.metrics.job_stats.update(await runtime.redis.hgetall(stats_key(queue_name)))
            workers = await live_workers(runtime.redis, queue_name, time.time())
            runtime.metrics.workers.count = len(workers)
        runtime.metrics.redis_up.set(1)
    except (RedisError, OSError, TimeoutError):
        runtime.metrics.redis_up.set(0)
    runtime.metrics.spool_depth.set(runtime.queue.spool.pending)
    return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE)


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def status(request: Request) -> Response:
    """`GET /status`: `bot.status.collect` as JSON, for a holder of `HERALD_STATUS_TOKEN`."""
    runtime: Runtime = request.app.state.runtime
    try:
        tokens = [bytes(t) for t in runtime.settings.provider("status").secrets("token")]
    except ConfigError as exc:
        log.error("status token unreadable", error=str(exc))
        return json_answer(503, "unavailable", "the status token cannot be read")
    if not tokens:
        return json_answer(403, "forbidden", "set HERALD_STATUS_TOKEN to use /status, or run "
                           "`herald status` where Redis is reachable")
    given = _bearer_token(request)
    # every token compared, so the time taken says nothing about which one came close
    matches = [hmac.compare_digest((given or "").encode(), token) for token in tokens]
    if given is None or not any(matches):
        return json_answer(401, "unauthorized", "send Authorization: Bearer <HERALD_STATUS_TOKEN>",
                           headers={"WWW-Authenticate": 'Bearer realm="herald"'})
    try:
        async with asyncio.timeout(2.0):
            answer = await collect(runtime.redis, runtime.settings.queue_name)
    except (RedisError, OSError, TimeoutError):
        return json_answer(503, "unavailable", "redis unreachable")
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


async def index(request: Request) -> Response:
    return JSONResponse({"service": "herald", "version": __version__,
                         "routes": [route.path for route in ROUTES]})


def json_answer(status_code: int, status: str, reason: str,
                headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": status, "reason": reason}, status_code, headers=headers)


async def json_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (404, 405, and a 500 from a bug) as JSON like the rest."""
    if isinstance(exc, HTTPException):
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=headers)
        return json_answer(exc.status_code, "error", str(exc.detail), headers)
    log.error("unhandled error", path=request.url.path, error=repr(exc))
    return json_answer(500, "error", "internal error")


ROUTES = [
    Route("/webhooks/{provider}", WebhookEndpoint(), methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/status", status, methods=["GET"]),
    # Signed, expiring links to files (bot.files); 404 unless HERALD_URL_SIGNING_KEY is set.
    Route("/files/{key:path}", serve_file, methods=["GET", "HEAD"]),
    Route("/", index, methods=["GET"]),
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

    app = HeraldApp(routes=list(ROUTES), lifespan=lifespan,
                    exception_handlers={HTTPException: json_error, Exception: json_error})
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
