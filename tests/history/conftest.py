"""Fixtures: a history store of each backend, on the real servers, with a clock of the
test's own.

PostgreSQL: the session creates a database of its own (a random name) on the server at
`HERALD_TEST_POSTGRES_URL` (127.0.0.1:5432 by default) and drops it afterwards. Without a
PostgreSQL server the tests fail, saying so: CI has one, and a backend whose tests skip
silently is a backend nobody tested.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import redis.asyncio as aioredis

from bot.history.postgres import PostgresHistory
from bot.history.redis import RedisHistory
from bot.history.store import HistoryStore, Retention

SERVER_URL = os.environ.get("HERALD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The time the store sees, moved by the test."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"no PostgreSQL answers at {SERVER_URL} ({exc}); the history tests need one "
            "(set HERALD_TEST_POSTGRES_URL to use another)", pytrace=False,
        )


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server's URL, once it is known to answer."""
    _admin().close()
    return SERVER_URL


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database of this session's own, dropped at the end."""
    name = f"herald_test_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_server}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_database(server: str) -> tuple[str, str]:
    """(URL, name) of a new empty database, for tests of the migrations themselves."""
    name = f"herald_test_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}", name


def drop_database(name: str) -> None:
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def retention() -> Retention:
    return Retention(max_runs=50, max_days=30)


@pytest.fixture(params=["redis", "postgres"])
async def store(request: pytest.FixtureRequest, clock: Clock,
                retention: Retention) -> AsyncIterator[HistoryStore]:
    """A store of each backend, empty at start."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        client = aioredis.Redis.from_url(url)
        yield RedisHistory(client, retention, clock=clock)
        await client.aclose()
        return
    url = request.getfixturevalue("postgres_url")
    history = await PostgresHistory.connect(url, retention, clock=clock)
    async with history.pool.connection() as connection:
        await connection.execute("TRUNCATE history_keys, history_runs")
    try:
        yield history
    finally:
        await history.close()
