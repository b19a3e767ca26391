"""Prometheus metrics of the web process, in a registry per app (tests build many apps).

Labels are bounded: `provider` is a registered provider name (unknown names are counted
as `unknown`), `event` a canonical event name or, for ignored deliveries, the provider's
native name from a delivery whose signature held, and `outcome` one of `OUTCOMES`.

Job metrics come from the workers through Redis (`bot.status`): `herald_jobs_total{provider,
handler,outcome}`, `herald_job_duration_seconds{provider,outcome}`,
`herald_handler_duration_seconds{provider,handler}` and `herald_workers`.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.status import JobStats, WorkerCount

OUTCOMES: Final = (
    "queued",
    "duplicate",
    "spooled",
    "ignored",
    "unknown_provider",
    "too_large",
    "timeout",
    "bad_content_type",
    "unauthorized",
    "bad_payload",
    "unavailable",
    "error",
)

#: Enqueue is a Redis round trip shared by a batch: sub-millisecond buckets matter.
ENQUEUE_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "herald_webhook_deliveries",
            "Webhook deliveries by provider, event and outcome.",
            ("provider", "event", "outcome"),
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "herald_webhook_signature_failures",
            "Deliveries refused because no configured secret verified them.",
            ("provider",),
            registry=self.registry,
        )
        self.enqueue_seconds = Histogram(
            "herald_enqueue_seconds",
            "Time to hand an event to the queue (Redis or the local spool).",
            buckets=ENQUEUE_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "herald_queue_depth",
            "Jobs waiting in the Redis queue, read at scrape time.",
            registry=self.registry,
        )
        self.spool_depth = Gauge(
            "herald_spool_depth",
            "Deliveries accepted while Redis was unreachable, not yet moved to Redis.",
            registry=self.registry,
        )
        self.redis_up = Gauge(
            "herald_redis_up",
            "1 when the last scrape reached Redis, else 0.",
            registry=self.registry,
        )
        # The workers' figures, read from Redis at scrape time (`bot.status`): every web
        # process shows the whole queue's jobs and workers, not its own.
        self.job_stats = JobStats()
        self.workers = WorkerCount()
        self.registry.register(self.job_stats)
        self.registry.register(self.workers)

        self._deliveries: dict[tuple[str, str, str], Counter] = {}

    def delivery(self, provider: str, event: str, outcome: str) -> Counter:
        """The deliveries counter's child for these labels, looked up once per label set:
        `labels()` validates and joins its arguments on every call, on every request."""
        key = (provider, event, outcome)
        child = self._deliveries.get(key)
        if child is None:
            child = self._deliveries[key] = self.deliveries.labels(provider, event, outcome)
        return child

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
