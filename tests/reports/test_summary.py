"""One-line summaries: titles for checks and statuses, words for run statuses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.reports import status_word, title
from bot.reports.summary import (
    count_lines,
    failure_summary,
    generated_at,
    headline,
    metric_value,
    short_duration,
    trace_beyond_message,
)
from bot.results.model import RunStatus, Totals


@pytest.mark.parametrize(
    ("totals", "expected"),
    [
        (Totals(), "No tests found"),
        (Totals(total=1204, passed=1204, duration=125.7), "All 1,204 tests passed in 2m 6s"),
        (Totals(total=1, passed=1, duration=0.35), "1 test passed in 0.3s"),
        (Totals(total=1207, passed=1204, failed=3, duration=125.2),
         "3 failed, 1,204 passed in 2m 5s"),
        (Totals(total=1207, passed=1200, failed=3, errors=1, skipped=3, duration=3725),
         "3 failed, 1 error, 1,200 passed, 3 skipped in 1h 2m"),
        (Totals(total=4, passed=0, errors=4, duration=42), "4 errors, 0 passed in 42s"),
        (Totals(total=10, passed=8, skipped=2, duration=5.04), "8 passed, 2 skipped in 5.0s"),
        (Totals(total=10, passed=10, flaky=2, duration=12), "All 10 tests passed (2 flaky) in 12s"),
        (Totals(total=3, skipped=3), "0 passed, 3 skipped in 0.0s"),
    ],
)
def test_title(totals: Totals, expected: str) -> None:
    assert title(totals) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0.0s"), (9.94, "9.9s"), (10, "10s"), (59.6, "1m 0s"), (125.7, "2m 6s"),
     (3600, "1h 0m"), (-3, "0.0s"), (float("inf"), "0.0s")],
)
def test_short_duration(seconds: float, expected: str) -> None:
    assert short_duration(seconds) == expected


def test_every_run_status_has_a_word() -> None:
    assert [status_word(s) for s in RunStatus] == [
        "PASSED", "FAILED", "ERROR", "CANCELLED", "RUNNING", "NO TESTS"
    ]


@pytest.mark.parametrize(
    ("message", "failure_type", "error", "expected"),
    [
        ("assert 1 == 2\nwhere 1 = f()", "AssertionError", False, "AssertionError: assert 1 == 2"),
        ("AssertionError: boom", "AssertionError", False, "AssertionError: boom"),
        ("\n\n  second line first  \n", None, False, "second line first"),
        (None, "TimeoutError", True, "TimeoutError"),
        (None, None, True, "error (no message)"),
        ("", None, False, "failed (no message)"),
    ],
)
def test_failure_summary(message: str | None, failure_type: str | None, error: bool,
                         expected: str) -> None:
    assert failure_summary(message, failure_type, error=error) == expected


def test_generated_at_is_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert generated_at(datetime(2026, 11, 25, 11, 0, tzinfo=cet)) == "2026-11-25 10:00:00 UTC"
    assert generated_at(datetime(2026, 11, 25, 10, 0)) == "2026-11-25 10:00:00 UTC"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1234.0, "1,234"), (12.5, "12.5"), (0.0421, "0.0421"), (1e20, "1e+20"), ("fast", "fast")],
)
def test_metric_value(value: float | str, shown: str) -> None:
    assert metric_value(value) == shown


@pytest.mark.parametrize(
    ("totals", "expected"),
    [
        (Totals(), "No tests found"),
        (Totals(total=1, passed=1, tests=1), "1 test passed"),
        (Totals(total=42, passed=42, tests=42), "All 42 tests passed"),
        (Totals(total=1204, passed=1200, failed=3, errors=1, tests=1204),
         "3 failed, 1 error of 1,204 tests"),
        (Totals(total=1204, passed=1202, errors=2, tests=1100),
         "2 errors of 1,204 executions of 1,100 tests"),
        (Totals(total=2, passed=2, tests=1), "All 2 executions of 1 test passed"),
        (Totals(total=10, passed=8, skipped=2, tests=10), "8 passed, 2 skipped of 10 tests"),
        (Totals(total=3, skipped=3, tests=3), "0 passed, 3 skipped of 3 tests"),
    ],
)
def test_headline(totals: Totals, expected: str) -> None:
    assert headline(totals) == expected


@pytest.mark.parametrize(
    ("totals", "lines"),
    [
        (Totals(), []),
        (Totals(total=42, passed=40, failed=2, tests=42, duration=125.7),
         ["Passed: 40 (95.2%)", "Duration: 2m 5.70s"]),
        (Totals(total=4, passed=2, skipped=1, errors=1, flaky=1, tests=4, duration=1),
         ["Passed: 2 (50.0%), 1 flaky", "Skipped: 1 (25.0%)", "Duration: 1.00s"]),
        (Totals(total=2, failed=2, tests=2), ["Duration: 0.00s"]),
    ],
)
def test_count_lines_leave_zeros_out(totals: Totals, lines: list[str]) -> None:
    assert count_lines(totals) == lines


@pytest.mark.parametrize(
    ("message", "trace", "failure_type", "rest"),
    [
        ("expected 1", "java.lang.AssertionError: expected 1\n\tat A.b(A.java:3)",
         "java.lang.AssertionError", "\tat A.b(A.java:3)"),
        ("expected 1", "java.lang.AssertionError: expected 1\n\tat A.b(A.java:3)",
         "AssertionError", "\tat A.b(A.java:3)"),
        ("expected 1", "expected 1\n\tat A.b(A.java:3)", None, "\tat A.b(A.java:3)"),
        ("boom", "Traceback:\n  x\nValueError: boom\n", "ValueError", "Traceback:\n  x"),
        ("boom", "boom", None, None),
        ("boom", "ValueError: boom", "ValueError", None),
        ("boom", "  at f\n  at g", None, "  at f\n  at g"),
        ("boom", "Caused by X: boom\n  at f", "Y", "Caused by X: boom\n  at f"),
        ("boom", "boomerang\n  at f", None, "boomerang\n  at f"),
        (None, "  at f", None, "  at f"),
        ("boom", None, None, None),
        ("boom", "  \n", None, None),
    ],
)
def test_trace_beyond_message(message: str | None, trace: str | None,
                              failure_type: str | None, rest: str | None) -> None:
    assert trace_beyond_message(message, trace, failure_type) == rest
