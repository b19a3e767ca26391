"""NUnit 2 result XML: `<test-results>` > `<test-suite>`... > `<test-case>`.

Written by NUnit 2.x consoles, SpecFlow/Pickles and Unity's test runner, and read by
Jenkins' NUnit plugin. Schema: NUnit 2.6 Results.xsd. A case carries `executed`,
`result`, `success`, `time` (seconds) and `asserts`; `<failure>` holds `<message>` and
`<stack-trace>`, `<reason><message>` says why a test did not run.

`result` (NUnit 2.5+): Success passes; Failure (an assertion) fails; Error (an exception),
NotRunnable (a test NUnit could not run: bad signature, no arguments from its source) and
Cancelled (the run was stopped) are errors; Ignored, Skipped and Inconclusive are skipped.
Files from NUnit 2.4 and older have no `result`: `executed="False"` is skipped, otherwise
`success` decides between passed and failed. Any other result is an error naming it.

The case's `name` is its full name (`Ns.Fixture.Method(1,2)`): the part before the method
becomes the class, so executions of a parameterised test share a class and a name and stay
separate records. A suite that failed without a single case under it (a fixture NUnit could
not build) becomes an error case of its own, so its failure is not lost. The run's duration
is the root suite's `time`; the root's own count attributes are never read.
"""

from __future__ import annotations

import re

from lxml import etree

from bot.results.model import Status, TestCase

from . import _values
from ._base import FormatParser, discard
from .nunit import details

_RESULTS = {
    "Success": Status.PASSED,
    "Failure": Status.FAILED,
    "Error": Status.ERROR,
    "NotRunnable": Status.ERROR,
    "Cancelled": Status.ERROR,
    "Ignored": Status.SKIPPED,
    "Skipped": Status.SKIPPED,
    "Inconclusive": Status.SKIPPED,
}
#: Suites that group the executions of one test method, not a class.
_METHOD_SUITES = frozenset({"ParameterizedTest", "Theory", "GenericMethod"})
#: Suites above the classes: their names are a path or a project, not a namespace part.
_OUTER_SUITES = frozenset({"Test Project", "Assembly", "SetUpFixture"})
#: A parameterised fixture holds one TestFixture per argument set, named in full already.
_CONTAINER_SUITES = frozenset({"ParameterizedFixture", "GenericFixture"})
_FAILED_SUITE_RESULTS = frozenset({"Failure", "Error", "NotRunnable", "Cancelled"})
#: "System.InvalidOperationException : Sequence contains no elements"
_EXCEPTION = re.compile(r"([A-Za-z_][\w.+`]*(?:Exception|Error)) : ")


def _status(result: str | None, executed: str | None, success: str | None) -> Status:
    if result:
        return _RESULTS.get(result, Status.ERROR)
    if (executed or "").lower() == "false":
        return Status.SKIPPED
    return Status.FAILED if (success or "").lower() == "false" else Status.PASSED


class NUnit2Parser(FormatParser):
    TAGS = ("test-suite", "test-case")
    EVENTS = ("start", "end")

    def __init__(self, source: str, text_limit: int) -> None:
        super().__init__(source, text_limit)
        # (type, name, cases read when it opened) of each open suite.
        self._stack: list[tuple[str, str, int]] = []
        self._cases = 0

    def handle(self, event: str, element: etree._Element) -> None:
        if element.tag == "test-suite":
            if event == "start":
                kind = element.get("type") or ""
                self._stack.append((kind, element.get("name") or "", self._cases))
            else:
                self._suite_end(element)
        elif event == "end":
            self._case(element)

    @property
    def cases_read(self) -> int:
        return self._cases

    def _suite_name(self) -> str:
        """The class's path: namespaces and fixture, without assembly or method suites."""
        parts = [
            name
            for kind, name, _ in self._stack
            if kind not in _OUTER_SUITES and kind not in _METHOD_SUITES
            and kind not in _CONTAINER_SUITES and name
        ]
        return self.shared(".".join(parts))

    def _suite_end(self, element: etree._Element) -> None:
        _kind, name, cases_before = self._stack.pop() if self._stack else ("", "", 0)
        result = element.get("result")
        if self._cases == cases_before and result in _FAILED_SUITE_RESULTS:
            # Nothing under it ran, so nothing else would show this suite's failure.
            self._append(element, name, self._suite_name() or name, Status.ERROR)
        if not self._stack:
            own = _values.optional_seconds(element.get("time"))
            if own is not None:
                self.duration = (self.duration or 0.0) + own
        discard(element)

    def _case(self, element: etree._Element) -> None:
        get = element.get
        result = get("result")
        status = _status(result, get("executed"), get("success"))
        full_name = get("name") or ""
        self._append(element, full_name, self._suite_name(), status)
        discard(element)

    def _append(self, element: etree._Element, full_name: str, suite_name: str,
                status: Status) -> None:
        result = element.get("result")
        message, stack_trace, _ = details(self, element, status)
        failure_type: str | None = None
        if status is Status.ERROR:
            if result is not None and result not in _RESULTS:
                message = message or f"unknown NUnit result {result!r}"
            exception = _EXCEPTION.match(message or "")
            failure_type = exception.group(1) if exception else result
        # The class is the full name up to the method: "Ns.Fixture.Add(1.5,2)" has dots in
        # its arguments, so the split is made before the first parenthesis.
        head, paren, args = full_name.partition("(")
        classname, dot, method = head.rpartition(".")
        if not dot:
            classname, method = suite_name, head
        file, line = _values.dotnet_location(stack_trace)
        suite = self.suite_named(suite_name)
        suite.cases.append(
            TestCase(
                name=method + paren + args,
                classname=self.shared(classname),
                suite=suite.name,
                status=status,
                duration=_values.seconds(element.get("time")),
                file=file,
                line=line,
                message=message,
                failure_type=failure_type,
                stack_trace=stack_trace,
                source=self.source,
            )
        )
        self._cases += 1
