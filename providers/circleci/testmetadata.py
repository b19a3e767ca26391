"""CircleCI's stored test results of a job (`GET /project/{slug}/{job}/tests`) as Herald's model.

A job that runs `store_test_results` has CircleCI parse its JUnit files; the API serves
each test as `{result, name, classname, file, message, run_time, source}`, paged with
`next_page_token`. `result` is `success`, `failure` or `skipped`.

What reading it this way could hide, and what keeps it from hiding it:

- a job with `parallelism: N` runs N nodes, and the endpoint gives all their tests
  without a node index: the same test run on two nodes (a suite not split by
  `circleci tests split`) is two cases, each counted, never folded into one;
- an unknown `result` (a word CircleCI adds later) is an error, never a pass;
- a job that failed without a failing test among its stored results (a compile step, a
  lint, a crash before the report was written, no `store_test_results` at all) would
  read as green: it becomes one error case named after the job (`job_failure`), so the
  report counts it and names it;
- a workflow that failed with no failed job (a configuration error, an unauthorized
  context) likewise becomes one error case named after the workflow;
- results that expire while they are read (404 on a later page) are kept as read, and
  the report says the job's results were read in part (a `ParseError`), so it is never
  a clean pass.

Pure: no I/O, so it is tested with documented payloads alone.
"""

from __future__ import annotations

from typing import Any, Final

from bot.results.model import (
    Origin,
    Status,
    TestCase,
    first_line,
    present_text,
    seconds_of,
    truncate,
)

STATUSES: Final[dict[str, Status]] = {
    "success": Status.PASSED,
    "failure": Status.FAILED,
    "skipped": Status.SKIPPED,
}
SOURCE: Final = "CircleCI test results"
#: The class shown for a job or workflow that failed without a failing test.
FAILED_WITHOUT_TESTS: Final = "CircleCI"


def case_from(item: dict[str, Any], suite: str, origin: Origin) -> TestCase:
    """One item of the tests endpoint as a case of `suite` (the job's name)."""
    word = str(item.get("result") or "")
    status = STATUSES.get(word.lower(), Status.ERROR)
    text = present_text(item.get("message"))
    message = None
    if status.is_failure:
        message = first_line(text) or (
            None if status is Status.FAILED else f"CircleCI result {word!r}"
        )
    elif status is Status.SKIPPED:
        message = first_line(text)
    file = present_text(item.get("file"))
    return TestCase(
        name=str(item.get("name") or "(unnamed test)"),
        classname=str(item.get("classname") or ""),
        suite=suite,
        status=status,
        duration=seconds_of(item.get("run_time")),
        file=file,
        message=message,
        stack_trace=truncate(text) if status.is_failure else None,
        source=SOURCE,
        origin=origin,
    )


def job_failure(job: str, status: str, origin: Origin) -> TestCase:
    """The case standing for a job that failed with no failing test stored."""
    return _failed_without_tests(
        f"job {job}", job, origin,
        f"the job ended {status!r} and stored no failing test result: its steps' output "
        "on CircleCI says why",
    )


def workflow_failure(workflow: str, status: str, origin: Origin) -> TestCase:
    """The case standing for a workflow that failed with no failed job."""
    return _failed_without_tests(
        f"workflow {workflow}", workflow, origin,
        f"the workflow ended {status!r} with no failed job (a configuration or permission "
        "error): CircleCI's workflow page says why",
    )


def _failed_without_tests(name: str, suite: str, origin: Origin, message: str) -> TestCase:
    return TestCase(name=name, classname=FAILED_WITHOUT_TESTS, suite=suite,
                    status=Status.ERROR, message=message, source=SOURCE, origin=origin)
