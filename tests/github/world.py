"""Builders for GitHub test data: runs from the real webhook fixtures, JUnit with failures."""

from __future__ import annotations

from typing import Any

from bot.events import Comment, RunRef
from tests.fakes import zipped
from tests.fakes.github import FakeGitHub
from tests.github.conftest import REPO, payload

RUN = payload("workflow_run_completed.json")["workflow_run"]
SHA = RUN["head_sha"]
PR = 482


def junit(failures: int = 1, passes: int = 1, *, file: str = "tests/test_calc.py") -> bytes:
    cases = [f'<testcase classname="tests.test_calc" name="test_ok_{i}" time="0.01"/>'
             for i in range(passes)]
    cases += [
        f'<testcase classname="tests.test_calc" name="test_bad_{i}" file="{file}" '
        f'line="{10 + i}" time="0.02"><failure message="assert {i} == -1">'
        f"Traceback: line {10 + i}\nAssertionError</failure></testcase>"
        for i in range(failures)
    ]
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
        f'tests="{len(cases)}">{"".join(cases)}</testsuite></testsuites>'
    ).encode()



def workflow_run(**changes: Any) -> dict[str, Any]:
    return {**RUN, **changes}


def seed_run(fake: FakeGitHub, *, failures: int = 1, passes: int = 1, **changes: Any
             ) -> dict[str, Any]:
    """The fixture's run in the fake, with a `test-results` artifact, and its PR."""
    run = workflow_run(**changes)
    fake.add_run(REPO, run, artifacts={
        "test-results": zipped({"junit/results.xml": junit(failures, passes)}),
        "dist": b"not a report",
    })
    for pull in run.get("pull_requests") or []:
        if pull["number"] not in fake.repo(REPO).pulls:
            fake.add_pull(REPO, pull["number"], run["head_sha"])
    return run


def ref_for(fake: FakeGitHub, run: dict[str, Any]) -> RunRef:
    return RunRef(
        provider="github",
        repo=REPO,
        run_id=str(run["id"]),
        sha=run["head_sha"],
        branch=run.get("head_branch"),
        change=(run.get("pull_requests") or [{}])[0].get("number"),
        url=run["html_url"],
        status=run.get("conclusion"),
        extra={
            "installation_id": fake.installation_id,
            "run_attempt": run.get("run_attempt"),
            "run_number": run.get("run_number"),
            "workflow_name": run.get("name"),
            "event": run.get("event"),
        },
    )


def comment(fake: FakeGitHub, body: str = "/retest", author: str = "octo-dev",
            number: int = PR) -> Comment:
    return Comment(id="5551234", body=body, author=author, change=number,
                   extra={"installation_id": fake.installation_id})
