"""The only module that reads the environment. Secrets are held as masked values.

Provider settings follow one pattern, so adding a provider adds no code here:
`HERALD_<PROVIDER>_<KEY>` (provider upper-case, `-` as `_`), and for secrets a `_FILE`
variant naming a file that holds the value. Webhook secrets are comma-separated so that a
new one can be rolled out beside the old one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024
#: Request bodies one web process holds at once: ten deliveries at the full body cap.
DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024
#: How long a connection may take to send a request's line and headers.
DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
MAX_HEADER_TIMEOUT_SECONDS = 300.0
DEFAULT_JOB_MAX_TRIES = 5
DEFAULT_JOB_TIMEOUT_SECONDS = 300.0


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


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


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
    redis_url: str | None = field(repr=False)  # may hold a password
    state_dir: Path
    max_body_bytes: int
    queue_name: str
    log_format: str
    log_level: str
    public_url: str | None
    environ: Mapping[str, str] = field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        try:
            max_body = int(env.get("HERALD_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))
        except ValueError as exc:
            raise ConfigError("HERALD_MAX_BODY_BYTES must be a whole number of bytes") from exc
        if max_body <= 0:
            raise ConfigError("HERALD_MAX_BODY_BYTES must be positive")
        return cls(
            redis_url=env.get("HERALD_REDIS_URL") or env.get("REDIS_URL") or None,
            state_dir=Path(env.get("HERALD_STATE_DIR") or ".herald").expanduser(),
            max_body_bytes=max_body,
            queue_name=env.get("HERALD_QUEUE_NAME") or "herald:queue",
            log_format=env.get("HERALD_LOG_FORMAT") or ("json" if env.get("CI") else "console"),
            log_level=(env.get("HERALD_LOG_LEVEL") or "info").lower(),
            public_url=(env.get("HERALD_PUBLIC_URL") or "").rstrip("/") or None,
            environ=env,
        )

    def provider(self, name: str) -> ProviderSettings:
        return ProviderSettings(name, self.environ)

    def whole_number(self, name: str, default: int, *, minimum: int = 1) -> int:
        """`HERALD_<NAME>` as an integer ≥ `minimum` (limits, timeouts), else `default`."""
        variable = f"HERALD_{name.upper()}"
        raw = self.environ.get(variable)
        if raw in (None, ""):
            return default
        try:
            value = int(str(raw).replace("_", ""))
        except ValueError as exc:
            raise ConfigError(f"{variable} must be a whole number, not {raw!r}") from exc
        if value < minimum:
            raise ConfigError(f"{variable} must be at least {minimum}")
        return value

    def max_buffered_bytes(self) -> int:
        """`HERALD_MAX_BUFFERED_BYTES`: request-body bytes one web process holds at once,
        across all connections; a delivery that would overrun it is answered 503. At least
        `HERALD_MAX_BODY_BYTES`, or a delivery at the cap could never be taken."""
        value = self.whole_number("max_buffered_bytes", DEFAULT_MAX_BUFFERED_BYTES)
        if value < self.max_body_bytes:
            raise ConfigError(
                f"HERALD_MAX_BUFFERED_BYTES ({value}) must be at least HERALD_MAX_BODY_BYTES "
                f"({self.max_body_bytes}): a delivery at the body cap could never be taken"
            )
        return value

    def header_timeout_seconds(self) -> float:
        """`HERALD_HEADER_TIMEOUT_SECONDS`: how long a connection may take to send a request
        line and headers before it is closed (`bot.connections`)."""
        raw = self.environ.get("HERALD_HEADER_TIMEOUT_SECONDS")
        if raw in (None, ""):
            return DEFAULT_HEADER_TIMEOUT_SECONDS
        try:
            value = float(str(raw))
        except ValueError as exc:
            raise ConfigError(
                f"HERALD_HEADER_TIMEOUT_SECONDS must be a number, not {raw!r}"
            ) from exc
        if not 0 < value <= MAX_HEADER_TIMEOUT_SECONDS:
            raise ConfigError(
                "HERALD_HEADER_TIMEOUT_SECONDS must be more than 0 and at most "
                f"{MAX_HEADER_TIMEOUT_SECONDS:g} seconds"
            )
        return value

    def job_max_tries(self) -> int:
        """`HERALD_JOB_MAX_TRIES`: the try after which a job gives up. One reading for the
        worker (which stops retrying) and the handlers (which then answer the reviewer)."""
        return self.whole_number("job_max_tries", DEFAULT_JOB_MAX_TRIES)

    def job_timeout_seconds(self) -> float:
        """`HERALD_JOB_TIMEOUT_SECONDS`: how long one job may run before ARQ cancels it.

        One reading for the worker and for the handlers that size locks and deadlines from
        it: if they parsed it apart, a lock could lapse while its job still runs.
        """
        raw = self.environ.get("HERALD_JOB_TIMEOUT_SECONDS")
        if raw in (None, ""):
            return DEFAULT_JOB_TIMEOUT_SECONDS
        try:
            value = float(str(raw))
        except ValueError as exc:
            raise ConfigError(f"HERALD_JOB_TIMEOUT_SECONDS must be a number, not {raw!r}") from exc
        if not 0 < value < float("inf"):
            raise ConfigError("HERALD_JOB_TIMEOUT_SECONDS must be a positive number of seconds")
        return value
