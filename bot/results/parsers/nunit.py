"""NUnit 3 result XML: `<test-run>` > `<test-suite>`... > `<test-case>`.

Format: https://docs.nunit.org/articles/nunit/technical-notes/usage/Test-Result-XML-Format.html
A case's `result` is Passed, Failed, Skipped, Inconclusive or Warning; `label` refines it
(Failed+Error is an exception, Failed+Invalid a test NUnit could not run, Skipped+Ignored an
[Ignore]). Cases are grouped by their fixture: the nearest enclosing suite that is not a
parameterized or generic method.
"""

from __future__ import annotations

from lxml import etree

from bot.results.model import Status, Suite, TestCase

from . import _values
from ._base import KEEP_OUTPUT_FOR_PASSED, FormatParser, discard

_METHOD_SUITES = frozenset({"ParameterizedMethod", "Theory", "GenericMethod"})
_ERROR_LABELS = frozenset({"Error", "Invalid", "Cancelled"})
_RESULTS = {
    "Passed": Status.PASSED,
    "Warning": Status.PASSED,  # passed with a warning: not a failure
    "Failed": Status.FAILED,
    "Skipped": Status.SKIPPED,
    "Inconclusive": Status.SKIPPED,
}


class NUnitParser(FormatParser):
    TAGS = ("test-suite", "test-case")
    EVENTS = ("start", "end")

    def __init__(self, source: str, text_limit: int) -> None:
        super().__init__(source, text_limit)
        self._stack: list[tuple[str, str]] = []  # (type, full name) of open suites

    def handle(self, event: str, element: etree._Element) -> None:
        if element.tag == "test-suite":
            if event == "start":
                name = element.get("fullname") or element.get("name") or ""
                self._stack.append((element.get("type") or "", name))
            else:
                if self._stack:
                    self._stack.pop()
                discard(element)
        elif event == "end":
            self._case(element)

    def _fixture(self) -> Suite:
        name = ""
        for kind, full_name in reversed(self._stack):
            if kind not in _METHOD_SUITES:
                name = full_name
                break
        return self.suite_named(name)

    def _case(self, element: etree._Element) -> None:
        get = element.get
        result = get("result") or ""
        status = _RESULTS.get(result, Status.ERROR)
        if status is Status.FAILED and get("label") in _ERROR_LABELS:
            status = Status.ERROR
        message, stack_trace, stdout = details(self, element, status)
        if status is Status.ERROR and result not in _RESULTS:
            message = message or f"unknown NUnit result {result!r}"
        file, line = _values.dotnet_location(stack_trace)
        suite = self._fixture()
        suite.cases.append(
            TestCase(
                name=get("name") or get("fullname") or "",
                classname=self.shared(get("classname") or ""),
                suite=suite.name,
                status=status,
                duration=_values.seconds(get("duration")),
                file=file,
                line=line,
                message=message,
                failure_type=get("label") if status.is_failure else None,
                stack_trace=stack_trace,
                stdout=stdout,
                source=self.source,
            )
        )
        discard(element)


def details(
    parser: FormatParser, element: etree._Element, status: Status
) -> tuple[str | None, str | None, str | None]:
    """Message, stack trace and output of an NUnit 2 or 3 `<test-case>` (or `<test-suite>`):
    `<failure><message/><stack-trace/></failure>`, `<reason><message/></reason>` for tests
    that did not run, and (NUnit 3) `<output>`, kept only for failures."""
    message = stack_trace = stdout = None
    for child in element:
        tag = child.tag
        if tag == "failure":
            for part in child:
                if part.tag == "message":
                    message = parser.text(part)
                elif part.tag == "stack-trace":
                    stack_trace = parser.text(part)
        elif tag == "reason":
            for part in child:
                if part.tag == "message":
                    message = parser.text(part)
        elif tag == "output" and (KEEP_OUTPUT_FOR_PASSED or status.is_failure):
            stdout = parser.text(child)
    return message, stack_trace, stdout
