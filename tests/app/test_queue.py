"""bot.queue: one job per delivery, in ARQ's layout, with concurrent enqueues batched."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.events import BUILD_COMPLETED, Event, RunRef
from bot.queue import (
    MIN_DEDUPE_TTL,
    PreparedJob,
    RedisQueue,
    _Batcher,
    dedupe_key,
    dumps_job,
    loads_job,
)
from tests.app.conftest import QUEUE


def event(delivery: str, provider: str = "github") -> Event:
    run = RunRef(provider, "org/repo", "7", sha="abc", extra={"installation_id": 1})
    return Event(provider, BUILD_COMPLETED, "workflow_run.completed", delivery, repo="org/repo",
                 run=run, payload={"action": "completed", "n": [1, 2]})


async def test_jobs_are_readable_by_arq_itself(queue: RedisQueue, redis_url: str) -> None:
    await queue.enqueue(event("d1"))
    arq = ArqRedis.from_url(redis_url)
    arq.job_deserializer = loads_job
    try:
        (job,) = await arq.queued_jobs(queue_name=QUEUE)
    finally:
        await arq.aclose()

    assert job.job_id == "github:d1"
    assert job.function == "handle_event"
    assert Event.from_dict(job.args[0]).delivery_id == "d1"
    assert job.args[0]["run"]["extra"] == {"installation_id": 1}


async def test_the_event_survives_the_round_trip_through_the_queue(queue: RedisQueue) -> None:
    original = event("round-trip")
    prepared = PreparedJob.from_event(original)

    (rebuilt,) = loads_job(prepared.body)["a"]

    assert Event.from_dict(rebuilt) == original


async def test_enqueue_answers_queued_then_duplicate(queue: RedisQueue, redis: Redis) -> None:
    assert await queue.enqueue(event("x")) == "queued"
    assert await queue.enqueue(event("x")) == "duplicate"
    assert await queue.enqueue(event("x", provider="gitlab")) == "queued"  # ids are per provider
    assert await queue.depth() == 2
    assert await redis.exists(dedupe_key("github", "x"), dedupe_key("gitlab", "x")) == 2


async def test_concurrent_enqueues_share_one_round_trip(
    queue: RedisQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    real = queue._pipeline

    async def counting(jobs: Sequence[PreparedJob]) -> list[Any]:
        batches.append(len(jobs))
        return await real(jobs)

    monkeypatch.setattr(queue, "_pipeline", counting)
    outcomes = await asyncio.gather(*(queue.enqueue(event(f"d{i}")) for i in range(100)))

    assert outcomes == ["queued"] * 100
    assert sum(batches) == 100
    assert len(batches) <= 2, batches


async def test_a_flushed_script_cache_is_reloaded_transparently(
    queue: RedisQueue, redis: Redis
) -> None:
    await queue.enqueue(event("before"))
    await redis.script_flush()

    assert await queue.enqueue(event("after")) == "queued"
    assert await queue.enqueue(event("after")) == "duplicate"


async def test_a_failing_batch_fails_every_waiter_and_the_next_batch_works() -> None:
    calls = 0

    async def run(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("redis went away")
        return [item * 2 for item in items]

    batcher: _Batcher[int, int] = _Batcher(run, max_batch=10)
    first = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    second = await asyncio.gather(*(batcher.submit(i) for i in range(3)))

    assert all(isinstance(r, ConnectionError) for r in first)
    assert second == [0, 2, 4]


async def test_batches_are_capped_so_one_never_holds_redis_for_long() -> None:
    sizes: list[int] = []

    async def run(items: Sequence[int]) -> list[int | BaseException]:
        sizes.append(len(items))
        return list(items)

    batcher: _Batcher[int, int] = _Batcher(run, max_batch=8)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    assert results == list(range(20))
    assert sizes == [8, 8, 4]


def test_a_dedupe_window_shorter_than_githubs_redelivery_window_is_refused() -> None:
    with pytest.raises(ValueError, match="72 h"):
        RedisQueue(None, queue_name=QUEUE, dedupe_ttl=MIN_DEDUPE_TTL - 1)  # type: ignore[arg-type]


def test_job_json_keeps_unserialisable_results_as_their_repr() -> None:
    # ARQ stores a failed job's exception as its result; JSON keeps its repr
    assert loads_job(dumps_job({"r": ValueError("boom")})) == {"r": "ValueError('boom')"}


@pytest.mark.parametrize(
    ("case", "text", "extra"),
    [
        ("compact body", b'{"action":"completed","n":[1,2]}', {}),
        ("spaced body, unicode escapes", b'{ "action" : "compl\\u00e9ted", "n": [1, 2.50] }', {}),
        ("an id orjson refuses elsewhere in the job", b'{"action":"completed"}',
         {"huge": 2**70}),
    ],
)
def test_a_parsed_body_goes_into_the_job_as_sent_and_reads_back_the_same(
    case: str, text: bytes, extra: dict[str, Any]
) -> None:
    from providers.signatures import load_json_object

    payload = load_json_object(text)
    run = RunRef("github", "org/repo", "7", extra=extra)
    parsed = Event("github", BUILD_COMPLETED, "workflow_run.completed", "d", run=run,
                   payload=payload)

    job = loads_job(PreparedJob.from_event(parsed, now_ms=1).body)

    assert job["a"][0]["payload"] == payload
    assert job["a"][0]["run"]["extra"] == extra
    assert Event.from_dict(job["a"][0]) == parsed


def test_a_payload_other_than_the_parsed_body_is_serialised_itself() -> None:
    from providers.signatures import load_json_object

    load_json_object(b'{"action": "completed", "secret_field": 1}')
    built = event("d")  # a payload the parser built, not the parsed body

    job = PreparedJob.from_event(built, now_ms=1).body

    assert b"secret_field" not in job
    assert loads_job(job)["a"][0]["payload"] == {"action": "completed", "n": [1, 2]}


async def test_a_batch_that_fails_partway_marks_no_delivery_seen_without_queueing_it(
    queue: RedisQueue, redis: Redis
) -> None:
    await redis.set(queue.queue_name, "not a sorted set")  # every ZADD fails from here
    failed = await asyncio.gather(*(queue.enqueue(event(f"d{i}")) for i in range(3)),
                                  return_exceptions=True)
    await redis.delete(queue.queue_name)
    resent = await asyncio.gather(*(queue.enqueue(event(f"d{i}")) for i in range(3)))

    assert all(isinstance(outcome, RedisError) for outcome in failed)  # spooled by the app
    assert resent == ["queued"] * 3
    assert sorted(await redis.zrange(queue.queue_name, 0, -1)) == [b"github:d0", b"github:d1",
                                                                    b"github:d2"]
