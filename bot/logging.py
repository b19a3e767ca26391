"""Logging set-up: structlog for our lines, the stdlib loggers (uvicorn, arq) through it too.

`HERALD_LOG_FORMAT=json` (the default when `CI` is set, and what production should use)
writes one JSON object per line; anything else writes aligned, coloured console lines.
Callers bind context (provider, delivery, repo, run) and emit one canonical line per
delivery or job. The message is under `message`; pass the webhook's event name as `_event`
and it is written as `event`. Nothing here ever receives a body or a secret: callers pass
identifiers.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from bot.settings import Settings

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: Third-party loggers that would otherwise repeat (or leak) what our canonical lines say:
#: uvicorn's access log duplicates the per-delivery line, and arq's per-job lines include a
#: repr of the job's arguments, which is the webhook payload.
_QUIET = {
    "uvicorn.access": logging.WARNING,
    "arq.worker": logging.WARNING,
    "arq.jobs": logging.WARNING,
    "httpx": logging.WARNING,  # one line per API call; handlers log what matters
}


class _StderrLogger:
    """structlog's output for our own lines: the rendered line to `sys.stderr`, looked up at
    each call (tests and `herald` redirect it), without passing through stdlib logging,
    which cost about a sixth of an ingest request."""

    def __init__(self, name: str = "herald") -> None:
        self.name = name

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")

    debug = info = warning = warn = error = critical = exception = log = msg


def _logger_factory(*args: Any) -> _StderrLogger:
    return _StderrLogger(str(args[0]) if args else "herald")


def _add_logger_name(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict.setdefault("logger", getattr(logger, "name", "herald"))
    return event_dict


_LEVEL_NAMES = {"warn": "warning", "exception": "error"}


class _Stamp:
    """structlog's `add_log_level`, the logger name and `TimeStamper(fmt="iso", utc=True)`
    as one processor, the timestamp's date-and-second part formatted once a second: the
    same keys and text, at a fraction of the cost on a line written for every request."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict["level"] = _LEVEL_NAMES.get(method, method)
        event_dict.setdefault("logger", getattr(logger, "name", "herald"))
        second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        micro = nanoseconds // 1000
        # datetime.isoformat leaves out a zero fraction; so does this
        event_dict["timestamp"] = f"{self._prefix}.{micro:06d}Z" if micro else f"{self._prefix}Z"
        return event_dict


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=repr).decode()


def configure(settings: Settings, *, stream: Any = None) -> None:
    """Configure structlog and the stdlib root logger once per process (idempotent)."""
    level = _LEVELS.get(settings.log_level, logging.INFO)
    json_output = settings.log_format == "json"
    renderer: Any
    if json_output:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        # plain tracebacks always: with `rich` installed structlog would default to rich's,
        # which prints every frame's local variables (request bodies, webhook secrets)
        renderer = structlog.dev.ConsoleRenderer(
            colors=_isatty(stream), event_key="message",
            exception_formatter=structlog.dev.plain_traceback,
        )
    # the message goes under "message", so "event" can name the webhook event (callers pass
    # it as `_event`, which structlog's own signature leaves free)
    rename = structlog.processors.EventRenamer("message", replace_by="_event")
    timestamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    exceptions = [structlog.processors.format_exc_info] if json_output else []

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([_Stamp()] if json_output else
              [structlog.processors.add_log_level, _add_logger_name, timestamp]),
            *exceptions,
            rename,
            renderer,
        ],
        logger_factory=_logger_factory,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    # uvicorn, arq and the rest log through the standard library: same format, same stream
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, rename,
                        renderer],
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamp,
                *exceptions,
            ],
        )
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_herald", False):
            root.removeHandler(existing)
    handler._herald = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name, quiet_level in _QUIET.items():
        logging.getLogger(name).setLevel(max(level, quiet_level))


def _isatty(stream: Any) -> bool:
    target = stream or sys.stderr
    return bool(getattr(target, "isatty", lambda: False)())


def get_logger(name: str) -> Any:
    """A structlog logger; `Any` because bound loggers' methods are built dynamically."""
    return structlog.get_logger(name)
