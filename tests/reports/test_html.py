"""The HTML report: one self-contained page where nothing from the run becomes markup."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.reports import render_html
from bot.reports.html import OPEN_FAILURES
from bot.reports.templating import environment
from bot.results.model import (
    Artifact,
    Attempt,
    Metric,
    Origin,
    ParseError,
    Status,
    Suite,
    TestCase,
    TestRun,
)
from tests.reports.runs import NOW, failing_run, matrix_run, rich_run, seed_run

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
        environment={f"p{SCRIPT}": f"v{SCRIPT}"},
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
    order = ["<h1>Test Report: pipeline-1234</h1>",
             "<strong>2 failed, 1 error of 44 tests</strong>",
             "<p>1 file could not be read:</p>",
             "<li><strong>reports/bad.xml</strong>: not XML: mismatched tag, line 3</li>",
             'class="bar"', "<h2>Summary</h2>", "<h2>Failed tests (3)</h2>",
             "<h2>Flaky tests (1)</h2>", "<h2>Skipped tests (1)</h2>",
             "<h2>Passed tests (40)</h2>", "<h2>Performance metrics</h2>", "<h2>Artifacts</h2>",
             "<footer>Generated on 2026-11-25 10:00:00 UTC by Herald</footer>"]
    positions = [page.index(part) for part in order]
    assert positions == sorted(positions)
    assert '<span class="status failed">FAILED</span>' in page
    # Stack traces are open, output is collapsed, the other tests are collapsed.
    assert "<details open><summary>Stack trace</summary><pre>self = &lt;tests" in page
    assert "<details><summary>Standard output</summary><pre>connecting to db:5432" in page
    assert "<summary>Show the skipped tests</summary>" in page
    assert "<summary>Show the tests that passed</summary>" in page
    # Zero counts are left out; the failures go by file, else suite, as disclosures.
    assert "<dt>Skipped</dt>" in page and "<dt>Executions</dt>" not in page
    assert '<details class="place" open>\n<summary>tests/test_checkout.py (1)</summary>' in page
    assert '<details class="place" open>\n<summary>Suite unit (2)</summary>' in page
    assert 'class="job"' not in page  # one origin (none): no job level


def test_the_matrix_example_groups_by_job_and_tells_executions_apart() -> None:
    page = render_html(matrix_run(), now=NOW)
    jobs = re.findall(r'<details class="job" open>\n<summary>(.*)</summary>', page)
    assert jobs == [
        '<strong>test (3.11)</strong>: 2 failed · '
        '<a href="https://github.com/o/r/actions/runs/7/job/11">job log</a>',
        '<strong>test (3.12)</strong>: 1 error · '
        '<a href="https://github.com/o/r/actions/runs/7/job/12">job log</a>',
    ]
    assert re.findall(r"<h4>(.*)</h4>", page) == [
        'tests.test_io.test_parse <span class="execution">(execution 1 of 3)</span>',
        'tests.test_io.test_parse <span class="execution">(execution 3 of 3)</span>',
        "tests.test_db.test_connect",
    ]
    assert "<dt>Executions</dt><dd>11 <span class=\"share\">of 8 tests</span></dd>" in page
    assert "<p>1 file could not be read:</p>" in page
    # The message once: not again as the Python trace's last line.
    assert page.count("[Errno 111] Connection refused") == 1
    assert "passed after 1 failed attempt:<pre class=\"message\">TimeoutError: read timed " \
        "out</pre>" in page


def test_failures_past_the_first_ten_are_collapsed() -> None:
    page = render_html(failing_run(12, trace_size=20), now=NOW)
    assert page.count('<article class="failure failed">') == OPEN_FAILURES == 10
    collapsed = re.findall(r'<details class="failure failed">\n<summary>(.*)</summary>', page)
    assert collapsed == [
        f'<strong>suite.Class.test_{i}_</strong> <span class="meta">failed · 0.01s · '
        f'AssertionError</span>'
        f" — failure {i}" for i in (10, 11)
    ]
    assert page.count("<details") == page.count("</details>")


def test_hostile_origins_are_escaped_and_linked_only_over_http() -> None:
    cases = [TestCase(name="a", status=Status.FAILED, origin=Origin(SCRIPT, "javascript:x")),
             TestCase(name="b", status=Status.FAILED, origin=Origin("ok", "https://ci/j?a=1&b"))]
    page = render_html(TestRun(id="r", suites=[Suite("s", cases)]), now=NOW)
    assert "<script" not in page and "javascript:" not in page
    assert "<strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>: 1 failed</summary>" in page
    assert '<a href="https://ci/j?a=1&amp;b">job log</a>' in page


def test_the_bar_widths_are_the_shares() -> None:
    page = render_html(seed_run(), now=NOW)
    widths = re.findall(r'<span class="(\w+)" style="width: ([\d.]+)%"', page)
    assert widths == [("passed", "95.238"), ("failed", "4.762")]


def test_counts_and_percentages() -> None:
    page = render_html(seed_run(), now=NOW)
    assert "<dt>Passed</dt><dd class=\"passed\">40 <span class=\"share\">95.2%</span></dd>" in page
    assert "<dt>Duration</dt><dd>2m 5.70s</dd>" in page
    for zero in ("Errors", "Skipped", "Flaky"):
        assert f"<dt>{zero}</dt>" not in page


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
    for which in ("skipped tests", "tests that passed"):
        assert f"<p class=\"muted\">The {which} are not listed here: see " \
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
    origins = [Origin(text, text), Origin(text + "2", "https://ci.example.com/" + text)]
    cases = [TestCase(name=text, classname=text, suite=text, status=Status.ERROR, message=text,
                      stack_trace=text, stdout=text, file=text, origin=origin)
             for origin in origins for _ in range(6)]
    others = [TestCase(name=text, attempts=[Attempt(Status.FAILED, message=text)]),
              TestCase(name=text, status=Status.SKIPPED, message=text)]
    run = TestRun(id=text, suites=[Suite(text, [*cases, *others])],
                  errors=[ParseError(text, text)], metrics=[Metric(text, text, text)],
                  environment={text: text})
    page = render_html(run, now=NOW)
    assert "<script" not in page.lower()
    assert page.count("<pre") == page.count("</pre>")
    assert page.count("<details") == page.count("</details>")
    assert all(href.startswith("https://") for href in re.findall(r'href="([^"]*)"', page))
