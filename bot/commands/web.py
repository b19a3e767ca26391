"""`herald web`: the web app alone (uvicorn), for production beside `herald worker`.

Needs `HERALD_REDIS_URL`. Each uvicorn worker process builds its own app (and its own
spool segment) through `bot.composition:create_app`.
"""

from __future__ import annotations

import argparse

import uvicorn

from bot import logging as herald_logging
from bot.commands.serve import (
    GRACEFUL_REQUEST_SECONDS,
    refuse,
    unworkable,
    warn_unknown_settings,
)
from bot.connections import protocol_class
from bot.settings import ConfigError, Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")


def run(args: argparse.Namespace) -> int:
    try:
        # validated here, once, rather than in every uvicorn worker process
        settings = Settings.from_env()
        if not settings.redis_url:
            raise ConfigError("HERALD_REDIS_URL (or REDIS_URL) is required")
    except ConfigError as exc:
        return refuse("web", exc)
    if (refused := unworkable("web", settings)) is not None:
        return refused
    herald_logging.configure(settings)
    warn_unknown_settings(settings)
    uvicorn.run(
        "bot.composition:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_REQUEST_SECONDS,
        # worker processes import it by name and read HERALD_HEADER_TIMEOUT_SECONDS
        http=protocol_class(),
    )
    return 0
