"""bot.store locks: one holder at a time, kept while held however long, never another's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.store import LockBusy, Store

KEY = "herald:lock:report:github:octo/app:100"
NAME = "report:github:octo/app:100"
#: Short enough that a test outlives several TTLs in about a second.
TTL = 0.3


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_lock_held_longer_than_its_ttl_stays_held(redis) -> None:
    store = Store(redis)
    async with store.lock(NAME, ttl=TTL):
        for _ in range(4):
            await asyncio.sleep(TTL)
            with pytest.raises(LockBusy):
                async with store.lock(NAME, ttl=TTL, wait=0):
                    pytest.fail("a second holder got a lock that is still held")
    assert not await redis.exists(KEY)


async def test_a_second_holder_waits_for_the_first_to_release(redis) -> None:
    store = Store(redis)
    order: list[str] = []

    async def first() -> None:
        async with store.lock(NAME, ttl=TTL):
            order.append("first holds")
            await asyncio.sleep(2 * TTL)
            order.append("first releases")

    async def second() -> None:
        await asyncio.sleep(0.05)
        async with store.lock(NAME, ttl=TTL, wait=5):
            order.append("second holds")

    await asyncio.gather(first(), second())
    assert order == ["first holds", "first releases", "second holds"]


async def test_a_busy_lock_says_when_it_lapses_at_the_latest(redis) -> None:
    await redis.set(KEY, "another worker", px=30_000)
    with pytest.raises(LockBusy) as busy:
        async with Store(redis).lock(NAME, wait=0.2):
            pytest.fail("acquired a held lock")
    assert 29 <= busy.value.retry_after <= 30
    assert str(busy.value) == f"{KEY} is held by another worker"


async def test_a_lock_whose_holder_died_is_taken_once_its_ttl_lapses(redis) -> None:
    # A killed worker no longer extends its lock: it lapses, and the run is not stuck.
    await redis.set(KEY, "a killed worker", px=int(TTL * 1000))
    async with Store(redis).lock(NAME, ttl=TTL, wait=5):
        assert await redis.get(KEY) != b"a killed worker"


async def test_a_lapsed_lock_taken_by_another_is_neither_extended_nor_released(redis) -> None:
    # Redis lost our key (a failover, a flush) and another worker took the lock: it is
    # theirs, for their TTL.
    async with Store(redis).lock(NAME, ttl=TTL):
        await redis.set(KEY, "the next holder", px=2_000)
        await asyncio.sleep(2 * TTL)
    assert await redis.get(KEY) == b"the next holder"
    assert await redis.pttl(KEY) <= 2_000 - 2 * TTL * 1000


async def test_a_cancelled_holder_releases_and_stops_extending(redis) -> None:
    held = asyncio.Event()

    async def holder() -> None:
        async with Store(redis).lock(NAME, ttl=TTL):
            held.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(holder())
    await held.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await redis.exists(KEY)
    assert [t for t in asyncio.all_tasks() if t.get_name() == f"extend {KEY}"] == []
