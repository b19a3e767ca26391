"""Run history in PostgreSQL: long retention and many repositories.

Two tables (`MIGRATIONS` has them, versioned):

- `history_keys`: one row per `HistoryKey`, with its window's `Aggregates`
  (`bot.history.codec`) and the time they stop being true (`aggregates_until`: when the
  window's oldest run leaves the retention window by age);
- `history_runs`: one row per run, the run whole as one `bytea` (the same bytes as in
  Redis), beside its sha, attempt and finish time. Tests are not rows: a report never
  asks SQL about one test, and 10,000 rows per run would cost ~60 bytes of row overhead
  each, more than the test itself.

A write is one transaction that locks its key's row (`SELECT … FOR UPDATE`), so writers of
one key queue up and none loses another's run from the aggregates; writers of other keys
do not wait. Runs past the retention are deleted when their key is next written, and by
`prune()` for keys nobody writes to any more; reads never return them either way.

Migrations run at start (`PostgresHistory.connect`) inside one transaction holding an
advisory lock, so processes starting together apply each migration once; each is applied
only if `herald_migrations` lacks its version, so starting again is a no-op.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg_pool import AsyncConnectionPool

from bot.history.codec import decode_aggregates, decode_run, encode_aggregates, encode_run
from bot.history.store import Clock, Lookup, Retention, fold, readable, utc_now
from bot.history.summary import Aggregates, HistoryError, HistoryKey, RunSummary

#: `pg_advisory_xact_lock` key of the migrations: "herald" in ASCII.
MIGRATION_LOCK: Final = 0x68_65_72_61_6C_64

MIGRATIONS: Final[Sequence[tuple[int, str]]] = (
    (1, """
        CREATE TABLE history_keys (
            id bigserial PRIMARY KEY,
            forge text NOT NULL,
            repo text NOT NULL,
            branch text NOT NULL,
            ci text NOT NULL,
            workflow text NOT NULL,
            aggregates bytea,
            aggregates_until timestamptz,
            written_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (forge, repo, branch, ci, workflow)
        );
        CREATE TABLE history_runs (
            key_id bigint NOT NULL REFERENCES history_keys (id) ON DELETE CASCADE,
            run_id text NOT NULL,
            sha text NOT NULL,
            attempt integer NOT NULL,
            finished_at timestamptz NOT NULL,
            summary bytea NOT NULL,
            PRIMARY KEY (key_id, run_id)
        );
        CREATE INDEX history_runs_newest ON history_runs (key_id, finished_at DESC, run_id DESC);
        CREATE INDEX history_runs_sha ON history_runs (key_id, sha);
        -- The blobs are zlib-compressed already: TOAST's own compression would only
        -- spend CPU finding that out on every write.
        ALTER TABLE history_runs ALTER COLUMN summary SET STORAGE EXTERNAL;
        ALTER TABLE history_keys ALTER COLUMN aggregates SET STORAGE EXTERNAL;
    """),
)


async def migrate(connection: psycopg.AsyncConnection[Any]) -> list[int]:
    """Apply the migrations `connection`'s database lacks; the versions applied."""
    applied: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS herald_migrations ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor = await connection.execute("SELECT version FROM herald_migrations")
        done = {row[0] for row in await cursor.fetchall()}
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            await connection.execute(sql)
            await connection.execute(
                "INSERT INTO herald_migrations (version) VALUES (%s)", (version,)
            )
            applied.append(version)
    return applied


class PostgresHistory:
    """`HistoryStore` on PostgreSQL, through a psycopg connection pool."""

    def __init__(self, pool: AsyncConnectionPool[Any], retention: Retention, *,
                 clock: Clock = utc_now) -> None:
        self.pool = pool
        self.retention = retention
        self.clock = clock

    @classmethod
    async def connect(cls, url: str, retention: Retention, *, clock: Clock = utc_now,
                      max_size: int = 10) -> PostgresHistory:
        """A store on the database `url` names, its migrations applied."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False, kwargs={"autocommit": True},
        )
        try:
            await pool.open(wait=True, timeout=10)
            async with pool.connection() as connection:
                await migrate(connection)
        except (psycopg.Error, TimeoutError) as exc:
            await pool.close()
            # The URL may hold a password: name the failure only.
            raise HistoryError(f"history database: {type(exc).__name__}: {exc}") from None
        return cls(pool, retention, clock=clock)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def _connection(self, what: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; a database error in the block is a `HistoryError` saying
        whose history it was."""
        try:
            async with self.pool.connection() as connection:
                yield connection
        except psycopg.Error as exc:
            raise HistoryError(f"{what}: {exc}") from exc

    # -- writing --------------------------------------------------------------------------

    async def record(self, summary: RunSummary) -> bool:
        now = self.clock()
        cutoff = self.retention.cutoff(now)
        if summary.finished_at < cutoff:
            return False
        blob = encode_run(summary)
        async with (self._connection(f"history of {summary.key.repo}") as connection,
                    connection.transaction()):
            await connection.execute(
                "INSERT INTO history_keys (forge, repo, branch, ci, workflow)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", summary.key.parts(),
            )
            cursor = await connection.execute(
                "SELECT id FROM history_keys WHERE forge = %s AND repo = %s"
                " AND branch = %s AND ci = %s AND workflow = %s FOR UPDATE",
                summary.key.parts(),
            )
            row = await cursor.fetchone()
            assert row is not None
            key_id = row[0]
            cursor = await connection.execute(
                "INSERT INTO history_runs (key_id, run_id, sha, attempt, finished_at, summary)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (key_id, run_id) DO UPDATE SET sha = EXCLUDED.sha,"
                " attempt = EXCLUDED.attempt, finished_at = EXCLUDED.finished_at,"
                " summary = EXCLUDED.summary"
                " WHERE history_runs.attempt <= EXCLUDED.attempt RETURNING 1",
                (key_id, summary.run_id, summary.sha, summary.attempt,
                 summary.finished_at, blob),
            )
            if await cursor.fetchone() is None:
                return False  # a later attempt of this run is stored
            await connection.execute(
                "DELETE FROM history_runs WHERE key_id = %s AND (finished_at < %s OR"
                " run_id NOT IN (SELECT run_id FROM history_runs WHERE key_id = %s"
                " AND finished_at >= %s ORDER BY finished_at DESC, run_id DESC LIMIT %s))",
                (key_id, cutoff, key_id, cutoff, self.retention.max_runs),
            )
            cursor = await connection.execute(
                "SELECT run_id, summary FROM history_runs WHERE key_id = %s"
                " ORDER BY finished_at DESC, run_id DESC", (key_id,),
            )
            window, unreadable = readable(await cursor.fetchall(), summary.key)
            if unreadable:
                await connection.execute(
                    "DELETE FROM history_runs WHERE key_id = %s AND run_id = ANY(%s)",
                    (key_id, unreadable),
                )
            stored = any(run.run_id == summary.run_id for run in window)
            await self._store_aggregates(connection, key_id, window)
            return stored

    async def _store_aggregates(self, connection: psycopg.AsyncConnection[Any], key_id: int,
                                window: list[RunSummary]) -> Aggregates:
        aggregates = await fold(window)
        until = aggregates.oldest + self.retention.max_age if aggregates.oldest else None
        await connection.execute(
            "UPDATE history_keys SET aggregates = %s, aggregates_until = %s, written_at = now()"
            " WHERE id = %s", (encode_aggregates(aggregates), until, key_id),
        )
        return aggregates

    async def prune(self) -> int:
        """Delete every run past the retention by age, of every key, and keys left with
        none; the number of runs deleted. Keys still written are pruned as they are."""
        cutoff = self.retention.cutoff(self.clock())
        async with self._connection("history pruning") as connection, connection.transaction():
            cursor = await connection.execute(
                "DELETE FROM history_runs WHERE finished_at < %s", (cutoff,)
            )
            deleted: int = cursor.rowcount
            await connection.execute(
                "DELETE FROM history_keys k WHERE NOT EXISTS"
                " (SELECT 1 FROM history_runs r WHERE r.key_id = k.id)"
            )
            return deleted

    # -- reading --------------------------------------------------------------------------

    async def latest(self, key: HistoryKey, sha: str | None = None) -> RunSummary | None:
        return (await self._lookup(key, sha, aggregates=False)).latest

    async def window(self, key: HistoryKey, limit: int | None = None) -> list[RunSummary]:
        cutoff = self.retention.cutoff(self.clock())
        count = min(limit if limit is not None else self.retention.max_runs,
                    self.retention.max_runs)
        async with self._connection(f"history of {key.repo}") as connection:
            cursor = await connection.execute(
                "SELECT r.run_id, r.summary FROM history_runs r JOIN history_keys k"
                " ON k.id = r.key_id WHERE forge = %s AND repo = %s AND branch = %s"
                " AND ci = %s AND workflow = %s"
                " AND r.finished_at >= %s ORDER BY r.finished_at DESC, r.run_id DESC"
                " LIMIT %s", (*key.parts(), cutoff, count),
            )
            rows = await cursor.fetchall()
        return [decode_run(blob, names=False, what=f"history run {run_id}")
                for run_id, blob in rows]

    async def aggregates(self, key: HistoryKey) -> Aggregates:
        return (await self._lookup(key, None, latest=False)).aggregates

    async def lookup(self, key: HistoryKey, sha: str | None = None) -> Lookup:
        return await self._lookup(key, sha)

    async def _lookup(self, key: HistoryKey, sha: str | None, *, latest: bool = True,
                      aggregates: bool = True) -> Lookup:
        """One query: the key's aggregates and its newest run (of `sha`) beside them."""
        now = self.clock()
        cutoff = self.retention.cutoff(now)
        async with self._connection(f"history of {key.repo}") as connection:
            cursor = await connection.execute(
                "SELECT k.id, CASE WHEN %s THEN k.aggregates END, k.aggregates_until,"
                " r.run_id, r.summary FROM history_keys k LEFT JOIN LATERAL"
                " (SELECT run_id, summary FROM history_runs WHERE key_id = k.id AND %s"
                " AND finished_at >= %s AND (%s::text IS NULL OR sha = %s::text)"
                " ORDER BY finished_at DESC, run_id DESC LIMIT 1) r ON true"
                " WHERE forge = %s AND repo = %s AND branch = %s AND ci = %s"
                " AND workflow = %s",
                (aggregates, latest, cutoff, sha, sha, *key.parts()),
            )
            row = await cursor.fetchone()
            if row is None:
                return Lookup(None, Aggregates())
            key_id, stored, until, run_id, blob = row
            found = decode_run(blob, what=f"history run {run_id}") if blob else None
            if not aggregates:
                return Lookup(found, Aggregates())
            if stored is not None and until is not None and until > now:
                return Lookup(found, decode_aggregates(stored))
            return Lookup(found, await self._recount(connection, key_id, cutoff))

    async def _recount(self, connection: psycopg.AsyncConnection[Any], key_id: int,
                       cutoff: datetime) -> Aggregates:
        """The aggregates, their oldest run having aged out: counted again from the runs
        still within retention, under the key's lock like a write."""
        async with connection.transaction():
            await connection.execute("SELECT 1 FROM history_keys WHERE id = %s FOR UPDATE",
                                     (key_id,))
            cursor = await connection.execute(
                "SELECT run_id, summary FROM history_runs WHERE key_id = %s AND"
                " finished_at >= %s ORDER BY finished_at DESC, run_id DESC LIMIT %s",
                (key_id, cutoff, self.retention.max_runs),
            )
            window = [decode_run(blob, names=False, what=f"history run {run_id}")
                      for run_id, blob in await cursor.fetchall()]
            return await self._store_aggregates(connection, key_id, window)

