"""Redis addresses an operator can give: plain, TLS (`rediss://`) and Sentinel's."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from arq.connections import create_pool
from redis.asyncio.connection import SSLConnection

from bot.config import ConfigError, validate
from bot.embedded_redis import EmbeddedRedis, free_port, redis_server_binary
from bot.redis_url import SentinelAddress, arq_settings, parse_sentinel, redis_client

PARSED = {
    "redis+sentinel://s1:26380,s2/herald": SentinelAddress(
        (("s1", 26380), ("s2", 26379)), "herald"),
    "redis+sentinel://:pw@s1/herald/3": SentinelAddress(
        (("s1", 26379),), "herald", db=3, password="pw"),
    "rediss+sentinel://app:p%40ss@[::1]:26379/my-master": SentinelAddress(
        (("::1", 26379),), "my-master", username="app", password="p@ss", ssl=True),
}


@pytest.mark.parametrize("url", PARSED, ids=list(PARSED))
def test_a_sentinel_url_names_the_sentinels_the_service_the_db_and_the_masters_auth(
    url: str,
) -> None:
    assert parse_sentinel(url) == PARSED[url]


REFUSED = {
    "redis+sentinel://s1:26379": "names the monitored service",
    "redis+sentinel://s1/herald/two": "database is a number",
    "redis+sentinel://s1:port/herald": "port must be a number",
    "redis+sentinel://:secret-pw@/herald": "names its sentinels",
}


@pytest.mark.parametrize("url", REFUSED, ids=list(REFUSED))
def test_a_malformed_sentinel_url_is_refused_at_start_naming_the_variable_not_the_password(
    url: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        validate({"HERALD_REDIS_URL": url})
    message = str(caught.value)
    assert "HERALD_REDIS_URL" in message and REFUSED[url] in message
    assert "secret-pw" not in message


def test_tls_urls_connect_with_tls_in_the_web_app_and_the_worker() -> None:
    client = redis_client("rediss://:pw@redis.example:6380/1")
    assert client.connection_pool.connection_class is SSLConnection
    settings = arq_settings("rediss://:pw@redis.example:6380/1")
    assert (settings.ssl, settings.host, settings.port, settings.database) == (
        True, "redis.example", 6380, 1)


def test_the_worker_reads_a_sentinel_url_as_arqs_sentinel_settings() -> None:
    settings = arq_settings("redis+sentinel://:pw@s1,s2:26380/herald/2")
    assert settings.sentinel is True
    assert settings.host == [("s1", 26379), ("s2", 26380)]
    assert (settings.sentinel_master, settings.database, settings.password) == (
        "herald", 2, "pw")


@pytest.fixture
def sentinel(own_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[int]:
    """A real Sentinel on a free port, monitoring `own_redis` as service `herald`."""
    port = free_port()
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its file: it must be writable
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor herald 127.0.0.1 {own_redis.port} 1\n")
    process = subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe = redis.Redis(port=port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if probe.execute_command("SENTINEL", "get-master-addr-by-name", "herald"):
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the sentinel did not start within 10 s")
            time.sleep(0.05)
        probe.close()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def on_master(own_redis: EmbeddedRedis, db: int) -> bytes | None:
    direct = redis.Redis.from_url(f"{own_redis.url}/{db}")
    try:
        value: bytes | None = direct.get("herald:probe")
        return value
    finally:
        direct.close()


async def test_the_web_apps_client_finds_the_master_through_sentinel(
    sentinel: int, own_redis: EmbeddedRedis
) -> None:
    client = redis_client(f"redis+sentinel://127.0.0.1:{sentinel}/herald/2",
                          socket_connect_timeout=1.0)
    try:
        await client.set("herald:probe", b"via sentinel")
    finally:
        await client.aclose()
    assert on_master(own_redis, 2) == b"via sentinel"


async def test_the_workers_arq_pool_finds_the_master_through_sentinel(
    sentinel: int, own_redis: EmbeddedRedis
) -> None:
    pool = await create_pool(arq_settings(f"redis+sentinel://127.0.0.1:{sentinel}/herald/3"))
    try:
        await pool.set("herald:probe", b"arq via sentinel")
    finally:
        await pool.aclose()
    assert on_master(own_redis, 3) == b"arq via sentinel"
