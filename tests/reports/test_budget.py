"""Budgets: a report shrinks tier by tier and is never longer than where it is posted."""

from __future__ import annotations

import re

import pytest

from bot.reports import (
    GITHUB_CHECK_SUMMARY_LIMIT,
    GITHUB_COMMENT_LIMIT,
    GITLAB_NOTE_LIMIT,
    Tier,
    render_markdown,
)
from bot.reports.budget import LIST_CAP, Plan, clip_lines, fit
from bot.results.model import ParseError, Status, Suite, TestCase, TestRun
from tests.reports.checks import failure_items
from tests.reports.runs import NOW, failing_run, seed_run

URL = "https://herald.example/reports/1"
MARKER = "<!-- herald:report github:org/repo:run:123 -->"


def test_forge_limits() -> None:
    assert GITHUB_CHECK_SUMMARY_LIMIT == 65_535
    assert GITHUB_COMMENT_LIMIT == 65_536
    assert GITLAB_NOTE_LIMIT == 1_000_000


@pytest.fixture(scope="module")
def huge_run() -> TestRun:
    """10,000 failures, each named with 10 kB of hostile text and a 2 kB stack trace."""
    return failing_run(10_000, name_size=10_000, trace_size=2_000)


@pytest.mark.parametrize(
    "budget", [GITHUB_COMMENT_LIMIT, GITHUB_CHECK_SUMMARY_LIMIT, 20_000, 5_000, 1_000, 500, 300]
)
def test_huge_run_fits_every_budget_without_breaking_markdown(
    huge_run: TestRun, budget: int
) -> None:
    report = render_markdown(huge_run, budget=budget, details_url=URL, now=NOW, marker=MARKER)
    assert len(report) <= budget
    assert report.startswith(MARKER + "\n# Test Report: big-run\n")
    lines = report.split("\n")
    assert not any(line.startswith("/") for line in lines)
    assert report.count("```") % 2 == 0  # every fence closed
    items = failure_items(report)
    if items:
        assert all(item.startswith("- **suite.Class.test\\_") for item in items)
        assert f"… and {10_000 - len(items):,} more failures: see the [full report]({URL})" \
            in lines


def test_budget_none_and_a_roomy_budget_give_the_full_report() -> None:
    full = render_markdown(seed_run(), now=NOW)
    assert render_markdown(seed_run(), now=NOW, budget=GITLAB_NOTE_LIMIT) == full
    assert full.count("<details><summary>Stack trace</summary>") == 1


def test_tier1_keeps_as_many_detail_blocks_as_fit() -> None:
    run = failing_run(5, trace_size=3_000)
    full = render_markdown(run, now=NOW, details_url=URL)
    budget = len(full) - 4_000  # room for every row, but not every stack trace
    report = render_markdown(run, now=NOW, details_url=URL, budget=budget)
    assert len(report) <= budget
    items = failure_items(report)
    assert len(items) == 5
    # The first failures keep their message and trace, the rest their message's first line.
    blocks = report.count("<details><summary>Stack trace</summary>")
    assert 1 <= blocks < 5
    assert all(item.endswith("AssertionError (0.01s)") for item in items[:blocks])
    assert all(" — AssertionError: failure " in item for item in items[blocks:])
    assert f"Details of {5 - blocks} more failures: see the [full report]({URL})." in report


def test_tier2_drops_the_details_but_keeps_every_row() -> None:
    # 100 items take ~25,000 characters; one detail block (a trace cut at 8,000) won't fit.
    run = failing_run(100, name_size=150, trace_size=60_000)
    report = render_markdown(run, now=NOW, details_url=URL, budget=28_000)
    items = failure_items(report)
    assert len(items) == 100
    assert all(" — AssertionError: failure " in item for item in items)
    assert "<details>" not in report and "more failures" not in report
    assert f"Details of 100 failures: see the [full report]({URL})." in report


def test_tier3_shows_the_first_failures_in_order_and_counts_the_rest() -> None:
    run = failing_run(1_000)
    report = render_markdown(run, now=NOW, details_url=URL, budget=20_000)
    items = failure_items(report)
    assert 10 < len(items) < 1_000
    for index, item in enumerate(items):
        assert item.startswith(f"- **suite.Class.test\\_{index}\\_** — ")
    assert f"… and {1_000 - len(items):,} more failures: see the [full report]({URL})" in report
    assert "Status: FAILED — 1,000 failed of 1,000 tests" in report


def test_tier3_caps_the_secondary_lists() -> None:
    run = failing_run(300)
    run.errors = [ParseError(f"reports/{i}.xml", "not XML") for i in range(500)]
    report = render_markdown(run, now=NOW, details_url=URL, budget=10_000)
    unread = report.split("\n")[4]
    assert unread.startswith("500 files could not be read: reports/0.xml (not XML), ")
    assert unread.count("(not XML)") == LIST_CAP
    assert unread.endswith(f", and {500 - LIST_CAP} more: see the [full report]({URL}).")


def test_tier4_keeps_the_counts_and_links_the_full_report() -> None:
    run = failing_run(10, name_size=150)
    run.errors = [ParseError("reports/bad.xml", "empty")]
    report = render_markdown(run, now=NOW, details_url=URL, budget=450)
    assert failure_items(report) == []
    assert report.split("\n")[2:5] == [
        "Status: FAILED — 10 failed of 10 tests", "",
        f"1 file could not be read: see the [full report]({URL}).",
    ]
    assert f"10 failed tests are not listed here: see the [full report]({URL})." in report
    assert report.endswith("Generated on 2026-11-25 10:00:00 UTC by Herald\n")


def test_without_a_link_the_report_says_what_it_left_out() -> None:
    report = render_markdown(failing_run(1_000), now=NOW, budget=20_000)
    assert re.search(r"\n… and [\d,]+ more failures\n", report)


def test_below_the_counts_whole_lines_are_dropped() -> None:
    report = render_markdown(failing_run(10), now=NOW, details_url=URL, budget=120)
    assert len(report) <= 120
    assert report.startswith("# Test Report: big-run\n")
    assert report.endswith("\n")
    assert render_markdown(seed_run(), budget=0) == ""


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        render_markdown(failing_run(3, trace_size=100), budget=-1)


def test_fit_walks_the_tiers_in_order() -> None:
    """Each plan's size as a formula, to see which one fit picks for each budget."""
    def render(plan: Plan) -> str:
        size = 100 + 10 * plan.rows + 50 * plan.details + (5 if plan.others else 0)
        size += 0 if plan.lists is not None else 20
        return "x" * size

    def tier_for(budget: int) -> tuple[Tier, int, int]:
        _, plan = fit(render, 4, budget)
        return plan.tier, plan.rows, plan.details

    assert tier_for(365) == (Tier.FULL, 4, 4)
    assert tier_for(360) == (Tier.FULL, 4, 4)  # without the other tests' listing
    assert tier_for(310) == (Tier.FULL, 4, 3)
    assert tier_for(200) == (Tier.TABLE, 4, 0)
    assert tier_for(139) == (Tier.CAPPED, 3, 0)
    assert tier_for(105) == (Tier.COUNTS, 0, 0)


@pytest.mark.parametrize(
    ("text", "budget", "clipped"),
    [
        ("one\ntwo\nthree\n", 14, "one\ntwo\nthree\n"),
        ("one\ntwo\nthree\n", 13, "one\ntwo\n"),
        ("one\ntwo\n\n\nthree\n", 11, "one\ntwo\n"),
        ("one\ntwo\n", 3, ""),
    ],
)
def test_clip_lines_keeps_whole_lines(text: str, budget: int, clipped: str) -> None:
    assert clip_lines(text, budget) == clipped


def test_error_status_items_say_error() -> None:
    run = TestRun(id="r", suites=[Suite("s", [
        TestCase(name="test_setup", status=Status.ERROR),
        TestCase(name="test_assert", status=Status.FAILED),
    ])])
    report = render_markdown(run, now=NOW)
    assert "- **test\\_setup** — error (no message) (0.00s)" in report
    assert "- **test\\_assert** — failed (no message) (0.00s)" in report
