"""What history keeps of one run, and the per-test aggregates over a window of runs.

A `RunSummary` is a run reduced to what comparison, flaky detection and slow-downs read:
per execution its identity (as a 64-bit hash, with the display name beside it), origin,
status, duration and attempt count; nothing of messages, traces or output. It is columnar
(`array`s, one entry per execution), so 100,000 executions cost a few MB, not a few
hundred thousand objects.

What a summary could hide, and how each is made visible:

- **the cap**: a run of more than `MAX_TESTS` executions keeps every failure first (up to
  the cap), then the others in the run's order; what did not fit is counted in `omitted`
  (and `omitted_failures`). A test beyond the cap is absent from the summary: a reader
  must treat "absent from a summary with `omitted`" as unknown, never as "removed" or
  "fixed" (`RunSummary.complete` says which case it is in).
- **long names**: the display name is cut at `NAME_LIMIT` characters, but the hash is of
  the whole identity, so two tests that differ only past the cut stay two tests.
- **hash collisions**: two identities sharing one 64-bit blake2b hash would be taken for
  one test. Among 100,000 tests the chance is about 3 in 10^10.
- **origins**: an origin name is cut at `ORIGIN_LIMIT` characters; two job names that
  differ only past it would count as one origin.

Aggregates (`Aggregates`) fold each run's executions of one (identity, origin) first: the
run counts as a failure of that test if any execution failed (a failing iteration of a
parameterised test is never outvoted by passing ones), as skipped only if every
execution was skipped, and its duration is their sum. Flips count changes between passed
and failed in consecutive runs that ran the test; skipped runs are not a flip either way.
The median duration is over the runs that passed it (a failed run's duration is often a
timeout, which would make every later run look fast).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, NamedTuple

from bot.results.model import Status, TestCase, TestRun

if TYPE_CHECKING:
    from bot.ports import Change, ReportOrigin

#: Executions kept per run. Past it, failures are kept first and the rest are counted.
MAX_TESTS: Final = 100_000
#: Characters kept of a test's display name (`suite\x1fclassname\x1fname`).
NAME_LIMIT: Final = 1_000
#: Characters kept of an origin (job, matrix leg) name.
ORIGIN_LIMIT: Final = 200
#: Characters kept of each part of a `HistoryKey` and of a run id or sha before the rest is
#: replaced by a hash of the whole (so distinct values stay distinct).
KEY_PART_LIMIT: Final = 256
#: Attempts are counted up to this (one byte per execution).
MAX_ATTEMPTS: Final = 255

#: Status <-> its one-byte code. A code's 0x10 bit marks an execution that passed after
#: failing attempts (flaky within the run).
STATUS_CODES: Final = {Status.PASSED: 0, Status.FAILED: 1, Status.ERROR: 2, Status.SKIPPED: 3}
STATUSES: Final = tuple(STATUS_CODES)
FLAKY_BIT: Final = 0x10
#: A run's fold of one test, as `Aggregates.last` holds it.
PASSED, FAILED, SKIPPED = 0, 1, 3


class HistoryError(Exception):
    """History could not be read or written; the message says which key and why."""


def identity_hash(identity: str) -> int:
    """A stable, signed 64-bit hash of an identity (Python's `hash` differs per process)."""
    digest = hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "little", signed=True)


def storable(text: str) -> str:
    """`text` as every backend can hold it: a lone surrogate (a producer's broken UTF-16)
    and NUL (which PostgreSQL's text refuses) spelled as escapes, everything else kept."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def bounded(text: str, limit: int = KEY_PART_LIMIT) -> str:
    """`text` made `storable`, or its first characters and a hash of the whole when it is
    longer than `limit`: a hostile name stays bounded, and two long ones stay apart."""
    if len(text) <= limit:
        return storable(text)
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{storable(text[: limit - 18])}…#{digest}"


@dataclass(frozen=True, slots=True)
class HistoryKey:
    """One line of history: a workflow (or pipeline, job, definition) of one CI system on one
    branch of one repository. Runs of other workflows or CI systems on the branch are other
    lines: comparing a lint workflow with a test workflow would report every test removed."""

    forge: str
    repo: str
    branch: str
    #: The CI system (`ReportOrigin.ci`): `github`, `jenkins`, ...
    ci: str
    #: The run's name as `ReportOrigin.name` gives it (`CI`, `build / test`); "" for none.
    workflow: str

    def __post_init__(self) -> None:
        for name in ("forge", "repo", "branch", "ci", "workflow"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise HistoryError(f"history key: {name} must be text, not {type(value).__name__}")
            object.__setattr__(self, name, bounded(value))
        for name in ("forge", "repo", "branch", "ci"):
            if not getattr(self, name):
                raise HistoryError(f"history key: {name} is empty")

    @classmethod
    def of(cls, change: Change, origin: ReportOrigin, branch: str) -> HistoryKey:
        """The line a report of `origin` on `change` belongs to, on `branch` (the branch the
        run built: its pull request's source branch, or the pushed branch)."""
        return cls(change.forge, change.repo, branch, origin.ci, origin.name or "")

    def parts(self) -> tuple[str, str, str, str, str]:
        return (self.forge, self.repo, self.branch, self.ci, self.workflow)


class TestSummary(NamedTuple):
    """One execution as history keeps it."""

    hash: int
    #: `suite\x1fclassname\x1fname`, cut at `NAME_LIMIT`.
    identity: str
    origin: str
    status: Status
    duration: float
    attempts: int
    flaky: bool


@dataclass(slots=True)
class RunSummary:
    """A run of one `HistoryKey`, reduced to what history compares. Columns, one entry per
    execution, sorted by identity (so names compress well and readers may bisect)."""

    key: HistoryKey
    sha: str
    run_id: str
    finished_at: datetime
    attempt: int = 1
    hashes: array[int] = field(default_factory=lambda: array("q"))
    #: Status code per execution (`STATUS_CODES`, `FLAKY_BIT`).
    codes: bytearray = field(default_factory=bytearray)
    durations: array[float] = field(default_factory=lambda: array("f"))
    attempts: bytearray = field(default_factory=bytearray)
    #: Index into `origin_names` per execution.
    origins: array[int] = field(default_factory=lambda: array("H"))
    origin_names: list[str] = field(default_factory=list)
    #: Display identity per execution, or None when read back without names.
    names: list[str] | None = field(default_factory=list)
    #: Executions of the run not kept (the cap), and how many of them failed.
    omitted: int = 0
    omitted_failures: int = 0

    def __post_init__(self) -> None:
        if not self.sha or not self.run_id:
            raise HistoryError(f"run summary of {self.key.repo}: a sha and a run id are needed")
        self.sha = bounded(self.sha)
        self.run_id = bounded(self.run_id)
        if self.finished_at.tzinfo is None:
            self.finished_at = self.finished_at.replace(tzinfo=UTC)
        if self.attempt < 1:
            raise HistoryError(f"run {self.run_id}: attempt must be at least 1")

    @classmethod
    def of(
        cls,
        run: TestRun,
        key: HistoryKey,
        *,
        sha: str,
        run_id: str,
        attempt: int = 1,
        finished_at: datetime | None = None,
        limit: int = MAX_TESTS,
    ) -> RunSummary:
        """The summary of `run`. Memory stays in `limit`, whatever the run's size: its cases
        are streamed (`CaseList` keeps passed ones packed) and only kept ones are held."""
        finished = finished_at or run.finished_at or datetime.now(UTC)
        builder = _Builder(limit)
        # Failures first: if the cap must drop something, it is never a failure while a
        # passed test took its place.
        failures = run.failures()
        for case in failures:
            builder.add(case)
        for case in run.cases():
            if not case.status.is_failure:
                builder.add(case)
        return builder.summary(
            cls(key=key, sha=sha, run_id=run_id, finished_at=finished, attempt=attempt)
        )

    @classmethod
    def of_report(
        cls, run: TestRun, change: Change, origin: ReportOrigin, branch: str,
        *, finished_at: datetime | None = None, limit: int = MAX_TESTS,
    ) -> RunSummary:
        """The summary of a published report: key, sha, run id and attempt as the report
        handler has them."""
        return cls.of(
            run, HistoryKey.of(change, origin, branch), sha=change.sha,
            run_id=origin.run.run_id, attempt=origin.attempt, finished_at=finished_at,
            limit=limit,
        )

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def complete(self) -> bool:
        """Every execution of the run is in the summary: a test absent from it did not run."""
        return self.omitted == 0

    def tests(self) -> Iterator[TestSummary]:
        names = self.names
        origin_names = self.origin_names
        for i, code in enumerate(self.codes):
            yield TestSummary(
                self.hashes[i], names[i] if names else "", origin_names[self.origins[i]],
                STATUSES[code & 0x0F], float(self.durations[i]), self.attempts[i],
                bool(code & FLAKY_BIT),
            )

    def failures(self) -> list[TestSummary]:
        return [test for test in self.tests() if test.status.is_failure]

    def folded(self) -> dict[tuple[int, int], list[float]]:
        """(hash, origin index) → [outcome, duration, flaky] of the run's executions of that
        test, folded as the module docstring says."""
        folded: dict[tuple[int, int], list[float]] = {}
        hashes, origins, durations = self.hashes, self.origins, self.durations
        for i, code in enumerate(self.codes):
            status = code & 0x0F
            outcome = PASSED if status == 0 else SKIPPED if status == 3 else FAILED
            test = (hashes[i], origins[i])
            seen = folded.get(test)
            if seen is None:
                folded[test] = [outcome, durations[i], code >> 4]
                continue
            if outcome == FAILED or seen[0] == SKIPPED:
                seen[0] = outcome
            seen[1] += durations[i]
            seen[2] = max(seen[2], code >> 4)
        return folded


class _Builder:
    """Collects a summary's columns, sorted by identity at the end."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows: list[tuple[str, int, int, float, int, int]] = []
        self.origin_index: dict[str, int] = {}
        self.omitted = 0
        self.omitted_failures = 0

    def add(self, case: TestCase) -> None:
        if len(self.rows) >= self.limit:
            self.omitted += 1
            self.omitted_failures += case.status.is_failure
            return
        origin = bounded(case.origin.name if case.origin else "", ORIGIN_LIMIT)
        index = self.origin_index.setdefault(origin, len(self.origin_index))
        if index > 0xFFFF:
            raise HistoryError("a run with more than 65,535 origins (jobs) is not kept")
        identity = case.identity
        code = STATUS_CODES[case.status] | (FLAKY_BIT if case.flaky else 0)
        self.rows.append((
            storable(identity[:NAME_LIMIT]), identity_hash(identity), code,
            case.duration if case.duration >= 0 else 0.0,
            min(len(case.attempts) + 1, MAX_ATTEMPTS), index,
        ))

    def summary(self, into: RunSummary) -> RunSummary:
        self.rows.sort()
        rows = self.rows
        into.names = [row[0] for row in rows]
        into.hashes = array("q", [row[1] for row in rows])
        into.codes = bytearray(row[2] for row in rows)
        into.durations = array("f", [row[3] for row in rows])
        into.attempts = bytearray(row[4] for row in rows)
        into.origins = array("H", [row[5] for row in rows])
        into.origin_names = list(self.origin_index)
        into.omitted, into.omitted_failures = self.omitted, self.omitted_failures
        return into


class TestHistory(NamedTuple):
    """One test's record over the window."""

    runs: int
    failures: int
    flips: int
    #: Runs in which it passed only after failing attempts.
    flaky: int
    #: Its outcome in the newest run that ran it: `PASSED`, `FAILED` or `SKIPPED`.
    last: int
    #: Median duration over the runs that passed it; None when none did.
    median_duration: float | None


@dataclass(slots=True)
class Aggregates:
    """Per (identity, origin) over the window of a `HistoryKey`: computed when a run is
    written, read whole in one read. `runs` lists the window it was computed from (run
    ids, newest first) so that a reader can tell how much history a rate stands on."""

    runs: list[str] = field(default_factory=list)
    #: The oldest run's finish time: past it plus the retention, the aggregate is stale.
    oldest: datetime | None = None
    hashes: array[int] = field(default_factory=lambda: array("q"))
    origins: array[int] = field(default_factory=lambda: array("H"))
    origin_names: list[str] = field(default_factory=list)
    seen: array[int] = field(default_factory=lambda: array("H"))
    failures: array[int] = field(default_factory=lambda: array("H"))
    flips: array[int] = field(default_factory=lambda: array("H"))
    flaky: array[int] = field(default_factory=lambda: array("H"))
    last: bytearray = field(default_factory=bytearray)
    #: NaN where no run passed the test.
    medians: array[float] = field(default_factory=lambda: array("f"))
    _index: dict[tuple[int, str], int] | None = None

    def __len__(self) -> int:
        return len(self.hashes)

    def get(self, identity: str | int, origin: str = "") -> TestHistory | None:
        """The record of a test (its identity or `identity_hash`) from one origin."""
        if self._index is None:
            names = self.origin_names
            self._index = {
                (h, names[o]): i for i, (h, o) in enumerate(zip(self.hashes, self.origins,
                                                                 strict=True))
            }
        test = identity if isinstance(identity, int) else identity_hash(identity)
        row = self._index.get((test, bounded(origin, ORIGIN_LIMIT)))
        if row is None:
            return None
        median = float(self.medians[row])
        return TestHistory(
            self.seen[row], self.failures[row], self.flips[row], self.flaky[row],
            self.last[row], None if median != median else median,
        )

    def items(self) -> Iterator[tuple[tuple[int, str], TestHistory]]:
        names = self.origin_names
        for i, test in enumerate(self.hashes):
            found = self.get(test, names[self.origins[i]])
            assert found is not None
            yield (test, names[self.origins[i]]), found

    @classmethod
    def of(cls, window: Sequence[RunSummary]) -> Aggregates:
        """The aggregates of `window` (newest first, as stores return it)."""
        rows: dict[tuple[int, str], _Row] = {}
        for run in reversed(window):
            names = run.origin_names
            for (test, origin), (outcome, duration, flaky) in run.folded().items():
                test_key = (test, names[origin])
                row = rows.get(test_key)
                if row is None:
                    row = rows[test_key] = _Row()
                row.add(int(outcome), duration, bool(flaky))
        origin_index: dict[str, int] = {}
        built = cls(
            runs=[run.run_id for run in window],
            oldest=min((run.finished_at for run in window), default=None),
        )
        for (test, origin_name), row in sorted(rows.items(), key=lambda item: item[0]):
            built.hashes.append(test)
            built.origins.append(origin_index.setdefault(origin_name, len(origin_index)))
            built.seen.append(min(row.seen, 0xFFFF))
            built.failures.append(min(row.failures, 0xFFFF))
            built.flips.append(min(row.flips, 0xFFFF))
            built.flaky.append(min(row.flaky, 0xFFFF))
            built.last.append(row.last)
            built.medians.append(_median(row.passed_durations))
        built.origin_names = list(origin_index)
        return built


class _Row:
    """One test's counts while `Aggregates.of` walks the window, oldest run first."""

    __slots__ = ("decided", "failures", "flaky", "flips", "last", "passed_durations", "seen")

    def __init__(self) -> None:
        self.seen = self.failures = self.flips = self.flaky = 0
        self.last = SKIPPED
        #: The last outcome that was not a skip: what the next one flips from.
        self.decided: int | None = None
        self.passed_durations: list[float] = []

    def add(self, outcome: int, duration: float, flaky: bool) -> None:
        self.seen += 1
        self.flaky += flaky
        self.last = outcome
        if outcome == SKIPPED:
            return
        if outcome == FAILED:
            self.failures += 1
        else:
            self.passed_durations.append(duration)
        if self.decided is not None and self.decided != outcome:
            self.flips += 1
        self.decided = outcome


def _median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
