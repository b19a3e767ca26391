"""Test runs the report tests render, built from the model directly."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.results.model import (
    Artifact,
    Attempt,
    Metric,
    ParseError,
    Status,
    Suite,
    TestCase,
    TestRun,
)

NOW = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)

PYTEST_TRACE = """\
self = <tests.test_checkout.TestCheckout object at 0x7f3a>

    def test_total_includes_tax(self):
>       assert checkout.total(cart) == 107
E       assert 100 == 107
E        +  where 100 = <function total at 0x7f3b>(cart)

/builds/shop/tests/test_checkout.py:42: AssertionError"""


def seed_run() -> TestRun:
    """The seed's example: 42 tests, 2 failed, 2m 5.70s."""
    cases = [
        TestCase(name=f"test_case_{i}", classname="tests.test_cart", suite="unit", duration=0.5)
        for i in range(40)
    ]
    cases.append(
        TestCase(
            name="test_total_includes_tax",
            classname="tests.test_checkout.TestCheckout",
            suite="unit",
            status=Status.FAILED,
            duration=1.25,
            file="tests/test_checkout.py",
            line=42,
            message="assert 100 == 107\n +  where 100 = total(cart)",
            failure_type="AssertionError",
            stack_trace=PYTEST_TRACE,
        )
    )
    cases.append(
        TestCase(
            name="test_refund",
            classname="tests.test_checkout.TestCheckout",
            suite="unit",
            status=Status.FAILED,
            duration=0.75,
            message="Expected status 200, got 500",
            failure_type="AssertionError",
        )
    )
    return TestRun(id="pipeline-1234", suites=[Suite(name="unit", cases=cases)], duration=125.7)


def rich_run() -> TestRun:
    """Every section present: metrics, artifacts, input errors, a flaky test, an error."""
    run = seed_run()
    suite = run.suites[0]
    suite.cases[0].attempts.append(Attempt(status=Status.FAILED, duration=0.4, message="timeout"))
    suite.cases.append(
        TestCase(
            name="test_database",
            classname="tests.test_db",
            suite="unit",
            status=Status.ERROR,
            duration=0.1,
            message="ConnectionRefusedError: [Errno 111] Connection refused",
            failure_type="ConnectionRefusedError",
            stdout="connecting to db:5432\n",
        )
    )
    suite.cases.append(TestCase(name="test_slow", classname="tests.test_db", suite="unit",
                                status=Status.SKIPPED, message="slow"))
    run.metrics = [Metric("p95 latency", 12.5, "ms"), Metric("throughput", 1234.0, "req/s")]
    run.artifacts = [
        Artifact("junit.xml", 123_456, "https://ci.example.com/artifacts/junit.xml"),
        Artifact("coverage.html", None, None),
    ]
    run.errors = [ParseError("reports/bad.xml", "not XML: mismatched tag, line 3")]
    run.url = "https://ci.example.com/pipelines/1234"
    return run


def failing_run(count: int, name_size: int = 0, trace_size: int = 0) -> TestRun:
    """`count` failures whose names are padded to `name_size` characters of hostile text."""
    pad = ("|`<@/*_[]\n" * (name_size // 10 + 1))[:name_size]
    cases = [
        TestCase(
            name=f"test_{i}_{pad}",
            classname="suite.Class",
            suite="big",
            status=Status.FAILED,
            duration=0.01,
            message=f"failure {i}\nsecond line",
            failure_type="AssertionError",
            stack_trace=("  at frame\n" * (trace_size // 11 + 1))[:trace_size] or None,
        )
        for i in range(count)
    ]
    return TestRun(id="big-run", suites=[Suite(name="big", cases=cases)], duration=60.0)
