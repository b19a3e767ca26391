"""The worker: ARQ settings, the one job function, and the clients a process shares.

`worker_settings(settings, router, directory)` is the ARQ `WorkerSettings` (as the mapping
ARQ's `create_worker` accepts), `create_worker(...)` a `HeraldWorker` (an `arq.Worker`
that closes its Redis pool without deprecated calls) from it; the handlers' router and the
providers' directory are handed in (`bot.composition` wires the built-in ones), so this
module depends on neither. The job `handle_event(ctx, event)` rebuilds the `Event`, binds
log context and runs every handler the router has for it; one handler's failure never
stops another.

Failures:
- `bot.ports.TransientError` (5xx, 429, timeouts) → `arq.Retry`, deferred by the
  error's `retry_after` or by exponential back-off with full jitter. Handlers that already
  succeeded for this job are recorded (`herald:handled:{job id}`) and not run again.
- anything else → logged once, with the handler's name; the job ends.
- on the last try a transient failure is logged as permanent instead of retried.

How the job ended goes into its delivery's dedupe record (`bot.queue.record_state`):
``running`` when it starts, then ``done``, ``gave_up`` (a handler answered the reviewer
that it could not report: `Context.gave_up`; or transient failures on the last try) or
``failed`` (a handler raised). A redelivery of a delivery whose job gave up or failed is
queued again; of one queued, running or done, it is a duplicate.

Shutdown (SIGTERM/SIGINT): the worker stops taking jobs, waits up to
`HERALD_WORKER_SHUTDOWN_GRACE_SECONDS` for running ones, then cancels the rest; ARQ puts a
cancelled job back in the queue (its `in-progress` key is deleted, its queue entry kept),
so another worker runs it again. A worker killed outright (SIGKILL) leaves the in-progress
key until it expires (job timeout + 10 s); the job then runs again. Handlers are therefore
idempotent (publish = upsert).

Settings (environment snapshot): `HERALD_JOB_TIMEOUT_SECONDS` (300),
`HERALD_JOB_MAX_TRIES` (5), `HERALD_WORKER_CONCURRENCY` (10),
`HERALD_WORKER_POLL_SECONDS` (0.01: ARQ polls its queue; its 0.5 s default would add up to
half a second to every report), `HERALD_WORKER_SHUTDOWN_GRACE_SECONDS` (25: inside the 30 s
most process managers allow before SIGKILL), `HERALD_WORKER_HEARTBEAT_SECONDS` (10: each
worker's card in Redis, read by `herald status`, `/status` and `/metrics`; `bot.status`).
Every run of a job is counted and its final failures kept there too. Artifacts are parsed
in child processes (`bot.isolation.ParsePool`, started here and stopped at shutdown) under
`HERALD_PARSE_MAX_MEMORY_BYTES` (1 GiB), `HERALD_PARSE_MAX_CPU_SECONDS` (120),
`HERALD_PARSE_TIMEOUT_SECONDS` (180) and `HERALD_PARSE_PROCESSES` (the concurrency) at once.

Periodic jobs (`cron_jobs`): the pass that asks GitHub to redeliver the App's failed
webhook deliveries (`bot.redelivery`), every `HERALD_GITHUB_REDELIVER_INTERVAL_MINUTES`.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx
from arq import Retry
from arq.cron import CronJob, cron
from arq.worker import Worker, func
from redis.exceptions import RedisError

from bot.context import Context
from bot.egress import EgressPolicy, guarded_transport
from bot.events import Event
from bot.history import HistoryStore, open_history
from bot.isolation import ParsePool
from bot.logging import get_logger
from bot.ports import (
    CISource,
    ForgeTarget,
    NotConfigured,
    ProviderDirectory,
    ProviderError,
    TransientError,
    UnknownProvider,
    Unsupported,
)
from bot.queue import (
    HANDLED_PREFIX,
    JOB_FUNCTION,
    DeliveryState,
    dumps_job,
    loads_job,
    record_state,
)
from bot.redelivery import RedeliveryConfig, recover_missed_deliveries
from bot.redis_url import arq_settings
from bot.routing import Handler, Router
from bot.settings import ConfigError, Settings
from bot.status import GAVE_UP_ERROR, HandlerRun, Heartbeat, WorkerCard, record_job

log = get_logger("herald.worker")

HANDLED_TTL_SECONDS = 24 * 3600
#: In a job's handled set beside the handlers' names (which are dotted module paths, so
#: never this): one of them gave up, which a retry that skips it must still report.
GAVE_UP_MARK = b"!gave-up"
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 300.0


@dataclass(frozen=True)
class WorkerConfig:
    job_timeout: float = 300.0
    max_tries: int = 5
    concurrency: int = 10
    poll_delay: float = 0.01
    shutdown_grace: int = 25
    heartbeat: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        # The job settings are the same readings the handlers size locks and give-ups from.
        config = settings.config
        return cls(
            job_timeout=settings.job_timeout_seconds(),
            max_tries=settings.job_max_tries(),
            concurrency=config.worker_concurrency,
            poll_delay=config.worker_poll_seconds,
            shutdown_grace=config.worker_shutdown_grace_seconds,
            heartbeat=config.worker_heartbeat_seconds,
        )


class Clients:
    """Provider API clients, made on first use, once per process, closed on shutdown.

    `source(name)` and `forge(name)` return the same object: a provider's client plays
    the CI source role (`bot.ports.CISource`) and, for forges, the forge target role
    (`ForgeTarget`). A provider without credentials raises `NotConfigured` on every call,
    without trying again: configuration does not change under a process.
    """

    def __init__(
        self, settings: Settings, http: httpx.AsyncClient, directory: ProviderDirectory
    ) -> None:
        self.settings = settings
        self.http = http
        self.directory = directory
        self._clients: dict[str, Any] = {}
        self._failures: dict[str, Exception] = {}

    def source(self, provider: str) -> Any:
        client = self._get(provider)
        if not isinstance(client, CISource):
            raise Unsupported(f"{provider} is no CI system Herald can read")
        return client

    def forge(self, provider: str) -> Any:
        client = self._get(provider)
        if not isinstance(client, ForgeTarget):
            raise Unsupported(f"{provider} is not a forge: Herald cannot publish there")
        return client

    def _get(self, provider: str) -> Any:
        if provider in self._clients:
            return self._clients[provider]
        if provider in self._failures:
            # A fresh exception each time: re-raising the cached one would grow its
            # traceback with every job for the life of the process.
            cached = self._failures[provider]
            raise type(cached)(str(cached))
        try:
            client = self.directory.client(provider, self.settings.provider(provider), self.http)
        except UnknownProvider:
            failure: Exception = Unsupported(f"{provider} has no API client in this build")
            self._failures[provider] = failure
            raise failure from None
        except (NotConfigured, ConfigError) as exc:
            failure = exc if isinstance(exc, NotConfigured) else NotConfigured(str(exc))
            self._failures[provider] = failure
            raise failure from None
        self._clients[provider] = client
        return client

    def available(self) -> list[str]:
        """The providers this process has a working client for (its heartbeat lists them)."""
        names = []
        for name in self.directory.names():
            try:
                self._get(name)
            except (NotConfigured, Unsupported):
                continue
            except Exception as exc:
                # a client that cannot be built fails its jobs; the worker itself still runs
                log.warning("provider client unavailable", provider=name, error=str(exc))
                continue
            names.append(name)
        return names

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for name, client in clients.items():
            close = getattr(client, "aclose", None)
            if close is None:
                continue
            try:
                await close()
            except Exception:
                log.exception("closing a provider client failed", provider=name)


def backoff_seconds(job_try: int, retry_after: float | None) -> float:
    """Honour the server's Retry-After; otherwise exponential back-off with full jitter."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, 3600.0)
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, job_try - 1))
    return max(1.0, random.uniform(0, ceiling))


def handler_name(handler: Handler) -> str:
    module = getattr(handler, "__module__", "?")
    return f"{module}.{getattr(handler, '__qualname__', repr(handler))}"


async def handle_event(ctx: dict[str, Any], event: dict[str, Any]) -> None:
    """The job: run every handler routed for the event (see the module docstring)."""
    # counted for the heartbeat; a job cancelled by its timeout or a shutdown leaves too
    ctx["running_jobs"] = ctx.get("running_jobs", 0) + 1
    try:
        await _handle_event(ctx, event)
    finally:
        ctx["running_jobs"] -= 1


async def _handle_event(ctx: dict[str, Any], event: dict[str, Any]) -> None:
    started = time.time()
    parsed = Event.from_dict(event)
    job_id: str = ctx.get("job_id", parsed.job_id)
    job_try: int = ctx.get("job_try", 1)
    enqueued = ctx.get("enqueue_time")
    pickup_ms = round((started - enqueued.timestamp()) * 1000, 2) if enqueued else None
    bound = log.bind(
        provider=parsed.provider,
        delivery=parsed.delivery_id,
        _event=parsed.name,
        repo=parsed.repo,
        run=parsed.run.run_id if parsed.run else None,
        job_try=job_try,
    )
    router: Router = ctx["router"]
    redis = ctx["redis"]
    config: WorkerConfig = ctx["worker_config"]
    routed = router.fetch(parsed.provider, parsed.name)
    handled_key = f"{HANDLED_PREFIX}{job_id}"
    done: set[bytes] = set(await redis.smembers(handled_key)) if job_try > 1 and routed else set()
    await record_state(redis, job_id, "running")

    transient: list[TransientError] = []
    runs: list[HandlerRun] = []
    failed = 0
    # A handler that gave up on an earlier try is not run again; its give-up still counts.
    gave_up = GAVE_UP_MARK in done
    for handler in routed:
        name = handler_name(handler)
        if name.encode() in done:
            continue
        handler_started = time.monotonic()
        context = Context(
            event=parsed,
            settings=ctx["settings"],
            redis=redis,
            http=ctx["http"],
            log=bound.bind(handler=name),
            clients=ctx["clients"],
            job_try=job_try,
            artifacts=ctx.get("parse_pool"),
            history=ctx.get("history"),
        )
        try:
            await handler(context)
        except TransientError as exc:
            transient.append(exc)
            runs.append(HandlerRun(name, "retry", time.monotonic() - handler_started, str(exc)))
            bound.warning("handler failed, will retry", handler=name, error=str(exc))
        except ProviderError as exc:
            # Expected failures (missing credentials, a refused request) carry a message
            # that says it all; a traceback would only bury it.
            failed += 1
            runs.append(HandlerRun(name, "failed", time.monotonic() - handler_started, str(exc)))
            bound.error("handler failed", handler=name, error=str(exc), kind=type(exc).__name__)
        except Exception as exc:
            failed += 1
            runs.append(HandlerRun(name, "failed", time.monotonic() - handler_started,
                                   f"{type(exc).__name__}: {exc}"))
            bound.exception("handler failed", handler=name, error=str(exc))
        else:
            gave_up = gave_up or context.gave_up
            if len(routed) > 1:
                async with redis.pipeline(transaction=True) as pipe:
                    pipe.sadd(handled_key, name, *([GAVE_UP_MARK] if context.gave_up else []))
                    pipe.expire(handled_key, HANDLED_TTL_SECONDS)
                    await pipe.execute()
            runs.append(HandlerRun(name, "gave_up" if context.gave_up else "done",
                                   time.monotonic() - handler_started,
                                   GAVE_UP_ERROR if context.gave_up else None))

    outcome = "done" if not (transient or failed) else "failed"
    state: DeliveryState = "failed" if failed else "gave_up" if gave_up else "done"
    if transient and job_try < config.max_tries:
        defer = backoff_seconds(job_try, max((e.retry_after or 0) for e in transient) or None)
        outcome = "retry"
        state = "queued"
    elif transient:
        failed += len(transient)
        state = "gave_up"
        for error in transient:
            bound.error("giving up after the last try", error=str(error), tries=job_try)
    # Before ARQ's clean-up of the job: a redelivery then waits for that clean-up to pass
    # (`bot.queue.ENQUEUE_SCRIPT`) rather than be deleted by it.
    await record_state(redis, job_id, state)
    bound.info(
        "job",
        outcome=outcome,
        handlers=len(routed),
        failed=failed,
        pickup_ms=pickup_ms,
        latency_ms=round((time.time() - started) * 1000, 2),
    )
    await _record(ctx, parsed, outcome, time.time() - started, runs, job_try, bound)
    if outcome == "retry":
        raise Retry(defer=defer)
    if routed and len(routed) > 1:
        await redis.delete(handled_key)


async def _record(ctx: dict[str, Any], event: Event, outcome: str, seconds: float,
                  runs: list[HandlerRun], job_try: int, bound: Any) -> None:
    """Count the job for `/metrics` and keep its final failures for `herald status`.

    A job whose handlers returned but gave up (`Context.gave_up`) is counted `gave_up`,
    never `done`; on the last try, a transient failure is a give-up, not a retry.
    """
    if outcome != "retry":
        runs = [replace(r, outcome="gave_up") if r.outcome == "retry" else r for r in runs]
    if outcome == "done" and any(r.outcome == "gave_up" for r in runs):
        outcome = "gave_up"
    try:
        await record_job(ctx["redis"], ctx["settings"].queue_name, provider=event.provider,
                         outcome=outcome, seconds=seconds, runs=runs,
                         delivery=event.delivery_id, repo=event.repo, job_try=job_try)
    except (RedisError, OSError) as exc:
        # the job's own outcome stands; only the counters and the failures list miss it
        bound.warning("could not record the job's outcome", error=str(exc))


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    ctx["http"] = httpx.AsyncClient(
        timeout=httpx.Timeout(20.0, connect=5.0),
        # URLs come from payloads and redirects: no private address unless configured.
        transport=guarded_transport(
            EgressPolicy.from_settings(settings),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        ),
        follow_redirects=False,
    )
    ctx["clients"] = Clients(settings, ctx["http"], ctx["directory"])
    pool = ParsePool.from_settings(settings)
    await pool.start()
    ctx["parse_pool"] = pool
    # A worker always has Redis (its queue); without any URL (a unit test's bare settings)
    # there is no history to open.
    has_store = settings.config.history_url or settings.redis_url
    ctx["history"] = await open_history(settings) if has_store else None
    config: WorkerConfig = ctx["worker_config"]
    ctx["running_jobs"] = 0
    card = WorkerCard.for_this_process(config.concurrency, ctx["clients"].available())
    heartbeat = Heartbeat(ctx["redis"], settings.queue_name, card, config.heartbeat,
                          running=lambda: int(ctx["running_jobs"]))
    await heartbeat.start()
    ctx["heartbeat"] = heartbeat
    log.info("worker started", queue=settings.queue_name, handlers=len(ctx["router"].routes))


async def on_shutdown(ctx: dict[str, Any]) -> None:
    heartbeat: Heartbeat | None = ctx.get("heartbeat")
    if heartbeat is not None:
        await heartbeat.stop()
    history: HistoryStore | None = ctx.get("history")
    if history is not None:
        await history.close()
    pool: ParsePool | None = ctx.get("parse_pool")
    if pool is not None:
        await pool.aclose()
    clients: Clients | None = ctx.get("clients")
    if clients is not None:
        await clients.aclose()
    http: httpx.AsyncClient | None = ctx.get("http")
    if http is not None:
        await http.aclose()
    log.info("worker stopped")


def cron_jobs(settings: Settings) -> list[CronJob]:
    """The periodic jobs: the missed-webhook pass (`bot.redelivery`) when the GitHub App
    is configured and `HERALD_GITHUB_REDELIVER_INTERVAL_MINUTES` is not 0.

    ARQ gives a cron job one id per time slot (`unique`), so however many workers run, a
    pass runs once per slot. One try: the next slot is the retry.
    """
    github = settings.config.github
    every = github.redeliver_interval_minutes
    if not every or not github.app_id:
        return []
    return [
        cron(
            recover_missed_deliveries,
            name="recover_missed_deliveries",
            minute=set(range(0, 60, every)),
            second=0,
            unique=True,
            max_tries=1,
            run_at_startup=False,
        )
    ]


def worker_settings(
    settings: Settings, router: Router, directory: ProviderDirectory
) -> dict[str, Any]:
    """ARQ `WorkerSettings` for `settings`, as the mapping `arq.worker.create_worker` takes."""
    if not settings.redis_url:
        raise ConfigError("HERALD_REDIS_URL (or REDIS_URL) is required to run a worker")
    config = WorkerConfig.from_settings(settings)
    return {
        "functions": [func(handle_event, name=JOB_FUNCTION)],
        "cron_jobs": cron_jobs(settings),
        "queue_name": settings.queue_name,
        "redis_settings": arq_settings(settings.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "ctx": {
            "settings": settings,
            "router": router,
            "directory": directory,
            "worker_config": config,
            "redelivery_config": RedeliveryConfig(
                window_seconds=settings.config.github.redeliver_window_hours * 3600.0,
                max_per_pass=settings.config.github.redeliver_max_per_pass,
                queue_name=settings.queue_name,
            ),
        },
        "job_timeout": config.job_timeout,
        "max_tries": config.max_tries,
        "max_jobs": config.concurrency,
        "poll_delay": config.poll_delay,
        "job_completion_wait": config.shutdown_grace,
        # results would keep a copy of every payload; our logs say how each job ended
        "keep_result": 0,
        "log_results": False,
        "job_serializer": dumps_job,
        "job_deserializer": loads_job,
    }


class HeraldWorker(Worker):
    """ARQ's worker, closed the way a Herald process needs it closed."""

    async def close(self) -> None:
        """Close once the jobs have settled, and close the Redis pool with `aclose()`.

        ARQ's `close()` cancels job tasks that are not done; a job that was just cancelled
        (and is being put back in the queue under `asyncio.shield`) would be cancelled a
        second time and `close()` would raise. Waiting for the tasks first avoids that.
        """
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        pool = self._pool
        if pool is not None:
            # arq 0.28 ends its close() with the pool's close(close_connection_pool=True),
            # deprecated since redis-py 5.0.1 for aclose(), which takes the same argument.
            pool.close = pool.aclose  # type: ignore[method-assign,attr-defined]  # stubs: redis 4
        await super().close()


def create_worker(
    settings: Settings, router: Router, directory: ProviderDirectory, **overrides: Any
) -> HeraldWorker:
    """An ARQ worker; create it inside the event loop that will run it."""
    options = {**worker_settings(settings, router, directory), **overrides}
    return HeraldWorker(**options)
