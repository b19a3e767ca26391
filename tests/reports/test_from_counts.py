"""A run built by hand from counts (`herald.from_counts`) in Herald's three reports: the
same layout as a parsed run, and the JSON report reads back to the same run."""

from __future__ import annotations

import json

from bot.reports import from_json, render_html, render_json, render_markdown
from bot.results.counts import from_counts
from bot.results.model import Artifact, TestRun
from tests.reports.checks import failure_items
from tests.reports.runs import NOW


def seed_like() -> TestRun:
    return from_counts(
        id="nightly-7", status="success", passed=38, failed=3, skipped=2, duration=125.7,
        failed_tests=[
            {"name": "test_large_batch", "classname": "tests.test_model",
             "file": "tests/test_model.py", "line": 40, "error": "CUDA out of memory",
             "duration_seconds": 3.2},
            {"name": "test_int4", "classname": "tests.test_model",
             "file": "tests/test_model.py", "error": "Assertion failed: 0.91 < 0.95"},
        ],
        passed_tests=[{"name": "test_load", "duration_seconds": 1.2}],
        performance_metrics={"average_latency_ms": 8.7, "p95": "12ms"},
        environment={"Python Version": "3.11.7", "GPU": "NVIDIA A100"},
        artifacts=[Artifact("gpu.log", 2048, "https://ci.example.com/a/gpu.log")],
    )


def test_markdown_lists_named_and_unnamed_failures_then_metrics_environment_artifacts() -> None:
    report = render_markdown(seed_like(), now=NOW)
    assert report.startswith("# Test Report: nightly-7\n\nStatus: FAILED — 3 failed of 43 tests")
    assert failure_items(report) == [
        "- **tests.test\\_model.test\\_large\\_batch** — failed (tests/test\\_model.py:40 · 3.20s)",
        "- **tests.test\\_model.test\\_int4** — failed (0.00s)",
        "- **unnamed failure 1 of 1** — failed (0.00s)",
    ]
    order = ["### tests/test\\_model.py (2)", "### Suite nightly-7 (1)", "## Skipped Tests",
             "| p95 | 12 | ms |", "## Execution Environment", "| GPU | NVIDIA A100 |",
             "## Artifacts", "- [gpu.log](https://ci.example.com/a/gpu.log) (2.0 KB)"]
    positions = [report.index(part) for part in order]
    assert positions == sorted(positions)


def test_html_shows_the_same_run() -> None:
    page = render_html(seed_like(), now=NOW)
    assert '<span class="status failed">FAILED</span>' in page
    for part in ("<h2>Failed tests (3)</h2>", "Assertion failed: 0.91 &lt; 0.95",
                 "unnamed failure 1 of 1", "<h2>Performance metrics</h2>",
                 "<h2>Execution environment</h2>", "<tr><td>GPU</td><td>NVIDIA A100</td></tr>",
                 "<h2>Artifacts</h2>"):
        assert part in page, part


def test_json_says_the_counts_and_reads_back_to_the_same_run() -> None:
    run = seed_like()
    document = json.loads(render_json(run))
    assert document["status"] == "failed" and document["status_reported"] is False
    assert (document["summary"]["total"], document["summary"]["failed"]) == (43, 3)
    assert document["environment"] == {"Python Version": "3.11.7", "GPU": "NVIDIA A100"}
    assert from_json(render_json(run, passed_detail=True)) == run
    back = from_json(render_json(run))
    assert render_markdown(back, now=NOW) == render_markdown(run, now=NOW)
    assert render_html(back, now=NOW) == render_html(run, now=NOW)
