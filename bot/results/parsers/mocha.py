"""Mocha's JSON reporter (`mocha --reporter json`), read with bounded memory.

Mocha writes `{stats, tests, pending, failures, passes}`, and each test object appears in
`tests` *and* in one of the other three, so only `tests` is read as the executions (each
entry one record, however many share a title). Its entries carry their outcome themselves:

- a filled `err` -> failed;
- an empty `err` with `speed` (which Mocha sets on every pass) -> passed;
- an empty `err` without `speed` (`it.skip`, `this.skip()`, a test with no body) -> skipped.

`failures` is read too, for what is in no `tests` entry: a failing hook (`"before each" hook
for "reads a row"`; the tests it stopped are in no list at all) or an uncaught error. Each
`failures` entry is matched against the failed tests of the same full title and file; those
left over become ERROR cases, so a failure Mocha listed is never dropped. (Both lists hold
failures only, so matching keeps memory bounded by the failures.)

Retries (`--retries`, `this.retries`): `currentRetry` counts the earlier attempts, which all
failed; Mocha does not keep their errors, and the attempts say so. The run's duration is
`stats.duration`.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, BinaryIO, ClassVar

from bot.results.model import Attempt, Status, Suite, TestCase, TestRun

from . import _jsonstream, _values
from ._base import ReportError
from .jest import message_and_type

#: `{"stats": {...flat counters...}, "tests": [` is how every Mocha JSON report starts;
#: mochawesome's also starts with stats, but its tests are under "results".
_HEAD = re.compile(rb'\A\s*\{\s*"stats"\s*:\s*\{[^{}]*"passes"[^{}]*\}\s*,\s*"tests"\s*:\s*\[')


class MochaJson:
    """The `StreamFormat` for Mocha's JSON reporter."""

    name: ClassVar[str] = "Mocha JSON"

    @staticmethod
    def detect(first: bytes) -> bool:
        return _HEAD.match(first.removeprefix(b"\xef\xbb\xbf")) is not None

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        reader = _Reader(source, text_limit)
        try:
            _jsonstream.read(
                stream,
                [
                    _jsonstream.Wanted("stats", reader.stats, first_only=True),
                    _jsonstream.Wanted("tests.item", reader.test),
                    _jsonstream.Wanted("failures.item", reader.failure),
                ],
            )
        except _jsonstream.Broken as exc:
            raise ReportError(source, reader.broken(exc), reader.partial()) from None
        return reader.run()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class _Reader:
    def __init__(self, source: str, text_limit: int) -> None:
        self.source = source
        self.limit = text_limit
        self.suites: dict[str, Suite] = {}
        self.tests = 0
        self.duration: float | None = None
        #: (full title, file) of each failed test, and the `failures` entries not yet
        #: matched to one; both hold failures only.
        self.failed: Counter[tuple[str, str]] = Counter()
        self.unmatched: list[dict[str, Any]] = []
        self._strings: dict[str, str] = {}

    def shared(self, value: str) -> str:
        return self._strings.setdefault(value, value)

    def stats(self, value: Any) -> None:
        if isinstance(value, dict):
            duration = _number(value.get("duration"))
            self.duration = duration / 1000 if duration is not None and duration >= 0 else None

    def suite(self, path: str) -> Suite:
        suite = self.suites.get(path)
        if suite is None:
            suite = self.suites[path] = Suite(name=path, source=self.source)
        return suite

    def test(self, entry: Any) -> None:
        self.tests += 1
        if not isinstance(entry, dict):
            return
        err = entry.get("err")
        if isinstance(err, dict) and err:
            status = Status.FAILED
        elif entry.get("speed") is not None:
            status = Status.PASSED
        else:
            status = Status.SKIPPED
        case = self.case(entry, status)
        if status is Status.FAILED:
            self.failed[self.key(entry)] += 1
        retries = entry.get("currentRetry")
        if isinstance(retries, int) and not isinstance(retries, bool) and retries > 0:
            case.attempts = [
                Attempt(
                    status=Status.FAILED,
                    message=f"attempt {index} of {retries + 1} failed; Mocha's JSON reporter "
                    "does not record the errors of earlier attempts",
                )
                for index in range(1, retries + 1)
            ]
        self.suite(case.suite).cases.append(case)

    def failure(self, entry: Any) -> None:
        if not isinstance(entry, dict):
            return
        # Matched as they come when the tests were read first (Mocha's order); the rest
        # waits for the end, in case a producer wrote failures before tests.
        key = self.key(entry)
        if self.failed[key] > 0:
            self.failed[key] -= 1
        else:
            self.unmatched.append(entry)

    def reconcile(self, *, final: bool) -> list[TestCase]:
        """Drop the `failures` entries that are failed tests already counted; at the end,
        the rest become ERROR cases."""
        left = []
        for entry in self.unmatched:
            key = self.key(entry)
            if self.failed[key] > 0:
                self.failed[key] -= 1
            else:
                left.append(entry)
        self.unmatched = left
        if not final:
            return []
        errors = [self.case(entry, Status.ERROR) for entry in left]
        self.unmatched = []
        for case in errors:
            self.suite(case.suite).cases.append(case)
        return errors

    def key(self, entry: dict[str, Any]) -> tuple[str, str]:
        return (_text(entry.get("fullTitle")) or "", _text(entry.get("file")) or "")

    def case(self, entry: dict[str, Any], status: Status) -> TestCase:
        title = _text(entry.get("title")) or ""
        full = _text(entry.get("fullTitle")) or title
        path = _text(entry.get("file")) or ""
        # fullTitle is the suites' titles and the test's, joined by spaces.
        parent = full[: -len(title)].rstrip() if title and full.endswith(title) else ""
        duration = _number(entry.get("duration"))
        case = TestCase(
            name=self.shared(title),
            classname=self.shared(parent),
            suite=self.shared(path),
            status=status,
            duration=duration / 1000 if duration and duration > 0 else 0.0,
            file=self.shared(path) if path else None,
            source=self.source,
        )
        err = entry.get("err")
        if status.is_failure and isinstance(err, dict):
            case.message = _values.clean(_text(err.get("message")), self.limit)
            case.stack_trace = _values.clean(_text(err.get("stack")), self.limit)
            # Mocha copies an error's own properties only: `name` is there for
            # AssertionError, not for a plain TypeError, whose stack still starts with it.
            case.failure_type = _text(err.get("name")) or message_and_type(case.stack_trace)[1]
            if not case.message:
                case.message = _values.first_line(case.stack_trace)
        if status is Status.ERROR and not case.message:
            case.message = "Mocha listed this failure without an error"
        return case

    def cases_read(self) -> int:
        return sum(len(suite.cases) for suite in self.suites.values())

    def run(self) -> TestRun:
        self.reconcile(final=True)
        return TestRun(
            id=self.source,
            suites=[s for s in self.suites.values() if s.cases],
            duration=self.duration,
        )

    def partial(self) -> TestRun | None:
        self.reconcile(final=True)
        return self.run() if self.cases_read() else None

    def broken(self, exc: _jsonstream.Broken) -> str:
        if self.tests:
            where = f"after tests[{self.tests - 1}], the last complete test"
        else:
            where = "before the first complete entry of tests"
        cases = self.cases_read() + len(self.unmatched)
        kept = f"; kept the {cases:,} test case{'' if cases == 1 else 's'} read before it"
        if exc.truncated:
            return f"truncated: the JSON ends {where}" + (kept if cases else "")
        return f"invalid JSON {where} ({exc.detail})" + (kept if cases else "")
