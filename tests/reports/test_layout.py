"""How a report arranges a run: every failure once, by job then file or suite, with
same-named executions numbered. What a merging rule could hide is tested first."""

from __future__ import annotations

from bot.reports.layout import arrange
from bot.results.model import Attempt, Origin, Status, Suite, TestCase, TestRun
from tests.reports.runs import matrix_run

A, B = Origin("a"), Origin("b")


def test_every_failure_is_listed_once_whatever_its_name() -> None:
    cases = [TestCase(name="t", status=Status.FAILED, origin=origin, file=file)
             for origin in (A, B, None) for file in ("x.py", None, "x.py")]
    layout = arrange(TestRun(id="r", suites=[Suite("s", cases)]))
    # Grouped: a job's x.py failures together, then its suite's; no case lost or merged.
    order = [0, 2, 1, 3, 5, 4, 6, 8, 7]
    assert [listed.case for listed in layout.ordered] == [cases[i] for i in order]
    assert [len(job.places) for job in layout.jobs] == [2, 2, 2]
    assert layout.by_origin


def test_executions_are_numbered_among_all_of_their_name_in_one_origin_and_suite() -> None:
    layout = arrange(matrix_run())
    assert [(listed.case.name, listed.execution) for listed in layout.ordered] == [
        ("test_parse", (1, 3)), ("test_parse", (3, 3)), ("test_connect", None),
    ]


def test_flaky_and_skipped_are_collected_and_not_counted_as_failures() -> None:
    flaky = TestCase(name="f", attempts=[Attempt(Status.FAILED)])
    # A case that passed after a passing attempt is not flaky.
    steady = TestCase(name="g", attempts=[Attempt(Status.PASSED)])
    skipped = TestCase(name="s", status=Status.SKIPPED)
    layout = arrange(TestRun(id="r", suites=[Suite("s", [flaky, steady, skipped])]))
    assert layout.flaky == [flaky] and layout.skipped == [skipped] and layout.ordered == []


def test_one_origin_is_no_level_but_is_known() -> None:
    layout = arrange(TestRun(id="r", suites=[Suite("s", [
        TestCase(name="t", status=Status.FAILED, origin=A), TestCase(name="u", origin=A)])]))
    assert not layout.by_origin and layout.only_origin is A
