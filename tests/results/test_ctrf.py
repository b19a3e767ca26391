"""CTRF JSON: jest-ctrf-json-reporter's real report, the status and retry mapping, the
streaming reader's batch cuts, broken documents and detection."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from bot.results.model import Status, TestRun
from bot.results.parsers import ReportError, looks_like_report, parse_file, parse_stream
from bot.results.parsers import ctrf as ctrf_module
from bot.results.parsers.ctrf import CtrfFormat

from .conftest import FIXTURES, OneWayStream, parse_bytes


def document(tests: list[dict[str, Any]], **results: Any) -> bytes:
    body = {"tool": {"name": "t"}, "summary": {"tests": len(tests)}, "tests": tests, **results}
    return json.dumps({"results": body}, indent=2).encode()


def parse(tests: list[dict[str, Any]], **results: Any) -> TestRun:
    return parse_bytes(document(tests, **results), source="ctrf.json")


def counts(run: TestRun) -> tuple[int, int, int, int, int, int]:
    t = run.totals()
    return t.total, t.passed, t.failed, t.errors, t.skipped, t.flaky


def test_jest_totals_match_its_summary() -> None:
    # jest printed "Tests: 3 failed, 1 skipped, 1 todo, 3 passed, 8 total"; the reporter
    # wrote the skip as pending and the todo as other (rawStatus todo): both skipped.
    # The test passing on its second try is flaky (retries 1, flaky true).
    run = parse_file(FIXTURES / "ctrf-jest.json")
    assert counts(run) == (8, 3, 3, 0, 2, 1)
    assert run.duration == pytest.approx(0.592)  # summary stop - start, in ms


def test_jest_cases_keep_message_trace_file_and_suite() -> None:
    run = parse_file(FIXTURES / "ctrf-jest.json")
    bad = next(c for c in run.cases() if c.name == "cart throws on bad input")
    assert bad.status is Status.FAILED
    assert bad.message == "TypeError: Cannot read properties of null (reading 'boom')"
    assert bad.failure_type == "TypeError"
    assert bad.stack_trace is not None and "cart.test.js:9:44" in bad.stack_trace
    assert bad.file is not None and bad.file.endswith("__tests__/cart.test.js")
    assert bad.suite == "cart.test.js > cart"
    assert bad.duration == pytest.approx(0.001)


def test_same_named_tests_are_separate_records() -> None:
    run = parse_file(FIXTURES / "ctrf-jest.json")
    same = [c.status for c in run.cases() if c.name == "cart same name"]
    assert same == [Status.PASSED, Status.FAILED]


STATUSES = [
    ({"status": "passed"}, Status.PASSED, None),
    ({"status": "failed", "message": "boom"}, Status.FAILED, "boom"),
    ({"status": "skipped"}, Status.SKIPPED, None),
    ({"status": "pending"}, Status.SKIPPED, None),
    ({"status": "other", "rawStatus": "todo"}, Status.SKIPPED, "todo"),
    ({"status": "other", "rawStatus": "timedOut"}, Status.ERROR, "timedOut"),
    ({"status": "other", "rawStatus": "interrupted"}, Status.ERROR, "interrupted"),
    ({"status": "other"}, Status.SKIPPED, "status: other"),
    ({"status": "exploded"}, Status.ERROR, "unknown CTRF status 'exploded'"),
    ({}, Status.ERROR, "unknown CTRF status None"),
]


@pytest.mark.parametrize(("fields", "status", "message"), STATUSES)
def test_status_mapping(fields: dict[str, Any], status: Status, message: str | None) -> None:
    (case,) = parse([{"name": "t", "duration": 5, **fields}]).cases()
    assert (case.status, case.message) == (status, message)


def test_durations_are_milliseconds_and_the_run_has_the_summarys_own() -> None:
    run = parse_bytes(json.dumps({"results": {
        "tool": {"name": "t"},
        "tests": [{"name": "a", "status": "passed", "duration": 1500},
                  {"name": "b", "status": "passed", "duration": "NaN"}],
        "summary": {"duration": 42000, "start": 1, "stop": 9},  # after the tests
    }}).encode())
    assert [c.duration for c in run.cases()] == [1.5, 0.0]
    assert run.duration == 42.0


def test_suite_lists_and_locations() -> None:
    (case,) = parse([{"name": "t", "status": "failed", "duration": 1, "suite": ["a", "b"],
                      "filePath": "t.spec.ts", "line": 12}]).cases()
    assert (case.suite, case.file, case.line) == ("a > b", "t.spec.ts", 12)


RETRIES = [
    # fields, final status, attempt statuses, flaky
    ({"status": "passed", "retries": 2, "flaky": True}, Status.PASSED, ["failed"] * 2, True),
    # The producer counted the retries; failing every time is not flaky.
    ({"status": "failed", "retries": 2}, Status.FAILED, ["failed"] * 2, False),
    # flaky:true with no recorded retry: the flag alone makes nothing flaky.
    ({"status": "passed", "flaky": True}, Status.PASSED, [], False),
    ({"status": "passed", "retries": 0}, Status.PASSED, [], False),
]


@pytest.mark.parametrize(("fields", "status", "attempts", "flaky"), RETRIES)
def test_retries(fields: dict[str, Any], status: Status, attempts: list[str],
                 flaky: bool) -> None:
    (case,) = parse([{"name": "t", "duration": 1, **fields}]).cases()
    assert case.status is status
    assert [a.status.value for a in case.attempts] == attempts
    assert case.flaky is flaky


def test_retry_attempts_give_each_attempts_message() -> None:
    attempts = [
        {"attempt": 1, "status": "failed", "duration": 300, "message": "timeout", "trace": "at x"},
        {"attempt": 2, "status": "failed", "duration": 200, "message": "refused"},
        {"attempt": 3, "status": "passed", "duration": 100},  # the final run: not repeated
    ]
    (case,) = parse([{"name": "t", "status": "passed", "duration": 100, "retries": 2,
                      "flaky": True, "retryAttempts": attempts}]).cases()
    assert [(a.status, a.message, a.duration) for a in case.attempts] == [
        (Status.FAILED, "timeout", 0.3), (Status.FAILED, "refused", 0.2),
    ]
    assert case.attempts[0].stack_trace == "at x"
    assert case.flaky


def test_output_is_kept_for_failures_only() -> None:
    run = parse([
        {"name": "a", "status": "failed", "duration": 1, "stdout": ["one", "two"]},
        {"name": "b", "status": "passed", "duration": 1, "stdout": ["noise"], "line": 3},
    ])
    a, b = run.cases()
    assert (a.stdout, b.stdout) == ("one\ntwo", None)


def test_tests_that_confuse_the_batch_cuts_are_read_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "}," inside strings and nested objects at every position, in a document read in
    # small chunks: each wrong cut is caught and the tests are still found one by one.
    monkeypatch.setattr(ctrf_module, "CHUNK_SIZE", 256)
    tests = [
        {"name": f"t{i} }},{{ \"x\": 1 }}", "status": "failed" if i % 7 == 0 else "passed",
         "duration": i, "message": "}, {" * (i % 5), "extra": {"a": {"b": [{}, {"c": "},"}]}},
         "retryAttempts": [{"attempt": 1, "status": "failed"}] if i % 7 == 0 else []}
        for i in range(300)
    ]
    for raw in (document(tests), orjson.dumps({"results": {"tests": tests}})):
        run = parse_bytes(raw)
        assert [c.name for c in run.cases()] == [t["name"] for t in tests]
        assert run.totals().failed == 43


def test_a_one_way_stream_parses() -> None:
    data = (FIXTURES / "ctrf-jest.json").read_bytes()
    run = parse_stream("ctrf.json", OneWayStream(data))  # type: ignore[arg-type]
    assert counts(run) == (8, 3, 3, 0, 2, 1)


def test_a_truncated_document_keeps_the_tests_read_and_says_where() -> None:
    data = document([{"name": f"t{i}", "status": "passed", "duration": 1} for i in range(10)])
    cut = data[: data.index(b'"t7"')]
    with pytest.raises(ReportError) as caught:
        parse_bytes(cut)
    assert caught.value.reason.startswith("truncated: the JSON ends inside results.tests[")
    assert caught.value.partial is not None
    assert caught.value.partial.totals().total >= 6


BROKEN = [
    (b'{"results": {"tool": {}, "tests": [{"name": "a", "status": "passed"}, oops]}}',
     "invalid JSON in results.tests[1]"),
    (b'{"results": {"tool": {}, "tests": [1, 2]}}', "invalid JSON in results.tests[0]: a test"),
    (b'{"results": {"tool": {"name": "x"}}}', "not CTRF: the document has no results.tests"),
    (b'{"results": {"tool": {}, "tests": []}} trailing', "text after the end"),
    (b'{"reportFormat": "CTRF", "results": {"tests": [{"name": "a"', "truncated"),
]


@pytest.mark.parametrize(("data", "reason"), BROKEN)
def test_broken_documents_are_report_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ReportError) as caught:
        parse_bytes(data)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (b'{"reportFormat": "CTRF", "specVersion": "0.0.0", "results": {', True),
        (b'{\n  "results": {\n    "tool": {\n      "name": "jest"', True),
        (b'\xef\xbb\xbf{"results":{"tool":{"name":"x"}}}', True),
        (b'{"results": {"tests": [{"name": "a", "status": "passed"', True),  # tool comes last
        (b'{"results": {"name": "x", "tests": []}}', False),
        # Jest's own --json, Mocha's JSON reporter, package.json, other JSON: not CTRF.
        (b'{"numFailedTestSuites": 0, "numTotalTests": 3, "testResults": []}', False),
        (b'{"stats": {"suites": 1}, "tests": [], "failures": []}', False),
        (b'{"name": "app", "version": "1.0.0", "devDependencies": {}}', False),
        (b'{"results": [{"tool": "x"}]}', False),
        (b'[{"reportFormat": "CTRF"}]', False),
    ],
)
def test_detection(first: bytes, expected: bool) -> None:
    assert CtrfFormat.detect(first) is expected
    assert looks_like_report(first) is expected


def test_names_suites_and_paths_are_cleaned_and_cut() -> None:
    (case,) = parse([{"name": "\x1b[31mred\x1b[0m " + "x" * 5000, "status": "passed",
                      "duration": 1, "suite": ["\x1b[1mbold\x1b[0m"], "filePath": "p" * 5000}]
                    ).cases()
    assert case.name.startswith("red xxx") and len(case.name) < 1200
    assert case.suite == "bold"
    assert case.file is not None and len(case.file) < 1200
