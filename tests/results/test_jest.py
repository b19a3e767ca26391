"""Jest `--json` reports: what each outcome becomes, retries, files that failed to run, and
broken documents. The fixture is a real Jest 30 run (fixtures/reports/README.jest-mocha.md)."""

from __future__ import annotations

import orjson
import pytest

from bot.results.model import Status, TestCase, TestRun
from bot.results.parsers import ReportError, parse_file, parse_stream
from bot.results.parsers.jest import JestJson
from bot.results.parsers.mocha import MochaJson

from .conftest import FIXTURES, OneWayStream, parse_bytes


@pytest.fixture(scope="module")
def run() -> TestRun:
    return parse_file(FIXTURES / "jest.json")


def named(run: TestRun, name: str) -> list[TestCase]:
    return [case for case in run.cases() if case.name == name]


def test_totals_are_jests_own_plus_one_error_per_file_that_failed_to_run(run: TestRun) -> None:
    # Jest printed: Tests: 5 failed, 1 skipped, 1 todo, 10 passed, 17 total; its count leaves
    # out broken.test.js (syntax error) and the two files whose afterAll threw.
    totals = run.totals()
    assert (totals.total, totals.passed, totals.failed, totals.skipped) == (20, 10, 5, 2)
    assert totals.errors == 3
    assert totals.flaky == 2


def test_run_duration_is_the_runs_own_start_to_the_last_files_end(run: TestRun) -> None:
    # Jest printed "Time: 2.272 s" (measured a moment after the last file ended).
    assert run.duration == pytest.approx(2.276)


@pytest.mark.parametrize(
    ("name", "status", "classname", "line"),
    [
        ("adds", Status.PASSED, "math", 2),
        ("subtracts wrongly", Status.FAILED, "math", 5),
        ("skipped multiply", Status.SKIPPED, "math", 8),
        ("divides by zero", Status.SKIPPED, "math", 11),  # test.todo
        ("throws an error", Status.FAILED, "math \u203a nested", 16),
        ("top level pass", Status.PASSED, "", 22),
    ],
)
def test_status_class_and_location(
    run: TestRun, name: str, status: Status, classname: str, line: int
) -> None:
    (case,) = named(run, name)
    assert (case.status, case.classname, case.line) == (status, classname, line)
    assert case.file == case.suite == "/tmp/jestmocha/jest/math.test.js"


def test_a_failure_has_its_message_type_and_trace_without_colour_codes(run: TestRun) -> None:
    (case,) = named(run, "subtracts wrongly")
    assert case.message is not None and case.stack_trace is not None
    assert case.message.startswith("Error: expect(received).toBe(expected)")
    assert "Expected: 3" in case.message and "    at " not in case.message
    assert "at Object.toBe (/tmp/jestmocha/jest/math.test.js:6:19)" in case.stack_trace
    assert "\x1b" not in case.message + case.stack_trace
    assert case.failure_type == "Error"
    (thrown,) = named(run, "throws an error")
    assert (thrown.failure_type, thrown.message) == ("TypeError", "TypeError: boom: not a function")


def test_todo_says_so(run: TestRun) -> None:
    (case,) = named(run, "divides by zero")
    assert case.message == "todo"


def test_each_row_of_test_each_is_its_own_execution(run: TestRun) -> None:
    rows = named(run, "is even")
    assert [case.status for case in rows] == [
        Status.PASSED,
        Status.PASSED,
        Status.FAILED,
        Status.PASSED,
    ]
    assert run.totals().tests == 17  # the four rows are one test, four executions


def test_retried_tests_keep_each_earlier_attempt(run: TestRun) -> None:
    (flaky,) = named(run, "passes on third try")
    assert flaky.status is Status.PASSED and flaky.flaky
    assert [a.message for a in flaky.attempts] == [
        "Error: attempt 1 failed",
        "Error: attempt 2 failed",
    ]
    (always,) = named(run, "always fails")
    assert always.status is Status.FAILED and len(always.attempts) == 3
    assert "Received: 1" in (always.attempts[0].message or "")


def test_a_retry_jest_kept_no_error_for_still_counts_as_a_failed_attempt(run: TestRun) -> None:
    (case,) = named(run, "passes on second try without logged errors")
    assert case.flaky
    (attempt,) = case.attempts
    assert attempt.status is Status.FAILED
    assert "logErrorsBeforeRetry" in (attempt.message or "")


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("broken.test.js", "Jest encountered an unexpected token"),
        ("afterall.test.js", "could not close the pool"),
        ("mixed.test.js", "afterAll broke too"),  # besides its own failing test
    ],
)
def test_a_file_that_failed_to_run_is_an_error_named_after_it(
    run: TestRun, file: str, message: str
) -> None:
    path = f"/tmp/jestmocha/jest/{file}"
    (case,) = named(run, path)
    assert (case.status, case.file, case.message) == (Status.ERROR, path, message)
    assert "Test suite failed to run" in (case.stack_trace or "")


def document(*files: dict[str, object], **top: object) -> bytes:
    return orjson.dumps(
        {"numTotalTestSuites": len(files), "numTotalTests": 0, **top, "testResults": list(files)}
    )


def jest_file(name: str, *results: dict[str, object], **fields: object) -> dict[str, object]:
    return {
        "name": name,
        "status": "passed",
        "message": "",
        "assertionResults": list(results),
        **fields,
    }


def result(title: str, status: str = "passed", **fields: object) -> dict[str, object]:
    return {
        "ancestorTitles": ["s"],
        "title": title,
        "status": status,
        "duration": 5,
        "failureMessages": [],
        **fields,
    }


def test_a_failed_file_with_no_message_and_no_failed_test_is_still_an_error() -> None:
    data = document(jest_file("/a.test.js", result("x"), status="failed"))
    (_, error) = parse_bytes(data, "r.json").cases()
    assert error.status is Status.ERROR and "without a message" in (error.message or "")


@pytest.mark.parametrize(
    ("status", "messages", "expected"),
    [
        ("disabled", [], Status.SKIPPED),
        ("focused", [], Status.PASSED),
        ("focused", ["Error: no"], Status.FAILED),
        ("exploded", [], Status.ERROR),
    ],
)
def test_rarer_statuses(status: str, messages: list[str], expected: Status) -> None:
    data = document(jest_file("/a.test.js", result("x", status, failureMessages=messages)))
    (case,) = parse_bytes(data, "r.json").cases()
    assert case.status is expected


def test_without_a_run_start_the_duration_is_the_sum_over_files() -> None:
    data = document(
        jest_file("/a.test.js", result("x"), startTime=1000, endTime=3000),
        jest_file("/b.test.js", result("y"), startTime=1000, endTime=1500),
    )
    assert parse_bytes(data, "r.json").duration == pytest.approx(2.5)


def test_odd_values_do_not_fail_the_file() -> None:
    data = document(
        jest_file(
            "/a.test.js",
            "junk",
            result("x", duration=None, location="?", ancestorTitles="s", invocations="2"),
        )
    )
    (case,) = parse_bytes(data, "r.json").cases()
    assert (case.duration, case.line, case.classname, case.attempts) == (0.0, None, "", [])


def big_document(files: int) -> bytes:
    return document(*(jest_file(f"/{i}.test.js", result(f"t{i}")) for i in range(files)))


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_document_keeps_the_files_read_before_the_cut(cut: float) -> None:
    data = big_document(20_000)
    with pytest.raises(ReportError) as caught:
        parse_bytes(data[: int(len(data) * cut)], "r.json")
    partial = caught.value.partial
    assert partial is not None
    read = partial.totals().total
    assert 0 < read < 20_000
    assert caught.value.reason.startswith(f"truncated: the JSON ends after testResults[{read - 1}]")


def test_garbage_halfway_is_invalid_json_with_the_cases_before_it() -> None:
    data = big_document(10_000)
    broken = data[: len(data) // 2] + b"\x00garbage" + data[len(data) // 2 :]
    with pytest.raises(ReportError) as caught:
        parse_bytes(broken, "r.json")
    assert caught.value.reason.startswith("invalid JSON after testResults[")
    assert caught.value.partial is not None


def test_deep_nesting_is_refused_quickly() -> None:
    data = document(jest_file("/a.test.js", result("x")))
    deep = data[:-1] + b',"x":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    with pytest.raises(ReportError, match="nested deeper than 256 levels"):
        parse_bytes(deep, "r.json")


def test_brackets_and_escapes_inside_strings_are_not_nesting() -> None:
    tricky = "[" * 300 + '\\"' + "{" * 300 + "\\" * 7
    data = document(jest_file("/a.test.js", result("x", "failed", failureMessages=[tricky] * 50)))
    (case,) = parse_bytes(data, "r.json").cases()
    assert case.status is Status.FAILED


def test_a_one_way_stream_reads_the_same() -> None:
    data = (FIXTURES / "jest.json").read_bytes()
    one_way = parse_stream("r.json", OneWayStream(data))  # type: ignore[arg-type]
    assert one_way.totals() == parse_bytes(data).totals()


@pytest.mark.parametrize(
    "first",
    [
        b'{"stats":{"suites":1,"tests":1,"passes":1,"pending":0,"failures":0},"tests":[',
        b'{"results":{"tool":{"name":"jest"},"summary":{"tests":1},"tests":[]}}',
        b'{"name":"app","version":"1.0.0","jest":{"testEnvironment":"node"}}',
        b"PASS src/a.test.js\nTests: 1 passed, 1 total\n",
        b'[{"numTotalTests": 1}]',
    ],
)
def test_detection_leaves_other_files_alone(first: bytes) -> None:
    assert not JestJson.detect(first)


def test_detection_takes_the_fixture_and_mocha_does_not() -> None:
    data = (FIXTURES / "jest.json").read_bytes()
    assert JestJson.detect(data[:1024]) and not MochaJson.detect(data[:1024])
    assert JestJson.detect(b"\xef\xbb\xbf" + data[:1024])
    assert parse_bytes(b"\xef\xbb\xbf" + data).totals().total == 20


def test_passed_cases_share_their_strings() -> None:
    data = document(jest_file("/a.test.js", *(result(f"t{i}") for i in range(3))))
    first, second, _ = parse_bytes(data, "r.json").cases()
    assert first.classname is second.classname and first.file is second.file


def test_parsing_from_bytes_io_and_file_agree(run: TestRun) -> None:
    data = (FIXTURES / "jest.json").read_bytes()
    assert parse_bytes(data).totals() == run.totals()
