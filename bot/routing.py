"""Router: canonical event name → handlers, composed explicitly (see `handlers.ROUTERS`).

One handler's failure never stops another: the worker (`bot.worker.handle_event`) runs
every matching handler and, after all have run, retries the job if any failed
transiently, skipping on the retry those that succeeded. Handlers must still be
idempotent, because ARQ runs a job at least once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.context import Context

Handler = Callable[["Context"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    event: str
    handler: Handler
    providers: frozenset[str] | None = None  # None: any provider

    def matches(self, provider: str, event: str) -> bool:
        return event == self.event and (self.providers is None or provider in self.providers)


@dataclass
class Router:
    routes: list[Route] = field(default_factory=list)

    def register(
        self, event: str, *, providers: Iterable[str] | None = None
    ) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.routes.append(
                Route(event, handler, frozenset(providers) if providers is not None else None)
            )
            return handler

        return decorate

    def fetch(self, provider: str, event: str) -> list[Handler]:
        return [r.handler for r in self.routes if r.matches(provider, event)]

    @classmethod
    def combine(cls, routers: Iterable[Router]) -> Router:
        return cls([route for router in routers for route in router.routes])
