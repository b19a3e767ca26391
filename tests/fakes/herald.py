"""Herald itself in an end-to-end test: the web app over ASGI (with its lifespan), and a
burst worker that runs the queue dry. Each provider's end-to-end module subclasses
`Herald` with a `deliver` that signs and sends that provider's webhooks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import redis

from bot.composition import create_app, create_worker
from bot.queue import DEDUPE_PREFIX
from bot.settings import Settings

H = TypeVar("H", bound="Herald")


@dataclass
class Herald:
    settings: Settings
    http: httpx.AsyncClient

    async def deliver_three_times(
        self, send: Callable[[], Awaitable[httpx.Response]], redis_url: str
    ) -> None:
        """What a sender's retry and a manual resend do: `send` once, again at once (a
        duplicate, queued nothing), and again after the dedupe window (the job runs again,
        and must update what it published, never add to it); the worker runs after each."""
        assert (await send()).status_code == 202
        again = await send()
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")
        await self.work()
        forget_deliveries(redis_url)
        assert (await send()).status_code == 202
        await self.work()

    async def work(self, jobs: int = -1) -> None:
        """Run a burst worker until the queue, deferred retries included, is empty, or
        until it has started `jobs` jobs (jobs due later then stay queued)."""
        worker = create_worker(self.settings, burst=True, handle_signals=False,
                               max_burst_jobs=jobs)
        try:
            await worker.main()
        finally:
            await worker.close()


def forget_deliveries(redis_url: str) -> None:
    """As if the dedupe window had passed: a resend is taken again."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{DEDUPE_PREFIX}*"):
        client.delete(key)
    client.close()


@contextlib.asynccontextmanager
async def running(
    kind: type[H], redis_url: str, tmp_path: Path, env: Mapping[str, str]
) -> AsyncIterator[H]:
    """The app on the test's Redis and state directory, plus the provider's `env`."""
    settings = Settings.from_env({
        "HERALD_REDIS_URL": redis_url,
        "HERALD_STATE_DIR": str(tmp_path / "state"),
        "HERALD_LOG_FORMAT": "json",
        # The redelivery pass is a cron job of every worker: a test worker that runs across
        # its minute would ask the fake for deliveries no test expects (its own tests set it).
        "HERALD_GITHUB_REDELIVER_INTERVAL_MINUTES": "0",
        **env,
    })
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald") as http:
            yield kind(settings, http)
