"""The history store's contract, the same for Redis and PostgreSQL (each test runs on both)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.history import HistoryKey, Retention, RunSummary, identity_hash
from bot.history.store import HistoryStore
from bot.history.summary import FAILED, NAME_LIMIT, PASSED, SKIPPED
from bot.results.model import Attempt, Origin, Status, Suite, TestCase, TestRun
from tests.history.conftest import START, Clock

KEY = HistoryKey("github", "octo/app", "main", "github", "CI")
LEG = Origin("test (3.12)")


def run_of(*cases: TestCase) -> TestRun:
    return TestRun(id="r", suites=[Suite("s", cases=list(cases))])


def case(name: str, status: Status = Status.PASSED, duration: float = 1.0,
         origin: Origin | None = LEG, attempts: list[Attempt] | None = None) -> TestCase:
    return TestCase(name=name, classname="c", suite="s", status=status, duration=duration,
                    origin=origin, attempts=attempts or [])


def summary(run_id: str, *cases: TestCase, minutes: float = 0, sha: str | None = None,
            attempt: int = 1, key: HistoryKey = KEY) -> RunSummary:
    return RunSummary.of(run_of(*cases), key, sha=sha or f"sha-{run_id}", run_id=run_id,
                         attempt=attempt, finished_at=START + timedelta(minutes=minutes))


def identity(name: str) -> str:
    return f"s\x1fc\x1f{name}"


async def test_a_recorded_run_reads_back_as_the_latest_with_every_field(
        store: HistoryStore) -> None:
    flaky = case("retried", attempts=[Attempt(Status.FAILED, 0.5)])
    recorded = summary("1", case("ok", duration=0.25), case("bad", Status.FAILED, 2.0),
                       case("gone", Status.SKIPPED, 0.0, origin=None), flaky)
    assert await store.record(recorded)

    latest = await store.latest(KEY)

    assert latest is not None
    assert (latest.run_id, latest.sha, latest.finished_at) == ("1", "sha-1", START)
    assert latest.complete
    assert sorted(latest.tests()) == sorted(recorded.tests())
    by_name = {test.identity: test for test in latest.tests()}
    assert by_name[identity("bad")].status is Status.FAILED
    assert by_name[identity("gone")].origin == ""
    assert by_name[identity("retried")][4:] == (1.0, 2, True)
    assert by_name[identity("ok")].duration == 0.25


async def test_a_key_without_history_has_no_latest_run_no_window_and_no_aggregates(
        store: HistoryStore) -> None:
    await store.record(summary("1", case("a"), key=HistoryKey("github", "octo/app", "main",
                                                             "github", "Lint")))

    assert await store.latest(KEY) is None
    assert await store.window(KEY) == []
    assert len(await store.aggregates(KEY)) == 0
    looked = await store.lookup(KEY)
    assert looked.latest is None and len(looked.aggregates) == 0


async def test_latest_of_a_sha_is_that_commits_newest_run_not_the_branchs(
        store: HistoryStore) -> None:
    await store.record(summary("1", case("a"), minutes=0, sha="base"))
    await store.record(summary("2", case("a", Status.FAILED), minutes=5, sha="base"))
    await store.record(summary("3", case("a"), minutes=10, sha="later"))

    of_base = await store.latest(KEY, sha="base")
    newest = await store.latest(KEY)

    assert of_base is not None and of_base.run_id == "2"
    assert newest is not None and newest.run_id == "3"
    assert await store.latest(KEY, sha="never-built") is None
    assert (await store.lookup(KEY, sha="base")).latest.run_id == "2"  # type: ignore[union-attr]


async def test_the_window_is_newest_first_and_limited(store: HistoryStore) -> None:
    for minute in range(5):
        await store.record(summary(f"run-{minute}", case("a"), minutes=minute))

    assert [run.run_id for run in await store.window(KEY)] == [
        "run-4", "run-3", "run-2", "run-1", "run-0"]
    assert [run.run_id for run in await store.window(KEY, 2)] == ["run-4", "run-3"]


async def test_aggregates_count_runs_failures_flips_and_the_median_of_passed_durations(
        store: HistoryStore) -> None:
    # a: pass fail pass skip pass (two flips: a skip is no flip); b: always fails.
    statuses = [Status.PASSED, Status.FAILED, Status.PASSED, Status.SKIPPED, Status.PASSED]
    for minute, status in enumerate(statuses):
        await store.record(summary(
            str(minute), case("a", status, duration=float(minute + 1)),
            case("b", Status.ERROR, duration=100.0), minutes=minute,
        ))

    aggregates = (await store.lookup(KEY)).aggregates

    a = aggregates.get(identity("a"), LEG.name)
    assert a is not None
    assert (a.runs, a.failures, a.flips, a.last) == (5, 1, 2, PASSED)
    assert a.median_duration == 3.0  # passed in runs 0, 2 and 4: durations 1, 3, 5
    b = aggregates.get(identity_hash(identity("b")), LEG.name)
    assert b is not None
    assert (b.runs, b.failures, b.flips, b.last, b.median_duration) == (5, 5, 0, FAILED, None)
    assert aggregates.runs == ["4", "3", "2", "1", "0"]


async def test_a_failing_iteration_is_a_failed_run_of_its_test_however_many_passed(
        store: HistoryStore) -> None:
    """Folding the executions of one test in one run could hide a failure: it must not."""
    iterations = [case("param", Status.PASSED) for _ in range(9)]
    await store.record(summary("1", *iterations, case("param", Status.FAILED)))

    found = (await store.aggregates(KEY)).get(identity("param"), LEG.name)

    assert found is not None
    assert (found.runs, found.failures, found.last) == (1, 1, FAILED)
    latest = await store.latest(KEY)
    assert latest is not None and len(latest) == 10  # every execution is kept


async def test_one_test_in_two_matrix_legs_is_two_records(store: HistoryStore) -> None:
    await store.record(summary("1", case("t", origin=Origin("py3.11")),
                               case("t", Status.FAILED, origin=Origin("py3.12"))))

    aggregates = await store.aggregates(KEY)

    assert aggregates.get(identity("t"), "py3.11").failures == 0  # type: ignore[union-attr]
    assert aggregates.get(identity("t"), "py3.12").failures == 1  # type: ignore[union-attr]
    assert aggregates.get(identity("t"), "") is None


async def test_only_skipped_runs_leave_a_test_skipped_with_no_flips(store: HistoryStore) -> None:
    for minute in range(3):
        await store.record(summary(str(minute), case("s", Status.SKIPPED), minutes=minute))

    found = (await store.aggregates(KEY)).get(identity("s"), LEG.name)

    assert found is not None
    assert (found.runs, found.failures, found.flips, found.last) == (3, 0, 0, SKIPPED)


async def test_retention_by_count_keeps_the_newest_runs_and_counts_only_them(
        store: HistoryStore) -> None:
    store.retention = Retention(max_runs=3, max_days=30)
    for minute in range(5):
        status = Status.FAILED if minute < 2 else Status.PASSED
        await store.record(summary(str(minute), case("a", status), minutes=minute))

    window = await store.window(KEY)
    found = (await store.aggregates(KEY)).get(identity("a"), LEG.name)

    assert [run.run_id for run in window] == ["4", "3", "2"]
    assert found is not None and (found.runs, found.failures) == (3, 0)


async def test_a_run_older_than_the_retention_is_not_stored(
        store: HistoryStore, clock: Clock) -> None:
    store.retention = Retention(max_runs=50, max_days=7)
    clock.advance(days=8)

    assert not await store.record(summary("old", case("a")))
    assert await store.latest(KEY) is None


async def test_runs_age_out_of_reads_and_of_the_aggregates(
        store: HistoryStore, clock: Clock) -> None:
    store.retention = Retention(max_runs=50, max_days=7)
    await store.record(summary("old", case("a", Status.FAILED), minutes=0))
    await store.record(summary("new", case("a"), minutes=2 * 24 * 60))
    clock.advance(days=3)
    before = (await store.aggregates(KEY)).get(identity("a"), LEG.name)

    clock.advance(days=5)  # "old" is now 8 days old, "new" 6

    looked = await store.lookup(KEY)
    after = looked.aggregates.get(identity("a"), LEG.name)
    assert before is not None and (before.runs, before.failures) == (2, 1)
    assert looked.latest is not None and looked.latest.run_id == "new"
    assert [run.run_id for run in await store.window(KEY)] == ["new"]
    assert after is not None and (after.runs, after.failures) == (1, 0)
    assert looked.aggregates.runs == ["new"]


async def test_a_run_recorded_twice_counts_once_and_the_later_attempt_wins(
        store: HistoryStore) -> None:
    assert await store.record(summary("7", case("a", Status.FAILED), attempt=1))
    assert await store.record(summary("7", case("a"), attempt=2))
    assert await store.record(summary("7", case("a"), attempt=2))  # a redelivery

    found = (await store.aggregates(KEY)).get(identity("a"), LEG.name)
    latest = await store.latest(KEY)

    assert found is not None and (found.runs, found.failures) == (1, 0)
    assert latest is not None and latest.attempt == 2
    assert len(await store.window(KEY)) == 1


async def test_an_earlier_attempt_arriving_late_does_not_replace_a_later_one(
        store: HistoryStore) -> None:
    await store.record(summary("7", case("a"), attempt=2))

    assert not await store.record(summary("7", case("a", Status.FAILED), attempt=1))

    latest = await store.latest(KEY)
    assert latest is not None and latest.attempt == 2 and not latest.failures()


async def test_concurrent_writers_of_one_key_lose_no_run_from_the_aggregates(
        store: HistoryStore) -> None:
    runs = [summary(str(n), case("a", Status.FAILED if n % 2 else Status.PASSED),
                    case(f"only-{n}"), minutes=n) for n in range(12)]

    stored = await asyncio.gather(*(store.record(run) for run in runs))

    aggregates = await store.aggregates(KEY)
    found = aggregates.get(identity("a"), LEG.name)
    assert all(stored)
    assert found is not None and (found.runs, found.failures) == (12, 6)
    assert sorted(aggregates.runs, key=int) == [str(n) for n in range(12)]
    assert all(aggregates.get(identity(f"only-{n}"), LEG.name) for n in range(12))


async def test_huge_and_unicode_names_are_bounded_and_stay_distinct(store: HistoryStore) -> None:
    long_a = "x" * 2_000_000 + "a"
    long_b = "x" * 2_000_000 + "b"
    # A lone surrogate (broken UTF-16, as producers write it) and NUL, which PostgreSQL's
    # text refuses: both kept, spelled as escapes.
    strange = "测试 ✓ \u202e\x1b[31m \U0001d4fd\U0001d4ee \ud83d \x00"
    key = HistoryKey("github", "o/" + "r" * 5000, "ветка\x00", "github", "CI: ✓ \ud800")
    await store.record(summary("1", case(long_a), case(long_b, Status.FAILED), case(strange),
                               key=key))

    latest = await store.latest(key)
    aggregates = await store.aggregates(key)

    assert latest is not None and len(latest) == 3
    assert all(len(test.identity) <= NAME_LIMIT for test in latest.tests())
    assert "s\x1fc\x1f测试 ✓ \u202e\x1b[31m \U0001d4fd\U0001d4ee \\ud83d \\x00" in {
        test.identity for test in latest.tests()}
    assert latest.key == key and key.branch == "ветка\\x00"
    assert aggregates.get(identity(long_a), LEG.name).failures == 0  # type: ignore[union-attr]
    assert aggregates.get(identity(long_b), LEG.name).failures == 1  # type: ignore[union-attr]


async def test_a_run_of_a_million_tests_is_stored_capped_with_every_failure_kept(
        store: HistoryStore, million: TestRun) -> None:
    capped = RunSummary.of(million, KEY, sha="big", run_id="big", finished_at=START)
    assert await store.record(capped)

    latest = await store.latest(KEY)

    assert latest is not None
    assert len(latest) == 100_000 and latest.omitted == 900_000 and not latest.complete
    assert latest.omitted_failures == 0
    assert len(latest.failures()) == 1_000


@pytest.fixture(scope="module")
def million() -> TestRun:
    """A million executions, a thousand failing near the end (past any cap)."""
    cases = [TestCase(name=f"t{n}", classname="c", suite="s", duration=0.01)
             for n in range(999_000)]
    cases += [TestCase(name=f"f{n}", classname="c", suite="s", status=Status.FAILED)
              for n in range(1_000)]
    return run_of(*cases)
