"""The composition root: the one place that wires the providers and the handlers into the
core. The web app (`bot.app`), the worker (`bot.worker`) and everything else under `bot`
know only the contract (`bot.ports`); this module, the CLI (`bot.cli`, `bot.commands`) and
the tests pick the plug-ins. `tests/test_layering.py` holds the import rules.

    uvicorn bot.composition:create_app --factory    # what `herald web` runs
"""

from __future__ import annotations

from typing import Any

from arq.worker import Worker
from starlette.applications import Starlette

import handlers
import providers
from bot import app, worker
from bot.ports import ProviderDirectory
from bot.routing import Router
from bot.settings import Settings


def directory() -> ProviderDirectory:
    """The built-in providers and those registered with `providers.register`."""
    return providers.DIRECTORY


def router() -> Router:
    """Every handler Herald ships, by the canonical event it handles."""
    return Router.combine(handlers.ROUTERS)


def create_app(settings: Settings | None = None, *, configure_logging: bool = True) -> Starlette:
    """The web app with Herald's providers; with no settings it reads the environment."""
    return app.create_app(settings, directory=directory(), configure_logging=configure_logging)


def worker_settings(settings: Settings, routes: Router | None = None) -> dict[str, Any]:
    """ARQ `WorkerSettings` with Herald's handlers (or `routes`) and providers."""
    return worker.worker_settings(settings, routes or router(), directory())


def create_worker(settings: Settings, routes: Router | None = None, **overrides: Any) -> Worker:
    """An ARQ worker with Herald's handlers (or `routes`) and providers; create it inside
    the event loop that will run it."""
    return worker.create_worker(settings, routes or router(), directory(), **overrides)
