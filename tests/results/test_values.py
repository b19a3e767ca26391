"""The small readers behind the parsers: .NET timespans, stack frames, ANSI, durations."""

from __future__ import annotations

import pytest

from bot.results.parsers import _values


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00:00:00.0034210", 0.003421),
        ("00:01:02.5", 62.5),
        ("1.02:03:04.5", 93784.5),
        ("00:00:00", 0.0),
        ("", 0.0),
        ("garbage", 0.0),
        ("1.25", 1.25),  # some writers put plain seconds
    ],
)
def test_timespan(raw: str, expected: float) -> None:
    assert _values.timespan(raw) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("trace", "expected"),
    [
        ("   at A.B.C() in /src/T/CTests.cs:line 21\n   at D.E()", ("/src/T/CTests.cs", 21)),
        ("   at A.B() in C:\\src\\x y\\T.cs:line 7", ("C:\\src\\x y\\T.cs", 7)),
        ("   at A.B()\n   at C.D()", (None, None)),
        (None, (None, None)),
    ],
)
def test_dotnet_location(trace: str | None, expected: tuple[str | None, int | None]) -> None:
    assert _values.dotnet_location(trace) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1.5", 1.5), ("", None), (None, None), ("0", 0.0), ("0.000", 0.0), ("NaN", None),
     ("-1", None), ("x", None)],
)
def test_optional_seconds_tells_zero_from_nothing(raw: str | None, expected: float | None) -> None:
    assert _values.optional_seconds(raw) == expected


def test_clean_drops_blank_text() -> None:
    assert _values.clean("  \n ", 100) is None
    assert _values.clean("\x1b[0m", 100) == ""
