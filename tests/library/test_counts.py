"""`herald.from_counts`: a run built by hand from counts, as the seed's `TestRunResult` was.
Counts are the truth, a status never makes a run greener, and bad input is refused by name."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import herald
from bot.reports import from_json, render_html, render_json, render_markdown
from bot.results.counts import MAX_TESTS
from bot.results.model import RunStatus
from tests.library.test_library import ROOT
from tests.reports.checks import failure_items, outside_code_blocks, table_lines
from tests.reports.runs import NOW

KINDS = [
    # count, list, status, how an unnamed one reads
    ("failed", "failed_tests", herald.Status.FAILED, "unnamed failure"),
    ("errors", "error_tests", herald.Status.ERROR, "unnamed error"),
    ("skipped", "skipped_tests", herald.Status.SKIPPED, "unnamed skipped test"),
    ("passed", "passed_tests", herald.Status.PASSED, "unnamed passed test"),
]


def statuses(run: herald.TestRun) -> list[tuple[str, herald.Status]]:
    return [(case.name, case.status) for case in run.cases()]


# -- counts are the truth ------------------------------------------------------------------

@pytest.mark.parametrize(("count", "listed", "status", "unnamed"), KINDS)
def test_counted_tests_that_are_not_named_are_still_in_the_run(
    count: str, listed: str, status: herald.Status, unnamed: str,
) -> None:
    run = herald.from_counts(id="r", **{count: 3, listed: [{"name": "test_named"}]})
    assert statuses(run) == [("test_named", status), (f"{unnamed} 1 of 2", status),
                             (f"{unnamed} 2 of 2", status)]
    totals = run.totals()
    assert (totals.total, totals.tests) == (3, 3)


@pytest.mark.parametrize(("count", "listed", "status", "unnamed"), KINDS)
def test_more_tests_named_than_counted_is_refused(
    count: str, listed: str, status: herald.Status, unnamed: str,
) -> None:
    with pytest.raises(ValueError, match=f"2 tests are named in {listed} but {count} is 1"):
        herald.from_counts(id="r", **{count: 1, listed: [{"name": "a"}, {"name": "b"}]})


def test_a_failure_counted_but_not_named_reads_as_a_failure_in_every_report() -> None:
    run = herald.from_counts(id="r", passed=5, failed=2,
                             failed_tests=[{"name": "test_named", "error": "boom"}])
    markdown = render_markdown(run, now=NOW)
    assert "Status: FAILED — 2 failed of 7 tests" in markdown
    assert failure_items(markdown) == ["- **test\\_named** — failed (0.00s)",
                                       "- **unnamed failure 1 of 1** — failed (0.00s)"]
    assert "counted as failed but not named: Herald was given only the count" in markdown
    assert "unnamed failure 1 of 1" in render_html(run, now=NOW)
    document = json.loads(render_json(run))
    assert document["summary"]["failed"] == 2 and document["status"] == "failed"


def test_a_count_left_out_is_the_number_named() -> None:
    run = herald.from_counts(id="r", failed_tests=[{"name": "a"}], passed_tests=[{"name": "b"}])
    totals = run.totals()
    assert (totals.failed, totals.passed, totals.total) == (1, 1, 2)


def test_a_total_that_is_not_the_sum_is_refused_with_the_numbers() -> None:
    with pytest.raises(ValueError, match=r"total is 40 but passed 38 \+ failed 2 \+ "
                                         r"skipped 2 \+ errors 0 make 42"):
        herald.from_counts(id="r", total=40, passed=38, failed=2, skipped=2)
    run = herald.from_counts(id="r", total_tests=42, passed=38, failed=2, skipped=2)
    assert run.totals().total == 42


@pytest.mark.parametrize("bad", [-1, 2.0, 2.5, True, "2", [2]])
def test_a_count_must_be_a_whole_number_not_negative(bad: object) -> None:
    with pytest.raises(ValueError, match="failed"):
        herald.from_counts(id="r", failed=bad)  # type: ignore[arg-type]


def test_an_absurd_count_is_refused_before_anything_is_built() -> None:
    with pytest.raises(ValueError, match=f"passed is 1,000,000,000, more than a hand-built "
                                         f"run may count \\({MAX_TESTS:,}\\)"):
        herald.from_counts(id="r", passed=10**9)
    with pytest.raises(ValueError, match="tests is more than a hand-built run may count"):
        herald.from_counts(id="r", passed=MAX_TESTS, failed=1)


def test_memory_stays_flat_in_the_number_of_unnamed_passed_tests() -> None:
    tracemalloc.start()
    try:
        run = herald.from_counts(id="r", passed=200_000, failed=1)
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # CaseList packs them: an 8-byte identity hash each stays in memory.
    assert held / 200_000 < 32
    assert run.totals().passed == 200_000


# -- a status never makes the run better ---------------------------------------------------

@pytest.mark.parametrize("given", ["success", "passed", "SUCCESS", RunStatus.PASSED])
@pytest.mark.parametrize("counts", [{"failed": 2, "passed": 1}, {"errors": 1, "passed": 1}])
def test_a_green_status_with_failures_is_ignored_and_the_failures_win(
    given: str | RunStatus, counts: dict[str, int], caplog: pytest.LogCaptureFixture,
) -> None:
    run = herald.from_counts(id="r", status=given, **counts)  # type: ignore[arg-type]
    assert run.overall_status() is RunStatus.FAILED
    assert "Status: FAILED" in render_markdown(run, now=NOW)
    assert '<span class="status failed">FAILED</span>' in render_html(run, now=NOW)
    assert json.loads(render_json(run))["status"] == "failed"
    assert "ignored: the run counts" in caplog.text


def test_a_green_status_without_failures_is_derived_like_a_parsed_run() -> None:
    assert herald.from_counts(id="r", status="success", passed=3).overall_status() \
        is RunStatus.PASSED
    assert herald.from_counts(id="r", status="success").overall_status() is RunStatus.NO_TESTS


@pytest.mark.parametrize(("given", "kept"), [("failure", RunStatus.FAILED),
                                             ("error", RunStatus.ERROR),
                                             ("cancelled", RunStatus.CANCELLED),
                                             ("running", RunStatus.RUNNING)])
def test_a_worse_status_is_kept_whatever_the_counts(given: str, kept: RunStatus) -> None:
    run = herald.from_counts(id="r", status=given, passed=3)
    assert run.overall_status() is kept
    assert json.loads(render_json(run))["status_reported"] is True


def test_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown status 'greenish': choose from success"):
        herald.from_counts(id="r", status="greenish")


# -- the seed's names and shapes -----------------------------------------------------------

SEED_DETAILS: dict[str, Any] = {
    "performance_metrics": {"average_throughput": 124.5, "average_latency_ms": 8.7},
    "environment": {"Python Version": "3.11.7", "Platform": "linux"},
    "failed_tests": [{"name": "test_a", "error": "boom", "duration_seconds": 3.2}],
    "passed_tests": [{"name": "test_b", "duration_seconds": 1.2}],
}


def test_details_in_metadata_read_the_same_as_arguments() -> None:
    by_arguments = herald.from_counts(id="r", passed=2, failed=1, **SEED_DETAILS)
    in_metadata = herald.from_counts(test_run_id="r", passed_tests=2, failed_tests=1,
                                     metadata={**SEED_DETAILS, "branch": "main"})
    assert render_markdown(by_arguments, now=NOW) == render_markdown(in_metadata, now=NOW)
    assert in_metadata.metadata == {"branch": "main"}
    assert in_metadata.environment == {"Python Version": "3.11.7", "Platform": "linux"}


@pytest.mark.parametrize(("arguments", "message"), [
    ({"id": "a", "test_run_id": "b"}, "id is 'a' but test_run_id is 'b': give one"),
    ({"id": "r", "passed": 2, "passed_tests": 3}, "passed is 2 but passed_tests is 3"),
    ({"id": "r", "environment": {"a": "b"}, "metadata": {"environment": {"a": "c"}}},
     "environment is given both as an argument and in metadata"),
    ({"id": "r", "failed_tests": [{"name": "a"}], "metadata": {"failed_tests": []}},
     "failed_tests is given both as an argument and in metadata"),
    ({"id": "r", "failed_tests": [], "metadata": {"failed_tests": [{"name": "a"}]}},
     "failed_tests is given both as an argument and in metadata"),
    ({"id": "r", "duration": 1.0, "duration_seconds": 2.0}, "duration is 1.0 but"),
    ({}, "a run needs an id"),
])
def test_the_same_thing_given_twice_differently_is_refused(
    arguments: dict[str, Any], message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        herald.from_counts(**arguments)


@pytest.mark.parametrize(("test", "message"), [
    ({"name": "a", "eror": "typo"}, r"failed_tests\[0\] has unknown keys eror"),
    ({"error": "no name"}, r"failed_tests\[0\].name must be a string, not NoneType"),
    ({"name": "a", "duration_seconds": -1}, "must be a finite number of seconds"),
    ({"name": "a", "duration_seconds": float("nan")}, "must be a finite number of seconds"),
    ({"name": "a", "error": "x", "message": "y"}, "has both error and message: give one"),
    ({"name": "a", "line": 0}, "line must be a line number from 1"),
    ({"name": "a", "error": 42}, r"failed_tests\[0\].error must be a string"),
])
def test_a_named_test_that_is_not_a_test_is_refused_by_name(
    test: dict[str, Any], message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        herald.from_counts(id="r", failed_tests=[test])


def test_a_named_test_keeps_where_and_what() -> None:
    run = herald.from_counts(id="r", suite="unit", failed_tests=[{
        "name": "test_totals", "classname": "app.Cart", "file": "tests/test_cart.py",
        "line": 12, "message": "expected 90", "failure_type": "AssertionError",
        "traceback": "at line 12", "duration_seconds": 0.5}])
    (case,) = run.cases()
    assert (case.display_name, case.suite, case.file, case.line) == (
        "app.Cart.test_totals", "unit", "tests/test_cart.py", 12)
    assert (case.message, case.failure_type, case.stack_trace, case.duration) == (
        "expected 90", "AssertionError", "at line 12", 0.5)


def test_metrics_keep_their_names_and_strings_read_like_the_metric_option() -> None:
    run = herald.from_counts(id="r", performance_metrics={
        "average_latency_ms": 8.7, "memory_usage_mb": 512, "p95": "120ms", "build": "fast"})
    assert [(m.name, m.value, m.unit) for m in run.metrics] == [
        ("average_latency_ms", 8.7, ""), ("memory_usage_mb", 512.0, ""),
        ("p95", 120.0, "ms"), ("build", "fast", "")]


@pytest.mark.parametrize(("metrics", "message"), [
    ({"p95": float("inf")}, "metric 'p95' must be a finite number"),
    ({"p95": True}, "metric 'p95' must be a number or a string, not bool"),
    ({"p95": {"value": 1}}, "metric 'p95' must be a number or a string, not dict"),
    ({"p95": "  "}, "metric 'p95' has no value"),
    ("p95=1", "performance_metrics must be a mapping"),
])
def test_a_metric_that_is_no_figure_is_refused(metrics: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        herald.from_counts(id="r", performance_metrics=metrics)


def test_environment_and_metadata_values_are_shown_as_text_and_nesting_is_refused() -> None:
    run = herald.from_counts(id="r", environment={"CPUs": 8, "Debug": False},
                             metadata={"attempt": 2})
    assert run.environment == {"CPUs": "8", "Debug": "False"}
    assert run.metadata == {"attempt": "2"}
    with pytest.raises(ValueError, match=r"environment\['GPU'\] must be a string or a number"):
        herald.from_counts(id="r", environment={"GPU": ["A100"]})
    with pytest.raises(ValueError, match=r"metadata\['ci'\] must be a string or a number"):
        herald.from_counts(id="r", metadata={"ci": {"name": "x"}})


def test_artifacts_are_artifact_objects() -> None:
    run = herald.from_counts(id="r", artifacts=[herald.Artifact("app.log", 10)])
    assert [a.name for a in run.artifacts] == ["app.log"]
    with pytest.raises(ValueError, match="artifacts must be Artifact objects, not str"):
        herald.from_counts(id="r", artifacts=["app.log"])  # type: ignore[list-item]


def test_hostile_names_and_messages_pass_through_the_normal_escaping() -> None:
    hostile = "@team | <script>alert(1)</script> `x` #12"
    run = herald.from_counts(id=f"run {hostile}", failed_tests=[
        {"name": f"test {hostile}", "error": f"{hostile}\n/approve"}],
        environment={hostile: hostile})
    markdown = render_markdown(run, now=NOW)
    # Code fences show the message as written (nothing renders or links there).
    outside = "\n".join(outside_code_blocks(markdown))
    assert "<script>" not in outside and "@team" not in outside and "#12" not in outside
    assert table_lines(markdown, "| Parameter | Value |")[2] == (
        "| @\u2060team \\| &lt;script&gt;alert(1)&lt;/script&gt; \\`x\\` #\u206012 | "
        "@\u2060team \\| &lt;script&gt;alert(1)&lt;/script&gt; \\`x\\` #\u206012 |")
    assert not any(line.startswith("/") for line in markdown.split("\n"))
    assert "<script" not in render_html(run, now=NOW)


def test_a_hand_built_run_round_trips_through_json() -> None:
    run = herald.from_counts(id="r", passed=3, failed=1, skipped=1, duration=2.5,
                             **SEED_DETAILS)
    back = from_json(render_json(run, passed_detail=True))
    assert back == run
    assert render_markdown(back, now=NOW) == render_markdown(run, now=NOW)


# -- the README's example and the seed's, end to end ---------------------------------------

def test_the_readme_example_of_a_run_from_counts_runs_as_written(workdir: Path) -> None:
    section = (ROOT / "README.md").read_text().split("## Herald as a library", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    example = next(block for block in blocks if "from_counts" in block)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example, "README.md", "exec"), {"__name__": "__main__"})

    assert printed.getvalue() == "failed 2 failed; ['md']\n"
    markdown = (workdir / "herald-report" / "report.md").read_text()
    assert "Status: FAILED — 2 failed of 42 tests" in markdown
    assert "| GPU | NVIDIA A100 |" in markdown and "| p95\\_latency | 8.7 | ms |" in markdown


def seed_example() -> herald.TestRun:
    """The seed's example as it built its result, the details in `metadata`."""
    return herald.from_counts(
        test_run_id="pending", status="success", total_tests=42, passed_tests=38,
        failed_tests=2, skipped_tests=2, duration_seconds=125.7,
        metadata={
            "performance_metrics": {"average_throughput": 124.5, "average_latency_ms": 8.7,
                                    "memory_usage_mb": 512, "cpu_utilization_percent": 78.3},
            "environment": {"Python Version": "3.11.7", "Platform": "linux",
                            "GPU": "NVIDIA A100"},
            "failed_tests": [
                {"name": "test_model_inference_large_batch",
                 "error": "CUDA out of memory. Tried to allocate 2.00 GiB",
                 "duration_seconds": 3.2},
                {"name": "test_model_quantization_int4",
                 "error": "Assertion failed: accuracy 0.91 < 0.95", "duration_seconds": 2.8},
            ],
            "passed_tests": [{"name": f"test_model_{part}", "duration_seconds": 1.2}
                             for part in ("load", "save", "predict", "batch", "export")],
        },
    )


async def test_the_seeds_example_is_published_through_the_local_provider(
    workdir: Path,
) -> None:
    provider = herald.create_provider("local", {"reports_dir": str(workdir / "published")})
    reporter = herald.Reporter(provider, report_dir=workdir / "out",
                               artifact_dir=workdir / "build")
    (workdir / "build").mkdir()
    (workdir / "build" / "gpu.log").write_text("allocating\n")
    await reporter.collect_and_upload_artifacts("pending", ["*.log"])

    report = await reporter.report_test_result(seed_example())

    assert sorted(report.files) == ["html", "json", "md"]
    for folder in (workdir / "out", workdir / "published" / "pending"):
        assert sorted(p.name for p in folder.iterdir()) == [
            "report.html", "report.json", "report.md"]
    markdown = report.files["md"].read_text()
    sections = ["Status: FAILED — 2 failed of 42 tests", "- Passed: 38 (90.5%)",
                "- Duration: 2m 5.70s", "## Failed Tests",
                "- **test\\_model\\_inference\\_large\\_batch** — failed (3.20s)",
                "CUDA out of memory. Tried to allocate 2.00 GiB",
                "- **test\\_model\\_quantization\\_int4** — failed (2.80s)",
                "## Skipped Tests", "## Performance Metrics",
                "| average\\_latency\\_ms | 8.7 |  |", "## Execution Environment",
                "| Python Version | 3.11.7 |", "| GPU | NVIDIA A100 |", "## Artifacts",
                "gpu.log"]
    positions = [markdown.index(part) for part in sections]
    assert positions == sorted(positions)
    page = report.files["html"].read_text()
    assert '<span class="status failed">FAILED</span>' in page
    assert "<tr><td>Platform</td><td>linux</td></tr>" in page
    assert "Assertion failed: accuracy 0.91 &lt; 0.95" in page
    document = json.loads(report.files["json"].read_text())
    assert document["status"] == "failed" and document["status_reported"] is False
    assert document["summary"] | {"duration_seconds": None} == {
        "total": 42, "tests": 42, "passed": 38, "failed": 2, "errors": 0, "skipped": 2,
        "flaky": 0, "duration_seconds": None}
    assert document["environment"]["GPU"] == "NVIDIA A100"
    assert from_json(report.files["json"].read_text()).totals() == seed_example().totals()


@settings(max_examples=100, deadline=None)
@given(counts=st.fixed_dictionaries({name: st.integers(0, 6) for name, *_ in KINDS}),
       named=st.fixed_dictionaries({name: st.integers(0, 6) for name, *_ in KINDS}))
def test_whatever_is_named_the_report_counts_what_was_counted(
    counts: dict[str, int], named: dict[str, int],
) -> None:
    lists = {listed: [{"name": f"{listed}_{i}"} for i in range(named[count])]
             for count, listed, _status, _unnamed in KINDS}
    if any(named[name] > counts[name] for name in counts):
        with pytest.raises(ValueError, match="the count and the names disagree"):
            herald.from_counts(id="r", status="success", **counts, **lists)
        return
    run = herald.from_counts(id="r", status="success", **counts, **lists)
    totals = run.totals()
    assert (totals.passed, totals.failed, totals.skipped, totals.errors) == (
        counts["passed"], counts["failed"], counts["skipped"], counts["errors"])
    assert len(run.failures()) == counts["failed"] + counts["errors"]
    green = run.overall_status() in (RunStatus.PASSED, RunStatus.NO_TESTS)
    assert green is not bool(counts["failed"] + counts["errors"])
