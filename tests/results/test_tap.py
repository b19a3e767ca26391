"""TAP 13/14: the real outputs of node's test runner and Perl's Test::More, directives,
YAML and comment diagnostics, subtests, and every way tests can go missing."""

from __future__ import annotations

import pytest

from bot.results.model import Status, TestRun
from bot.results.parsers import ReportError, looks_like_report, parse_file, parse_stream
from bot.results.parsers.tap import LINE_LIMIT, TapFormat

from .conftest import FIXTURES, OneWayStream, parse_bytes


def tap(text: str) -> TestRun:
    return parse_bytes(text.encode(), source="out.tap")


def counts(run: TestRun) -> tuple[int, int, int, int, int]:
    t = run.totals()
    return t.total, t.passed, t.failed, t.errors, t.skipped


def test_node_totals_match_its_summary() -> None:
    # node printed: tests 8, pass 3, fail 3, skipped 1, todo 1 (the failing TODO is not a
    # failure: Herald counts it skipped). The describe() block is a suite, not a test.
    run = parse_file(FIXTURES / "node-test.tap")
    assert counts(run) == (8, 3, 3, 0, 2)
    assert run.duration == pytest.approx(0.287347344)  # node's "# duration_ms"


def test_perl_totals_match_prove() -> None:
    # prove: "Tests: 8 Failed: 3 (2, 6-7)", 1 skipped, "TODO passed: 8". prove counts the
    # subtest `checkout` as one test; Herald counts its two inner tests instead (one fails,
    # which is why checkout failed): 7 + 2 = 9 cases, still 3 failures.
    run = parse_file(FIXTURES / "perl-test-more.tap")
    assert counts(run) == (9, 4, 3, 0, 2)
    failed = [c.name for c in run.failures()]
    assert failed == ["applies a discount", "same name", "sends a receipt"]


def test_node_yaml_gives_message_type_location_stack_and_duration() -> None:
    run = parse_file(FIXTURES / "node-test.tap")
    case = next(c for c in run.cases() if c.name == "applies a discount")
    assert case.suite == "cart"
    assert case.message == "Expected values to be strictly equal:\n\n90 !== 80"
    assert case.failure_type == "AssertionError"
    assert (case.file, case.line) == ("/tmp/fmt3/tap/cart.test.mjs", 6)
    assert case.stack_trace is not None
    assert case.stack_trace.startswith("TestContext.<anonymous>")
    assert "expected: 80\nactual: 90" in case.stack_trace
    assert case.duration == pytest.approx(0.003059226)


def test_perl_comment_diagnostics_give_location_and_message() -> None:
    run = parse_file(FIXTURES / "perl-test-more.tap")
    case = next(c for c in run.cases() if c.name == "applies a discount")
    assert (case.file, case.line) == ("t/cart.t", 6)
    assert case.message == "got: '90'\nexpected: '80'"
    receipt = next(c for c in run.cases() if c.name == "sends a receipt")
    assert receipt.suite == "checkout"
    assert receipt.stack_trace is not None and "Looks like" not in receipt.stack_trace


def test_same_named_tests_are_separate_records() -> None:
    for name in ("node-test.tap", "perl-test-more.tap"):
        same = [c.status for c in parse_file(FIXTURES / name).cases() if c.name == "same name"]
        assert same == [Status.PASSED, Status.FAILED]


DIRECTIVES = [
    ("ok 1 - a", Status.PASSED, None),
    ("not ok 1 - a", Status.FAILED, None),
    ("ok 1 - a # SKIP no network", Status.SKIPPED, "no network"),
    ("not ok 1 - a # skip no network", Status.SKIPPED, "no network"),
    ("ok 1 # skipped", Status.SKIPPED, "skipped"),
    # An expected failure is not a failure...
    ("not ok 1 - a # TODO not built", Status.SKIPPED, "TODO: not built"),
    # ...and a TODO that passes is a pass (prove: "TODO passed").
    ("ok 1 - a # TODO not built", Status.PASSED, None),
    ("ok 1 - price is 5 \\# 6", Status.PASSED, None),  # an escaped # is no directive
]


@pytest.mark.parametrize(("line", "status", "message"), DIRECTIVES)
def test_directives(line: str, status: Status, message: str | None) -> None:
    (case,) = tap(f"TAP version 14\n1..1\n{line}\n").cases()
    assert (case.status, case.message) == (status, message)


def test_a_failing_parent_with_passing_subtests_is_an_error() -> None:
    # An after() hook failed: every inner test passed, yet the parent is not ok.
    run = tap(
        "TAP version 14\n1..1\n# Subtest: db\n    1..1\n    ok 1 - reads\n"
        "not ok 1 - db\n  ---\n  error: 'after hook failed'\n  ...\n"
    )
    assert counts(run) == (2, 1, 0, 1, 0)
    parent = next(c for c in run.cases() if c.name == "db")
    assert parent.message == "after hook failed"


def test_nested_subtests_name_their_suite_path() -> None:
    run = tap(
        "TAP version 14\n# Subtest: a\n    # Subtest: b\n        ok 1 - leaf\n        1..1\n"
        "    ok 1 - b\n    1..1\nok 1 - a\n1..1\n"
    )
    (case,) = run.cases()
    assert (case.suite, case.name) == ("a > b", "leaf")


def test_bail_out_reports_the_tests_that_never_ran() -> None:
    run = tap("1..5\nok 1 - a\nnot ok 2 - b\nBail out! database is down\nok 3 - ignored\n")
    assert counts(run) == (3, 1, 1, 1, 0)
    bail = next(c for c in run.cases() if c.name == "Bail out!")
    assert bail.message == (
        "Bail out! database is down: 3 of the 5 tests planned in the file did not run"
    )


def test_a_short_plan_is_an_error_case_and_a_report_error() -> None:
    # Both: the error case keeps the run red, the ReportError says the file is incomplete.
    with pytest.raises(ReportError) as caught:
        tap("TAP version 13\n1..4\nok 1 - a\nok 2 - b\n")
    assert caught.value.reason == "truncated: 2 of the 4 tests planned in the file did not run"
    partial = caught.value.partial
    assert partial is not None and counts(partial) == (3, 2, 0, 1, 0)


def test_output_cut_before_the_plan_is_truncated() -> None:
    with pytest.raises(ReportError) as caught:
        tap("TAP version 13\nok 1 - a\nnot ok 2 - b\n")
    assert "no plan" in caught.value.reason
    assert caught.value.partial is not None and caught.value.partial.totals().errors == 1


def test_output_cut_inside_a_yaml_block_is_truncated() -> None:
    with pytest.raises(ReportError) as caught:
        tap("TAP version 13\n1..1\nnot ok 1 - a\n  ---\n  message: boom\n")
    assert "YAML" in caught.value.reason
    partial = caught.value.partial
    assert partial is not None and [c.message for c in partial.cases()] == ["boom"]


def test_more_tests_than_planned_is_an_error_case() -> None:
    run = tap("1..1\nok 1 - a\nok 2 - b\n")
    assert counts(run) == (3, 2, 0, 1, 0)


def test_a_skipped_file_has_no_cases() -> None:
    assert counts(tap("1..0 # SKIP no database\n")) == (0, 0, 0, 0, 0)


def test_a_huge_line_is_cut_not_read_whole() -> None:
    noise = "x" * (LINE_LIMIT * 3)
    run = tap(f"1..2\nok 1 - a\n{noise}\nok 2 - b\n")
    assert [c.name for c in run.cases()] == ["a", "b"]


def test_a_one_way_stream_parses() -> None:
    data = (FIXTURES / "node-test.tap").read_bytes()
    run = parse_stream("out.tap", OneWayStream(data))  # type: ignore[arg-type]
    assert counts(run) == (8, 3, 3, 0, 2)


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (b"TAP version 13\nok 1", True),
        (b"TAP version 14\n", True),
        (b"1..8\nok 1 - adds", True),
        (b"ok 1 - adds an item\n", True),
        (b"not ok 1 - adds\n", True),
        (b"\xef\xbb\xbf\nok 1 - a\n", True),
        (b"# Subtest: cart\n    ok 1 - a\n", True),
        # Not TAP: logs, other formats.
        (b"ok, starting the server\n", False),
        (b"okay then\n", False),
        (b"2026-12-02 INFO ok 1 - a\n", False),
        (b"# a comment first\nok 1 - a\n", False),
        (b'{"results": {"tool": {}}}', False),
        (b'<?xml version="1.0"?><testsuites/>', False),
        (b"TAP version 12345\n", False),
    ],
)
def test_detection(first: bytes, expected: bool) -> None:
    assert TapFormat.detect(first) is expected
    if first.startswith(b"<"):
        return
    assert looks_like_report(first) is (expected or first.startswith(b"{"))


def test_a_subtest_without_its_parent_point_does_not_swallow_the_next_test() -> None:
    run = tap("TAP version 14\n    1..1\n    ok 1 - inner\n1..1\nnot ok 1 - outer\n")
    assert sorted(c.name for c in run.cases()) == ["inner", "outer"]
    assert run.totals().failed == 1
