"""Worker visibility: who is working, how far behind the queue is, and what failed lately.

Workers write it (`Heartbeat`, `record_job`); `herald status`, `GET /status` and the web
process's `/metrics` read it (`collect`, `JobStats`). Everything lives in the Redis the
queue lives in, under the queue's name, so workers of another queue are never counted and
every web process reports on the whole fleet, not only on itself.

Redis keys (`{queue}` is `HERALD_QUEUE_NAME`, `herald:queue` by default):

=============================  ======  ==================================================
key                            type    meaning, lifetime
=============================  ======  ==================================================
``{queue}:workers``            zset    member = worker id, score = when its heartbeat
                                       lapses (ms); pruned at every heartbeat; TTL = one
                                       heartbeat TTL after the last one
``{queue}:worker:{id}``        string  the worker's card (JSON: host, pid, version,
                                       concurrency, providers, running, started at);
                                       TTL = `HEARTBEATS_PER_TTL` heartbeats
``{queue}:failures``           list    the last `RECENT_FAILURES` handler failures that
                                       ended a job (JSON), newest first
``{queue}:job-stats``          hash    job counters and duration histogram buckets;
                                       bounded by providers x handlers x outcomes
=============================  ======  ==================================================

A worker killed outright (SIGKILL, a lost node) cannot say goodbye: it drops out of the
list when its card expires, `HEARTBEATS_PER_TTL` heartbeats after its last one. A clean
shutdown removes it at once.

A handler that gives up on its own (it tells the reviewer and returns, as the report
handler does) calls `Context.gave_up`, and is counted `gave_up`, never `done`.

What the failures list can hide: it keeps only failures that ended a handler for good
(`failed`, `gave_up`); a transient failure that will be retried is counted in
`herald_jobs_total{outcome="retry"}` but not listed, so that a flapping API cannot push
the permanent failures out of the bounded list. Failures beyond the last
`RECENT_FAILURES` are only in the logs and the counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from arq.constants import in_progress_key_prefix
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot import __version__
from bot.console import printable
from bot.logging import get_logger

log = get_logger("herald.status")

HEARTBEATS_PER_TTL: Final = 3
RECENT_FAILURES: Final = 50
#: A failure's error text is cut here: it comes from exceptions that may quote a response.
MAX_ERROR_CHARS: Final = 500
#: How many due jobs `collect` looks at to find the oldest one no worker has taken yet.
WAITING_SCAN: Final = 200
#: Job and handler durations: from a cached no-op to a job near the 300 s default timeout.
DURATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: Outcomes of one handler in one job run.
HANDLER_OUTCOMES: Final = ("done", "retry", "failed", "gave_up")
#: The failure listed for a handler that gave up without raising (`Context.gave_up`): it
#: told the reviewer why, and logged the error ("giving up on this run").
GAVE_UP_ERROR: Final = "gave up and said why on the change; the worker's log has the error"
#: The `handler` label of a job no handler was routed for (it is done at once).
NO_HANDLER: Final = "none"
_SEP: Final = "\t"  # never in a provider name, a handler's qualified name or an outcome


def workers_key(queue_name: str) -> str:
    return f"{queue_name}:workers"


def worker_key(queue_name: str, worker_id: str) -> str:
    return f"{queue_name}:worker:{worker_id}"


def failures_key(queue_name: str) -> str:
    return f"{queue_name}:failures"


def stats_key(queue_name: str) -> str:
    return f"{queue_name}:job-stats"


@dataclass(frozen=True)
class WorkerCard:
    """What a worker says about itself at every heartbeat."""

    id: str
    host: str
    pid: int
    version: str
    concurrency: int
    providers: list[str]
    started_at: float
    running: int = 0
    heartbeat_at: float = 0.0

    @classmethod
    def for_this_process(cls, concurrency: int, providers: Iterable[str]) -> WorkerCard:
        host = socket.gethostname()
        pid = os.getpid()
        return cls(id=f"{host}:{pid}:{uuid.uuid4().hex[:8]}", host=host, pid=pid,
                   version=__version__, concurrency=concurrency,
                   providers=sorted(providers), started_at=time.time())

    @classmethod
    def from_json(cls, raw: bytes) -> WorkerCard | None:
        try:
            data = json.loads(raw)
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None  # a card of another version of Herald: not ours to show


class Heartbeat:
    """Keeps a worker's card in Redis every `interval` seconds until stopped.

    `running` is read at each beat, so the card says how many jobs are in flight. A beat
    that fails (Redis away for a moment) is logged and the next one tries again: the card
    then lapses, which is the truth while the worker cannot reach its queue.
    """

    def __init__(self, redis: Redis[bytes], queue_name: str, card: WorkerCard,
                 interval: float, running: Callable[[], int]) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.card = card
        self.interval = interval
        self.ttl_ms = int(interval * HEARTBEATS_PER_TTL * 1000)
        self.running = running
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        now = time.time()
        card = WorkerCard(**{**asdict(self.card), "running": self.running(),
                             "heartbeat_at": now})
        now_ms = int(now * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(worker_key(self.queue_name, card.id), json.dumps(asdict(card)),
                     px=self.ttl_ms)
            pipe.zadd(workers_key(self.queue_name), {card.id: now_ms + self.ttl_ms})
            pipe.zremrangebyscore(workers_key(self.queue_name), "-inf", now_ms)
            pipe.pexpire(workers_key(self.queue_name), self.ttl_ms)
            await pipe.execute()

    async def start(self) -> None:
        """The first beat at once (a failure here is the worker's start failing), then a task."""
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="herald-heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except (RedisError, OSError) as exc:
                log.warning("heartbeat failed", error=str(exc), worker=self.card.id)

    async def stop(self) -> None:
        """Stop beating and take the card down: a worker that left is not a live worker."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(worker_key(self.queue_name, self.card.id))
                pipe.zrem(workers_key(self.queue_name), self.card.id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # the card lapses by itself within its TTL
            log.warning("could not remove the worker's heartbeat", error=str(exc))


@dataclass(frozen=True)
class HandlerRun:
    """How one handler ended in one run of a job."""

    handler: str
    outcome: str  # one of HANDLER_OUTCOMES
    seconds: float
    error: str | None = None


def _bucket(seconds: float) -> int:
    for index, bound in enumerate(DURATION_BUCKETS):
        if seconds <= bound:
            return index
    return len(DURATION_BUCKETS)


def _field(*parts: object) -> str:
    return _SEP.join(str(part) for part in parts)


async def record_job(
    redis: Redis[bytes], queue_name: str, *, provider: str, outcome: str, seconds: float,
    runs: Sequence[HandlerRun], delivery: str, repo: str | None, job_try: int,
    now: float | None = None,
) -> None:
    """Count one run of a job and keep its final failures, in one round trip."""
    stats = stats_key(queue_name)
    when = time.time() if now is None else now
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(stats, _field("job", provider, outcome, _bucket(seconds)), 1)
        pipe.hincrbyfloat(stats, _field("job_sum", provider, outcome), seconds)
        for run in runs or [HandlerRun(NO_HANDLER, "done", 0.0)]:
            pipe.hincrby(stats, _field("handler", provider, run.handler, run.outcome), 1)
            pipe.hincrby(stats, _field("handler_seconds", provider, run.handler,
                                       _bucket(run.seconds)), 1)
            pipe.hincrbyfloat(stats, _field("handler_sum", provider, run.handler), run.seconds)
        failures = [
            json.dumps({"provider": provider, "handler": run.handler, "outcome": run.outcome,
                        "error": (run.error or "")[:MAX_ERROR_CHARS], "time": when,
                        "delivery": delivery, "repo": repo, "try": job_try})
            for run in runs if run.outcome in ("failed", "gave_up")
        ]
        if failures:
            pipe.lpush(failures_key(queue_name), *failures)
            pipe.ltrim(failures_key(queue_name), 0, RECENT_FAILURES - 1)
        await pipe.execute()


@dataclass(eq=False)  # a registry keys its collectors by identity
class JobStats(Collector):
    """The workers' job counters as Prometheus metrics, from the last `refresh`.

    Prometheus collects synchronously and Redis is read asynchronously, so `/metrics`
    refreshes the snapshot first; a scrape that cannot reach Redis shows the last one.
    """

    fields: dict[str, float] = field(default_factory=dict)

    def update(self, raw: dict[bytes, bytes]) -> None:
        self.fields = {key.decode(): float(value) for key, value in raw.items()}

    def _rows(self, kind: str) -> Iterator[list[str]]:
        """The label values of `kind`'s fields; fields of another layout (another version
        of Herald sharing the queue) are left out rather than break the scrape."""
        for key in sorted(self.fields):
            parts = key.split(_SEP)
            if parts[0] == kind and len(parts) == 4 and (kind == "handler"
                                                         or parts[3].isdigit()):
                yield parts[1:]

    def collect(self) -> Iterator[Any]:
        jobs = CounterMetricFamily(
            "herald_jobs", "Handler runs by provider, handler and outcome (done, retry, "
            "failed, gave_up), across all workers of the queue.",
            labels=("provider", "handler", "outcome"))
        for provider, handler, outcome in self._rows("handler"):
            jobs.add_metric((provider, handler, outcome),
                            self.fields[_field("handler", provider, handler, outcome)])
        yield jobs
        yield self._histogram(
            "herald_job_duration_seconds", "Wall time of one run of a job, by provider and "
            "outcome (done, retry, failed, gave_up).", ("provider", "outcome"), "job")
        yield self._histogram(
            "herald_handler_duration_seconds", "Wall time of one handler in one run of a "
            "job, by provider and handler.", ("provider", "handler"), "handler_seconds",
            sums="handler_sum")

    def _histogram(self, name: str, documentation: str, labels: tuple[str, str], kind: str,
                   sums: str = "job_sum") -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=labels)
        counts: dict[tuple[str, str], list[float]] = {}
        for first, second, bucket in self._rows(kind):
            row = counts.setdefault((first, second), [0.0] * (len(DURATION_BUCKETS) + 1))
            row[min(int(bucket), len(DURATION_BUCKETS))] += self.fields[
                _field(kind, first, second, bucket)]
        for labelset, row in sorted(counts.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), row, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            family.add_metric(labelset, buckets,
                              self.fields.get(_field(sums, *labelset), 0.0))
        return family


@dataclass(eq=False)
class WorkerCount(Collector):
    """`herald_workers`: live workers of the queue, as read at the last scrape."""

    count: int | None = None

    def collect(self) -> Iterator[Any]:
        gauge = GaugeMetricFamily("herald_workers", "Workers with a live heartbeat on this "
                                  "queue, read at scrape time.")
        if self.count is not None:
            gauge.add_metric((), self.count)
        yield gauge


async def live_workers(redis: Redis[bytes], queue_name: str, now: float) -> list[WorkerCard]:
    ids = await redis.zrangebyscore(workers_key(queue_name), int(now * 1000), "+inf")
    if not ids:
        return []
    raw = await redis.mget([worker_key(queue_name, i.decode()) for i in ids])
    cards = [WorkerCard.from_json(value) for value in raw if value is not None]
    return sorted((c for c in cards if c is not None), key=lambda c: (c.host, c.pid, c.id))


async def collect(redis: Redis[bytes], queue_name: str, *, now: float | None = None
                  ) -> dict[str, Any]:
    """The queue's state: live workers, depth, the oldest waiting job, recent failures."""
    now = time.time() if now is None else now
    now_ms = int(now * 1000)
    workers = await live_workers(redis, queue_name, now)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(queue_name)
        pipe.zcount(queue_name, "-inf", now_ms)
        pipe.zrangebyscore(queue_name, "-inf", now_ms, start=0, num=WAITING_SCAN,
                           withscores=True)
        pipe.lrange(failures_key(queue_name), 0, RECENT_FAILURES - 1)
        depth, due, first_due, failures_raw = await pipe.execute()
    # A job stays in ARQ's queue while it runs: the oldest *waiting* job is the first due
    # one without an in-progress key.
    oldest: float | None = None
    if first_due:
        async with redis.pipeline(transaction=False) as pipe:
            for job_id, _ in first_due:
                pipe.exists(in_progress_key_prefix + job_id.decode())
            taken = await pipe.execute()
        for (_, score), in_progress in zip(first_due, taken, strict=True):
            if not in_progress:
                oldest = max(0.0, round(now - score / 1000, 3))
                break
    failures = []
    for raw in failures_raw:
        with contextlib.suppress(ValueError):
            failures.append(json.loads(raw))
    return {
        "queue": queue_name,
        "time": now,
        "workers": [asdict(card) for card in workers],
        "queue_depth": depth,
        "due": due,
        "deferred": depth - due,
        "oldest_waiting_seconds": oldest,
        "recent_failures": failures,
    }


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [[printable(c) for c in header], *[[printable(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells]


def render_table(status: dict[str, Any]) -> str:
    """`collect`'s answer for a terminal: every value passed through `printable`."""
    now = status["time"]
    lines = [f"queue {status['queue']}: {status['queue_depth']} jobs ({status['due']} due, "
             f"{status['deferred']} deferred), oldest waiting "
             f"{_age(status['oldest_waiting_seconds'])}", ""]
    workers = status["workers"]
    lines.append(f"workers: {len(workers)} live")
    if workers:
        lines += _table(
            ("host", "pid", "version", "running", "concurrency", "providers", "up",
             "last beat"),
            [(w["host"], str(w["pid"]), w["version"], str(w["running"]), str(w["concurrency"]),
              ",".join(w["providers"]) or "-", _age(now - w["started_at"]),
              f"{_age(now - w['heartbeat_at'])} ago") for w in workers])
    failures = status["recent_failures"]
    lines += ["", f"recent failures: {len(failures)}"]
    if failures:
        lines += _table(
            ("time", "provider", "handler", "outcome", "repo", "error"),
            [(_when(f.get("time", 0)), str(f.get("provider")), str(f.get("handler")),
              str(f.get("outcome")), str(f.get("repo") or "-"),
              str(f.get("error") or "").replace("\n", " ")[:120]) for f in failures])
    return "\n".join(lines)
