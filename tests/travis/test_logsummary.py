"""Reading a job log's test summary: what pytest and go test print, and nothing more."""

from __future__ import annotations

import pytest

from bot.results.model import Origin, Status
from providers.travis.logsummary import MAX_LINE_BYTES, LogSummary, clean, summarise
from tests.travis.world import FAILING_LOG, PASSING_LOG

ORIGIN = Origin("job 1042.1 (python: 3.11) — log", url="https://app.travis-ci.com/x/jobs/1")


def read(log: bytes, formats: str = "pytest", chunk: int = 7):
    pieces = [log[i:i + chunk] for i in range(0, len(log), chunk)]
    return summarise(pieces, frozenset(formats.split(",")), ORIGIN, "job 1042.1")


def statuses(run) -> list[tuple[str, str]]:
    return [(c.name, c.status.value) for c in run.cases()]


def test_pytest_short_summary_names_each_test_and_the_final_line_agrees() -> None:
    run = read(FAILING_LOG)
    assert statuses(run) == [
        ("test_single_upload", "passed"), ("test_retry_upload", "passed"),
        ("test_orders[fifo]", "passed"), ("test_batches_offline", "failed"),
        ("test_ping_@maintainers_closes_#123", "failed"),
    ]
    [queue] = [c for c in run.cases() if c.classname == "TestQueue"]
    assert queue.suite == queue.file == "tests/test_upload.py"
    [first, _] = run.failures()
    assert first.message == "AssertionError: expected 3 batches, got 2"
    assert all(c.origin == ORIGIN for c in run.cases())
    assert run.metrics == []  # every passed test is named


def test_failures_the_final_line_counts_but_no_line_names_are_kept_as_unnamed_failures() -> None:
    """`-r` without `f`: the count must not shrink to the named ones."""
    log = b"tests/test_a.py ..FF\n==== 2 failed, 2 passed in 0.2s ====\n"
    run = read(log)
    assert [c.status for c in run.cases()] == [Status.FAILED, Status.FAILED]
    assert run.failures()[0].name == "failed 1 of 2 not named in the log"
    # Passed tests are never invented: their count is a metric, named as such.
    [metric] = run.metrics
    assert (metric.value, metric.name) == (2, f"{ORIGIN.name}: passed, not named in the log")


def test_several_pytest_sessions_in_one_log_add_up() -> None:
    log = (b"FAILED t.py::a - x\n=== 1 failed, 1 passed in 1s ===\n"
           b"=== 1 error, 3 passed in 1s ===\n")
    run = read(log)
    assert sorted(c.status.value for c in run.cases()) == ["error", "failed"]
    assert run.metrics[0].value == 4


def test_a_quiet_pytest_final_line_without_rules_is_read() -> None:
    run = read(b"FAILED t.py::a\n1 failed, 9 passed, 2 skipped in 0.51s\n")
    assert [c.name for c in run.failures()] == ["a"]
    assert [m.value for m in run.metrics] == [9, 2]


def test_a_log_without_a_summary_yields_nothing_rather_than_a_guess() -> None:
    run = read(b"$ make lint\nsrc/a.py:1:1: F401 'os' imported but unused\n"
               b"The command \"make lint\" exited with 2.\n")
    assert list(run.cases()) == [] and run.metrics == []


def test_go_test_lines_name_failures_passes_subtests_and_broken_packages() -> None:
    log = (b"=== RUN   TestUpload\n--- FAIL: TestUpload (0.02s)\n"
           b"    upload_test.go:41: got 2 batches, want 3\n"
           b"    --- PASS: TestUpload/single (0.00s)\n"
           b"--- SKIP: TestSlow (0.00s)\n"
           b"FAIL\tgithub.com/orbit-labs/telemetry/upload\t0.031s\n"
           b"FAIL\tgithub.com/orbit-labs/telemetry/queue [build failed]\n")
    run = read(log, "go")
    assert statuses(run) == [
        ("TestUpload", "failed"), ("TestUpload/single", "passed"), ("TestSlow", "skipped"),
        ("github.com/orbit-labs/telemetry/queue", "error"),
    ]
    assert run.failures()[0].message == "upload_test.go:41: got 2 batches, want 3"


def test_a_runner_not_configured_is_not_read() -> None:
    assert list(read(b"--- FAIL: TestX (0.01s)\n", "pytest").cases()) == []
    assert list(read(PASSING_LOG, "go").cases()) == []


def test_an_overlong_line_is_not_read_as_a_summary() -> None:
    log = b"x" * (MAX_LINE_BYTES + 10) + b"FAILED t.py::a - y\n=== 1 failed in 1s ===\n"
    run = read(log, chunk=4096)
    # Only the final line is whole: its one failure stays counted, unnamed.
    assert [c.name for c in run.failures()] == ["failed 1 of 1 not named in the log"]


@pytest.mark.parametrize(("raw", "text"), [
    (b"\x1b[31mFAILED\x1b[0m t.py::a", "FAILED t.py::a"),
    (b"travis_time:end:0a1b:start=1,finish=2\r\x1b[0KPASSED t.py::b", "PASSED t.py::b"),
    (b"collecting 10%\rcollecting 100%\r\n", "collecting 100%"),
])
def test_colours_markers_and_progress_lines_are_cleaned(raw: bytes, text: str) -> None:
    assert clean(raw.decode()) == text


def test_an_unknown_runner_is_refused() -> None:
    with pytest.raises(ValueError, match="no log summary for tap"):
        LogSummary(frozenset({"tap"}), ORIGIN, "job")
