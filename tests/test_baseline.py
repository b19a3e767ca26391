"""Which base a run is compared with, and what history failing costs: the comparison only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.baseline import compare_with_history, record
from bot.compare import Thresholds
from bot.events import RunRef
from bot.history import HistoryError, Retention
from bot.history.redis import RedisHistory
from bot.ports import Change, ReportOrigin
from bot.results.model import Origin, Status, Suite, TestCase, TestRun

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def run_of(status: Status) -> TestRun:
    case = TestCase(name="adds", classname="shop.Cart", status=status, origin=Origin("unit"))
    return TestRun(id="r", suites=[Suite("unit", [case])])


def job(sha: str, branch: str, run_id: str, attempt: int = 1, **extra: Any
        ) -> tuple[RunRef, Change, ReportOrigin]:
    ref = RunRef(provider="github", repo="acme/shop", run_id=run_id, sha=sha, branch=branch,
                 extra=extra)
    return ref, Change(forge="github", repo="acme/shop", sha=sha), ReportOrigin(
        run=ref, name="CI", attempt=attempt, sequence=int(run_id))


@pytest.fixture
async def history(redis_url: str) -> Any:
    store = RedisHistory(aioredis.Redis.from_url(redis_url), Retention(), clock=lambda: NOW)
    yield store
    await store.close()


async def test_a_rerun_on_main_is_compared_with_the_commit_before_not_with_itself(
        history: RedisHistory) -> None:
    before = job("a" * 40, "main", "100")
    await record(history, *before, run_of(Status.FAILED))
    first = job("b" * 40, "main", "101")
    await record(history, *first, run_of(Status.PASSED))

    again = job("b" * 40, "main", "101", attempt=2)
    found = await compare_with_history(history, *again, run_of(Status.FAILED), Thresholds(),
                                       now=NOW)

    assert found is not None and found.base is not None
    assert found.base.run_id == "100"  # not its own first attempt
    assert found.still_failing.count == 1
    assert found.known_flaky_count == 1  # it passed on the first attempt of this commit


async def test_a_pull_request_prefers_the_run_of_its_targets_commit(
        history: RedisHistory) -> None:
    await record(history, *job("a" * 40, "main", "100"), run_of(Status.FAILED))
    await record(history, *job("c" * 40, "main", "102"), run_of(Status.PASSED))

    pull = job("d" * 40, "feature", "200", base_branch="main", base_sha="a" * 40)
    found = await compare_with_history(history, *pull, run_of(Status.FAILED), Thresholds(),
                                       now=NOW)

    assert found is not None and found.base is not None and found.base.run_id == "100"
    assert found.new_failures.count == 0


class Broken:
    async def lookup(self, *args: Any, **kwargs: Any) -> Any:
        raise HistoryError("Redis is down")

    async def record(self, *args: Any, **kwargs: Any) -> bool:
        raise HistoryError("Redis is down")


async def test_history_failing_costs_the_comparison_only() -> None:
    pull = job("d" * 40, "feature", "200", base_branch="main")

    found = await compare_with_history(Broken(), *pull, run_of(Status.FAILED),  # type: ignore[arg-type]
                                       Thresholds())

    assert found is None  # reported as without history: every failure new, gated
    assert await record(Broken(), *pull, run_of(Status.FAILED)) is False  # type: ignore[arg-type]


async def test_a_run_whose_branch_is_unknown_is_neither_compared_nor_recorded(
        history: RedisHistory) -> None:
    ref, change, origin = job("d" * 40, "", "300")
    assert await compare_with_history(history, ref, change, origin, run_of(Status.PASSED),
                                      Thresholds()) is None
    assert await record(history, ref, change, origin, run_of(Status.PASSED)) is False


async def test_metrics_are_judged_against_the_base_run_in_the_declared_direction(
        history: RedisHistory) -> None:
    from bot.compare import Better
    from bot.results.model import Metric

    base = run_of(Status.PASSED)
    base.metrics = [Metric("throughput", 120.0), Metric("p95_ms", 80.0), Metric("note", "ok")]
    await record(history, *job("a" * 40, "main", "100"), base)
    now = run_of(Status.PASSED)
    now.metrics = [Metric("throughput", 100.0), Metric("p95_ms", 81.0)]

    found = await compare_with_history(
        history, *job("d" * 40, "feature", "200", base_branch="main"), now,
        Thresholds(metric_percent=5, better={"throughput": Better.HIGHER,
                                             "p95_ms": Better.LOWER}), now=NOW)

    assert found is not None
    assert [(m.name, m.before, m.now) for m in found.worse_metrics] == [
        ("throughput", 120.0, 100.0)]  # p95 rose 1.25%: under the threshold
