"""Redis addresses: `redis://`, `rediss://` (TLS), `unix://`, and Sentinel's.

redis-py and ARQ read the first three from a URL themselves. Neither reads an address of a
Redis run under Sentinel, so Herald takes one URL for it and builds both clients from it:

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]
    rediss+sentinel://...      the same, with TLS to the master

`host:port` are the sentinels (port 26379 by default), `service` the name they monitor
(`sentinel monitor <service> ...`), `db` the database number (0). The user and password are
the master's; the sentinels are asked without them and without TLS, as ARQ's Sentinel
support does (`arq.connections.create_pool`), so web and worker reach the same master the
same way. Every client asks the sentinels for the master on each new connection, so a
failover is followed without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT: Final = 26379
FORMAT: Final = "redis+sentinel://[:password@]host[:port][,host[:port]...]/service[/db]"


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False


def is_sentinel_url(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def parse_sentinel(url: str) -> SentinelAddress:
    """The parts of a Sentinel URL; `ValueError` says what is wrong, never echoing the URL
    (it may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"a Sentinel URL starts with redis+sentinel://, not {parts.scheme}://")
    credentials, _, hosts = parts.netloc.rpartition("@")
    sentinels: list[tuple[str, int]] = []
    for entry in hosts.split(","):
        entry = entry.strip()
        if entry.startswith("["):  # an IPv6 address: [::1]:26379
            host, _, rest = entry[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = entry.partition(":")
        if not host:
            raise ValueError(f"a Sentinel URL names its sentinels: {FORMAT}")
        if port and not port.isdigit():
            raise ValueError(f"a sentinel's port must be a number: {FORMAT}")
        sentinels.append((host, int(port) if port else SENTINEL_PORT))
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2:
        raise ValueError(f"a Sentinel URL names the monitored service: {FORMAT}")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"a Sentinel URL's database is a number: {FORMAT}")
    # `user:password@` or `:password@`, as redis:// URLs write them
    username, _, password = credentials.partition(":")
    return SentinelAddress(
        sentinels=tuple(sentinels),
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=parts.scheme.startswith("rediss"),
    )


def redis_client(url: str, **options: Any) -> Redis[bytes]:
    """A `redis.asyncio.Redis` for any URL Herald accepts; `options` as `Redis.from_url`."""
    if not is_sentinel_url(url):
        client: Redis[bytes] = Redis.from_url(url, **options)
        return client
    address = parse_sentinel(url)
    sentinel = Sentinel(
        list(address.sentinels),
        sentinel_kwargs={k: v for k, v in options.items() if k.startswith("socket_")},
    )
    master: Redis[bytes] = sentinel.master_for(
        address.service,
        db=address.db,
        username=address.username,
        password=address.password,
        ssl=address.ssl,
        **options,
    )
    return master


def arq_settings(url: str) -> RedisSettings:
    """ARQ's `RedisSettings` for any URL Herald accepts."""
    if not is_sentinel_url(url):
        return RedisSettings.from_dsn(url)
    address = parse_sentinel(url)
    return RedisSettings(
        host=list(address.sentinels),
        sentinel=True,
        sentinel_master=address.service,
        database=address.db,
        username=address.username,
        password=address.password,
        ssl=address.ssl,
    )
