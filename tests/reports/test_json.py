"""The JSON report: schema version 2, documented in bot/reports/SCHEMA.md, round-trips in
full on request, and writes passed tests briefly by default."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.reports import SCHEMA_VERSION, from_json, iter_json, render_json
from bot.reports.json import SchemaError
from bot.results.model import (
    Artifact,
    Attempt,
    Metric,
    Origin,
    ParseError,
    RunStatus,
    Status,
    Suite,
    TestCase,
    TestRun,
)
from tests.reports.runs import failing_run, matrix_run, rich_run, seed_run

SCHEMA_DOC = Path(__file__).parents[2] / "bot" / "reports" / "SCHEMA.md"

TOP_LEVEL = {
    "schema_version", "test_run_id", "status", "status_reported", "title", "summary",
    "started_at", "finished_at", "duration_seconds", "url", "metadata", "environment",
    "suites", "metrics", "artifacts", "errors", "truncated", "origins", "tests",
}
SUMMARY = {"total", "tests", "passed", "failed", "errors", "skipped", "flaky", "duration_seconds"}
TEST = {
    "suite", "suite_index", "classname", "name", "display_name", "status",
    "duration_seconds", "file", "line", "message", "failure_type", "stack_trace", "stdout",
    "stderr", "attempts", "flaky", "source", "origin",
}
#: A passed test without attempts, by default: identity, status, duration (and origin and
#: suite when there are ones to say).
BRIEF = {"suite_index", "classname", "name", "status", "duration_seconds"}
SUITE = {"name", "duration_seconds", "timestamp", "hostname", "properties", "source", "tests"}
ATTEMPT = {"status", "duration_seconds", "message", "failure_type", "stack_trace"}


def test_document_fields() -> None:
    run = rich_run()
    run.started_at = datetime(2026, 11, 25, 9, 58, 0, tzinfo=UTC)
    document = json.loads(render_json(run, passed_detail=True))
    assert set(document) == TOP_LEVEL
    assert document["schema_version"] == SCHEMA_VERSION == 2
    assert document["test_run_id"] == "pipeline-1234"
    assert document["status"] == "failed"
    assert document["summary"] == {"total": 44, "tests": 44, "passed": 40, "failed": 2, "errors": 1,
                                   "skipped": 1, "flaky": 1, "duration_seconds": 125.7}
    assert document["started_at"] == "2026-11-25T09:58:00+00:00"
    assert document["url"] == "https://ci.example.com/pipelines/1234"
    assert set(document["suites"][0]) == SUITE
    assert all(set(test) == TEST for test in document["tests"])
    flaky = document["tests"][0]
    assert flaky["flaky"] is True
    assert [set(a) for a in flaky["attempts"]] == [ATTEMPT]
    failed = next(t for t in document["tests"] if t["name"] == "test_total_includes_tax")
    assert failed["file"] == "tests/test_checkout.py" and failed["line"] == 42
    assert failed["status"] == "failed" and failed["failure_type"] == "AssertionError"
    assert document["metrics"][0] == {"name": "p95 latency", "value": 12.5, "unit": "ms"}
    assert document["artifacts"][1] == {"name": "coverage.html", "size_bytes": None,
                                        "url": None}
    assert document["errors"] == [{"source": "reports/bad.xml",
                                   "reason": "not XML: mismatched tag, line 3"}]


def test_every_field_is_documented() -> None:
    doc = SCHEMA_DOC.read_text(encoding="utf-8")
    for field in TOP_LEVEL | SUMMARY | TEST | SUITE | ATTEMPT | {"size_bytes", "tier",
                                                               "dropped_fields", "omitted_tests"}:
        assert f"`{field}`" in doc, field


def test_round_trip_of_the_examples() -> None:
    for run in (seed_run(), rich_run(), matrix_run(), TestRun(id="empty"),
                failing_run(3, 50, 50)):
        assert from_json(render_json(run, passed_detail=True)) == run
        assert from_json(render_json(run)) == briefly(run)


def briefly(run: TestRun) -> TestRun:
    """`run` as the default JSON report keeps it: passed tests without attempts lose their
    location, texts and source (the suite's is assumed)."""
    copy = from_json(render_json(run, passed_detail=True))
    for suite in copy.suites:
        kept = []
        for case in suite.cases:
            if case.status is Status.PASSED and not case.attempts:
                case.file = case.line = case.message = case.failure_type = None
                case.stack_trace = case.stdout = case.stderr = None
                case.source = suite.source
            kept.append(case)
        suite.cases = kept
    return copy


def test_a_passed_test_costs_its_identity_status_duration_and_origin_only() -> None:
    run = TestRun(id="r", suites=[Suite("unit", [
        TestCase(name="test_ok", classname="tests.test_a", suite="unit", duration=0.5,
                 file="tests/test_a.py", line=3, stdout="noise " * 100),
        TestCase(name="test_ok", classname="tests.test_a", suite="other", duration=0.25,
                 origin=Origin("test (3.12)")),
        TestCase(name="test_bad", classname="tests.test_a", suite="unit",
                 status=Status.FAILED, message="boom", stdout="kept"),
    ])])
    document = json.loads(render_json(run))
    first, second, failed = document["tests"]
    assert first == {"suite_index": 0, "classname": "tests.test_a", "name": "test_ok",
                     "status": "passed", "duration_seconds": 0.5}
    assert set(second) == BRIEF | {"suite", "origin"}
    assert document["origins"][second["origin"]] == {"name": "test (3.12)", "url": None}
    assert set(failed) == TEST and failed["stdout"] == "kept"


def test_iter_json_writes_the_same_document_piece_by_piece() -> None:
    run = matrix_run()
    pieces = list(iter_json(run))
    assert len(pieces) > len(run.suites[0].cases)
    assert "".join(pieces) == render_json(run)


def test_each_test_says_its_origin_and_the_summary_counts_unique_tests() -> None:
    document = json.loads(render_json(matrix_run()))
    assert document["summary"]["total"] == 11
    assert document["summary"]["tests"] == 8  # test_parse ran three times and once more
    origins = document["origins"]
    assert origins[document["tests"][0]["origin"]] == {
        "name": "test (3.11)", "url": "https://github.com/o/r/actions/runs/7/job/11"}
    assert origins[document["tests"][-1]["origin"]]["name"] == "test (3.12)"
    assert len(origins) == 2  # each job once, however many tests it ran
    seed = json.loads(render_json(seed_run(), passed_detail=True))
    assert seed["tests"][0]["origin"] is None and seed["origins"] == []


def test_one_origin_object_per_job_comes_back() -> None:
    run = from_json(render_json(matrix_run()))
    first, second = run.suites[0].cases[:2]
    assert first.origin is second.origin  # shared, as the parsers share them


def version_1(run: TestRun) -> dict[str, object]:
    """`run` as Herald wrote it before version 2: every test in full, its origin inline."""
    document = json.loads(render_json(run, passed_detail=True))
    table = document.pop("origins")
    document["schema_version"] = 1
    for test in document["tests"]:
        test["origin"] = None if test["origin"] is None else table[test["origin"]]
    return document


def test_a_version_1_document_still_reads() -> None:
    run = matrix_run()
    assert from_json(json.dumps(version_1(run))) == run


def test_a_version_1_document_from_before_origins_reads_as_no_origin() -> None:
    document = version_1(matrix_run())
    for test in document["tests"]:  # type: ignore[attr-defined]
        del test["origin"]
    assert all(case.origin is None for case in from_json(json.dumps(document)).cases())


@pytest.mark.parametrize("origin", [{"name": 1, "url": None}, {"name": "a", "url": 2},
                                    {"name": "a"}, "a"])
def test_from_json_refuses_a_malformed_version_1_origin(origin: object) -> None:
    document = version_1(seed_run())
    document["tests"][0]["origin"] = origin  # type: ignore[index]
    with pytest.raises(SchemaError, match="malformed Herald report"):
        from_json(json.dumps(document))


@pytest.mark.parametrize("origin", [-1, 2, True, 0.0, "0", {"name": "a", "url": None}])
def test_from_json_refuses_an_origin_that_names_no_entry_of_origins(origin: object) -> None:
    document = json.loads(render_json(matrix_run()))
    document["tests"][0]["origin"] = origin
    with pytest.raises(SchemaError, match="malformed Herald report"):
        from_json(json.dumps(document))


def test_the_environment_round_trips_in_its_order() -> None:
    run = seed_run()
    run.environment = {"Python Version": "3.11.7", "GPU": "NVIDIA A100", "Platform": "linux"}
    document = json.loads(render_json(run))
    assert list(document["environment"].items()) == list(run.environment.items())
    assert list(from_json(render_json(run)).environment) == ["Python Version", "GPU",
                                                             "Platform"]


def test_a_document_written_before_the_environment_existed_reads_as_none() -> None:
    document = json.loads(render_json(seed_run()))
    del document["environment"]
    assert from_json(json.dumps(document)).environment == {}


@pytest.mark.parametrize("environment", [["linux"], {"GPU": 1}, {"GPU": None}, "linux"])
def test_from_json_refuses_an_environment_that_is_not_an_object_of_strings(
    environment: object,
) -> None:
    document = json.loads(render_json(seed_run()))
    document["environment"] = environment
    with pytest.raises(SchemaError, match="environment must be an object of strings"):
        from_json(json.dumps(document))


def test_a_reported_status_survives_and_a_derived_one_stays_derived() -> None:
    run = seed_run()
    assert from_json(render_json(run)).status is None
    run.status = RunStatus.CANCELLED
    document = json.loads(render_json(run))
    assert document["status"] == "cancelled" and document["status_reported"] is True
    assert from_json(render_json(run)).status is RunStatus.CANCELLED


def test_non_finite_numbers_become_null_not_invalid_json() -> None:
    run = TestRun(id="r", suites=[Suite("s", [TestCase(name="t", duration=float("nan"))],
                                        duration=float("nan"))],
                  metrics=[Metric("m", float("nan"))])
    document = json.loads(render_json(run))
    assert document["tests"][0]["duration_seconds"] is None
    assert document["suites"][0]["duration_seconds"] is None
    assert document["metrics"][0]["value"] == "nan"


@pytest.mark.parametrize(
    ("budget", "tier", "dropped", "tests"),
    [
        (None, None, None, 5),
        (40_000, 2, ["stderr", "stdout"], 5),
        (7_000, 2, ["stack_trace", "stderr", "stdout"], 5),
        (3_000, 3, ["stack_trace", "stderr", "stdout"], None),
        (2_300, 4, ["stack_trace", "stderr", "stdout"], 0),
    ],
)
def test_budget_tiers(budget: int | None, tier: int | None, dropped: list[str] | None,
                      tests: int | None) -> None:
    cases = [
        TestCase(name=f"test_{i}", status=Status.FAILED if i < 3 else Status.PASSED,
                 message="x" * 100, stack_trace="t" * 1_000, stdout="o" * 10_000)
        for i in range(5)
    ]
    run = TestRun(id="r", suites=[Suite("s", cases)],
                  errors=[ParseError("e.xml", "r" * 1_500)])
    text = render_json(run, budget=budget, passed_detail=True)
    document = json.loads(text)
    assert budget is None or len(text) <= budget
    assert document["summary"]["total"] == 5  # always the whole run's counts
    if tier is None:
        assert document["truncated"] is None
    else:
        assert document["truncated"]["tier"] == tier
        assert document["truncated"]["dropped_fields"] == dropped
        assert document["truncated"]["omitted_tests"] == 5 - len(document["tests"])
    if tests is None:
        assert 0 < len(document["tests"]) < 3
        assert all(t["status"] == "failed" for t in document["tests"])
    else:
        assert len(document["tests"]) == tests


def test_a_budget_below_the_bare_document_is_refused() -> None:
    with pytest.raises(ValueError, match="needs more than"):
        render_json(seed_run(), budget=100)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[]", "not an object"),
        ('{"schema_version": 3}', "unsupported schema_version 3"),
        ('{"schema_version": 1}', "malformed Herald report: KeyError"),
    ],
)
def test_from_json_refuses_what_it_cannot_read(text: str, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason):
        from_json(text)


@pytest.mark.parametrize("index", [-1, 1, 0.0, True, "0"])
def test_from_json_refuses_a_suite_index_that_names_no_suite(index: object) -> None:
    document = json.loads(render_json(seed_run()))
    document["tests"][0]["suite_index"] = index
    with pytest.raises(SchemaError, match="malformed Herald report"):
        from_json(json.dumps(document))


names = st.text(max_size=20)
optional_text = st.none() | st.text(max_size=40)
durations = st.floats(min_value=0, max_value=1e7, allow_nan=False)
offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
naive = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))
aware = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                     timezones=st.just(UTC) | offsets)
moments = st.none() | naive | aware
# A run's start and end are both aware (as CI APIs give them) or absent: the model cannot
# subtract a naive time from an aware one.
run_moments = st.none() | aware
attempts = st.builds(Attempt, status=st.sampled_from(Status), duration=durations,
                     message=optional_text, failure_type=optional_text,
                     stack_trace=optional_text)
cases = st.builds(
    TestCase, name=names, classname=names, suite=names, status=st.sampled_from(Status),
    duration=durations, file=optional_text, line=st.none() | st.integers(0, 10**6),
    message=optional_text, failure_type=optional_text, stack_trace=optional_text,
    stdout=optional_text, stderr=optional_text, attempts=st.lists(attempts, max_size=2),
    source=optional_text,
    origin=st.none() | st.builds(Origin, name=names, url=optional_text),
)
suites = st.builds(
    Suite, name=names, cases=st.lists(cases, max_size=4), duration=st.none() | durations,
    timestamp=moments, hostname=optional_text,
    properties=st.dictionaries(names, names, max_size=3), source=optional_text,
)
runs = st.builds(
    TestRun, id=names, suites=st.lists(suites, max_size=3),
    status=st.none() | st.sampled_from(RunStatus), started_at=run_moments,
    finished_at=run_moments,
    duration=st.none() | durations, metadata=st.dictionaries(names, names, max_size=3),
    environment=st.dictionaries(names, names, max_size=3),
    metrics=st.lists(st.builds(Metric, name=names, value=durations | names, unit=names),
                     max_size=3),
    artifacts=st.lists(st.builds(Artifact, name=names,
                                 size=st.none() | st.integers(0, 2**53), url=optional_text),
                       max_size=3),
    errors=st.lists(st.builds(ParseError, source=names, reason=names), max_size=3),
    url=optional_text,
)


@settings(max_examples=200, deadline=None)
@given(runs)
def test_from_json_inverts_render_json(run: TestRun) -> None:
    assert from_json(render_json(run, passed_detail=True)) == run
    assert from_json(render_json(run)) == briefly(run)
