"""What a configuration can do, checked before Herald starts and shown by `herald check`.

A webhook secret makes Herald accept a provider's deliveries; the jobs those deliveries
queue need the provider's API credentials (and, for a CI system that is no forge, some
forge's). Accepting deliveries whose every job fails shows only in the worker's log, so
`herald serve`, `web` and `worker` refuse such a configuration (`startup_problems`), one
line per problem, naming the variables to set.

Whether a provider's jobs can run is asked of the provider itself: its client factory
(`ProviderDirectory.client`) raises `NotConfigured` naming what is missing, so this
module repeats no provider's rules. Building a client does no I/O.

`inspect` adds what only a network round trip tells (is Redis up, does each configured API
answer), each under a short timeout and all at once, for `herald check`. Secrets never
leave this module unmasked: a secret setting reads ``set`` (or the file it comes from).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from pydantic import BaseModel, SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.ports import (
    CISource,
    ForgeTarget,
    NotConfigured,
    ProviderDirectory,
    RepoFiles,
    RunSurface,
    UnknownProvider,
)
from bot.settings import ConfigError, Settings, env_name

#: Each reachability probe's budget: `herald check` answers in about this long at most,
#: since the probes run at once.
PROBE_TIMEOUT_SECONDS: Final = 3.0


@dataclass
class ProviderCheck:
    """One provider as the configuration makes it: whether it takes deliveries, whether
    its client could be built (else why not), and the roles that client plays."""

    name: str
    receives: bool
    #: Verified with the sender's own key rather than a configured secret (Travis CI):
    #: deliveries are always accepted, so no configuration can switch them off.
    always_on: bool = False
    client: Any | None = None
    not_configured: str | None = None
    #: The webhook secret's file could not be read: every delivery would be refused.
    secret_error: str | None = None
    api_url: str | None = None
    settings: list[tuple[str, str]] = field(default_factory=list)
    reachable: str | None = None

    @property
    def is_forge(self) -> bool:
        return isinstance(self.client, ForgeTarget)

    def abilities(self) -> list[str]:
        """What this provider can do in Herald with the credentials it has."""
        client = self.client
        if client is None:
            return ["receive webhooks (no jobs can run)"] if self.receives else []
        found = ["receive webhooks"] if self.receives else []
        if isinstance(client, CISource):
            found += ["read runs, test results and artifacts", "rerun failed jobs (/retest)"]
        if isinstance(client, ForgeTarget):
            found += ["publish reports", "answer /retest comments"]
        if isinstance(client, RepoFiles):
            found.append("read .herald.yml")
        if isinstance(client, RunSurface):
            found.append("summarise on the run itself")
        return found


def _section(settings: Settings, name: str) -> BaseModel | None:
    section = getattr(settings.config, name.replace("-", "_"), None)
    return section if isinstance(section, BaseModel) else None


def _shown(value: object) -> str:
    if isinstance(value, SecretStr):
        return "set (masked)"
    return str(value)


def configured_settings(settings: Settings, name: str) -> list[tuple[str, str]]:
    """The provider's variables that are set, each with its value, secrets masked."""
    section = _section(settings, name)
    if section is None:
        return []
    shown = []
    for key in sorted(section.model_fields_set):
        value = getattr(section, key)
        if value is None:
            continue
        shown.append((env_name(name, key), _shown(value)))
    return shown


def _api_url(settings: Settings, name: str) -> str | None:
    section = _section(settings, name)
    for key in ("api_url", "url"):
        value = getattr(section, key, None) if section is not None else None
        if value is not None:
            return str(value).rstrip("/")
    return None


async def check_providers(
    settings: Settings, directory: ProviderDirectory, http: httpx.AsyncClient
) -> list[ProviderCheck]:
    """Every provider of `directory` as `settings` configure it (no network use)."""
    checks = []
    for name in directory.names():
        provider = settings.provider(name)
        section = _section(settings, name)
        check = ProviderCheck(name, receives=False, api_url=_api_url(settings, name),
                              settings=configured_settings(settings, name))
        if section is not None and "webhook_secret" not in type(section).model_fields:
            check.receives = check.always_on = True
        else:
            try:
                check.receives = bool(provider.webhook_secrets())
            except ConfigError as exc:
                check.secret_error = str(exc)
        try:
            check.client = directory.client(name, provider, http)
        except UnknownProvider:
            check.not_configured = "no API client in this build"
        except (NotConfigured, ConfigError) as exc:
            check.not_configured = str(exc)
        checks.append(check)
    return checks


def problems_of(checks: Sequence[ProviderCheck]) -> list[str]:
    """One line per configuration that takes deliveries it cannot act on.

    What this leaves out: a provider whose deliveries are always accepted (`always_on`,
    Travis CI) is never a refusal, or every installation without Travis credentials would
    refuse to start; `herald check` shows that its jobs cannot run."""
    problems = []
    forges = [c.name for c in checks if c.is_forge]
    for check in checks:
        if check.secret_error is not None:
            problems.append(f"{check.name}: the webhook secret cannot be read: "
                            f"{check.secret_error}")
        if not check.receives or check.always_on:
            continue
        secret = env_name(check.name, "webhook_secret")
        if check.client is None:
            problems.append(
                f"{check.name}: {secret} is set, so its deliveries are accepted, but no job "
                f"of theirs can run: {check.not_configured}"
            )
        elif not check.is_forge and not forges:
            problems.append(
                f"{check.name}: {secret} is set, but its reports go to the forge of the "
                "built repository and no forge has credentials: set those of GitHub, "
                "GitLab, Bitbucket or Azure DevOps"
            )
    return problems


async def _close_clients(checks: Sequence[ProviderCheck]) -> None:
    for check in checks:
        close = getattr(check.client, "aclose", None)
        if close is not None:
            await close()


async def startup_problems(settings: Settings, directory: ProviderDirectory) -> list[str]:
    """What makes `settings` unable to work (empty when it can): see the module docstring."""
    async with httpx.AsyncClient() as http:
        checks = await check_providers(settings, directory, http)
        await _close_clients(checks)
    return problems_of(checks)


def masked_url(url: str) -> str:
    """`url` with any password replaced, for display: the one in its authority and the
    `?password=` redis-py also reads."""
    parts = urlsplit(url)
    if parts.query:
        pairs = [(k, "****" if k.lower() == "password" else v)
                 for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        parts = parts._replace(query=urlencode(pairs, safe="*"))
    if parts.password is not None:
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}:****@" if parts.username else ":****@"
        parts = parts._replace(netloc=f"{user}{host}")
    # By hand, not `urlunsplit`: that writes `unix:///path` as `unix:/path`.
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}{query}"


async def redis_reachability(url: str, seconds: float = PROBE_TIMEOUT_SECONDS) -> str:
    client: Redis[bytes] = Redis.from_url(url, socket_connect_timeout=seconds,
                                          socket_timeout=seconds)
    started = time.monotonic()
    try:
        await asyncio.wait_for(client.ping(), seconds)
    except (RedisError, OSError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}"
    finally:
        await client.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5
    return f"reachable ({(time.monotonic() - started) * 1000:.0f} ms)"


async def api_reachability(http: httpx.AsyncClient, url: str,
                           seconds: float = PROBE_TIMEOUT_SECONDS) -> str:
    """Whether `url` answers at all (any HTTP status counts: no credentials are sent, so
    401 and 404 are expected of some APIs' roots)."""
    started = time.monotonic()
    try:
        response = await http.get(url, timeout=seconds)
    except httpx.HTTPError as exc:
        return f"unreachable: {type(exc).__name__}"
    return f"reachable (HTTP {response.status_code}, {(time.monotonic() - started) * 1000:.0f} ms)"


@dataclass
class Inspection:
    redis: str
    providers: list[ProviderCheck]
    problems: list[str]

    @property
    def ok(self) -> bool:
        unreachable = any((c.reachable or "").startswith("unreachable") for c in self.providers)
        return not self.problems and not self.redis.startswith("unreachable") and not unreachable


async def inspect(settings: Settings, directory: ProviderDirectory) -> Inspection:
    """`check_providers` and the problems, with Redis and each configured API probed."""
    async with httpx.AsyncClient(follow_redirects=False) as http:
        checks = await check_providers(settings, directory, http)
        probed = [(c, c.api_url) for c in checks if c.client is not None and c.api_url]
        probes: list[Awaitable[str]] = [api_reachability(http, url) for _, url in probed
                                        if url is not None]
        if settings.redis_url:
            probes.append(redis_reachability(settings.redis_url))
        answers = await asyncio.gather(*probes)
        for (check, _), answer in zip(probed, answers, strict=False):
            check.reachable = answer
        await _close_clients(checks)
    redis = answers[-1] if settings.redis_url else "not set (`herald serve` embeds one)"
    return Inspection(redis=redis, providers=checks, problems=problems_of(checks))
