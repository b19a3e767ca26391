"""History lookup per report, and what a stored run costs, on Redis and PostgreSQL.

    python -m bench.history [--tests 10000] [--runs 50] [--repeat 200]
                            [--redis redis://127.0.0.1:6379/13]
                            [--postgres postgresql://postgres@127.0.0.1:5432]

Records `--runs` runs of one workflow on one branch, each of `--tests` tests (names shaped
like a Python suite's: `tests.pkg_N.test_module_M` / `TestClass` / `test_name[param]`,
2% failing, 1% skipped, a few tests changing status from run to run, durations spread
like real ones), then times the lookup a report makes (`HistoryStore.lookup`: the newest
run with its names, and the window's aggregates, decoded) beside a bare read of the same
bytes (Redis: one pipelined GET of the run blob and of the aggregates blob; PostgreSQL:
one SELECT of the same two `bytea` by primary key), rounds interleaved, median and best
of `--repeat`. "+ index" adds what a comparison then does first: looking up every one of
the run's tests in the aggregates once (it builds their index).

Sizes: Redis' own `MEMORY USAGE` of one run's key and of the aggregates key (what Redis
holds, overhead included) beside the blob's length; PostgreSQL's rows per run and
`pg_total_relation_size` of the runs table (heap, TOAST and indexes) per run.

Redis: the keys of the benchmark's own `HistoryKey` (a random repository name) in the
given database, deleted at the end. PostgreSQL: a database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis.asyncio as aioredis

from bot.history import HistoryKey, Retention, RunSummary
from bot.history.postgres import PostgresHistory
from bot.history.redis import RedisHistory, run_key, scope_of
from bot.history.store import HistoryStore
from bot.results.model import Origin, Status, Suite, TestCase, TestRun

NOW = datetime.now(UTC)


def build_runs(tests: int, runs: int, key: HistoryKey) -> list[RunSummary]:
    rng = random.Random(15)
    origin = Origin("test (3.12)")
    names = [(f"tests.pkg_{i % 40}.test_module_{i % 400}", f"TestFeature{i % 23}",
              f"test_behaviour_{i}[case-{i % 7}]") for i in range(tests)]
    base = [rng.lognormvariate(-3, 1.5) for _ in range(tests)]
    summaries = []
    for n in range(runs):
        cases = []
        for i, (classname, cls, name) in enumerate(names):
            roll = rng.random()
            status = (Status.FAILED if roll < 0.02 else Status.SKIPPED if roll < 0.03
                      else Status.PASSED)
            cases.append(TestCase(name=name, classname=f"{classname}.{cls}", suite=classname,
                                  status=status, duration=base[i] * rng.uniform(0.8, 1.25),
                                  origin=origin))
        run = TestRun(id=str(n), suites=[Suite("bench", cases=cases)])
        summaries.append(RunSummary.of(
            run, key, sha=f"{n:040x}", run_id=str(1000 + n),
            finished_at=NOW - timedelta(hours=runs - n),
        ))
    return summaries


async def timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def compare(herald: Callable[[], Awaitable[Any]], bare: Callable[[], Awaitable[Any]],
                  repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"bare": [], "Herald": []}
    for _ in range(3):  # warm the connections and the server's caches
        await herald()
        await bare()
    for _ in range(repeat):
        times["bare"].append(await timed(bare))
        times["Herald"].append(await timed(herald))
    return times


def row(backend: str, what: str, times: list[float]) -> str:
    return (f"| {backend} | {what} | {statistics.median(times) * 1000:.2f} | "
            f"{min(times) * 1000:.2f} |")


async def measure(store: HistoryStore, key: HistoryKey, runs: list[RunSummary],
                  bare: Callable[[], Awaitable[Any]], repeat: int,
                  backend: str) -> tuple[list[str], float]:
    writes = [await timed(lambda run=run: store.record(run)) for run in runs]  # type: ignore[misc]

    async def lookup() -> None:
        await store.lookup(key)

    async def lookup_and_index() -> None:
        looked = await store.lookup(key)
        assert looked.latest is not None
        get = looked.aggregates.get
        for test in looked.latest.hashes:
            get(test, "test (3.12)")

    times = await compare(lookup, bare, repeat)
    indexed = await compare(lookup_and_index, bare, max(20, repeat // 5))
    return [
        row(backend, "bare read of the same bytes", times["bare"]),
        row(backend, "`lookup`", times["Herald"]),
        row(backend, "`lookup` + index of every test", indexed["Herald"]),
    ], statistics.median(writes)


async def bench_redis(url: str, runs: list[RunSummary], key: HistoryKey,
                      repeat: int) -> tuple[list[str], list[str]]:
    client = aioredis.Redis.from_url(url)
    store = RedisHistory(client, Retention(max_runs=len(runs), max_days=30))
    scope = scope_of(key)
    newest = runs[-1].run_id

    async def bare() -> None:
        async with client.pipeline(transaction=False) as pipe:
            pipe.get(run_key(scope, newest))
            pipe.get(f"{scope}:aggregates")
            await pipe.execute()

    try:
        rows, write = await measure(store, key, runs, bare, repeat, "Redis")
        newest_key = run_key(scope, newest)
        blob = await client.strlen(newest_key)
        held = await client.memory_usage(newest_key)
        aggregates = await client.memory_usage(f"{scope}:aggregates")
        index = sum([await client.memory_usage(f"{scope}:{name}") or 0
                     for name in ("runs", "heads", "version")])
        tests = len(runs[-1])
        sizes = [
            f"| Redis | one run: blob | {blob:,} | {blob / tests:.1f} |",
            f"| Redis | one run: `MEMORY USAGE` of its key | {held:,} | {held / tests:.1f} |",
            f"| Redis | the key's aggregates (once per key) | {aggregates:,} | "
            f"{aggregates / tests:.1f} |",
            f"| Redis | the key's index of {len(runs)} runs (once per key) | {index:,} | "
            f"{index / tests:.1f} |",
            f"| Redis | one `record` (median; decodes and folds the window) | "
            f"{write * 1000:.0f} ms | |",
        ]
        return rows, sizes
    finally:
        found = [k async for k in client.scan_iter(match=f"{scope}:*")]
        if found:
            await client.delete(*found)
        await client.aclose()


async def bench_postgres(server: str, runs: list[RunSummary], key: HistoryKey,
                         repeat: int) -> tuple[list[str], list[str]]:
    name = f"herald_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        store = await PostgresHistory.connect(f"{server}/{name}",
                                              Retention(max_runs=len(runs), max_days=30))
        newest = runs[-1].run_id
        try:
            async def bare() -> None:
                async with store.pool.connection() as connection:
                    # The key's id is the first one: the database is the benchmark's own.
                    cursor = await connection.execute(
                        "SELECT k.aggregates, r.summary FROM history_keys k JOIN history_runs r"
                        " ON r.key_id = k.id WHERE k.id = 1 AND r.run_id = %s", (newest,))
                    await cursor.fetchone()

            rows, write = await measure(store, key, runs, bare, repeat, "PostgreSQL")
            async with store.pool.connection() as connection:
                await connection.execute("VACUUM ANALYZE history_runs")
                await connection.execute("VACUUM ANALYZE history_keys")
                cursor = await connection.execute(
                    "SELECT count(*), pg_total_relation_size('history_runs'),"
                    " avg(pg_column_size(summary))::bigint FROM history_runs")
                count, total, column = await cursor.fetchone()  # type: ignore[misc]
                cursor = await connection.execute(
                    "SELECT pg_total_relation_size('history_keys'),"
                    " pg_column_size(aggregates) FROM history_keys")
                keys_total, aggregates = await cursor.fetchone()  # type: ignore[misc]
        finally:
            await store.close()
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    tests = len(runs[-1])
    sizes = [
        f"| PostgreSQL | rows per run | {count // len(runs)} in `history_runs` (+1 per key in "
        "`history_keys`) | |",
        f"| PostgreSQL | one run: its `summary` column | {column:,} | {column / tests:.1f} |",
        f"| PostgreSQL | one run: `pg_total_relation_size('history_runs')` / runs | "
        f"{total // count:,} | {total / count / tests:.1f} |",
        f"| PostgreSQL | the key's aggregates (once per key) | {aggregates:,} | "
        f"{aggregates / tests:.1f} |",
        f"| PostgreSQL | `history_keys` whole (one key) | {keys_total:,} | |",
        f"| PostgreSQL | one `record` (median; decodes and folds the window) | "
        f"{write * 1000:.0f} ms | |",
    ]
    return rows, sizes


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    key = HistoryKey("github", f"bench/{uuid.uuid4().hex}", "main", "github", "CI")
    started = time.perf_counter()
    runs = build_runs(args.tests, args.runs, key)
    print(f"{args.runs} runs of {args.tests:,} tests built in "
          f"{time.perf_counter() - started:.1f} s")
    redis_rows, redis_sizes = await bench_redis(args.redis, runs, key, args.repeat)
    pg_rows, pg_sizes = await bench_postgres(args.postgres, runs, key, args.repeat)
    print(f"\n| backend | read | median ms | best ms |  ({args.repeat} rounds)")
    print("|---|---|---:|---:|")
    print("\n".join(redis_rows + pg_rows))
    print("\n| backend | what | bytes | bytes per test |")
    print("|---|---|---:|---:|")
    print("\n".join(redis_sizes + pg_sizes))


if __name__ == "__main__":
    asyncio.run(main())
