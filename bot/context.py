"""The one object a handler receives: the event, clients for its provider, a bound logger."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.events import Event
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.isolation import ArtifactReader


@dataclass
class Context:
    event: Event
    settings: Settings
    redis: Any  # redis.asyncio.Redis; Any keeps handlers free of the redis stubs' generics
    http: Any  # httpx.AsyncClient shared by the worker
    log: Any  # structlog BoundLogger with provider, delivery, repo, handler bound
    clients: Any  # bot.worker.Clients: .ci(provider) and .forge(provider), made once
    job_try: int = 1
    #: Where artifacts are parsed: the worker's `bot.isolation.ParsePool`; None reads
    #: them in this process.
    artifacts: ArtifactReader | None = None
