"""providers.gitlab.notes and .testreport: the pure parts, table-driven."""

from __future__ import annotations

import pytest

from bot.events import RunRef
from bot.ports import ReportOrigin
from bot.results.model import Origin, ParseError, Status, Suite, TestCase, TestRun
from providers.gitlab import notes
from providers.gitlab.client import commit_state
from providers.gitlab.testreport import to_test_run

ZWSP, ZWJ = notes.ZERO_WIDTH_SPACE, notes.ZERO_WIDTH_JOINER


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("/approve", f"{ZWSP}/approve"),
        ("/merge", f"{ZWSP}/merge"),
        ("  /unassign @me", f"  {ZWSP}/unassign @{ZWJ}me"),
        ("ok\n/close\nok", f"ok\n{ZWSP}/close\nok"),
        ("ok\r/close", f"ok\n{ZWSP}/close"),  # a lone CR is a line break somewhere
        ("ok\u2028/close", f"ok\n{ZWSP}/close"),
        ("path a/b/c", "path a/b/c"),
        ("@all", f"@{ZWJ}all"),
        ("cc @group/sub now", f"cc @{ZWJ}group/sub now"),
        ("mail me@example.com", f"mail me@{ZWJ}example.com"),
        ("a lone @ sign", "a lone @ sign"),
        ("[job](https://gitlab.example.com/@scope/pkg)", "[job](https://gitlab.example.com/@scope/pkg)"),
        ("<!-- herald:report:gitlab -->", "<!-- herald:report:gitlab -->"),
    ],
)
def test_neutralise_defuses_quick_actions_and_mentions(text: str, safe: str) -> None:
    assert notes.neutralise(text) == safe


@pytest.mark.parametrize("text", ["/approve\n@all", f"{ZWSP}/merge @{ZWJ}x", "plain"])
def test_neutralise_is_idempotent(text: str) -> None:
    once = notes.neutralise(text)
    assert notes.neutralise(once) == once


def test_only_the_allowed_author_is_mentioned() -> None:
    text = "@Mkovac asked; @mkovac2 and @all did not"
    assert notes.neutralise(text, allow=["mkovac"]) == (
        f"@Mkovac asked; @{ZWJ}mkovac2 and @{ZWJ}all did not")


def test_the_pipeline_marker_round_trips() -> None:
    body = f"{notes.REPORT_MARKER}\n{notes.pipeline_marker(1093377)}\n# Report"
    assert notes.is_report(body)
    assert notes.reported_pipeline(body) == 1093377
    assert notes.reported_pipeline("no marker") is None


def test_fit_shrinks_the_budget_by_what_neutralising_added() -> None:
    budgets: list[int] = []

    def render(budget: int) -> str:
        budgets.append(budget)
        return "\n".join(["/x"] * (budget // 3))  # every line grows by one when defused

    text = notes.fit(render, limit=3000)
    assert len(text) <= 3000
    assert budgets[0] == 3000 and budgets[1] < 3000


def test_fit_drops_whole_lines_when_the_renderer_ignores_its_budget() -> None:
    text = notes.fit(lambda budget: "line\n" * 1000, limit=500)
    assert len(text) <= 500
    assert text.endswith(notes.TRUNCATED)
    assert "lin\n" not in text


# ---- the test report ------------------------------------------------------------------------

REPORT = {
    "total_time": 7.5, "total_count": 5, "success_count": 1, "failed_count": 1,
    "skipped_count": 1, "error_count": 1,
    "test_suites": [
        {
            "name": "rspec", "total_time": 7.5, "total_count": 5, "success_count": 1,
            "failed_count": 1, "skipped_count": 1, "error_count": 1, "suite_error": None,
            "test_cases": [
                {"status": "success", "name": "logs in", "classname": "LoginSpec",
                 "execution_time": 1.25, "system_output": "debug line", "stack_trace": None},
                {"status": "failed", "name": "logs out", "classname": "LoginSpec",
                 "file": "spec/login_spec.rb", "execution_time": 2,
                 "system_output": "\n  expected true\n  got false", "stack_trace": None},
                {"status": "error", "name": "boots", "classname": "AppSpec",
                 "execution_time": None, "system_output": None,
                 "stack_trace": "NoMethodError\n  app.rb:3"},
                {"status": "skipped", "name": "slow", "classname": "AppSpec",
                 "execution_time": "0", "system_output": None, "stack_trace": None},
                {"status": "unknown-word", "name": "odd", "classname": "AppSpec"},
            ],
        },
        {"name": "karma", "total_time": 0, "test_cases": [],
         "suite_error": "JUnit XML file exceeds the size limit"},
    ],
}


@pytest.mark.parametrize(
    ("name", "status", "duration", "message", "trace", "stdout"),
    [
        ("logs in", Status.PASSED, 1.25, None, None, "debug line"),
        ("logs out", Status.FAILED, 2.0, "expected true", "\n  expected true\n  got false", None),
        ("boots", Status.ERROR, 0.0, None, "NoMethodError\n  app.rb:3", None),
        ("slow", Status.SKIPPED, 0.0, None, None, None),
        ("odd", Status.ERROR, 0.0, None, None, None),  # a status GitLab never sends
    ],
)
def test_test_cases_map_to_the_model(name: str, status: Status, duration: float,
                                     message: str | None, trace: str | None,
                                     stdout: str | None) -> None:
    run = to_test_run(REPORT, run_id="1")
    case = next(c for c in run.cases() if c.name == name)
    assert (case.status, case.duration, case.message, case.stack_trace, case.stdout) == (
        status, duration, message, trace, stdout)


def test_a_child_label_prefixes_suites_and_suite_errors_are_kept() -> None:
    run = to_test_run(REPORT, run_id="2", label="e2e", source="pipeline 2")
    assert [s.name for s in run.suites] == ["e2e / rspec", "e2e / karma"]
    assert {c.suite for c in run.cases()} == {"e2e / rspec"}
    assert [(e.source, e.reason) for e in run.errors] == [
        ("pipeline 2: e2e / karma", "JUnit XML file exceeds the size limit")]
    assert run.suites[0].cases[1].file == "spec/login_spec.rb"


def test_each_suite_s_cases_come_from_the_job_that_wrote_them() -> None:
    url = "https://gitlab.example/g/p/-/jobs/7"
    run = to_test_run(REPORT, run_id="2", label="e2e", job_urls={"rspec": url})
    assert {c.origin for c in run.cases()} == {Origin("e2e / rspec", url=url)}


@pytest.mark.parametrize("report", [{}, {"test_suites": None}, {"test_suites": ["x", 1]}])
def test_an_empty_or_odd_report_has_no_cases(report: dict[str, object]) -> None:
    assert list(to_test_run(report, run_id="3").cases()) == []


@pytest.mark.parametrize(
    ("status", "errors", "state"),
    [
        (Status.PASSED, [], "success"),
        (Status.FAILED, [], "failed"),
        # GitLab has no neutral state; an unread report may have held the failure.
        (Status.PASSED, [ParseError("junit/b.xml", "truncated")], "failed"),
    ],
)
def test_the_commit_status_is_never_success_when_an_input_could_not_be_read(
    status: Status, errors: list[ParseError], state: str
) -> None:
    run = TestRun("1", suites=[Suite("s", cases=[TestCase("t", status=status)])], errors=errors)
    origin = ReportOrigin(run=RunRef(provider="gitlab", repo="g/p", run_id="1",
                                     status="success"))
    assert commit_state(run, origin) == state
