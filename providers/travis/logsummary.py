"""Test results from what a runner prints at the end of a Travis CI job log: pytest's
summary and Go's `go test` lines. Pure: fed the log's bytes chunk by chunk, it keeps the
named tests (passed ones packed by `CaseList`) and the counts, never the log.

What is read, and what it can hide:

- **pytest**: the short test summary (`FAILED path::test - message`, `ERROR path - ...`,
  and `PASSED path::test` when the job runs `pytest -rA`) and the final line
  (`==== 2 failed, 48 passed, 1 skipped in 3.21s ====`, or the same without the `=` with
  `-q`). Failures the final line counts but the short summary does not name (`-r` without
  `f`, or a summary cut off) become one unnamed failure each, so the count stays right.
  Passed tests the final line counts but no line names are not invented: they are a
  metric, "passed, not named in the log" (run with `-rA` to have them named). Several
  sessions in one log (tox, a matrix script) add up.
- **go**: `--- FAIL: TestX (0.01s)`, `--- PASS:`, `--- SKIP:` (passes only with
  `go test -v`; subtests are named `TestX/case` and count as Go prints them), and a
  package that did not build (`FAIL pkg [build failed]`, `[setup failed]`), which has no
  test line at all: it is a failure named after the package.

A summary is only what the runner printed. A job that failed for a reason no summary
shows (a lint step, a crash before the summary, an unparsed runner) is not this module's
to see: the client adds the job itself as a failure when its results show none
(`providers.travis.client`). Travis' own markers (`travis_fold:`, `travis_time:`), ANSI
colours and carriage-return progress lines are dropped before matching.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from bot.results.model import Metric, Origin, Status, Suite, TestCase, TestRun

FORMATS: Final = frozenset({"pytest", "go"})
#: A longer line is cut there: a summary line is short, a dumped blob is not a summary.
MAX_LINE_BYTES: Final = 8192
#: Unnamed failures are spelled out one by one up to this many (the rest counted in one).
MAX_UNNAMED: Final = 1000
MESSAGE_LIMIT: Final = 2000

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_TRAVIS_MARKER = re.compile(r"travis_(?:fold|time):[a-z]+:[^\s]*")
_PYTEST_ITEM = re.compile(r"^(?P<status>FAILED|ERROR|PASSED) (?P<node>.+?)(?: - (?P<msg>.*))?$")
_PYTEST_FINAL = re.compile(
    r"^=*\s*(?P<counts>\d+ [a-z]+(?:, \d+ [a-z]+)*) in (?P<secs>[\d.]+)s\b[^=]*=*$"
)
_PYTEST_COUNT = re.compile(r"(\d+) ([a-z]+)")
_GO_CASE = re.compile(r"^\s*--- (?P<status>FAIL|PASS|SKIP): (?P<name>\S+) \((?P<secs>[\d.]+)s\)$")
_GO_BROKEN = re.compile(r"^FAIL\s+(?P<package>\S+)\s+\[(?P<why>build failed|setup failed)\]$")

_PYTEST_STATUS: Final = {"FAILED": Status.FAILED, "ERROR": Status.ERROR, "PASSED": Status.PASSED}
_GO_STATUS: Final = {"FAIL": Status.FAILED, "PASS": Status.PASSED, "SKIP": Status.SKIPPED}


def clean(line: str) -> str:
    """A log line as the runner printed it: colours, Travis markers and everything before
    the last carriage return (a progress line overwritten in place) dropped."""
    line = line.rstrip("\r\n")
    if "\r" in line:
        line = next((part for part in reversed(line.split("\r")) if part.strip()), "")
    line = _ANSI.sub("", line)
    return _TRAVIS_MARKER.sub("", line).rstrip()


@dataclass(slots=True)
class _Counts:
    """What pytest's final lines said, summed over sessions."""

    failed: int = 0
    errors: int = 0
    passed: int = 0
    skipped: int = 0
    sessions: int = 0


@dataclass
class LogSummary:
    """Feed it a job log (`feed`, then `result`). `origin` names the job every case is of."""

    formats: frozenset[str]
    origin: Origin
    suite_name: str
    _partial: bytearray = field(default_factory=bytearray)
    _overlong: bool = False
    _suite: Suite = field(init=False)
    _pytest: _Counts = field(default_factory=_Counts)
    _pytest_named: dict[Status, int] = field(default_factory=dict)
    _last_go_failure: TestCase | None = None

    def __post_init__(self) -> None:
        unknown = self.formats - FORMATS
        if unknown:
            raise ValueError(f"no log summary for {', '.join(sorted(unknown))}")
        self._suite = Suite(name=self.suite_name, source=self.origin.name)

    def feed(self, chunk: bytes) -> None:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._keep(chunk[start:])
                return
            self._keep(chunk[start:end])
            self._line(bytes(self._partial))
            self._partial.clear()
            self._overlong = False
            start = end + 1

    def _keep(self, piece: bytes) -> None:
        room = MAX_LINE_BYTES - len(self._partial)
        if len(piece) > room:
            self._overlong = True
        if room > 0:
            self._partial += piece[:room]

    def result(self) -> TestRun:
        """The tests the log named or counted (see the module docstring)."""
        if self._partial:
            self._line(bytes(self._partial))
            self._partial.clear()
        run = TestRun(id=self.origin.name)
        self._add_unnamed_pytest_failures()
        if self._suite.cases:
            run.suites.append(self._suite)
        unnamed_passed = self._pytest.passed - self._pytest_named.get(Status.PASSED, 0)
        if unnamed_passed > 0:
            run.metrics.append(Metric(f"{self.origin.name}: passed, not named in the log",
                                      unnamed_passed, "tests"))
        unnamed_skipped = self._pytest.skipped
        if unnamed_skipped > 0:
            run.metrics.append(Metric(f"{self.origin.name}: skipped (pytest's count)",
                                      unnamed_skipped, "tests"))
        return run

    @property
    def found_anything(self) -> bool:
        return bool(self._suite.cases) or self._pytest.sessions > 0

    # ---- lines ----------------------------------------------------------------------------

    def _line(self, raw: bytes) -> None:
        if self._overlong:
            return  # cut: not a summary line, and half of one must not be read as one
        line = clean(raw.decode("utf-8", "replace"))
        if not line:
            return
        if "pytest" in self.formats and self._pytest_line(line):
            return
        if "go" in self.formats:
            self._go_line(line)

    def _pytest_line(self, line: str) -> bool:
        item = _PYTEST_ITEM.match(line)
        if item is not None and ("::" in item.group("node") or item.group("status") == "ERROR"):
            status = _PYTEST_STATUS[item.group("status")]
            node = item.group("node")
            path, _, rest = node.partition("::")
            classname, _, name = rest.rpartition("::")
            self._add(TestCase(name=name or path, classname=classname, suite=path,
                               file=path, status=status,
                               message=_short(item.group("msg"))), pytest=True)
            return True
        final = _PYTEST_FINAL.match(line)
        if final is not None:
            counts = {word: int(number) for number, word in
                      _PYTEST_COUNT.findall(final.group("counts"))}
            known = {"failed", "passed", "skipped", "error", "errors", "deselected",
                     "xfailed", "xpassed", "warning", "warnings", "rerun", "reruns"}
            if not counts or not set(counts) <= known:
                return False
            self._pytest.sessions += 1
            self._pytest.failed += counts.get("failed", 0)
            self._pytest.errors += counts.get("error", 0) + counts.get("errors", 0)
            self._pytest.passed += counts.get("passed", 0)
            self._pytest.skipped += counts.get("skipped", 0)
            return True
        return False

    def _go_line(self, line: str) -> None:
        case = _GO_CASE.match(line)
        if case is not None:
            status = _GO_STATUS[case.group("status")]
            found = TestCase(name=case.group("name"), suite="go test", status=status,
                             duration=float(case.group("secs")))
            self._add(found, pytest=False)
            self._last_go_failure = found if status is Status.FAILED else None
            return
        broken = _GO_BROKEN.match(line)
        if broken is not None:
            self._add(TestCase(name=broken.group("package"), suite="go test",
                               status=Status.ERROR, message=f"package {broken.group('why')}"),
                      pytest=False)
            self._last_go_failure = None
            return
        failure = self._last_go_failure
        if failure is not None and line.startswith("    ") and not line.lstrip().startswith(
            ("--- ", "=== ")
        ):
            # What the test logged under its `--- FAIL:` line: the failure message.
            text = line.strip()
            failure.message = _short(f"{failure.message}\n{text}" if failure.message else text)
        elif not line.startswith("    "):
            self._last_go_failure = None

    def _add(self, case: TestCase, *, pytest: bool) -> None:
        case.origin = self.origin
        case.source = self.origin.name
        self._suite.cases.append(case)
        if pytest:
            self._pytest_named[case.status] = self._pytest_named.get(case.status, 0) + 1

    def _add_unnamed_pytest_failures(self) -> None:
        for status, counted in ((Status.FAILED, self._pytest.failed),
                                (Status.ERROR, self._pytest.errors)):
            missing = counted - self._pytest_named.get(status, 0)
            for number in range(1, min(missing, MAX_UNNAMED) + 1):
                self._add(TestCase(
                    name=f"{status.value} {number} of {missing} not named in the log",
                    suite="pytest", status=status,
                    message="pytest counted it in its final line; run pytest with -rA (or "
                            "-rfE) to have the summary name it"), pytest=False)
            if missing > MAX_UNNAMED:
                self._add(TestCase(
                    name=f"{missing - MAX_UNNAMED} more {status.value} not named in the log",
                    suite="pytest", status=status), pytest=False)


def _short(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def summarise(chunks: Iterable[bytes], formats: frozenset[str], origin: Origin,
              suite_name: str) -> TestRun:
    """The whole of a log at once (tests, `herald render`-like callers)."""
    summary = LogSummary(formats, origin, suite_name)
    for chunk in chunks:
        summary.feed(chunk)
    return summary.result()
