"""One-line summaries shared by every report and forge: titles, status words, counts;
and which links a report may make (`safe_url`).

Errors (a test that could not run: setup failure, crash, JUnit `<error>`) are counted
separately from failures (an assertion that did not hold), as pytest and JUnit do, because
they usually mean different work for the reader: "3 failed, 1 error, 1,200 passed in 2m 5s".
Both make a run fail. Flaky tests are counted among the passed and named after them.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Final
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


def run_status_word(run: TestRun) -> str:
    """The report's status word. Passing tests beside an input that could not be read are
    INCOMPLETE, never PASSED: the unread file may have held the failure."""
    status = run.overall_status()
    if status in (RunStatus.PASSED, RunStatus.NO_TESTS) and run.errors:
        return "INCOMPLETE"
    return status_word(status)


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


def plural(count: int, one: str, many: str) -> str:
    """`1 test`, `2 tests`, `1,000 tests`."""
    return f"{count:,} {one if count == 1 else many}"


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
        parts.append(plural(totals.errors, "error", "errors"))
    parts.append(f"{totals.passed:,} passed{flaky}")
    if totals.skipped:
        parts.append(f"{totals.skipped:,} skipped")
    return ", ".join(parts) + took


def scope(totals: Totals) -> str:
    """What the counts are out of: "1,204 tests", or "1,204 executions of 1,100 tests" when
    some tests ran more than once (a matrix, a parameterised test); the counts are always
    executions, so the headline names them as such whenever the two differ."""
    if totals.tests and totals.tests != totals.total:
        return (f"{plural(totals.total, 'execution', 'executions')} of "
                f"{plural(totals.tests, 'test', 'tests')}")
    return plural(totals.total, "test", "tests")


def headline(totals: Totals) -> str:
    """What a reviewer reads first: what failed, and out of how many.

    "3 failed, 1 error of 1,204 tests"; "All 42 tests passed"; "8 passed, 2 skipped of 10
    tests"; "No tests found". Zero counts are left out, but a run without failures that did
    not all pass says "0 passed" rather than reading as a success by omission.
    """
    if totals.total == 0:
        return "No tests found"
    out_of = scope(totals)
    if totals.failures:
        parts = []
        if totals.failed:
            parts.append(f"{totals.failed:,} failed")
        if totals.errors:
            parts.append(plural(totals.errors, "error", "errors"))
        return f"{', '.join(parts)} of {out_of}"
    if totals.passed == totals.total:
        return "1 test passed" if out_of == "1 test" else f"All {out_of} passed"
    return f"{totals.passed:,} passed, {totals.skipped:,} skipped of {out_of}"


def count_lines(totals: Totals) -> list[str]:
    """The counts under the headline, zeros left out: "Passed: 40 (95.2%), 1 flaky",
    "Skipped: 2 (4.8%)", "Duration: 2m 5.70s". Failures and errors are the headline's."""
    lines = []
    if totals.passed:
        flaky = f", {totals.flaky:,} flaky" if totals.flaky else ""
        lines.append(format_count("Passed", totals.passed, totals.total) + flaky)
    if totals.skipped:
        lines.append(format_count("Skipped", totals.skipped, totals.total))
    if totals.total:
        lines.append(f"Duration: {format_duration(totals.duration)}")
    return lines


def files_unread(count: int) -> str:
    """ "1 file could not be read", "3 files could not be read". """
    return f"{plural(count, 'file', 'files')} could not be read"


def execution_label(index: int, count: int) -> str:
    """ "(execution 2 of 3)": tells apart same-named executions of one test."""
    return f"(execution {index:,} of {count:,})"


def _is_type(prefix: str, failure_type: str | None) -> bool:
    """Whether what precedes a message on a trace line is nothing but the failure's type."""
    prefix = prefix.strip().rstrip(":").strip()
    kind = (failure_type or "").strip()
    if not prefix:
        return True
    return bool(kind) and (
        prefix == kind or prefix.endswith("." + kind) or kind.endswith("." + prefix)
    )


def trace_beyond_message(
    message: str | None, trace: str | None, failure_type: str | None
) -> str | None:
    """The stack trace without what the message already says, or None when it says nothing
    more. Java and .NET traces start with "Type: message", Python's end with it; a report
    showing the message would otherwise print it twice. Only whole lines holding the
    message (and at most the failure's type before it) are taken off, so nothing else the
    trace says is lost."""
    if not trace or not trace.strip():
        return None
    if not message or not message.strip():
        return trace
    said = message.strip()
    body = trace.strip("\r\n")
    if body.strip() == said:
        return None
    # At the start: "Type: message" then the frames.
    at = body.find(said)
    if 0 <= at and "\n" not in body[:at] and _is_type(body[:at], failure_type):
        rest = body[at + len(said):]
        if not rest or rest[0] in "\r\n":
            return rest.lstrip("\r\n") or None
    # At the end: the frames, then "Type: message".
    if body.endswith(said):
        head = body[: len(body) - len(said)]
        cut = head.rfind("\n")
        if cut >= 0 and _is_type(head[cut + 1:], failure_type):
            return head[:cut].rstrip("\r\n") or None
    return trace


#: The stamp `generated_at` writes, as it stands in a report's footer.
GENERATED_STAMP: Final = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC")


def same_but_for_the_stamp(posted: str, body: str) -> bool:
    """Whether two report bodies say the same, whenever each was generated: a report
    edited only because a second passed would be an edit saying nothing."""
    return posted == body or GENERATED_STAMP.sub("", posted) == GENERATED_STAMP.sub("", body)


def generated_at(now: datetime | None = None) -> str:
    """`2026-11-25 10:00:00 UTC`; a naive `now` is taken to be UTC already."""
    moment = now or datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def first_line(text: str | None) -> str:
    """The first non-blank line of `text`, stripped; empty when there is none."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


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
        text += f"; {plural(len(run.errors), 'input', 'inputs')} could not be read"
    return text
