"""The job queue: our own small interface, implemented over ARQ's Redis layout.

Herald depends on `Queue.enqueue(event) -> "queued" | "duplicate" | "spooled"`, never on
ARQ directly; ARQ knowledge lives here and in `bot.worker` only (ARQ is in maintenance
mode, and its own `_job_id` dedupe lasts only while a job or its result is kept).

Redis key layout (every key has a TTL or is bounded by the jobs it holds). ``{job id}`` is
``{ns}{provider}:{delivery id}``, where ``{ns}`` is empty for the default queue name
(``herald:queue``: the layout deployments already have) and ``{queue_name}/`` for any
other, so every key that names a job (ARQ's included: ARQ's prefixes are module constants
its `Worker` takes no argument for, but they are all followed by the job id) belongs to one
queue name, and two installations sharing a Redis never see each other's deliveries:

=====================================  ======  =====================================================
key                                    type    meaning, lifetime
=====================================  ======  =====================================================
``herald:delivery:{job id}``           string  our dedupe record of a delivery; value = how its job
                                               stands (`DeliveryState`: ``queued``, ``running``,
                                               ``done``, ``gave_up``, ``failed``; a record of an
                                               older Herald holds the enqueue time and counts as
                                               queued). TTL `DEDUPE_TTL` (7 days: GitHub redelivers
                                               for 3 days, GitLab resends from 7 days of history).
``arq:job:{job id}``                   string  ARQ's job: JSON ``{"t","f","a","k","et"}`` with
                                               ``f = "handle_event"`` and ``a = [event dict]``.
                                               TTL `JOB_TTL` (72 h); deleted when the job ends.
``{queue_name}`` (``herald:queue``)    zset    ARQ's queue: member = job id, score = run-at (ms)
``arq:in-progress:{job id}``           string  ARQ: a worker runs the job; TTL job timeout + 10 s
``arq:retry:{job id}``                 string  ARQ: tries so far; TTL ~1 day
``arq:result:{job id}``                string  ARQ: a finished job's result, only if keep_result > 0
``herald:handled:{job id}``            set     handlers that completed for a job, so a retry runs
                                               only the others (`bot.worker`); TTL 1 day
``{queue_name}:health-check``          string  ARQ worker heartbeat
=====================================  ======  =====================================================

ARQ's abort set (``arq:abort``) stays shared: Herald's workers never abort jobs, so never
read it.

The dedupe record, the job and the queue entry are written by one Lua script
(`ENQUEUE_SCRIPT`): the job is written only when no dedupe record exists, or when the
record says the delivery's job gave up or failed (and ARQ no longer holds it in progress),
so fifty concurrent posts of one delivery make exactly one job, a redelivery of a job that
is queued, running or done makes none, and a redelivery after a failure runs it again,
once. The worker writes ``running`` when a job starts and how it ended when it ends
(`bot.worker`). What this can hide: a redelivery arriving in the milliseconds between the
job's end and ARQ's clean-up of it is answered ``duplicate`` (queuing it then would let
that clean-up delete the new job), and a job ARQ itself drops (``max tries exceeded``
after repeated worker kills, an expired job) keeps ``running``: both say so in the
worker's log, and a redelivery after the dedupe TTL runs again.

Enqueues arriving together (concurrent requests in one event loop) are sent as one call
of the script for the whole batch (`_Batcher`): one Redis round trip per batch, not per
request. An error inside the script (a queue key of the wrong type) fails the whole
batch; jobs it had written before the error are then answered `duplicate` when resent or
drained from the spool, and the job it stopped at has no dedupe record yet, so it is
queued then.
Jobs are JSON (`dumps_job`/`loads_job`, configured on both sides), never pickle.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Generic, Literal, Protocol, TypeVar

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from bot.events import Comment, Event, JsonObject, RunRef
from bot.logging import get_logger

EnqueueOutcome = Literal["queued", "duplicate", "spooled"]
log = get_logger("herald.queue")

JOB_FUNCTION: Final = "handle_event"
DEFAULT_QUEUE_NAME: Final = "herald:queue"
DEDUPE_PREFIX: Final = "herald:delivery:"
HANDLED_PREFIX: Final = "herald:handled:"
ARQ_JOB_PREFIX: Final = "arq:job:"  # arq.constants.job_key_prefix
ARQ_IN_PROGRESS_PREFIX: Final = "arq:in-progress:"  # arq.constants.in_progress_key_prefix
ARQ_RETRY_PREFIX: Final = "arq:retry:"  # arq.constants.retry_key_prefix
DEDUPE_TTL: Final = 7 * 24 * 3600
MIN_DEDUPE_TTL: Final = 72 * 3600
JOB_TTL: Final = 72 * 3600
#: Large enough to amortise a round trip, small enough that one batch never holds Redis
#: (a single-threaded server) for more than a few milliseconds.
MAX_BATCH: Final = 256

#: How a delivery's job stands, in its dedupe record. A redelivery queues the job again only
#: from `RETRYABLE` states: one queued, running or done is a duplicate.
DeliveryState = Literal["queued", "running", "done", "gave_up", "failed"]
RETRYABLE: Final[frozenset[DeliveryState]] = frozenset({"gave_up", "failed"})

ENQUEUE_SCRIPT: Final = b"""
-- A batch of enqueues in one call. Per job, in order:
-- KEYS: dedupe record, ARQ job key, ARQ in-progress key, ARQ retry key (KEYS[1] is the
--       ARQ queue, a zset)
-- ARGV: enqueue time ms (= the score), job bytes, job id (ARGV[1], ARGV[2]: dedupe and job
--       ttl ms)
-- Returns per job 1 (queued), 2 (queued again: its earlier job gave up or failed) or 0
-- (duplicate). A delivery twice in one batch is queued once: the second sees the first's
-- record, which says queued.
-- A job that gave up is queued again only once ARQ no longer holds it in progress: ARQ's
-- clean-up of the ending job would otherwise delete the new one. Its retry count is reset,
-- so the new job has every try.
-- The dedupe record is written last: a script stops at a failing command with what it
-- wrote kept, and a delivery marked seen but never queued would be lost for good.
local results = {}
local dedupe_ttl, job_ttl = ARGV[1], ARGV[2]
for i = 0, (#KEYS - 1) / 4 - 1 do
  local key, arg = 2 + 4 * i, 3 + 3 * i
  local state = redis.call('GET', KEYS[key])
  local result = 0
  if not state then
    result = 1
  elseif (state == 'gave_up' or state == 'failed')
      and redis.call('EXISTS', KEYS[key + 2]) == 0 then
    result = 2
  end
  if result > 0 then
    redis.call('ZADD', KEYS[1], ARGV[arg], ARGV[arg + 2])
    redis.call('SET', KEYS[key + 1], ARGV[arg + 1], 'PX', job_ttl)
    if result == 2 then
      redis.call('DEL', KEYS[key + 3])
    end
    redis.call('SET', KEYS[key], 'queued', 'PX', dedupe_ttl)
  end
  results[i + 1] = result
end
return results
"""
ENQUEUE_SHA: Final = hashlib.sha1(ENQUEUE_SCRIPT).hexdigest()  # noqa: S324 - Redis's script id


class Queue(Protocol):
    """What the web process needs from a queue."""

    async def enqueue(self, event: Event) -> EnqueueOutcome:
        """Queue `event` once per (provider, delivery); `duplicate` if already accepted,
        unless the job it was accepted for gave up or failed (then it is queued again)."""
        ...

    async def depth(self) -> int:
        """Jobs waiting to start (cheap: one O(1) Redis command)."""
        ...

    async def ping(self) -> bool:
        """Whether the queue's store answers now."""
        ...


def job_namespace(queue_name: str) -> str:
    """What prefixes the job ids of `queue_name` (see the module docstring): nothing for the
    default queue, so a deployment that never set `HERALD_QUEUE_NAME` keeps its keys."""
    return "" if queue_name == DEFAULT_QUEUE_NAME else f"{queue_name}/"


def dedupe_key(provider: str, delivery_id: str, queue_name: str = DEFAULT_QUEUE_NAME) -> str:
    return f"{DEDUPE_PREFIX}{job_namespace(queue_name)}{provider}:{delivery_id}"


def job_key(job_id: str) -> str:
    return f"{ARQ_JOB_PREFIX}{job_id}"


async def record_state(redis: Any, job_id: str, state: DeliveryState) -> None:
    """Write how the job `job_id` (as ARQ names it, namespace included) stands into its
    delivery's dedupe record, keeping the record's TTL; a job with no record (one queued by
    hand, or whose record expired) gets none, since a record made here would outlive
    nothing it dedupes."""
    await redis.set(f"{DEDUPE_PREFIX}{job_id}", state, xx=True, keepttl=True)


_RUN_FIELDS: Final = tuple(f.name for f in fields(RunRef))
_COMMENT_FIELDS: Final = tuple(f.name for f in fields(Comment))


def _shallow(value: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(value, name) for name in names}


def event_to_job_arg(event: Event, *, raw_payload: bytes | str | None = None) -> dict[str, Any]:
    """The event as the JSON-able dict the job receives (`Event.from_dict` reverses it).

    Built field by field rather than with `asdict`, which deep-copies every nested value
    (the payload, `RunRef.extra`): measured at ~90 µs of a ~350 µs request for nothing,
    since the result is serialised at once and never mutated. With `raw_payload` (the
    JSON text the payload was parsed from) the payload goes into the job as that text, for
    `dumps_job` only: the worker's `json.loads` reads back the same payload.
    """
    return {
        "provider": event.provider,
        "name": event.name,
        "native_name": event.native_name,
        "delivery_id": event.delivery_id,
        "repo": event.repo,
        "run": _shallow(event.run, _RUN_FIELDS) if event.run is not None else None,
        "comment": _shallow(event.comment, _COMMENT_FIELDS) if event.comment else None,
        "payload": event.payload if raw_payload is None else orjson.Fragment(raw_payload),
        "received_at": event.received_at,
    }


def _json_default(value: object) -> str:
    # Only ARQ's failure results reach this (an exception as a job's result): keep their repr.
    return repr(value)


def dumps_job(data: Any) -> bytes:
    """ARQ job serializer: compact JSON. Jobs carry JSON-able values only.

    orjson on the hot path; the standard library for what orjson refuses but JSON allows
    (integers beyond 64 bits, non-string keys), so no payload is ever rejected here.
    """
    try:
        return orjson.dumps(data, default=_json_default)
    except TypeError:
        return json.dumps(data, separators=(",", ":"), default=_json_default).encode()


def loads_job(raw: bytes) -> Any:
    # the standard library in the worker: orjson would read integers beyond 64 bits as floats
    return json.loads(raw)


def encode_job(event_arg: dict[str, Any], enqueue_ms: int) -> bytes:
    """ARQ's job record (`arq.jobs.serialize_job`), with our serializer."""
    return dumps_job({"t": None, "f": JOB_FUNCTION, "a": [event_arg], "k": {}, "et": enqueue_ms})


def _encode_event(event: Event, enqueue_ms: int) -> bytes:
    payload = event.payload
    raw = payload.source if isinstance(payload, JsonObject) else None
    if raw is not None:
        try:
            return orjson.dumps({"t": None, "f": JOB_FUNCTION, "k": {}, "et": enqueue_ms,
                                 "a": [event_to_job_arg(event, raw_payload=raw)]})
        except TypeError:
            pass  # something else orjson refuses (a >64-bit id): the general path below
    return encode_job(event_to_job_arg(event), enqueue_ms)


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """One enqueue, ready to run: what the spool stores and the batcher sends."""

    job_id: str
    provider: str
    delivery_id: str
    body: bytes  # the encoded ARQ job
    enqueue_ms: int

    @classmethod
    def from_event(cls, event: Event, *, now_ms: int | None = None) -> PreparedJob:
        enqueue_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        return cls(
            job_id=event.job_id,
            provider=event.provider,
            delivery_id=event.delivery_id,
            body=_encode_event(event, enqueue_ms),
            enqueue_ms=enqueue_ms,
        )


T = TypeVar("T")
R = TypeVar("R")


class _Batcher(Generic[T, R]):
    """Coalesces concurrent submissions into one call of `run(items)`.

    The first submission starts a flush task that yields once to the event loop, so every
    request already being handled in this loop turn joins the batch; submissions arriving
    while a batch is in flight form the next one. Nothing waits on a timer, so a lone
    request pays no added latency.
    """

    def __init__(
        self, run: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]], max_batch: int
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._run([item for item, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the request went away; the job stays queued
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._task = None
            leftover, self._pending = self._pending, []
            for _, future in leftover:
                if not future.done():
                    future.set_exception(RuntimeError("the queue is shutting down"))

    async def aclose(self) -> None:
        task = self._task
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)


async def schedule(redis: Redis[bytes], queue_name: str, event: Event, *, at_ms: int
                   ) -> EnqueueOutcome:
    """Queue `event` to run at `at_ms` (epoch ms): ARQ's queue is ordered by run-at, and
    the dedupe record makes scheduling one job id twice (a retried handler) queue it once."""
    queue = RedisQueue(redis, queue_name=queue_name)
    try:
        return await queue.enqueue_prepared(PreparedJob.from_event(event, now_ms=at_ms))
    finally:
        await queue.aclose()


class RedisQueue:
    """`Queue` over ARQ's layout in Redis, with our dedupe record in the same atomic step."""

    def __init__(
        self,
        redis: Redis[bytes],
        *,
        queue_name: str,
        dedupe_ttl: int = DEDUPE_TTL,
        job_ttl: int = JOB_TTL,
        max_batch: int = MAX_BATCH,
    ) -> None:
        if dedupe_ttl < MIN_DEDUPE_TTL:
            raise ValueError("the dedupe record must outlive GitHub's 72 h redelivery window")
        self.redis = redis
        self.queue_name = queue_name
        self.namespace = job_namespace(queue_name)
        self.dedupe_ttl_ms = dedupe_ttl * 1000
        self.job_ttl_ms = job_ttl * 1000
        self._batcher: _Batcher[PreparedJob, EnqueueOutcome] = _Batcher(self._run, max_batch)

    async def enqueue(self, event: Event) -> EnqueueOutcome:
        return await self.enqueue_prepared(PreparedJob.from_event(event))

    async def enqueue_prepared(self, job: PreparedJob) -> EnqueueOutcome:
        return await self._batcher.submit(job)

    async def depth(self) -> int:
        depth: int = await self.redis.zcard(self.queue_name)
        return depth

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    async def aclose(self) -> None:
        await self._batcher.aclose()

    def _script_args(self, jobs: Sequence[PreparedJob]) -> list[Any]:
        """EVALSHA's arguments for `jobs`: numkeys, the keys, then the values."""
        keys: list[Any] = [self.queue_name]
        values: list[Any] = [self.dedupe_ttl_ms, self.job_ttl_ms]
        for job in jobs:
            job_id = f"{self.namespace}{job.job_id}"
            keys.append(f"{DEDUPE_PREFIX}{job_id}")
            keys.append(f"{ARQ_JOB_PREFIX}{job_id}")
            keys.append(f"{ARQ_IN_PROGRESS_PREFIX}{job_id}")
            keys.append(f"{ARQ_RETRY_PREFIX}{job_id}")
            values.append(job.enqueue_ms)
            values.append(job.body)
            values.append(job_id)
        return [len(keys), *keys, *values]

    async def _run(self, jobs: Sequence[PreparedJob]) -> list[EnqueueOutcome | BaseException]:
        try:
            results = await self._pipeline(jobs)
        except NoScriptError:
            # Redis restarted (or flushed its script cache) since we last ran the script.
            await self.redis.script_load(ENQUEUE_SCRIPT)  # type: ignore[no-untyped-call]
            results = await self._pipeline(jobs)
        outcomes: list[EnqueueOutcome | BaseException] = []
        for job, result in zip(jobs, results, strict=True):
            if int(result) == 2:
                log.info("delivery queued again after its job gave up or failed",
                         provider=job.provider, delivery=job.delivery_id)
            outcomes.append("queued" if int(result) else "duplicate")
        return outcomes

    async def _pipeline(self, jobs: Sequence[PreparedJob]) -> list[Any]:
        """One EVALSHA for the whole batch: one command to pack and one reply to parse,
        where a pipeline of one call per job cost ~10 µs of client time per job."""
        results: list[Any] = await self.redis.evalsha(  # type: ignore[no-untyped-call]
            ENQUEUE_SHA, *self._script_args(jobs)
        )
        return results
