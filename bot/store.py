"""Redis state the handlers share across workers: locks, short caches, done-markers.

Key layout (every key under `herald:`, every key with a TTL):

- `herald:lock:report:{provider}:{repo}:{run_id}`: the holder's random token, TTL
  `lock_ttl` (the job timeout + 60 s, at least `LOCK_TTL_SECONDS`, 6 min). The report
  handler: one worker per run at a time.
- `herald:lock:retest:{provider}:{repo}:{comment_id}`: likewise, for the retest handler:
  one worker per `/retest` comment at a time.
- `herald:cache:permission:{provider}:{repo}:{user}`: `"1"` trusted or `"0"`, TTL 60 s.
  The retest handler: the forge's answer to "may this user retest?".
- `herald:done:retest:{provider}:{repo}:{comment_id}`: a hash whose fields are what was
  done for that comment (`run:{provider}:{run_id}`, `replied`), TTL 24 h. The retest
  handler: what a retried job must not do twice.
- `herald:reported:{forge}:{repo}:{sha}`: a hash whose fields are `{ci}:{run_id}` of each
  CI run Herald reported on that commit, the value its `RunRef` as JSON, TTL
  `REPORTED_TTL_SECONDS` (14 days) from the last report. The retest handler: which CI
  systems ran for a head commit, so `/retest` reruns the failed work of every one of them.
- `herald:repoconf:at:{forge}:{repo}:{sha}` and `herald:repoconf:blob:{forge}:{repo}:{blob}`:
  which `.herald.yml` applies at a commit, and its bytes by blob id (TTLs and why in
  `bot.repo_config_read`). The report handler.

Locks are redis-py's own `redis.asyncio.lock.Lock`: `SET NX PX` with a random token,
released and extended by its compare-and-act scripts, so a holder whose lock lapsed never
deletes or extends a later holder's lock. While a block runs, a background task extends
the lock back to its full TTL every third of it: a job that runs longer than the TTL (a
slow run, a job timeout raised on one worker before the others) keeps its lock. A worker
that dies holding a lock stops extending it, so that run is blocked for at most the TTL;
`lock_ttl` sizes it past ARQ's job timeout all the same, so the remaining TTL a second
delivery is told to wait (`LockBusy.retry_after`) covers the whole of the holder's job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from redis.asyncio.lock import Lock
from redis.exceptions import LockNotOwnedError, RedisError

from bot.events import RunRef
from bot.logging import get_logger
from bot.ports import Change
from bot.settings import Settings

PREFIX: Final = "herald"
LOCK_TTL_SECONDS: Final = 360.0
PERMISSION_TTL_SECONDS: Final = 60
DONE_TTL_SECONDS: Final = 24 * 3600
#: How long Herald remembers which CI runs it reported on a commit: a pull request left
#: for two weeks can still be retested in every CI system that ran for it.
REPORTED_TTL_SECONDS: Final = 14 * 24 * 3600

#: A held lock is extended this many times per TTL: one failed extension (a Redis blip)
#: still leaves a later one time to land before the lock lapses.
EXTENSIONS_PER_TTL: Final = 3

log = get_logger("herald.store")


class LockBusy(Exception):
    """Another worker holds the lock; `retry_after` is when it expires at the latest."""

    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"{key} is held by another worker")
        self.retry_after = retry_after


def lock_ttl(settings: Settings) -> float:
    """TTL of a lock held for one job: longer than the worker's job timeout, so the TTL a
    second delivery is told to wait covers the holder's whole job (and a holder keeps its
    lock even between extensions), and no longer than needed, so a killed worker's lock
    lapses soon after ARQ reruns its job."""
    return max(LOCK_TTL_SECONDS, settings.job_timeout_seconds() + 60)


def key(*parts: object) -> str:
    """`key("lock", "report", "github", "o/r", 1)` → `herald:lock:report:github:o/r:1`."""
    return ":".join([PREFIX, *(str(part) for part in parts)])


class Store:
    """Typed access to Herald's Redis keys. `redis` is a `redis.asyncio.Redis` (or ARQ's)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    @asynccontextmanager
    async def lock(
        self,
        name: str,
        *,
        ttl: float = LOCK_TTL_SECONDS,
        wait: float = 10.0,
        poll: float = 0.1,
    ) -> AsyncIterator[None]:
        """Hold `herald:lock:{name}` for the block, extended while it runs; wait up to
        `wait` s for it, else `LockBusy` with the holder's remaining TTL."""
        lock_key = key("lock", name)
        # thread_local=False: the token belongs to this acquisition, not to the thread that
        # every coroutine of the worker shares.
        lock = Lock(
            self.redis, lock_key, timeout=ttl, sleep=poll, blocking_timeout=wait,
            thread_local=False,
        )
        if not await lock.acquire():
            remaining_ms = await self.redis.pttl(lock_key)
            raise LockBusy(lock_key, max(1.0, remaining_ms / 1000 if remaining_ms > 0 else 1))
        keeper = asyncio.create_task(_keep_extended(lock, ttl), name=f"extend {lock_key}")
        try:
            yield
        finally:
            keeper.cancel()
            # asyncio.wait, not await: it neither raises the keeper's CancelledError nor
            # swallows a cancellation of this task.
            await asyncio.wait([keeper])
            try:
                await lock.release()
            except LockNotOwnedError:
                # It lapsed (Redis lost the key, or the loop stalled past the TTL) and may
                # be someone else's now: theirs to release, not ours.
                log.warning("lock lapsed before its holder released it", lock=lock_key)

    async def cached_flag(self, name: str) -> bool | None:
        value = await self.redis.get(key("cache", name))
        if value is None:
            return None
        return value in (b"1", "1")

    async def cache_flag(self, name: str, value: bool, ttl: int) -> None:
        await self.redis.set(key("cache", name), "1" if value else "0", ex=ttl)

    async def done(self, name: str, item: str) -> bool:
        """Whether `item` was marked done under `herald:done:{name}`."""
        return bool(await self.redis.hexists(key("done", name), item))

    async def mark_done(self, name: str, item: str, ttl: int = DONE_TTL_SECONDS) -> None:
        done_key = key("done", name)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(done_key, item, "1")
            pipe.expire(done_key, ttl)
            await pipe.execute()

    async def record_report(
        self, change: Change, run: RunRef, ttl: int = REPORTED_TTL_SECONDS
    ) -> None:
        """Remember that `run` was reported on the change's commit."""
        reported = key("reported", change.forge, change.repo, change.sha)
        value = json.dumps(dataclasses.asdict(run), separators=(",", ":"), default=str)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(reported, f"{run.provider}:{run.run_id}", value)
            pipe.expire(reported, ttl)
            await pipe.execute()

    async def reported_runs(self, change: Change) -> list[RunRef]:
        """The CI runs reported on the change's commit, in no particular order. A record
        that no longer reads (written by another version) is skipped: it only widens which
        CI systems are asked, never what runs."""
        found = await self.redis.hgetall(key("reported", change.forge, change.repo, change.sha))
        runs: list[RunRef] = []
        for raw in found.values():
            try:
                runs.append(RunRef(**json.loads(raw)))
            except (TypeError, ValueError):
                continue
        return runs


async def _keep_extended(lock: Lock, ttl: float) -> None:
    """Extend `lock` back to `ttl` every `ttl / EXTENSIONS_PER_TTL` s until cancelled.

    A lock found lost is not taken back: another worker may hold it by now. The block
    goes on without it rather than being cancelled halfway through a publish, which would
    leave the reviewer a half-made report; publishing upserts, so the worst overlap is a
    duplicate the next report replaces.
    """
    while True:
        await asyncio.sleep(ttl / EXTENSIONS_PER_TTL)
        try:
            await lock.extend(ttl, replace_ttl=True)
        except LockNotOwnedError:
            log.warning("lock lost while held; no longer extending it", lock=lock.name)
            return
        except RedisError as exc:
            log.warning("could not extend a held lock; trying again", lock=lock.name,
                        error=str(exc))
