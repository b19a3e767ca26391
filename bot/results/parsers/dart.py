"""Dart and Flutter `--reporter json` (the dart test package's JSON reporter protocol).

JSON lines: `start` (protocolVersion), `allSuites`, `suite` {id, platform, path}, `group`
{id, name, suiteID, parentID}, `testStart` {test: {id, name, suiteID, groupIDs, line, column,
url}}, `print` {testID, messageType, message}, `error` {testID, error, stackTrace,
isFailure}, `testDone` {testID, result, hidden, skipped}, `done` {success}; `time` is
milliseconds since the runner started.

Each visible `testStart`/`testDone` pair is one case: name = the test's full name (groups
included), classname = its innermost group, suite and file = its suite's path.
`result` success -> passed (skipped -> skipped, with the `skip` message as reason), failure
(a TestFailure) -> failed, error -> error. What each rule could hide, and why it does not:

- **Hidden tests** (the virtual "loading <file>" test, `setUpAll`, `tearDownAll`) are not
  counted when they succeed, as the runner itself does. The protocol hides only successes;
  a hidden or loading test that failed (a suite that did not load or compile, a failing
  setUpAll) is an ERROR case, and so is one that reports an error after it was done.
- **Errors after testDone** make a finished test failed/error, as the protocol says.
- **Unfinished tests** (testStart with no testDone, e.g. the runner was killed) are ERROR
  cases; a stream with no `done` event is reported as truncated, with every case kept.
- **Retries** (`--retry`, `@Retry`): each attempt is its own `testStart` with a new id, and
  nothing in the protocol marks it as an attempt of another, so attempts are separate
  executions, never folded and never flaky.
- **Output**: `print` messages are buffered per running test up to `text_limit` and kept
  (as stdout) only when the test fails.

Run duration = the `done` event's `time` (the runner's own wall clock).
"""

from __future__ import annotations

from typing import Any, BinaryIO, ClassVar

import orjson

from bot.results.model import Status, Suite, TestCase, TestRun

from . import _values
from ._base import ReportError
from .gotest import MAX_LINE, _Buffer

_TYPES = frozenset({"start", "allSuites", "suite", "debug", "group", "testStart", "print",
                    "error", "testDone", "done"})


class _Running:
    __slots__ = ("case", "errors", "out", "started")

    def __init__(self, case: TestCase, started: float) -> None:
        self.case = case
        self.started = started
        self.out: _Buffer | None = None
        self.errors: _Buffer | None = None


class DartJson:
    """`dart test --reporter json`, `flutter test --reporter json` (or `--file-reporter`)."""

    name: ClassVar[str] = "Dart JSON reporter"

    @staticmethod
    def detect(first: bytes) -> bool:
        for line in first.splitlines()[:50]:
            line = line.strip()
            if not line.startswith(b"{"):
                continue  # flutter may print progress lines first
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                return False
            if not isinstance(event, dict) or event.get("type") not in _TYPES:
                return False
            if event["type"] == "start":
                return "protocolVersion" in event
            # A stream whose start line was lost still reads; these keys are the protocol's.
            return any(isinstance(event.get(k), dict) for k in ("suite", "test", "group"))
        return False

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        return _Reader(source, text_limit).read(stream)


class _Reader:
    def __init__(self, source: str, text_limit: int) -> None:
        self.source = source
        self.limit = text_limit
        self.suite_paths: dict[int, str] = {}
        self.group_names: dict[int, str] = {}
        self.suites: dict[str, Suite] = {}
        self.running: dict[int, _Running] = {}
        #: Every finished test by id, for errors reported after testDone; hidden ones are
        #: held here (not in a suite) until such an error makes them visible.
        self.finished: dict[int, tuple[TestCase, bool]] = {}
        self.duration: float | None = None
        self.done = False
        self.problems: list[str] = []

    def read(self, stream: BinaryIO) -> TestRun:
        loads = orjson.loads
        number = 0
        readline = stream.readline
        try:
            while True:
                line = readline(MAX_LINE)
                if not line:
                    break
                number += 1
                if len(line) >= MAX_LINE and not line.endswith(b"\n"):
                    self.problems.append(f"line {number} is longer than {MAX_LINE:,} bytes")
                    while (rest := readline(MAX_LINE)) and not rest.endswith(b"\n"):
                        pass
                    continue
                if line[:1] != b"{":
                    continue  # flutter's own progress lines, stray stderr
                try:
                    event = loads(line)
                except orjson.JSONDecodeError:
                    self.problems.append(
                        f"line {number} is not valid JSON" if line.endswith(b"\n")
                        else f"truncated: the stream ends inside line {number}"
                    )
                    continue
                if type(event) is dict:
                    try:
                        self.handle(event)
                    except (TypeError, AttributeError, ValueError, KeyError) as exc:
                        self.problems.append(f"line {number} is not a reporter event ({exc!r})")
        except (OSError, EOFError) as exc:
            self.problems.append(f"cannot read past line {number}: {exc}")
        return self.finish()

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "testStart":
            self.test_start(event["test"], _ms(event.get("time")))
        elif kind == "testDone":
            self.test_done(event, _ms(event.get("time")))
        elif kind == "print":
            test_id: Any = event.get("testID")
            running = self.running.get(test_id)
            message = event.get("message")
            if running is None or type(message) is not str:
                return
            if event.get("messageType") == "skip":
                running.case.message = _values.clean(message.removeprefix("Skip: "), self.limit)
                return
            if running.out is None:
                running.out = _Buffer()
            running.out.add(message + "\n", self.limit)
        elif kind == "error":
            self.error(event)
        elif kind == "suite":
            suite = event["suite"]
            path = suite.get("path")
            self.suite_paths[int(suite["id"])] = path if type(path) is str else ""
        elif kind == "group":
            group = event["group"]
            name = group.get("name")
            self.group_names[int(group["id"])] = name if type(name) is str else ""
        elif kind == "done":
            self.done = True
            ms = _ms(event.get("time"))
            self.duration = ms / 1000.0 if ms is not None else None

    def suite(self, suite_id: object) -> Suite:
        path = self.suite_paths.get(suite_id, "") if type(suite_id) is int else ""
        suite = self.suites.get(path)
        if suite is None:
            suite = self.suites[path] = Suite(name=path or "dart", source=self.source)
        return suite

    def test_start(self, test: dict[str, Any], time: float | None) -> None:
        test_id = int(test["id"])
        suite = self.suite(test.get("suiteID"))
        groups = test.get("groupIDs")
        classname = ""
        if type(groups) is list and groups:
            classname = self.group_names.get(groups[-1], "") if type(groups[-1]) is int else ""
        name = test.get("name")
        line = test.get("root_line", test.get("line"))
        case = TestCase(
            name=name if type(name) is str and name else f"test {test_id}",
            classname=classname,
            suite=suite.name,
            file=suite.name if suite.name != "dart" else None,
            line=line if type(line) is int and line > 0 else None,
            source=self.source,
        )
        self.running[test_id] = _Running(case, time or 0.0)

    def test_done(self, event: dict[str, Any], time: float | None) -> None:
        test_id = int(event["testID"])
        running = self.running.pop(test_id, None)
        if running is None:
            self.problems.append(f"testDone for test {test_id}, which never started")
            return
        case = running.case
        if time is not None:
            case.duration = max(0.0, time - running.started) / 1000.0
        result = event.get("result")
        hidden = event.get("hidden") is True
        if result == "success":
            if event.get("skipped") is True:
                case.status = Status.SKIPPED
            else:
                case.message = None
        else:
            # failure, error, and any result a later protocol adds: never taken as a pass.
            case.status = Status.FAILED if result == "failure" else Status.ERROR
            self.keep_failure(running)
            if hidden:
                hidden = False  # the protocol hides only successes; never hide a failure
        self.finished[test_id] = (case, hidden)
        if not hidden:
            self.suite_of(case).cases.append(case)

    def suite_of(self, case: TestCase) -> Suite:
        return self.suites.get(case.suite if case.suite != "dart" else "") or self.suite(None)

    def keep_failure(self, running: _Running) -> None:
        case = running.case
        if running.errors is not None:
            case.stack_trace = running.errors.text(self.limit)
        if running.out is not None:
            case.stdout = running.out.text(self.limit)
        if case.status is Status.SKIPPED or not case.message:
            case.message = _values.first_line(case.stack_trace)

    def error(self, event: dict[str, Any]) -> None:
        test_id: Any = event.get("testID")
        text = event.get("error")
        trace = event.get("stackTrace")
        body = "\n".join(t for t in (text, trace) if type(t) is str and t)
        failure = event.get("isFailure") is True
        running = self.running.get(test_id)
        if running is not None:
            if running.errors is None:
                running.errors = _Buffer()
                running.case.message = _values.clean(
                    (text if type(text) is str else body).strip(), self.limit
                )
                running.case.failure_type = "TestFailure" if failure else "error"
            running.errors.add(body + "\n", self.limit)
            return
        finished = self.finished.get(test_id)
        if finished is None:
            self.problems.append(f"an error for test {test_id}, which never started")
            return
        # An error after testDone: the test failed after all (a hidden one is shown now).
        case, hidden = finished
        if not case.status.is_failure:
            case.status = Status.FAILED if failure else Status.ERROR
            case.failure_type = "TestFailure" if failure else "error"
            case.message = "error after the test completed: " + (
                _values.first_line(text if type(text) is str else body) or "no message"
            )
        room = self.limit - len(case.stack_trace or "")
        if room > 0:
            joined = ((case.stack_trace or "") + "\n" + body).strip()
            case.stack_trace = _values.clean(joined, self.limit)
        if hidden:
            self.finished[test_id] = (case, False)
            self.suite_of(case).cases.append(case)

    def finish(self) -> TestRun:
        for test_id in list(self.running):
            running = self.running.pop(test_id)
            case = running.case
            case.status = Status.ERROR
            self.keep_failure(running)
            reason = "started but never finished (the test runner stopped before it did)"
            case.message = f"{reason}: {case.message}" if case.message else reason
            case.failure_type = case.failure_type or "unfinished"
            self.suite_of(case).cases.append(case)
        if not self.done and not any("truncated" in p for p in self.problems):
            self.problems.append("truncated: the stream ends before the runner's `done` event")
        suites = [s for s in self.suites.values() if s.cases]
        run = TestRun(id=self.source, suites=suites, duration=self.duration)
        if self.problems:
            more = len(self.problems) - 3
            reason = "; ".join(self.problems[:3]) + (f" (and {more} more)" if more > 0 else "")
            cases = sum(len(s.cases) for s in suites)
            if cases:
                reason += f"; kept the {cases:,} test case{'' if cases == 1 else 's'} read"
            raise ReportError(self.source, reason, run if cases else None)
        return run


def _ms(raw: object) -> float | None:
    """An event's `time` in milliseconds (the protocol's unit), None when unusable."""
    if type(raw) is int or type(raw) is float:
        value = float(raw)  # type: ignore[arg-type]
        return value if 0.0 <= value < float("inf") else None
    return None
