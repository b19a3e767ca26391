"""The JUnit plugin's test report of a build (`{build}/testReport/api/json`) as Herald's model.

The plugin (https://plugins.jenkins.io/junit) parses the files a build's `junit` step names
and serves `{failCount, passCount, skipCount, duration, suites: [{name, duration,
enclosingBlockNames, cases: [{className, name, status, duration, errorDetails,
errorStackTrace, skippedMessage, stdout, stderr}]}]}`. A case's `status` is one of
`PASSED`, `FIXED` (passed, failed in the build before), `SKIPPED`, `FAILED` and
`REGRESSION` (failed, passed in the build before); the plugin folds JUnit `<error>` into
`FAILED`. Matrix and Maven jobs serve an aggregate instead (`childReports`), which this
module does not read: it says so as an unreadable input rather than report no tests.

What merging could hide, and what keeps it from hiding it:

- a Pipeline's parallel branches often run the same tests (same suite and case names);
  each suite carries the stage and branch names that enclose the `junit` step that
  recorded it (`enclosingBlockNames`, innermost first), and they prefix the suite's name,
  so the same test in two stages is two cases, each counted;
- the plugin's own totals are compared with the cases read: a difference (a report cut by
  a proxy, a field the plugin stopped exporting) becomes a `ParseError` naming both counts,
  so the report is never a clean pass while Jenkins counted failures.

Pure: no I/O, so it is tested with documented payloads alone.
"""

from __future__ import annotations

from typing import Any, Final

from bot.results.compact import CaseList
from bot.results.model import (
    Origin,
    ParseError,
    Status,
    Suite,
    TestCase,
    TestRun,
    first_line,
    present_text,
    seconds_of,
    truncate,
)

STATUSES: Final[dict[str, Status]] = {
    "PASSED": Status.PASSED,
    "FIXED": Status.PASSED,
    "SKIPPED": Status.SKIPPED,
    "FAILED": Status.FAILED,
    "REGRESSION": Status.FAILED,
}
#: What `tree=` asks of the report: everything the model keeps, nothing it does not.
TREE: Final = (
    "failCount,passCount,skipCount,"
    "suites[name,duration,enclosingBlockNames,"
    "cases[className,name,status,duration,errorDetails,errorStackTrace,skippedMessage,"
    "stdout,stderr]],"
    "childReports[child[url]]"
)
SOURCE: Final = "Jenkins test report"


def stage_label(suite: dict[str, Any]) -> str:
    """`Tests / unit (linux)` from `enclosingBlockNames` (innermost first), or ''."""
    blocks = suite.get("enclosingBlockNames")
    if not isinstance(blocks, list):
        return ""
    names = [str(b) for b in blocks if isinstance(b, str) and b.strip()]
    return " / ".join(reversed(names))


def case_from(data: dict[str, Any], suite: str, origin: Origin) -> TestCase:
    # An unknown status is an error, never a pass: a new plugin word must not hide a failure.
    status = STATUSES.get(str(data.get("status") or "").upper(), Status.ERROR)
    details = present_text(data.get("errorDetails"))
    trace = present_text(data.get("errorStackTrace"))
    failed = status.is_failure
    message = None
    if failed:
        message = first_line(details) or first_line(trace) or (
            None if status is Status.FAILED else f"Jenkins status {data.get('status')!r}"
        )
    elif status is Status.SKIPPED:
        message = first_line(present_text(data.get("skippedMessage")))
    return TestCase(
        name=str(data.get("name") or "(unnamed test)"),
        classname=str(data.get("className") or ""),
        suite=suite,
        status=status,
        duration=seconds_of(data.get("duration")),
        message=message,
        stack_trace=truncate(trace) if failed else None,
        stdout=truncate(present_text(data.get("stdout"))),
        stderr=truncate(present_text(data.get("stderr"))),
        source=SOURCE,
        origin=origin,
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def to_test_run(report: dict[str, Any], *, run_id: str, url: str | None = None) -> TestRun:
    """One build's report; `url` (the report's page) is every case's origin link."""
    run = TestRun(id=run_id, url=url)
    if report.get("childReports") and not report.get("suites"):
        run.errors.append(ParseError(
            source=SOURCE,
            reason="an aggregated report (matrix or Maven job) is not read: archive the "
            "report files as artifacts to have them counted",
        ))
        return run
    suites = report.get("suites")
    if not isinstance(suites, list):
        return run
    for entry in suites:
        if not isinstance(entry, dict):
            continue
        label = stage_label(entry)
        base = str(entry.get("name") or "tests")
        name = f"{label} / {base}" if label else base
        origin = Origin(label or SOURCE, url=url)
        cases = entry.get("cases")
        run.suites.append(Suite(
            name=name,
            cases=CaseList(
                case_from(c, name, origin) for c in cases if isinstance(c, dict)
            ) if isinstance(cases, list) else CaseList(),
            duration=seconds_of(entry["duration"])
            if entry.get("duration") is not None else None,
            source=SOURCE,
        ))
    _check_counts(report, run)
    return run


def _check_counts(report: dict[str, Any], run: TestRun) -> None:
    expected_failed = _count(report.get("failCount"))
    if expected_failed is None:
        return
    totals = run.totals()
    read_failed = totals.failed + totals.errors
    if read_failed != expected_failed:
        run.errors.append(ParseError(
            source=SOURCE,
            reason=f"Jenkins counts {expected_failed} failed tests, Herald read "
            f"{read_failed}",
        ))
