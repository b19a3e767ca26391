"""`herald worker`: ARQ workers only, against the Redis in `HERALD_REDIS_URL`.

Run as many as the load needs (each takes `--concurrency` jobs at once). SIGTERM: stop
taking jobs, let running ones finish within the grace period, return the rest to the
queue (see `bot.worker`).
"""

from __future__ import annotations

import argparse
import asyncio

from bot import logging as herald_logging
from bot.commands.serve import refuse, run_async, unworkable, warn_unknown_settings
from bot.composition import create_worker
from bot.settings import ConfigError, Settings

log = herald_logging.get_logger("herald.worker")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency", type=int, default=None,
        help="jobs run at once by this process (default HERALD_WORKER_CONCURRENCY or 10)",
    )
    parser.add_argument(
        "--burst", action="store_true", help="exit once the queue is empty (batch runs, tests)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        if args.concurrency is not None:
            if args.concurrency < 1:
                raise ConfigError("--concurrency must be at least 1")
            # through the schema again, so the option has the variable's bounds
            settings = Settings.from_env(
                {**settings.environ, "HERALD_WORKER_CONCURRENCY": str(args.concurrency)}
            )
        if not settings.redis_url:
            raise ConfigError(
                "HERALD_REDIS_URL (or REDIS_URL) is required; `herald serve` runs a worker "
                "with an embedded Redis for trying Herald out"
            )
    except ConfigError as exc:
        return refuse("worker", exc)
    if (refused := unworkable("worker", settings)) is not None:
        return refused
    herald_logging.configure(settings)
    warn_unknown_settings(settings)
    return run_async(_work(settings, burst=args.burst))


async def _work(settings: Settings, *, burst: bool) -> int:
    worker = create_worker(settings, burst=burst)
    # ARQ cancels its main task once a signal has been handled: a normal stop, not an error
    (ended,) = await asyncio.gather(worker.async_run(), return_exceptions=True)
    failed = isinstance(ended, Exception)
    if failed:
        # Redis unreachable at start, or lost mid-run: a non-zero exit, so a process
        # manager that restarts failed services restarts this one
        log.error("worker stopped unexpectedly", error=repr(ended))
    await worker.close()
    return 1 if failed else 0
