"""TeamCity's own record of a build's tests and problems as Herald's model.

TeamCity imports test results itself (its test runners, XML report processing) and serves
them as `testOccurrences` (REST `/app/rest/testOccurrences?locator=build:(id:N)`), one
page at a time; the client streams the pages into `Occurrences`, which keeps each suite's
cases in a `CaseList`, so memory stays flat in the number of tests.

An occurrence has `status` SUCCESS, FAILURE or UNKNOWN, `ignored` (with `ignoreDetails`),
`muted`, `currentlyInvestigated`, `details` (the failure's message and stack trace in one
text), `duration` (milliseconds), `name` (`suite: package.Class.method`, the
`test.parsedTestName` parts when asked for) and, for a test run several times in one
build, `invocations` (each run, with its `runOrder`).

What mapping could hide, and what keeps it from hiding it:

- a **muted** failure does not fail TeamCity's build, but it still failed: it stays a
  failure here, its message saying it is muted (and investigated, when someone is), so a
  reviewer sees it; the check may then fail while TeamCity's build passed;
- an UNKNOWN status that is not `ignored` is an error, never a pass, and a status word
  TeamCity never documented is one too;
- a test **run several times** in one build (a retry feature, a test run in two steps)
  is one occurrence with `invocations`: the occurrence's own status is TeamCity's verdict
  and the case's outcome; every failed invocation before the last becomes an attempt, so a
  test that failed and then passed reads as flaky, not as a clean pass;
- two occurrences of one name (a parameterised test whose names TeamCity did not tell
  apart, two build steps) are two cases, each counted: nothing folds;
- a build that failed on a **problem** with no failing test (a compilation error, an exit
  code, a failure condition) shows that problem as an error of its own; TeamCity's
  "tests failed" problem is not repeated, since the tests themselves are counted;
- a build that TeamCity marked failed with nothing read failing gets an error naming
  TeamCity's status text, and a canceled build says its results are partial;
- the number of occurrences read is compared with the build's own count: a difference
  (a page lost to a proxy, a locator that stopped matching) is named as unreadable, so
  the report is never a clean pass while TeamCity counted more.

Pure: no I/O, so it is tested with documented payloads alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from bot.results.compact import CaseList
from bot.results.model import (
    Attempt,
    Origin,
    ParseError,
    Status,
    Suite,
    TestCase,
    TestRun,
    first_line,
    present_text,
    truncate,
)

SOURCE: Final = "TeamCity tests"
PROBLEMS: Final = "TeamCity build problems"
#: The problem TeamCity adds when tests failed: the tests say it already.
FAILED_TESTS_PROBLEM: Final = "TC_FAILED_TESTS"
#: What `fields=` asks of each page of occurrences: everything the model keeps.
OCCURRENCE_FIELDS: Final = (
    "count,nextHref,testOccurrence(id,name,status,ignored,ignoreDetails,muted,"
    "currentlyInvestigated,duration,details,runOrder,"
    "test(parsedTestName(testSuite,testPackage,testClass,testNameWithParameters)),"
    "invocations(testOccurrence(status,ignored,duration,details,runOrder)))"
)
PROBLEM_FIELDS: Final = (
    "count,nextHref,problemOccurrence(id,type,identity,details,muted,currentlyInvestigated)"
)
STATUSES: Final[dict[str, Status]] = {"SUCCESS": Status.PASSED, "FAILURE": Status.FAILED}


def _ms(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value) / 1000.0
    return 0.0


def split_name(occurrence: Mapping[str, Any]) -> tuple[str, str, str]:
    """(suite, classname, name) of a test: TeamCity's parsed parts when it sent them, else
    its full name `suite: package.Class.method(params)` read the same way."""
    parsed = occurrence.get("test", {}).get("parsedTestName") if isinstance(
        occurrence.get("test"), dict) else None
    full = str(occurrence.get("name") or "(unnamed test)")
    if isinstance(parsed, dict) and parsed.get("testNameWithParameters"):
        classname = ".".join(
            str(parsed[k]) for k in ("testPackage", "testClass") if parsed.get(k)
        )
        return str(parsed.get("testSuite") or ""), classname, str(parsed["testNameWithParameters"])
    suite, colon, rest = full.partition(": ")
    if not colon:
        suite, rest = "", full
    # Parameters may hold dots (`adds(1.5)`): the class ends before them.
    head, paren, params = rest.partition("(")
    classname, dot, method = head.rpartition(".")
    if not dot:
        return suite, "", rest
    return suite, classname, method + paren + params


def _status(occurrence: Mapping[str, Any]) -> Status:
    if occurrence.get("ignored") is True:
        return Status.SKIPPED
    # UNKNOWN (not ignored) or a new word: an error, never a pass.
    return STATUSES.get(str(occurrence.get("status") or "").upper(), Status.ERROR)


def _notes(occurrence: Mapping[str, Any]) -> str:
    said = []
    if occurrence.get("muted") is True:
        said.append("muted in TeamCity")
    if occurrence.get("currentlyInvestigated") is True:
        said.append("under investigation")
    return f" ({', '.join(said)})" if said else ""


def _invocations(occurrence: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    nested = occurrence.get("invocations")
    found = nested.get("testOccurrence") if isinstance(nested, dict) else None
    if not isinstance(found, list):
        return []
    runs = [i for i in found if isinstance(i, dict)]
    return sorted(runs, key=_run_order)


def _run_order(invocation: Mapping[str, Any]) -> int:
    order = invocation.get("runOrder")
    return order if isinstance(order, int) else 0


def case_from(occurrence: Mapping[str, Any], origin: Origin) -> TestCase:
    suite, classname, name = split_name(occurrence)
    status = _status(occurrence)
    details = present_text(occurrence.get("details"))
    runs = _invocations(occurrence)
    earlier = runs[:-1] if runs and _status(runs[-1]) is status else runs
    attempts = [
        Attempt(status=_status(run), duration=_ms(run.get("duration")),
                message=first_line(present_text(run.get("details"))),
                stack_trace=truncate(present_text(run.get("details"))))
        for run in earlier if _status(run).is_failure
    ]
    if status.is_failure and details is None:
        details = next((present_text(r.get("details")) for r in reversed(runs)
                        if _status(r).is_failure and present_text(r.get("details"))), None)
    message = None
    if status.is_failure:
        message = (first_line(details) or (
            "failed" if status is Status.FAILED
            else f"TeamCity status {occurrence.get('status')!r}")) + _notes(occurrence)
    elif status is Status.SKIPPED:
        message = first_line(present_text(occurrence.get("ignoreDetails")))
    return TestCase(
        name=name,
        classname=classname,
        suite=suite or SOURCE,
        status=status,
        duration=_ms(occurrence.get("duration")),
        message=message,
        stack_trace=truncate(details) if status.is_failure else None,
        attempts=attempts,
        source=SOURCE,
        origin=origin,
    )


class Occurrences:
    """A build's test occurrences, added page by page, as one `TestRun`."""

    def __init__(self, run_id: str, origin: Origin) -> None:
        self.origin = origin
        self.run = TestRun(id=run_id, url=origin.url)
        self._suites: dict[str, Suite] = {}
        self.read = 0

    def add_page(self, occurrences: Iterable[Any]) -> None:
        for occurrence in occurrences:
            if not isinstance(occurrence, dict):
                continue
            case = case_from(occurrence, self.origin)
            suite = self._suites.get(case.suite)
            if suite is None:
                suite = self._suites[case.suite] = Suite(
                    name=case.suite, cases=CaseList(), source=SOURCE)
                self.run.suites.append(suite)
            suite.cases.append(case)
            self.read += 1

    def check_count(self, expected: int | None) -> None:
        """Name a difference between TeamCity's count and the occurrences read."""
        if expected is not None and expected != self.read:
            self.run.errors.append(ParseError(
                source=SOURCE,
                reason=f"TeamCity counts {expected} tests, Herald read {self.read}",
            ))


def add_problems(run: TestRun, problems: Iterable[Any], origin: Origin) -> int:
    """Each build problem other than "tests failed" as an error case; returns how many."""
    cases = CaseList()
    for problem in problems:
        if not isinstance(problem, dict) or problem.get("type") == FAILED_TESTS_PROBLEM:
            continue
        details = present_text(problem.get("details"))
        kind = str(problem.get("type") or "problem")
        identity = str(problem.get("identity") or kind)
        cases.append(TestCase(
            name=identity,
            classname=kind,
            suite=PROBLEMS,
            status=Status.ERROR,
            message=(first_line(details) or kind) + _notes(problem),
            stack_trace=truncate(details),
            source=PROBLEMS,
            origin=origin,
        ))
    if len(cases):
        run.suites.append(Suite(name=PROBLEMS, cases=cases, source=PROBLEMS))
    return len(cases)


def add_build_verdict(run: TestRun, build: Mapping[str, Any], origin: Origin) -> None:
    """What TeamCity said of the build as a whole, when the tests and problems do not say
    it: a failed build with nothing failing, a canceled one."""
    status = str(build.get("status") or "").upper()
    text = present_text(build.get("statusText")) or status.lower() or "no status"
    if build.get("canceledInfo") or (build.get("state") == "finished" and status == "UNKNOWN"):
        run.errors.append(ParseError(
            source="TeamCity",
            reason=f"the build was canceled ({first_line(text)}): tests it did not run are "
            "not in this report",
        ))
        return
    if status == "FAILURE" and not run.totals().failures:
        run.suites.append(Suite(name=PROBLEMS, source=PROBLEMS, cases=CaseList([TestCase(
            name="build failed",
            suite=PROBLEMS,
            status=Status.ERROR,
            message=f"TeamCity marked the build failed: {first_line(text)}",
            source=PROBLEMS,
            origin=origin,
        )])))
