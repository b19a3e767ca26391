"""GitLab's pipeline test report (the JUnit files GitLab parsed itself) as Herald's model.

`GET /projects/:id/pipelines/:pipeline_id/test_report` answers
`{total_count, ..., test_suites: [{name, total_time, test_cases: [{status, name, classname,
file, execution_time, system_output, stack_trace}]}]}` with `status` one of success,
failed, skipped, error (https://docs.gitlab.com/api/pipelines/#get-a-test-report-for-a-pipeline).
For a failed case GitLab puts the `<failure>` text in `system_output`.

Pure: no I/O, so it is tested with the documented payloads alone.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    "success": Status.PASSED,
    "failed": Status.FAILED,
    "error": Status.ERROR,
    "skipped": Status.SKIPPED,
}
def case_from(
    data: dict[str, Any], suite: str, source: str, origin: Origin | None = None
) -> TestCase:
    status = STATUSES.get(str(data.get("status") or "").lower(), Status.ERROR)
    output = present_text(data.get("system_output"))
    trace = present_text(data.get("stack_trace"))
    failed = status.is_failure
    return TestCase(
        name=str(data.get("name") or "(unnamed test)"),
        classname=str(data.get("classname") or ""),
        suite=suite,
        status=status,
        duration=seconds_of(data.get("execution_time")),
        file=present_text(data.get("file")),
        message=first_line(output) if failed else None,
        stack_trace=truncate(trace or (output if failed else None)),
        stdout=None if failed else truncate(output),
        source=source,
        origin=origin,
    )


def to_test_run(
    report: dict[str, Any],
    *,
    run_id: str,
    label: str = "",
    source: str = "gitlab test report",
    job_urls: Mapping[str, str] | None = None,
) -> TestRun:
    """One pipeline's report. `label` prefixes suite names (a child pipeline's bridge name)
    so that same-named suites of parent and child stay apart; `job_urls` (job name → page)
    links each suite's cases to the job that wrote them."""
    run = TestRun(id=run_id)
    suites = report.get("test_suites")
    if not isinstance(suites, list):
        return run
    for entry in suites:
        if not isinstance(entry, dict):
            continue
        job = str(entry.get("name") or "tests")
        name = job
        if label:
            name = f"{label} / {name}"
        cases = entry.get("test_cases")
        # GitLab names each suite after the job that wrote it (parallel jobs of one name
        # share a suite): that job is where its cases came from.
        origin = Origin(name, url=(job_urls or {}).get(job))
        suite = Suite(
            name=name,
            cases=CaseList(
                case_from(c, name, source, origin) for c in cases if isinstance(c, dict)
            )
            if isinstance(cases, list)
            else CaseList(),
            duration=seconds_of(entry["total_time"])
            if entry.get("total_time") is not None
            else None,
            source=source,
        )
        run.suites.append(suite)
        problem = present_text(entry.get("suite_error"))
        if problem:
            # GitLab gives up on a suite (file over its size limit, bad XML) and says so.
            run.errors.append(ParseError(source=f"{source}: {name}", reason=problem))
    return run
