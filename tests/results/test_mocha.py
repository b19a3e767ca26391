"""Mocha JSON reporter documents: each execution counted once, hook failures as errors,
retries, broken documents. The fixture is a real Mocha 11 run (README.jest-mocha.md)."""

from __future__ import annotations

import io

import orjson
import pytest

from bot.results.model import Status, TestCase, TestRun
from bot.results.parsers import ReportError, parse_file
from bot.results.parsers.jest import JestJson
from bot.results.parsers.mocha import MochaJson

from .conftest import FIXTURES, parse_bytes


@pytest.fixture(scope="module")
def run() -> TestRun:
    return parse_file(FIXTURES / "mocha.json")


def named(run: TestRun, name: str) -> list[TestCase]:
    return [case for case in run.cases() if case.name == name]


def test_totals_count_each_execution_once_and_the_hooks_as_errors(run: TestRun) -> None:
    # Mocha printed: 8 passing, 3 pending, 6 failing (two of the six are hooks).
    totals = run.totals()
    assert (totals.total, totals.passed, totals.failed, totals.errors, totals.skipped) == (
        17,
        8,
        4,
        2,
        3,
    )
    assert totals.flaky == 1


def test_run_duration_is_stats_duration(run: TestRun) -> None:
    assert run.duration == pytest.approx(0.034)


@pytest.mark.parametrize(
    ("name", "status", "classname"),
    [
        ("adds", Status.PASSED, "math"),
        ("subtracts wrongly", Status.FAILED, "math"),
        ("skipped multiply", Status.SKIPPED, "math"),  # it.skip
        ("pending without body", Status.SKIPPED, "math"),
        ("skips itself at run time", Status.SKIPPED, "conditional"),  # this.skip()
        ("deep pass", Status.PASSED, "math nested"),
        ("throws an error", Status.FAILED, "math nested"),
        ('"before each" hook for "reads a row"', Status.ERROR, "database"),
        ('"after all" hook for "runs fine"', Status.ERROR, "after hook"),
        ("runs fine", Status.PASSED, "after hook"),
    ],
)
def test_status_and_class(run: TestRun, name: str, status: Status, classname: str) -> None:
    (case,) = named(run, name)
    assert (case.status, case.classname) == (status, classname)
    assert case.file is not None and case.file.endswith(".spec.js")


def test_failures_carry_message_type_and_trace(run: TestRun) -> None:
    (case,) = named(run, "subtracts wrongly")
    assert case.message == "Expected values to be strictly equal:\n\n2 !== 3\n"
    assert case.failure_type == "AssertionError"
    assert "math.spec.js:7:12" in (case.stack_trace or "")
    (thrown,) = named(run, "throws an error")
    assert (thrown.failure_type, thrown.message) == ("TypeError", "boom: not a function")
    (hook,) = named(run, '"before each" hook for "reads a row"')
    assert hook.message == "connection refused" and "hook.spec.js:4:11" in (hook.stack_trace or "")


def test_same_titled_tests_are_separate_executions(run: TestRun) -> None:
    assert [case.status for case in named(run, "is even")] == [
        Status.PASSED,
        Status.PASSED,
        Status.FAILED,
        Status.PASSED,
    ]


def test_retries_become_failed_attempts_that_say_mocha_kept_no_error(run: TestRun) -> None:
    (flaky,) = named(run, "passes on third try")
    assert flaky.flaky and len(flaky.attempts) == 2
    assert all(a.status is Status.FAILED for a in flaky.attempts)
    assert "does not record the errors" in (flaky.attempts[0].message or "")
    (always,) = named(run, "always fails")
    assert always.status is Status.FAILED and len(always.attempts) == 2 and not always.flaky
    (steady,) = named(run, "steady")
    assert steady.attempts == []


def entry(title: str, state: str = "passed", **fields: object) -> dict[str, object]:
    test: dict[str, object] = {
        "title": title,
        "fullTitle": f"suite {title}",
        "file": "/t/a.spec.js",
        "duration": 3,
        "currentRetry": 0,
        "err": {},
    }
    if state == "passed":
        test["speed"] = "fast"
    elif state == "failed":
        test["err"] = {"message": f"{title} broke", "stack": f"Error: {title} broke\n    at x"}
    return {**test, **fields}


def document(tests: list[dict[str, object]], failures: list[dict[str, object]]) -> bytes:
    stats = {"suites": 1, "tests": len(tests), "passes": 0, "pending": 0, "failures": 0}
    stats["duration"] = 1500
    return orjson.dumps(
        {"stats": stats, "tests": tests, "pending": [], "failures": failures, "passes": []},
        option=orjson.OPT_INDENT_2,
    )


def test_a_failure_listed_twice_for_one_test_is_kept_as_an_error() -> None:
    # Mocha lists a test again when it fails after passing (an async error, done() twice):
    # the extra entry may be a different error, so it is not folded away.
    failed = entry("x", "failed")
    run = parse_bytes(document([failed], [failed, failed]), "r.json")
    assert [c.status for c in run.cases()] == [Status.FAILED, Status.ERROR]


def test_failures_before_tests_are_still_matched() -> None:
    # Not Mocha's order (nor detected as Mocha), but the matching must not depend on it.
    failed = entry("x", "failed")
    data = orjson.dumps({"stats": {"passes": 0}, "failures": [failed], "tests": [failed]})
    run = MochaJson.parse("r.json", io.BytesIO(data), 1000)
    assert [c.status for c in run.cases()] == [Status.FAILED]


def test_a_truncated_document_keeps_the_tests_read_before_the_cut() -> None:
    tests = [entry(f"t{i}") for i in range(20_000)]
    data = document(tests, [])
    with pytest.raises(ReportError) as caught:
        parse_bytes(data[: len(data) // 2], "r.json")
    partial = caught.value.partial
    assert partial is not None
    read = partial.totals().total
    assert 0 < read < 20_000
    assert caught.value.reason.startswith(f"truncated: the JSON ends after tests[{read - 1}]")


def test_a_cut_in_the_failures_keeps_every_test_and_the_hooks_read() -> None:
    hook = entry('"before all" hook for "x"', "failed")
    data = document([entry("a")], [hook, hook, hook])
    with pytest.raises(ReportError) as caught:
        parse_bytes(data[: data.rindex(b'"title"')], "r.json")
    assert caught.value.partial is not None
    assert [c.status for c in caught.value.partial.cases()] == [Status.PASSED, *[Status.ERROR] * 2]


def test_text_is_cut_to_the_limit() -> None:
    long = entry("x", "failed", err={"message": "m" * 5000, "stack": "s" * 5000})
    (case,) = parse_bytes(document([long], [long]), "r.json", text_limit=100).cases()
    assert case.message is not None and len(case.message) < 200


@pytest.mark.parametrize(
    "first",
    [
        b'{"numTotalTestSuites":1,"numTotalTests":1,"testResults":[]}',
        b'{"results":{"tool":{"name":"mocha"},"summary":{"tests":1,"passed":1},"tests":[]}}',
        # mochawesome: same stats, but its tests are under "results"
        b'{"stats":{"suites":1,"tests":1,"passes":1,"testsRegistered":1},"results":[]}',
        b'{"name":"app","scripts":{"test":"mocha"},"stats":{}}',
        b"  1 passing (3ms)\n",
    ],
)
def test_detection_leaves_other_files_alone(first: bytes) -> None:
    assert not MochaJson.detect(first)


def test_detection_takes_the_fixture_and_jest_does_not() -> None:
    head = (FIXTURES / "mocha.json").read_bytes()[:1024]
    assert MochaJson.detect(head) and not JestJson.detect(head)
