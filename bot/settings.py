"""The only module that reads the environment. Secrets are held as masked values.

What each variable means, its default and bounds are declared once, in `bot.config`;
`Settings.from_env` validates the whole environment against that schema at start, so a bad
value stops the process with the variable's name instead of surfacing mid-request.

Provider settings follow one pattern: `HERALD_<PROVIDER>_<KEY>` (provider upper-case, `-`
as `_`), and for secrets a `_FILE` variant naming a file that holds the value. Webhook
secrets are comma-separated so that a new one can be rolled out beside the old one; secret
files are read when used, so a rotated file needs no restart.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot import config as schema
from bot.config import (
    DEFAULT_HEADER_TIMEOUT_SECONDS,
    DEFAULT_JOB_MAX_TRIES,
    DEFAULT_JOB_TIMEOUT_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_BUFFERED_BYTES,
    MAX_HEADER_TIMEOUT_SECONDS,
    ConfigError,
    HeraldConfig,
)

__all__ = [
    "DEFAULT_HEADER_TIMEOUT_SECONDS",
    "DEFAULT_JOB_MAX_TRIES",
    "DEFAULT_JOB_TIMEOUT_SECONDS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "MAX_HEADER_TIMEOUT_SECONDS",
    "ConfigError",
    "HeraldConfig",
    "ProviderSettings",
    "Secret",
    "Settings",
    "env_name",
]



class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bytes__(self) -> bytes:
        return self._value.encode()

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def env_name(provider: str, key: str) -> str:
    """`env_name("azure-devops", "webhook_secret")` → `HERALD_AZURE_DEVOPS_WEBHOOK_SECRET`."""
    return f"HERALD_{provider.upper().replace('-', '_')}_{key.upper()}"


@dataclass(frozen=True)
class ProviderSettings:
    """Settings of one provider, read lazily from an environment snapshot."""

    name: str
    environ: Mapping[str, str] = field(repr=False)

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.environ.get(env_name(self.name, key))
        return value if value not in (None, "") else default

    def secret(self, key: str) -> Secret | None:
        """`KEY` or the contents of the file named by `KEY_FILE` (trailing newline dropped)."""
        value = self.get(key)
        if value is None:
            path = self.get(f"{key}_FILE")
            if path is None:
                return None
            try:
                value = Path(path).read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"{env_name(self.name, key + '_FILE')}: {exc.strerror}") from exc
        return Secret(value)

    def secrets(self, key: str = "webhook_secret") -> list[Secret]:
        """All comma-separated values of a rotating secret, newest first as configured."""
        joined = self.secret(key)
        if joined is None:
            return []
        return [Secret(part.strip()) for part in joined.reveal().split(",") if part.strip()]

    def webhook_secrets(self) -> list[Secret]:
        return self.secrets("webhook_secret")


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one process, and the environment it was read from."""

    redis_url: str | None = field(repr=False)  # may hold a password
    state_dir: Path
    max_body_bytes: int
    queue_name: str
    log_format: str
    log_level: str
    public_url: str | None
    environ: Mapping[str, str] = field(repr=False)
    #: Every variable, typed and within its bounds (`bot.config.HeraldConfig`).
    config: HeraldConfig = field(repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Validate `environ` (the process environment by default) as a whole.

        Raises `ConfigError` naming every wrong variable and what it allows.
        """
        env = dict(os.environ if environ is None else environ)
        config = schema.validate(env)
        return cls(
            redis_url=config.redis_url,
            state_dir=config.state_dir.expanduser(),
            max_body_bytes=config.max_body_bytes,
            queue_name=config.queue_name,
            log_format=config.log_format,
            log_level=config.log_level,
            public_url=config.public_url or None,
            environ=env,
            config=config,
        )

    def provider(self, name: str) -> ProviderSettings:
        return ProviderSettings(name, self.environ)

    def unknown_variables(self, other_providers: Iterable[str] = ()) -> list[str]:
        """A warning for each `HERALD_` variable nothing reads (a typo, most likely);
        `other_providers` are provider names registered at run time besides the built-in."""
        return schema.unknown_variables(self.environ, other_providers=other_providers)

    def max_buffered_bytes(self) -> int:
        """`HERALD_MAX_BUFFERED_BYTES`: request-body bytes one web process holds at once,
        across all connections (at least `HERALD_MAX_BODY_BYTES`)."""
        return self.config.max_buffered_bytes

    def header_timeout_seconds(self) -> float:
        """`HERALD_HEADER_TIMEOUT_SECONDS`: how long a connection may take to send a request
        line and headers before it is closed (`bot.connections`)."""
        return self.config.header_timeout_seconds

    def job_max_tries(self) -> int:
        """`HERALD_JOB_MAX_TRIES`: the try after which a job gives up. One reading for the
        worker (which stops retrying) and the handlers (which then answer the reviewer)."""
        return self.config.job_max_tries

    def job_timeout_seconds(self) -> float:
        """`HERALD_JOB_TIMEOUT_SECONDS`: how long one job may run before ARQ cancels it.

        One reading for the worker and for the handlers that size locks and deadlines from
        it: if they parsed it apart, a lock could lapse while its job still runs.
        """
        return self.config.job_timeout_seconds
