"""The one object a handler receives: the event, the roles it may use, a bound logger."""

from __future__ import annotations

from dataclasses import dataclass
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
    #: Set by a handler that answered "could not do it" instead of raising (the report's
    #: give-up answer): the job counts as given up, so a redelivery of its webhook runs it
    #: again rather than being answered duplicate.
    gave_up: bool = False
