"""Where Herald's HTTP clients may connect: never to a private, loopback or link-local
address, unless the operator configured that host.

Payloads and redirects hand Herald URLs: a build or artifact URL in a Jenkins or TeamCity
notification, the object-storage hop of an artifact download, an allow-listed artifact
host. Any of them could aim Herald at the cloud metadata service (169.254.169.254), at
Redis on loopback, or at whatever else shares Herald's private network. Reading the URL's
text cannot settle it: a public-looking name may resolve to 127.0.0.1; `2130706433`,
`0x7f.1`, `017700000001` and `[::ffff:127.0.0.1]` are all loopback; and a name may resolve
to something else on the second lookup (DNS rebinding). So the check is made where the
connection is made. `GuardedBackend`, the network backend under the clients' connection
pool, resolves the host itself, refuses the connection unless every address is public,
and connects to the very address it checked (TLS still verifies the name).

Trusted, whatever their address: the (host, port) of every provider URL in the settings
(a self-hosted GitLab, Jenkins or TeamCity usually lives on the private network), and the
hosts in `HERALD_EGRESS_ALLOWED_HOSTS` (an internal object store that a self-hosted forge
redirects downloads to). Which URLs a client requests at all (the configured origin only,
credentials never across origins) is `providers.http`'s rule; this is the floor below it.

Behind an outgoing proxy (`HTTPS_PROXY`), httpx connects to the proxy instead, and the
proxy must apply the same rule: docs/webhooks.md says so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpcore
import httpx
from pydantic import AnyUrl, BaseModel

from bot.config import allowed_hosts
from bot.ports import PermanentError
from bot.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
#: IPv6 prefixes that carry an IPv4 address a gateway will reach: NAT64 (RFC 6052), and
#: its local-use prefix (RFC 8215).
_NAT64: Final = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class RefusedAddress(PermanentError):
    """A connection Herald will not open: the host is not public and not configured."""


# ---- what an address is ------------------------------------------------------------------


def _ipv4_part(text: str) -> int | None:
    """One part of an IPv4 address as inet_aton(3) reads it: decimal, 0x-hex or 0-octal."""
    if not text:
        return None
    try:
        if text[:2].lower() == "0x":
            return int(text[2:], 16) if text[2:] else 0
        if len(text) > 1 and text[0] == "0":
            return int(text[1:], 8)
        return int(text, 10) if text.isdigit() else None
    except ValueError:
        return None


def loose_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """`text` as the C library's resolver would take it for an IPv4 address: one to four
    parts (`127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`), the last one filling the
    remaining bytes. None when it is not such a number (a host name)."""
    parts = text.split(".")
    if text.endswith("."):
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4:
        return None
    values = [_ipv4_part(part) for part in parts]
    if any(value is None for value in values):
        return None
    numbers = [value for value in values if value is not None]
    *leading, last = numbers
    if any(value > 255 for value in leading) or last >= 1 << (8 * (5 - len(numbers))):
        return None
    packed = 0
    for value in leading:
        packed = packed << 8 | value
    packed = packed << (8 * (5 - len(numbers))) | last
    return ipaddress.IPv4Address(packed)


def literal_address(host: str) -> Address | None:
    """The address a URL's host names directly, in any spelling; None for a name."""
    bare = host.strip("[]").split("%", 1)[0]  # an IPv6 zone id picks an interface only
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return loose_ipv4(bare)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    for network in _NAT64:
        if address in network:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address) -> str | None:
    """Why Herald does not connect to `address`, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = refusal(inner)
            return f"{reason} inside an IPv6 address" if reason else None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


# ---- who is trusted ----------------------------------------------------------------------


def _provider_urls(config: BaseModel) -> Iterable[tuple[str, str | None, int | None]]:
    """(scheme, host, port) of every URL in the provider sections of the settings. The
    core's own URLs (Herald's public address) are not providers: Herald has no call to
    make there. Defaults are plain strings (pydantic validates only what was set)."""
    for name in type(config).model_fields:
        section = getattr(config, name)
        if isinstance(section, BaseModel):
            yield from _urls(section)


def _urls(section: BaseModel) -> Iterable[tuple[str, str | None, int | None]]:
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, AnyUrl):
            yield value.scheme, value.host, value.port
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            parts = urlsplit(value)
            yield parts.scheme, parts.hostname, parts.port


@dataclass(frozen=True)
class EgressPolicy:
    """The hosts Herald connects to whatever their address; every other host must be
    public on every address it resolves to."""

    trusted: frozenset[tuple[str, int | None]] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        config = settings.config
        trusted: set[tuple[str, int | None]] = set()
        for scheme, host, port in _provider_urls(config):
            if host:
                trusted.add((host.strip("[]").lower().rstrip("."),
                             port or _DEFAULT_PORTS.get(scheme)))
        trusted.update(allowed_hosts(config.egress_allowed_hosts))
        return cls(frozenset(trusted))

    def trusts(self, host: str, port: int) -> bool:
        key = host.strip("[]").lower().rstrip(".")
        return (key, port) in self.trusted or (key, None) in self.trusted


# ---- where connections are made ----------------------------------------------------------


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    )
    return [str(info[4][0]) for info in infos]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the rule of this module at `connect_tcp`."""

    def __init__(
        self,
        policy: EgressPolicy,
        inner: httpcore.AsyncNetworkBackend,
        resolve: Resolver = _resolve,
    ) -> None:
        self.policy = policy
        self.inner = inner
        self.resolve = resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = host
        if not self.policy.trusts(host, port):
            target = await self._checked(host, port, timeout)
        return await self.inner.connect_tcp(
            target, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )

    async def _checked(self, host: str, port: int, seconds: float | None) -> str:
        literal = literal_address(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                async with asyncio.timeout(seconds):
                    addresses = await self.resolve(host, port)
            except (OSError, TimeoutError) as exc:
                # As for any failed connection: the caller may try again later.
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
            if not addresses:
                raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        for text in addresses:
            address = literal_address(text)
            reason = refusal(address) if address is not None else "not an IP address"
            if reason is not None:
                # One private address among public ones is enough to be sent there.
                raise RefusedAddress(
                    f"refused to connect to {host}: it is {reason} ({text}), and not a "
                    "host Herald is configured for (HERALD_EGRESS_ALLOWED_HOSTS)"
                )
        return addresses[0]

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("refused to connect to a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(policy: EgressPolicy, **options: Any) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (`options` as for `httpx.AsyncHTTPTransport`) whose
    connections go through `GuardedBackend`.

    httpx does not take a network backend as an argument, so the pool's is wrapped in
    place; tests/test_egress.py fails loudly should httpx's internals move."""
    transport = httpx.AsyncHTTPTransport(**options)
    pool = transport._pool
    pool._network_backend = GuardedBackend(policy, pool._network_backend)
    return transport
