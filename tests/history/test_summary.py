"""RunSummary and its bytes: what a run is reduced to, the cap, and blobs that do not read."""

from __future__ import annotations

import itertools
import statistics
import zlib
from array import array
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.events import RunRef
from bot.history import Aggregates, HistoryError, HistoryKey, RunSummary
from bot.history.codec import decode_aggregates, decode_run, encode_aggregates, encode_run
from bot.history.summary import KEY_PART_LIMIT, bounded
from bot.ports import Change, ReportOrigin
from bot.results.model import Attempt, Origin, Status, Suite, TestCase, TestRun

KEY = HistoryKey("gitlab", "group/app", "main", "gitlab", "")
AT = datetime(2026, 12, 1, tzinfo=UTC)


def run_of(cases: list[TestCase]) -> TestRun:
    return TestRun(id="r", suites=[Suite("s", cases=cases)])


def test_a_summary_keeps_identity_origin_status_duration_and_attempts_of_each_execution() -> None:
    run = run_of([
        TestCase("b", "C", "S", Status.FAILED, 2.5, origin=Origin("job 1"), message="boom"),
        TestCase("a", "C", "S", Status.PASSED, 0.5,
                 attempts=[Attempt(Status.ERROR), Attempt(Status.FAILED)]),
    ])

    summary = RunSummary.of(run, KEY, sha="abc", run_id="9", finished_at=AT)

    assert [tuple(test)[1:] for test in summary.tests()] == [
        ("S\x1fC\x1fa", "", Status.PASSED, 0.5, 3, True),
        ("S\x1fC\x1fb", "job 1", Status.FAILED, 2.5, 1, False),
    ]
    assert summary.complete


def test_a_report_summary_takes_its_key_sha_run_and_attempt_from_the_change_and_origin() -> None:
    change = Change("github", "octo/app", "f00d")
    origin = ReportOrigin(RunRef("github", "octo/app", "4242"), name="CI", attempt=3)

    summary = RunSummary.of_report(run_of([TestCase("t")]), change, origin, "feature/x",
                                   finished_at=AT)

    assert summary.key == HistoryKey("github", "octo/app", "feature/x", "github", "CI")
    assert (summary.sha, summary.run_id, summary.attempt) == ("f00d", "4242", 3)


def test_the_cap_keeps_failures_first_and_counts_what_it_dropped() -> None:
    """A cap could hide a failure behind passed tests that came first: it must not."""
    cases = [TestCase(f"p{n}") for n in range(50)]
    cases += [TestCase(f"f{n}", status=Status.FAILED) for n in range(5)]

    summary = RunSummary.of(run_of(cases), KEY, sha="s", run_id="1", finished_at=AT, limit=10)

    assert len(summary) == 10 and len(summary.failures()) == 5
    assert (summary.omitted, summary.omitted_failures, summary.complete) == (45, 0, False)


def test_failures_past_the_cap_are_counted_as_omitted_failures() -> None:
    cases = [TestCase(f"f{n}", status=Status.ERROR) for n in range(12)]

    summary = RunSummary.of(run_of(cases), KEY, sha="s", run_id="1", finished_at=AT, limit=10)

    assert (len(summary), summary.omitted, summary.omitted_failures) == (10, 2, 2)


def test_a_summary_and_its_aggregates_read_back_from_their_bytes_unchanged() -> None:
    run = run_of([TestCase(f"t{n}", status=Status.FAILED if n % 3 else Status.PASSED,
                           duration=n / 7, origin=Origin(f"leg {n % 2}")) for n in range(300)])
    summary = RunSummary.of(run, KEY, sha="s", run_id="1", finished_at=AT)
    aggregates = Aggregates.of([summary])

    again = decode_run(encode_run(summary))
    counted = decode_aggregates(encode_aggregates(aggregates))

    assert list(again.tests()) == list(summary.tests())
    assert (again.key, again.sha, again.finished_at) == (KEY, "s", AT)
    assert list(counted.items()) == list(aggregates.items())
    assert decode_run(encode_run(summary), names=False).names is None


@pytest.mark.parametrize(("blob", "reason"), [
    (b"", "too short"),
    (b"XXXX" + bytes(12), "unknown format"),
    (b"HHR1" + (5).to_bytes(4, "little") + bytes(8), "truncated"),
    (b"HHR1" + (2).to_bytes(4, "little") + bytes(8) + b"{}", "header lacks"),
])
def test_a_blob_that_is_not_a_run_is_refused_saying_why(blob: bytes, reason: str) -> None:
    with pytest.raises(HistoryError, match=reason):
        decode_run(blob)


def test_a_run_blob_with_mangled_columns_is_refused() -> None:
    good = encode_run(RunSummary.of(run_of([TestCase("t")]), KEY, sha="s", run_id="1",
                                    finished_at=AT))
    mangled = good.replace(b'"n":1', b'"n":2')

    with pytest.raises(HistoryError, match="columns hold 16 bytes for 2 entries"):
        decode_run(mangled)


def test_key_parts_past_the_limit_are_cut_and_stay_distinct() -> None:
    a, b = "w" * 10_000 + "a", "w" * 10_000 + "b"

    assert len(bounded(a)) <= KEY_PART_LIMIT and bounded(a) != bounded(b)
    assert HistoryKey("github", "o/r", "main", "github", a) != HistoryKey(
        "github", "o/r", "main", "github", b)


@pytest.mark.parametrize("field", ["forge", "repo", "branch", "ci"])
def test_a_key_with_an_empty_part_is_refused_by_name(field: str) -> None:
    parts = {"forge": "github", "repo": "o/r", "branch": "main", "ci": "github", "workflow": ""}
    parts[field] = ""

    with pytest.raises(HistoryError, match=f"{field} is empty"):
        HistoryKey(**parts)


def test_a_summary_without_sha_or_run_id_is_refused() -> None:
    with pytest.raises(HistoryError, match="a sha and a run id"):
        RunSummary.of(run_of([]), KEY, sha="", run_id="1", finished_at=AT)


@pytest.mark.parametrize(("executions", "outcome", "flaky"), [
    ([Status.PASSED, Status.FAILED, Status.PASSED], "failed", False),
    ([Status.SKIPPED, Status.PASSED], "passed", False),
    ([Status.SKIPPED, Status.SKIPPED], "skipped", False),
    ([Status.ERROR, Status.SKIPPED], "failed", False),
    (["flaky", Status.PASSED], "passed", True),
])
def test_executions_of_one_test_fold_failure_first_then_pass_then_skip(
        executions: list[Status | str], outcome: str, flaky: bool) -> None:
    """Folding a run's executions of a test could hide a failure: a failure always wins."""
    cases = [
        TestCase("t", attempts=[Attempt(Status.FAILED)]) if execution == "flaky"
        else TestCase("t", status=Status(execution), duration=1.0)
        for execution in executions
    ]
    aggregates = Aggregates.of([RunSummary.of(run_of(cases), KEY, sha="s", run_id="1",
                                              finished_at=AT)])

    found = aggregates.get("\x1f\x1ft")

    assert found is not None
    assert {0: "passed", 1: "failed", 3: "skipped"}[found.last] == outcome
    assert (found.runs, found.flaky) == (1, int(flaky))


def test_names_that_do_not_read_are_an_error_when_first_asked_for() -> None:
    good = encode_run(RunSummary.of(run_of([TestCase("t")]), KEY, sha="s", run_id="1",
                                    finished_at=AT))
    names_at = len(good) - len(zlib.compress(orjson.dumps(["\x1f\x1ft"]), 6))
    mangled = good[:names_at] + zlib.compress(b'["a","b"]').ljust(len(good) - names_at, b"\0")

    summary = decode_run(mangled[: len(good)])

    assert len(summary) == 1  # the columns read; the names are inflated only when asked for
    with pytest.raises(HistoryError, match="names do not match its 1 executions"):
        _ = summary.names


_EXECUTION = st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "leg"]),
                       st.sampled_from(list(Status)), st.floats(0, 100, width=32),
                       st.booleans())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_EXECUTION, max_size=8), min_size=1, max_size=6))
def test_aggregates_agree_with_counting_each_test_by_hand(
        window: list[list[tuple[str, str, Status, float, bool]]]) -> None:
    runs = []
    for n, executions in enumerate(window):
        cases = [TestCase(name, status=status, duration=duration, origin=Origin(origin),
                          attempts=[Attempt(Status.FAILED)] if retried else [])
                 for name, origin, status, duration, retried in executions]
        runs.append(RunSummary.of(run_of(cases), KEY, sha="s", run_id=str(n),
                                  finished_at=AT))
    aggregates = Aggregates.of(runs[::-1])  # stores hand the window newest first

    expected: dict[tuple[str, str], list[tuple[str, float, bool]]] = {}
    for executions in window:
        per_test: dict[tuple[str, str], list[tuple[Status, float, bool]]] = {}
        for name, origin, status, duration, retried in executions:
            per_test.setdefault((name, origin), []).append(
                (status, float(array("f", [duration])[0]), retried))
        for test, runs_of_test in per_test.items():
            statuses = {status for status, _, _ in runs_of_test}
            outcome = ("failed" if statuses & {Status.FAILED, Status.ERROR} else
                       "passed" if Status.PASSED in statuses else "skipped")
            expected.setdefault(test, []).append((
                outcome, sum(duration for _, duration, _ in runs_of_test),
                any(retried and status is Status.PASSED for status, _, retried in runs_of_test),
            ))
    assert len(aggregates) == len(expected)
    for (name, origin), history in expected.items():
        found = aggregates.get(f"\x1f\x1f{name}", origin)
        decided = [outcome for outcome, _, _ in history if outcome != "skipped"]
        passed = sorted(duration for outcome, duration, _ in history if outcome == "passed")
        assert found is not None
        assert found.runs == len(history)
        assert found.failures == decided.count("failed")
        assert found.flips == sum(a != b for a, b in itertools.pairwise(decided))
        assert found.flaky == sum(flaky for _, _, flaky in history)
        assert {0: "passed", 1: "failed", 3: "skipped"}[found.last] == history[-1][0]
        if passed:
            assert found.median_duration == pytest.approx(statistics.median(passed), rel=1e-5)
        else:
            assert found.median_duration is None


def test_a_run_blob_with_an_unknown_status_code_is_refused() -> None:
    summary = RunSummary.of(run_of([TestCase("t")]), KEY, sha="s", run_id="1", finished_at=AT)
    summary.codes[0] = 7

    with pytest.raises(HistoryError, match="a status code that is none of Herald's"):
        decode_run(encode_run(summary))


@pytest.mark.parametrize("duration", [float("nan"), float("inf"), -1.0])
def test_a_duration_that_is_not_a_time_is_kept_as_zero(duration: float) -> None:
    run = run_of([TestCase("t", duration=duration)])

    summary = RunSummary.of(run, KEY, sha="s", run_id="1", finished_at=AT)

    assert [test.duration for test in summary.tests()] == [0.0]


def test_by_test_counts_each_tests_executions_keyed_as_a_live_case_is() -> None:
    cases = [TestCase("p", "C", "S", Status.PASSED, 1.0, origin=Origin("leg")),
             TestCase("p", "C", "S", Status.FAILED, 3.0, origin=Origin("leg")),
             TestCase("p", "C", "S", Status.SKIPPED, 0.0, origin=Origin("leg")),
             TestCase("q", "C", "S", Status.PASSED, 0.5)]
    summary = decode_run(encode_run(RunSummary.of(run_of(cases), KEY, sha="s", run_id="1",
                                                  finished_at=AT)))

    counted = summary.by_test()

    live = cases[0]
    assert counted[(live.origin.name, live.identity)] == (3, 1, 1, 3.0)  # type: ignore[union-attr]
    assert counted[("", cases[3].identity)] == (1, 0, 0, 0.5)
