"""One-line summaries shared by every report and forge: titles, status words, counts;
and which links a report may make (`safe_url`).

Errors (a test that could not run: setup failure, crash, JUnit `<error>`) are counted
separately from failures (an assertion that did not hold), as pytest and JUnit do, because
they usually mean different work for the reader: "3 failed, 1 error, 1,200 passed in 2m 5s".
Both make a run fail. Flaky tests are counted among the passed and named after them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bot.results.model import RunStatus, TestRun, Totals, format_count, format_duration

BRAND = "Herald"

#: The word each run status shows as ("Status: FAILED"); words, not emoji, so the status
#: reads the same in a terminal, a screen reader and every forge.
STATUS_WORDS: dict[RunStatus, str] = {
    RunStatus.PASSED: "PASSED",
    RunStatus.FAILED: "FAILED",
    RunStatus.ERROR: "ERROR",
    RunStatus.CANCELLED: "CANCELLED",
    RunStatus.RUNNING: "RUNNING",
    RunStatus.NO_TESTS: "NO TESTS",
}


def status_word(status: RunStatus) -> str:
    return STATUS_WORDS[status]


def short_duration(seconds: float) -> str:
    """`2m 5s`, `1h 2m`, `42s`, `5.7s`: the rounded duration a title needs."""
    seconds = float(seconds) if math.isfinite(seconds) else 0.0
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def safe_url(url: str | None) -> str | None:
    """The URL when it is an absolute http(s) URL, else None (the text shows unlinked):
    escaping alone does not stop a `javascript:` link."""
    if not url:
        return None
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return url
    return None


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count:,} {singular if count == 1 else plural}"


def title(totals: Totals) -> str:
    """A run in one line, for check-run titles, commit statuses and the CLI.

    "3 failed, 1 error, 1,200 passed, 2 skipped in 2m 5s"; "All 1,204 tests passed in
    2m 5s"; "No tests found". Zero counts are left out, except "0 passed" when nothing
    passed, so a title never reads as a success by omission.
    """
    if totals.total == 0:
        return "No tests found"
    took = f" in {short_duration(totals.duration)}"
    flaky = f" ({totals.flaky:,} flaky)" if totals.flaky else ""
    if totals.passed == totals.total:
        if totals.total == 1:
            return f"1 test passed{flaky}{took}"
        return f"All {totals.total:,} tests passed{flaky}{took}"
    parts = []
    if totals.failed:
        parts.append(f"{totals.failed:,} failed")
    if totals.errors:
        parts.append(_plural(totals.errors, "error", "errors"))
    parts.append(f"{totals.passed:,} passed{flaky}")
    if totals.skipped:
        parts.append(f"{totals.skipped:,} skipped")
    return ", ".join(parts) + took


def count_lines(totals: Totals) -> list[str]:
    """The summary block: "Total: 42", "Passed: 40 (95.2%)", ..., "Duration: 2m 5.70s"."""
    return [
        f"Total: {totals.total:,}",
        format_count("Passed", totals.passed, totals.total),
        format_count("Failed", totals.failed, totals.total),
        format_count("Errors", totals.errors, totals.total),
        format_count("Skipped", totals.skipped, totals.total),
        format_count("Flaky", totals.flaky, totals.total),
        f"Duration: {format_duration(totals.duration)}",
    ]


def generated_at(now: datetime | None = None) -> str:
    """`2026-11-25 10:00:00 UTC`; a naive `now` is taken to be UTC already."""
    moment = now or datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def failure_summary(message: str | None, failure_type: str | None, *, error: bool) -> str:
    """The first line of a failure's message, prefixed by its type when the message
    doesn't already say it; what the failures table shows in its Error column."""
    first = next((line.strip() for line in (message or "").splitlines() if line.strip()), "")
    kind = (failure_type or "").strip()
    if kind and first and kind not in first:
        return f"{kind}: {first}"
    if first:
        return first
    if kind:
        return kind
    return "error (no message)" if error else "failed (no message)"


def metric_value(value: float | str) -> str:
    """`1,234`, `0.0421`, `12.5`: a metric's value as the metrics tables show it."""
    if isinstance(value, str):
        return value
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.6g}"


def run_title(run: TestRun) -> str:
    """`title` of the run's totals, saying too when inputs could not be read: a run with
    an unreadable report is never shown as a plain success."""
    text = title(run.totals())
    if run.errors:
        text += f"; {_plural(len(run.errors), 'input', 'inputs')} could not be read"
    return text
