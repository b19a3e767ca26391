"""The result model: one test run, its suites and cases, gathered from any number of files.

Everything Herald reports is computed from these types. Parsers build them, renderers read
them, the JSON schema (`bot.reports.json`) round-trips them. Totals are always counted
from the cases, never taken from a file's own (often wrong) summary attributes.

One `TestCase` is one execution. Two records are never folded into one, whatever their
names: TestNG data providers, parameterised tests and matrix legs write many executions
under one name, and folding them once let a failing iteration hide behind a passing one.
A case is *flaky* only when its producer recorded retries (its `attempts`), or when a later
attempt of the same CI job passed (`TestRun.absorb_retry`). Each case keeps its `origin`
(the CI job, matrix leg or artifact) and its `source` (the file), so results of different
jobs stay apart and no count depends on the order in which files were read.
"""

from __future__ import annotations

import enum
import math
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from bot.results.compact import CaseList

if TYPE_CHECKING:
    from bot.compare import Comparison

T = TypeVar("T")

#: Captured output, messages and stack traces longer than this are cut with a marker.
#: Real files carry 60 MB of stdout per case; a report never needs more than this.
DEFAULT_TEXT_LIMIT = 64 * 1024
TRUNCATION_MARKER = "\n… [truncated by Herald: {dropped:,} more characters]"


def truncate(text: str | None, limit: int = DEFAULT_TEXT_LIMIT) -> str | None:
    """Cut `text` to at most about `limit` characters, saying how much was dropped."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(dropped=len(text) - limit)


#: A failure message taken from a CI system's own text is its first line, cut here.
MESSAGE_LIMIT = 500


def present_text(value: Any) -> str | None:
    """A CI API's text field as text, None when it is missing or blank."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def seconds_of(value: Any) -> float:
    """A CI API's duration in seconds; 0 when it is missing, negative or not a number."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 0.0
    return seconds if seconds >= 0 else 0.0


def first_line(text: str | None, limit: int = MESSAGE_LIMIT) -> str | None:
    """The first non-blank line of `text`, stripped and cut to `limit`: a failure's
    message when a CI system gives only its whole output."""
    if text is None:
        return None
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return None


class Status(enum.StrEnum):
    """Outcome of one test case (or of one attempt of it)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def is_failure(self) -> bool:
        return self in (Status.FAILED, Status.ERROR)


class RunStatus(enum.StrEnum):
    """Outcome of a whole run, as reported (`passed`/`failed`) or as the CI said it ended."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # no usable results: every input was unusable, or the run broke
    CANCELLED = "cancelled"
    RUNNING = "running"
    NO_TESTS = "no_tests"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a case's file came from: a CI job or matrix leg (`test (3.11)`), or an artifact
    (`junit-3.12`). One object is shared by every case of that origin."""

    name: str
    #: The job's page or log, where the CI system gives one.
    url: str | None = None


@dataclass(slots=True)
class Attempt:
    """One earlier or extra execution of a test: Surefire `flakyFailure`/`rerunFailure`,
    pytest-rerunfailures, a retried shard. The case's own fields hold the final outcome."""

    status: Status
    duration: float = 0.0
    message: str | None = None
    failure_type: str | None = None
    stack_trace: str | None = None


@dataclass(slots=True)
class TestCase:
    """One test case: the final outcome plus any retries.

    `file`/`line` are set when the format gives them (pytest `file`/`line`, jest-junit
    `file`, TRX `codeBase`...); `source` is the report file it came from.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    classname: str = ""
    suite: str = ""
    status: Status = Status.PASSED
    duration: float = 0.0
    file: str | None = None
    line: int | None = None
    message: str | None = None
    failure_type: str | None = None
    stack_trace: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    source: str | None = None
    origin: Origin | None = None

    @property
    def identity(self) -> str:
        """The test, stable across runs and shards: what history keys on. Not unique within
        a run: every execution of a parameterised test or a matrix leg shares it."""
        return f"{self.suite}\x1f{self.classname}\x1f{self.name}"

    @property
    def display_name(self) -> str:
        """`classname.name`, unless the name already holds the class (Mocha and jest-junit
        put the full title in `name` and a part of it in `classname`)."""
        classname, name = self.classname, self.name
        if not classname or name.startswith(classname):
            return name
        # Mocha's classname is the test's own title (several words) at the end of the name;
        # a one-word class that merely ends a name ("adds to Cart") is still shown.
        if " " in classname and name.endswith(classname):
            return name
        return f"{classname}.{name}"

    @property
    def flaky(self) -> bool:
        """Passed in the end, but failed at least once on the way."""
        return self.status is Status.PASSED and any(a.status.is_failure for a in self.attempts)


@dataclass(slots=True)
class Suite:
    name: str
    #: Kept compactly (`bot.results.compact`); a list given here or assigned later is
    #: taken over into one.
    cases: CaseList = field(default_factory=CaseList)
    duration: float | None = None  # as the file said; None when it said nothing usable
    timestamp: datetime | None = None
    hostname: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    source: str | None = None

    __test__ = False

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "cases" and not isinstance(value, CaseList):
            value = CaseList(value)
        object.__setattr__(self, name, value)


_METRIC_VALUE = re.compile(
    r"\s*(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)?(?P<rest>.*)", re.DOTALL
)


@dataclass(slots=True)
class Metric:
    """A performance figure shown in the report's metrics table."""

    name: str
    value: float | str
    unit: str = ""

    @classmethod
    def read(cls, name: str, text: str) -> Metric:
        """`12.5ms` -> 12.5 in `ms`; `fast` and `1m30s` stay text. Raises ValueError for a
        blank value."""
        match = _METRIC_VALUE.fullmatch(text)
        number, rest = (match["number"], match["rest"].strip()) if match else (None, "")
        if number is None or any(char.isdigit() for char in rest):
            # A value the number does not end, such as `1m30s` or `12.5.3`, is shown as
            # written: split, it would read as 1 with the unit `m30s`.
            value = text.strip()
            if not value:
                raise ValueError(f"metric {name!r} has no value")
            return cls(name, value)
        return cls(name, float(number), rest)


@dataclass(slots=True)
class Artifact:
    name: str
    size: int | None = None
    url: str | None = None


@dataclass(slots=True)
class ParseError:
    """An input that yielded nothing, by name and why; the other inputs still count."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class Totals:
    """Counts of executions (`total` and the statuses: what the headline counts) and of
    unique tests (`tests`: distinct identities, which is fewer when one test ran several
    times, in a matrix or as a parameterised test)."""

    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0
    duration: float = 0.0
    tests: int = 0

    def percent(self, count: int) -> float:
        """Share of `total`, in percent; 0.0 for an empty run."""
        return 100.0 * count / self.total if self.total else 0.0

    @property
    def failures(self) -> int:
        return self.failed + self.errors


@dataclass(slots=True)
class TestRun:
    """A test run merged from one or more report files (shards)."""

    __test__ = False

    id: str
    suites: list[Suite] = field(default_factory=list)
    status: RunStatus | None = None  # None: derived from the cases
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None  # wall clock; None: derived from the suites
    metadata: dict[str, str] = field(default_factory=dict)
    #: Where the tests ran (`Python Version`, `Platform`, `GPU`): the reports' Environment
    #: table. Apart from `metadata`, which is for machines and only the JSON report shows.
    environment: dict[str, str] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    url: str | None = None
    #: This run against its base branch (`bot.compare`), when history knows one; the
    #: reports lead with it.
    comparison: Comparison | None = None

    def cases(self) -> Iterator[TestCase]:
        for suite in self.suites:
            yield from suite.cases

    def totals(self) -> Totals:
        counts = dict.fromkeys(Status, 0)
        flaky = 0
        case_time = 0.0
        # Identity hashes rather than the identities: two sharing a 64-bit hash would merely
        # count as one test. Packed cases bring theirs along (`CaseList.packed_summary`).
        packed: list[array[int]] = []
        live: list[int] = []
        add = live.append
        for suite in self.suites:
            cases = suite.cases
            passed, skipped, time, hashes = cases.packed_summary()
            counts[Status.PASSED] += passed
            counts[Status.SKIPPED] += skipped
            case_time += time
            packed.append(hashes)
            for case in cases.objects():
                counts[case.status] += 1
                if case.attempts:
                    flaky += case.flaky
                case_time += case.duration
                add(hash((case.suite, case.classname, case.name)))
            for case in cases.promoted():
                counts[case.status] += 1
                flaky += case.flaky
                case_time += case.duration
        return Totals(
            tests=_distinct(packed, live),
            total=sum(counts.values()),
            passed=counts[Status.PASSED],
            failed=counts[Status.FAILED],
            errors=counts[Status.ERROR],
            skipped=counts[Status.SKIPPED],
            flaky=flaky,
            duration=self.effective_duration(case_time),
        )

    def effective_duration(self, case_time: float | None = None) -> float:
        if self.duration is not None:
            return self.duration
        if self.started_at and self.finished_at:
            start, end = self.started_at, self.finished_at
            # Producers mix naive and aware stamps; a naive one is taken as UTC.
            if (start.tzinfo is None) != (end.tzinfo is None):
                start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
            return max(0.0, (end - start).total_seconds())
        if case_time is None:
            return self.totals().duration
        return case_time

    def overall_status(self) -> RunStatus:
        if self.status is not None:
            return self.status
        totals = self.totals()
        if totals.failures:
            return RunStatus.FAILED
        if totals.total == 0:
            return RunStatus.ERROR if self.errors else RunStatus.NO_TESTS
        return RunStatus.PASSED

    def failures(self) -> list[TestCase]:
        # Failures are never packed: the live objects hold every one, in order.
        found = [c for s in self.suites for c in s.cases.objects() if c.status.is_failure]
        found += [c for s in self.suites for c in s.cases.promoted() if c.status.is_failure]
        return found

    def merge(self, others: Iterable[TestRun]) -> TestRun:
        """Add other files' (or CI systems') results to this run. Nothing folds: every case
        stays its own record, whatever its name, so merging in any order gives the same
        counts. Durations add up: each side's own total (a file's root total, else its
        cases' time), never the sum over its nested suites."""
        for other in others:
            mine = self.effective_duration() if self.suites or self.duration else 0.0
            self.duration = mine + other.effective_duration()
            self.suites.extend(other.suites)
            self.metrics.extend(other.metrics)
            self.artifacts.extend(other.artifacts)
            self.errors.extend(other.errors)
            self.metadata.update(other.metadata)
            self.environment.update(other.environment)
        return self

    def set_origin(self, origin: Origin | None) -> None:
        """Say where every case of this run came from (one shared `Origin`)."""
        for suite in self.suites:
            suite.cases.set_origin(origin)

    def absorb_retry(self, earlier: TestRun) -> int:
        """This run is a later attempt of the CI job(s) that produced `earlier`: each case of
        `earlier` that failed becomes an attempt of the matching case here, so a test that
        failed first and passed now reads as flaky. Returns how many attempts were added.

        A case matches on its origin's name, its identity and its position among the cases
        of that origin and identity (the second `test[param]` matches the second), so
        executions of a parameterised test or of other matrix legs never stand in for each
        other. A failure with no counterpart here (the test vanished) is not added: it says
        nothing about a case that still exists.
        """
        # Only identities that failed earlier can match, so only those are counted and
        # kept: memory stays in the number of failures, not of cases.
        failures = earlier.failures()
        failing = {(case.origin.name if case.origin else "", case.identity) for case in failures}
        if not failing:
            return 0
        names = {case.name for case in failures}

        def occurrences(
            cases: Iterable[tuple[T, TestCase]],
        ) -> Iterator[tuple[T, TestCase, tuple[str, str, int]]]:
            """(where, case, (origin, identity, n)) for the n-th execution, over the whole
            run, of each identity that failed earlier; other cases are skipped by name."""
            seen: dict[tuple[str, str], int] = {}
            for where, case in cases:
                if case.name not in names:
                    continue
                key = (case.origin.name if case.origin else "", case.identity)
                if key not in failing:
                    continue
                index = seen.get(key, 0)
                seen[key] = index + 1
                yield where, case, (*key, index)

        wanted = {
            key: case for _where, case, key in occurrences((None, c) for c in earlier.cases())
            if case.status.is_failure
        }
        added = 0
        positions = (
            ((suite.cases, position), case)
            for suite in self.suites for position, case in enumerate(suite.cases)
        )
        for (cases, position), case, key in occurrences(positions):
            before = wanted.get(key)
            if before is None:
                continue
            match = cases.live(position, case)
            match.attempts[:0] = [
                *before.attempts,
                Attempt(
                    status=before.status,
                    duration=before.duration,
                    message=before.message,
                    failure_type=before.failure_type,
                    stack_trace=before.stack_trace,
                ),
            ]
            added += 1
        return added


def _distinct(packed: list[array[int]], live: list[int]) -> int:
    """How many distinct values the hash arrays hold together. Counted a sixteenth at a
    time past a few hundred thousand, so a million-case run never holds a million-entry set
    (about 60 MB) at once."""
    size = len(live) + sum(len(hashes) for hashes in packed)
    if size <= _SET_AT_ONCE:
        values: set[int] = set(live)
        for hashes in packed:
            values.update(hashes)
        return len(values)
    buckets = [array("q") for _ in range(16)]
    sources: list[Iterable[int]] = [*packed, live]
    for source in sources:
        for value in source:
            buckets[value & 15].append(value)
    count = 0
    while buckets:
        count += len(set(buckets.pop()))
    return count


_SET_AT_ONCE = 200_000


def format_duration(seconds: float) -> str:
    """`2m 5.70s`, `1h 2m 3.00s`, `0.35s`, as the reports print durations."""
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0:
        seconds = 0.0
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 1:
        return f"{int(hours)}h {int(minutes)}m {secs:.2f}s"
    if minutes >= 1:
        return f"{int(minutes)}m {secs:.2f}s"
    return f"{secs:.2f}s"


def format_count(label: str, count: int, total: int) -> str:
    """`Passed: 40 (95.2%)`."""
    share = 100.0 * count / total if total else 0.0
    return f"{label}: {count:,} ({share:.1f}%)"


def format_size(size: int | None) -> str:
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
