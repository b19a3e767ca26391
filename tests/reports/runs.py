"""Test runs the report tests render, built from the model directly."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.results.model import (
    Artifact,
    Attempt,
    Metric,
    Origin,
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


def matrix_run() -> TestRun:
    """Two matrix legs, three failures (two of them executions of one parameterised test),
    a flaky test, five skipped tests and a file that could not be read."""
    py311 = Origin("test (3.11)", "https://github.com/o/r/actions/runs/7/job/11")
    py312 = Origin("test (3.12)", "https://github.com/o/r/actions/runs/7/job/12")

    def param(value: int, status: Status, origin: Origin) -> TestCase:
        failed = status is Status.FAILED
        return TestCase(
            name="test_parse", classname="tests.test_io",
            suite="pytest", status=status, duration=0.02, file="tests/test_io.py", line=17,
            message=f"assert parse({value}) == {value}\n +  where None = parse({value})"
            if failed else None,
            failure_type="AssertionError" if failed else None, origin=origin,
        )

    leg1 = [
        param(1, Status.FAILED, py311),
        param(2, Status.PASSED, py311),
        param(3, Status.FAILED, py311),
        TestCase(name="test_retry", classname="tests.test_net", suite="pytest", duration=1.5,
                 file="tests/test_net.py", line=8, origin=py311,
                 attempts=[Attempt(Status.FAILED, 1.0, "TimeoutError: read timed out",
                                   "TimeoutError")]),
        *[TestCase(name=f"test_windows_{i}", classname="tests.test_os", suite="pytest",
                   status=Status.SKIPPED, message="only on Windows", origin=py311)
          for i in range(5)],
    ]
    leg2 = [
        param(1, Status.PASSED, py312),
        TestCase(name="test_connect", classname="tests.test_db", suite="pytest",
                 status=Status.ERROR, duration=0.3, file="tests/test_db.py", line=30,
                 message="ConnectionRefusedError: [Errno 111] Connection refused",
                 failure_type="ConnectionRefusedError",
                 stack_trace="Traceback (most recent call last):\n"
                             '  File "tests/conftest.py", line 12, in db\n'
                             "    sock.connect(addr)\n"
                             "ConnectionRefusedError: [Errno 111] Connection refused",
                 origin=py312),
    ]
    return TestRun(
        id="CI #7",
        suites=[Suite("pytest", leg1, source="py311/junit.xml"),
                Suite("pytest", leg2, source="py312/junit.xml")],
        duration=83.2,
        errors=[ParseError("py312/coverage.xml", "not a test report: root element <coverage>")],
        url="https://github.com/o/r/actions/runs/7",
    )
