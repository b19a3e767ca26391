"""Dart / Flutter `--reporter json`: hidden tests, late errors, unfinished tests."""

from __future__ import annotations

import io

import orjson
import pytest

from bot.results.model import Status, TestRun
from bot.results.parsers import ReportError, parse_file, parse_stream
from bot.results.parsers.dart import DartJson
from bot.results.parsers.gotest import GoTestJson
from bot.results.parsers.rspec import RSpecJson

from .conftest import FIXTURES as REPORTS
from .conftest import OneWayStream

#: Non-XML fixtures live apart from the XML ones, which other tests list as flat files.
FIXTURES = REPORTS.parent / "streams"

DART = FIXTURES / "dart"


@pytest.fixture(scope="module")
def fixture_run() -> TestRun:
    return parse_file(DART / "dart-test.json")


def events(*items: dict[str, object]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


START = {"type": "start", "protocolVersion": "0.1.1", "runnerVersion": "1.24.9", "time": 0}
SUITE = {"type": "suite", "suite": {"id": 0, "platform": "vm", "path": "test/a_test.dart"},
         "time": 1}


def start(test_id: int, name: str, time: int = 2) -> dict[str, object]:
    return {"type": "testStart", "time": time, "test": {
        "id": test_id, "name": name, "suiteID": 0, "groupIDs": [], "line": 3, "column": 5,
        "url": "file:///app/test/a_test.dart"}}


def done(test_id: int, result: str = "success", hidden: bool = False,
         skipped: bool = False, time: int = 10) -> dict[str, object]:
    return {"type": "testDone", "testID": test_id, "result": result, "hidden": hidden,
            "skipped": skipped, "time": time}


def error(test_id: int, text: str, failure: bool = False) -> dict[str, object]:
    return {"type": "error", "testID": test_id, "error": text, "stackTrace": "at a_test.dart",
            "isFailure": failure, "time": 9}


END = {"type": "done", "success": False, "time": 100}


def test_totals_follow_the_protocol(fixture_run: TestRun) -> None:
    # 11 visible testDone events; the hidden successes "loading test/calc_test.dart" and
    # "Calculator (setUpAll)" are not counted, as the runner's own "+N ~S -F" does not.
    # Both attempts of the --retry test count: the protocol does not link them.
    totals = fixture_run.totals()
    assert (totals.total, totals.passed, totals.failed, totals.errors, totals.skipped) == (
        11, 4, 2, 4, 1)
    assert fixture_run.duration == pytest.approx(2.345)  # the done event's time


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Calculator adds", [(Status.PASSED, None)]),
        ("Calculator divides", [(Status.FAILED, "Expected: <3>\n  Actual: <2>")]),
        ("Calculator skipped one", [(Status.SKIPPED, "the divider is not built")]),
        ("Calculator throws", [(Status.ERROR, "StateError: Bad state: no element")]),
        ("Calculator same name", [(Status.PASSED, None), (Status.PASSED, None)]),
        ("Calculator leaks a future",
         [(Status.ERROR, "error after the test completed: Exception: late failure")]),
        ("Calculator retried",
         [(Status.FAILED, "Expected: true\n  Actual: <false>"), (Status.PASSED, None)]),
        ("Calculator (tearDownAll)", [(Status.ERROR, "Exception: could not close the database")]),
        ("Calculator (setUpAll)", []),
        ("loading test/calc_test.dart", []),
    ],
)
def test_outcomes(fixture_run: TestRun, name: str,
                  expected: list[tuple[Status, str | None]]) -> None:
    assert [(c.status, c.message) for c in fixture_run.cases() if c.name == name] == expected


def test_a_suite_that_fails_to_load_is_an_error_case(fixture_run: TestRun) -> None:
    [case] = [c for c in fixture_run.cases() if c.name == "loading test/broken_test.dart"]
    assert case.status is Status.ERROR and case.file == "test/broken_test.dart"
    assert case.message is not None and "Error when reading 'lib/missing.dart'" in case.message


def test_a_hidden_test_that_failed_is_shown() -> None:
    data = events(START, SUITE, start(1, "loading test/a_test.dart"),
                  error(1, "compilation failed"), done(1, "error", hidden=True), END)
    [case] = parse_stream("d.json", io.BytesIO(data)).cases()
    assert (case.status, case.message) == (Status.ERROR, "compilation failed")


def test_a_hidden_test_with_a_late_error_becomes_visible() -> None:
    data = events(START, SUITE, start(1, "(setUpAll)"), done(1, hidden=True),
                  error(1, "late"), END)
    [case] = parse_stream("d.json", io.BytesIO(data)).cases()
    assert case.status is Status.ERROR and case.message == "error after the test completed: late"


def test_failures_keep_location_group_and_printed_output(fixture_run: TestRun) -> None:
    [case] = [c for c in fixture_run.cases() if c.name == "Calculator divides"]
    assert (case.classname, case.suite, case.file, case.line, case.failure_type) == (
        "Calculator", "test/calc_test.dart", "test/calc_test.dart", 15, "TestFailure")
    assert case.stdout == "dividing 6 by 3\n"
    assert case.stack_trace is not None and "test/calc_test.dart 17:7" in case.stack_trace
    [passed] = [c for c in fixture_run.cases() if c.name == "Calculator adds"]
    assert passed.stdout is None and passed.duration == pytest.approx(0.009)


def test_a_stream_without_done_keeps_every_case_and_says_truncated() -> None:
    data = events(START, SUITE, start(1, "a"), done(1), start(2, "b"))
    with pytest.raises(ReportError) as caught:
        parse_stream("d.json", io.BytesIO(data))
    assert "truncated" in caught.value.reason
    partial = caught.value.partial
    assert partial is not None
    assert [(c.name, c.status) for c in partial.cases()] == [
        ("a", Status.PASSED), ("b", Status.ERROR)]


def test_a_corrupt_line_is_reported_and_the_rest_still_read() -> None:
    data = events(START, SUITE, start(1, "a")) + b'{"type":"testDone",\n' + events(
        start(2, "b"), done(2), END)
    with pytest.raises(ReportError) as caught:
        parse_stream("d.json", io.BytesIO(data))
    assert "line 4 is not valid JSON" in caught.value.reason
    assert caught.value.partial is not None
    assert {c.name: c.status for c in caught.value.partial.cases()} == {
        "a": Status.ERROR, "b": Status.PASSED}


def test_flutter_progress_lines_before_the_json_are_ignored() -> None:
    data = b"00:00 +0: loading test/a_test.dart\n" + events(START, SUITE, start(1, "a"),
                                                         done(1), END)
    assert DartJson.detect(data)
    assert parse_stream("d.json", OneWayStream(data)).totals().passed == 1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ((DART / "dart-test.json").read_bytes()[:4096], True),
        (events(SUITE, start(1, "a")), True),
        ((FIXTURES / "gotest" / "go-test.json").read_bytes()[:4096], False),
        ((FIXTURES / "rspec" / "rspec.json").read_bytes()[:4096], False),
        (b'{"type": "start", "name": "not a test stream"}\n', False),
        (b'{"type": "suite"}\n', False),
        (b"All tests passed!\n", False),
    ],
    ids=["dart", "no-start-line", "go", "rspec", "other-start", "bare-type", "plain-log"],
)
def test_detection(first: bytes, expected: bool) -> None:
    assert DartJson.detect(first) is expected
    if expected:
        assert not GoTestJson.detect(first) and not RSpecJson.detect(first)
