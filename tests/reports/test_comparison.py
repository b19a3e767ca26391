"""The comparison with the base branch in the three reports: it leads, names stay inert,
lists are capped while counts stay whole."""

from __future__ import annotations

import html
import json

from bot.compare import LISTED, Baseline, BaseTest, KeyedHistory, TestHistory, compare
from bot.reports import render_html, render_markdown
from bot.reports.json import from_json, render_json
from bot.results.model import Origin, Status, Suite, TestCase, TestRun
from tests.reports.checks import live_references, outside_code_blocks
from tests.reports.runs import NOW

LEG = Origin("test (3.12)")
HOSTILE = "@everyone fixes #123 <script>"


def _case(name: str, status: Status = Status.PASSED) -> TestCase:
    return TestCase(name=name, classname="shop.Cart", suite="unit", status=status, origin=LEG)


def _key(name: str) -> tuple[str, str]:
    return (LEG.name, f"unit\x1fshop.Cart\x1f{name}")


def compared_run() -> TestRun:
    """One new failure (a hostile name), one failing on main already and flaky there, one
    fixed, one removed."""
    run = TestRun(id="9100", suites=[Suite("unit", [
        _case(HOSTILE, Status.FAILED), _case("adds", Status.FAILED), _case("removes"),
    ])])
    base = Baseline(
        branch="main", run_id="9000", sha="1a2b3c4d5e6f7a8b9c0d", url="https://ci.example/9000",
        tests={_key(HOSTILE): BaseTest(1), _key("adds"): BaseTest(1, failures=1),
               _key("removes"): BaseTest(1, failures=1), _key("checks_out"): BaseTest(1)},
        history=KeyedHistory({_key("adds"): TestHistory(runs=20, failed_runs=4)}),
        window_days=14)
    run.comparison = compare(run, base)
    return run


def test_the_markdown_report_leads_with_what_is_new_before_the_failures() -> None:
    report = render_markdown(compared_run(), now=NOW)

    section = report.index("## Compared with main")
    assert section < report.index("## Failed Tests")
    assert ("Against [run 9000 at 1a2b3c4d5e6f](https://ci.example/9000): 1 new failure, "
            "1 failing on main already, 1 fixed, 1 removed test.") in report
    assert ("**1 of 2 failures is known flaky (failed 4 times on main in 14 days): "
            "`/retest` reruns it. 1 is new: look at it. 1 failed on main already.**") in report
    assert "- Removed tests (1): shop.Cart.checks\\_out (test (3.12))" in report


def test_names_in_the_comparison_stay_inert_on_every_forge() -> None:
    report = render_markdown(compared_run(), now=NOW)
    section = report[report.index("## Compared with main"):report.index("## Failed Tests")]
    names = [line for line in outside_code_blocks(section) if line.startswith("- ")]

    assert names and live_references(html.unescape("\n".join(names))) == []
    assert "<script>" not in section


def test_the_html_report_shows_the_comparison_escaped() -> None:
    page = render_html(compared_run(), now=NOW)

    assert "<h2>Compared with main</h2>" in page
    assert page.index("Compared with main") < page.index("<h2>Summary</h2>")
    assert "&lt;script&gt;" in page and "<script>" not in page.split("</style>", 1)[1]
    assert '<a href="https://ci.example/9000">run 9000 at 1a2b3c4d5e6f</a>' in page


def test_the_json_report_carries_the_comparison_and_still_reads_back() -> None:
    run = compared_run()
    text = render_json(run)
    document = json.loads(text)

    assert document["comparison"]["new_failures"] == {
        "count": 1, "names": [f"shop.Cart.{HOSTILE} (test (3.12))"]}
    assert document["comparison"]["base"]["run_id"] == "9000"
    assert document["comparison"]["known_flaky"]["count"] == 1
    assert from_json(text).totals() == run.totals()


def test_a_run_without_a_base_has_no_comparison_section() -> None:
    run = TestRun(id="1", suites=[Suite("unit", [_case("adds", Status.FAILED)])])
    run.comparison = compare(run, None)

    assert "Compared with" not in render_markdown(run, now=NOW)
    assert "comparison" not in json.loads(render_json(run))


def test_a_tight_budget_caps_the_names_and_keeps_the_counts() -> None:
    many = [_case(f"t{i}", Status.FAILED) for i in range(LISTED + 10)]
    run = TestRun(id="2", suites=[Suite("unit", many)])
    run.comparison = compare(run, Baseline(branch="main", run_id="1", tests={}))

    report = render_markdown(run, now=NOW, budget=4000)

    assert len(report) <= 4000
    assert f"{LISTED + 10} new failures" in report
