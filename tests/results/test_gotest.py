"""Go `go test -json` (test2json): what each outcome becomes, and what is never hidden."""

from __future__ import annotations

import io
from pathlib import Path

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

GO = FIXTURES / "gotest"
CALC = "example.com/heraldfix/calc"


def cases(run: TestRun) -> dict[str, list[tuple[Status, str | None]]]:
    found: dict[str, list[tuple[Status, str | None]]] = {}
    for case in run.cases():
        found.setdefault(case.name, []).append((case.status, case.message))
    return found


def line(**event: object) -> bytes:
    return orjson.dumps(event) + b"\n"


def go(*events: bytes) -> bytes:
    return b"".join(events)


def run_and(test: str, action: str, *output: str, package: str = CALC) -> bytes:
    parts = [line(Action="run", Package=package, Test=test)]
    parts += [line(Action="output", Package=package, Test=test, Output=o) for o in output]
    parts.append(line(Action=action, Package=package, Test=test, Elapsed=0.25))
    return b"".join(parts)


def package_end(action: str, package: str = CALC, elapsed: float = 1.5) -> bytes:
    return line(Action=action, Package=package, Elapsed=elapsed)


@pytest.fixture(scope="module")
def fixture_run() -> TestRun:
    return parse_file(GO / "go-test.json")


def test_totals_relate_to_gotestsum_as_documented(fixture_run: TestRun) -> None:
    # gotestsum on the same stream: "DONE 19 tests, 2 skipped, 7 failures". Herald adds
    # one ERROR case for the package that did not build and one for the package whose
    # init panicked (19 + 2), and does not count TestTable, which failed only through
    # TestTable/wrong_on_purpose (7 - 1 + the build failure).
    totals = fixture_run.totals()
    assert (totals.total, totals.skipped, totals.failures) == (21, 2, 7)
    assert (totals.passed, totals.failed, totals.errors) == (12, 3, 4)


def test_run_duration_is_the_sum_of_the_packages_elapsed(fixture_run: TestRun) -> None:
    # calc 0.03 + flaky 0.026 + initpanic 0.031 + panicky 0.031 + slow 5.015
    assert fixture_run.duration == pytest.approx(5.133)


@pytest.mark.parametrize(
    ("name", "status", "message"),
    [
        ("TestAdd", Status.PASSED, None),
        ("TestAddFails", Status.FAILED, "Add(2, 2) = 4, want 5"),
        ("TestSkipped", Status.SKIPPED, "needs a database"),
        ("TestTable/small_numbers", Status.PASSED, None),
        ("TestTable/wrong_on_purpose", Status.FAILED, "Add(2, 2) = 4, want 5"),
        ("TestTable", Status.PASSED,
         "failed only because its subtests failed: TestTable/wrong_on_purpose"),
        ("TestNested/outer/inner_skip", Status.SKIPPED, "not on this platform"),
        ("TestParentFailsItself", Status.FAILED, "the parent's own check failed"),
        ("TestPanics", Status.ERROR, "panic: assignment to entry in nil map [recovered]"),
        ("example.com/heraldfix/initpanic", Status.ERROR, "panic: init exploded"),
        ("example.com/heraldfix/broken", Status.ERROR, "[build failed]"),
    ],
)
def test_outcomes(fixture_run: TestRun, name: str, status: Status, message: str | None) -> None:
    assert cases(fixture_run)[name] == [(status, message)]


def test_a_test_that_never_ended_is_an_error_with_the_timeout_panic(fixture_run: TestRun) -> None:
    [hung] = [c for c in fixture_run.cases() if c.name == "TestHangs"]
    assert hung.status is Status.ERROR and hung.failure_type == "unfinished"
    assert hung.message is not None and "panic: test timed out after 5s" in hung.message
    assert "TestNeverRuns" not in cases(fixture_run)  # it never started: nothing to report


def test_failures_keep_location_and_output_passes_keep_none(fixture_run: TestRun) -> None:
    by_name = {c.name: c for c in fixture_run.cases()}
    failed = by_name["TestAddFails"]
    assert (failed.file, failed.line, failed.classname, failed.suite) == (
        "calc_test.go", 18, CALC, CALC)
    assert failed.stack_trace is not None
    assert "some stdout from the failing test" in failed.stack_trace
    assert "=== RUN" not in failed.stack_trace and "--- FAIL" not in failed.stack_trace
    assert by_name["TestAdd"].stack_trace is None and by_name["TestAdd"].stdout is None


def test_a_parent_with_output_of_its_own_stays_failed_when_a_subtest_failed() -> None:
    # Go prints t.Log and t.Error alike; the doubt doubles the failure, never hides it.
    data = go(
        line(Action="run", Package=CALC, Test="TestA"),
        line(Action="output", Package=CALC, Test="TestA", Output="    a_test.go:9: own\n"),
        run_and("TestA/sub", "fail", "    a_test.go:12: sub broke\n"),
        line(Action="fail", Package=CALC, Test="TestA", Elapsed=0.5),
        package_end("fail"),
    )
    found = cases(parse_stream("go.json", io.BytesIO(data)))
    assert found["TestA"] == [(Status.FAILED, "own")]
    assert found["TestA/sub"] == [(Status.FAILED, "sub broke")]


def test_gotestsum_rerun_after_the_package_ended_is_one_flaky_case() -> None:
    run = parse_file(GO / "gotestsum-rerun.json")
    # gotestsum printed "DONE 2 runs, 3 tests, 1 failure": 3 executions, one a rerun.
    [flaky] = [c for c in run.cases() if c.name == "TestFlaky"]
    assert flaky.status is Status.PASSED and flaky.flaky
    assert [(a.status, a.message) for a in flaky.attempts] == [
        (Status.FAILED, "first attempt fails")]
    assert run.totals().total == 2 and run.totals().flaky == 1


def test_count_n_executions_are_separate_cases_never_flaky() -> None:
    # go test -count=2: both executions come before the package's end event.
    run = parse_file(GO / "go-test-count2.json")
    assert cases(run)["TestFlaky"] == [
        (Status.FAILED, "first attempt fails"), (Status.PASSED, None)]
    assert run.totals().flaky == 0 and run.totals().failed == 1


def test_a_rerun_that_fails_again_stays_one_failure_with_its_attempts() -> None:
    data = go(
        run_and("TestX", "fail", "    x_test.go:3: first\n"), package_end("fail"),
        run_and("TestX", "fail", "    x_test.go:3: second\n"), package_end("fail"),
    )
    [case] = parse_stream("go.json", io.BytesIO(data)).cases()
    assert (case.status, case.message) == (Status.FAILED, "second")
    assert [a.message for a in case.attempts] == ["first"]


def test_a_later_package_run_of_a_test_that_passed_is_a_separate_execution() -> None:
    data = go(run_and("TestX", "pass"), package_end("pass"),
              run_and("TestX", "pass"), package_end("pass"))
    assert cases(parse_stream("go.json", io.BytesIO(data)))["TestX"] == [
        (Status.PASSED, None), (Status.PASSED, None)]


def test_setup_failed_line_and_failed_build_event_become_package_errors() -> None:
    data = go(
        b"FAIL\texample.com/app/db [setup failed]\n",
        line(ImportPath="example.com/app/web [example.com/app/web.test]",
             Action="build-output", Output="web/web.go:3:2: undefined: nope\n"),
        line(ImportPath="example.com/app/web [example.com/app/web.test]", Action="build-fail"),
        line(Action="start", Package="example.com/app/web"),
        line(Action="output", Package="example.com/app/web",
             Output="FAIL\texample.com/app/web [build failed]\n"),
        line(Action="fail", Package="example.com/app/web", Elapsed=0,
             FailedBuild="example.com/app/web [example.com/app/web.test]"),
    )
    run = parse_stream("go.json", io.BytesIO(data))
    found = {c.name: c for c in run.cases()}
    assert found["example.com/app/db"].status is Status.ERROR
    assert found["example.com/app/db"].message == "[setup failed]"
    web = found["example.com/app/web"]
    assert (web.status, web.message) == (Status.ERROR, "[build failed]")
    assert web.stack_trace is not None and "undefined: nope" in web.stack_trace


def test_compiler_output_after_the_fail_line_is_attached_to_the_build_error() -> None:
    data = go(b"FAIL\texample.com/app/db [build failed]\n",
              b"# example.com/app/db [example.com/app/db.test]\n",
              b"db/db.go:3:26: undefined: undefinedThing\n",
              run_and("TestOK", "pass"), package_end("pass"))
    found = {c.name: c for c in parse_stream("go.json", io.BytesIO(data)).cases()}
    assert "undefined: undefinedThing" in (found["example.com/app/db"].stack_trace or "")


def test_a_package_that_fails_with_passing_tests_only_gets_an_error_case() -> None:
    # TestMain calling os.Exit(1) after m.Run(), a leaked goroutine's panic...
    data = go(run_and("TestOK", "pass"),
              line(Action="output", Package=CALC, Output="FAIL\n"),
              line(Action="output", Package=CALC, Output="leak detected: 3 goroutines\n"),
              package_end("fail"))
    found = cases(parse_stream("go.json", io.BytesIO(data)))
    assert found[CALC] == [
        (Status.ERROR, "the package failed outside any test: leak detected: 3 goroutines")]


def test_failure_output_is_cut_at_the_text_limit() -> None:
    data = go(run_and("TestBig", "fail", *(["x" * 99 + "\n"] * 50)), package_end("fail"))
    [case] = parse_stream("go.json", io.BytesIO(data), text_limit=1000).cases()
    assert case.stack_trace is not None and len(case.stack_trace) < 1100
    assert "truncated by Herald" in case.stack_trace


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (lambda d: d[: d.index(b'"Action":"output","Package":"example.com/heraldfix/slow"')],
         "truncated"),
        (lambda d: d[:-10], "truncated"),
        (lambda d: d.replace(b'"Action":"skip"', b'"Action":skip', 1), "line 17 is not valid JSON"),
    ],
    ids=["ends-mid-package", "ends-mid-line", "corrupt-line"],
)
def test_broken_streams_raise_with_every_case_read(cut: object, reason: str) -> None:
    data = (GO / "go-test.json").read_bytes()
    broken = cut(data)  # type: ignore[operator]
    with pytest.raises(ReportError) as caught:
        parse_stream("go.json", io.BytesIO(broken))
    assert reason in caught.value.reason
    partial = caught.value.partial
    assert partial is not None and partial.totals().total >= 3


def test_a_stream_cut_inside_a_test_reports_it_as_unfinished() -> None:
    data = go(line(Action="run", Package=CALC, Test="TestSlow"),
              line(Action="output", Package=CALC, Test="TestSlow", Output="working\n"))
    with pytest.raises(ReportError) as caught:
        parse_stream("go.json", io.BytesIO(data))
    assert "still running" in caught.value.reason
    assert caught.value.partial is not None
    assert cases(caught.value.partial)["TestSlow"][0][0] is Status.ERROR


def test_events_of_the_wrong_types_are_reported_not_crashed_on() -> None:
    data = go(line(Action="run", Package=CALC, Test=5), run_and("TestOK", "pass"),
              package_end("pass"))
    with pytest.raises(ReportError) as caught:
        parse_stream("go.json", io.BytesIO(data))
    assert "line 1 is not a test2json event" in caught.value.reason
    assert caught.value.partial is not None and caught.value.partial.totals().total == 1


def test_one_way_streams_read_the_same(fixture_run: TestRun) -> None:
    data = (GO / "go-test.json").read_bytes()
    again = parse_stream("go.json", OneWayStream(data))  # type: ignore[arg-type]
    assert again.totals() == fixture_run.totals()


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ((GO / "go-test.json").read_bytes()[:4096], True),
        (b"FAIL\texample.com/x [build failed]\n" + line(Action="start", Package="x"), True),
        ((FIXTURES / "rspec" / "rspec.json").read_bytes()[:4096], False),
        ((FIXTURES / "dart" / "dart-test.json").read_bytes()[:4096], False),
        (b'{"name": "app", "version": "1.0.0", "scripts": {"test": "jest"}}\n', False),
        (b'{"numTotalTests": 3, "testResults": []}', False),
        (b"ok  \texample.com/x\t0.01s\n--- FAIL: TestA (0.00s)\n", False),
        (b'{"Action": "pass"}\n', False),
    ],
    ids=["go", "build-line-first", "rspec", "dart", "package-json", "jest", "plain-log",
         "no-package"],
)
def test_detection(first: bytes, expected: bool) -> None:
    assert GoTestJson.detect(first) is expected
    if expected:
        assert not DartJson.detect(first) and not RSpecJson.detect(first)


def test_plain_go_test_output_is_not_a_report(tmp_path: Path) -> None:
    path = tmp_path / "go-test.json"
    path.write_bytes(b"ok  \texample.com/x\t0.01s\n")
    with pytest.raises(ReportError, match="not a test report"):
        parse_file(path)
