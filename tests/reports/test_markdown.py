"""The Markdown report's layout, read as a reviewer reads it on GitHub or GitLab."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.reports import render_markdown
from bot.reports.markdown import ZERO_WIDTH_JOINER
from bot.results.model import ParseError, Status, Suite, TestCase, TestRun
from tests.reports.checks import outside_code_blocks, table_lines, unescaped_pipes
from tests.reports.runs import NOW, rich_run, seed_run

FAILED_HEADER = "| Test | Error | Duration |"


def test_seed_layout() -> None:
    report = render_markdown(seed_run(), now=NOW)
    lines = report.split("\n")
    assert lines[0] == "# Test Report: pipeline-1234"
    assert "Status: FAILED (2 failed, 40 passed in 2m 6s)" in lines
    for expected in [
        "## Summary",
        "- Total: 42",
        "- Passed: 40 (95.2%)",
        "- Failed: 2 (4.8%)",
        "- Errors: 0 (0.0%)",
        "- Skipped: 0 (0.0%)",
        "- Flaky: 0 (0.0%)",
        "- Duration: 2m 5.70s",
        "## Failed Tests",
        FAILED_HEADER,
        "| --- | --- | ---: |",
        "| tests.test\\_checkout.TestCheckout.test\\_total\\_includes\\_tax"
        " | AssertionError: assert 100 == 107 | 1.25s |",
        "| tests.test\\_checkout.TestCheckout.test\\_refund"
        " | AssertionError: Expected status 200, got 500 | 0.75s |",
    ]:
        assert expected in lines
    assert lines[-2] == "Generated on 2026-11-25 10:00:00 UTC by Herald"
    assert lines[-1] == ""
    # Sections that have nothing to show are left out, not shown empty.
    for absent in ("## Performance Metrics", "## Artifacts", "## Input errors"):
        assert absent not in report


def test_sections_in_order_with_every_part_present() -> None:
    report = render_markdown(rich_run(), now=NOW, details_url="https://herald.example/r/1")
    order = ["# Test Report", "## Summary", "## Performance Metrics", "## Failed Tests",
             "### Failure details", "## Artifacts", "## Input errors", "Generated on"]
    positions = [report.index(heading) for heading in order]
    assert positions == sorted(positions)
    lines = report.split("\n")
    pipeline = "https://ci.example.com/pipelines/1234"
    assert f"CI run: [{pipeline}]({pipeline})" in lines
    assert "| p95 latency | 12.5 | ms |" in lines
    assert "| throughput | 1,234 | req/s |" in lines
    assert "- [junit.xml](https://ci.example.com/artifacts/junit.xml) (120.6 KB)" in lines
    assert "- coverage.html (unknown size)" in lines
    assert "- reports/bad.xml: not XML: mismatched tag, line 3" in lines
    assert "- Flaky: 1 (2.3%)" in lines
    assert (
        "| tests.test\\_db.test\\_database"
        " | ConnectionRefusedError: \\[Errno 111\\] Connection refused | 0.10s |"
    ) in lines


def test_failure_details_hold_the_stack_trace_in_a_fence() -> None:
    report = render_markdown(seed_run(), now=NOW)
    details = report[report.index("### Failure details"):]
    assert details.count("<details>") == 2 == details.count("</details>")
    assert (
        "<summary>tests.test_checkout.TestCheckout.test_total_includes_tax (failed)</summary>"
        in details
    )
    assert "Location: tests/test\\_checkout.py:42" in details
    assert "```\n assert 100 == 107\n +  where 100 = total(cart)\n```" not in details
    assert "```\nassert 100 == 107\n +  where 100 = total(cart)\n```" in details
    # The trace's path line starts with `/`: indented, so GitLab sees no quick action.
    assert "\n /builds/shop/tests/test_checkout.py:42: AssertionError\n```" in details


def test_marker_goes_first_and_heading_level_shifts_every_heading() -> None:
    marker = "<!-- herald:report github:org/repo:run:123 -->"
    report = render_markdown(rich_run(), now=NOW, marker=marker, heading_level=2)
    lines = report.split("\n")
    assert lines[0] == marker
    assert lines[1] == "## Test Report: pipeline-1234"
    assert "### Summary" in lines and "#### Failure details" in lines
    assert "## Summary" not in lines


@pytest.mark.parametrize(
    "marker",
    ["herald:report", "<!-- a --> b -->", "<!-- two\nlines -->", "<!-- a <!-- b -->",
     "<!--> -->", "<!-- a --!> -->"],
)
def test_a_marker_must_be_one_html_comment(marker: str) -> None:
    with pytest.raises(ValueError, match="marker"):
        render_markdown(seed_run(), marker=marker)


def test_a_marker_may_hold_double_dashes() -> None:
    marker = "<!-- herald:report github:my--org/repo:run:1 -->"
    assert render_markdown(seed_run(), marker=marker).startswith(marker + "\n")


def test_heading_level_is_bounded() -> None:
    with pytest.raises(ValueError, match="heading_level"):
        render_markdown(seed_run(), heading_level=5)


def test_run_id_is_escaped_and_capped_in_the_title() -> None:
    run = seed_run()
    run.id = "<img src=x> `main` " + "b" * 500
    title = render_markdown(run, now=NOW).split("\n")[0]
    assert title.startswith("# Test Report: &lt;img src=x&gt; \\`main\\` bbb")
    assert title.endswith("…")
    assert len(title) < 150


def test_every_unusable_input_is_listed_by_name() -> None:
    run = TestRun(id="r", errors=[ParseError(f"reports/shard-{i}.xml", "empty file")
                                  for i in range(3)])
    report = render_markdown(run, now=NOW)
    assert "Status: ERROR (No tests found)" in report
    for i in range(3):
        assert f"- reports/shard-{i}.xml: empty file" in report


def test_a_passing_run_has_no_failures_section() -> None:
    run = TestRun(id="green", suites=[Suite("s", [TestCase(name="test_ok", duration=2.0)])])
    report = render_markdown(run, now=NOW)
    assert "Status: PASSED (1 test passed in 2.0s)" in report
    assert "Failed Tests" not in report


hostile_text = st.text(
    alphabet=st.sampled_from(list("|`\\<>&*_[]@/#-+=!~$\n\r\t ab1.")) | st.characters(),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@example(names=["a|b", "```", "</details>\n/approve"], message="<details>\n```\n@all",
         run_id="/merge", source="@here|x")
@given(names=st.lists(hostile_text, min_size=1, max_size=5), message=hostile_text,
       run_id=hostile_text, source=hostile_text)
def test_no_test_name_breaks_the_report(
    names: list[str], message: str, run_id: str, source: str
) -> None:
    cases = [
        TestCase(name=name, suite=message, status=Status.FAILED, message=message,
                 failure_type=message, stack_trace=message, file=source)
        for name in names
    ]
    run = TestRun(id=run_id, suites=[Suite("s", cases)], errors=[ParseError(source, message)])
    report = render_markdown(run, now=NOW)
    table = table_lines(report, FAILED_HEADER)
    assert len(table) == 2 + len(names)
    assert all(unescaped_pipes(line) == 4 for line in table)
    assert not any(line.startswith("/") for line in report.split("\n"))
    for line in outside_code_blocks(report):
        assert "<script" not in line.lower()
        at = line.find("@")
        while at >= 0:
            assert line[at + 1] == ZERO_WIDTH_JOINER, line
            at = line.find("@", at + 1)
    markup = "\n".join(outside_code_blocks(report))
    assert markup.count("<details>") == len(names) == markup.count("</details>")
