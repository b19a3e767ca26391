"""Run history in Redis: the default backend.

Key layout, per `HistoryKey` (its parts hashed into `{scope}`, 32 hex digits, because
repository, branch and workflow names may hold `:` or be very long; the parts themselves
are in every run blob's header):

- `herald:history:{scope}:runs`: a sorted set, run id → finish time (Unix seconds).
- `herald:history:{scope}:heads`: a hash, run id → `{attempt}:{sha}`, for a lookup by
  commit and to refuse an earlier attempt of a stored run.
- `herald:history:{scope}:run:{digest of the run id}`: the run (`bot.history.codec`),
  TTL: until it leaves the retention window by age.
- `herald:history:{scope}:aggregates`: the window's `Aggregates`, TTL: until the window's
  oldest run leaves it by age, so stale counts are never read (a reader that finds none
  recomputes them from the runs).
- `herald:history:{scope}:version`: a counter every write increments. Writers watch it
  (optimistic `WATCH`/`MULTI`): two writers of one key never lose each other's run from
  the aggregates; the one that lost the race reads again and redoes its write.

The index, heads and version live `max_days` from the last write. So does everything:
a key nobody writes to any more is gone after the retention period.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from redis.exceptions import RedisError, WatchError

from bot.history.codec import decode_aggregates, decode_run, encode_aggregates, encode_run
from bot.history.store import WRITE_TRIES, Clock, Lookup, Retention, fold, readable, utc_now
from bot.history.summary import Aggregates, HistoryError, HistoryKey, RunSummary
from bot.redis_url import redis_client

PREFIX: Final = "herald:history"


def scope_of(key: HistoryKey) -> str:
    digest = hashlib.blake2b(orjson.dumps(key.parts()), digest_size=16).hexdigest()
    return f"{PREFIX}:{digest}"


def run_key(scope: str, run_id: str) -> str:
    return f"{scope}:run:{hashlib.blake2b(run_id.encode(), digest_size=12).hexdigest()}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisHistory:
    """`HistoryStore` on Redis. `redis` is a `redis.asyncio.Redis` returning bytes."""

    def __init__(self, redis: Any, retention: Retention, *, clock: Clock = utc_now,
                 owned: bool = False) -> None:
        self.redis = redis
        self.retention = retention
        self.clock = clock
        self._owned = owned

    @classmethod
    def from_url(cls, url: str, retention: Retention, *, clock: Clock = utc_now) -> RedisHistory:
        return cls(redis_client(url), retention, clock=clock, owned=True)

    async def close(self) -> None:
        if self._owned:
            await self.redis.aclose()

    def _ttl(self, finished: datetime, now: datetime) -> int:
        """Seconds until a run that finished at `finished` leaves the window by age (a run
        stamped in the future by a CI's skewed clock lives no longer than the window)."""
        left = min(finished + self.retention.max_age - now, self.retention.max_age)
        return max(1, math.ceil(left.total_seconds()))

    # -- writing --------------------------------------------------------------------------

    async def record(self, summary: RunSummary) -> bool:
        now = self.clock()
        if summary.finished_at < self.retention.cutoff(now):
            return False
        scope = scope_of(summary.key)
        blob = encode_run(summary)
        for attempt in range(WRITE_TRIES):
            try:
                return await self._record_once(scope, summary, blob, now)
            except WatchError:
                # Another writer of this key won: each try folds the whole window again,
                # so writers that keep colliding spread out instead of all redoing it at once.
                await asyncio.sleep(random.uniform(0, 0.01 * (attempt + 1)))
            except RedisError as exc:
                raise HistoryError(f"history of {summary.key.repo}: {exc}") from exc
        raise HistoryError(
            f"history of {summary.key.repo}: {WRITE_TRIES} concurrent writes in a row won "
            "the race against this one"
        )

    async def _record_once(self, scope: str, summary: RunSummary, blob: bytes,
                           now: datetime) -> bool:
        runs_key, heads_key, version_key = f"{scope}:runs", f"{scope}:heads", f"{scope}:version"
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(version_key)
            listed = await pipe.zrange(runs_key, 0, -1, withscores=True)
            stored_head = await pipe.hget(heads_key, summary.run_id)
            if stored_head is not None:
                stored_attempt = int(_text(stored_head).partition(":")[0])
                if stored_attempt > summary.attempt:
                    await pipe.unwatch()
                    return False
            runs = {_text(run_id): datetime.fromtimestamp(score, UTC) for run_id, score in listed}
            runs[summary.run_id] = summary.finished_at
            kept, dropped = self.retention.keep(list(runs.items()), now)
            if summary.run_id not in kept:
                await pipe.unwatch()
                return False
            others = [run_id for run_id in kept if run_id != summary.run_id]
            blobs = await pipe.mget([run_key(scope, run_id) for run_id in others]) if others \
                else []
            stored = [(run_id, blob) for run_id, blob in zip(others, blobs, strict=True)
                      if blob is not None]
            # A run whose blob is gone (evicted, or expired a moment early) leaves the index
            # too, or every lookup would find the aggregates describing another window than
            # the index and count them again; so does one that no longer reads.
            dropped += [run_id for run_id, blob in zip(others, blobs, strict=True)
                        if blob is None]
            decoded, unreadable = readable(stored, summary.key)
            dropped += unreadable
            by_id = {run.run_id: run for run in decoded}
            by_id[summary.run_id] = summary
            window = [by_id[run_id] for run_id in kept if run_id in by_id]
            aggregates = await fold(window)
            pipe.multi()
            pipe.set(run_key(scope, summary.run_id), blob,
                     ex=self._ttl(summary.finished_at, now))
            pipe.zadd(runs_key, {summary.run_id: summary.finished_at.timestamp()})
            pipe.hset(heads_key, summary.run_id, f"{summary.attempt}:{summary.sha}")
            if dropped:
                pipe.zrem(runs_key, *dropped)
                pipe.hdel(heads_key, *dropped)
                pipe.delete(*[run_key(scope, run_id) for run_id in dropped])
            assert aggregates.oldest is not None
            pipe.set(f"{scope}:aggregates", encode_aggregates(aggregates),
                     ex=self._ttl(aggregates.oldest, now))
            pipe.incr(version_key)
            life = math.ceil(self.retention.max_age.total_seconds())
            for name in (runs_key, heads_key, version_key):
                pipe.expire(name, life)
            await pipe.execute()
        return True

    # -- reading --------------------------------------------------------------------------

    async def _live_ids(self, scope: str, now: datetime) -> list[str]:
        cutoff = self.retention.cutoff(now).timestamp()
        listed = await self.redis.zrevrangebyscore(f"{scope}:runs", "+inf", cutoff,
                                                   withscores=True)
        return self._ordered(listed)

    def _ordered(self, listed: list[tuple[bytes, float]]) -> list[str]:
        runs = [(_text(run_id), datetime.fromtimestamp(score, UTC)) for run_id, score in listed]
        return self.retention.keep(runs, self.clock())[0]

    async def _run(self, scope: str, run_id: str, names: bool) -> RunSummary | None:
        found = await self.redis.get(run_key(scope, run_id))
        if found is None:
            return None
        return decode_run(found, names=names, what=f"history run {run_id}")

    async def latest(self, key: HistoryKey, sha: str | None = None) -> RunSummary | None:
        try:
            return await self._latest(scope_of(key), sha, self.clock())
        except RedisError as exc:
            raise HistoryError(f"history of {key.repo}: {exc}") from exc

    async def _latest(self, scope: str, sha: str | None, now: datetime,
                      ids: list[str] | None = None) -> RunSummary | None:
        if ids is None:
            ids = await self._live_ids(scope, now)
        if sha is not None:
            heads = await self.redis.hgetall(f"{scope}:heads")
            of_sha = {_text(run_id) for run_id, head in heads.items()
                      if _text(head).partition(":")[2] == sha}
            ids = [run_id for run_id in ids if run_id in of_sha]
        for run_id in ids:
            # A run whose blob expired a moment before its index entry: the next one.
            found = await self._run(scope, run_id, names=True)
            if found is not None:
                return found
        return None

    async def window(self, key: HistoryKey, limit: int | None = None) -> list[RunSummary]:
        scope = scope_of(key)
        try:
            ids = await self._live_ids(scope, self.clock())
            if limit is not None:
                ids = ids[:limit]
            if not ids:
                return []
            blobs = await self.redis.mget([run_key(scope, run_id) for run_id in ids])
        except RedisError as exc:
            raise HistoryError(f"history of {key.repo}: {exc}") from exc
        return [decode_run(blob, names=False, what=f"history run {run_id}")
                for run_id, blob in zip(ids, blobs, strict=True) if blob is not None]

    async def aggregates(self, key: HistoryKey) -> Aggregates:
        return (await self.lookup(key, latest=False)).aggregates

    async def lookup(self, key: HistoryKey, sha: str | None = None, *,
                     latest: bool = True) -> Lookup:
        scope = scope_of(key)
        now = self.clock()
        cutoff = self.retention.cutoff(now).timestamp()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrevrangebyscore(f"{scope}:runs", "+inf", cutoff, withscores=True)
                pipe.get(f"{scope}:aggregates")
                listed, stored = await pipe.execute()
            ids = self._ordered(listed)
            found = await self._latest(scope, sha, now, ids) if latest and ids else None
            if stored is not None:
                aggregates = decode_aggregates(stored)
                # The aggregates' TTL ends when their oldest run ages out; a run removed by
                # hand (or lost) since leaves them describing another window: recount.
                if aggregates.runs == ids:
                    return Lookup(found, aggregates)
            if not ids:
                return Lookup(found, Aggregates())
            return Lookup(found, await self._recount(key, scope, now))
        except RedisError as exc:
            raise HistoryError(f"history of {key.repo}: {exc}") from exc

    async def _recount(self, key: HistoryKey, scope: str, now: datetime) -> Aggregates:
        """The aggregates from the runs themselves, stored again if no write came first."""
        version_key = f"{scope}:version"
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(version_key)
            window = await self.window(key)
            aggregates = await fold(window)
            if aggregates.oldest is None:
                await pipe.unwatch()
                return aggregates
            pipe.multi()
            pipe.set(f"{scope}:aggregates", encode_aggregates(aggregates),
                     ex=self._ttl(aggregates.oldest, now))
            try:
                await pipe.execute()
            except WatchError:
                pass  # a writer stored newer ones; these are still right for this read
        return aggregates
