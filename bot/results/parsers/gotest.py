"""Go `go test -json` (test2json) event streams, including gotestsum `--rerun-fails` output.

One JSON object per line: `{"Time", "Action", "Package", "Test", "Elapsed", "Output"}` with
Action `start`/`run`/`pause`/`cont`/`output`/`pass`/`fail`/`skip`/`bench` (Go 1.21+ adds
`build-output`/`build-fail` events keyed by `ImportPath`). Every test that ends is one case,
subtests (`TestA/sub_case`) included, classname and suite = the package.

What each rule could hide, and why it does not:

- **Parents.** A parent test fails whenever a subtest fails. A parent that failed, has a
  failing subtest and printed nothing of its own is recorded as *passed* with a note naming
  the subtests, so one broken assertion counts once (on the subtest, which carries the
  message). Go prints t.Log and t.Error lines alike, so any output of its own keeps the
  parent *failed*: the doubt doubles a failure rather than hide one. (A bare `t.Fail()` in a
  parent whose subtest also failed is the one thing this folds; the subtest keeps the run red.)
- **Totals.** go test prints no totals; gotestsum's `DONE N tests, F failures` counts every
  test that ended (parents too), tests still running when a package ended, and packages that
  failed with no test. Herald's total = gotestsum's N + one ERROR case per package that failed
  outside any test or did not build; its failures = gotestsum's F - parents that failed only
  through subtests + packages that did not build (gotestsum does not count the Go <1.21 text
  line `FAIL pkg [build failed]`).
- **Package failures with no test** (did not build, `[setup failed]`, a panic in `init`,
  TestMain exiting 1) become an ERROR case named after the package, with its output.
- **Unfinished tests.** A test that started and never ended (the binary timed out or crashed)
  is an ERROR case when its package ends, or when the stream ends (then the stream is also
  reported as truncated).
- **Reruns.** go test never runs a test twice within one package run except for `-count=N`,
  and those executions all come before the package's own end event: they stay separate
  cases, never flaky. gotestsum `--rerun-fails` runs failed tests again as a *new* package run
  appended to the same stream, i.e. after that package's end event. Only that shape is a
  rerun: an execution of a test, in a package whose earlier run has ended, whose latest
  execution there failed, replaces it and keeps the failure as an attempt (flaky if it now
  passes). Two separate `go test` runs concatenated into one file read the same way; the
  failure then stays visible as an attempt.
- **Output.** Output is buffered per running test up to `text_limit` characters (whether a
  test failed is known only at its end) and dropped when it passes; a failure keeps it as
  its stack trace, its first `file.go:N: text` line as message and location.

Run duration = the sum of the packages' own `Elapsed` (their root totals).
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO, ClassVar

import orjson

from bot.results.model import TRUNCATION_MARKER, Attempt, Status, Suite, TestCase, TestRun

from . import _values
from ._base import ReportError

#: A line longer than this is not a test2json event (they hold one line of output each).
MAX_LINE = 8 * 1024 * 1024
_ACTIONS = frozenset(
    {"start", "run", "pause", "cont", "pass", "fail", "skip", "output", "bench",
     "build-output", "build-fail"}
)
CHUNK = 1024 * 1024
_FRAMING = (b"=== RUN", b"=== PAUSE", b"=== CONT", b"=== NAME", b"--- PASS", b"--- FAIL",
            b"--- SKIP", b"--- BENCH")
#: go's own event layout (Time, Action, Package, Test, Elapsed, Output, in that order), which
#: lets a test's output line be filed without decoding it; other layouts are decoded.
_OUTPUT_EVENT = b',"Action":"output",'
_OUTPUT_FIELD = b',"Output":"'
_RUN_EVENT = b',"Action":"run",'
_ASSERTION = re.compile(r"^\s*([\w.+-]+\.go):(\d+): ?(.*)$", re.MULTILINE)
#: Go <1.21 writes these as plain text lines in the middle of the JSON stream.
_PACKAGE_FAILED = re.compile(rb"^FAIL\s+(\S+)\s+\[(build failed|setup failed)\]")
_BUILD_HEADER = re.compile(rb"^# (\S+)")
_NOTE_SUBTESTS = "failed only because its subtests failed: "


class _Buffer:
    """Output lines of one running test or package, cut at the text limit."""

    __slots__ = ("dropped", "lines", "size")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, text: str, limit: int) -> None:
        if self.size >= limit:
            self.dropped += len(text)
            return
        self.lines.append(text)
        self.size += len(text)

    def text(self, limit: int) -> str | None:
        joined = "".join(self.lines)
        dropped = self.dropped
        if len(joined) > limit:
            dropped += len(joined) - limit
            joined = joined[:limit]
        if dropped:
            joined += TRUNCATION_MARKER.format(dropped=dropped)
        return _values.clean(joined, limit + len(TRUNCATION_MARKER) + 20)


class _Test:
    """A test between its `run` and its end, with its own output (go's framing lines left
    out) as the JSON-escaped bytes of its events, decoded only if the test fails."""

    __slots__ = ("dropped", "failed_subtests", "gen", "key", "parts", "size")

    def __init__(self, gen: int, key: bytes | None = None) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0
        self.gen = gen
        self.key = key
        self.failed_subtests: list[str] = []

    def add(self, escaped: bytes, limit: int) -> None:
        if self.size >= limit:
            self.dropped += len(escaped)
            return
        self.parts.append(escaped)
        self.size += len(escaped)

    def output(self) -> _Buffer | None:
        if not self.parts:
            return None
        raw = b"".join(self.parts)
        try:
            text = orjson.loads(b'"' + raw + b'"')
        except orjson.JSONDecodeError:
            text = raw.decode("utf-8", "replace")
        buffer = _Buffer()
        buffer.lines.append(text)
        buffer.size = len(text)
        buffer.dropped = self.dropped  # escaped bytes: about as many characters
        return buffer


class GoTestJson:
    """`go test -json` / gotestsum `--jsonfile`."""

    name: ClassVar[str] = "Go test2json"

    @staticmethod
    def detect(first: bytes) -> bool:
        # Go <1.21 may print `FAIL pkg [build failed]` or compiler output before any JSON.
        for line in first.splitlines()[:50]:
            line = line.strip()
            if not line.startswith(b"{"):
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                return False
            return (
                isinstance(event, dict)
                and event.get("Action") in _ACTIONS
                and isinstance(event.get("Package", event.get("ImportPath")), str)
            )
        return False

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        return _Reader(source, text_limit).read(stream)


class _Reader:
    def __init__(self, source: str, text_limit: int) -> None:
        self.source = source
        self.limit = text_limit
        self.suites: dict[str, Suite] = {}
        self.running: dict[tuple[str, str], _Test] = {}
        #: The same tests by the raw bytes `"Package":"p","Test":"t"` of their `run` event.
        self.raw_running: dict[bytes, _Test] = {}
        #: Per package: how many of its runs have ended (gotestsum reruns start a new one).
        self.gen: dict[str, int] = {}
        #: Per package: failing cases in its current run (no ERROR case for the package then).
        self.failures: dict[str, int] = {}
        self.package_output: dict[str, _Buffer] = {}
        self.build_output: dict[str, _Buffer] = {}
        self.build_cases: dict[str, TestCase] = {}
        #: (package, test) -> its latest failing case and the package run it belongs to.
        self.last_failed: dict[tuple[str, str], tuple[TestCase, int]] = {}
        self.duration: float | None = None
        self.problems: list[str] = []
        self.header: str | None = None  # the `# pkg` compiler-output block being read

    # -- the stream ---------------------------------------------------------------------

    def read(self, stream: BinaryIO) -> TestRun:
        number = 0
        carry = b""
        skipping = False  # inside a line over MAX_LINE, dropped up to its newline
        try:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    if carry and not skipping:
                        self.lines([carry], number + 1, complete=False)
                    break
                data = carry + chunk if carry else chunk
                lines = data.split(b"\n")
                carry = lines.pop()
                if skipping:
                    if not lines:
                        carry = b""
                        continue
                    del lines[0]
                    number += 1
                    skipping = False
                if len(carry) > MAX_LINE:
                    self.problems.append(
                        f"line {number + len(lines) + 1} is longer than {MAX_LINE:,} bytes"
                    )
                    carry, skipping = b"", True
                self.lines(lines, number + 1)
                number += len(lines)
        except (OSError, EOFError) as exc:
            self.problems.append(f"cannot read past line {number}: {exc}")
        return self.finish()

    def lines(self, lines: list[bytes], first: int, complete: bool = True) -> None:
        """The hot loop. A test's output line in go's own layout is filed by the bytes that
        name its package and test, without decoding: most lines of a stream are those."""
        loads = orjson.loads
        handle = self.handle
        raw_running = self.raw_running
        limit = self.limit
        for number, line in enumerate(lines, first):
            if line[:1] != b"{":
                if line.strip():
                    self.text_line(line + b"\n")
                continue
            if complete:
                at = line.find(_OUTPUT_EVENT, 0, 200)
                if at != -1 and line.endswith(b'"}'):
                    end = line.find(_OUTPUT_FIELD, at)
                    if end != -1:
                        running = raw_running.get(line[at + 19 : end])
                        if running is not None:
                            value = line[end + 11 : -2]
                            if not value.lstrip(b" ").startswith(_FRAMING):
                                running.add(value, limit)
                            continue
            try:
                event = loads(line)
            except orjson.JSONDecodeError:
                self.bad_line(number, line, complete)
                continue
            if type(event) is not dict:
                self.text_line(line + b"\n")
                continue
            self.header = None
            try:
                running = handle(event)
            except (TypeError, AttributeError, ValueError) as exc:
                # JSON of another shape, or odd field types (a number as Test).
                self.problems.append(f"line {number} is not a test2json event ({exc})")
                continue
            if running is not None:  # a `run`: file its output lines by their raw bytes
                at = line.find(_RUN_EVENT, 0, 200)
                if at != -1 and line.endswith(b"}"):
                    running.key = line[at + 16 : -1]
                    raw_running[running.key] = running

    def bad_line(self, number: int, line: bytes, complete: bool) -> None:
        if complete:
            self.problems.append(f"line {number} is not valid JSON")
        else:
            self.problems.append(f"truncated: the stream ends inside line {number}")

    def text_line(self, line: bytes) -> None:
        """A plain line mixed into the stream: Go <1.21 build failures and compiler output."""
        failed = _PACKAGE_FAILED.match(line)
        if failed:
            package = failed.group(1).decode("utf-8", "replace")
            kind = failed.group(2).decode()
            self.package_error(package, kind, self.build_output.pop(package, None))
            self.header = None
            return
        header = _BUILD_HEADER.match(line)
        if header:
            self.header = header.group(1).decode("utf-8", "replace")
            return
        if self.header is not None:
            text = line.decode("utf-8", "replace")
            case = self.build_cases.get(self.header)
            if case is not None:  # the FAIL line came first (stdout and stderr interleave)
                if len(case.stack_trace or "") < self.limit:
                    case.stack_trace = _values.clean((case.stack_trace or "") + text, self.limit)
            else:
                self.build_output.setdefault(self.header, _Buffer()).add(text, self.limit)

    def handle(self, event: dict[str, Any]) -> _Test | None:
        """Take one decoded event; returns the test a `run` event started."""
        action = event.get("Action")
        package: Any = event.get("Package")
        test: Any = event.get("Test")
        if test is not None and type(test) is str and action in _ENDS:
            if type(package) is not str:
                raise ValueError(f"a {action!r} event without a Package")
            self.test_end(package, test, action, event)
            return None
        if action == "output":
            if test is None:
                if package is not None:
                    buffer = self.package_output.get(package)
                    if buffer is None:
                        buffer = self.package_output[package] = _Buffer()
                    buffer.add(event.get("Output") or "", self.limit)
                return None
            running = self.running.get((package, test))
            if running is None:
                return None
            output = event.get("Output") or ""
            escaped = orjson.dumps(output)[1:-1]
            if not escaped.lstrip(b" ").startswith(_FRAMING):
                running.add(escaped, self.limit)
            return None
        if action in ("run", "pass", "fail", "skip") and type(package) is not str:
            raise ValueError(f"a {action!r} event without a Package")
        if action == "run":
            if type(test) is not str:
                raise ValueError("a 'run' event without a Test")
            running = self.running[(package, test)] = _Test(self.gen.get(package, 0))
            return running
        if action in _ENDS:
            if test is not None:
                raise ValueError(f"a {action!r} event whose Test is not a string")
            self.package_end(package, action, event)
            return None
        if action == "build-output":
            key = event.get("ImportPath") or ""
            buffer = self.build_output.get(key)
            if buffer is None:
                buffer = self.build_output[key] = _Buffer()
            buffer.add(event.get("Output") or "", self.limit)
        # start, pause, cont, bench, build-fail: nothing to record.
        return None

    # -- cases --------------------------------------------------------------------------

    def suite(self, package: str) -> Suite:
        suite = self.suites.get(package)
        if suite is None:
            suite = self.suites[package] = Suite(name=package, source=self.source)
        return suite

    def test_end(self, package: str, test: str, action: str, event: dict[str, Any]) -> None:
        key = (package, test)
        running = self.running.pop(key, None)
        if running is None:
            running = _Test(self.gen.get(package, 0))  # an end with no `run`: still counts
        elif running.key is not None:
            del self.raw_running[running.key]
        suite = self.suites.get(package) or self.suite(package)
        elapsed = event.get("Elapsed")
        if type(elapsed) is not float or not 0.0 <= elapsed < _INF:
            elapsed = _elapsed(elapsed)
        name = suite.name
        case = TestCase(test, name, name, Status.PASSED, elapsed, source=self.source)
        if action == "pass" and key not in self.last_failed:
            suite.cases.append(case)  # the common case: nothing kept but the case itself
            return
        out = running.output() if action != "pass" else None
        if action == "skip":
            case.status = Status.SKIPPED
            if out is not None:
                case.message = _skip_reason(out.text(self.limit))
        elif action == "fail":
            parent = test.rpartition("/")[0]
            if parent:
                above = self.running.get((package, parent))
                if above is not None and len(above.failed_subtests) < 5:
                    above.failed_subtests.append(test)
            if running.failed_subtests and out is None:
                case.message = _NOTE_SUBTESTS + ", ".join(running.failed_subtests)
            else:
                self.fail(case, out)
        self.record(package, test, case, running.gen)

    def fail(self, case: TestCase, out: _Buffer | None, unfinished: bool = False) -> None:
        text = out.text(self.limit) if out is not None else None
        case.status = Status.FAILED
        case.stack_trace = text
        if text:
            if "panic: " in text:
                case.status = Status.ERROR
                case.failure_type = "panic"
                case.message = next(
                    (ln.strip() for ln in text.splitlines() if ln.lstrip().startswith("panic: ")),
                    None,
                )
            assertion = _ASSERTION.search(text)
            if assertion is not None:
                case.file, case.line = assertion.group(1), int(assertion.group(2))
                case.message = case.message or assertion.group(3).strip() or None
            case.message = case.message or _values.first_line(text)
        if unfinished:
            case.status = Status.ERROR
            case.failure_type = "unfinished"
            reason = ("started but never finished: the test binary ended (timed out or "
                      "crashed) before this test did")
            case.message = reason if not case.message else f"{reason}: {case.message}"

    def record(self, package: str, test: str, case: TestCase, gen: int) -> None:
        key = (package, test)
        earlier = self.last_failed.get(key)
        if earlier is not None and earlier[1] < gen:
            # gotestsum --rerun-fails: a new run of the package after the one that failed.
            kept = earlier[0]
            kept.attempts.append(Attempt(status=kept.status, duration=kept.duration,
                                         message=kept.message, failure_type=kept.failure_type,
                                         stack_trace=kept.stack_trace))
            for name in ("status", "duration", "message", "failure_type", "stack_trace",
                         "file", "line"):
                setattr(kept, name, getattr(case, name))
            case = kept
        else:
            self.suite(package).cases.append(case)
        if case.status.is_failure:
            self.last_failed[key] = (case, gen)
            self.failures[package] = self.failures.get(package, 0) + 1
        elif earlier is not None:
            del self.last_failed[key]

    def package_end(self, package: str, action: str, event: dict[str, Any]) -> None:
        output = self.package_output.pop(package, None)
        for key in [k for k in self.running if k[0] == package]:
            self.unfinished(key, output)
        elapsed = event.get("Elapsed")
        if isinstance(elapsed, int | float):
            seconds = _elapsed(elapsed)
            self.duration = (self.duration or 0.0) + seconds
            suite = self.suite(package)
            suite.duration = (suite.duration or 0.0) + seconds
        if action == "fail" and not self.failures.get(package):
            failed_build = event.get("FailedBuild")
            if isinstance(failed_build, str) and failed_build:
                build = self.build_output.pop(failed_build, None)
                self.package_error(package, "build failed", build or output)
            else:
                self.package_error(package, None, output)
        self.failures.pop(package, None)
        self.gen[package] = self.gen.get(package, 0) + 1

    def unfinished(self, key: tuple[str, str], package_output: _Buffer | None) -> None:
        package, test = key
        running = self.running.pop(key)
        if running.key is not None:
            self.raw_running.pop(running.key, None)
        suite = self.suite(package)
        case = TestCase(name=test, classname=suite.name, suite=suite.name, source=self.source)
        out = running.output() or package_output
        self.fail(case, out, unfinished=True)
        self.record(package, test, case, running.gen)

    def package_error(self, package: str, kind: str | None, output: _Buffer | None) -> None:
        suite = self.suite(package)
        case = TestCase(name=package, classname=suite.name, suite=suite.name,
                        status=Status.ERROR, source=self.source)
        text = output.text(self.limit) if output is not None else None
        case.stack_trace = text
        if kind is not None:
            case.failure_type = kind
            case.message = f"[{kind}]"
            self.build_cases[package] = case
        else:
            case.failure_type = "package"
            panic = next((ln.strip() for ln in (text or "").splitlines()
                          if ln.startswith("panic: ")), None)
            case.message = panic or "the package failed outside any test: " + (
                _values.first_line(_without_summary(text)) or "no output"
            )
        suite.cases.append(case)

    def finish(self) -> TestRun:
        open_packages = sorted({k[0] for k in self.running})
        for key in list(self.running):
            self.unfinished(key, self.package_output.get(key[0]))
        if open_packages:
            self.problems.append(
                "truncated: the stream ends while package "
                f"{', '.join(open_packages[:3])} was still running"
            )
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


_ENDS = frozenset({"pass", "fail", "skip"})
_INF = float("inf")


def _elapsed(raw: object) -> float:
    if isinstance(raw, int | float) and raw == raw and 0 <= raw < float("inf"):
        return float(raw)
    return 0.0


def _skip_reason(text: str | None) -> str | None:
    if not text:
        return None
    match = _ASSERTION.search(text)
    return _values.first_line(match.group(3) if match else text)


def _without_summary(text: str | None) -> str | None:
    """Package output minus go's own `FAIL` / `PASS` / `FAIL pkg 0.01s` lines."""
    if not text:
        return None
    return "".join(
        ln for ln in text.splitlines(keepends=True)
        if ln.strip() not in ("FAIL", "PASS") and not ln.startswith(("FAIL\t", "ok  \t"))
    )
