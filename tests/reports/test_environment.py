"""The Execution Environment section: where the tests ran, as a Parameter | Value table
after the metrics, in the Markdown and HTML reports, bounded and escaped like any list."""

from __future__ import annotations

import pytest

from bot.reports import render_html, render_markdown
from bot.reports.budget import ENVIRONMENT_ROWS, LIST_CAP
from bot.reports.html import ENVIRONMENT_VALUE_LIMIT
from bot.results.model import Artifact, Metric, TestRun
from tests.reports.checks import unescaped_pipes
from tests.reports.runs import NOW, failing_run, seed_run

URL = "https://ci.example.com/full"
SEED_ENVIRONMENT = {"Python Version": "3.11.7", "Platform": "linux", "GPU": "NVIDIA A100"}


def with_environment(run: TestRun, environment: dict[str, str]) -> TestRun:
    run.environment = environment
    run.metrics = [Metric("p95", 120.0, "ms")]
    run.artifacts = [Artifact("app.log", 10, "https://ci.example.com/a/1")]
    return run


def test_the_markdown_table_follows_the_metrics_and_precedes_the_artifacts() -> None:
    report = render_markdown(with_environment(seed_run(), SEED_ENVIRONMENT), now=NOW)
    section = report.index("## Execution Environment")
    assert report.index("## Performance Metrics") < section < report.index("## Artifacts")
    assert report[section:].split("\n\n")[1].split("\n") == [
        "| Parameter | Value |",
        "| --- | --- |",
        "| Python Version | 3.11.7 |",
        "| Platform | linux |",
        "| GPU | NVIDIA A100 |",
    ]


def test_the_html_table_follows_the_metrics_and_precedes_the_artifacts() -> None:
    page = render_html(with_environment(seed_run(), SEED_ENVIRONMENT), now=NOW)
    section = page.index("<h2>Execution environment</h2>")
    assert page.index("<h2>Performance metrics</h2>") < section < page.index("<h2>Artifacts</h2>")
    assert "<thead><tr><th>Parameter</th><th>Value</th></tr></thead>" in page
    assert "<tr><td>GPU</td><td>NVIDIA A100</td></tr>" in page


def test_a_run_without_an_environment_has_no_section() -> None:
    assert "Environment" not in render_markdown(seed_run(), now=NOW)
    assert "environment" not in render_html(seed_run(), now=NOW).lower()


def test_metadata_is_for_machines_and_stays_out_of_the_readable_reports() -> None:
    run = seed_run()
    run.metadata = {"commit": "deadbeef-in-metadata"}
    assert "deadbeef-in-metadata" not in render_markdown(run, now=NOW)
    assert "deadbeef-in-metadata" not in render_html(run, now=NOW)


def test_a_hostile_name_or_value_stays_in_its_cell() -> None:
    run = with_environment(seed_run(), {"a | b\nc": "`x` | @team <b>", "#1": "/approve"})
    report = render_markdown(run, now=NOW)
    rows = [line for line in report.split("\n") if line.startswith("| ")]
    table = rows[rows.index("| Parameter | Value |"):]
    assert all(unescaped_pipes(row) == 3 for row in table)
    assert "| a \\| b c | \\`x\\` \\| @\u2060team &lt;b&gt; |" in table
    page = render_html(run, now=NOW)
    assert "<td>`x` | @team &lt;b&gt;</td>" in page


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_at_most_the_row_cap_is_shown_and_the_rest_are_counted(render: object) -> None:
    environment = {f"VAR_{i}": str(i) for i in range(ENVIRONMENT_ROWS + 7)}
    text = render(with_environment(seed_run(), environment), now=NOW)  # type: ignore[operator]
    assert f"VAR_{ENVIRONMENT_ROWS - 1}" in text.replace("\\_", "_")
    assert f"VAR_{ENVIRONMENT_ROWS}" not in text.replace("\\_", "_")
    assert "… and 7 more" in text


def test_a_long_value_is_cut_in_html_and_markdown() -> None:
    run = with_environment(seed_run(), {"PATH": "x" * 50_000})
    assert "x" * (ENVIRONMENT_VALUE_LIMIT + 1) not in render_html(run, now=NOW)
    assert "x" * 201 not in render_markdown(run, now=NOW)


def test_tier3_caps_the_table_like_the_other_secondary_lists() -> None:
    run = with_environment(failing_run(300), {f"VAR_{i}": str(i) for i in range(40)})
    report = render_markdown(run, now=NOW, details_url=URL, budget=10_000)
    assert "more failures: see the" in report  # the budget did cut to tier 3
    rows = [line for line in report.split("\n") if line.startswith("| VAR")]
    assert len(rows) == LIST_CAP
    assert f"… and {40 - LIST_CAP} more: see the [full report]({URL})" in report


def test_the_counts_only_tier_leaves_it_out() -> None:
    run = with_environment(failing_run(10, name_size=150), SEED_ENVIRONMENT)
    report = render_markdown(run, now=NOW, details_url=URL, budget=450)
    assert "Environment" not in report and "NVIDIA" not in report
