"""Bitbucket Pipelines' test reports (the JUnit files a step wrote, parsed by Pipelines) as
Herald's model.

`GET …/pipelines/{pipeline}/steps/{step}/test_reports/test_cases` lists a step's cases and
`…/test_cases/{case}/test_case_reasons` a failed case's output
(https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pipelines/). The API
description names these endpoints but not the fields of their answers, so this reads them
leniently: a case's name from `name` or the last part of `fully_qualified_name`, its class
from `package_name` or `class_name`, its duration as seconds or an ISO 8601 duration
(`PT1.5S`), a reason's text from `message`, `output` or `stack_trace`.

What a lenient reading could hide, and how it does not:
- an unknown status word is an error, never a pass;
- two steps with cases of the same name (a parallel split, a matrix) stay apart: each
  step is its own origin and prefixes its suites;
- two cases of one name in one step (parameterised tests) are two cases, both counted.

Pure: no I/O, so it is tested with payloads alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from bot.results.compact import CaseList
from bot.results.model import (
    Origin,
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
    "SUCCESSFUL": Status.PASSED,
    "SUCCESS": Status.PASSED,
    "PASSED": Status.PASSED,
    "FAILED": Status.FAILED,
    "FAILURE": Status.FAILED,
    "ERROR": Status.ERROR,
    "SKIPPED": Status.SKIPPED,
    "IGNORED": Status.SKIPPED,
    "NOT_RUN": Status.SKIPPED,
}
_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def duration_of(value: Any) -> float:
    """Seconds from a number or an ISO 8601 duration; 0 when neither."""
    if isinstance(value, str):
        match = _ISO_DURATION.match(value.strip().upper())
        if match and value.strip().upper() != "P":
            parts = {k: float(v) for k, v in match.groupdict().items() if v}
            return (parts.get("d", 0.0) * 86400 + parts.get("h", 0.0) * 3600
                    + parts.get("m", 0.0) * 60 + parts.get("s", 0.0))
    return seconds_of(value)


def status_of(case: Mapping[str, Any]) -> Status:
    word = str(case.get("status") or case.get("result") or "").strip().upper()
    return STATUSES.get(word, Status.ERROR)


def failed(case: Mapping[str, Any]) -> bool:
    return status_of(case).is_failure


def _name(case: Mapping[str, Any]) -> str:
    name = present_text(case.get("name"))
    if name is None:
        qualified = present_text(case.get("fully_qualified_name")) or ""
        name = qualified.rsplit(".", 1)[-1] if qualified else None
    return name or "(unnamed test)"


def _classname(case: Mapping[str, Any]) -> str:
    for key in ("package_name", "class_name", "classname"):
        value = present_text(case.get(key))
        if value:
            return value
    qualified = present_text(case.get("fully_qualified_name"))
    name = present_text(case.get("name"))
    if qualified and name and qualified.endswith("." + name):
        return qualified[: -len(name) - 1]
    return ""


def reason_text(reasons: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(message, whole output) of a failed case's reasons."""
    messages: list[str] = []
    outputs: list[str] = []
    for reason in reasons:
        message = present_text(reason.get("message"))
        if message:
            messages.append(message)
        for key in ("output", "stack_trace", "description"):
            text = present_text(reason.get(key))
            if text:
                outputs.append(text)
    whole = "\n".join([*messages, *outputs]) or None
    return first_line(messages[0] if messages else whole), whole


def step_run(
    step: str,
    cases: Iterable[Mapping[str, Any]],
    reasons: Mapping[str, list[dict[str, Any]]],
    *,
    run_id: str,
    step_url: str | None = None,
) -> TestRun:
    """One step's cases as a run: suites `<step> / <class>` (or `<step>`), each case's
    origin the step. `reasons` maps a case's uuid to its reasons."""
    source = f"Bitbucket test report of step {step}"
    origin = Origin(step, url=step_url)
    suites: dict[str, Suite] = {}
    for case in cases:
        classname = _classname(case)
        suite_name = f"{step} / {classname}" if classname else step
        suite = suites.get(suite_name)
        if suite is None:
            suite = suites[suite_name] = Suite(name=suite_name, cases=CaseList(),
                                                 source=source)
        status = status_of(case)
        message, output = (None, None)
        if status.is_failure:
            message, output = reason_text(reasons.get(str(case.get("uuid")), []))
        suite.cases.append(
            TestCase(
                name=_name(case),
                classname=classname,
                suite=suite_name,
                status=status,
                duration=duration_of(case.get("duration")),
                message=message,
                stack_trace=truncate(output),
                source=source,
                origin=origin,
            )
        )
    return TestRun(id=run_id, suites=list(suites.values()))
