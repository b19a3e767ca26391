"""Each producer's real report shape parses to the totals that producer itself reported.

The `reported` column is what the tool printed or wrote in its own summary attributes; the
model counts cases, and where a producer's vocabulary differs (NUnit's Warning and
Inconclusive, xUnit's NotRun, TRX's Timeout) the mapping is spelled out in the row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.results.model import Status, TestCase, TestRun
from bot.results.parsers import parse_file

from .conftest import FIXTURES


def parse(name: str) -> TestRun:
    return parse_file(FIXTURES / name)


def case(run: TestRun, name: str) -> TestCase:
    matches = [c for c in run.cases() if c.name == name]
    assert len(matches) == 1, f"{name!r}: {[c.name for c in run.cases()]}"
    return matches[0]


# file, what the producer reported, expected (total, passed, failed, errors, skipped, flaky)
PRODUCERS = [
    ("pytest-xunit1.xml", "pytest: tests=5 failures=1 errors=1 skipped=1", (5, 2, 1, 1, 1, 0)),
    ("jest-junit.xml", "jest-junit: tests=5 failures=1 (skipped=1 in its suite)",
     (5, 3, 1, 0, 1, 0)),
    ("surefire.xml", "Surefire: tests=5 failures=1 errors=1 skipped=1, console 'Flakes: 1'",
     (5, 2, 1, 1, 1, 1)),
    ("gradle.xml", "Gradle mergeReruns: tests=3 failures=1 (one flaky)", (3, 2, 1, 0, 0, 1)),
    ("go-junit-report.xml", "go-junit-report: tests=5 failures=1 skipped=1", (5, 3, 1, 0, 1, 0)),
    ("gotestsum.xml", "gotestsum: tests=3 failures=1", (3, 2, 1, 0, 0, 0)),
    ("phpunit.xml", "PHPUnit: tests=5 errors=1 failures=1 skipped=1", (5, 2, 1, 1, 1, 0)),
    ("bazel.xml", "Bazel: tests=1 errors=1", (1, 0, 0, 1, 0, 0)),
    ("mocha-junit-reporter.xml", "mocha-junit-reporter: tests=4 failures=1 skipped=1",
     (4, 2, 1, 0, 1, 0)),
    # nose's totals lie (tests=12, nothing failed): the four cases are what counts.
    ("nose-xunit.xml", "nosetests: tests=12 errors=0 failures=0 skip=0 (wrong)",
     (4, 1, 0, 2, 1, 0)),
    # NUnit: passed=2 + warnings=1 pass; inconclusive=1 + skipped=1 skip; of failed=3, the
    # labels Error and Invalid are errors.
    ("nunit3.xml", "NUnit 3: total=8 passed=2 failed=3 warnings=1 inconclusive=1 skipped=1",
     (8, 3, 1, 2, 2, 0)),
    # xUnit.net: NotRun reads as skipped.
    ("xunit2.xml", "xUnit.net: total=5 passed=2 failed=1 skipped=1 not-run=1", (5, 2, 1, 0, 2, 0)),
    # TRX: Timeout is an error, NotExecuted a skip.
    ("dotnet.trx", "TRX Counters: total=4 passed=1 failed=1 timeout=1 notExecuted=1",
     (4, 1, 1, 1, 1, 0)),
    # NUnit 2 counts only what ran in total=7 (Success 3, Failure 2, Error 1,
    # Inconclusive 1); NotRunnable is an error, Ignored/Skipped/Inconclusive skipped.
    ("nunit2.xml", "NUnit 2.6: total=7 errors=1 failures=2 not-run=3 (ignored 1, skipped 1, "
     "invalid 1) inconclusive=1", (10, 3, 2, 2, 3, 0)),
    # node's failing TODO is skipped, not failed; the describe() block is not a test.
    ("node-test.tap", "node --test: tests 8, pass 3, fail 3, skipped 1, todo 1",
     (8, 3, 3, 0, 2, 0)),
    # prove counts the subtest as one test; Herald counts its two inner tests instead.
    ("perl-test-more.tap", "prove: Tests=8 Failed 3/8, 1 skipped, 1 TODO, 1 TODO passed",
     (9, 4, 3, 0, 2, 0)),
    # jest: the reporter wrote skip as pending and todo as other: both skipped.
    ("ctrf-jest.json", "jest: 3 failed, 1 skipped, 1 todo, 3 passed, 8 total (1 retried pass)",
     (8, 3, 3, 0, 2, 1)),
    # Jest's count leaves out the file that failed to run and the two whose afterAll threw:
    # Herald makes each an error, so a broken file never reads as green.
    ("jest.json", "jest: 5 failed, 1 skipped, 1 todo, 10 passed, 17 total; 3 suites failed",
     (20, 10, 5, 3, 2, 2)),
    # Mocha counts its two failing hooks among the failures; Herald counts them as errors.
    ("mocha.json", "mocha: 8 passing, 3 pending, 6 failing (2 of them hooks)",
     (17, 8, 4, 2, 3, 1)),
]


@pytest.mark.parametrize(("name", "reported", "expected"), PRODUCERS, ids=[p[0] for p in PRODUCERS])
def test_totals_match_what_the_producer_reported(name: str, reported: str,
                                                 expected: tuple[int, ...]) -> None:
    totals = parse(name).totals()
    assert (totals.total, totals.passed, totals.failed, totals.errors, totals.skipped,
            totals.flaky) == expected, reported


def test_every_fixture_has_a_row() -> None:
    # Subfolders (executions/) hold their own specifications.
    reports = [p.name for p in FIXTURES.iterdir()
               if p.is_file() and not p.name.startswith("README")]
    assert sorted(reports) == sorted(p[0] for p in PRODUCERS)


def test_pytest_keeps_file_line_messages_and_failure_output() -> None:
    run = parse("pytest-xunit1.xml")
    failed = case(run, "test_create_user[name with | pipe]")
    assert (failed.status, failed.classname, failed.suite) == (Status.FAILED, "tests.test_api",
                                                               "pytest")
    assert (failed.file, failed.line, failed.duration) == ("tests/test_api.py", 19, 0.017)
    assert failed.message == (
        "AssertionError: assert 500 == 201\n +  where 500 = <Response [500]>.status_code"
    )
    assert failed.stack_trace is not None
    assert failed.stack_trace.endswith("tests/test_api.py:23: AssertionError")
    assert failed.stdout is not None and "users_name_key" in failed.stdout

    skipped = case(run, "test_export")
    assert (skipped.status, skipped.message) == (Status.SKIPPED, "needs S3 credentials")
    assert skipped.stack_trace is None

    errored = case(run, "test_migrations")
    assert errored.status is Status.ERROR
    assert errored.message == (
        'failed on setup with "sqlalchemy.exc.OperationalError: connection refused"'
    )
    # Captured output of passing cases is not kept (see bot.results.parsers._base).
    assert case(run, "test_unicode_names[ünïcødé-名前]").stdout is None
    assert run.suites[0].properties == {"ci_pipeline": "8812"}
    assert run.suites[0].hostname == "fv-az1234-56"


def test_jest_junit_message_comes_from_the_body_and_names_keep_markup() -> None:
    run = parse("jest-junit.xml")
    failed = case(run, "Calculator divides by zero")
    assert failed.message == "Error: expect(received).toThrow(expected)"
    assert failed.file == "src/calculator.test.js"
    assert failed.failure_type is None
    names = {c.name for c in run.cases()}
    assert "<App /> renders shows the <script> tag escaped" in names
    assert "<App /> renders `backticks` and & ampersands" in names


def test_surefire_reruns_become_attempts() -> None:
    run = parse("surefire.xml")
    flaky = case(run, "appliesDiscount")
    assert flaky.status is Status.PASSED and flaky.flaky
    assert [(a.status, a.failure_type) for a in flaky.attempts] == [
        (Status.FAILED, "org.opentest4j.AssertionFailedError")
    ]
    assert flaky.attempts[0].message == "expected: <90.00> but was: <100.00>"
    assert flaky.attempts[0].stack_trace is not None
    assert "InvoiceServiceTest.java:48" in flaky.attempts[0].stack_trace

    failed = case(run, "sendsReminder")
    assert failed.status is Status.FAILED and not failed.flaky
    assert failed.failure_type == "java.util.concurrent.TimeoutException"
    assert [a.status for a in failed.attempts] == [Status.FAILED, Status.FAILED]
    assert failed.stdout == "smtp: connecting to localhost:2525\n"

    error = case(run, "rejectsNegativeTotal")
    assert (error.status, error.failure_type) == (Status.ERROR, "java.lang.NullPointerException")
    assert error.message == (
        'Cannot invoke "com.acme.billing.Customer.id()" because "customer" is null'
    )
    assert run.suites[0].properties["surefire.rerunFailingTestsCount"] == "2"


def test_gradle_flaky_error_and_rerun_error() -> None:
    run = parse("gradle.xml")
    flaky = case(run, "parsesNestedBlocks()")
    assert flaky.flaky
    assert [(a.status, a.failure_type) for a in flaky.attempts] == [
        (Status.ERROR, "java.lang.IllegalStateException")
    ]
    failed = case(run, "rejectsUnclosedBlock()")
    assert failed.status is Status.FAILED
    assert [(a.status, a.message) for a in failed.attempts] == [
        (Status.ERROR, "java.lang.OutOfMemoryError: Java heap space")
    ]


def test_go_reports_keep_package_suites_and_subtests() -> None:
    run = parse("go-junit-report.xml")
    assert [s.name for s in run.suites] == ["github.com/acme/svc/api", "github.com/acme/svc/store"]
    failed = case(run, "TestCreate/duplicate_name")
    assert failed.message == "Failed"
    assert failed.stack_trace is not None and "got status 500, want 409" in failed.stack_trace
    assert case(run, "TestSlowPath").message == "Skipped"
    assert run.suites[0].properties == {"go.version": "go1.22.4 linux/amd64"}

    gotestsum = parse("gotestsum.xml")
    drain = case(gotestsum, "TestDrain")
    assert drain.failure_type is None  # type="" means no type
    assert drain.stack_trace == (
        "=== RUN   TestDrain\n    queue_test.go:88: drained 9 of 10 jobs\n"
        "--- FAIL: TestDrain (0.85s)\n"
    )


def test_phpunit_nested_suites_file_line_and_error_beside_failure() -> None:
    run = parse("phpunit.xml")
    failed = case(run, "testDivide with data set #1")
    assert (failed.suite, failed.classname) == ("App\\Tests\\CalculatorTest::testDivide",
                                                "App.Tests.CalculatorTest")
    assert (failed.file, failed.line) == ("/app/tests/CalculatorTest.php", 27)
    assert failed.failure_type == "PHPUnit\\Framework\\ExpectationFailedException"
    assert failed.message == "App\\Tests\\CalculatorTest::testDivide with data set #1 (9, 3, 4)"
    assert case(run, "testModulo").failure_type == "DivisionByZeroError"


def test_bazel_error_without_body() -> None:
    only = next(parse("bazel.xml").cases())
    assert (only.name, only.status, only.message, only.duration) == (
        "//src/lib:codec_test", Status.ERROR, "exited with error code 1", 3.0)


def test_mocha_failure_and_empty_root_suite() -> None:
    run = parse("mocha-junit-reporter.xml")
    assert [s.name for s in run.suites] == ["Orders API"]  # "Root Suite" has no cases
    failed = case(run, "Orders API rejects an empty cart")
    assert (failed.failure_type, failed.message) == ("AssertionError", "expected 500 to equal 400")


def test_xunit_style_error_beside_failure_and_missing_attributes() -> None:
    run = parse("nose-xunit.xml")
    both = case(run, "test_both")
    assert (both.status, both.message, both.failure_type) == (
        Status.ERROR, "then the teardown broke", "exceptions.IOError")
    bad_row = case(run, "test_bad_row")
    assert bad_row.duration == 0.0  # time=""
    assert bad_row.message == "invalid literal for int() with base 10: 'x' <row 3> & \"more\""
    bare = case(run, "test_no_classname")
    assert (bare.classname, bare.duration, bare.status) == ("", 0.0, Status.SKIPPED)


def test_nunit3_results_labels_fixtures_and_source_location() -> None:
    run = parse("nunit3.xml")
    assert [s.name for s in run.suites] == ["Acme.Orders.CartTests", "Acme.Orders.PriceTests"]
    failed = case(run, "AppliesCoupon")
    assert failed.status is Status.FAILED
    assert failed.message == "  Expected: 90.0m\n  But was:  100.0m\n"
    assert (failed.file, failed.line) == ("/src/Acme.Orders.Tests/CartTests.cs", 37)
    assert failed.stdout == "coupon SAVE10 loaded from cache\n"
    error = case(run, "RemovesItem")
    assert (error.status, error.failure_type) == (Status.ERROR, "Error")
    assert (error.file, error.line) == ("/src/Acme.Orders/Cart.cs", 58)  # first framed source
    invalid = case(run, "Rounds(0m,-1m)")
    assert (invalid.status, invalid.suite) == (Status.ERROR, "Acme.Orders.PriceTests")
    assert case(run, "ShipsAbroad").message == "Carrier sandbox is down"
    assert case(run, "ConvertsCurrency").status is Status.SKIPPED
    assert case(run, "WarnsOnLargeCart").status is Status.PASSED


def test_xunit2_failure_skip_reason_and_collections() -> None:
    run = parse("xunit2.xml")
    failed = case(run, "Acme.Api.Tests.OrdersControllerTests.PostRejectsEmptyCart")
    assert failed.failure_type == "Xunit.Sdk.EqualException"
    assert failed.message == "Assert.Equal() Failure: Values differ\nExpected: 400\nActual:   500"
    assert (failed.file, failed.line) == ("/src/Acme.Api.Tests/OrdersControllerTests.cs", 61)
    assert failed.classname == "Acme.Api.Tests.OrdersControllerTests"
    assert failed.suite == "Test collection for Acme.Api.Tests.OrdersControllerTests"
    assert failed.stdout == "POST /orders -> 500 (NullReferenceException)\n"
    skipped = case(run, "Acme.Api.Tests.OrdersControllerTests.DeleteIsIdempotent")
    assert skipped.message == "Flaky on CI, see #231"
    assert case(run, 'Acme.Api.Tests.HealthTests.Ready(dependency: "redis")').duration == 0.0100124


def test_trx_joins_results_to_definitions_written_after_them() -> None:
    run = parse("dotnet.trx")
    assert [s.name for s in run.suites] == ["acme.dates.tests.dll"]
    failed = case(run, "RejectsFebruary30")
    assert failed.classname == "Acme.Dates.Tests.ParserTests"
    assert failed.duration == 1.25
    assert failed.message is not None and failed.message.startswith(
        "Assert.ThrowsException failed. Expected exception type:<System.FormatException>")
    assert (failed.file, failed.line) == (
        "D:\\a\\acme\\acme\\tests\\Acme.Dates.Tests\\ParserTests.cs", 44)
    assert failed.stdout == "checking 2026-02-30"
    timeout = case(run, "ParsesHugeFile")
    assert (timeout.status, timeout.failure_type, timeout.duration) == (
        Status.ERROR, "Timeout", 30.001)
    assert case(run, "ParsesLeapSecond").message == "Leap seconds are not supported yet"


@pytest.mark.parametrize("name", [p[0] for p in PRODUCERS])
def test_every_case_names_its_source_file(name: str) -> None:
    path = FIXTURES / name
    assert {c.source for c in parse_file(path).cases()} == {str(path)}


def test_parse_file_accepts_a_path_object(tmp_path: Path) -> None:
    target = tmp_path / "r.xml"
    target.write_bytes((FIXTURES / "gotestsum.xml").read_bytes())
    assert parse_file(target).totals().total == 3
