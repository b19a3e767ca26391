"""Between the history store and the comparison: which base a run is compared with, and
what is recorded of it once reported.

    found = await compare_with_history(history, ref, change, origin, run, thresholds)
    ...  # publish, then
    await record(history, ref, change, origin, run)

- **The base** is the latest run of the same workflow (`HistoryKey`: forge, repository, CI
  system, run name) on the branch the change targets: the pull/merge request's target as
  the webhook names it (`RunRef.extra["base_branch"]`), else the run's own branch (a push
  to `main` is compared with the run before it on `main`). Where the forge names the
  target's commit (`base_sha`, GitHub), the run of that very commit is preferred.
- **The same commit**: the latest earlier run of this commit on the run's own branch (a
  re-run attempt, the workflow triggered again). A test that passed there and fails now
  is known flaky whatever the base branch says: the code did not change.
- A base of this very commit (a re-run on `main`) is no base: the run before it with
  another commit is looked for in the window.
- **Recorded**: every report's run, on its own branch, after it is published; a run of
  a branch the CI does not name is not recorded (there is no line to keep it on).

What it could hide: history failing to answer (a `HistoryError`, Redis or PostgreSQL
down) costs the comparison only. The report goes out as if there were no history, which
reads every failure as new and gates on all of them, never on fewer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

from bot.compare import (
    Baseline,
    BaseTest,
    Better,
    Comparison,
    Key,
    TestHistory,
    Thresholds,
    compare,
)
from bot.events import RunRef
from bot.history import Aggregates, HistoryError, HistoryKey, HistoryStore, RunSummary
from bot.logging import get_logger
from bot.ports import Change, ReportOrigin
from bot.repo_config import RepoConfig
from bot.results.model import TestRun

#: How many runs of the window are looked through for a base of another commit.
OTHER_COMMIT_LOOKS: Final = 10


class AggregatedHistory:
    """`bot.compare.HistoryView` over a store's `Aggregates`."""

    def __init__(self, aggregates: Aggregates) -> None:
        self.aggregates = aggregates

    def of(self, origin: str, identity: str) -> TestHistory | None:
        found = self.aggregates.get(identity, origin)
        if found is None:
            return None
        return TestHistory(runs=found.runs, failed_runs=found.failures,
                           median_duration=found.median_duration)

    def any_origin(self, identity: str) -> TestHistory | None:
        for origin in self.aggregates.origin_names:
            found = self.of(origin, identity)
            if found is not None:
                return found
        return None


def thresholds_of(config: RepoConfig) -> Thresholds:
    """The repository's `.herald.yml` thresholds (the defaults without one)."""
    better = {**dict.fromkeys(config.metrics.higher, Better.HIGHER),
              **dict.fromkeys(config.metrics.lower, Better.LOWER)}
    return Thresholds(flaky_min_failures=config.flaky.min_failures,
                      slower_percent=config.slow.percent, slower_seconds=config.slow.seconds,
                      metric_percent=config.metrics.percent, better=better)


def base_branch(ref: RunRef) -> str | None:
    target = ref.extra.get("base_branch")
    return str(target) if isinstance(target, str) and target else ref.branch


def _days(aggregates: Aggregates, now: datetime) -> int | None:
    if aggregates.oldest is None:
        return None
    return max(1, math.ceil((now - aggregates.oldest).total_seconds() / 86_400))


def _tests(summary: RunSummary) -> dict[Key, BaseTest]:
    return {key: BaseTest(c.executions, c.failures, c.skipped, c.slowest)
            for key, c in summary.by_test().items()}


async def _base_run(history: HistoryStore, key: HistoryKey, sha: str,
                    base_sha: str | None) -> tuple[RunSummary | None, Aggregates]:
    """The base's run (of `base_sha` when the store has it, else the latest of another
    commit than `sha`) and the line's aggregates."""
    found = await history.lookup(key, sha=base_sha) if base_sha else None
    if found is None or found.latest is None:
        found = await history.lookup(key)
    latest = found.latest
    if latest is not None and latest.sha == sha:
        # A re-run on the base branch itself: its own earlier attempt is no base.
        latest = None
        for older in await history.window(key, OTHER_COMMIT_LOOKS):
            if older.sha != sha:
                latest = await history.latest(key, sha=older.sha)
                break
    return latest, found.aggregates


async def _passed_here(history: HistoryStore, key: HistoryKey, sha: str,
                       origin: ReportOrigin) -> frozenset[Key]:
    """Keys that passed in an earlier run of this very commit on its own branch."""
    earlier = await history.latest(key, sha=sha)
    if earlier is None or (earlier.run_id == origin.run.run_id
                           and earlier.attempt >= origin.attempt):
        return frozenset()  # this run itself, recorded by a retried job
    return frozenset(k for k, c in earlier.by_test().items()
                     if c.executions > c.failures + c.skipped)


async def compare_with_history(
    history: HistoryStore, ref: RunRef, change: Change, origin: ReportOrigin, run: TestRun,
    thresholds: Thresholds, *, now: datetime | None = None,
) -> Comparison | None:
    """`run` against its base, or None when history cannot say (no branch, or the store
    failing: logged, and the report goes out as without history)."""
    target = base_branch(ref)
    if not target:
        return None
    try:
        key = HistoryKey.of(change, origin, target)
        latest, aggregates = await _base_run(history, key, change.sha,
                                             str(ref.extra.get("base_sha") or "") or None)
        own = HistoryKey.of(change, origin, ref.branch) if ref.branch else None
        here = await _passed_here(history, own, change.sha, origin) if own else frozenset()
    except HistoryError as exc:
        get_logger("herald.baseline").warning("history could not be read", error=str(exc),
                                              repo=change.repo)
        return None
    if latest is None:
        return compare(run, None, thresholds)
    base = Baseline(
        branch=target, run_id=latest.run_id, sha=latest.sha, tests=_tests(latest),
        history=AggregatedHistory(aggregates), passed_here=here,
        window_days=_days(aggregates, now or datetime.now(UTC)),
        metrics=latest.metrics,
    )
    return compare(run, base, thresholds)


async def record(history: HistoryStore, ref: RunRef, change: Change, origin: ReportOrigin,
                 run: TestRun) -> bool:
    """Keep the reported run in its own branch's history; False when it was not kept."""
    if not ref.branch:
        return False
    try:
        return await history.record(RunSummary.of_report(run, change, origin, ref.branch))
    except HistoryError as exc:
        get_logger("herald.baseline").warning("history could not be written",
                                              error=str(exc), repo=change.repo)
        return False


__all__ = ["AggregatedHistory", "base_branch", "compare_with_history", "record",
           "thresholds_of"]
