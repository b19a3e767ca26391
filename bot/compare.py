"""A run against its base: what is new, what was failing already, what is flaky, what slowed.

    base = Baseline(branch="main", run_id="4711", tests={...}, history={...})
    found = compare(run, base, Thresholds())
    found.regressions          # failing executions the base did not have
    found.advice()             # "2 of 3 failures are known flaky ...: `/retest` reruns them."

The base is the latest completed run of the same workflow on the target branch (the
history store finds it, `bot.history`); the comparison itself is pure and reads the run
once, case by case, so it costs the same for packed cases as for live ones.

Tests are matched by their key, the job or matrix leg that ran them (`Origin.name`) and
their identity (`TestCase.identity`). One key may have several executions (a TestNG data
provider, a parameterised test whose parameters are not in its name), so executions are
counted, never folded:

- **new failures**: of a key that fails `n` times now and failed `m` times in the base,
  `n - m` failing executions are new (all `n` when the base did not run the key). What
  this could hide: which of several same-named executions is the new one: the report
  names the key, and every failing execution is listed with the failures as always.
- **still failing**: the other failing executions. They are failures in the report as
  before; only the regression gate (`fail_on: regressions`) may leave them out of the
  verdict, and only when there is a base to compare with: with none, every failure is new.
- **known flaky**: a failing key whose history on the base branch shows it both failing
  and passing (at least `flaky_min_failures` failed runs in the window, and passed runs
  too), or that passed on this very commit in another attempt. Advice only: it changes
  nothing the gate decides, since a flaky test may also really be broken now.
- **fixed**, **new tests**, **removed tests** and **newly skipped** are counted whole and
  named up to `LISTED`: a test that stopped running (a crashed shard, a deleted file) is
  said as removed, never passed over.
- **slower**: a key whose slowest execution now is at least `slower_percent` and
  `slower_seconds` above the base's recent median (else the base run's own duration).
- **metrics**: each metric whose direction is declared (`higher` or `lower` is better)
  and that moved the worse way by at least `metric_percent`.

When the job names of the base and of this run share nothing (artifacts named per run,
say), keys fall back to the identity alone, so a renamed job does not read as every test
new and every old one removed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Final, Protocol

from bot.results.model import Metric, Status, TestCase, TestRun

#: How many names each list keeps for the report; the counts are always whole.
LISTED: Final = 50
#: The identity's parts (`TestCase.identity`) are joined by this.
SEPARATOR: Final = "\x1f"

Key = tuple[str, str]  # (job or matrix leg, identity)


class Better(enum.StrEnum):
    """Which way a metric improves."""

    HIGHER = "higher"
    LOWER = "lower"


@dataclass(frozen=True, slots=True)
class BaseTest:
    """One key in the base run."""

    executions: int
    failures: int = 0
    skipped: int = 0
    #: The slowest execution's duration, seconds.
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class TestHistory:
    """One key over the history window of the base branch."""

    __test__ = False

    runs: int
    failed_runs: int = 0
    median_duration: float | None = None


class HistoryView(Protocol):
    """The base branch's per-test history, as a store keeps it (`bot.history`)."""

    def of(self, origin: str, identity: str) -> TestHistory | None:
        """The test's history from one job or matrix leg."""
        ...

    def any_origin(self, identity: str) -> TestHistory | None:
        """The test's history from whichever job ran it (jobs renamed since)."""
        ...


@dataclass(frozen=True, slots=True)
class KeyedHistory:
    """A `HistoryView` over a mapping of keys (what tests and small callers hold)."""

    tests: Mapping[Key, TestHistory] = field(default_factory=dict)

    def of(self, origin: str, identity: str) -> TestHistory | None:
        return self.tests.get((origin, identity))

    def any_origin(self, identity: str) -> TestHistory | None:
        return next((h for (_, i), h in self.tests.items() if i == identity), None)


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the comparison knows of the base branch."""

    branch: str
    run_id: str
    tests: Mapping[Key, BaseTest]
    sha: str | None = None
    url: str | None = None
    history: HistoryView = field(default_factory=KeyedHistory)
    metrics: Mapping[str, float] = field(default_factory=dict)
    #: Keys that passed in another attempt of the very commit compared: flaky on the same
    #: code, whatever the base branch says.
    passed_here: AbstractSet[Key] = frozenset()
    #: Days the history window spans, for the advice ("failed 5 times on main in 14 days").
    window_days: int | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    flaky_min_failures: int = 2
    slower_percent: float = 50.0
    slower_seconds: float = 1.0
    metric_percent: float = 5.0
    #: Metric name -> which way is better; a metric not named is shown, never judged.
    better: Mapping[str, Better] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Named:
    """A whole count and the first `LISTED` names."""

    count: int = 0
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Slower:
    name: str
    now: float
    before: float


@dataclass(frozen=True, slots=True)
class MetricChange:
    name: str
    now: float
    before: float
    better: Better

    @property
    def percent(self) -> float:
        return 100.0 * (self.now - self.before) / abs(self.before) if self.before else 0.0


@dataclass(frozen=True, slots=True)
class Flaky:
    name: str
    #: Failed runs of the window on the base branch (0: flaky by a retry of this commit).
    failed_runs: int


@dataclass(frozen=True, slots=True)
class Comparison:
    base: Baseline | None
    failures: int
    new_failures: Named = Named()
    still_failing: Named = Named()
    fixed: Named = Named()
    new_tests: Named = Named()
    removed: Named = Named()
    newly_skipped: Named = Named()
    known_flaky: tuple[Flaky, ...] = ()
    known_flaky_count: int = 0
    #: Of the new failures, those of known-flaky tests (they gate all the same).
    known_flaky_new: int = 0
    slower: tuple[Slower, ...] = ()
    worse_metrics: tuple[MetricChange, ...] = ()

    @property
    def regressions(self) -> int:
        """Failing executions the base did not have: every failure when there is no base."""
        return self.new_failures.count

    def advice(self) -> str | None:
        """What to do about the failures, when history says something about them."""
        if not self.failures or self.base is None:
            return None
        parts = []
        if self.known_flaky_count:
            most = max(f.failed_runs for f in self.known_flaky) if self.known_flaky else 0
            why = (f" (failed {most} times on {self.base.branch}"
                   f"{f' in {self.base.window_days} days' if self.base.window_days else ''})"
                   if most else " (passed on another attempt of this commit)")
            they = "it" if self.known_flaky_count == 1 else "them"
            parts.append(f"{self.known_flaky_count} of {self.failures} failures "
                         f"{'is' if self.known_flaky_count == 1 else 'are'} known flaky"
                         f"{why}: `/retest` reruns {they}.")
        # The new failures that history does not explain are the ones to look at.
        new = self.new_failures.count - self.known_flaky_new
        if new:
            are = "is" if new == 1 else "are"
            parts.append(f"{new} {are} new: look at {'it' if new == 1 else 'them'}.")
        if self.still_failing.count:
            parts.append(f"{self.still_failing.count} failed on {self.base.branch} already.")
        return " ".join(parts) or None


def key_name(key: Key) -> str:
    """A key as a reader knows the test: `classname.name`, then the job when there is one."""
    origin, identity = key
    suite, _, rest = identity.partition(SEPARATOR)
    classname, _, name = rest.partition(SEPARATOR)
    shown = TestCase(name=name, classname=classname, suite=suite).display_name
    return f"{shown} ({origin})" if origin else shown


def case_key(case: TestCase) -> Key:
    return (case.origin.name if case.origin is not None else "", case.identity)


@dataclass(slots=True)
class _Now:
    executions: int = 0
    failures: int = 0
    skipped: int = 0
    duration: float = 0.0
    flaky: bool = False


def _read(cases: Iterable[TestCase]) -> dict[Key, _Now]:
    """Each key's executions: memory grows with distinct tests, never with cases kept."""
    seen: dict[Key, _Now] = {}
    for case in cases:
        now = seen.get(key := case_key(case))
        if now is None:
            now = seen[key] = _Now()
        now.executions += 1
        now.failures += case.status.is_failure
        now.skipped += case.status is Status.SKIPPED
        now.duration = max(now.duration, case.duration)
        now.flaky = now.flaky or case.flaky
    return seen


class _List:
    def __init__(self) -> None:
        self.count = 0
        self.names: list[str] = []

    def add(self, key: Key, count: int = 1) -> None:
        self.count += count
        if len(self.names) < LISTED:
            self.names.append(key_name(key))

    def done(self) -> Named:
        return Named(self.count, tuple(self.names))


def _by_identity(keyed: Mapping[Key, BaseTest]) -> dict[Key, BaseTest]:
    merged: dict[Key, BaseTest] = {}
    for (_, identity), test in keyed.items():
        held = merged.get(("", identity))
        merged[("", identity)] = test if held is None else BaseTest(
            held.executions + test.executions, held.failures + test.failures,
            held.skipped + test.skipped, max(held.duration, test.duration))
    return merged


def _now_by_identity(keyed: Mapping[Key, _Now]) -> dict[Key, _Now]:
    merged: dict[Key, _Now] = {}
    for (_, identity), seen in keyed.items():
        held = merged.setdefault(("", identity), _Now())
        held.executions += seen.executions
        held.failures += seen.failures
        held.skipped += seen.skipped
        held.duration = max(held.duration, seen.duration)
        held.flaky = held.flaky or seen.flaky
    return merged


def _is_flaky(history: TestHistory, thresholds: Thresholds) -> bool:
    return thresholds.flaky_min_failures <= history.failed_runs < history.runs


def compare(run: TestRun, base: Baseline | None, thresholds: Thresholds = Thresholds()
            ) -> Comparison:
    """`run` against `base` (None: nothing to compare with, every failure is new)."""
    now = _read(run.cases())
    if base is None:
        new = _List()
        for key, seen in now.items():
            if seen.failures:
                new.add(key, seen.failures)
        return Comparison(base=None, failures=new.count, new_failures=new.done())
    tests: Mapping[Key, BaseTest] = base.tests
    passed_here = base.passed_here
    ours = {origin for origin, _ in now}
    theirs = {origin for origin, _ in tests}
    by_origin = bool(ours & theirs)
    if not by_origin:
        # No job name in common: match by identity alone (see the module docstring).
        now, tests = _now_by_identity(now), _by_identity(tests)
        passed_here = {("", identity) for _, identity in passed_here}

    def history_of(key: Key) -> TestHistory | None:
        origin, identity = key
        return base.history.of(origin, identity) if by_origin \
            else base.history.any_origin(identity)

    new, still, fixed, added, skipped = _List(), _List(), _List(), _List(), _List()
    flaky: list[Flaky] = []
    flaky_count = flaky_new = 0
    slower: list[Slower] = []
    failures = 0
    for key, seen in now.items():
        before = tests.get(key)
        past = history_of(key) if seen.failures or before is not None else None
        failures += seen.failures
        if before is None:
            added.add(key)
        if seen.failures:
            fresh = max(0, seen.failures - (before.failures if before is not None else 0))
            if fresh:
                new.add(key, fresh)
            if seen.failures - fresh:
                still.add(key, seen.failures - fresh)
            here = key in passed_here
            if here or (past is not None and _is_flaky(past, thresholds)):
                flaky_count += seen.failures
                flaky_new += fresh
                if len(flaky) < LISTED:
                    flaky.append(Flaky(key_name(key), past.failed_runs if past else 0))
        elif before is not None and before.failures:
            fixed.add(key)
        if before is None:
            continue
        if seen.skipped > before.skipped:
            skipped.add(key, seen.skipped - before.skipped)
        if not seen.failures:
            usual = (past.median_duration if past is not None
                     and past.median_duration is not None else before.duration)
            if (seen.duration - usual >= thresholds.slower_seconds
                    and seen.duration >= usual * (1 + thresholds.slower_percent / 100)):
                slower.append(Slower(key_name(key), seen.duration, usual))
    removed = _List()
    for key in tests:
        if key not in now:
            removed.add(key)
    slower.sort(key=lambda s: s.now - s.before, reverse=True)
    return Comparison(
        base=base, failures=failures, new_failures=new.done(), still_failing=still.done(),
        fixed=fixed.done(), new_tests=added.done(), removed=removed.done(),
        newly_skipped=skipped.done(), known_flaky=tuple(flaky), known_flaky_count=flaky_count,
        known_flaky_new=flaky_new,
        slower=tuple(slower[:LISTED]), worse_metrics=_worse(run.metrics, base, thresholds),
    )


def _joined(named: Sequence[tuple[str, Named]]) -> Named:
    count = sum(n.count for _, n in named)
    names = [f"{label}: {name}" for label, n in named for name in n.names][:LISTED]
    return Named(count, tuple(names))


def merge(parts: Sequence[tuple[str, Comparison | None]]) -> Comparison | None:
    """One comparison for a commit's report (`bot.coalesce`) from its runs' (label, own
    comparison): counts added, names prefixed with the run. None when any run has none
    (history off or failing for it): then nothing is said, and the gate takes every
    failure, as for a run with no history. A run without a base counts every failure of
    its as new, as it does alone."""
    if not parts or any(found is None for _, found in parts):
        return None
    found = [(label, c) for label, c in parts if c is not None]
    with_base = [(label, c) for label, c in found if c.base is not None]
    failures = sum(c.failures for _, c in found)

    def of(attribute: str) -> Named:
        return _joined([(label, getattr(c, attribute)) for label, c in found])

    if not with_base:
        return Comparison(base=None, failures=failures, new_failures=of("new_failures"))
    branches = sorted({c.base.branch for _, c in with_base if c.base is not None})
    base = Baseline(
        branch=branches[0] if len(branches) == 1 else " and ".join(branches),
        run_id=", ".join(f"{c.base.run_id} ({label})" for label, c in with_base
                         if c.base is not None),
        tests={},
        window_days=max((c.base.window_days or 0 for _, c in with_base if c.base), default=0)
        or None,
    )
    return Comparison(
        base=base, failures=failures, new_failures=of("new_failures"),
        still_failing=of("still_failing"), fixed=of("fixed"), new_tests=of("new_tests"),
        removed=of("removed"), newly_skipped=of("newly_skipped"),
        known_flaky=tuple(Flaky(f"{label}: {f.name}", f.failed_runs) for label, c in found
                          for f in c.known_flaky)[:LISTED],
        known_flaky_count=sum(c.known_flaky_count for _, c in found),
        known_flaky_new=sum(c.known_flaky_new for _, c in found),
        slower=tuple(Slower(f"{label}: {s.name}", s.now, s.before) for label, c in found
                     for s in c.slower)[:LISTED],
        worse_metrics=tuple(MetricChange(f"{label}: {m.name}", m.now, m.before, m.better)
                            for label, c in found for m in c.worse_metrics),
    )


def _worse(metrics: Iterable[Metric], base: Baseline, thresholds: Thresholds
           ) -> tuple[MetricChange, ...]:
    worse = []
    for metric in metrics:
        better = thresholds.better.get(metric.name)
        before = base.metrics.get(metric.name)
        if better is None or before is None or isinstance(metric.value, str):
            continue
        change = MetricChange(metric.name, float(metric.value), before, better)
        moved = change.percent if better is Better.LOWER else -change.percent
        if moved >= thresholds.metric_percent:
            worse.append(change)
    return tuple(worse)


__all__ = ["BaseTest", "Baseline", "Better", "Comparison", "Flaky", "HistoryView", "Key",
           "KeyedHistory", "MetricChange", "Named", "Slower", "TestHistory", "Thresholds",
           "case_key", "compare", "key_name", "merge"]
