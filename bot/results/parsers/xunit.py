"""xUnit.net v2 XML: `<assemblies>` > `<assembly>` > `<collection>` > `<test>`.

Format: https://xunit.net/docs/format-xml-v2. A test's `result` is Pass, Fail, Skip or
NotRun; failures carry `exception-type` and `<message>`/`<stack-trace>` children. Errors
outside any test (an assembly or class cleanup that threw, listed under `<errors>`) fail the
run in xUnit's own runner, so each becomes an ERROR case named after what failed.
"""

from __future__ import annotations

from lxml import etree

from bot.results.model import Status, Suite, TestCase

from . import _values
from ._base import KEEP_OUTPUT_FOR_PASSED, FormatParser, discard

_RESULTS = {
    "Pass": Status.PASSED,
    "Fail": Status.FAILED,
    "Skip": Status.SKIPPED,
    "NotRun": Status.SKIPPED,
}


class XunitParser(FormatParser):
    TAGS = ("test", "collection", "error")
    EVENTS = ("end",)

    def handle(self, event: str, element: etree._Element) -> None:
        tag = element.tag
        if tag == "test":
            self._test(element)
        elif tag == "error":
            self._error(element)
        else:
            discard(element)

    def _suite_for(self, element: etree._Element) -> Suite:
        parent = element.getparent()
        if parent is None:
            return self.suite_named("")
        if parent.tag == "collection":
            return self.suite_named(parent.get("name") or "")
        return self.suite_named(_values.basename(parent.get("name") or ""))

    def _failure(self, element: etree._Element) -> tuple[str | None, str | None, str | None]:
        message = stack_trace = None
        for part in element:
            if part.tag == "message":
                message = self.text(part)
            elif part.tag == "stack-trace":
                stack_trace = self.text(part)
        return message, element.get("exception-type") or None, stack_trace

    def _test(self, element: etree._Element) -> None:
        get = element.get
        result = get("result") or ""
        status = _RESULTS.get(result, Status.ERROR)
        message = failure_type = stack_trace = stdout = None
        for child in element:
            tag = child.tag
            if tag == "failure":
                message, failure_type, stack_trace = self._failure(child)
            elif tag == "reason":
                message = self.text(child)
            elif tag == "output" and (KEEP_OUTPUT_FOR_PASSED or status.is_failure):
                stdout = self.text(child)
        if status is Status.ERROR and result not in _RESULTS:
            message = message or f"unknown xUnit.net result {result!r}"
        file, line = _values.dotnet_location(stack_trace)
        suite = self._suite_for(element)
        suite.cases.append(
            TestCase(
                name=get("name") or get("method") or "",
                classname=self.shared(get("type") or ""),
                suite=suite.name,
                status=status,
                duration=_values.seconds(get("time")),
                file=file,
                line=line,
                message=message,
                failure_type=failure_type,
                stack_trace=stack_trace,
                stdout=stdout,
                source=self.source,
            )
        )
        discard(element)

    def _error(self, element: etree._Element) -> None:
        errors = element.getparent()
        assembly = errors.getparent() if errors is not None else None
        if errors is None or errors.tag != "errors":
            return
        kind = element.get("type") or "error"
        message = failure_type = stack_trace = None
        for child in element:
            if child.tag == "failure":
                message, failure_type, stack_trace = self._failure(child)
        assembly_name = assembly.get("name") or "" if assembly is not None else ""
        suite = self.suite_named(_values.basename(assembly_name))
        suite.cases.append(
            TestCase(
                name=element.get("name") or kind,
                classname=self.shared(kind),
                suite=suite.name,
                status=Status.ERROR,
                message=message,
                failure_type=failure_type,
                stack_trace=stack_trace,
                source=self.source,
            )
        )
        discard(element)
