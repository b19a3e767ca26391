"""Builders for CircleCI test data: the `workflow-completed` webhook of the fixture
(project `gh/acme-fin/ledger`, pipeline 1285, workflow `build-and-test`) and the workflow,
jobs and stored test results behind it on the fake CircleCI."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from typing import Any

from bot.events import BUILD_COMPLETED, Event, RunRef
from providers.circleci import CircleCIProvider
from tests.circleci.conftest import SECRET
from tests.fakes.ci_world import SourceAndForge
from tests.fakes.circleci import Artifact, FakeCircleCI, FakeJob, stored_test
from tests.providers.senders import fixture

SLUG = "gh/acme-fin/ledger"
REPO = "acme-fin/ledger"
REMOTE = "https://github.com/acme-fin/ledger"
SHA = "f454a02b5d10fcccfd7d9dd7608a76d6493a98b4"
WORKFLOW = "fda08377-fe7e-46b1-8992-3a7aaecac9c3"
PIPELINE = "1285fe1f-d3a6-44fc-8886-8979558254c4"
NUMBER = 1285
NAME = "build-and-test"
PR = 88


def webhook(**workflow: Any) -> dict[str, Any]:
    """The fixture's `workflow-completed`, with `workflow` fields replaced; another
    workflow's is another delivery (its own event `id`)."""
    body: dict[str, Any] = copy.deepcopy(json.loads(fixture("circleci", "workflow_completed.json")))
    body["workflow"].update(workflow)
    if "id" in workflow:
        body["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, str(workflow["id"])))
    return body


def signed(body: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"content-type": "application/json", "circleci-signature": f"v1={digest}",
                 "circleci-event-type": "workflow-completed"}


def ref_of(body: dict[str, Any]) -> RunRef:
    raw, headers = signed(body)
    event = CircleCIProvider().parse(headers, raw, [SECRET.encode()])
    assert isinstance(event, Event) and event.run is not None
    return event.run


def failing_tests() -> list[dict[str, Any]]:
    """Two failures among five, one skipped: what job `test` stored."""
    return [
        stored_test("test_rounds_half_to_even"),
        stored_test("test_totals_per_currency"),
        stored_test("test_settles_negative_balance", "failure",
                  message="AssertionError: assert -3 == 0\nfull traceback"),
        stored_test("test_refund_after_close", "failure", message="KeyError: 'EUR'"),
        stored_test("test_legacy_import", "skipped", message="needs the legacy db"),
    ]


def seed(circleci: FakeCircleCI, *, status: str = "failed", jobs: list[FakeJob] | None = None,
         workflow: str = WORKFLOW, vcs: dict[str, Any] | None = None,
         trigger_parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fixture's pipeline and workflow: jobs `lint` (passed, no tests) and `test`
    (failed, five stored results) unless `jobs` says otherwise."""
    if PIPELINE not in circleci.pipelines:
        circleci.add_pipeline(PIPELINE, number=NUMBER, slug=SLUG, vcs=vcs if vcs is not None else {
            "provider_name": "github", "origin_repository_url": REMOTE,
            "target_repository_url": REMOTE, "revision": SHA, "branch": "fix/rounding",
        }, trigger_parameters=trigger_parameters)
    if jobs is None:
        jobs = [FakeJob("lint", "success", 4410),
                FakeJob("test", "failed", 4411, tests=failing_tests())]
    return circleci.add_workflow(workflow, PIPELINE, status=status, jobs=jobs)


def CircleCIAndForge(circleci: Any, forge_name: str, forge: Any) -> SourceAndForge:
    """`ctx.clients` with CircleCI as CI source and one forge's real client."""
    return SourceAndForge("circleci", circleci, forge_name, forge)


def completed(ref: RunRef) -> Event:
    """The `build.completed` event the webhook of `ref` queues."""
    return Event(provider="circleci", name=BUILD_COMPLETED, native_name="workflow-completed",
                 delivery_id=f"d-{ref.run_id}", repo=ref.repo, run=ref)


def junit(*cases: tuple[str, str]) -> bytes:
    """A JUnit file of (name, "pass"|"fail") cases."""
    body = "".join(
        f'<testcase classname="ledger.api" name="{name}">'
        + ('<failure message="boom">boom</failure>' if outcome == "fail" else "")
        + "</testcase>"
        for name, outcome in cases
    )
    return f'<testsuite name="api" tests="{len(cases)}">{body}</testsuite>'.encode()


__all__ = ["Artifact", "FakeJob", "junit", "ref_of", "seed", "signed", "webhook"]
