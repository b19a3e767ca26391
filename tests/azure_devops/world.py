"""One small Azure DevOps world the client and end-to-end tests share, shaped after the
service hook fixtures in tests/fixtures/webhooks/azure-devops (organization contoso,
project Payments, repository payments-api, pull request 1187, build 90817).

    build 90817 (failed), definition 64 payments-api-ci, for pull request 1187
      stage Test (failed)
        job unit tests         failed   test run 301 "JUnit_TestResults_90817"
        job integration tests  passed   test run 302 "JUnit_TestResults_90817" (same title)
      artifacts: drop (a binary), test-results (the JUnit file the test task published)

Test run 301 holds hostile names (`@everyone`, `#123`, an image, HTML, a leading `/`), a
parameterised test written twice under one name (one execution fails), a timeout and a
skipped test; run 302 passes a test of the same name as one that fails in run 301.
"""

from __future__ import annotations

from typing import Any

from bot.events import RunRef
from tests.fakes.azure_devops import FakeAzureDevOps, zipped

ORG = "contoso"
PROJECT_ID = "7f3e2d1c-0b9a-4876-a5b4-c3d2e1f0a9b8"
PROJECT = "Payments"
REPO_ID = "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"
REPO = "payments-api"
PULL = 1187
BUILD = 90817
OLD_BUILD = 90790
DEFINITION = (64, "payments-api-ci")
MERGE_SHA = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
SOURCE_SHA = "0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a69788796"
THREAD = 8841
PRIYA = "3c2b1a09-8f7e-4d6c-b5a4-f3e2d1c0b9a8"
GUEST = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a"
CONTRIBUTORS = "Microsoft.TeamFoundation.Identity;S-1-9-1551374245-1204400969-contributors"
READERS = "Microsoft.TeamFoundation.Identity;S-1-9-1551374245-1204400969-readers"
HOSTILE = ("@everyone", "@<6F9619FF-8B86-D011-B42D-00C04FC964FF>", "fixes #123", "![pixel](https://evil.example/p.png)",
           "<img src=x onerror=alert(1)>", "/retest")
JUNIT = (b'<testsuite name="unit" tests="1" failures="1"><testcase name="test_refunds">'
         b'<failure message="refund not recorded"/></testcase></testsuite>')


def result(name: str, outcome: str, **more: Any) -> dict[str, Any]:
    return {"testCaseTitle": name, "automatedTestName": f"payments.Gateway.{name}",
            "automatedTestStorage": "tests/test_gateway.py", "outcome": outcome, **more}


UNIT_RESULTS = [
    result("test_charges_card", "Passed"),
    result("test_refunds", "Failed", errorMessage="refund not recorded",
           stackTrace="AssertionError: refund not recorded\n  at test_gateway.py:42"),
    *(result(name, "Failed", errorMessage=f"{name} broke") for name in HOSTILE),
    result("test_amount[10]", "Passed"),
    result("test_amount[10]", "Failed", errorMessage="amount 10 rounded"),
    result("test_slow_gateway", "Timeout"),
    result("test_currency", "NotExecuted"),
]
INTEGRATION_RESULTS = [result("test_refunds", "Passed"), result("test_settles", "Passed")]


def build_world(fake: FakeAzureDevOps) -> None:
    fake.add_project(PROJECT_ID, PROJECT)
    fake.add_build(PROJECT_ID, BUILD, definition=DEFINITION, sha=MERGE_SHA,
                   branch=f"refs/pull/{PULL}/merge", pull=PULL, repository=(REPO_ID, REPO))
    stage = fake.add_record(BUILD, "Stage", "Test", result="failed", identifier="Test")
    fake.add_record(BUILD, "Job", "unit tests", result="failed", parent=stage["id"])
    fake.add_record(BUILD, "Job", "integration tests", result="succeeded", parent=stage["id"])
    fake.add_test_run(BUILD, 301, f"JUnit_TestResults_{BUILD}", UNIT_RESULTS,
                      job=("Test", "unit", "unit tests"))
    fake.add_test_run(BUILD, 302, f"JUnit_TestResults_{BUILD}", INTEGRATION_RESULTS,
                      job=("Test", "integration", "integration tests"))
    fake.add_artifact(BUILD, "drop", zipped({"bin/app": b"\x7fELF" + b"\0" * 500}))
    fake.add_artifact(BUILD, "test-results", zipped({"junit.xml": JUNIT}))
    # An older build of the same definition for an earlier merge commit.
    fake.add_build(PROJECT_ID, OLD_BUILD, definition=DEFINITION, sha="0" * 40,
                   branch=f"refs/pull/{PULL}/merge", pull=PULL, repository=(REPO_ID, REPO))
    fake.add_pull(PULL, project_id=PROJECT_ID, repository=(REPO_ID, REPO),
                  merge_sha=MERGE_SHA, source_sha=SOURCE_SHA)
    fake.add_identity(PRIYA, "Microsoft.IdentityModel.Claims.ClaimsIdentity;contoso.com\\priya",
                      [CONTRIBUTORS])
    fake.add_identity(GUEST, "Microsoft.IdentityModel.Claims.ClaimsIdentity;contoso.com\\guest",
                      [READERS])
    fake.aces[CONTRIBUTORS] = {"allow": 1 | 128, "deny": 0}  # view and queue builds
    fake.aces[READERS] = {"allow": 1, "deny": 0}  # view builds only


def build_ref(**changes: Any) -> RunRef:
    """The run the `build.complete` fixture becomes (see providers.azure_devops.webhook)."""
    values: dict[str, Any] = {
        "provider": "azure-devops", "repo": f"{ORG}/{PROJECT}", "run_id": str(BUILD),
        "sha": MERGE_SHA, "branch": f"refs/pull/{PULL}/merge", "change": PULL,
        "url": f"https://dev.azure.com/{ORG}/{PROJECT_ID}/_build/results?buildId={BUILD}",
        "status": "failed",
        "extra": {"organization": ORG, "project": PROJECT, "project_id": PROJECT_ID,
                  "definition_id": DEFINITION[0], "definition_name": DEFINITION[1],
                  "build_number": "20261125.3", "reason": "pullRequest",
                  "repository_id": REPO_ID, "repository_type": "TfsGit",
                  "repository_name": REPO},
    }
    values.update(changes)
    return RunRef(**values)
