"""RSpec `--format json`: one JSON document, its `examples` read one at a time.

`{"version", "messages": [...], "examples": [{id, description, full_description, status,
file_path, line_number, run_time, pending_message, exception: {class, message, backtrace}}],
"summary": {duration, example_count, failure_count, pending_count,
errors_outside_of_examples_count}, "summary_line"}`.

Each example is one case (two examples with the same description stay two): name = its
full description, classname = the example group (the full description minus the example's
own), suite = its spec file. `passed` -> passed; `pending` -> skipped with its pending
message; `failed` -> failed when the exception is an expectation (or mock expectation, or a
pending example that unexpectedly passed), error for any other exception (the code under test
raised). RSpec has no retries of its own (rspec-retry leaves no trace in this format), so
nothing is flaky.

`errors_outside_of_examples_count` counts what no example records: a spec file that failed
to load, an error in `before(:suite)`/`after(:context)`. Each becomes an ERROR case named
after its message (RSpec writes them to `messages`); a load error leaves no examples at all,
and without these cases the run would read as green. Run duration = `summary.duration`.

Reading: RSpec writes compact JSON (Ruby's `to_json`), where a raw `},{"id":` can only
separate two examples (a quote inside a string is always escaped), so each example is cut
out of the byte stream and decoded by orjson on its own: memory holds one example, and the
cost is close to a bare orjson pass. Any other layout (pretty-printed, keys reordered), or an
example the cut does not decode, is read with ijson's C parser event by event instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO, ClassVar

import ijson
import orjson

from bot.results.model import Status, Suite, TestCase, TestRun

from . import _values
from ._base import ReportError

CHUNK = 1024 * 1024
#: `version`/`messages` before the examples; a head larger than this is not RSpec's.
MAX_HEAD = 16 * 1024 * 1024
_DETECT = re.compile(
    rb'\A\s*\{\s*"version"\s*:\s*"[0-9][^"]{0,40}"\s*,\s*"(?:messages|seed|examples|summary)"'
)
_RSPEC_MARKERS = (b'"full_description"', b'"summary_line"', b'"errors_outside_of_examples_count"')
_SEPARATOR = b'},{"id":'
_START = b'"examples":['
#: Exceptions that mean "an expectation did not hold"; any other exception is an error.
_ASSERTIONS = frozenset({
    "RSpec::Expectations::ExpectationNotMetError",
    "RSpec::Expectations::MultipleExpectationsNotMetError",
    "RSpec::Mocks::MockExpectationError",
    "RSpec::Core::Pending::PendingExampleFixedError",
    "Minitest::Assertion",
})
_INF = float("inf")
_LOCATION = re.compile(r"# (\./)?([^\s:]+\.rb):(\d+)")


class _Fallback(Exception):
    """The compact-layout reader cannot go on; the event reader can."""


class RSpecJson:
    """`rspec --format json`."""

    name: ClassVar[str] = "RSpec JSON"

    @staticmethod
    def detect(first: bytes) -> bool:
        if first.startswith(b"\xef\xbb\xbf"):
            first = first[3:]
        return _DETECT.match(first) is not None and any(m in first for m in _RSPEC_MARKERS)

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        reader = _Reader(source, text_limit)
        start = _position(stream)
        if start is not None:
            try:
                return reader.compact(stream)
            except _Fallback:
                stream.seek(start)
                reader = _Reader(source, text_limit)
        return reader.events(stream)


def _position(stream: BinaryIO) -> int | None:
    try:
        return stream.tell() if stream.seekable() else None
    except (OSError, ValueError):
        return None


class _Reader:
    def __init__(self, source: str, text_limit: int) -> None:
        self.source = source
        self.limit = text_limit
        self.suites: dict[str, Suite] = {}
        self.files: dict[object, tuple[Suite, str | None]] = {}
        self.groups: dict[str, str] = {}
        self.count = 0
        self.messages: list[str] = []
        self.summary: dict[str, Any] | None = None

    # -- the compact layout ---------------------------------------------------------------

    def compact(self, stream: BinaryIO) -> TestRun:
        buffer = bytearray()
        read = stream.read
        while True:  # the head: everything before the examples
            at = buffer.find(_START)
            if at != -1:
                break
            chunk = read(CHUNK)
            if not chunk or len(buffer) > MAX_HEAD:
                raise _Fallback
            buffer += chunk
        head = bytes(buffer[:at]).rstrip().rstrip(b",")
        try:
            self.head(orjson.loads(head + b"}"))
        except orjson.JSONDecodeError:
            raise _Fallback from None
        del buffer[: at + len(_START)]
        add = self.add
        loads = orjson.loads
        find = buffer.find
        scan = 0
        while True:
            start = 0
            while True:
                cut = find(_SEPARATOR, scan)
                if cut == -1:
                    break
                try:
                    example = loads(memoryview(buffer)[start : cut + 1])
                except orjson.JSONDecodeError:
                    raise _Fallback from None
                if type(example) is not dict:
                    raise _Fallback
                add(example)
                start = cut + 2
                scan = start
            if start:
                del buffer[:start]
            chunk = read(CHUNK)
            if not chunk:
                break
            scan = max(0, len(buffer) - len(_SEPARATOR) + 1)
            buffer += chunk
        return self.compact_end(bytes(buffer))

    def compact_end(self, rest: bytes) -> TestRun:
        """The last example and the summary after the examples."""
        end = rest.rfind(b'],"summary":')
        if end == -1:
            end = rest.rfind(b"]}")
        if end == -1:
            raise self.broken(f"truncated: the JSON ends inside examples[{self.count}]")
        last = rest[:end].strip()
        if last:
            try:
                example = orjson.loads(last)
            except orjson.JSONDecodeError:
                raise _Fallback from None
            if type(example) is not dict:
                raise _Fallback
            self.add(example)
        try:
            tail = orjson.loads(b"{" + rest[end + 2 :]) if rest[end + 1 : end + 2] == b"," else {}
        except orjson.JSONDecodeError:
            reason = "truncated: the JSON ends after the examples, in the summary"
            raise self.broken(reason) from None
        if type(tail) is dict and type(tail.get("summary")) is dict:
            self.summary = tail["summary"]
        return self.finish()

    # -- any layout: ijson events ---------------------------------------------------------

    def events(self, stream: BinaryIO) -> TestRun:
        where = "the document"
        try:
            for key, value in _top_level(stream):
                if key == "examples.item":
                    where = f"examples[{self.count}]"
                    if type(value) is dict:
                        self.add(value)
                    else:
                        raise self.broken(f"{where} is not an object")
                    where = "the document"
                elif key == "examples.item:start":
                    where = f"examples[{self.count}]"
                elif key == "messages" and type(value) is list:
                    self.messages = [m for m in value if type(m) is str]
                elif key == "summary" and type(value) is dict:
                    self.summary = value
        except ijson.IncompleteJSONError as exc:
            if "premature eof" in str(exc).lower() or "incomplete" in str(exc).lower():
                raise self.broken(f"truncated: the JSON ends inside {where}") from None
            raise self.broken(f"invalid JSON inside {where}: {_short(exc)}") from None
        except ijson.JSONError as exc:
            raise self.broken(f"invalid JSON inside {where}: {_short(exc)}") from None
        except (OSError, EOFError) as exc:
            raise self.broken(f"cannot read: {exc}") from None
        return self.finish()

    # -- cases ----------------------------------------------------------------------------

    def head(self, head: object) -> None:
        if type(head) is dict and type(head.get("messages")) is list:
            self.messages = [m for m in head["messages"] if type(m) is str]

    def add(self, example: dict[str, Any]) -> None:
        self.count += 1
        get = example.get
        name = get("full_description")
        description = get("description")
        if type(name) is not str or not name:
            name = description if type(description) is str and description else None
            name = name or _text(get("id")) or f"example {self.count}"
        group = ""
        if type(description) is str and description and name.endswith(description):
            group = name[: -len(description)].rstrip()
            group = self.groups.setdefault(group, group)  # one string per example group
        where = self.files.get(get("file_path"))
        if where is None:
            where = self.file(get("file_path"))
        suite, path = where
        run_time = get("run_time")
        if type(run_time) is not float or not 0.0 <= run_time < _INF:
            run_time = _values.seconds(str(run_time or 0))
        line = get("line_number")
        if type(line) is not int or line < 0:
            line = None
        case = TestCase(name, group, suite.name, Status.PASSED, run_time, path, line,
                        source=self.source)
        status = get("status")
        if status == "passed":
            pass
        elif status == "pending":
            case.status = Status.SKIPPED
            case.message = _values.clean(_text(get("pending_message")), self.limit)
        else:
            # "failed", and anything RSpec may add later: shown, never taken as a pass.
            self.failure(case, get("exception"), status)
        suite.cases.append(case)

    def file(self, raw: object) -> tuple[Suite, str | None]:
        """The suite of a spec file (`./spec/a_spec.rb` -> `spec/a_spec.rb`)."""
        path = raw if type(raw) is str else ""
        path = path.removeprefix("./")
        suite = self.suites.get(path)
        if suite is None:
            suite = self.suites[path] = Suite(name=path or "rspec", source=self.source)
        where = (suite, path or None)
        if isinstance(raw, str):
            self.files[raw] = where
        return where

    def failure(self, case: TestCase, exception: object, status: object) -> None:
        case.status = Status.FAILED
        if type(exception) is not dict:
            case.message = None if status == "failed" else f"status {status!r}"
            return
        kind = _text(exception.get("class"))
        case.failure_type = kind
        if kind and kind not in _ASSERTIONS and "Expectation" not in kind:
            case.status = Status.ERROR
        message = _text(exception.get("message"))
        case.message = _values.clean(message.strip() if message else None, self.limit)
        trace = exception.get("backtrace")
        lines = [t for t in trace if type(t) is str] if type(trace) is list else []
        head = f"{kind}: {message.strip()}" if kind and message else (kind or message or "")
        case.stack_trace = _values.clean("\n".join([head, *lines]), self.limit)

    def finish(self) -> TestRun:
        errors = [m for m in self.messages if "error occurred" in m.lower()]
        counted = (self.summary or {}).get("errors_outside_of_examples_count")
        wanted = max(len(errors), counted if type(counted) is int else 0)
        for index in range(wanted):
            self.outside(errors[index] if index < len(errors) else None, index, wanted)
        duration = (self.summary or {}).get("duration")
        return TestRun(
            id=self.source,
            suites=[s for s in self.suites.values() if s.cases],
            duration=_values.seconds(str(duration)) if duration is not None else None,
        )

    def outside(self, message: str | None, index: int, total: int) -> None:
        suite = self.suites.get("")
        if suite is None:
            suite = self.suites[""] = Suite(name="rspec", source=self.source)
        title = _values.first_line(message) if message else None
        if title:
            title = title.removesuffix(" - Did you mean?")
        name = title or "error outside of examples"
        if total > 1 and not title:
            name += f" #{index + 1}"
        case = TestCase(name=name, classname="", suite=suite.name, status=Status.ERROR,
                        failure_type="error outside of examples", source=self.source)
        if message:
            body = message.strip()
            case.message = _values.clean(body, self.limit)
            case.stack_trace = case.message
            found = _LOCATION.search(body)
            if found:
                case.file, case.line = found.group(2), int(found.group(3))
        else:
            case.message = ("RSpec counted an error outside of examples (a spec file that did "
                            "not load, a failing before/after(:suite) hook) but wrote no details")
        suite.cases.append(case)

    def broken(self, reason: str) -> ReportError:
        run = self.finish()
        cases = sum(len(s.cases) for s in run.suites)
        if cases:
            reason += f"; kept the {cases:,} test case{'' if cases == 1 else 's'} read before it"
        return ReportError(self.source, reason, run if cases else None)


def _top_level(stream: BinaryIO) -> Iterator[tuple[str, Any]]:
    """(key, value) for the document's top-level members, and each example on its own
    ("examples.item"), built from ijson's events so only one example is held at a time."""
    builder: ijson.ObjectBuilder | None = None
    target = ""
    depth = 0
    for prefix, event, value in _events(stream):
        if builder is not None:
            builder.event(event, value)
            if event in ("start_map", "start_array"):
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
                if depth == 0:
                    yield target, builder.value
                    builder = None
            continue
        if event in ("start_map", "start_array") and prefix in ("examples.item", "messages",
                                                                 "summary"):
            if prefix == "examples.item":
                yield "examples.item:start", None
            builder, target, depth = ijson.ObjectBuilder(), prefix, 1
            builder.event(event, value)
        elif prefix == "examples.item":
            yield prefix, value  # a scalar where an example should be


def _events(stream: BinaryIO) -> Iterator[tuple[str, str, Any]]:
    """ijson's events, pushed chunk by chunk: the events before a syntax error in a chunk
    still arrive (the pull interface drops the whole chunk's), so no case read is lost."""
    events = ijson.sendable_list()
    coro = ijson.parse_coro(events, use_float=True)
    while True:
        chunk = stream.read(64 * 1024)
        try:
            if chunk:
                coro.send(chunk)
            else:
                coro.close()
        except ijson.JSONError:
            yield from events
            raise
        yield from events
        del events[:]
        if not chunk:
            return


def _text(value: object) -> str | None:
    return value if type(value) is str else None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
