"""Helpers for the result parser tests: fixture paths and parsing from bytes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.results.model import TestRun
from bot.results.parsers import parse_stream

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports"


def parse_bytes(data: bytes, source: str = "report.xml", **kw: int) -> TestRun:
    return parse_stream(source, io.BytesIO(data), **kw)


class OneWayStream(io.RawIOBase):
    """A stream that cannot seek, like a socket or a streamed HTTP body."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        chunk = self._inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
