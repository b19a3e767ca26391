"""providers.azure_devops.testresults: the documented payloads as Herald's model, with
what could hide a failure tested first."""

from __future__ import annotations

from typing import Any

import pytest

from bot.results.model import Status
from providers.azure_devops.testresults import MAX_RESULTS, to_test_run


def run(run_id: int, job: str | None = None, attempt: int = 1,
        name: str = "JUnit_TestResults_9") -> dict[str, Any]:
    data: dict[str, Any] = {"id": run_id, "name": name}
    if job is not None:
        data["pipelineReference"] = {
            "stageReference": {"stageName": "Test"}, "phaseReference": {"phaseName": job},
            "jobReference": {"jobName": job, "attempt": attempt}}
    return data


def result(name: str, outcome: str) -> dict[str, Any]:
    return {"testCaseTitle": name, "automatedTestName": f"suite.{name}", "outcome": outcome}


def test_classic_runs_with_one_title_never_stand_in_for_each_other() -> None:
    """Classic pipelines name no job: two runs titled alike are two sources."""
    out = to_test_run([run(1), run(2)], {1: [result("t", "Failed")], 2: [result("t", "Passed")]},
                      run_id="9")
    assert [c.status for c in out.cases()] == [Status.FAILED, Status.PASSED]


def test_runs_of_one_attempt_of_a_job_all_count() -> None:
    out = to_test_run([run(1, "unit"), run(2, "unit")],
                      {1: [result("t", "Failed")], 2: [result("t", "Passed")]}, run_id="9")
    assert out.totals().failed == 1


def test_a_later_attempt_makes_an_earlier_failure_a_retry() -> None:
    out = to_test_run([run(1, "unit", 1), run(2, "unit", 2)],
                      {1: [result("t", "Failed")], 2: [result("t", "Passed")]}, run_id="9")
    [case] = out.cases()
    assert (case.status, case.flaky) == (Status.PASSED, True)


def test_another_jobs_pass_never_covers_a_failure() -> None:
    out = to_test_run([run(1, "unit"), run(2, "integration")],
                      {1: [result("t", "Failed")], 2: [result("t", "Passed")]}, run_id="9")
    assert out.totals().failed == 1


@pytest.mark.parametrize(("outcome", "status"), [
    ("Passed", Status.PASSED), ("Failed", Status.FAILED), ("NotExecuted", Status.SKIPPED),
    ("NotImpacted", Status.SKIPPED), ("Timeout", Status.ERROR), ("Aborted", Status.ERROR),
    ("Blocked", Status.ERROR), ("Inconclusive", Status.ERROR), ("Warning", Status.ERROR),
    ("InProgress", Status.ERROR), ("SomethingNew", Status.ERROR), (None, Status.ERROR),
])
def test_only_a_pass_or_a_deliberate_skip_is_not_against_the_run(
    outcome: str | None, status: Status,
) -> None:
    out = to_test_run([run(1)], {1: [{"testCaseTitle": "t", "outcome": outcome}]}, run_id="9")
    [case] = out.cases()
    assert case.status is status


def test_a_run_with_more_results_than_read_says_so() -> None:
    results = [result(f"t{i}", "Passed") for i in range(MAX_RESULTS)]
    out = to_test_run([run(1)], {1: results}, run_id="9")
    [error] = out.errors
    assert "only the first" in error.reason
