"""One `<testcase>` is one execution: real TestNG, JUnit 5 and pytest reports whose executions
share a name are counted as the tools themselves counted them.

Each fixture under fixtures/reports/executions/ was written by the real tool; its folder's
README gives the tool, its version, the command and the totals the tool printed. Where the
file itself says something other than the console (TestNG 6.9's JUnit report writes skips as
errors, JUnit 5 writes exceptions as errors, pytest counts phases), the row says why.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bot.cli import main
from bot.results.model import Origin, Status, TestCase, TestRun, Totals
from bot.results.parsers import Collector, collect

from .conftest import FIXTURES

EXECUTIONS = FIXTURES / "executions"
PARAMETERISED = FIXTURES / "parameterised"
MATRIX = EXECUTIONS / "pytest" / "matrix"
LEGS = {"py3.11": MATRIX / "py3.11" / "junit.xml", "py3.12": MATRIX / "py3.12" / "junit.xml"}


def read(*paths: Path) -> TestRun:
    return collect([str(path) for path in paths], "run")


def counts(totals: Totals) -> tuple[int, int, int, int, int, int]:
    return (totals.total, totals.passed, totals.failed, totals.errors, totals.skipped,
            totals.flaky)


def executions(run: TestRun, name: str) -> list[TestCase]:
    return [case for case in run.cases() if case.name == name]


# fixture (under executions/), what the tool printed, Herald's (total, passed, failed, errors,
# skipped, flaky)
TOOLS = [
    # TestNG 6.9.12's JUnitReportReporter (junitreports/, what CI uploads) writes every
    # non-passing result that carries an exception as <failure> (AssertionError) or <error>
    # (anything else), skips included: the SkipException and the skipped dependent test are
    # <error> in the file. Newer TestNG writes <skipped/>. Herald reads the file as written:
    # nothing passing is lost, and no failure hides (6 passed as TestNG said).
    ("testng/junitreports/TEST-herald.fixtures.CheckoutTest.xml",
     "TestNG: Total tests run: 11, Failures: 3, Skips: 2", (11, 6, 2, 3, 0, 0)),
    # The older JUnitXMLReporter of the same run classifies exactly as the console.
    ("testng/Checkout/checkout-unit.xml",
     "TestNG: Total tests run: 11, Failures: 3, Skips: 2", (11, 6, 3, 0, 2, 0)),
    # The console's "4 tests failed" are 3 assertion failures and 1 exception (<error>); the
    # platform-suite and vintage engines write empty suites.
    ("junit5", "JUnit 5: 13 tests found, 1 skipped, 8 successful, 4 failed",
     (13, 8, 3, 1, 1, 0)),
    ("pytest/params/junit-xunit1.xml", "pytest: 1 failed, 5 passed, 1 skipped",
     (7, 5, 1, 0, 1, 0)),
    ("pytest/params/junit-xunit2.xml", "pytest: 1 failed, 5 passed, 1 skipped",
     (7, 5, 1, 0, 1, 0)),
    # pytest-rerunfailures writes every rerun as a <testcase> of its own, empty, before the
    # final one: those are attempts of the final execution, not passes.
    ("pytest/rerunfailures/junit-reruns-xunit1.xml", "pytest: 1 failed, 4 passed, 3 rerun",
     (5, 4, 1, 0, 0, 1)),
    ("pytest/rerunfailures/junit-reruns-xunit2.xml", "pytest: 1 failed, 4 passed, 3 rerun",
     (5, 4, 1, 0, 0, 1)),
    # Under pytest-xdist the other worker's tests are written between a test's reruns.
    ("pytest/xdist/junit-xdist.xml", "pytest -n 2: 1 failed, 10 passed, 3 rerun",
     (11, 10, 1, 0, 0, 1)),
    # pytest's console counts phases and subtests, its XML writes test cases: a failed call
    # and a failed teardown of one test are two <testcase> elements (kept as two), a test
    # that passed but failed in teardown is one error, failing subtests are extra <failure>
    # children of their test's one <testcase>.
    ("pytest/phases/junit.xml", "pytest: 4 failed, 1 passed, 3 errors", (6, 0, 3, 3, 0, 0)),
    # The same with --reruns 1: each rerun placeholder becomes an attempt. test_subtests'
    # first attempt carries its subtest's <failure>, so it stays a failed execution.
    ("pytest/phases/junit-reruns.xml", "pytest: 3 failed, 4 passed, 2 errors, 6 rerun",
     (7, 2, 3, 2, 0, 2)),
    ("pytest/matrix", "pytest: py3.11 1 failed, 3 passed; py3.12 4 passed", (8, 7, 1, 0, 0, 0)),
]


@pytest.mark.parametrize(("fixture", "printed", "expected"), TOOLS, ids=[t[0] for t in TOOLS])
def test_totals_are_the_executions_the_tool_ran(fixture: str, printed: str,
                                                expected: tuple[int, ...]) -> None:
    run = read(EXECUTIONS / fixture)
    assert run.errors == []
    assert counts(run.totals()) == expected, printed


# fixture, test name, (status of each execution of that name, in file order)
SAME_NAMED = [
    ("testng/junitreports/TEST-herald.fixtures.CheckoutTest.xml", "totalIsPositive",
     [Status.PASSED, Status.FAILED, Status.PASSED, Status.PASSED]),
    ("testng/junitreports/TEST-herald.fixtures.CheckoutTest.xml", "retriesPayment",
     [Status.PASSED, Status.PASSED, Status.FAILED]),
    ("testng/Checkout/checkout-unit.xml", "totalIsPositive",
     [Status.PASSED, Status.PASSED, Status.FAILED, Status.PASSED]),
    ("testng/Checkout/checkout-unit.xml", "retriesPayment",
     [Status.PASSED, Status.FAILED, Status.PASSED]),
    ("pytest/phases/junit.xml", "test_fail_then_teardown_error", [Status.FAILED, Status.ERROR]),
]


@pytest.mark.parametrize(("fixture", "name", "statuses"), SAME_NAMED,
                         ids=[f"{f}:{n}" for f, n, _ in SAME_NAMED])
def test_same_named_executions_stay_separate(fixture: str, name: str,
                                             statuses: list[Status]) -> None:
    """TestNG data-provider iterations and invocationCount runs carry no parameter in their
    name; a failing one must not hide behind its passing siblings, nor be taken for a retry."""
    found = executions(read(EXECUTIONS / fixture), name)
    assert [case.status for case in found] == statuses
    assert not any(case.attempts for case in found)


def test_testng_failing_iterations_keep_their_own_message() -> None:
    run = read(EXECUTIONS / "testng/junitreports/TEST-herald.fixtures.CheckoutTest.xml")
    failed = {c.name: c.message for c in run.failures() if c.status is Status.FAILED}
    assert failed == {
        "totalIsPositive": "GBP total must be positive, was -1 expected [true] but found [false]",
        "retriesPayment": "payment gateway timed out on invocation 2",
    }


def test_testng_results_xml_is_named_not_read() -> None:
    """testng-results.xml (root <testng-results>) is TestNG's own format, not JUnit XML: a
    folder holding it says so rather than pass over it in silence."""
    run = read(EXECUTIONS / "testng" / "testng-results.xml")
    assert [e.reason for e in run.errors] == ["not a test report: root element <testng-results>"]
    assert run.totals().total == 0


@pytest.mark.parametrize(("name", "status"), [
    ("weightIsPositive(int)[3]", Status.FAILED),
    ("rateIsKnown(String)[3]", Status.FAILED),
    ("labelPrints(RepetitionInfo)[2]", Status.FAILED),
    ("trackingNumberFormat()", Status.ERROR),
    ("cancelsShipment()", Status.SKIPPED),
    ("labelPrints(RepetitionInfo)[1]", Status.PASSED),
])
def test_junit5_invocations_are_cases_of_their_own(name: str, status: Status) -> None:
    (case,) = executions(read(EXECUTIONS / "junit5"), name)
    assert case.status is status


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_pytest_deduplicated_ids_are_separate_cases(family: str) -> None:
    """pytest makes colliding ids unique by suffixing an index (`eur` twice -> `eur0`,
    `eur1`); the failing one is the one listed as failed."""
    run = read(EXECUTIONS / f"pytest/params/junit-{family}.xml")
    statuses = {case.name: case.status for case in run.cases()}
    assert statuses["test_price_is_positive[eur0]"] is Status.PASSED
    assert statuses["test_price_is_positive[eur1]"] is Status.FAILED
    assert {"test_country_code[DE0]", "test_country_code[DE1]"} <= statuses.keys()
    assert [c.name for c in run.failures()] == ["test_price_is_positive[eur1]"]


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_rerunfailures_reruns_are_attempts_of_the_final_execution(family: str) -> None:
    run = read(EXECUTIONS / f"pytest/rerunfailures/junit-reruns-{family}.xml")
    (flaky,) = executions(run, "test_fails_once_then_passes")
    assert flaky.status is Status.PASSED and flaky.flaky
    assert [a.status for a in flaky.attempts] == [Status.FAILED]
    (broken,) = executions(run, "test_always_fails")
    assert broken.status is Status.FAILED
    assert broken.message is not None and "arithmetic is broken" in broken.message
    assert [a.status for a in broken.attempts] == [Status.FAILED, Status.FAILED]
    # Tests that were not rerun have no attempts.
    assert [c.name for c in run.cases() if not c.attempts] == [
        "test_port_open[80]", "test_port_open[443]", "test_steady",
    ]


def test_rerun_before_a_teardown_error_is_an_attempt_of_it() -> None:
    """With --reruns, a test that passed its call but broke in teardown is rerun; its final
    record is the teardown error, and a failed call followed by a teardown error stays two
    executions (the rerun goes to the first of them)."""
    run = read(EXECUTIONS / "pytest/phases/junit-reruns.xml")
    (teardown,) = executions(run, "test_pass_then_teardown_error")
    assert (teardown.status, len(teardown.attempts)) == (Status.ERROR, 1)
    found = executions(run, "test_fail_then_teardown_error")
    assert [(c.status, len(c.attempts)) for c in found] == [(Status.FAILED, 1), (Status.ERROR, 0)]


def test_matrix_legs_are_all_counted_in_any_order() -> None:
    results = []
    for order in itertools.permutations(LEGS.items()):
        collector = Collector("run")
        for leg, path in order:
            collector.add_file(path, origin=Origin(name=leg))
        results.append(collector.result())
    assert len({run.totals() for run in results}) == 1
    for run in results:
        assert run.overall_status().value == "failed"
        timeouts = {(c.origin.name if c.origin else None, c.status)
                    for c in executions(run, "test_timeout")}
        assert timeouts == {("py3.11", Status.FAILED), ("py3.12", Status.PASSED)}
        assert all(c.origin is not None and c.source is not None and
                   Path(c.source).parent.name == c.origin.name for c in run.cases())
        totals = run.totals()
        assert (totals.total, totals.tests, totals.failed) == (8, 4, 1)


def test_render_of_the_matrix_folders_exits_1(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for order in itertools.permutations(LEGS):
        out = tmp_path / "-".join(order)
        code = main(["render", *(str(MATRIX / leg) for leg in order), "--out", str(out)])
        assert code == 1, capsys.readouterr().out
        assert (out / "report.md").exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # jest-junit's root says tests=16 failures=5; the file holds 19 executions, and the
        # four `parity is even` rows (one failing) are four.
        ("jest-junit.xml", (19, 11, 7, 0, 1, 0)),
        # mocha-junit-reporter's root says tests=17 failures=6 skipped=3 but writes 14 cases
        # (hooks among them, no pending tests): Herald counts what is there.
        ("mocha-junit-reporter.xml", (14, 8, 6, 0, 0, 0)),
    ],
)
def test_js_reporters_parameterised_rows_are_each_an_execution(
    name: str, expected: tuple[int, ...]
) -> None:
    run = collect([str(PARAMETERISED / name)], "r")
    totals = run.totals()
    assert (totals.total, totals.passed, totals.failed, totals.errors, totals.skipped,
            totals.flaky) == expected
    parity = [c for c in run.cases() if c.name.endswith("parity is even")]
    assert len(parity) == 4
    assert sum(c.status.is_failure for c in parity) == 1
