"""A run against its base: new failures never hide behind old ones, flaky is advice only."""

from __future__ import annotations

from bot.compare import (
    LISTED,
    Baseline,
    BaseTest,
    Better,
    KeyedHistory,
    TestHistory,
    Thresholds,
    compare,
)
from bot.results.model import Metric, Origin, Status, Suite, TestCase, TestRun

LEG_311, LEG_312 = Origin("test (3.11)"), Origin("test (3.12)")


def case(name: str, status: Status = Status.PASSED, origin: Origin | None = LEG_311,
         duration: float = 0.1, classname: str = "shop.Cart") -> TestCase:
    return TestCase(name=name, classname=classname, suite="unit", status=status,
                    duration=duration, origin=origin)


def run_of(*cases: TestCase, metrics: list[Metric] | None = None) -> TestRun:
    return TestRun(id="now", suites=[Suite("unit", list(cases))], metrics=metrics or [])


def key(name: str, origin: Origin | None = LEG_311, classname: str = "shop.Cart"
        ) -> tuple[str, str]:
    return (origin.name if origin else "", f"unit\x1f{classname}\x1f{name}")


def base_of(tests: dict[tuple[str, str], BaseTest], **more: object) -> Baseline:
    return Baseline(branch="main", run_id="4711", tests=tests, **more)  # type: ignore[arg-type]


# ---- what could hide a failure: tested first ---------------------------------------------


def test_a_data_provider_failing_twice_where_main_failed_once_has_one_new_failure() -> None:
    now = run_of(case("adds", Status.FAILED), case("adds", Status.FAILED), case("adds"))
    base = base_of({key("adds"): BaseTest(executions=3, failures=1)})

    found = compare(now, base)

    assert found.new_failures.count == 1
    assert found.still_failing.count == 1
    assert found.regressions == 1


def test_without_a_base_every_failure_is_new() -> None:
    now = run_of(case("adds", Status.FAILED), case("removes", Status.ERROR), case("lists"))

    found = compare(now, None)

    assert found.regressions == 2 and found.new_failures.count == 2
    assert found.still_failing.count == 0
    assert found.advice() is None


def test_a_leg_failing_now_is_new_although_another_leg_failed_it_on_main() -> None:
    now = run_of(case("adds", origin=LEG_311), case("adds", Status.FAILED, origin=LEG_312))
    base = base_of({key("adds", LEG_311): BaseTest(1, failures=1),
                    key("adds", LEG_312): BaseTest(1)})

    found = compare(now, base)

    assert found.new_failures.names == ("shop.Cart.adds (test (3.12))",)
    assert found.fixed.names == ("shop.Cart.adds (test (3.11))",)


def test_jobs_renamed_since_main_match_tests_by_identity_not_as_all_new() -> None:
    renamed = Origin("junit-run-9913")
    now = run_of(case("adds", Status.FAILED, origin=renamed), case("removes", origin=renamed))
    base = base_of({key("adds", Origin("junit-run-9870")): BaseTest(1, failures=1),
                    key("removes", Origin("junit-run-9870")): BaseTest(1)})

    found = compare(now, base)

    assert found.still_failing.count == 1 and found.new_failures.count == 0
    assert found.new_tests.count == 0 and found.removed.count == 0


def test_a_test_that_stopped_running_is_named_as_removed() -> None:
    now = run_of(case("adds"))
    base = base_of({key("adds"): BaseTest(1), key("checks_out"): BaseTest(1)})

    found = compare(now, base)

    assert found.removed.names == ("shop.Cart.checks_out (test (3.11))",)


def test_a_test_failing_on_every_run_of_main_is_broken_not_flaky() -> None:
    now = run_of(case("adds", Status.FAILED))
    base = base_of({key("adds"): BaseTest(1, failures=1)},
                   history=KeyedHistory({key("adds"): TestHistory(runs=14, failed_runs=14)}))

    found = compare(now, base)

    assert found.known_flaky_count == 0
    assert found.still_failing.count == 1


def test_known_flaky_is_advice_and_never_lowers_the_regressions() -> None:
    now = run_of(case("adds", Status.FAILED), case("removes", Status.FAILED),
                 case("lists", Status.FAILED))
    base = base_of({key("adds"): BaseTest(1), key("removes"): BaseTest(1),
                    key("lists"): BaseTest(1)},
                   history=KeyedHistory({key("adds"): TestHistory(runs=20, failed_runs=5),
                                         key("removes"): TestHistory(runs=20, failed_runs=3)}),
                   window_days=14)

    found = compare(now, base)

    assert found.regressions == 3  # flaky or not, each failed where main passed
    assert found.known_flaky_count == 2
    assert found.advice() == ("2 of 3 failures are known flaky (failed 5 times on main in "
                              "14 days): `/retest` reruns them. 1 is new: look at it.")


def test_a_test_that_passed_on_another_attempt_of_this_commit_is_known_flaky() -> None:
    now = run_of(case("adds", Status.FAILED))
    base = base_of({key("adds"): BaseTest(1)}, passed_here=frozenset({key("adds")}))

    found = compare(now, base)

    assert found.known_flaky_count == 1
    assert "passed on another attempt of this commit" in (found.advice() or "")


def test_old_failures_are_said_as_such_in_the_advice() -> None:
    now = run_of(case("adds", Status.FAILED), case("removes", Status.FAILED))
    base = base_of({key("adds"): BaseTest(1, failures=1), key("removes"): BaseTest(1)})

    assert compare(now, base).advice() == "1 is new: look at it. 1 failed on main already."


# ---- the rest of the comparison ------------------------------------------------------------


def test_new_fixed_and_newly_skipped_tests_are_counted() -> None:
    now = run_of(case("adds"), case("removes", Status.SKIPPED), case("pays"))
    base = base_of({key("adds"): BaseTest(1, failures=1), key("removes"): BaseTest(1)})

    found = compare(now, base)

    assert found.fixed.count == 1 and found.newly_skipped.count == 1
    assert found.new_tests.names == ("shop.Cart.pays (test (3.11))",)


def test_a_slowdown_needs_both_the_percentage_and_the_seconds() -> None:
    now = run_of(case("slow", duration=4.0), case("quick", duration=0.3),
                 case("steady", duration=10.5))
    base = base_of({key("slow"): BaseTest(1, duration=9.0), key("quick"): BaseTest(1),
                    key("steady"): BaseTest(1, duration=10.0)},
                   history=KeyedHistory({key("slow"): TestHistory(runs=10,
                                                                  median_duration=2.0)}))

    found = compare(now, base, Thresholds(slower_percent=50, slower_seconds=1))

    # 0.3 s is thrice 0.1 s but not a second slower; 10.5 s is not 50% above 10 s; 4 s is
    # against the median of the window (2 s), not the base run's own 9 s.
    assert [(s.name, s.now, s.before) for s in found.slower] == [
        ("shop.Cart.slow (test (3.11))", 4.0, 2.0)]


def test_metrics_are_judged_only_in_the_direction_declared_better() -> None:
    now = run_of(case("adds"), metrics=[Metric("throughput", 90.0), Metric("p95_ms", 130.0),
                                        Metric("memory_mb", 900.0), Metric("note", "n/a")])
    base = base_of({key("adds"): BaseTest(1)},
                   metrics={"throughput": 100.0, "p95_ms": 120.0, "memory_mb": 500.0})
    better = {"throughput": Better.HIGHER, "p95_ms": Better.LOWER, "note": Better.LOWER}

    found = compare(now, base, Thresholds(metric_percent=5, better=better))

    assert [(m.name, round(m.percent, 1)) for m in found.worse_metrics] == [
        ("throughput", -10.0), ("p95_ms", 8.3)]  # memory_mb has no declared direction


def test_lists_are_capped_and_counts_stay_whole() -> None:
    now = run_of(*(case(f"t{i}", Status.FAILED) for i in range(LISTED + 30)))

    found = compare(now, base_of({}))

    assert found.new_failures.count == LISTED + 30
    assert len(found.new_failures.names) == LISTED
    assert found.new_tests.count == LISTED + 30


def test_a_commits_runs_merge_into_one_comparison_and_none_without_history() -> None:
    from bot.compare import merge

    base = base_of({key("adds"): BaseTest(1, failures=1)})
    one = compare(run_of(case("adds", Status.FAILED), case("pays", Status.FAILED)), base)
    other = compare(run_of(case("adds", Status.FAILED)), None)  # a new workflow: no base

    found = merge([("CI (3.11)", one), ("lint", other)])

    assert found is not None and found.base is not None
    assert found.failures == 3 and found.regressions == 2  # the unbased run's is new
    assert found.still_failing.names == ("CI (3.11): shop.Cart.adds (test (3.11))",)
    assert merge([("CI (3.11)", one), ("lint", None)]) is None
