"""The worker: runs every routed handler, retries transient failures, stops cleanly."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from arq.connections import RedisSettings
from redis.asyncio import Redis

import providers
from bot.commands import worker as worker_command
from bot.composition import create_worker
from bot.context import Context
from bot.embedded_redis import free_port
from bot.events import BUILD_COMPLETED, PING
from bot.routing import Router
from bot.settings import Settings
from bot.worker import Clients, backoff_seconds
from providers.base import NotConfigured, TransientError, Unsupported
from tests.app.conftest import QUEUE, TEST_PROVIDER, AppFactory, make_settings, run_burst
from tests.fakes import FakeCI


@dataclass
class Recorder:
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def record(self, handler: str, context: Context) -> None:
        self.calls.append((handler, context.event.delivery_id, context.job_try))


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "state", HERALD_JOB_MAX_TRIES="3")


async def post_build(start_app: AppFactory, settings: Settings, *deliveries: str) -> None:
    async with start_app(redis=settings.redis_url) as running:
        for delivery in deliveries:
            assert (await running.post(delivery=delivery)).status_code == 202


async def test_a_queued_delivery_reaches_the_routed_handler_with_its_context(
    start_app: AppFactory, settings: Settings, redis: Redis
) -> None:
    router, seen = Router(), []

    @router.register(BUILD_COMPLETED)
    async def on_build(context: Context) -> None:
        seen.append(context)

    @router.register(PING)
    async def on_ping(context: Context) -> None:
        raise AssertionError("not routed to a build")

    await post_build(start_app, settings, "job-1")
    await run_burst(settings, router)

    (context,) = seen
    assert context.event.delivery_id == "job-1"
    assert context.event.run is not None and context.event.run.run_id == "42"
    assert context.job_try == 1
    assert isinstance(context.clients, Clients)
    assert await redis.zcard(QUEUE) == 0


async def test_one_handlers_failure_never_stops_another(
    start_app: AppFactory, settings: Settings, redis: Redis
) -> None:
    router, recorder = Router(), Recorder()

    @router.register(BUILD_COMPLETED)
    async def broken(context: Context) -> None:
        recorder.record("broken", context)
        raise RuntimeError("a bug in one handler")

    @router.register(BUILD_COMPLETED)
    async def healthy(context: Context) -> None:
        recorder.record("healthy", context)

    await post_build(start_app, settings, "job-2")
    await run_burst(settings, router)

    assert recorder.calls == [("broken", "job-2", 1), ("healthy", "job-2", 1)]
    assert await redis.zcard(QUEUE) == 0  # a permanent failure is not retried


async def test_a_missing_credential_is_one_error_line_without_a_traceback(
    start_app: AppFactory, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    router = Router()

    @router.register(BUILD_COMPLETED)
    async def unconfigured(context: Context) -> None:
        raise NotConfigured("set HERALD_EXAMPLE_TOKEN")

    await post_build(start_app, settings, "job-nc")
    await run_burst(settings, router)

    logged = capsys.readouterr()
    output = logged.out + logged.err
    assert "set HERALD_EXAMPLE_TOKEN" in output
    assert "Traceback" not in output


async def test_a_transient_failure_retries_only_the_handler_that_failed(
    start_app: AppFactory, settings: Settings, redis: Redis
) -> None:
    router, recorder = Router(), Recorder()

    @router.register(BUILD_COMPLETED)
    async def publishes(context: Context) -> None:
        recorder.record("publishes", context)

    @router.register(BUILD_COMPLETED)
    async def flaky(context: Context) -> None:
        recorder.record("flaky", context)
        if context.job_try == 1:
            raise TransientError("503 from the CI API", retry_after=0.01)

    await post_build(start_app, settings, "job-3")
    await run_burst(settings, router)

    assert recorder.calls == [("publishes", "job-3", 1), ("flaky", "job-3", 1),
                              ("flaky", "job-3", 2)]
    assert await redis.zcard(QUEUE) == 0
    assert await redis.keys("herald:handled:*") == []


async def test_a_transient_failure_on_the_last_try_ends_the_job(
    start_app: AppFactory, settings: Settings, redis: Redis
) -> None:
    router, recorder = Router(), Recorder()

    @router.register(BUILD_COMPLETED)
    async def always_down(context: Context) -> None:
        recorder.record("always_down", context)
        raise TransientError("timeout", retry_after=0.01)

    await post_build(start_app, settings, "job-4")
    await run_burst(settings, router)

    assert [call[2] for call in recorder.calls] == [1, 2, 3]  # HERALD_JOB_MAX_TRIES=3
    assert await redis.zcard(QUEUE) == 0


async def test_on_sigterm_a_job_past_the_grace_period_goes_back_to_the_queue(
    start_app: AppFactory, redis_url: str, tmp_path: Path, redis: Redis
) -> None:
    settings = make_settings(redis_url, tmp_path / "state",
                             HERALD_WORKER_SHUTDOWN_GRACE_SECONDS="1")
    router, started = Router(), asyncio.Event()

    @router.register(BUILD_COMPLETED)
    async def slow(context: Context) -> None:
        started.set()
        await asyncio.sleep(60)

    await post_build(start_app, settings, "job-5")
    worker = create_worker(settings, router, handle_signals=False)
    running = asyncio.create_task(worker.async_run())
    await asyncio.wait_for(started.wait(), 5)
    worker.handle_sig_wait_for_completion(signal.SIGTERM)
    await asyncio.gather(running, return_exceptions=True)
    await worker.close()

    assert [m.decode() for m in await redis.zrange(QUEUE, 0, -1)] == [f"{TEST_PROVIDER}:job-5"]
    assert await redis.exists(f"arq:in-progress:{TEST_PROVIDER}:job-5") == 0
    assert await redis.exists(f"arq:job:{TEST_PROVIDER}:job-5") == 1


async def test_on_sigterm_a_job_within_the_grace_period_finishes(
    start_app: AppFactory, settings: Settings, redis: Redis
) -> None:
    router, started, finished = Router(), asyncio.Event(), []

    @router.register(BUILD_COMPLETED)
    async def short(context: Context) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(context.event.delivery_id)

    await post_build(start_app, settings, "job-6")
    worker = create_worker(settings, router, handle_signals=False)
    running = asyncio.create_task(worker.async_run())
    await asyncio.wait_for(started.wait(), 5)
    worker.handle_sig_wait_for_completion(signal.SIGTERM)
    await asyncio.gather(running, return_exceptions=True)
    await worker.close()

    assert finished == ["job-6"]
    assert await redis.zcard(QUEUE) == 0


# ---- the Clients holder -----------------------------------------------------------------


class FakeClient(FakeCI):
    """A provider's client that is a CI source and no forge."""

    closed = 0

    def __init__(self, settings: Any, http: Any) -> None:
        super().__init__()
        self.settings = settings

    async def aclose(self) -> None:
        FakeClient.closed += 1


made: list[str] = []


def make_fake_client(settings: Any, http: Any) -> FakeClient:
    made.append(settings.name)
    if settings.get("token") is None:
        raise NotConfigured(f"set HERALD_{settings.name.upper()}_TOKEN")
    return FakeClient(settings, http)


async def test_clients_are_made_once_per_process_and_closed_on_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(providers.CLIENTS, "fake", f"{__name__}:make_fake_client")
    monkeypatch.setitem(providers.CLIENTS, "bare", f"{__name__}:make_fake_client")
    made.clear()
    FakeClient.closed = 0
    clients = Clients(Settings.from_env({"HERALD_FAKE_TOKEN": "t"}), http=None,  # type: ignore[arg-type]
                      directory=providers.DIRECTORY)

    first, second = clients.source("fake"), clients.source("fake")
    with pytest.raises(NotConfigured, match="HERALD_BARE_TOKEN"):
        clients.source("bare")
    with pytest.raises(NotConfigured):
        clients.source("bare")  # not retried: configuration does not change under a process
    with pytest.raises(Unsupported, match="no API client"):
        clients.source("nothing-registered")
    with pytest.raises(Unsupported, match="not a forge"):
        clients.forge("fake")
    await clients.aclose()

    assert first is second
    assert made == ["fake", "bare"]
    assert FakeClient.closed == 1


@pytest.mark.parametrize(
    ("job_try", "retry_after", "low", "high"),
    [
        (1, 42.0, 42.0, 42.0),  # the server said when: honour it
        (1, None, 1.0, 5.0),  # otherwise full jitter under 5 s, never under 1 s
        (3, None, 1.0, 20.0),
        (10, None, 1.0, 300.0),  # capped
        (1, 99999.0, 3600.0, 3600.0),  # an absurd Retry-After is capped at an hour
    ],
)
def test_backoff(job_try: int, retry_after: float | None, low: float, high: float) -> None:
    for _ in range(50):
        assert low <= backoff_seconds(job_try, retry_after) <= high


async def test_herald_worker_exits_non_zero_when_it_cannot_reach_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    settings = make_settings(unreachable, tmp_path / "state")

    def no_retries(settings: Settings, **overrides: Any) -> Any:
        # ARQ would retry the connection five times, a second apart
        redis_settings = RedisSettings.from_dsn(unreachable)
        redis_settings.conn_retries = 0
        return create_worker(settings, redis_settings=redis_settings, **overrides)

    monkeypatch.setattr(worker_command, "create_worker", no_retries)
    status = await worker_command._work(settings, burst=True)

    assert status == 1  # a process manager restarts a failed service, not a finished one
    output = capsys.readouterr()
    assert "worker stopped unexpectedly" in output.out + output.err
