"""Shared fixtures: a Redis database of the test's own, on the real server when there is one.

Several test sessions may run at once on one machine (and CI shares the machine's Redis),
so each test takes a free database number under a lock on db 0 and flushes only that one.
Without a Redis server on 127.0.0.1:6379 the session starts an embedded one: tests never
skip for lack of Redis.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from hypothesis import settings

from bot.embedded_redis import EmbeddedRedis

# Every property test draws the same examples on every run: a CI run that fails can be run
# again to the same failure, and one that passes does not pass by luck. Exploring further is
# a deliberate act (HYPOTHESIS_PROFILE=explore), whose failures become @example cases.
settings.register_profile("herald", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "herald"))

SHARED_REDIS_URL = os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
LOCK_TTL_SECONDS = 900
FIRST_DB, LAST_DB = 1, 15


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """The shared Redis server, or an embedded one when the machine has none."""
    if _answers(SHARED_REDIS_URL):
        yield SHARED_REDIS_URL.rstrip("/")
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """URL of a database number this test holds alone, empty at start and flushed after."""
    control = redis.Redis.from_url(f"{redis_server_url}/0")
    token = uuid.uuid4().hex
    db = None
    for _ in range(600):
        for candidate in range(FIRST_DB, LAST_DB + 1):
            if control.set(f"herald-test:db-lock:{candidate}", token, nx=True,
                           ex=LOCK_TTL_SECONDS):
                db = candidate
                break
        if db is not None:
            break
        import time

        time.sleep(0.1)
    if db is None:
        pytest.fail("no free Redis database for this test within 60 s")
    url = f"{redis_server_url}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        if control.get(f"herald-test:db-lock:{db}") == token.encode():
            control.delete(f"herald-test:db-lock:{db}")
        control.close()


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A private redis-server on a free port, for tests that stop, slow or fill Redis."""
    with EmbeddedRedis() as server:
        yield server
