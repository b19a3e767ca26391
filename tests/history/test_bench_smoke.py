"""The history benchmark still runs on both backends and cleans up after itself (no timing)."""

from __future__ import annotations

import uuid

import psycopg
import redis

from bench import history as bench
from bot.history import HistoryKey


async def test_the_history_benchmark_measures_both_backends_and_leaves_nothing_behind(
        redis_url: str, postgres_server: str) -> None:
    key = HistoryKey("github", f"bench/{uuid.uuid4().hex}", "main", "github", "CI")
    runs = bench.build_runs(200, 3, key)
    with psycopg.connect(f"{postgres_server}/postgres") as admin:
        databases_before = {row[0] for row in admin.execute("SELECT datname FROM pg_database")}

    redis_rows, redis_sizes = await bench.bench_redis(redis_url, runs, key, repeat=2)
    pg_rows, pg_sizes = await bench.bench_postgres(postgres_server, runs, key, repeat=2)

    assert [row.split(" | ")[1] for row in redis_rows + pg_rows] == [
        "bare read of the same bytes", "`lookup`", "`lookup` + index of every test"] * 2
    assert any("1 in `history_runs`" in row for row in pg_sizes)
    assert len(runs[-1]) == 200 and runs[-1].failures()
    assert "| Redis | one run: blob |" in redis_sizes[0]
    assert redis.Redis.from_url(redis_url).keys("herald:history:*") == []
    with psycopg.connect(f"{postgres_server}/postgres") as admin:
        databases_after = {row[0] for row in admin.execute("SELECT datname FROM pg_database")}
    assert {name for name in databases_after - databases_before
            if name.startswith("herald_bench_")} == set()
