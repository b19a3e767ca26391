"""What each backend adds to the contract: Redis' key layout and TTLs, PostgreSQL's
migrations and pruning, and the choice of backend from the settings."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest
import redis.asyncio as aioredis

from bot.history import HistoryError, HistoryKey, Retention, RunSummary, open_history
from bot.history.postgres import MIGRATIONS, PostgresHistory, migrate
from bot.history.redis import RedisHistory, run_key, scope_of
from bot.results.model import Status, Suite, TestCase, TestRun
from bot.settings import Settings
from tests.history.conftest import START, Clock, drop_database, fresh_database

KEY = HistoryKey("bitbucket", "team/repo", "main", "bitbucket", "default")


def summary(run_id: str, minutes: float = 0, status: Status = Status.PASSED) -> RunSummary:
    run = TestRun(id=run_id, suites=[Suite("s", cases=[TestCase("t", status=status)])])
    return RunSummary.of(run, KEY, sha=f"sha{run_id}", run_id=run_id,
                         finished_at=START + timedelta(minutes=minutes))


@pytest.fixture
async def redis_history(redis_url: str, clock: Clock) -> RedisHistory:
    client = aioredis.Redis.from_url(redis_url)
    yield RedisHistory(client, Retention(max_runs=3, max_days=7), clock=clock)
    await client.aclose()


async def test_every_redis_key_is_namespaced_and_expires(
        redis_history: RedisHistory, clock: Clock) -> None:
    clock.advance(hours=1)
    for n in range(5):
        await redis_history.record(summary(str(n), minutes=n))

    keys = await redis_history.redis.keys("*")
    ttls = [await redis_history.redis.ttl(key) for key in keys]

    assert keys and all(key.startswith(scope_of(KEY).encode() + b":") for key in keys)
    assert all(0 < ttl <= 7 * 24 * 3600 for ttl in ttls)
    assert len([key for key in keys if b":run:" in key]) == 3  # pruned runs are deleted


async def test_a_redis_run_blob_that_does_not_read_is_an_error_naming_the_run(
        redis_history: RedisHistory) -> None:
    await redis_history.record(summary("1"))
    run_keys = [key for key in await redis_history.redis.keys("*") if b":run:" in key]
    await redis_history.redis.set(run_keys[0], b"garbage")

    with pytest.raises(HistoryError, match="history run 1: 7 bytes is too short"):
        await redis_history.latest(KEY)


async def test_redis_aggregates_removed_by_hand_are_counted_again_from_the_runs(
        redis_history: RedisHistory) -> None:
    await redis_history.record(summary("1", 0, Status.FAILED))
    await redis_history.record(summary("2", 1))
    await redis_history.redis.delete(f"{scope_of(KEY)}:aggregates")

    found = (await redis_history.aggregates(KEY)).get("\x1f\x1ft")

    assert found is not None and (found.runs, found.failures, found.flips) == (2, 1, 1)
    assert await redis_history.redis.exists(f"{scope_of(KEY)}:aggregates")


async def test_migrations_apply_once_however_many_processes_start_together(
        postgres_server: str) -> None:
    url, name = fresh_database(postgres_server)
    try:
        async def start() -> list[int]:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                return await migrate(conn)

        applied = await asyncio.gather(*(start() for _ in range(6)))
        again = await start()

        versions = [version for version, _ in MIGRATIONS]
        assert sorted(v for run in applied for v in run) == versions
        assert again == []
        async with await psycopg.AsyncConnection.connect(url) as conn:
            cursor = await conn.execute("SELECT version FROM herald_migrations ORDER BY 1")
            assert [row[0] for row in await cursor.fetchall()] == versions
    finally:
        drop_database(name)


async def test_pruning_deletes_runs_past_the_age_limit_of_keys_nobody_writes(
        postgres_url: str, clock: Clock) -> None:
    history = await PostgresHistory.connect(postgres_url, Retention(50, 7), clock=clock)
    try:
        async with history.pool.connection() as connection:
            await connection.execute("TRUNCATE history_keys, history_runs")
        await history.record(summary("1"))
        await history.record(summary("2", minutes=3 * 24 * 60))
        clock.advance(days=8)

        deleted = await history.prune()

        assert deleted == 1
        async with history.pool.connection() as connection:
            cursor = await connection.execute("SELECT run_id FROM history_runs")
            assert [row[0] for row in await cursor.fetchall()] == ["2"]
        clock.advance(days=3)
        assert await history.prune() == 1
        async with history.pool.connection() as connection:
            cursor = await connection.execute("SELECT count(*) FROM history_keys")
            assert (await cursor.fetchone()) == (0,)
    finally:
        await history.close()


async def test_an_unreachable_database_is_an_error_that_never_shows_the_password() -> None:
    with pytest.raises(HistoryError, match="history database") as raised:
        await PostgresHistory.connect("postgresql://herald:s3cr3t@127.0.0.1:1/none",
                                      Retention())

    assert "s3cr3t" not in str(raised.value)


async def test_the_settings_choose_redis_by_default_and_postgresql_by_url(
        redis_url: str, postgres_url: str) -> None:
    by_default = await open_history(Settings.from_env({
        "HERALD_REDIS_URL": redis_url, "HERALD_HISTORY_MAX_RUNS": "7",
        "HERALD_HISTORY_MAX_DAYS": "90"}))
    by_url = await open_history(Settings.from_env({
        "HERALD_REDIS_URL": redis_url, "HERALD_HISTORY_URL": postgres_url}))
    assert by_default is not None and by_url is not None
    try:
        assert isinstance(by_default, RedisHistory)
        assert by_default.retention == Retention(max_runs=7, max_days=90)
        assert isinstance(by_url, PostgresHistory)
        assert by_url.retention == Retention(max_runs=50, max_days=30)
    finally:
        await by_default.close()
        await by_url.close()


async def test_no_runs_to_keep_is_no_history_at_all(redis_url: str) -> None:
    assert await open_history(Settings.from_env({
        "HERALD_REDIS_URL": redis_url, "HERALD_HISTORY_MAX_RUNS": "0"})) is None


async def test_history_without_any_url_is_a_configuration_error_naming_both_variables() -> None:
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="HERALD_HISTORY_URL or HERALD_REDIS_URL"):
        await open_history(Settings.from_env({}))


@pytest.mark.parametrize(("variable", "value", "reason"), [
    ("HERALD_HISTORY_MAX_RUNS", "-1", "must be at least 0"),
    ("HERALD_HISTORY_MAX_RUNS", "5000", "must be at most 1000"),
    ("HERALD_HISTORY_MAX_DAYS", "0", "must be at least 1"),
    ("HERALD_HISTORY_URL", "mysql://root:pw@db/herald", "postgresql:// URL, not mysql://…"),
])
def test_history_settings_out_of_bounds_are_refused_by_name(
        variable: str, value: str, reason: str) -> None:
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match=variable) as raised:
        Settings.from_env({variable: value})

    assert reason in str(raised.value) and "pw" not in str(raised.value)


async def test_a_redis_run_whose_blob_was_lost_leaves_the_index_at_the_next_write(
        redis_history: RedisHistory) -> None:
    await redis_history.record(summary("1", 0))
    await redis_history.record(summary("2", 1))
    await redis_history.redis.delete(run_key(scope_of(KEY), "1"))

    await redis_history.record(summary("3", 2))

    ids = await redis_history.redis.zrange(f"{scope_of(KEY)}:runs", 0, -1)
    assert ids == [b"2", b"3"]
    assert (await redis_history.aggregates(KEY)).runs == ["3", "2"]


async def test_a_redis_run_that_no_longer_reads_is_dropped_by_the_next_write(
        redis_history: RedisHistory) -> None:
    await redis_history.record(summary("1", 0, Status.FAILED))
    await redis_history.redis.set(run_key(scope_of(KEY), "1"), b"HHR1 damaged")

    assert await redis_history.record(summary("2", 1))

    assert [run.run_id for run in await redis_history.window(KEY)] == ["2"]
    assert (await redis_history.aggregates(KEY)).runs == ["2"]


async def test_a_postgresql_run_that_no_longer_reads_is_dropped_by_the_next_write(
        postgres_url: str, clock: Clock) -> None:
    history = await PostgresHistory.connect(postgres_url, Retention(50, 7), clock=clock)
    try:
        async with history.pool.connection() as connection:
            await connection.execute("TRUNCATE history_keys, history_runs")
        await history.record(summary("1", 0, Status.FAILED))
        async with history.pool.connection() as connection:
            await connection.execute("UPDATE history_runs SET summary = 'damaged'::bytea")

        assert await history.record(summary("2", 1))

        assert [run.run_id for run in await history.window(KEY)] == ["2"]
        assert (await history.aggregates(KEY)).runs == ["2"]
    finally:
        await history.close()
