"""Visual Studio / `dotnet test --logger trx` results (.trx).

Namespace http://microsoft.com/schemas/VisualStudio/TeamTest/2010. `<Results>` holds one
`<UnitTestResult>` per execution (data-driven tests nest theirs in `<InnerResults>`); the
class of each test is only in `<TestDefinitions>`, which `dotnet test` writes *after* the
results, so cases are completed when the document ends. Durations are .NET TimeSpans
(`00:00:01.2345678`). Outcomes follow Microsoft.VisualStudio.TestTools.Common.TestOutcome.
"""

from __future__ import annotations

from lxml import etree

from bot.results.model import Status, TestCase

from . import _values
from ._base import KEEP_OUTPUT_FOR_PASSED, FormatParser, discard, local_name

_OUTCOMES = {
    "Passed": Status.PASSED,
    "PassedButRunAborted": Status.PASSED,
    "Warning": Status.PASSED,
    "Completed": Status.PASSED,
    "Failed": Status.FAILED,
    "Error": Status.ERROR,
    "Timeout": Status.ERROR,
    "Aborted": Status.ERROR,
    "Disconnected": Status.ERROR,
    "NotExecuted": Status.SKIPPED,
    "NotRunnable": Status.SKIPPED,
    "Inconclusive": Status.SKIPPED,
    "Pending": Status.SKIPPED,
    "InProgress": Status.SKIPPED,
}


class TrxParser(FormatParser):
    # TestEntry elements are asked for only to be freed: nothing in them is needed.
    TAGS = ("{*}UnitTestResult", "{*}UnitTest", "{*}TestEntry")
    EVENTS = ("end",)

    def __init__(self, source: str, text_limit: int) -> None:
        super().__init__(source, text_limit)
        self._cases: list[tuple[TestCase, str]] = []  # with their testId, until the end
        self._definitions: dict[str, tuple[str, str]] = {}  # testId -> (class, assembly)

    def handle(self, event: str, element: etree._Element) -> None:
        name = local_name(element.tag)
        if name == "UnitTestResult":
            self._result(element)
        elif name == "UnitTest":
            self._definition(element)
        else:
            discard(element)

    def _definition(self, element: etree._Element) -> None:
        classname = ""
        storage = element.get("storage") or ""
        for child in element:
            if local_name(child.tag) == "TestMethod":
                # Older MSTest writes an assembly-qualified name: "NS.Class, Tests, Version=…".
                classname = (child.get("className") or "").partition(",")[0].strip()
                storage = storage or child.get("codeBase") or ""
        test_id = element.get("id")
        if test_id:
            assembly = _values.basename(storage)
            self._definitions[test_id] = (self.shared(classname), self.shared(assembly))
        discard(element)

    def _result(self, element: etree._Element) -> None:
        parent = element.getparent()
        top_level = parent is not None and local_name(parent.tag) == "Results"
        output = None
        nested = False
        for child in element:
            name = local_name(child.tag)
            if name == "Output":
                output = child
            elif name == "InnerResults":
                nested = True
        if nested:
            # A data-driven parent: its rows, already read as cases, carry the outcomes.
            if top_level:
                discard(element)
            return
        get = element.get
        outcome = get("outcome") or ""
        status = _OUTCOMES.get(outcome, Status.ERROR)
        message = stack_trace = stdout = stderr = None
        if output is not None:
            keep_output = KEEP_OUTPUT_FOR_PASSED or status.is_failure
            for part in output:
                name = local_name(part.tag)
                if name == "ErrorInfo":
                    for info in part:
                        info_name = local_name(info.tag)
                        if info_name == "Message":
                            message = self.text(info)
                        elif info_name == "StackTrace":
                            stack_trace = self.text(info)
                elif name == "StdOut" and keep_output:
                    stdout = self.text(part)
                elif name == "StdErr" and keep_output:
                    stderr = self.text(part)
        if outcome not in _OUTCOMES:
            message = message or f"unknown TRX outcome {outcome!r}"
        file, line = _values.dotnet_location(stack_trace)
        case = TestCase(
            name=get("testName") or "",
            status=status,
            duration=_values.timespan(get("duration")),
            file=file,
            line=line,
            message=message,
            failure_type=outcome if status is Status.ERROR else None,
            stack_trace=stack_trace,
            stdout=stdout,
            stderr=stderr,
            source=self.source,
        )
        self._cases.append((case, get("testId") or ""))
        if top_level:
            discard(element)

    @property
    def cases_read(self) -> int:
        return len(self._cases) + super().cases_read

    def finish(self) -> None:
        for case, test_id in self._cases:
            classname, assembly = self._definitions.get(test_id, ("", ""))
            case.classname = classname
            case.suite = assembly
            self.suite_named(assembly).cases.append(case)
        self._cases = []
