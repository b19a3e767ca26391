"""One small GitLab world the client and end-to-end tests share, shaped after the webhook
fixtures in tests/fixtures/webhooks/gitlab (project platform/herald, merge request !57).

A failed merge request pipeline with five jobs and a child pipeline:

    pipeline 1093377 (failed)
      unit-tests          failed   JUnit report (GitLab parses it) + archive
      integration-tests   failed   archive with a JUnit file only (Herald parses it)
      lint                success  no artifacts
      build               success  archive with a binary
      docs                success  archive, expired
      e2e (trigger) ──▶ child pipeline 1093378 (failed)
                          e2e-chrome  failed  JUnit report + archive

Test names include `/approve`, `/merge`, `@all` and `@group/sub`: a report quoting them
must neither run a quick action nor notify anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.events import RunRef
from tests.fakes import zipped
from tests.fakes.gitlab import DEVELOPER, GUEST, FakeGitLab

PROJECT = 48213
PATH = "platform/herald"
SHA = "e3b4f1a2c5d6e7f8091a2b3c4d5e6f708192a3b4"
OLD_SHA = "0badc0de" * 5
BRANCH = "flaky-report"
MR = 57
ROOT = 1093377
CHILD = 1093378
OLD_PIPELINE = 1093001
DEVELOPER_ID, DEVELOPER_NAME = 4127, "mkovac"
GUEST_ID, GUEST_NAME = 5001, "visitor"
SNEAKY_NAMES = ("/approve", "/merge", "@all", "@group/sub")

INTEGRATION_JUNIT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<testsuite name="integration" tests="2" failures="1">'
    b'<testcase classname="payments.Gateway" name="test_charges_card" time="1.5"/>'
    b'<testcase classname="payments.Gateway" name="test_refunds" time="0.7">'
    b'<failure message="refund not recorded">AssertionError: refund not recorded</failure>'
    b"</testcase></testsuite>"
)



@dataclass
class Jobs:
    unit: dict[str, Any]
    integration: dict[str, Any]
    lint: dict[str, Any]
    build: dict[str, Any]
    docs: dict[str, Any]
    e2e: dict[str, Any]


def build_world(fake: FakeGitLab) -> Jobs:
    fake.add_project(PROJECT, PATH)
    fake.add_pipeline(PROJECT, ROOT, sha=SHA, ref=BRANCH, status="failed",
                      source="merge_request_event", name="MR pipeline")
    child = fake.add_pipeline(PROJECT, CHILD, sha=SHA, ref=BRANCH, status="failed",
                              source="parent_pipeline")
    jobs = Jobs(
        unit=fake.add_job(ROOT, "unit-tests", status="failed", junit=True,
                          artifact=zipped({"junit.xml": b"<testsuite/>"})),
        integration=fake.add_job(ROOT, "integration-tests", status="failed",
                                 artifact=zipped({"reports/integration.xml": INTEGRATION_JUNIT})),
        lint=fake.add_job(ROOT, "lint", status="success", stage="lint"),
        build=fake.add_job(ROOT, "build", status="success", stage="build",
                           artifact=zipped({"bin/app": b"\x7fELF" + b"\0" * 2000})),
        docs=fake.add_job(ROOT, "docs", status="success", stage="build",
                          artifact=zipped({"index.html": b"<html/>"}), expired=True),
        e2e=fake.add_job(CHILD, "e2e-chrome", status="failed", junit=True,
                         artifact=zipped({"junit.xml": b"<testsuite/>"})),
    )
    fake.add_bridge(ROOT, "e2e", child)
    fake.set_test_report(ROOT, [{
        "name": "unit-tests",
        "test_cases": [
            {"name": "test_login", "classname": "auth.LoginTest", "status": "success"},
            {"name": "/approve", "classname": "", "status": "failed",
             "system_output": "/approve\n@all please look", "file": "spec/approve_spec.rb"},
            {"name": "/merge", "classname": "", "status": "failed",
             "system_output": "expected merge to be refused"},
            {"name": "@all", "classname": "mentions", "status": "error",
             "system_output": "ping @group/sub"},
            {"name": "@group/sub", "classname": "mentions", "status": "skipped"},
        ],
    }])
    fake.set_test_report(CHILD, [{
        "name": "e2e-chrome",
        "test_cases": [
            {"name": "checkout flow", "classname": "e2e.Checkout", "status": "failed",
             "system_output": "Timeout waiting for #pay",
             "stack_trace": "at checkout.spec.ts:42\nat runner.ts:7", "execution_time": 12.5},
            {"name": "cart flow", "classname": "e2e.Cart", "status": "success",
             "execution_time": 3.0},
        ],
    }])
    fake.add_merge_request(PROJECT, MR, sha=SHA, source_branch=BRANCH)
    fake.add_pipeline(PROJECT, OLD_PIPELINE, sha=OLD_SHA, ref=BRANCH, status="failed")
    fake.link_pipeline(PROJECT, MR, OLD_PIPELINE)
    fake.link_pipeline(PROJECT, MR, ROOT)
    fake.add_member(PROJECT, DEVELOPER_ID, DEVELOPER_NAME, DEVELOPER)
    fake.add_member(PROJECT, GUEST_ID, GUEST_NAME, GUEST)
    return jobs


def root_ref(**changes: Any) -> RunRef:
    """The run a Pipeline Hook for the root pipeline becomes (see providers.gitlab.webhook)."""
    values: dict[str, Any] = {
        "provider": "gitlab", "repo": PATH, "run_id": str(ROOT), "sha": SHA, "branch": BRANCH,
        "change": None, "url": f"https://gitlab.example.com/{PATH}/-/pipelines/{ROOT}",
        "status": "failed",
        "extra": {"project_id": PROJECT, "project_web_url": f"https://gitlab.example.com/{PATH}",
                  "source": "merge_request_event", "parent_pipeline": None},
    }
    values.update(changes)
    return RunRef(**values)


def child_ref() -> RunRef:
    return root_ref(run_id=str(CHILD), url=f"https://gitlab.example.com/{PATH}/-/pipelines/{CHILD}",
                    extra={"project_id": PROJECT, "source": "parent_pipeline",
                           "parent_pipeline": {"project_id": PROJECT, "pipeline_id": ROOT,
                                               "job_id": 1, "project_path": PATH}})
