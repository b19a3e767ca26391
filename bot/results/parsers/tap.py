"""TAP (Test Anything Protocol) 12, 13 and 14, as node's test runner and Perl's Test::More
print it: `ok`/`not ok` lines, a `1..N` plan, directives, YAML diagnostics and subtests.

Spec: https://testanything.org/tap-version-14-specification.html. Outcomes:

- `ok` passes, `not ok` fails; `# SKIP reason` is skipped whatever the ok/not ok.
- `not ok # TODO` is an expected failure, not a failure: skipped, with the reason. `ok #
  TODO` (a TODO that now passes) is passed: the test works, and prove calls it a bonus.
- A YAML block (`  ---` ... `  ...`) after a point gives `message` (node: `error`),
  `severity`, `at`/`location` (file and line), `stack`, `duration_ms`, `expected`/`actual`
  (`wanted`/`found`). Perl writes its diagnostics as `#` comments after the point
  (`#   at t/cart.t line 6.`), read the same way for a failing point.
- Subtests are indented four spaces, usually after `# Subtest: name`, and end with the
  parent's own point. The inner tests are the cases; the parent is their suite and is not
  counted, except when it is `not ok` while nothing inside failed (a failing hook or an
  exit after the last inner test): then the parent is an error case of its own.
- Nothing may go missing unseen: a plan that promised more tests than ran (or fewer), a
  `Bail out!`, or a stream that ends with no plan (cut off) each add one error case to
  that level saying how many tests are unaccounted for. When the output stopped early (too
  few tests, no plan, inside a YAML block) a ReportError ("truncated: ...") is raised too,
  its partial run holding that error case: a ReportError alone would not do, since its
  kept passing cases would make the run look green.

Node's closing `# duration_ms N` comment is taken as the run's duration. Lines that are not
TAP (program output) are ignored, as the spec says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar

from bot.results.model import Status, Suite, TestCase, TestRun

from . import _values
from ._base import ReportError

#: Longer lines are cut here (and the rest of the line skipped), so one runaway line of
#: program output costs bounded memory.
LINE_LIMIT = 64 * 1024
#: Deeper subtests than this are read as program output: no real suite nests so far.
MAX_DEPTH = 64

_FIRST_LINE = re.compile(
    rb"TAP version 1[234]\s*$|1\.\.\d+\s*(?:#.*)?$|(?:not )?ok(?: +\d+| +- |\s*$)|# Subtest: \S"
)
_POINT = re.compile(r"(not )?ok\b(?:\s+(\d+))?\s*(?:-\s*)?(.*)")
_PLAN = re.compile(r"1\.\.(\d+)(?:\s*#\s*(.*))?\s*$")
_DIRECTIVE = re.compile(r"(?:^|\s)#\s*(skip|todo)\S*(?:\s+(.*))?$", re.IGNORECASE)
_PERL_AT = re.compile(r"\bat (\S+) line (\d+)\.?")
#: node: '/src/cart.test.mjs:6:3'; node-tap: 'test/cart.js:6:3'
_LOCATION = re.compile(r"(.+?):(\d+)(?::\d+)?$")
_NODE_DURATION = re.compile(r"duration_ms\s+(\d+(?:\.\d*)?)\s*$")


@dataclass(slots=True)
class _Block:
    """One level of tests: the file itself, or a subtest's indented body."""

    name: str
    path: str  # suite name of its cases: the names of the subtests it sits in
    plan: int | None = None
    count: int = 0
    failed: bool = False  # a case at this level or below failed


@dataclass(slots=True)
class _Point:
    case: TestCase
    block: _Block
    parent_of: _Block | None  # the subtest block that ended just before this point
    yaml: list[str] = field(default_factory=list)
    yaml_indent: str | None = None  # the `---` line's indent while inside a YAML block
    yaml_chars: int = 0
    comments: list[str] = field(default_factory=list)
    comment_chars: int = 0


class TapFormat:
    """TAP read line by line: memory holds the open subtests and the current point."""

    name: ClassVar[str] = "TAP"

    @staticmethod
    def detect(first: bytes) -> bool:
        text = first.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n\t ")
        line = text.split(b"\n", 1)[0].rstrip(b"\r")
        # A version line, a plan or a test point first: what TAP producers start with and
        # logs do not ("ok, starting" and "okay" are no points: a number or dash follows).
        return bool(_FIRST_LINE.match(line))

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        return _Reader(source, text_limit).read(stream)


class _Reader:
    def __init__(self, source: str, text_limit: int) -> None:
        self.source = source
        self.text_limit = text_limit
        self.suites: dict[str, Suite] = {}
        self.blocks: list[_Block] = [_Block(name="", path="")]
        self.pending_names: dict[int, str] = {}  # `# Subtest:` names by their depth
        self.point: _Point | None = None
        self.closed: _Block | None = None  # a subtest that ended, awaiting its parent point
        self.duration: float | None = None
        self.seen_plan_end = False
        self.bail_reason: str | None = None

    def read(self, stream: BinaryIO) -> TestRun:
        for raw in _lines(stream):
            if self.bail_reason is not None:
                break  # nothing after a bail-out is a result
            self._line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        in_yaml = self.point is not None and self.point.yaml_indent is not None
        self._finish_point()
        while len(self.blocks) > 1:
            self._close(self.blocks.pop())
        cut = self._check_plan(self.blocks[0])
        if in_yaml:
            cut = cut or "the output ends inside a YAML block"
        suites = [s for s in self.suites.values() if s.cases]
        run = TestRun(id=self.source, suites=suites, duration=self.duration)
        if cut is not None:
            # The error case is in the partial run too, so its cases cannot look green.
            raise ReportError(self.source, f"truncated: {cut}", partial=run)
        return run

    # -- lines -------------------------------------------------------------------------

    def _line(self, line: str) -> None:
        point = self.point
        if point is not None and point.yaml_indent is not None:
            if line.strip() == "..." and line.startswith(point.yaml_indent):
                point.yaml_indent = None
                self._finish_point()
            elif point.yaml_chars < self.text_limit:
                point.yaml.append(line)
                point.yaml_chars += len(line) + 1
            return
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        depth = indent // 4
        if point is not None and stripped == "---" and indent == 4 * len(self.blocks) - 2:
            point.yaml_indent = line[: indent]
            return
        if depth > MAX_DEPTH:
            return
        if stripped.startswith("#"):
            self._comment(stripped, depth)
            return
        if stripped.startswith(("ok", "not ok")):
            match = _POINT.fullmatch(stripped)
            if match is not None:
                self._point(match, depth)
            return
        if stripped.startswith("1.."):
            plan = _PLAN.match(stripped)
            if plan is not None:
                self._finish_point()
                self._enter(depth)
                self.closed = None  # a subtest with no parent point: the next is no parent
                block = self.blocks[-1]
                block.plan = int(plan.group(1))
                if depth == 0 and block.count:
                    self.seen_plan_end = True
            return
        if stripped.startswith("Bail out!"):
            self._finish_point()
            self.bail_reason = stripped[len("Bail out!") :].strip() or "no reason given"

    def _comment(self, stripped: str, depth: int) -> None:
        text = stripped[1:].strip()
        if text.startswith("Subtest:"):
            self._finish_point()
            self.pending_names[depth] = text[len("Subtest:") :].strip()
            return
        point = self.point
        if point is not None and point.case.status.is_failure and not self.seen_plan_end:
            if not text.startswith("Looks like you"):
                if point.comment_chars < self.text_limit:
                    point.comments.append(text)
                    point.comment_chars += len(text) + 1
            return
        if depth == 0:
            duration = _NODE_DURATION.match(text)
            if duration is not None:
                self.duration = float(duration.group(1)) / 1000

    def _enter(self, depth: int) -> None:
        """Open subtest blocks down to `depth`, close those below it."""
        while len(self.blocks) - 1 > depth:
            self._close(self.blocks.pop())
        while len(self.blocks) - 1 < depth:
            outer = self.blocks[-1]
            level = len(self.blocks)
            name = self.pending_names.pop(level - 1, None) or self.pending_names.pop(level, None)
            name = name or f"subtest {outer.count + 1}"
            path = f"{outer.path} > {name}" if outer.path else name
            self.blocks.append(_Block(name=name, path=path))
            self.closed = None

    def _close(self, block: _Block) -> None:
        self._finish_point()
        self._check_plan(block)
        outer = self.blocks[-1]
        outer.failed = outer.failed or block.failed
        self.closed = block

    def _point(self, match: re.Match[str], depth: int) -> None:
        self._finish_point()
        self._enter(depth)
        block = self.blocks[-1]
        parent_of, self.closed = self.closed, None
        block.count += 1
        self.pending_names.pop(depth, None)
        not_ok, number, rest = match.groups()
        description, status, message = rest.strip(), Status.PASSED, None
        directive = _DIRECTIVE.search(description)
        if directive is not None:
            kind = directive.group(1).lower()
            reason = (directive.group(2) or "").strip() or None
            description = description[: directive.start()].strip()
            if kind == "skip":
                status, message = Status.SKIPPED, reason or "skipped"
            elif not_ok:
                status, message = Status.SKIPPED, f"TODO: {reason}" if reason else "TODO"
        elif not_ok:
            status = Status.FAILED
        name = description.replace("\\#", "#") or f"test {number or block.count}"
        case = TestCase(
            name=_values.clean(name, 1024) or name,
            classname=block.path,
            suite=block.path,
            status=status,
            message=message,
            source=self.source,
        )
        self.point = _Point(case=case, block=block, parent_of=parent_of)

    # -- finishing a point -------------------------------------------------------------

    def _finish_point(self) -> None:
        point, self.point = self.point, None
        if point is None:
            return
        case, block = point.case, point.block
        if point.yaml:
            self._apply_yaml(case, _yaml(point.yaml))
        if point.comments and case.status.is_failure:
            self._apply_comments(case, point.comments)
        if point.parent_of is not None:
            # The point closes a subtest: its inner tests are the cases, unless it failed
            # while nothing inside did.
            if not (case.status.is_failure and not point.parent_of.failed):
                return
            case.status = Status.ERROR
            case.message = case.message or "the subtest failed, but none of its tests did"
        if case.status.is_failure:
            block.failed = True
        self._add(case)

    def _apply_yaml(self, case: TestCase, data: dict[str, str]) -> None:
        limit = self.text_limit
        failing = case.status.is_failure
        duration = data.get("duration_ms")
        if duration is not None:
            case.duration = _values.seconds(duration) / 1000
        where = data.get("location") or data.get("at") or data.get("at.file")
        if where:
            located = _LOCATION.match(where.strip())
            if located is not None:
                case.file = _file(located.group(1))
                case.line = int(located.group(2))
            elif data.get("at.line"):
                case.file, case.line = _file(where), _values.integer(data.get("at.line"))
        if not failing:
            return
        message = data.get("message") or data.get("error")
        case.message = _values.clean(message, limit) or case.message
        case.failure_type = data.get("name") or data.get("severity") or None
        parts = [data["stack"]] if data.get("stack") else []
        for expected, actual in (("expected", "actual"), ("wanted", "found")):
            if expected in data or actual in data:
                wanted, got = data.get(expected, ""), data.get(actual, "")
                parts.append(f"{expected}: {wanted}\n{actual}: {got}")
        case.stack_trace = _values.clean("\n".join(parts), limit) if parts else None

    def _apply_comments(self, case: TestCase, comments: list[str]) -> None:
        text = "\n".join(comments)
        case.stack_trace = case.stack_trace or _values.clean(text, self.text_limit)
        if case.file is None:
            at = _PERL_AT.search(text)
            if at is not None:
                case.file, case.line = at.group(1), int(at.group(2))
        if case.message is None:
            # "Failed test 'x'" and "at FILE line N." say nothing the case does not.
            useful = [c for c in comments if c and not c.startswith(("Failed", "at "))]
            case.message = _values.clean("\n".join(useful), self.text_limit) or (
                _values.first_line(text)
            )

    # -- plans and records -------------------------------------------------------------

    def _check_plan(self, block: _Block) -> str | None:
        """Add an error case when `block` ran other than the tests it planned; return why,
        when that means the output stopped early (not when it ran too many)."""
        where = f"subtest {block.path!r}" if block.path else "the file"
        planned, ran = block.plan, block.count
        missing: str | None = None
        if planned is not None and ran < planned:
            missing = f"{planned - ran} of the {planned} tests planned in {where} did not run"
        elif planned is None and ran and (block.path == "" or self.bail_reason is None):
            missing = f"{where} ended after {ran} tests with no plan (1..N)"
        if self.bail_reason is not None:
            if missing is not None or not block.path:
                # Every level that lost tests says so; the file says it bailed regardless.
                reason = f"Bail out! {self.bail_reason}"
                self._error_case(block, "Bail out!", f"{reason}: {missing}" if missing else reason)
            return None
        if missing is not None:
            self._error_case(block, "(plan)", missing)
            return missing
        if planned is not None and ran > planned:
            extra = f"{where} ran {ran} tests, but its plan said {planned}"
            self._error_case(block, "(plan)", extra)
        return None

    def _error_case(self, block: _Block, name: str, message: str) -> None:
        block.failed = True
        self._add(
            TestCase(
                name=name,
                classname=block.path,
                suite=block.path,
                status=Status.ERROR,
                message=message,
                source=self.source,
            )
        )

    def _add(self, case: TestCase) -> None:
        suite = self.suites.get(case.suite)
        if suite is None:
            suite = self.suites[case.suite] = Suite(name=case.suite, source=self.source)
        suite.cases.append(case)


def _file(location: str) -> str:
    return location[len("file://") :] if location.startswith("file://") else location


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of at most LINE_LIMIT bytes; the rest of a longer line is skipped."""
    readline = stream.readline
    while True:
        line = readline(LINE_LIMIT)
        if not line:
            return
        if len(line) == LINE_LIMIT and not line.endswith(b"\n"):
            rest = line
            while rest and not rest.endswith(b"\n"):
                rest = readline(LINE_LIMIT)
        yield line


def _yaml(lines: list[str]) -> dict[str, str]:
    """The top-level `key: value` pairs of a TAP YAML block, values as text.

    Enough YAML for what test runners write: plain, quoted and block (`|`, `|-`, `>`)
    scalars, and one nested mapping level (`at:` with `file:`/`line:` below, read as
    `at.file`). Anything else becomes the text it is written as."""
    result: dict[str, str] = {}
    base = min((len(x) - len(x.lstrip(" ")) for x in lines if x.strip()), default=0)
    key: str | None = None
    body: list[str] = []
    style = ""

    def flush() -> None:
        if key is None:
            return
        if style.startswith(">"):
            result[key] = " ".join(b.strip() for b in body).strip()
        elif style.startswith("|"):
            indent = min((len(b) - len(b.lstrip(" ")) for b in body if b.strip()), default=0)
            result[key] = "\n".join(b[indent:] for b in body).strip("\n")
        else:
            nested = [b.strip() for b in body if b.strip()]
            for entry in nested:
                sub, colon, value = entry.partition(":")
                if colon:
                    result[f"{key}.{sub.strip()}"] = _scalar(value.strip())
            if nested and not result.get(key):
                result[key] = "\n".join(nested)

    for raw in lines:
        indent = len(raw) - len(raw.lstrip(" "))
        if indent == base and raw.strip() and not raw.lstrip().startswith("- "):
            flush()
            name, colon, value = raw.strip().partition(":")
            if not colon:
                key = None
                continue
            key, body, value = name.strip(), [], value.strip()
            style = value if value[:1] in ("|", ">") else ""
            if not style and value:
                result[key] = _scalar(value)
        elif key is not None:
            body.append(raw)
    flush()
    return result


def _scalar(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        if "\\" in inner:
            try:
                return inner.encode("latin-1", "backslashreplace").decode("unicode_escape")
            except UnicodeDecodeError:
                return inner
        return inner
    return value
