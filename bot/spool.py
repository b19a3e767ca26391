"""A durable local spool: deliveries accepted while Redis is unreachable, moved there later.

Why a spool rather than answering 503: GitHub never redelivers on its own, and GitLab and
Bitbucket retry a few times but disable a hook that keeps failing. A delivery we refuse
is, in practice, often lost. So the web process appends the prepared job to a file under
the state directory, fsyncs it, and only then answers 202 `spooled`. A background task
moves spooled jobs to Redis through the same atomic enqueue, so dedupe still applies (a
delivery spooled twice, or spooled and also queued, becomes one job).

Layout: `{state_dir}/spool/{pid}-{time_ns}.spool`, one JSON record per line (made as a
hidden `.{pid}-{time_ns}.new` and renamed once locked). The segment a
process is appending to is held under an exclusive `flock`; a drainer takes the same lock
without blocking, so it never reads a segment still being written, and segments left by a
process that died are drained by whichever process gets there first. A torn last line
(power lost mid-write) was never acknowledged, so it is skipped. Only when the spool
itself cannot be written (disk full, read-only) does the web process answer 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from redis.exceptions import RedisError

from bot.events import Event
from bot.logging import get_logger
from bot.queue import EnqueueOutcome, PreparedJob, RedisQueue

SUFFIX: Final = ".spool"
log = get_logger("herald.spool")


class Spool:
    """Append-only, fsynced segments of prepared jobs. Thread-safe appends."""

    def __init__(self, directory: Path) -> None:
        # created on first use: a read-only state directory must not stop the web app from
        # starting; it only means a Redis outage is answered with 503
        self.directory = directory
        self._lock = threading.Lock()
        self._active: IO[bytes] | None = None
        self.pending = sum(_count_lines(path) for path in self.segments())

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def append(self, job: PreparedJob) -> None:
        """Write and fsync one record; returns only once it is on disk."""
        record = json.dumps(
            {
                "job_id": job.job_id,
                "provider": job.provider,
                "delivery_id": job.delivery_id,
                "enqueue_ms": job.enqueue_ms,
                "body": job.body.decode(),
            },
            separators=(",", ":"),
        ).encode() + b"\n"
        with self._lock:
            handle = self._active or self._open_segment()
            try:
                handle.write(record)
                handle.flush()
                os.fsync(handle.fileno())
            except BaseException:
                # Part of the record may be on disk. Were the next record appended after
                # it, the two would make one unreadable line and an acknowledged delivery
                # would be lost; in a closed segment a torn last line is merely skipped.
                with contextlib.suppress(OSError):
                    handle.close()
                self._active = None
                raise
            self.pending += 1

    def rotate(self) -> None:
        """Close the segment being written so a drainer may take it."""
        with self._lock:
            if self._active is not None:
                self._active.close()  # releases the flock
                self._active = None

    def close(self) -> None:
        self.rotate()

    def _open_segment(self) -> IO[bytes]:
        # A directory made here is fsynced into its parent too: otherwise a crash could
        # lose the whole spool directory, every fsynced segment in it included.
        missing = [d for d in (self.directory, *self.directory.parents) if not d.exists()]
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for created in missing:
            _fsync_directory(created.parent)
        name = f"{os.getpid()}-{time.time_ns()}"
        path = self.directory / f"{name}{SUFFIX}"
        # Created under a name drainers do not list, locked, and only then renamed into
        # view: a drainer that found the file between its creation and our lock would take
        # it for an abandoned empty segment and unlink it, and every record appended after
        # would go to a file nobody can find.
        staging = self.directory / f".{name}.new"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(staging, path)
            _fsync_directory(self.directory)  # the new file's name must survive a crash too
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                staging.unlink()
            raise
        self._active = os.fdopen(fd, "ab")
        return self._active

    @contextlib.contextmanager
    def claim(self, path: Path) -> Iterator[list[PreparedJob] | None]:
        """Lock a finished segment and read it; yields None if another process holds it."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            yield None
            return
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            yield list(_read_records(handle.read(), path))

    def remove(self, path: Path, records: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with self._lock:
            self.pending = max(0, self.pending - records)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_records(data: bytes, path: Path) -> Iterator[PreparedJob]:
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line:
            continue
        try:
            record = json.loads(line)
            yield PreparedJob(
                job_id=record["job_id"],
                provider=record["provider"],
                delivery_id=record["delivery_id"],
                body=record["body"].encode(),
                enqueue_ms=int(record["enqueue_ms"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("spool record unreadable, skipped", segment=path.name, line=number)


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


class SpoolingQueue:
    """`Queue` that enqueues to Redis and falls back to the spool when Redis fails.

    After one failure every delivery goes straight to the spool (no per-request connect
    timeout while Redis is down) until the drainer has reached Redis and emptied it.
    """

    def __init__(
        self,
        primary: RedisQueue,
        spool: Spool,
        *,
        recheck_seconds: float = 0.5,
        idle_check_seconds: float = 5.0,
    ) -> None:
        self.primary = primary
        self.spool = spool
        self.recheck_seconds = recheck_seconds
        self.idle_check_seconds = idle_check_seconds
        self.degraded = False
        self._failures = 0  # Redis failures seen by enqueue, so a drain knows of newer ones
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def enqueue(self, event: Event) -> EnqueueOutcome:
        job = PreparedJob.from_event(event)
        if not self.degraded:
            try:
                return await self.primary.enqueue_prepared(job)
            except (RedisError, OSError) as exc:
                self._degrade(exc)
        await asyncio.to_thread(self.spool.append, job)
        return "spooled"

    async def depth(self) -> int:
        return await self.primary.depth()

    async def ping(self) -> bool:
        return await self.primary.ping()

    def _degrade(self, exc: BaseException, *, wake: bool = True) -> None:
        if not self.degraded:
            log.warning("redis unavailable, spooling deliveries", error=type(exc).__name__)
        self.degraded = True
        self._failures += 1
        if wake:  # switch the drainer from its idle interval to the short recheck one
            self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain_forever(), name="herald-spool-drain")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # gather, not a suppressed await: our own caller's cancellation must still propagate
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.primary.aclose()
        self.spool.close()

    async def _drain_forever(self) -> None:
        while True:
            if (self.degraded or self.spool.segments()) and await self.primary.ping():
                try:
                    await self.drain()
                except (RedisError, OSError) as exc:
                    self._degrade(exc, wake=False)
                except Exception:
                    # Anything else must not end this task: the process would go on
                    # spooling every delivery, and nothing would ever move them.
                    log.exception("draining the spool failed; trying again")
            # Segments may remain that another live process is still writing: look again
            # soon, but on a timer, never in a tight loop.
            busy = self.degraded or bool(self.spool.segments())
            delay = self.recheck_seconds if busy else self.idle_check_seconds
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()

    async def drain(self) -> int:
        """Move every finished segment to Redis; returns the jobs newly queued."""
        failures = self._failures
        self.spool.rotate()
        queued = 0
        for path in self.spool.segments():
            with self.spool.claim(path) as records:
                if records is None:
                    continue
                outcomes: list[Any] = await asyncio.gather(
                    *(self.primary.enqueue_prepared(job) for job in records)
                )
                queued += sum(1 for outcome in outcomes if outcome == "queued")
                self.spool.remove(path, len(records))
                log.info(
                    "spool segment moved to redis",
                    segment=path.name,
                    records=len(records),
                    queued=outcomes.count("queued"),
                    duplicates=outcomes.count("duplicate"),
                )
        if self._failures != failures:
            return queued  # Redis failed a request meanwhile: it is not back yet
        if self.degraded:
            log.info("redis reachable again, spool drained")
        # a request that spooled between our rotate and this line is drained next round
        self.degraded = False
        return queued
