"""The one object a handler receives: the event, the roles it may use, a bound logger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bot.events import Event
from bot.ports import Clients
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.history import HistoryStore
    from bot.isolation import ArtifactReader


class Log(Protocol):
    """What handlers log through: structlog's BoundLogger, with provider, delivery, repo
    and handler bound."""

    def debug(self, event: str, **values: Any) -> Any: ...
    def info(self, event: str, **values: Any) -> Any: ...
    def warning(self, event: str, **values: Any) -> Any: ...
    def error(self, event: str, **values: Any) -> Any: ...
    def exception(self, event: str, **values: Any) -> Any: ...


@dataclass
class Context:
    event: Event
    settings: Settings
    redis: Any  # redis.asyncio.Redis; Any keeps handlers free of the redis stubs' generics
    http: Any  # httpx.AsyncClient shared by the worker
    log: Log
    #: The worker's API clients, made once per process: `.source(provider)` (a CI source)
    #: and `.forge(provider)` (a forge target).
    clients: Clients
    job_try: int = 1
    #: Where artifacts are parsed: the worker's `bot.isolation.ParsePool`; None reads
    #: them in this process.
    artifacts: ArtifactReader | None = None
    #: Past runs (`bot.history`), for the comparison with the base; None when no history
    #: is kept (`HERALD_HISTORY_MAX_RUNS=0`).
    history: HistoryStore | None = None
    #: Why the handler gave up on its work without raising (it told the reviewer itself,
    #: `gave_up`): the worker counts the handler as failed, not done, from these.
    gave_up_because: list[str] = field(default_factory=list)

    def gave_up(self, reason: str) -> None:
        """Say that this job's work could not be done although the handler returns
        normally (it reported the failure where it could): metrics and `herald status`
        must not count a job that published nothing as done."""
        self.gave_up_because.append(reason)
