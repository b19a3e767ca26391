"""One small Bitbucket world the client and end-to-end tests share, shaped after the
webhook fixtures in tests/fixtures/webhooks/bitbucket (acme-eng/checkout-service, pull
request #91 from feature/retry-payments, pipeline #318 whose commit status has the
pipeline's UUID as its key).

    pipeline #317 (failed, same commit and branch: the run before, superseded)
    pipeline #318 (failed)
      unit tests    failed   test report: 2 passed, 3 failed (one of them a parameterised
                             twin of another), 1 error, 1 skipped; hostile names
      shard         failed   test report: `checkout flow` failed
      shard         failed   test report: `checkout flow` failed (the same test, another
                             shard: counted twice, never merged)
      lint          success  no test report

Test names include `@everyone`, `#123`, an image, HTML and a leading `/`: a report quoting
them must neither notify anyone nor link anything nor render markup.
"""

from __future__ import annotations

from typing import Any

from bot.events import RunRef
from tests.fakes.bitbucket import FakeBitbucket

REPO = "acme-eng/checkout-service"
SHA = "5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
OTHER_SHA = "0badc0de" * 5
BRANCH = "feature/retry-payments"
PR = 91
NUMBER = 318
OLD_NUMBER = 317
PIPELINE_UUID = "{b1a2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d}"
WRITER_ID, WRITER_NAME = "712020:4b6e1c3a-9d2f-4e8b-a1c5-7f3e9d2b6a41", "sokafor"
READER_ID, READER_NAME = "712020:99999999-0000-4000-8000-000000000001", "visitor"
HOSTILE_NAMES = ("@everyone please look", "fixes #123", "![pwn](https://evil.example/x.png)",
                 "<img src=x onerror=alert(1)>", "/merge now")
WEB = f"https://bitbucket.org/{REPO}"


def unit_cases() -> list[dict[str, Any]]:
    return [
        {"name": "test_login", "fully_qualified_name": "auth.LoginTest.test_login",
         "package_name": "auth.LoginTest", "status": "SUCCESSFUL"},
        {"name": "test_logout", "fully_qualified_name": "auth.LoginTest.test_logout",
         "package_name": "auth.LoginTest", "status": "SUCCESSFUL", "duration": "PT1.5S"},
        {"name": HOSTILE_NAMES[0], "package_name": "payments.Capture", "status": "FAILED",
         "reasons": [{"message": "expected 200, got 503 @here",
                      "stack_trace": "at capture.py:42\n@everyone"}]},
        {"name": "test_retry[503]", "package_name": "payments.Retry", "status": "FAILED",
         "reasons": [{"message": "retried 0 times"}]},
        {"name": "test_retry[503]", "package_name": "payments.Retry", "status": "FAILED",
         "reasons": [{"message": "retried 1 time"}]},
        {"name": HOSTILE_NAMES[1], "package_name": "payments.Refund", "status": "ERROR",
         "reasons": [{"message": HOSTILE_NAMES[2]}]},
        {"name": HOSTILE_NAMES[3], "package_name": "payments.Html", "status": "SKIPPED"},
        {"name": HOSTILE_NAMES[4], "package_name": "payments.Slash", "status": "SUCCESSFUL"},
    ]


def shard_cases() -> list[dict[str, Any]]:
    return [{"name": "checkout flow", "package_name": "e2e.Checkout", "status": "FAILED",
             "reasons": [{"message": "Timeout waiting for #pay"}]}]


def build_world(fake: FakeBitbucket) -> None:
    fake.add_repo(REPO, [SHA, OTHER_SHA])
    old = fake.add_pipeline(REPO, OLD_NUMBER, sha=SHA, branch=BRANCH, result="FAILED")
    fake.add_step(REPO, old, "unit tests", result="FAILED", cases=unit_cases())
    pipeline = fake.add_pipeline(REPO, NUMBER, sha=SHA, branch=BRANCH, result="FAILED",
                                 uuid=PIPELINE_UUID)
    fake.add_step(REPO, pipeline, "unit tests", result="FAILED", cases=unit_cases())
    fake.add_step(REPO, pipeline, "shard", result="FAILED", cases=shard_cases())
    fake.add_step(REPO, pipeline, "shard", result="FAILED", cases=shard_cases())
    fake.add_step(REPO, pipeline, "lint", result="SUCCESSFUL")
    fake.add_pullrequest(REPO, PR, sha=SHA, branch=BRANCH)
    writer = fake.add_user(WRITER_ID, WRITER_NAME, "Sam Okafor")
    fake.add_user(READER_ID, READER_NAME, "A Visitor")
    fake.effective[(REPO, WRITER_ID)] = "write"
    fake.effective[(REPO, READER_ID)] = "read"
    fake.repos[REPO].grants[WRITER_ID] = "write"
    fake.repos[REPO].grants[READER_ID] = "read"
    assert writer


def pipeline_ref(**changes: Any) -> RunRef:
    """The run the fixture's `repo:commit_status_updated` becomes (providers.bitbucket.webhook)."""
    values: dict[str, Any] = {
        "provider": "bitbucket", "repo": REPO, "run_id": str(NUMBER), "sha": SHA,
        "branch": BRANCH, "change": None, "url": f"{WEB}/pipelines/results/{NUMBER}",
        "status": "FAILED",
        "extra": {"status_key": PIPELINE_UUID, "status_name": f"Pipeline #{NUMBER}",
                  "status_type": "build", "pipeline_build_number": NUMBER,
                  "repository_uuid": "{3f0a1b2c-4d5e-46f7-8a9b-0c1d2e3f4a5b}"},
    }
    values.update(changes)
    return RunRef(**values)
