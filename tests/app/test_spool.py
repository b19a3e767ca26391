"""Redis unreachable: deliveries are spooled to disk, moved to Redis later, none lost or doubled."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis as sync_redis

from bot.embedded_redis import EmbeddedRedis
from bot.events import PING, Event
from bot.queue import PreparedJob
from bot.spool import Spool, SpoolingQueue
from tests.app.conftest import TEST_PROVIDER, AppFactory, RunningApp

QUEUE = "herald:queue"


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A private redis-server with an append-only file, so a restart keeps what it held."""
    server = EmbeddedRedis(tmp_path / "redis", persist=True)
    server.start()
    yield server
    server.close()


def queued(url: str) -> list[str]:
    client = sync_redis.Redis.from_url(url)
    try:
        return sorted(m.decode() for m in client.zrange(QUEUE, 0, -1))
    finally:
        client.close()


async def wait_until_drained(running: RunningApp) -> None:
    queue = running.runtime.queue
    async with asyncio.timeout(15):
        while queue.degraded or queue.spool.pending or queue.spool.segments():  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # polled: the drainer signals nobody, by design


def job_ids(*deliveries: str) -> list[str]:
    return sorted(f"{TEST_PROVIDER}:{d}" for d in deliveries)


async def test_redis_down_and_back_loses_nothing_and_doubles_nothing(
    start_app: AppFactory, durable_redis: EmbeddedRedis
) -> None:
    async with start_app(redis=durable_redis.url) as running:
        before = [await running.post(delivery=d) for d in ("a", "b")]
        durable_redis.stop()
        during = [await running.post(delivery=d) for d in ("c", "d", "b", "c")]
        ready_while_down = await running.client.get("/readyz")
        spooled_on_disk = running.runtime.queue.spool.pending

        durable_redis.start()
        await wait_until_drained(running)
        after = await running.post(delivery="d")

    assert [r.json()["status"] for r in before] == ["queued", "queued"]
    assert [(r.status_code, r.json()["status"]) for r in during] == [(202, "spooled")] * 4
    assert ready_while_down.status_code == 503
    assert ready_while_down.json()["spooled"] == spooled_on_disk == 4
    assert queued(durable_redis.url) == job_ids("a", "b", "c", "d")
    assert after.json()["status"] == "duplicate"


async def test_segments_left_by_a_dead_process_are_drained_at_start(
    start_app: AppFactory, tmp_path: Path, redis_url: str
) -> None:
    spool = Spool(tmp_path / "state" / "spool")
    for delivery in ("left-1", "left-2"):
        spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", delivery)))
    spool.close()

    async with start_app() as running:
        await wait_until_drained(running)

    assert queued(redis_url) == job_ids("left-1", "left-2")


async def test_a_torn_last_record_is_skipped_and_the_rest_is_queued(
    start_app: AppFactory, tmp_path: Path, redis_url: str
) -> None:
    directory = tmp_path / "state" / "spool"
    spool = Spool(directory)
    spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", "whole")))
    spool.close()
    (segment,) = directory.glob("*.spool")
    with segment.open("ab") as handle:
        handle.write(json.dumps({"job_id": "x"}).encode()[:9])  # power lost mid-write

    async with start_app() as running:
        await wait_until_drained(running)

    assert queued(redis_url) == job_ids("whole")
    assert list(directory.glob("*.spool")) == []


async def test_when_neither_redis_nor_the_spool_can_take_it_the_answer_is_503_retry_after(
    start_app: AppFactory, own_redis: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: Spool, job: PreparedJob) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Spool, "append", disk_full)
    async with start_app(redis=own_redis.url) as running:
        own_redis.stop()
        response = await running.post()

    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert response.json() == {"status": "unavailable", "reason": "queue unavailable; retry later"}


def test_the_spool_counts_what_it_holds_across_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for delivery in ("1", "2", "3"):
        spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", delivery)))
    spool.close()

    assert Spool(tmp_path).pending == 3


async def test_a_segment_another_process_is_writing_is_left_alone_without_spinning(
    start_app: AppFactory, tmp_path: Path, redis_url: str
) -> None:
    directory = tmp_path / "state" / "spool"
    spool = Spool(directory)
    spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", "still-open")))
    # `spool` keeps its segment open and locked, as a live web process would

    async with start_app() as running:
        pings = 0
        real_ping = running.runtime.queue.primary.ping

        async def counting_ping() -> bool:
            nonlocal pings
            pings += 1
            return await real_ping()

        running.runtime.queue.primary.ping = counting_ping  # type: ignore[method-assign]
        await asyncio.sleep(1.2)
        assert queued(redis_url) == []
        assert pings <= 4  # the 0.5 s recheck, not a busy loop

        spool.close()  # that process rotates (or dies): now the segment is ours to move
        await wait_until_drained(running)

    assert queued(redis_url) == job_ids("still-open")


def test_a_segment_is_never_visible_to_a_drainer_before_its_writer_holds_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_flock = fcntl.flock
    rival = Spool(tmp_path)  # another process's drainer, running at the worst moment

    def drain_then_lock(fd: int, operation: int) -> None:
        if not operation & fcntl.LOCK_NB:  # the writer about to lock its new segment
            for path in rival.segments():
                with rival.claim(path) as records:
                    if records is not None:
                        rival.remove(path, len(records))
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", drain_then_lock)
    spool = Spool(tmp_path)
    spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", "acknowledged")))
    spool.close()
    monkeypatch.setattr(fcntl, "flock", real_flock)

    assert spooled_job_ids(tmp_path) == job_ids("acknowledged")


def spooled_job_ids(directory: Path) -> list[str]:
    spool = Spool(directory)
    found: list[str] = []
    for path in spool.segments():
        with spool.claim(path) as records:
            assert records is not None
            found.extend(job.job_id for job in records)
    return sorted(found)


class _TornOnce:
    """A segment whose first write stops halfway with the disk full, as write(2) may."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.torn = False

    def write(self, data: bytes) -> int:
        if not self.torn:
            self.torn = True
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def test_a_record_after_a_failed_write_is_not_glued_to_its_torn_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    real_open = spool._open_segment
    opened = 0

    def open_segment() -> IO[bytes]:
        nonlocal opened
        opened += 1
        handle = real_open()
        if opened == 1:
            spool._active = _TornOnce(handle)  # type: ignore[assignment]
            return spool._active
        return handle

    monkeypatch.setattr(spool, "_open_segment", open_segment)
    with pytest.raises(OSError, match="No space"):  # answered 503: the sender retries
        spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", "refused")))
    spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", "acknowledged")))
    spool.close()

    assert spooled_job_ids(tmp_path) == job_ids("acknowledged")


@pytest.mark.parametrize(
    "damaged",
    [
        b'{"job_id": "x", "provider"',  # torn
        b'["not", "a", "record"]',
        b'{"job_id": "x", "provider": "p", "delivery_id": "d", "enqueue_ms": 1}',  # no body
        b'{"job_id": "x", "provider": "p", "delivery_id": "d", "enqueue_ms": 1, "body": 7}',
        b'{"job_id": "x", "provider": "p", "delivery_id": "d", "enqueue_ms": "soon", "body": ""}',
    ],
    ids=["torn", "not an object", "missing field", "body not text", "time not a number"],
)
def test_a_damaged_record_is_skipped_and_the_rest_of_its_segment_is_read(
    tmp_path: Path, damaged: bytes
) -> None:
    spool = Spool(tmp_path)
    for delivery in ("before", "after"):
        spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", delivery)))
    spool.close()
    (segment,) = tmp_path.glob("*.spool")
    before, after = segment.read_bytes().splitlines()
    segment.write_bytes(b"\n".join([before, damaged, after, b""]))

    assert spooled_job_ids(tmp_path) == job_ids("before", "after")


async def test_the_drainer_survives_an_unexpected_error_and_drains_on_the_next_round(
    start_app: AppFactory, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "state" / "spool")
    spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", "kept")))
    spool.close()
    real_claim = Spool.claim
    failures = 0

    def claim_failing_once(self: Spool, path: Path) -> Any:
        nonlocal failures
        if not failures:
            failures += 1
            raise RuntimeError("unexpected")
        return real_claim(self, path)

    monkeypatch.setattr(Spool, "claim", claim_failing_once)
    async with start_app() as running:
        async with asyncio.timeout(5):
            await wait_until_drained(running)

    assert failures == 1
    assert queued(redis_url) == job_ids("kept")


def test_a_new_spool_directory_and_segment_are_fsynced_into_their_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    spool = Spool(tmp_path / "state" / "spool")
    spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", "first")))
    spool.close()
    (segment,) = (tmp_path / "state" / "spool").glob("*.spool")

    assert {str(tmp_path), str(tmp_path / "state"), str(tmp_path / "state" / "spool"),
            str(segment)} <= set(synced)


class _FlappingRedis:
    """Answers the spooled delivery only when let through; fails every other one."""

    def __init__(self) -> None:
        self.draining = asyncio.Event()
        self.let_through = asyncio.Event()

    async def enqueue_prepared(self, job: PreparedJob) -> str:
        if job.delivery_id != "spooled-earlier":
            raise sync_redis.ConnectionError("connection refused")
        self.draining.set()
        await self.let_through.wait()
        return "queued"

    async def ping(self) -> bool:
        return True


async def test_redis_failing_a_request_during_a_drain_keeps_the_queue_spooling(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path)
    spool.append(PreparedJob.from_event(Event(TEST_PROVIDER, PING, "ping", "spooled-earlier")))
    spool.close()
    redis = _FlappingRedis()
    queue = SpoolingQueue(redis, spool)  # type: ignore[arg-type]

    drain = asyncio.create_task(queue.drain())
    await redis.draining.wait()
    during = await queue.enqueue(Event(TEST_PROVIDER, PING, "ping", "during-the-drain"))
    redis.let_through.set()
    await drain

    assert during == "spooled"
    assert queue.degraded  # so the next delivery is spooled, not held on a dead connection
