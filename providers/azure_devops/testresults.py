"""The test runs Azure Pipelines holds for a build, and their results, as Herald's model.

`GET {project}/_apis/test/runs?buildUri=vstfs:///Build/Build/{id}&includeRunDetails=true`
lists the runs the build's test tasks published (one per PublishTestResults or VSTest
task, per job), each with `pipelineReference` (stage, phase, job, and the job's `attempt`)
when it came from a YAML pipeline; `GET {project}/_apis/test/Runs/{runId}/results` pages
their results (`$top` at most 1,000, `$skip`), each with `outcome`, `testCaseTitle`,
`automatedTestName`, `automatedTestStorage`, `durationInMs`, `errorMessage`, `stackTrace`
(https://learn.microsoft.com/rest/api/azure/devops/test/runs/list,
/test/results/list).

What must not hide a failure:

- every result is its own case: data-driven tests and several jobs write one name many
  times (`TestCase` never folds);
- every outcome that is not a pass or a deliberate skip counts against the run: `Error`,
  `Timeout`, `Aborted`, `Blocked`, `Inconclusive`, `Warning`, one never finished
  (`InProgress`, `Paused`) and any new word Azure may add are errors;
- runs of one job are told apart from other jobs' by their `pipelineReference`, never by
  their title (tasks name every run alike, `JUnit_TestResults_<build>`); an earlier
  attempt of a job (a retried stage) counts as that job's retries, so a test that failed
  and passed on the retry reads as flaky, not failed; runs of the same attempt all count;
- a run with more results than Herald reads says so, as an input that could not be read.

Pure: no I/O, so it is tested with the documented payloads alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from bot.results.compact import CaseList
from bot.results.model import (
    Origin,
    ParseError,
    Status,
    Suite,
    TestCase,
    TestRun,
    first_line,
    present_text,
    seconds_of,
    truncate,
)

#: Results read per request (the API's maximum without details) and per run at most.
PAGE: Final = 1000
MAX_RESULTS: Final = 100_000
OUTCOMES: Final[dict[str, Status]] = {
    "passed": Status.PASSED,
    "failed": Status.FAILED,
    "notexecuted": Status.SKIPPED,
    "notapplicable": Status.SKIPPED,
    "notimpacted": Status.SKIPPED,
    "none": Status.SKIPPED,
}


def _job(run: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, int, str]:
    """(the job's key, its attempt, its label) from a run's `pipelineReference`; key None
    when the run names no job (a classic pipeline's, or one published by hand)."""
    reference = run.get("pipelineReference")
    if not isinstance(reference, dict):
        return None, 1, str(run.get("name") or f"test run {run.get('id')}")
    parts = []
    for level, name_key in (("stageReference", "stageName"), ("phaseReference", "phaseName"),
                            ("jobReference", "jobName")):
        part = reference.get(level)
        parts.append(str(part.get(name_key) or "") if isinstance(part, dict) else "")
    job = reference.get("jobReference")
    attempt = job.get("attempt") if isinstance(job, dict) else None
    if not parts[2]:
        return None, 1, str(run.get("name") or f"test run {run.get('id')}")
    label = " / ".join(p for p in (parts[0], parts[2]) if p and p != "__default")
    return tuple(parts), attempt if isinstance(attempt, int) else 1, label or parts[2]


def case_from(result: Mapping[str, Any], suite: str, origin: Origin, source: str) -> TestCase:
    outcome = str(result.get("outcome") or "").lower()
    status = OUTCOMES.get(outcome, Status.ERROR)
    title = present_text(result.get("testCaseTitle"))
    automated = present_text(result.get("automatedTestName"))
    name = title or automated or f"result {result.get('id')}"
    classname = ""
    if automated and title and automated.endswith(f".{title}"):
        classname = automated[: -len(title) - 1]
    elif automated and automated != name:
        classname = automated
    message = present_text(result.get("errorMessage"))
    if status is Status.ERROR and outcome not in ("error",):
        message = f"outcome {result.get('outcome') or 'unknown'}" + (
            f": {message}" if message else "")
    return TestCase(
        name=name,
        classname=classname,
        suite=suite,
        status=status,
        duration=seconds_of(result.get("durationInMs")) / 1000,
        file=present_text(result.get("automatedTestStorage")),
        message=first_line(message) if status.is_failure else None,
        stack_trace=truncate(present_text(result.get("stackTrace")) or message)
        if status.is_failure else None,
        source=source,
        origin=origin,
    )


def _one(run: Mapping[str, Any], results: Sequence[Mapping[str, Any]], label: str,
         url: str | None) -> TestRun:
    run_id = run.get("id")
    name = str(run.get("name") or f"test run {run_id}")
    source = f"Azure test run {run_id} ({name})"
    origin = Origin(label, url=url)
    suite = Suite(name=f"{label} / {name}" if label != name else name,
                  cases=CaseList(case_from(r, name, origin, source) for r in results),
                  source=source)
    out = TestRun(id=str(run_id), suites=[suite])
    if len(results) >= MAX_RESULTS:
        out.errors.append(ParseError(source=source, reason=(
            f"only the first {len(results):,} of its results were read")))
    return out


def to_test_run(
    runs: Sequence[Mapping[str, Any]],
    results: Mapping[int, Sequence[Mapping[str, Any]]],
    *,
    run_id: str,
    build_url: str | None = None,
    job_urls: Mapping[str, str] | None = None,
) -> TestRun:
    """The build's runs as one `TestRun`: each job's latest attempt, with its earlier
    attempts' failures as retries (see the module docstring). `job_urls` (a job's name →
    its log) links each job's cases to the log that wrote them; else the build."""
    jobs: dict[tuple[str, ...] | int, dict[int, list[TestRun]]] = {}
    for run in sorted(runs, key=lambda r: int(r.get("id") or 0)):
        identifier = run.get("id")
        if not isinstance(identifier, int):
            continue
        key, attempt, label = _job(run)
        job = key[2] if key is not None else ""
        url = (job_urls or {}).get(job) or build_url
        one = _one(run, results.get(identifier, ()), label, url)
        jobs.setdefault(key if key is not None else identifier, {}).setdefault(
            attempt, []).append(one)
    merged = TestRun(id=run_id, url=build_url)
    for attempts in jobs.values():
        latest: TestRun | None = None
        for attempt in sorted(attempts):
            this = TestRun(id=run_id).merge(attempts[attempt])
            if latest is not None:
                this.absorb_retry(latest)
            latest = this
        if latest is not None:
            merged.merge([latest])
    return merged
