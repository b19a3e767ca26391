"""CTRF, the Common Test Report Format (https://ctrf.io): one JSON document,
`{"results": {"tool": {...}, "summary": {...}, "tests": [{...}, ...]}}`.

Written by jest-, mocha-, playwright-, cypress- and vitest-ctrf reporters and many more.
A test has `name`, `status`, `duration` (milliseconds) and optionally `message`, `trace`,
`filePath`, `line`, `suite` (a string or, since spec 0.0.x, a list), `stdout`/`stderr`
(lists of lines), `retries`, `flaky` and `retryAttempts`.

Outcomes: passed is passed; failed is failed (CTRF has no separate error status);
skipped and pending are skipped; other is skipped unless its `rawStatus` names a breakage
(timedOut, interrupted, error, crashed, broken), which is an error. An unknown status is
an error naming it.

Retries: only what the producer recorded. `retryAttempts` (newer spec) gives each earlier
attempt; when it also lists the final execution (one entry more than `retries`) that last
entry is the case itself and is not repeated. Without it, `retries: N` means N earlier
attempts that failed (producers retry only after a failure), messages unknown: a passed
test with retries is flaky, a failed one failed every time. `flaky: true` without retries
makes nothing flaky. Same-named tests are separate records.

The run's duration is the summary's `duration`, else `stop - start`; its counts are never
read.

Streaming: the document is read in chunks, and `results.tests` is parsed by orjson in
batches of whole test objects: a batch is cut at a `},` and accepted only if it parses as
a JSON array, which it does only when the cut falls between two tests (a cut inside a
string or a nested object leaves it unbalanced). When a cut fails, the tests are found one
by one with an exact scan. Memory holds one batch (about a megabyte) and the cases.
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO, ClassVar

import orjson

from bot.results.compact import CaseList
from bot.results.model import Attempt, Status, Suite, TestCase, TestRun

from . import _values
from ._base import KEEP_OUTPUT_FOR_PASSED, ReportError

CHUNK_SIZE = 1024 * 1024
#: One JSON value (a test, the summary) larger than this is refused: a test's object is
#: read whole, and no real one comes near it.
MAX_VALUE = 256 * 1024 * 1024

#: The format's marker, or a document that opens with CTRF's own nesting: `results` first,
#: holding one of CTRF's keys first (Mocha's and Jest's JSON have neither).
_DETECT = re.compile(
    rb'"reportFormat"\s*:\s*"CTRF"'
    rb'|\A\s*\{\s*"results"\s*:\s*\{\s*"(?:tool"\s*:\s*\{|summary"\s*:\s*\{|tests"\s*:\s*\[)'
)
_WHITESPACE = b" \t\r\n"
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
#: Strings (skipped whole), brackets, and a lone quote: a string cut by the buffer's end.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.DOTALL)
_SCALAR = re.compile(rb"-?[0-9][0-9.eE+-]*|true|false|null")
#: Names, suites and paths longer than this are cut (and cleaned of ANSI escapes).
_NAME_LIMIT = 1024
_INFINITY = float("inf")
_NUMBER_TYPES = (int, float)
_EXCEPTION = re.compile(r"([A-Z][\w.]*(?:Error|Exception))\b:")
_BROKEN = ("timedout", "timeout", "interrupted", "error", "crash", "broken", "fail")
_STATUSES = {
    "passed": Status.PASSED,
    "failed": Status.FAILED,
    "skipped": Status.SKIPPED,
    "pending": Status.SKIPPED,
}


class _Truncated(Exception):
    pass


class _Invalid(Exception):
    pass


class CtrfFormat:
    name: ClassVar[str] = "CTRF"

    @staticmethod
    def detect(first: bytes) -> bool:
        head = first.removeprefix(b"\xef\xbb\xbf").lstrip(_WHITESPACE)
        return head.startswith(b"{") and _DETECT.search(head, 0, 1024 * 1024) is not None

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        return _Reader(source, stream, text_limit).read()


class _Reader:
    def __init__(self, source: str, stream: BinaryIO, text_limit: int) -> None:
        self.source = source
        self.stream = stream
        self.text_limit = text_limit
        self.buf = b""
        self.pos = 0
        self.eof = False
        self.where = "the document"
        self.index = 0  # the test being read, for messages
        self.suites: dict[str, Suite] = {}
        self.summary: dict[str, Any] = {}
        self.seen_tests = False
        self.strings: dict[str, str] = {}
        #: Below this buffer position, tests are read one at a time (see `_batch`).
        self.one_by_one_until = 0

    # -- the document ------------------------------------------------------------------

    def read(self) -> TestRun:
        try:
            self._object(self._top_key)
            self._skip_ws()
            if self.pos < len(self.buf) or not self.eof:
                raise _Invalid("text after the end of the document")
        except _Truncated:
            raise self._error(f"truncated: the JSON ends inside {self.where}") from None
        except (_Invalid, orjson.JSONDecodeError) as exc:
            raise self._error(f"invalid JSON in {self.where}: {exc}") from None
        if not self.seen_tests:
            raise self._error("not CTRF: the document has no results.tests list")
        return self._run()

    def _error(self, reason: str) -> ReportError:
        run = self._run()
        cases = sum(len(s.cases) for s in run.suites)
        if cases:
            reason += f"; kept the {cases:,} test case{'' if cases == 1 else 's'} read before it"
        return ReportError(self.source, reason, run if cases else None)

    def _run(self) -> TestRun:
        summary = self.summary
        duration = _milliseconds(summary.get("duration"))
        start: Any = summary.get("start")
        stop: Any = summary.get("stop")
        if duration is None and _number(start) and _number(stop):
            start, stop = float(start), float(stop)
            if stop >= start > 0:
                duration = (stop - start) / 1000
        suites = [s for s in self.suites.values() if s.cases]
        return TestRun(id=self.source, suites=suites, duration=duration)

    def _top_key(self, key: str) -> None:
        if key == "results":
            self.where = "results"
            self._object(self._results_key)
            self.where = "the document"
        else:
            self._skip_value()

    def _results_key(self, key: str) -> None:
        if key == "tests":
            self._tests()
        elif key == "summary":
            self.where = "results.summary"
            value = orjson.loads(self._value())
            self.summary = value if isinstance(value, dict) else {}
            self.where = "results"
        else:
            self._skip_value()

    def _object(self, on_key: Any) -> None:
        """Walk a JSON object, calling `on_key(key)` with the reader at each value."""
        self._expect(b"{")
        self._skip_ws()
        if self._peek() == b"}":
            self.pos += 1
            return
        while True:
            self._skip_ws()
            key = orjson.loads(self._value())
            if not isinstance(key, str):
                raise _Invalid("an object key is not a string")
            self._expect(b":")
            self._skip_ws()
            on_key(key)
            self._skip_ws()
            if self._peek() == b",":
                self.pos += 1
                continue
            self._expect(b"}")
            return

    # -- results.tests -----------------------------------------------------------------

    def _tests(self) -> None:
        self.seen_tests = True
        self.where = "results.tests"
        self._expect(b"[")
        self._skip_ws()
        if self._peek() == b"]":
            self.pos += 1
            return
        while True:
            self.where = f"results.tests[{self.index}]"
            self._skip_ws()
            self._add_batch(self._batch())
            self._skip_ws()
            following = self._peek()
            if following == b",":
                self.pos += 1
            elif following == b"]":
                self.pos += 1
                self.where = "results"
                return
            else:
                raise _Invalid(f"expected , or ] after a test, found {following!r}")

    def _batch(self) -> list[Any]:
        """Tests from here up to a cut near the buffer's end, parsed in one orjson call;
        else the next test alone. The reader ends after the last test returned."""
        buf, start = self.buf, self.pos
        if len(buf) - start < CHUNK_SIZE // 2 and not self.eof:
            self._fill()
            buf, start = self.buf, self.pos
        if start < self.one_by_one_until:
            return [orjson.loads(self._value())]
        search_end = len(buf)
        for _ in range(3):  # a cut inside the last test: try the cut before it
            cut = buf.rfind(b"},", start, search_end)
            if cut == -1:
                break
            try:
                tests = orjson.loads(b"[" + buf[start : cut + 1] + b"]")
            except orjson.JSONDecodeError:
                search_end = cut
                continue
            self.pos = cut + 1
            return tests  # type: ignore[no-any-return]
        # No cut worked: the tests up to the first one tried are read one by one, so a
        # region is never tried as a batch twice (which would make the reading quadratic).
        self.one_by_one_until = len(buf)
        return [orjson.loads(self._value())]

    def _add_batch(self, tests: list[Any]) -> None:
        # The hot loop: a plain passed test (nearly all of them) is built inline, field by
        # field like JUnitParser's, at about a third of the cost of `_case`; everything
        # else goes through `_case`. `_CASE_FIELDS` in junit.py guards the field list.
        suites, source, new = self.suites, self.source, object.__new__
        strings: dict[str, str] = self.strings
        last_name: object = None
        cases = CaseList()
        suite = Suite(name="")
        passed, numbers, index = Status.PASSED, _NUMBER_TYPES, self.index
        for test in tests:
            if type(test) is not dict:
                self.index = index
                self.where = f"results.tests[{index}]"
                raise _Invalid("a test is not an object")
            index += 1
            get = test.get
            suite_name = get("suite", "")
            if suite_name != last_name:
                last_name = suite_name
                key = _suite_key(suite_name)
                found = suites.get(key)
                if found is None:
                    found = suites[key] = Suite(name=key, source=source)
                suite, cases = found, found.cases
            if (
                get("status") != "passed"
                or get("retries")
                or get("retryAttempts")
                or "line" in test
            ):
                cases.append(self._case(test))
                continue
            name: Any = get("name")
            duration: Any = get("duration")
            file: Any = get("filePath")
            if (
                type(name) is not str
                or len(name) > _NAME_LIMIT
                or "\x1b" in name
                or type(duration) not in numbers
                or not 0 <= duration < _INFINITY
                or (file is not None and (type(file) is not str or len(file) > _NAME_LIMIT))
            ):
                cases.append(self._case(test))
                continue
            case = new(TestCase)
            case.name = name
            case.classname = ""
            case.suite = suite.name
            case.status = passed
            case.duration = duration / 1000
            # One string object per test file, not one per test.
            case.file = strings.setdefault(file, file) if file else None
            case.line = None
            case.message = None
            case.failure_type = None
            case.stack_trace = None
            case.stdout = None
            case.stderr = None
            case.attempts = []
            case.source = source
            case.origin = None
            cases.append(case)
        self.index = index

    def _case(self, test: dict[str, Any]) -> TestCase:
        limit = self.text_limit
        raw = test.get("status")
        status = _STATUSES.get(raw) if isinstance(raw, str) else None
        message = _text(test.get("message"), limit)
        if message is not None:
            message = message.rstrip()  # jest ends every message with a newline
        if status is None:
            raw_status = str(test.get("rawStatus") or "")
            if raw == "other":
                broken = any(word in raw_status.lower() for word in _BROKEN)
                status = Status.ERROR if broken else Status.SKIPPED
                message = message or (raw_status or "status: other")
            else:
                status = Status.ERROR
                message = message or f"unknown CTRF status {raw!r}"
        suite = _suite_key(test.get("suite"))
        file = test.get("filePath")
        line = test.get("line")
        name = test.get("name")
        failing = status.is_failure
        name = name if isinstance(name, str) else str(name or "")
        if isinstance(file, str):
            file = _values.clean(file, _NAME_LIMIT)
        case = TestCase(
            name=_values.clean(name, _NAME_LIMIT) or name[:_NAME_LIMIT],
            suite=suite,
            status=status,
            duration=_milliseconds(test.get("duration")) or 0.0,
            file=self.strings.setdefault(file, file) if isinstance(file, str) and file else None,
            line=line if isinstance(line, int) and line >= 0 else None,
            message=message,
            source=self.source,
        )
        if failing:
            case.stack_trace = _text(test.get("trace"), limit)
            found = _EXCEPTION.match(message or "")
            case.failure_type = found.group(1) if found else None
        if failing or KEEP_OUTPUT_FOR_PASSED:
            case.stdout = _lines(test.get("stdout"), limit)
            case.stderr = _lines(test.get("stderr"), limit)
        case.attempts = _attempts(test, status, limit)
        return case

    # -- scanning ----------------------------------------------------------------------

    def _fill(self, at_least: int = CHUNK_SIZE) -> bool:
        """Read more; False at the end of the stream. Reads grow with what is buffered, so
        a long value is scanned a bounded number of times (linear overall)."""
        if self.eof:
            return False
        buf = self.buf[self.pos :]
        if len(buf) > MAX_VALUE:
            raise _Invalid(f"a value longer than {MAX_VALUE // (1024 * 1024)} MB")
        data = self.stream.read(max(at_least, len(buf)))
        if not data:
            self.eof = True
        self.one_by_one_until = max(0, self.one_by_one_until - self.pos)
        self.buf, self.pos = buf + data, 0
        return bool(data)

    def _peek(self) -> bytes:
        if self.pos >= len(self.buf) and not self._fill():
            raise _Truncated
        return self.buf[self.pos : self.pos + 1]

    def _skip_ws(self) -> None:
        while True:
            buf, pos = self.buf, self.pos
            end = len(buf)
            while pos < end and buf[pos] in _WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < end or not self._fill():
                return

    def _expect(self, token: bytes) -> None:
        self._skip_ws()
        found = self._peek()
        if found != token:
            raise _Invalid(f"expected {token.decode()!r}, found {found.decode(errors='replace')!r}")
        self.pos += 1

    def _value(self) -> bytes:
        """The bytes of the JSON value at the reader, which moves past it."""
        while True:
            end = _value_end(self.buf, self.pos)
            if end > 0 and (end < len(self.buf) or self.eof):
                value = self.buf[self.pos : end]
                self.pos = end
                return value
            if not self._fill():
                if end > 0:
                    continue
                raise _Truncated

    def _skip_value(self) -> None:
        self._value()


def _value_end(buf: bytes, pos: int) -> int:
    """Index just past the JSON value starting at `pos`; -1 when `buf` ends inside it."""
    if pos >= len(buf):
        return -1
    first = buf[pos]
    if first == 0x22:  # "
        match = _STRING.match(buf, pos)
        return match.end() if match else -1
    if first in b"{[":
        depth = 0
        for token in _TOKEN.finditer(buf, pos):
            text = token.group()
            if text in (b"{", b"["):
                depth += 1
            elif text in (b"}", b"]"):
                depth -= 1
                if depth == 0:
                    return token.end()
            elif text == b'"':
                return -1
        return -1
    match = _SCALAR.match(buf, pos)
    if match is None:
        raise _Invalid(f"unexpected {buf[pos : pos + 12].decode(errors='replace')!r}")
    return match.end()


def _suite_key(suite: object) -> str:
    """The suite's name: CTRF writes a string ("cart.test.js > cart") or a list."""
    if isinstance(suite, list):
        suite = " > ".join(str(part) for part in suite[:64])
    if not isinstance(suite, str):
        return ""
    if len(suite) <= _NAME_LIMIT and "\x1b" not in suite:
        return suite
    return _values.clean(suite, _NAME_LIMIT) or ""


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _milliseconds(value: object) -> float | None:
    if not _number(value) or not 0 <= value < float("inf"):  # type: ignore[operator]
        return None
    return float(value) / 1000  # type: ignore[arg-type]


def _text(value: object, limit: int) -> str | None:
    if value is None:
        return None
    return _values.clean(value if isinstance(value, str) else str(value), limit)


def _lines(value: object, limit: int) -> str | None:
    if isinstance(value, list):
        value = "\n".join(str(line) for line in value)
    return _text(value, limit)


def _attempts(test: dict[str, Any], status: Status, limit: int) -> list[Attempt]:
    retries = test.get("retries")
    retries = retries if isinstance(retries, int) and retries > 0 else 0
    recorded = test.get("retryAttempts")
    if isinstance(recorded, list) and recorded:
        entries = [entry for entry in recorded if isinstance(entry, dict)]
        if retries and len(entries) == retries + 1:
            entries = entries[:-1]  # the last one is the final execution: the case itself
        return [_attempt(entry, limit) for entry in entries]
    if not retries:
        return []
    # Only the count is known: every earlier attempt failed, or it would not have been
    # retried. Capped, so a bogus count cannot allocate without bound.
    return [Attempt(status=Status.FAILED) for _ in range(min(retries, 100))]


def _attempt(entry: dict[str, Any], limit: int) -> Attempt:
    raw = entry.get("status")
    status = _STATUSES.get(raw, Status.ERROR) if isinstance(raw, str) else Status.ERROR
    message = _text(entry.get("message"), limit)
    return Attempt(
        status=status,
        duration=_milliseconds(entry.get("duration")) or 0.0,
        message=message,
        stack_trace=_text(entry.get("trace"), limit) if status.is_failure else None,
    )

