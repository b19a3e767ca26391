"""Herald never connects to a private, loopback or link-local address it was not
configured for, however the address is spelled and whatever a name resolves to.

The capture server below is a real server on loopback: each refused case must leave it
with 0 requests, which is what "refused before connecting" means. The worker's and the
web app's clients carry the guard (`bot.worker.on_startup`, `bot.app`), so a URL from a
payload or a redirect cannot reach the metadata service or Redis by spelling.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.composition import directory, router
from bot.egress import (
    EgressPolicy,
    GuardedBackend,
    RefusedAddress,
    guarded_transport,
    literal_address,
    refusal,
)
from bot.settings import ConfigError, Settings
from bot.worker import WorkerConfig, on_shutdown, on_startup
from providers.http import HttpSession
from tests.fakes.gitlab import serve

REFUSED = [
    # loopback, in every spelling the C library's resolver accepts
    "127.0.0.1", "127.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0177.0.0.1",
    "017700000001", "127.0.0.1.", "::1", "[::1]", "0:0:0:0:0:0:0:1",
    # IPv4 inside IPv6: mapped, NAT64, 6to4, Teredo
    "::ffff:127.0.0.1", "::ffff:7f00:1", "64:ff9b::7f00:1", "2002:7f00:1::",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",
    # link-local: the cloud metadata service
    "169.254.169.254", "0xa9fea9fe", "2852039166", "fe80::1", "fe80::1%eth0",
    "::ffff:169.254.169.254",
    # private, shared and special ranges
    "10.0.0.1", "10.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1",
    "0.0.0.0", "0", "::", "224.0.0.1", "ff02::1", "240.0.0.1", "198.18.0.1",
]
PUBLIC = ["8.8.8.8", "140.82.112.3", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
NAMES = ["example.com", "1e100.net", "10.0.0.1.nip.io", "0x7g.1", "127.0.0.1.evil", "08.1"]


@pytest.mark.parametrize("host", REFUSED)
def test_every_spelling_of_a_non_public_address_is_refused(host: str) -> None:
    address = literal_address(host)
    assert address is not None, f"{host} not read as an address"
    assert refusal(address) is not None


@pytest.mark.parametrize("host", PUBLIC)
def test_public_addresses_pass(host: str) -> None:
    address = literal_address(host)
    assert address is not None and refusal(address) is None


@pytest.mark.parametrize("host", NAMES)
def test_names_are_names_and_get_resolved(host: str) -> None:
    assert literal_address(host) is None


def test_short_forms_mean_what_the_resolver_makes_of_them() -> None:
    assert literal_address("127.1") == ipaddress.IPv4Address("127.0.0.1")
    assert literal_address("10.1.2") == ipaddress.IPv4Address("10.1.0.2")
    assert literal_address("0x7f.1") == ipaddress.IPv4Address("127.0.0.1")
    assert literal_address("256.1.1.1") is None  # no resolver takes it as an address


# ---- over a real connection ----------------------------------------------------------------


class Capture:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def answer(self, request: Request) -> Response:
        self.seen.append(request.url.path)
        return Response("captured")


@pytest.fixture
def capture() -> Iterator[tuple[str, Capture]]:
    seen = Capture()
    app = Starlette(routes=[Route("/{path:path}", seen.answer)])
    with serve(app) as url:
        yield url, seen


@pytest.fixture
def configured() -> Iterator[str]:
    """The configured provider's API: on loopback too, as a self-hosted GitLab on the
    private network would be."""

    async def artifact(request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=302)

    app = Starlette(routes=[Route("/artifact", artifact), Route("/ok", lambda _: Response("ok"))])
    with serve(app) as url:
        yield url


def policy_for(environ: dict[str, str]) -> EgressPolicy:
    return EgressPolicy.from_settings(Settings.from_env(environ))


@pytest.fixture
async def guarded(configured: str) -> AsyncIterator[httpx.AsyncClient]:
    policy = policy_for({"HERALD_GITLAB_URL": configured})
    async with httpx.AsyncClient(transport=guarded_transport(policy)) as client:
        yield client


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "localhost",
             "[::ffff:127.0.0.1]"],
)
async def test_a_loopback_url_in_any_spelling_makes_no_request(
    guarded: httpx.AsyncClient, capture: tuple[str, Capture], host: str
) -> None:
    url, seen = capture
    port = urlsplit(url).port
    with pytest.raises((RefusedAddress, httpx.InvalidURL)) as refused:
        await guarded.get(f"http://{host}:{port}/secret")
    # httpx itself takes a dotted form with a leading zero for a bad URL; should it ever
    # accept it, the guard reads it as octal, as the resolver would.
    assert refused.type is RefusedAddress or host == "0177.0.0.1"
    assert seen.seen == []


async def test_the_configured_host_is_reached_on_its_port_only(
    guarded: httpx.AsyncClient, configured: str, capture: tuple[str, Capture]
) -> None:
    assert (await guarded.get(f"{configured}/ok")).text == "ok"
    url, seen = capture  # same host, another port: not what was configured
    with pytest.raises(RefusedAddress):
        await guarded.get(f"{url}/secret")
    assert seen.seen == []


async def test_a_redirect_to_a_private_address_is_refused_before_connecting(
    guarded: httpx.AsyncClient, configured: str, capture: tuple[str, Capture]
) -> None:
    url, seen = capture
    session = HttpSession(guarded, provider="gitlab", label="GitLab", base_url=configured)
    target = f"http://2130706433:{urlsplit(url).port}/blob"
    with pytest.raises(RefusedAddress):
        async for _ in session.download(
            f"{configured}/artifact?to={target}", what="artifact", max_bytes=1 << 20
        ):
            pass
    assert seen.seen == []


async def test_allowed_hosts_are_reached_although_private(
    configured: str, capture: tuple[str, Capture]
) -> None:
    url, seen = capture
    policy = policy_for({"HERALD_GITLAB_URL": configured,
                         "HERALD_EGRESS_ALLOWED_HOSTS": urlsplit(url).netloc})
    async with httpx.AsyncClient(transport=guarded_transport(policy)) as client:
        assert (await client.get(f"{url}/store")).text == "captured"
    assert seen.seen == ["/store"]


async def test_a_name_with_one_private_address_among_public_ones_is_refused(
    capture: tuple[str, Capture]
) -> None:
    url, seen = capture

    async def rebinding(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "127.0.0.1"]

    transport = guarded_transport(EgressPolicy())
    backend = transport._pool._network_backend
    assert isinstance(backend, GuardedBackend)
    backend.resolve = rebinding
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(RefusedAddress, match=r"storage\.example: it is a loopback"):
            await client.get(f"http://storage.example:{urlsplit(url).port}/")
    assert seen.seen == []


async def test_the_checked_address_is_the_one_connected_to(
    capture: tuple[str, Capture]
) -> None:
    """The name is resolved once, by the guard: a second lookup (DNS rebinding) cannot
    send the connection elsewhere."""
    url, seen = capture
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])
    connected: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        return next(answers)

    transport = guarded_transport(EgressPolicy())
    backend = transport._pool._network_backend
    assert isinstance(backend, GuardedBackend)
    backend.resolve = resolve
    inner = backend.inner

    class Recording(type(inner)):  # type: ignore[misc]
        async def connect_tcp(self, host: str, port: int, **options: object) -> object:
            connected.append(host)
            raise httpx.ConnectError("stop here")

    backend.inner = Recording()
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://storage.example:{urlsplit(url).port}/")
    assert connected == ["93.184.215.14"]
    assert seen.seen == []


async def test_a_name_that_does_not_resolve_is_a_connection_failure() -> None:
    async def nothing(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    transport = guarded_transport(EgressPolicy())
    backend = transport._pool._network_backend
    assert isinstance(backend, GuardedBackend)
    backend.resolve = nothing
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match=r"cannot resolve nowhere\.example"):
            await client.get("https://nowhere.example/")


async def test_unix_sockets_are_refused() -> None:
    backend = GuardedBackend(EgressPolicy(), httpx.AsyncHTTPTransport()._pool._network_backend)
    with pytest.raises(RefusedAddress):
        await backend.connect_unix_socket("/var/run/redis.sock")


# ---- what is trusted -----------------------------------------------------------------------


def test_every_configured_provider_url_is_trusted_on_its_port() -> None:
    policy = policy_for({
        "HERALD_GITLAB_URL": "https://gitlab.internal.example",
        "HERALD_GITHUB_API_URL": "http://10.0.0.7:8080/api/v3",
        "HERALD_EGRESS_ALLOWED_HOSTS": "minio.internal, [fd00::5]:9000,10.0.0.9:9000",
    })
    assert policy.trusts("gitlab.internal.example", 443)
    assert policy.trusts("GitLab.Internal.Example.", 443)
    assert not policy.trusts("gitlab.internal.example", 22)
    assert policy.trusts("10.0.0.7", 8080)
    assert not policy.trusts("10.0.0.7", 80)
    assert policy.trusts("minio.internal", 1234)  # no port given: any port
    assert policy.trusts("fd00::5", 9000)
    assert policy.trusts("10.0.0.9", 9000) and not policy.trusts("10.0.0.9", 9001)


def test_herald_s_own_public_address_is_not_a_provider_and_not_trusted() -> None:
    policy = policy_for({"HERALD_PUBLIC_URL": "http://10.0.0.3:8000"})
    assert not policy.trusts("10.0.0.3", 8000)


@pytest.mark.parametrize("value", ["http://minio.internal", "host:0", "host:port", "host:70000",
                                   ":9000", "a/b"])
def test_a_malformed_allowed_host_stops_the_process_with_the_variable_named(value: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_EGRESS_ALLOWED_HOSTS"):
        Settings.from_env({"HERALD_EGRESS_ALLOWED_HOSTS": value})


async def test_the_worker_client_carries_the_guard(
    capture: tuple[str, Capture], redis_url: str
) -> None:
    url, seen = capture
    settings = Settings.from_env({"HERALD_REDIS_URL": redis_url})
    # What ARQ hands a worker's start-up: its Redis, and Herald's own settings.
    ctx: dict[str, object] = {
        "settings": settings, "directory": directory(), "router": router(),
        "redis": aioredis.Redis.from_url(redis_url),
        "worker_config": WorkerConfig.from_settings(settings),
    }
    await on_startup(ctx)
    try:
        http = ctx["http"]
        assert isinstance(http, httpx.AsyncClient)
        with pytest.raises(RefusedAddress):
            await http.get(f"{url}/metadata")
    finally:
        await on_shutdown(ctx)
        client = ctx["redis"]
        assert isinstance(client, aioredis.Redis)
        await client.aclose()
    assert seen.seen == []
