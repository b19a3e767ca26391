"""RSpec `--format json`: outcomes, errors outside of examples, streaming and broken files."""

from __future__ import annotations

import io
import json

import pytest

from bot.results.model import Status, TestRun
from bot.results.parsers import ReportError, parse_file, parse_stream
from bot.results.parsers import rspec as rspec_module
from bot.results.parsers.dart import DartJson
from bot.results.parsers.gotest import GoTestJson
from bot.results.parsers.rspec import RSpecJson

from .conftest import FIXTURES as REPORTS
from .conftest import OneWayStream

#: Non-XML fixtures live apart from the XML ones, which other tests list as flat files.
FIXTURES = REPORTS.parent / "streams"

RSPEC = FIXTURES / "rspec"


@pytest.fixture(scope="module")
def fixture_run() -> TestRun:
    return parse_file(RSPEC / "rspec.json")


def signature(run: TestRun) -> list[tuple[object, ...]]:
    return [(c.status, c.name, c.classname, c.message, c.file, c.line, c.failure_type,
             c.stack_trace, c.duration) for c in run.cases()] + [("duration", run.duration)]


def test_totals_match_what_rspec_printed(fixture_run: TestRun) -> None:
    # rspec printed "11 examples, 5 failures, 2 pending, 1 error occurred outside of examples"
    totals = fixture_run.totals()
    assert totals.total == 11 + 1
    assert totals.failed + totals.errors == 5 + 1
    assert totals.skipped == 2
    assert fixture_run.duration == pytest.approx(0.049039566)  # summary.duration


@pytest.mark.parametrize(
    ("name", "status", "failure_type", "message"),
    [
        ("Calculator adds", Status.PASSED, None, None),
        ("Calculator subtracts wrongly on purpose", Status.FAILED,
         "RSpec::Expectations::ExpectationNotMetError",
         "expected: 3\n     got: 2\n\n(compared using ==)"),
        ("Calculator is not written yet", Status.SKIPPED, None, "the divider is not built"),
        ("Calculator is skipped outright", Status.SKIPPED, None, "Temporarily skipped with xit"),
        ("Calculator raises an error", Status.ERROR, "ArgumentError", "bad input"),
        ("Broken setup never gets to run", Status.ERROR, "RuntimeError", "database is down"),
        ("Teardown was pending but now passes", Status.FAILED,
         "RSpec::Core::Pending::PendingExampleFixedError",
         "Expected example to fail since it is pending, but it passed."),
    ],
)
def test_outcomes(fixture_run: TestRun, name: str, status: Status, failure_type: str | None,
                  message: str | None) -> None:
    [case] = [c for c in fixture_run.cases() if c.name == name]
    assert (case.status, case.failure_type, case.message) == (status, failure_type, message)


def test_same_described_examples_are_separate_cases(fixture_run: TestRun) -> None:
    same = [c.status for c in fixture_run.cases() if c.name == "Calculator handles a number"]
    assert same == [Status.PASSED, Status.PASSED, Status.FAILED]


def test_location_group_and_trace(fixture_run: TestRun) -> None:
    [case] = [c for c in fixture_run.cases() if c.name == "Calculator raises an error"]
    assert (case.file, case.line, case.classname, case.suite) == (
        "spec/calc_spec.rb", 18, "Calculator", "spec/calc_spec.rb")
    assert case.stack_trace is not None
    head = "ArgumentError: bad input\n/tmp/fgdr/rspec/spec/calc_spec.rb:19"
    assert case.stack_trace.startswith(head)


def test_an_after_context_error_is_an_error_case(fixture_run: TestRun) -> None:
    [case] = [c for c in fixture_run.cases() if c.failure_type == "error outside of examples"]
    assert case.status is Status.ERROR
    assert case.name == "An error occurred in an `after(:context)` hook."
    assert case.message is not None and "could not drop the test database" in case.message
    assert (case.file, case.line) == ("spec/calc_spec.rb", 41)


def test_a_spec_file_that_does_not_load_is_never_a_green_run() -> None:
    # rspec printed "0 examples, 0 failures, 1 error occurred outside of examples"
    run = parse_file(RSPEC / "rspec-load-error.json")
    [case] = run.cases()
    assert case.status is Status.ERROR
    assert case.name == "An error occurred while loading ./spec/loaderror_spec.rb."
    assert case.message is not None and "cannot load such file" in case.message
    assert run.overall_status().value == "failed"


def test_errors_counted_without_a_message_still_become_cases() -> None:
    document = {"version": "3.12.0", "examples": [], "summary": {
        "duration": 0.1, "example_count": 0, "failure_count": 0, "pending_count": 0,
        "errors_outside_of_examples_count": 2}, "summary_line": "0 examples"}
    run = parse_stream("r.json", io.BytesIO(json.dumps(document).encode()))
    assert [c.status for c in run.cases()] == [Status.ERROR, Status.ERROR]
    assert [c.name for c in run.cases()] == [
        "error outside of examples #1", "error outside of examples #2"]


def test_compact_and_pretty_printed_documents_read_alike(fixture_run: TestRun) -> None:
    pretty = json.dumps(json.loads((RSPEC / "rspec.json").read_bytes()), indent=2).encode()
    assert signature(parse_stream("r.json", io.BytesIO(pretty))) == signature(fixture_run)
    one_way = OneWayStream((RSPEC / "rspec.json").read_bytes())
    assert signature(parse_stream("r.json", one_way)) == signature(fixture_run)  # type: ignore[arg-type]


def test_rspec_own_layout_is_cut_without_the_event_parser(
    monkeypatch: pytest.MonkeyPatch, fixture_run: TestRun
) -> None:
    def no_fallback(self: object, stream: object) -> TestRun:
        raise AssertionError("the compact layout should not need ijson's events")

    monkeypatch.setattr(rspec_module._Reader, "events", no_fallback)
    assert signature(parse_file(RSPEC / "rspec.json")) == signature(fixture_run)


def test_a_separator_inside_a_message_does_not_split_an_example() -> None:
    example = {"id": "./a_spec.rb[1:1]", "description": "x", "full_description": "A x",
               "status": "failed", "file_path": "./a_spec.rb", "line_number": 1,
               "run_time": 0.1, "pending_message": None,
               "exception": {"class": "RuntimeError", "message": 'boom },{"id": nope',
                             "backtrace": []}}
    document = {"version": "3.12.0", "examples": [example, {**example, "status": "passed"}],
                "summary": {"duration": 1.0}, "summary_line": ""}
    run = parse_stream("r.json", io.BytesIO(json.dumps(document, separators=(",", ":")).encode()))
    assert [(c.status, c.message) for c in run.cases()] == [
        (Status.ERROR, 'boom },{"id": nope'), (Status.PASSED, None)]


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
@pytest.mark.parametrize(
    ("fraction", "reason", "kept"),
    [(0.3, "truncated: the JSON ends inside examples[", 2), (0.995, "truncated", 11)],
    ids=["inside-examples", "in-the-summary"],
)
def test_truncated_documents_keep_the_examples_read(
    pretty: bool, fraction: float, reason: str, kept: int
) -> None:
    data = (RSPEC / "rspec.json").read_bytes()
    if pretty:
        data = json.dumps(json.loads(data), indent=2).encode()
    with pytest.raises(ReportError) as caught:
        parse_stream("r.json", io.BytesIO(data[: int(len(data) * fraction)]))
    assert reason in caught.value.reason
    assert caught.value.partial is not None
    assert caught.value.partial.totals().total >= kept


def test_a_corrupt_example_is_reported_with_the_examples_before_it() -> None:
    data = (RSPEC / "rspec.json").read_bytes().replace(
        b'"status":"pending"', b'"status":pending', 1)
    with pytest.raises(ReportError) as caught:
        parse_stream("r.json", io.BytesIO(data))
    assert caught.value.reason.startswith("invalid JSON inside examples[2]")
    assert caught.value.partial is not None


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ((RSPEC / "rspec.json").read_bytes()[:4096], True),
        ((RSPEC / "rspec-load-error.json").read_bytes(), True),
        (json.dumps(json.loads((RSPEC / "rspec.json").read_bytes()), indent=2).encode()[:8192],
         True),
        ((FIXTURES / "gotest" / "go-test.json").read_bytes()[:4096], False),
        ((FIXTURES / "dart" / "dart-test.json").read_bytes()[:4096], False),
        (b'{"version": "1.0.0", "name": "app", "examples": ["a"]}', False),
        (b'{"stats": {"tests": 1}, "tests": [], "failures": []}', False),
        (b'{"results": {"tool": {"name": "jest"}, "summary": {}}}', False),
    ],
    ids=["rspec", "load-error", "pretty", "go", "dart", "package-like", "mocha", "ctrf"],
)
def test_detection(first: bytes, expected: bool) -> None:
    assert RSpecJson.detect(first) is expected
    if expected:
        assert not GoTestJson.detect(first) and not DartJson.detect(first)
