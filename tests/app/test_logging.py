"""Log lines never carry a secret, whatever optional packages the environment has."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
import structlog

from bot import logging as herald_logging
from tests.app.conftest import make_settings

WEBHOOK_SECRET = b"never-in-a-log-line"


def verify(secrets: list[bytes]) -> None:
    raise ValueError("signature check failed")


def locals_printing_traceback(
    sio: object, exc_info: tuple[type[BaseException], BaseException, TracebackType]
) -> None:
    """What structlog uses by default when `rich` is installed: frames with their locals."""
    for frame, _ in traceback.walk_tb(exc_info[2]):
        sio.write(f"{frame.f_code.co_name}: {frame.f_locals!r}\n")  # type: ignore[attr-defined]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    config = structlog.get_config()
    handlers = list(logging.getLogger().handlers)
    yield
    structlog.configure(**config)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)


def test_console_tracebacks_never_show_frame_locals(
    restored_logging: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    defaults = list(structlog.dev.ConsoleRenderer.__init__.__defaults__ or ())
    defaults[defaults.index(structlog.dev.default_exception_formatter)] = locals_printing_traceback
    monkeypatch.setattr(structlog.dev.ConsoleRenderer.__init__, "__defaults__", tuple(defaults))
    settings = make_settings("redis://127.0.0.1:1", tmp_path, HERALD_LOG_FORMAT="console")
    herald_logging.configure(settings, stream=sys.stderr)

    try:
        verify([WEBHOOK_SECRET])
    except ValueError:
        structlog.get_logger("test.secrets").exception("webhook failed")

    output = capsys.readouterr().err
    assert WEBHOOK_SECRET.decode() not in output
    assert "signature check failed" in output  # the traceback itself is still there
