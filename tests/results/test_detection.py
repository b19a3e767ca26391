"""Formats are told apart by content: every real report is claimed by exactly one reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.results.parsers import FORMATS, STREAM_FORMATS
from bot.results.parsers._input import sniff

from .conftest import FIXTURES

STREAMS = FIXTURES.parent / "streams"
REPORTS = sorted(
    path
    for root in (FIXTURES, STREAMS)
    for path in root.rglob("*")
    if path.is_file() and not path.name.startswith("README")
)


def claimants(first: bytes) -> list[str]:
    prolog = sniff(first)
    if prolog.xml:
        parser = FORMATS.get(prolog.local_root or "")
        return [parser.__name__] if parser else []
    return [f.__name__ for f in STREAM_FORMATS if f.detect(first)]


@pytest.mark.parametrize("path", REPORTS, ids=[str(p.relative_to(FIXTURES.parent))
                                               for p in REPORTS])
def test_each_fixture_is_claimed_by_at_most_one_format(path: Path) -> None:
    with path.open("rb") as stream:
        first = stream.read(1024 * 1024)
    # testng-results.xml is TestNG's own format, which no reader claims (yet): it is named
    # as not a test report rather than misread.
    assert len(claimants(first)) == (0 if path.name == "testng-results.xml" else 1)
