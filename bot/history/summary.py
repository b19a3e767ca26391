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
import math
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
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
#: Performance metrics kept per run (the first ones the run lists).
MAX_METRICS: Final = 100

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
    #: Display identity per execution (`names`), or None when read back without names.
    given_names: list[str] | None = field(default_factory=list, repr=False)
    #: How a summary read from bytes gets its names on first use: most lookups never
    #: need them (only a test that vanished is named from history), so they stay packed.
    names_loader: Callable[[], list[str]] | None = field(default=None, repr=False,
                                                         compare=False)
    #: Executions of the run not kept (the cap), and how many of them failed.
    omitted: int = 0
    omitted_failures: int = 0
    #: The run's numeric performance metrics (`Metric`), by name: what the next report's
    #: metrics are judged against. At most `MAX_METRICS`, names cut at `NAME_LIMIT`.
    metrics: dict[str, float] = field(default_factory=dict)

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
        metrics: dict[str, float] = {}
        for metric in run.metrics:
            value = metric.value
            if (len(metrics) < MAX_METRICS and isinstance(value, int | float)
                    and not isinstance(value, bool) and math.isfinite(value)):
                metrics.setdefault(bounded(storable(metric.name)), float(value))
        return builder.summary(
            cls(key=key, sha=sha, run_id=run_id, finished_at=finished, attempt=attempt,
                metrics=metrics)
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
    def names(self) -> list[str] | None:
        if self.given_names is None and self.names_loader is not None:
            self.given_names = self.names_loader()
            self.names_loader = None
        return self.given_names

    @names.setter
    def names(self, value: list[str] | None) -> None:
        self.given_names, self.names_loader = value, None

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

    def by_test(self) -> dict[tuple[str, str], TestCounts]:
        """(origin, identity) → the counts of that test's executions in this run: what a
        comparison with this run as the base needs of each test, keyed as
        `(case.origin.name, case.identity)` keys a live case. Executions are counted, not
        folded, so a base that failed one of ten iterations says so.

        What the keys could hide: an identity longer than `NAME_LIMIT`, or with a lone
        surrogate or NUL, is stored cut or escaped, so it does not equal the live case's:
        that test reads as removed from the base and new now (its failures still count,
        and are called new), never as a pass."""
        counts: dict[tuple[str, str], list[float]] = {}
        names, origin_names = self.names or [""] * len(self), self.origin_names
        for i, code in enumerate(self.codes):
            test = (origin_names[self.origins[i]], names[i])
            found = counts.get(test)
            if found is None:
                found = counts[test] = [0, 0, 0, 0.0]
            status = code & 0x0F
            found[0] += 1
            found[1] += status in (1, 2)
            found[2] += status == 3
            found[3] = max(found[3], self.durations[i])
        return {test: TestCounts(int(e), int(f), int(s), d) for test, (e, f, s, d)
                in counts.items()}

    def folded(self) -> tuple[list[tuple[int, int]], bytes, array[float]]:
        """(tests, codes, durations): one entry per (hash, origin index) of the run, its
        executions folded as the module docstring says. Most runs run each test once per
        origin, and come back as they are."""
        tests = list(zip(self.hashes, self.origins, strict=True))
        if len(set(tests)) == len(tests):
            return tests, bytes(self.codes), self.durations
        folded: dict[tuple[int, int], list[float]] = {}
        for test, code, duration in zip(tests, self.codes, self.durations, strict=True):
            seen = folded.get(test)
            if seen is None:
                folded[test] = [code, duration]
                continue
            status, other = code & 0x0F, int(seen[0]) & 0x0F
            # A failure wins; a pass wins over a skip: all-skipped stays skipped.
            if status in (1, 2) or (other == 3 and status == 0):
                seen[0] = status | (int(seen[0]) & FLAKY_BIT)
            seen[0] = int(seen[0]) | (code & FLAKY_BIT)
            seen[1] += duration
        return (list(folded), bytes(int(value[0]) for value in folded.values()),
                array("f", [value[1] for value in folded.values()]))


class TestCounts(NamedTuple):
    """One test's executions in one run."""

    executions: int
    failures: int
    skipped: int
    #: The slowest execution's duration, seconds.
    slowest: float


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
            # A negative, infinite or NaN duration would poison every median it enters.
            case.duration if math.isfinite(case.duration) and case.duration >= 0 else 0.0,
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
    _index: dict[tuple[int, int], int] | None = None
    _origin_rows: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.hashes)

    def get(self, identity: str | int, origin: str = "") -> TestHistory | None:
        """The record of a test (its identity or `identity_hash`) from one origin."""
        if self._index is None:
            self._index = dict(zip(zip(self.hashes, self.origins, strict=True),
                                   range(len(self.hashes)), strict=True))
            self._origin_rows = {name: i for i, name in enumerate(self.origin_names)}
        found = self._origin_rows.get(origin)
        if found is None:
            found = self._origin_rows.get(bounded(origin, ORIGIN_LIMIT))
            if found is None:
                return None
        test = identity if isinstance(identity, int) else identity_hash(identity)
        row = self._index.get((test, found))
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
        # One slot per test in parallel lists, walked oldest run first: this loop runs
        # once per execution of the window (500,000 for 50 runs of 10,000), so it is kept
        # to list indexing. `decided` is the last outcome that was not a skip, -1 before
        # one: what the next outcome flips from.
        index: dict[tuple[int, int], int] = {}
        origin_ids: dict[str, int] = {}
        seen: list[int] = []
        failures: list[int] = []
        flips: list[int] = []
        flaky: list[int] = []
        last: list[int] = []
        decided: list[int] = []
        passed: list[list[float]] = []
        for run in reversed(window):
            tests, codes, durations = run.folded()
            # Keys are (hash, origin id over the window): a run's own origin indexes are
            # used as they are when they already agree with the window's, as they mostly do.
            ids = [origin_ids.setdefault(name, len(origin_ids)) for name in run.origin_names]
            if ids != list(range(len(ids))):
                tests = [(test, ids[origin]) for test, origin in tests]
            for test_key, code, duration in zip(tests, codes, durations, strict=True):
                slot = index.get(test_key)
                if slot is None:
                    slot = index[test_key] = len(seen)
                    seen.append(0)
                    failures.append(0)
                    flips.append(0)
                    flaky.append(0)
                    last.append(SKIPPED)
                    decided.append(-1)
                    passed.append([])
                seen[slot] += 1
                if code & FLAKY_BIT:
                    flaky[slot] += 1
                status = code & 0x0F
                if status == 3:
                    last[slot] = SKIPPED
                    continue
                if status:
                    outcome = FAILED
                    failures[slot] += 1
                else:
                    outcome = PASSED
                    passed[slot].append(duration)
                last[slot] = outcome
                before = decided[slot]
                if before != outcome:
                    if before != -1:
                        flips[slot] += 1
                    decided[slot] = outcome
        built = cls(
            runs=[run.run_id for run in window],
            oldest=min((run.finished_at for run in window), default=None),
            origin_names=list(origin_ids),
        )
        for (test, origin), slot in sorted(index.items()):
            built.hashes.append(test)
            built.origins.append(origin)
            built.seen.append(min(seen[slot], 0xFFFF))
            built.failures.append(min(failures[slot], 0xFFFF))
            built.flips.append(min(flips[slot], 0xFFFF))
            built.flaky.append(min(flaky[slot], 0xFFFF))
            built.last.append(last[slot])
            built.medians.append(_median(passed[slot]))
        return built


def _median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
