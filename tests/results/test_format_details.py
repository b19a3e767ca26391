"""Format details the producer fixtures don't show: data-driven TRX rows, xUnit.net's
errors outside tests, unknown outcomes, very large flat suites, the garbage collector."""

from __future__ import annotations

import gc

import pytest

from bot.results.model import Status
from bot.results.parsers import ReportError

from .conftest import parse_bytes

TRX_NS = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"


def test_trx_data_driven_rows_are_the_cases_not_their_parent() -> None:
    document = f"""<?xml version="1.0" encoding="utf-8"?>
<TestRun id="1" xmlns="{TRX_NS}"><Results>
  <UnitTestResult testId="t1" testName="Adds" outcome="Failed" duration="00:00:00.2"
      resultType="DataDrivenTest">
    <InnerResults>
      <UnitTestResult testId="t1" testName="Adds (1,2,3)" outcome="Passed" duration="00:00:00.1"
          resultType="DataDrivenDataRow"/>
      <UnitTestResult testId="t1" testName="Adds (2,2,5)" outcome="Failed" duration="00:00:00.1"
          resultType="DataDrivenDataRow">
        <Output><ErrorInfo>
          <Message>Assert.AreEqual failed. Expected:&lt;5&gt;. Actual:&lt;4&gt;.</Message>
        </ErrorInfo></Output>
      </UnitTestResult>
    </InnerResults>
  </UnitTestResult>
  <UnitTestResult testId="t2" testName="Unknown" outcome="Exploded" duration="bogus"/>
</Results>
<TestDefinitions>
  <UnitTest name="Adds" storage="/src/bin/Calc.Tests.dll" id="t1">
    <TestMethod codeBase="/src/bin/Calc.Tests.dll" name="Adds"
        className="Calc.Tests.MathTests, Calc.Tests, Version=1.0.0.0"/>
  </UnitTest>
</TestDefinitions></TestRun>""".encode()
    run = parse_bytes(document, "r.trx")
    rows = {c.name: c for c in run.cases()}
    assert set(rows) == {"Adds (1,2,3)", "Adds (2,2,5)", "Unknown"}
    assert rows["Adds (2,2,5)"].message == "Assert.AreEqual failed. Expected:<5>. Actual:<4>."
    assert rows["Adds (2,2,5)"].classname == "Calc.Tests.MathTests"
    assert rows["Adds (2,2,5)"].suite == "Calc.Tests.dll"
    # An outcome no producer documents is an error, said as such, not a silent pass.
    assert (rows["Unknown"].status, rows["Unknown"].message) == (
        Status.ERROR, "unknown TRX outcome 'Exploded'")
    assert rows["Unknown"].duration == 0.0
    assert rows["Unknown"].classname == ""  # no definition for it


def test_xunit_errors_outside_tests_fail_the_run() -> None:
    document = b"""<assemblies><assembly name="C:\\build\\Api.Tests.dll" total="1" passed="1"
        failed="0" skipped="0" errors="1">
      <errors>
        <error type="test-class-cleanup" name="Api.Tests.DbFixture">
          <failure exception-type="System.TimeoutException">
            <message>Container did not stop in 30s</message>
            <stack-trace>   at Api.Tests.DbFixture.DisposeAsync()</stack-trace>
          </failure>
        </error>
      </errors>
      <collection name="Test collection for Api.Tests.UsersTests" total="1" passed="1">
        <test name="Api.Tests.UsersTests.Lists" type="Api.Tests.UsersTests" method="Lists"
              time="0.5" result="Pass"/>
      </collection>
    </assembly></assemblies>"""
    run = parse_bytes(document)
    cleanup = next(c for c in run.cases() if c.status is Status.ERROR)
    assert (cleanup.name, cleanup.classname, cleanup.suite) == (
        "Api.Tests.DbFixture", "test-class-cleanup", "Api.Tests.dll")
    assert (cleanup.message, cleanup.failure_type) == (
        "Container did not stop in 30s", "System.TimeoutException")
    assert run.totals().total == 2


def test_nunit_unknown_result_is_an_error_with_a_reason() -> None:
    document = b"""<test-run><test-suite type="TestFixture" fullname="A.B">
        <test-case name="X" classname="A.B" result="Exploded" duration="0.1"/>
        </test-suite></test-run>"""
    only = next(parse_bytes(document).cases())
    assert (only.status, only.message) == (Status.ERROR, "unknown NUnit result 'Exploded'")


def test_a_huge_flat_suite_is_read_whole() -> None:
    count = 5000
    body = b"".join(b'<testcase classname="c" name="t%d" time="0.1"/>' % i for i in range(count))
    run = parse_bytes(b'<testsuite name="flat">' + body + b"</testsuite>")
    assert [c.name for c in run.cases()] == [f"t{i}" for i in range(count)]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_garbage_collector_is_left_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        parse_bytes(b'<testsuite><testcase name="a"/></testsuite>')
        assert gc.isenabled() is enabled
        with pytest.raises(ReportError, match="truncated"):
            parse_bytes(b'<testsuite><testcase name="a"/>')
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_parsed_cases_go_straight_to_the_oldest_gc_generation() -> None:
    # The run outlives the parse: scanning its cases in the young generations would only
    # find them alive, so they skip those scans.
    assert gc.get_freeze_count() == 0, "the test process froze objects itself"
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        run = parse_bytes(
            b'<testsuite name="s"><testcase name="a"/><testcase name="b"/></testsuite>'
        )
        cases = {id(case) for case in run.cases()}
        assert len(cases) == 2
        assert cases <= {id(obj) for obj in gc.get_objects(generation=2)}
        assert gc.get_freeze_count() == 0
    finally:
        if not was_enabled:
            gc.disable()


def test_objects_the_application_froze_stay_frozen() -> None:
    # gc.freeze() before fork keeps memory pages shared between workers; a parse must not
    # thaw what the application froze.
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        run = parse_bytes(b'<testsuite name="s"><testcase name="a"/></testsuite>')
        assert gc.get_freeze_count() == frozen
        assert [case.name for case in run.cases()] == ["a"]
        assert gc.isenabled()
    finally:
        gc.unfreeze()


def test_cases_are_split_by_their_innermost_suite() -> None:
    document = b"""<testsuites><testsuite name="outer">
        <testcase name="before"/>
        <testsuite name="inner"><testcase name="nested"/></testsuite>
        <testcase name="after"/>
    </testsuite></testsuites>"""
    run = parse_bytes(document)
    assert {s.name: [c.name for c in s.cases] for s in run.suites} == {
        "outer": ["before", "after"], "inner": ["nested"]}


@pytest.mark.parametrize(
    ("children", "status", "message"),
    [
        # pytest writes a skip and the teardown error that followed in one <testcase>
        ('<skipped message="no db"/><error message="teardown broke"/>', Status.ERROR,
         "teardown broke"),
        ('<error message="teardown broke"/><skipped message="no db"/>', Status.ERROR,
         "teardown broke"),
        ('<skipped message="flaky on CI"/><failure message="boom"/>', Status.FAILED, "boom"),
        ('<failure message="boom"/><skipped message="flaky on CI"/>', Status.FAILED, "boom"),
        ('<failure message="boom"/><error message="and then crashed"/>', Status.ERROR,
         "and then crashed"),
    ],
)
def test_a_skip_never_hides_a_failure_or_error_of_the_same_case(
    children: str, status: Status, message: str
) -> None:
    run = parse_bytes(
        f'<testsuite name="s"><testcase classname="a.B" name="t">{children}</testcase>'
        "</testsuite>".encode()
    )
    [case] = run.cases()
    assert (case.status, case.message) == (status, message)
    assert (run.totals().skipped, run.totals().total) == (0, 1)
