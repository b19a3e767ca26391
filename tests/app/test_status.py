"""Worker visibility: heartbeats, `herald status`, `GET /status` and the job metrics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bot import cli
from bot.context import Context
from bot.events import BUILD_COMPLETED
from bot.routing import Router
from bot.settings import Settings
from bot.status import (
    RECENT_FAILURES,
    HandlerRun,
    Heartbeat,
    JobStats,
    WorkerCard,
    collect,
    failures_key,
    record_job,
    render_table,
    worker_key,
)
from providers.base import NotConfigured, TransientError
from tests.app.conftest import QUEUE, SECRET, TEST_PROVIDER, AppFactory, make_settings
from tests.app.test_health import samples
from tests.app.test_worker import post_build, run_burst

TOKEN = "status-token-for-tests"


def card(name: str = "w1", **changes: Any) -> WorkerCard:
    fields = {"id": f"host-a:100:{name}", "host": "host-a", "pid": 100, "version": "0.1.0",
              "concurrency": 10, "providers": ["github"], "started_at": time.time() - 90}
    return WorkerCard(**{**fields, **changes})


async def eventually(check: Any, within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_a_heartbeat_lists_the_worker_until_it_stops(redis: Redis) -> None:
    heartbeat = Heartbeat(redis, QUEUE, card(), interval=5.0, running=lambda: 3)

    await heartbeat.start()
    listed = (await collect(redis, QUEUE))["workers"]
    await heartbeat.stop()
    after = (await collect(redis, QUEUE))["workers"]

    assert [(w["host"], w["pid"], w["running"], w["providers"]) for w in listed] == [
        ("host-a", 100, 3, ["github"])
    ]
    assert after == []
    assert await redis.exists(worker_key(QUEUE, card().id)) == 0


async def test_a_worker_that_stops_beating_drops_out_after_three_heartbeats(
    redis: Redis,
) -> None:
    heartbeat = Heartbeat(redis, QUEUE, card(), interval=0.1, running=lambda: 0)
    await heartbeat.beat()  # one beat, then silence: a process killed outright

    assert len((await collect(redis, QUEUE))["workers"]) == 1
    await asyncio.sleep(0.35)
    assert (await collect(redis, QUEUE))["workers"] == []


async def test_a_card_expired_before_its_list_entry_is_not_shown(redis: Redis) -> None:
    heartbeat = Heartbeat(redis, QUEUE, card(), interval=5.0, running=lambda: 0)
    await heartbeat.beat()
    await redis.delete(worker_key(QUEUE, card().id))

    assert (await collect(redis, QUEUE))["workers"] == []


async def test_a_card_that_is_not_ours_is_skipped_not_fatal(redis: Redis) -> None:
    await Heartbeat(redis, QUEUE, card("good"), interval=5.0, running=lambda: 0).beat()
    await Heartbeat(redis, QUEUE, card("bad"), interval=5.0, running=lambda: 0).beat()
    await redis.set(worker_key(QUEUE, card("bad").id), b"\xff not json")
    await redis.lpush(failures_key(QUEUE), b"{broken")

    status = await collect(redis, QUEUE)

    assert [w["id"] for w in status["workers"]] == [card("good").id]
    assert status["recent_failures"] == []


def _herald_worker(redis_url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HERALD_REDIS_URL": redis_url, "HERALD_STATE_DIR": str(tmp_path),
           "HERALD_WORKER_HEARTBEAT_SECONDS": "0.3", "HERALD_LOG_FORMAT": "json"}
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--concurrency", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize(("stop", "gone_within"), [
    (signal.SIGTERM, 0.3),  # a clean stop takes its card down at once
    (signal.SIGKILL, 2.0),  # a killed one is listed until its card lapses (3 x 0.3 s)
])
async def test_a_real_worker_appears_and_leaves_the_status(
    redis: Redis, redis_url: str, tmp_path: Path, stop: signal.Signals, gone_within: float
) -> None:
    process = _herald_worker(redis_url, tmp_path)
    try:
        async def listed() -> list[dict[str, Any]]:
            workers: list[dict[str, Any]] = (await collect(redis, QUEUE))["workers"]
            return workers

        [worker] = await eventually(listed)
        process.send_signal(stop)
        process.wait(timeout=30)
        stopped = time.monotonic()
        still_listed = bool(await listed())
        await eventually(lambda: _none(listed), within=5)
        took = time.monotonic() - stopped
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert (worker["pid"], worker["concurrency"], worker["running"]) == (process.pid, 2, 0)
    assert worker["version"] and worker["host"]
    assert still_listed == (stop == signal.SIGKILL)
    assert took < gone_within + 1.0
    assert not await listed()


async def _none(listed: Any) -> bool:
    return not await listed()


async def test_the_status_reports_the_oldest_job_no_worker_has_taken(redis: Redis) -> None:
    now = time.time()
    await redis.zadd(QUEUE, {"p:running": (now - 60) * 1000, "p:waiting": (now - 20) * 1000,
                             "p:later": (now + 300) * 1000})
    await redis.set("arq:in-progress:p:running", b"1")

    status = await collect(redis, QUEUE, now=now)

    assert (status["queue_depth"], status["due"], status["deferred"]) == (3, 2, 1)
    assert status["oldest_waiting_seconds"] == pytest.approx(20, abs=0.01)


async def test_an_empty_queue_has_no_oldest_job(redis: Redis) -> None:
    status = await collect(redis, QUEUE)

    assert (status["queue_depth"], status["oldest_waiting_seconds"]) == (0, None)
    assert (status["workers"], status["recent_failures"]) == ([], [])


async def test_recent_failures_keep_only_the_last_ones_and_never_retries(redis: Redis) -> None:
    for number in range(RECENT_FAILURES + 5):
        await record_job(redis, QUEUE, provider="github", outcome="failed", seconds=0.1,
                         runs=[HandlerRun("handlers.report.on_build", "failed", 0.1,
                                          f"boom {number}")],
                         delivery=f"d{number}", repo="org/repo", job_try=1)
    await record_job(redis, QUEUE, provider="github", outcome="retry", seconds=0.1,
                     runs=[HandlerRun("handlers.report.on_build", "retry", 0.1, "502")],
                     delivery="d-retry", repo="org/repo", job_try=1)

    failures = (await collect(redis, QUEUE))["recent_failures"]

    assert await redis.llen(failures_key(QUEUE)) == RECENT_FAILURES
    assert [f["error"] for f in failures[:2]] == [f"boom {RECENT_FAILURES + 4}",
                                                  f"boom {RECENT_FAILURES + 3}"]
    assert {f["outcome"] for f in failures} == {"failed"}


async def test_a_huge_error_is_cut_before_it_is_kept(redis: Redis) -> None:
    await record_job(redis, QUEUE, provider="github", outcome="failed", seconds=0.1,
                     runs=[HandlerRun("h", "failed", 0.1, "x" * 100_000)],
                     delivery="d", repo=None, job_try=1)

    [failure] = (await collect(redis, QUEUE))["recent_failures"]

    assert len(failure["error"]) == 500


def test_the_table_shows_workers_queue_and_failures_with_control_characters_escaped() -> None:
    now = 1_800_000_000.0
    status = {
        "queue": QUEUE, "time": now, "queue_depth": 7, "due": 5, "deferred": 2,
        "oldest_waiting_seconds": 312.0,
        "workers": [{**card().__dict__, "running": 4, "heartbeat_at": now - 2,
                     "started_at": now - 7200}],
        "recent_failures": [{"time": now - 30, "provider": "github", "handler": "h.report",
                             "outcome": "gave_up", "repo": "org/repo",
                             "error": "502 from api\x1b[31m red"}],
    }

    table = render_table(status)

    assert "queue herald:queue: 7 jobs (5 due, 2 deferred), oldest waiting 5.2m" in table
    assert "workers: 1 live" in table
    [row] = [line for line in table.splitlines() if line.startswith("host-a")]
    assert row.split()[:6] == ["host-a", "100", "0.1.0", "4", "10", "github"]
    assert "recent failures: 1" in table
    assert "\x1b" not in table and "gave_up" in table


async def test_herald_status_prints_the_table_and_json(
    redis: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    heartbeat = Heartbeat(redis, QUEUE, card(), interval=5.0, running=lambda: 1)
    await heartbeat.beat()
    await redis.zadd(QUEUE, {"p:waiting": (time.time() - 5) * 1000})
    monkeypatch.setenv("HERALD_REDIS_URL", redis_url)

    code_table = await asyncio.to_thread(cli.main, ["status"])
    table = capsys.readouterr().out
    code_json = await asyncio.to_thread(cli.main, ["status", "--json"])
    answer = json.loads(capsys.readouterr().out)

    assert (code_table, code_json) == (0, 0)
    assert "workers: 1 live" in table and "1 jobs (1 due, 0 deferred)" in table
    assert [w["id"] for w in answer["workers"]] == [card().id]
    assert answer["queue_depth"] == 1


def test_herald_status_without_redis_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.embedded_redis import free_port

    monkeypatch.setenv("HERALD_REDIS_URL", f"redis://127.0.0.1:{free_port()}")

    assert cli.main(["status"]) == 1
    assert "cannot reach Redis" in capsys.readouterr().err


@pytest.mark.parametrize(("env", "headers", "status", "reason"), [
    ({}, {"authorization": f"Bearer {TOKEN}"}, 403, "set HERALD_STATUS_TOKEN"),
    ({"HERALD_STATUS_TOKEN": TOKEN}, {}, 401, "Authorization: Bearer"),
    ({"HERALD_STATUS_TOKEN": TOKEN}, {"authorization": "Bearer wrong"}, 401, "Bearer"),
    ({"HERALD_STATUS_TOKEN": TOKEN}, {"authorization": f"Basic {TOKEN}"}, 401, "Bearer"),
])
async def test_status_answers_only_a_holder_of_the_token(
    start_app: AppFactory, env: dict[str, str], headers: dict[str, str], status: int,
    reason: str,
) -> None:
    async with start_app(**env) as running:
        response = await running.client.get("/status", headers=headers)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert reason in response.json()["reason"]
    assert TOKEN not in response.text


async def test_status_json_lists_workers_queue_and_failures(
    start_app: AppFactory, redis: Redis,
) -> None:
    await Heartbeat(redis, QUEUE, card(), interval=5.0, running=lambda: 2).beat()
    await record_job(redis, QUEUE, provider="github", outcome="failed", seconds=1.0,
                     runs=[HandlerRun("handlers.report.on_build", "failed", 1.0, "404")],
                     delivery="d1", repo="org/repo", job_try=1)

    async with start_app(HERALD_STATUS_TOKEN=f"old-token, {TOKEN}") as running:
        await running.post(delivery="waiting")
        response = await running.client.get("/status",
                                            headers={"authorization": f"Bearer {TOKEN}"})

    answer = response.json()
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert [(w["host"], w["running"]) for w in answer["workers"]] == [("host-a", 2)]
    assert answer["queue_depth"] == 1 and answer["oldest_waiting_seconds"] is not None
    [failure] = answer["recent_failures"]
    assert {k: failure[k] for k in ("provider", "handler", "outcome", "error", "repo")} == {
        "provider": "github", "handler": "handlers.report.on_build", "outcome": "failed",
        "error": "404", "repo": "org/repo"}


async def test_a_burst_worker_registers_itself_and_leaves_when_done(
    start_app: AppFactory, redis: Redis, redis_url: str, tmp_path: Path,
) -> None:
    settings = make_settings(redis_url, tmp_path / "state")
    router, seen = Router(), []

    @router.register(BUILD_COMPLETED)
    async def look(context: Context) -> None:
        seen.append((await collect(context.redis, QUEUE))["workers"])

    await post_build(start_app, settings, "visible")
    await run_burst(settings, router)

    [[worker]] = seen
    assert worker["running"] in (0, 1)  # the beat before the job, or one during it
    assert TEST_PROVIDER not in worker["providers"]  # no API client: nothing to serve
    assert (await collect(redis, QUEUE))["workers"] == []


def _jobs(found: dict[Any, float], handler: str, outcome: str) -> float:
    labels = (("handler", handler), ("outcome", outcome), ("provider", TEST_PROVIDER))
    return found.get(("herald_jobs_total", labels), 0.0)


async def test_metrics_count_each_handlers_outcome_and_time_every_job(
    start_app: AppFactory, redis_url: str, tmp_path: Path,
) -> None:
    settings = make_settings(redis_url, tmp_path / "state", HERALD_JOB_MAX_TRIES="2")
    router = Router()

    @router.register(BUILD_COMPLETED)
    async def fine(context: Context) -> None:
        return None

    @router.register(BUILD_COMPLETED)
    async def unconfigured(context: Context) -> None:
        raise NotConfigured("set HERALD_EXAMPLE_TOKEN")

    @router.register(BUILD_COMPLETED)
    async def flaky(context: Context) -> None:
        raise TransientError("502 from the API", retry_after=0.01)

    prefix = f"{__name__}.test_metrics_count_each_handlers_outcome_and_time_every_job.<locals>."
    async with start_app(redis=redis_url) as running:
        assert (await running.post(delivery="m-1")).status_code == 202
        await run_burst(settings, router)
        found = samples((await running.client.get("/metrics")).text)
        async with Redis.from_url(redis_url) as client:
            failures = (await collect(client, QUEUE))["recent_failures"]

    assert _jobs(found, prefix + "fine", "done") == 1
    # the second try runs only the handlers that did not finish
    assert _jobs(found, prefix + "unconfigured", "failed") == 2
    assert _jobs(found, prefix + "flaky", "retry") == 1
    assert _jobs(found, prefix + "flaky", "gave_up") == 1
    job = (("le", "+Inf"), ("outcome", "failed"), ("provider", TEST_PROVIDER))
    retry = (("le", "+Inf"), ("outcome", "retry"), ("provider", TEST_PROVIDER))
    assert found[("herald_job_duration_seconds_bucket", retry)] == 1  # the first try
    assert found[("herald_job_duration_seconds_bucket", job)] == 1  # the last
    handler = (("handler", prefix + "fine"), ("le", "+Inf"), ("provider", TEST_PROVIDER))
    assert found[("herald_handler_duration_seconds_bucket", handler)] == 1
    assert found[("herald_workers", ())] == 0  # the burst worker has left
    # what ended a handler for good is listed; the retry that came before is not
    assert sorted((f["handler"].rsplit(".", 1)[-1], f["outcome"]) for f in failures) == [
        ("flaky", "gave_up"), ("unconfigured", "failed"), ("unconfigured", "failed")]


async def test_metrics_show_the_live_workers(start_app: AppFactory, redis: Redis) -> None:
    for name in ("w1", "w2"):
        await Heartbeat(redis, QUEUE, card(name), interval=5.0, running=lambda: 0).beat()

    async with start_app() as running:
        found = samples((await running.client.get("/metrics")).text)

    assert found[("herald_workers", ())] == 2


def test_settings_read_the_heartbeat_and_the_status_token() -> None:
    settings = Settings.from_env({"HERALD_WORKER_HEARTBEAT_SECONDS": "2.5",
                                  "HERALD_STATUS_TOKEN": SECRET})

    assert settings.config.worker_heartbeat_seconds == 2.5
    assert [t.reveal() for t in settings.provider("status").secrets("token")] == [SECRET]


def test_counters_of_another_layout_are_left_out_of_the_metrics() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    stats = JobStats()
    stats.update({b"handler\tgithub\th.report\tdone": b"3", b"handler\tgithub\tshort": b"1",
                  b"job\tgithub\tdone\tnot-a-bucket": b"1", b"job\tgithub\tdone\t99": b"2",
                  b"something-new\tx": b"5"})
    registry = CollectorRegistry()
    registry.register(stats)

    found = samples(generate_latest(registry).decode())

    jobs = (("handler", "h.report"), ("outcome", "done"), ("provider", "github"))
    assert found[("herald_jobs_total", jobs)] == 3
    # a bucket beyond the known ones still counts, in +Inf
    assert found[("herald_job_duration_seconds_bucket",
                  (("le", "+Inf"), ("outcome", "done"), ("provider", "github")))] == 2
    assert not any("short" in str(labels) for _, labels in found)
