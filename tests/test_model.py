"""The result model: totals come from the cases, shards merge by identity, figures print
the way every report prints them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.results.model import (
    Attempt,
    Origin,
    RunStatus,
    Status,
    Suite,
    TestCase,
    TestRun,
    format_count,
    format_duration,
    format_size,
    truncate,
)


def run_of(*cases: TestCase, run_id: str = "r1") -> TestRun:
    return TestRun(run_id, suites=[Suite("s", cases=list(cases))])


@pytest.mark.parametrize(
    ("seconds", "printed"),
    [
        (0, "0.00s"),
        (0.349, "0.35s"),
        (59.999, "60.00s"),
        (125.7, "2m 5.70s"),
        (3723, "1h 2m 3.00s"),
        (-5, "0.00s"),
        (float("inf"), "0.00s"),
        (float("nan"), "0.00s"),
    ],
)
def test_durations_print_as_in_the_reports(seconds: float, printed: str) -> None:
    assert format_duration(seconds) == printed


@pytest.mark.parametrize(
    ("count", "total", "printed"),
    [
        (40, 42, "Passed: 40 (95.2%)"),
        (0, 0, "Passed: 0 (0.0%)"),
        (1204, 1204, "Passed: 1,204 (100.0%)"),
    ],
)
def test_counts_print_with_their_share(count: int, total: int, printed: str) -> None:
    assert format_count("Passed", count, total) == printed


@pytest.mark.parametrize(
    ("size", "printed"),
    [
        (None, "unknown size"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KB"),
        (5 * 1024**3, "5.0 GB"),
    ],
)
def test_sizes_print_in_binary_units(size: int | None, printed: str) -> None:
    assert format_size(size) == printed


def test_truncate_keeps_short_text_and_marks_what_it_drops() -> None:
    assert truncate("short", 10) == "short"
    assert truncate(None) is None
    cut = truncate("x" * 100, 10)
    assert cut is not None
    assert cut.startswith("x" * 10)
    assert "90 more characters" in cut


def test_totals_are_counted_from_the_cases() -> None:
    run = run_of(
        TestCase("a"),
        TestCase("b", status=Status.FAILED),
        TestCase("c", status=Status.ERROR),
        TestCase("d", status=Status.SKIPPED),
        TestCase("e", attempts=[Attempt(Status.FAILED)]),
    )
    totals = run.totals()
    assert (totals.total, totals.passed, totals.failed, totals.errors, totals.skipped) == (
        5,
        2,
        1,
        1,
        1,
    )
    assert totals.flaky == 1
    assert totals.failures == 2
    assert run.overall_status() is RunStatus.FAILED
    assert [c.name for c in run.failures()] == ["b", "c"]


@pytest.mark.parametrize(
    ("run", "status"),
    [
        (run_of(TestCase("a")), RunStatus.PASSED),
        (TestRun("empty"), RunStatus.NO_TESTS),
        (TestRun("broken", status=RunStatus.CANCELLED), RunStatus.CANCELLED),
    ],
)
def test_overall_status(run: TestRun, status: RunStatus) -> None:
    assert run.overall_status() is status


def test_duration_is_the_run_s_own_total_then_the_wall_clock_then_the_cases() -> None:
    # Suite times are never added up: nested suites would count twice.
    cases = [TestCase("a", duration=1.5), TestCase("b", duration=2.0)]
    assert TestRun("r", suites=[Suite("s", cases=cases)]).totals().duration == 3.5
    nested = [Suite("outer", cases=cases[:1], duration=9.0), Suite("inner", cases=cases[1:],
                                                                     duration=8.0)]
    assert TestRun("r", suites=nested).totals().duration == 3.5
    assert TestRun("r", suites=nested, duration=9.0).totals().duration == 9.0
    naive_start = datetime(2026, 1, 1, 0, 0, 0)
    aware_end = datetime(2026, 1, 1, 0, 2, 5, 700000, tzinfo=UTC)
    timed = TestRun("r", started_at=naive_start, finished_at=aware_end)
    assert format_duration(timed.totals().duration) == "2m 5.70s"


def test_merging_files_adds_each_file_s_own_total() -> None:
    first = TestRun("a", suites=[Suite("s", cases=[TestCase("x", duration=1.0)])], duration=4.0)
    second = TestRun("b", suites=[Suite("s", cases=[TestCase("y", duration=2.0)])])
    merged = TestRun("r").merge([first, second])
    assert merged.totals().duration == 4.0 + 2.0


def test_two_shards_with_the_same_test_stay_two_executions_in_either_order() -> None:
    def failing() -> TestRun:
        return run_of(TestCase("t", classname="C", suite="s", status=Status.FAILED,
                               message="boom"))

    def passing() -> TestRun:
        return run_of(TestCase("t", classname="C", suite="s", duration=2.0),
                      TestCase("other", suite="s"))

    for merged in (failing().merge([passing()]), passing().merge([failing()])):
        totals = merged.totals()
        assert (totals.total, totals.tests, totals.failed, totals.flaky) == (3, 2, 1, 0)
        assert [c.message for c in merged.failures()] == ["boom"]


def test_a_later_attempt_of_the_same_job_turns_a_failure_it_passes_into_flaky() -> None:
    job, other_leg = Origin("test (3.11)"), Origin("test (3.12)")

    def case(name: str, origin: Origin, status: Status = Status.PASSED) -> TestCase:
        return TestCase(name, classname="C", suite="s", status=status, origin=origin,
                        message="boom" if status.is_failure else None)

    first = run_of(case("t", job, Status.FAILED), case("p[1]", job, Status.FAILED),
                   case("p[1]", job), case("gone", job, Status.FAILED),
                   case("t", other_leg, Status.FAILED))
    second = run_of(case("t", job), case("p[1]", job), case("p[1]", job, Status.FAILED),
                    case("t", other_leg, Status.FAILED))
    assert second.absorb_retry(first) == 3
    by = [(c.name, c.origin, c.status, c.flaky) for c in second.cases()]
    assert by == [
        ("t", job, Status.PASSED, True),
        # The first execution of p[1] failed and now passed; the second passed before and
        # fails now: a new failure, never hidden by its twin.
        ("p[1]", job, Status.PASSED, True),
        ("p[1]", job, Status.FAILED, False),
        # Another matrix leg's failure is that leg's own: its retry failed again.
        ("t", other_leg, Status.FAILED, False),
    ]
    assert second.totals().failed == 2


def test_identity_separates_same_names_in_different_classes() -> None:
    assert TestCase("t", classname="A").identity != TestCase("t", classname="B").identity


@pytest.mark.parametrize(
    ("classname", "name", "shown"),
    [
        ("", "test_x", "test_x"),
        ("tests.test_api", "test_create", "tests.test_api.test_create"),
        ("github.com/acme/api", "TestCreate/dup", "github.com/acme/api.TestCreate/dup"),
        # Mocha and jest-junit: the full title is the name, the classname a part of it.
        (
            "rejects an empty cart",
            "Orders API rejects an empty cart",
            "Orders API rejects an empty cart",
        ),
        ("Calc", "Calc divides by zero.", "Calc divides by zero."),
        ("Calc", "divides by zero.", "Calc.divides by zero."),
        ("Cart", "adds to Cart", "Cart.adds to Cart"),
    ],
)
def test_display_name_names_the_class_once(classname: str, name: str, shown: str) -> None:
    assert TestCase(name, classname=classname).display_name == shown
