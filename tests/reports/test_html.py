"""The HTML report: one self-contained page where nothing from the run becomes markup."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.reports import render_html
from bot.reports.templating import environment
from bot.results.model import Artifact, Metric, ParseError, Status, Suite, TestCase, TestRun
from tests.reports.runs import NOW, failing_run, rich_run, seed_run

SCRIPT = "<script>alert(1)</script>"


def hostile_run() -> TestRun:
    case = TestCase(
        name=f"test_{SCRIPT}",
        classname='pkg."quoted"',
        suite=f"suite {SCRIPT}",
        status=Status.FAILED,
        message=f"message {SCRIPT}",
        failure_type=f"Type{SCRIPT}",
        stack_trace=f"trace {SCRIPT}",
        stdout=f"out {SCRIPT}",
        stderr=f"err {SCRIPT}",
        file=f"file{SCRIPT}.py",
    )
    passed = TestCase(name=f"test_ok_{SCRIPT}", suite=f"s{SCRIPT}")
    return TestRun(
        id=f"run {SCRIPT}",
        suites=[Suite(name="s", cases=[case, passed])],
        metrics=[Metric(f"m{SCRIPT}", f"v{SCRIPT}", f"u{SCRIPT}")],
        artifacts=[Artifact(f"a{SCRIPT}", 10, "javascript:alert(1)"),
                   Artifact("ok", 10, 'https://ci.example.com/a?x=1&y="2"')],
        errors=[ParseError(f"bad{SCRIPT}.xml", f"reason {SCRIPT}")],
        url="javascript:alert(2)",
    )


def test_autoescape_is_forced_on_whatever_the_template_name() -> None:
    assert environment(html=True).autoescape is True


def test_nothing_from_the_run_becomes_markup() -> None:
    page = render_html(hostile_run(), now=NOW)
    assert "<script" not in page.lower()
    assert "javascript:" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 14
    assert 'href="https://ci.example.com/a?x=1&amp;y=&#34;2&#34;"' in page


def test_the_page_is_self_contained() -> None:
    page = render_html(rich_run(), now=NOW)
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    for external in ("<link", "src=", "@import", "url(", "<script"):
        assert external not in page
    assert re.findall(r'href="([^"]+)"', page) == [
        "https://ci.example.com/pipelines/1234",
        "https://ci.example.com/artifacts/junit.xml",
    ]


def test_layout_failures_first_then_the_rest() -> None:
    page = render_html(rich_run(), now=NOW)
    order = ["<h1>Test Report: pipeline-1234</h1>", 'class="bar"', "<h2>Summary</h2>",
             "<h2>Failed tests (3)</h2>", "<h2>Other tests (41)</h2>",
             "<h2>Performance metrics</h2>", "<h2>Artifacts</h2>", "<h2>Input errors</h2>",
             "<footer>Generated on 2026-11-25 10:00:00 UTC by Herald</footer>"]
    positions = [page.index(part) for part in order]
    assert positions == sorted(positions)
    assert '<span class="status failed">FAILED</span>' in page
    # Stack traces are open, output is collapsed, the other tests are collapsed.
    assert "<details open><summary>Stack trace</summary><pre>self = &lt;tests" in page
    assert "<details><summary>Standard output</summary><pre>connecting to db:5432" in page
    assert "<summary>Show the tests that passed or were skipped</summary>" in page
    assert "<li><strong>reports/bad.xml</strong>: not XML: mismatched tag, line 3</li>" in page


def test_the_bar_widths_are_the_shares() -> None:
    page = render_html(seed_run(), now=NOW)
    widths = re.findall(r'<span class="(\w+)" style="width: ([\d.]+)%"', page)
    assert widths == [("passed", "95.238"), ("failed", "4.762")]


def test_counts_and_percentages() -> None:
    page = render_html(seed_run(), now=NOW)
    assert "<dt>Passed</dt><dd class=\"passed\">40 <span class=\"share\">95.2%</span></dd>" in page
    assert "<dt>Duration</dt><dd>2m 5.70s</dd>" in page


@pytest.mark.parametrize("budget", [200_000, 50_000, 10_000, 5_000])
def test_budgets_shrink_the_page_and_keep_it_whole(budget: int) -> None:
    run = failing_run(2_000, name_size=300, trace_size=5_000)
    page = render_html(run, now=NOW, budget=budget, details_url="https://herald.example/r")
    assert len(page) <= budget
    assert page.rstrip().endswith("</html>")
    assert "<h2>Failed tests (2,000)</h2>" in page
    assert "full report" in page


def test_a_shortened_page_says_what_it_left_out() -> None:
    page = render_html(rich_run(), now=NOW, budget=9_000, details_url="https://herald.example/r")
    assert "<h2>Failed tests (3)</h2>" in page
    assert "<p class=\"muted\">The tests that passed or were skipped are not listed here: see " \
        "the <a href=\"https://herald.example/r\">full report</a>.</p>" in page
    full = render_html(rich_run(), now=NOW)
    assert "are not listed here" not in full and "are left out" not in full


def test_a_budget_below_the_bare_page_is_refused() -> None:
    with pytest.raises(ValueError, match="HTML report needs at least"):
        render_html(seed_run(), budget=1_000)


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("<>&\"'/ scriptSCRIPT=")) | st.characters(),
                    max_size=80))
def test_no_generated_text_opens_a_script(text: str) -> None:
    case = TestCase(name=text, classname=text, suite=text, status=Status.ERROR, message=text,
                    stack_trace=text, stdout=text)
    run = TestRun(id=text, suites=[Suite(text, [case, TestCase(name=text)])],
                  errors=[ParseError(text, text)], metrics=[Metric(text, text, text)])
    page = render_html(run, now=NOW)
    assert "<script" not in page.lower()
    assert page.count("<pre") == page.count("</pre>")
