"""The result model: one test run, its suites and cases, merged from any number of files.

Everything Herald reports is computed from these types. Parsers build them, renderers read
them, the JSON schema (`bot.reports.json`) round-trips them. Totals are always counted
from the cases, never taken from a file's own (often wrong) summary attributes.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: Captured output, messages and stack traces longer than this are cut with a marker.
#: Real files carry 60 MB of stdout per case; a report never needs more than this.
DEFAULT_TEXT_LIMIT = 64 * 1024
TRUNCATION_MARKER = "\n… [truncated by Herald: {dropped:,} more characters]"


def truncate(text: str | None, limit: int = DEFAULT_TEXT_LIMIT) -> str | None:
    """Cut `text` to at most about `limit` characters, saying how much was dropped."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(dropped=len(text) - limit)


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

    @property
    def identity(self) -> str:
        """Stable across runs and shards: what history and dedupe key on."""
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
    cases: list[TestCase] = field(default_factory=list)
    duration: float | None = None  # as the file said; None when it said nothing usable
    timestamp: datetime | None = None
    hostname: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    source: str | None = None

    __test__ = False


@dataclass(slots=True)
class Metric:
    """A performance figure shown in the report's metrics table."""

    name: str
    value: float | str
    unit: str = ""


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
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    flaky: int = 0
    duration: float = 0.0

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
    metrics: list[Metric] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    url: str | None = None

    def cases(self) -> Iterator[TestCase]:
        for suite in self.suites:
            yield from suite.cases

    def totals(self) -> Totals:
        counts = dict.fromkeys(Status, 0)
        flaky = 0
        case_time = 0.0
        for case in self.cases():
            counts[case.status] += 1
            flaky += case.flaky
            case_time += case.duration
        return Totals(
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
        suite_times = [s.duration for s in self.suites]
        if suite_times and all(t is not None for t in suite_times):
            return float(sum(t for t in suite_times if t is not None))
        if case_time is None:
            case_time = sum(c.duration for c in self.cases())
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
        return [c for c in self.cases() if c.status.is_failure]

    def merge(self, others: Iterable[TestRun]) -> TestRun:
        """Fold shards into this run. A case seen in several shards keeps the last outcome
        and records the earlier ones as attempts, so a retried shard reads as flaky."""
        by_identity: dict[str, TestCase] = {c.identity: c for c in self.cases()}
        for other in others:
            for suite in other.suites:
                kept: list[TestCase] = []
                for case in suite.cases:
                    earlier = by_identity.get(case.identity)
                    if earlier is None:
                        by_identity[case.identity] = case
                        kept.append(case)
                        continue
                    earlier.attempts.append(
                        Attempt(
                            status=earlier.status,
                            duration=earlier.duration,
                            message=earlier.message,
                            failure_type=earlier.failure_type,
                            stack_trace=earlier.stack_trace,
                        )
                    )
                    earlier.attempts.extend(case.attempts)
                    for name in ("status", "duration", "message", "failure_type",
                                 "stack_trace", "stdout", "stderr", "file", "line", "source"):
                        setattr(earlier, name, getattr(case, name))
                if kept:
                    suite.cases = kept
                    self.suites.append(suite)
            self.metrics.extend(other.metrics)
            self.artifacts.extend(other.artifacts)
            self.errors.extend(other.errors)
            self.metadata.update(other.metadata)
        return self


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
