"""Fuzz every report parser through `parse_stream`: a TestRun or a ReportError, nothing else.

Inputs are random bytes and the real fixtures of tests/fixtures/reports, mutated: cut
short, bytes flipped, bytes inserted, a stretch repeated; so every format's detection
still picks the fixture's parser and the damage lands inside it.
"""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.results.model import TestRun
from bot.results.parsers import parse_stream
from bot.results.parsers._base import ReportError
from tests.fuzz.conftest import FUZZ

REPORTS = Path(__file__).resolve().parent.parent / "fixtures" / "reports"
FIXTURES = sorted(
    path for path in REPORTS.rglob("*")
    if path.is_file() and path.suffix.lower() != ".md" and path.stat().st_size < 2_000_000
)


def parse(data: bytes) -> None:
    try:
        run = parse_stream("fuzzed", io.BytesIO(data), text_limit=2000)
    except ReportError:
        return
    assert isinstance(run, TestRun)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(FIXTURES)).read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["cut", "flip", "insert", "repeat"]))
        if how == "cut":
            del data[at:]
        elif how == "flip":
            data[at] = draw(st.integers(0, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=40)
                               | st.sampled_from([b"<", b"\x00", b"]]>", b"&#0;", b"\xff\xfe",
                                                  b"<a>" * 300, b'"', b"{" * 300]))
        else:
            end = min(len(data), at + draw(st.integers(1, 400)))
            data[at:at] = data[at:end] * draw(st.integers(2, 20))
    return bytes(data)


@settings(FUZZ, max_examples=400)
@given(st.binary(max_size=2000))
def test_random_bytes_are_a_run_or_a_report_error(data: bytes) -> None:
    parse(data)


@settings(FUZZ, max_examples=400)
@given(st.sampled_from([b"<?xml version='1.0'?>", b"<testsuites>", b"{", b"[", b"TAP version 13\n",
                        b"\xef\xbb\xbf<testsuite>", b"<testsuite"]), st.binary(max_size=1000))
def test_random_bytes_after_a_format_s_opening_are_a_run_or_a_report_error(
    opening: bytes, rest: bytes
) -> None:
    parse(opening + rest)


@settings(FUZZ, max_examples=500)
@given(mutated())
def test_mutated_real_reports_are_a_run_or_a_report_error(data: bytes) -> None:
    parse(data)


def test_every_fixture_is_fuzzed() -> None:
    assert len(FIXTURES) >= 14
