"""NUnit 2 result XML (`<test-results>`): outcome mapping, names, parameterised executions,
suite failures with no cases, the root duration, broken files and detection."""

from __future__ import annotations

import pytest

from bot.results.model import Status, TestRun
from bot.results.parsers import ReportError, looks_like_report, parse_file

from .conftest import FIXTURES, parse_bytes


def fixture() -> TestRun:
    return parse_file(FIXTURES / "nunit2.xml")


def document(cases: str, *, suite_result: str = "Success", time: str = "0.5") -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<test-results name="T.dll" total="1" errors="0" failures="0" not-run="0">
  <test-suite type="Assembly" name="T.dll" executed="True" result="{suite_result}"
              time="{time}"><results>
    <test-suite type="Namespace" name="Ns"><results>
      <test-suite type="TestFixture" name="Fx" result="{suite_result}"><results>
        {cases}
      </results></test-suite>
    </results></test-suite>
  </results></test-suite>
</test-results>""".encode()


def test_totals_count_the_cases_not_the_header() -> None:
    # The file's header says total=7 (NUnit 2 counts only tests it ran) errors=1
    # failures=2 not-run=3 (ignored 1, skipped 1, invalid 1) inconclusive=1: ten cases.
    # Herald: Success 3 passed; Failure 2 failed; Error 1 + NotRunnable 1 errors;
    # Ignored, Skipped and Inconclusive skipped.
    totals = fixture().totals()
    assert (totals.total, totals.passed, totals.failed, totals.errors, totals.skipped) == (
        10, 3, 2, 2, 3,
    )


def test_the_run_duration_is_the_root_suites_time() -> None:
    assert fixture().duration == pytest.approx(1.934)


RESULTS = [
    # result, executed, success, status
    ("Success", "True", "True", Status.PASSED),
    ("Failure", "True", "False", Status.FAILED),
    ("Error", "True", "False", Status.ERROR),
    ("NotRunnable", "False", "False", Status.ERROR),
    ("Cancelled", "True", "False", Status.ERROR),
    ("Ignored", "False", "", Status.SKIPPED),
    ("Skipped", "False", "", Status.SKIPPED),
    ("Inconclusive", "True", "False", Status.SKIPPED),
    ("Exploded", "True", "False", Status.ERROR),  # unknown: an error, never a pass
    # NUnit 2.4 and older write no result: executed and success decide.
    (None, "True", "True", Status.PASSED),
    (None, "True", "False", Status.FAILED),
    (None, "False", "", Status.SKIPPED),
]


@pytest.mark.parametrize(("result", "executed", "success", "status"), RESULTS)
def test_result_mapping(result: str | None, executed: str, success: str, status: Status) -> None:
    attribute = f' result="{result}"' if result else ""
    run = parse_bytes(document(
        f'<test-case name="Ns.Fx.T" executed="{executed}"{attribute} success="{success}"/>'
    ))
    (case,) = run.cases()
    assert case.status is status
    if result == "Exploded":
        assert case.message == "unknown NUnit result 'Exploded'"


def test_messages_types_and_locations() -> None:
    cases = {c.name: c for c in fixture().cases()}
    coupon = cases["AppliesCoupon"]
    assert coupon.message is not None and "Expected: 90.0m" in coupon.message
    assert (coupon.file, coupon.line) == ("/src/Acme.Orders.Tests/CartTests.cs", 37)
    removes = cases["RemovesItem"]
    assert removes.failure_type == "System.InvalidOperationException"
    assert (removes.file, removes.line) == ("/src/Acme.Orders/Cart.cs", 58)
    assert cases["ShipsAbroad"].message == "Carrier sandbox is down"
    assert cases["WithArgument"].failure_type == "NotRunnable"
    assert cases["WithArgument"].message is not None


def test_full_names_split_into_class_and_method() -> None:
    cases = list(fixture().cases())
    assert {c.classname for c in cases} == {"Acme.Orders.CartTests", "Acme.Orders.PriceTests"}
    assert {c.suite for c in cases} == {"Acme.Orders.CartTests", "Acme.Orders.PriceTests"}
    assert cases[0].display_name == "Acme.Orders.CartTests.AddsItem"


def test_same_named_parameterised_executions_stay_separate() -> None:
    rounds = [c for c in fixture().cases() if c.name == "Rounds(1.005m,1.01m)"]
    assert [c.status for c in rounds] == [Status.PASSED, Status.FAILED]
    assert rounds[0].classname == "Acme.Orders.PriceTests"  # dots in the arguments
    totals = fixture().totals()
    assert totals.tests == totals.total - 1  # one identity, two executions


def test_a_failed_suite_with_no_cases_is_an_error_case() -> None:
    # A fixture NUnit could not build (no default constructor) lists no test-case at all:
    # without a case of its own its failure would vanish from the report.
    data = b"""<test-results name="T.dll">
      <test-suite type="Assembly" name="T.dll" result="Failure" time="0.1"><results>
        <test-suite type="TestFixture" name="Broken" executed="False" result="NotRunnable">
          <reason><message>No suitable constructor was found</message></reason>
          <results/>
        </test-suite>
      </results></test-suite></test-results>"""
    (case,) = parse_bytes(data).cases()
    assert (case.name, case.status, case.message) == (
        "Broken", Status.ERROR, "No suitable constructor was found",
    )


def test_a_failing_suite_with_cases_adds_nothing() -> None:
    run = parse_bytes(document(
        '<test-case name="Ns.Fx.T" executed="True" result="Failure" success="False"/>',
        suite_result="Failure",
    ))
    assert run.totals().total == 1


def test_truncated_file_keeps_the_cases_read() -> None:
    data = (FIXTURES / "nunit2.xml").read_bytes()
    cut = data[: data.index(b"Acme.Orders.PriceTests.Rounds(2.5m")]
    with pytest.raises(ReportError) as caught:
        parse_bytes(cut)
    assert "truncated" in caught.value.reason
    assert caught.value.partial is not None
    assert caught.value.partial.totals().total == 9  # all but the last


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (b'<?xml version="1.0"?>\n<test-results name="x">', True),
        (b'<test-run id="2">', True),  # NUnit 3 stays NUnit 3
        (b'<testsuites name="junit">', True),
        (b"<test-result>", False),
        (b"<results><test-results/></results>", False),
    ],
)
def test_detection_is_by_root_element(first: bytes, expected: bool) -> None:
    assert looks_like_report(first) is expected
