"""Jest's `--json` report (`jest --json --outputFile=results.json`), read with bounded memory.

One `testResults[]` entry per test file, each with its `assertionResults[]` (one per test
execution: `test.each` rows sharing a title stay separate records). Outcomes:

- `passed` -> passed; `failed` -> failed; `pending`, `skipped`, `todo`, `disabled` -> skipped;
  `focused` -> passed, or failed when it has failure messages; any other status -> error.
- Retries (`jest.retryTimes`): `invocations` counts the runs, so `invocations - 1` earlier
  attempts failed; their errors are in `retryReasons` only when Jest was asked to keep them
  (`logErrorsBeforeRetry`), otherwise the attempt says that Jest did not record them.
- A test file Jest could not run or finish (syntax error, throwing `afterAll`) has status
  `failed` and its `message` ("● Test suite failed to run") while no test in it failed, or
  besides those that did: it becomes an ERROR case named after the file, never dropped.

`file` and the suite name are `testResults[].name` as Jest wrote it (an absolute path on
the machine that ran the tests). The run's duration is the last file's `endTime` minus the
run's own `startTime` (what Jest prints as "Time:"), else the sum over the files.
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO, ClassVar

from bot.results.model import Attempt, Status, Suite, TestCase, TestRun

from . import _jsonstream, _values
from ._base import ReportError

_STATUS = {
    "passed": Status.PASSED,
    "failed": Status.FAILED,
    "pending": Status.SKIPPED,
    "skipped": Status.SKIPPED,
    "todo": Status.SKIPPED,
    "disabled": Status.SKIPPED,
}
_SUITE_FAILED = "● Test suite failed to run"
#: Jest prints a test's describe blocks joined by U+203A, as in "math \u203a adds".
_ANCESTOR_SEPARATOR = " \u203a "
#: The first line of a JavaScript error: "TypeError: boom", "AssertionError [ERR_X]: ...".
_ERROR_NAME = re.compile(r"([A-Za-z_$][\w$.]*)(?: \[[\w-]+\])?:")
#: A stack frame, where an error's message ends.
_FRAME = re.compile(r"\n\s+at ")
_HEAD = re.compile(rb'\A\s*\{\s*"')


class JestJson:
    """The `StreamFormat` for Jest's JSON results."""

    name: ClassVar[str] = "Jest JSON"

    @staticmethod
    def detect(first: bytes) -> bool:
        first = first.removeprefix(b"\xef\xbb\xbf")
        if _HEAD.match(first) is None:
            return False
        # Jest writes its counters before testResults; CTRF, Mocha and package.json have none.
        return b'"numTotalTests"' in first and b'"numTotalTestSuites"' in first

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        reader = _Reader(source, text_limit)
        try:
            _jsonstream.read(
                stream,
                [
                    _jsonstream.Wanted("startTime", reader.start, first_only=True),
                    _jsonstream.Wanted("testResults.item", reader.test_file),
                ],
            )
        except _jsonstream.Broken as exc:
            raise ReportError(source, reader.broken(exc), reader.partial()) from None
        return reader.run()


def message_and_type(text: str | None) -> tuple[str | None, str | None]:
    """The error's message (its text before the first stack frame) and its name."""
    if not text:
        return None, None
    frame = _FRAME.search(text)
    head = (text[: frame.start()] if frame else text).strip()
    match = _ERROR_NAME.match(head)
    return (head or _values.first_line(text)), (match.group(1) if match else None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _seconds(milliseconds: Any) -> float:
    value = _number(milliseconds)
    return value / 1000 if value and value > 0 else 0.0


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


class _Reader:
    def __init__(self, source: str, text_limit: int) -> None:
        self.source = source
        self.limit = text_limit
        self.suites: list[Suite] = []
        self.files = 0
        self.started: float | None = None
        self.last_end: float | None = None
        self.file_time = 0.0
        self._strings: dict[str, str] = {}

    def shared(self, value: str) -> str:
        return self._strings.setdefault(value, value)

    def start(self, value: Any) -> None:
        self.started = _number(value)

    def clean(self, text: str | None) -> str | None:
        return _values.clean(text, self.limit)

    def test_file(self, entry: Any) -> None:
        self.files += 1
        if not isinstance(entry, dict):
            return
        name = entry.get("name")
        if isinstance(name, str) and name:
            path = self.shared(name)
        else:
            path = f"testResults[{self.files - 1}]"
        suite = Suite(name=path, source=self.source)
        start, end = _number(entry.get("startTime")), _number(entry.get("endTime"))
        perf = entry.get("perfStats")
        if (start is None or end is None) and isinstance(perf, dict):
            start, end = _number(perf.get("start")), _number(perf.get("end"))
        if start is not None and end is not None and end >= start:
            suite.duration = (end - start) / 1000
            self.file_time += suite.duration
            self.last_end = end if self.last_end is None else max(self.last_end, end)
        failed = False
        results = entry.get("assertionResults")
        cases = suite.cases
        append = cases.append
        classnames = self._strings
        source = self.source
        passed = Status.PASSED
        # The hot loop, for a plain passing test; anything else takes `case`.
        for result in results if type(results) is list else ():
            if (
                type(result) is dict
                and result.get("status") == "passed"
                and result.get("invocations", 1) == 1
                and not result.get("retryReasons")
            ):
                title = result.get("title")
                ancestors = result.get("ancestorTitles")
                duration = result.get("duration")
                location = result.get("location")
                line = location.get("line") if type(location) is dict else None
                if type(title) is str and type(ancestors) is list:
                    try:
                        classname = _ANCESTOR_SEPARATOR.join(ancestors)
                    except TypeError:
                        pass
                    else:
                        append(
                            TestCase(
                                title,
                                classnames.setdefault(classname, classname),
                                path,
                                passed,
                                duration / 1000
                                if type(duration) is int and duration > 0
                                else _seconds(duration),
                                path,
                                line if type(line) is int and line >= 0 else None,
                                source=source,
                            )
                        )
                        continue
            if isinstance(result, dict):
                case = self.case(result, path)
                failed = failed or case.status.is_failure
                append(case)
        if entry.get("status") == "failed":
            message = entry.get("message")
            text = self.clean(message if isinstance(message, str) else None) or ""
            marker = text.find(_SUITE_FAILED)
            if marker >= 0 or not failed:
                suite.cases.append(self.file_error(path, text[marker:] if marker >= 0 else text))
        self.suites.append(suite)

    def case(self, result: dict[str, Any], path: str) -> TestCase:
        title = result.get("title")
        classname = self.shared(_ANCESTOR_SEPARATOR.join(_texts(result.get("ancestorTitles"))))
        raw = result.get("status")
        messages = result.get("failureMessages")
        if messages:
            messages = _texts(messages)
        status = _STATUS.get(raw) if isinstance(raw, str) else None
        unknown = None
        if status is None:
            if raw == "focused" and not messages:
                status = Status.PASSED
            elif raw == "focused":
                status = Status.FAILED
            else:
                status, unknown = Status.ERROR, f"Jest reported an unknown status {raw!r}"
        location = result.get("location")
        line = location.get("line") if isinstance(location, dict) else None
        case = TestCase(
            name=title if isinstance(title, str) else "",
            classname=classname,
            suite=path,
            status=status,
            duration=_seconds(result.get("duration")),
            file=path,
            line=line if isinstance(line, int) and not isinstance(line, bool) else None,
            source=self.source,
        )
        if status.is_failure:
            trace = self.clean("\n\n".join(messages)) if messages else None
            case.message, case.failure_type = message_and_type(trace)
            case.message = case.message or unknown
            case.stack_trace = trace
        elif raw == "todo":
            case.message = "todo"
        if result.get("invocations", 1) != 1 or result.get("retryReasons"):
            case.attempts = self.attempts(result)
        return case

    def attempts(self, result: dict[str, Any]) -> list[Attempt]:
        invocations = result.get("invocations")
        reasons = _texts(result.get("retryReasons"))
        earlier = invocations - 1 if isinstance(invocations, int) and invocations > 1 else 0
        count = earlier or len(reasons)
        attempts = []
        for index in range(count):
            # Several errors of one attempt (a test and its afterEach) are all in the last
            # attempt when Jest kept more reasons than there were retries.
            chunk = reasons[index : index + 1] if index < count - 1 else reasons[index:]
            trace = self.clean("\n\n".join(chunk)) if chunk else None
            message, failure_type = message_and_type(trace)
            attempts.append(
                Attempt(
                    status=Status.FAILED,
                    message=message
                    or f"attempt {index + 1} of {count + 1} failed; Jest keeps the errors of "
                    "earlier attempts only with retryTimes(n, {logErrorsBeforeRetry: true})",
                    failure_type=failure_type,
                    stack_trace=trace,
                )
            )
        return attempts

    def file_error(self, path: str, text: str) -> TestCase:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        # "● Test suite failed to run" is a heading; what went wrong is the line after it.
        body = lines[1:] if lines and lines[0] == _SUITE_FAILED else lines
        return TestCase(
            name=path,
            suite=path,
            status=Status.ERROR,
            file=path,
            message=body[0] if body else "Jest marked this test file failed without a message",
            stack_trace=text or None,
            source=self.source,
        )

    def cases_read(self) -> int:
        return sum(len(suite.cases) for suite in self.suites)

    def run(self) -> TestRun:
        duration: float | None = None
        if self.started is not None and self.last_end is not None:
            duration = max(0.0, (self.last_end - self.started) / 1000)
        elif self.last_end is not None:
            duration = self.file_time
        return TestRun(
            id=self.source, suites=[s for s in self.suites if s.cases], duration=duration
        )

    def partial(self) -> TestRun | None:
        return self.run() if self.cases_read() else None

    def broken(self, exc: _jsonstream.Broken) -> str:
        if self.files:
            where = f"after testResults[{self.files - 1}], the last complete test file"
        else:
            where = "before the first complete entry of testResults"
        cases = self.cases_read()
        kept = f"; kept the {cases:,} test case{'' if cases == 1 else 's'} read before it"
        if exc.truncated:
            return f"truncated: the JSON ends {where}" + (kept if cases else "")
        return f"invalid JSON {where} ({exc.detail})" + (kept if cases else "")
