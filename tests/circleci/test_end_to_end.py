"""CircleCI end to end: a signed `workflow-completed` → the app → real Redis → the ARQ
worker (burst) → the report handler → the CircleCI client against the fake CircleCI → the
GitHub client against the fake GitHub, and back as one check run and one sticky PR comment
on the pull request of the commit; then a `/retest` comment on that pull request → one
rerun from failed on the fake CircleCI."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.reports.markdown import md_link, md_text
from providers.github.client import RETEST_POLICY
from providers.github.publish import reply_marker
from tests.circleci.conftest import circleci_env
from tests.circleci.world import (
    NAME,
    NUMBER,
    PIPELINE,
    PR,
    REPO,
    SHA,
    SLUG,
    WORKFLOW,
    junit,
    seed,
    signed,
    webhook,
)
from tests.fakes import ci_world
from tests.fakes import herald as harness
from tests.fakes.circleci import STARTED, Artifact, FakeCircleCI, FakeJob, stored_test
from tests.fakes.github import FakeGitHub
from tests.github.conftest import github_env, payload
from tests.reports.checks import outside_code_blocks

pytestmark = pytest.mark.e2e

CHECK_NAME = f"Herald (circleci: {NAME})"
WORKFLOW_PATH = f"/workflow/{WORKFLOW}"
RERUN = r"/workflow/[^/]+/rerun"


class Herald(ci_world.HeraldOnGitHub):
    async def deliver(self, body: dict[str, Any], *, secret: str | None = None
                      ) -> httpx.Response:
        """What CircleCI's webhook sends: the body signed with the webhook's secret."""
        raw, headers = signed(body) if secret is None else signed(body, secret)
        return await self.http.post("/webhooks/circleci", content=raw, headers=headers)


def start(redis_url: str, tmp_path: Path, github: FakeGitHub, circleci: FakeCircleCI,
          **env: str) -> contextlib.AbstractAsyncContextManager[Herald]:
    return harness.running(Herald, redis_url, tmp_path,
                           {**github_env(github), **circleci_env(circleci), **env})


@pytest.fixture
async def herald(redis_url: str, tmp_path: Path, fake: FakeGitHub,
                 circleci: FakeCircleCI) -> AsyncIterator[Herald]:
    fake.add_pull(REPO, PR, SHA)
    async with start(redis_url, tmp_path, fake, circleci) as running:
        yield running


def retest_comment(fake: FakeGitHub, author: str, comment_id: int = 2498765432,
                   body: str = "/retest") -> dict[str, Any]:
    return ci_world.retest_comment(fake, REPO, PR, author, comment_id, body)


def page(circleci: FakeCircleCI, workflow: str = WORKFLOW) -> str:
    return f"{circleci.served}/pipelines/github/acme-fin/ledger/{NUMBER}/workflows/{workflow}"


async def reported(herald: Herald, circleci: FakeCircleCI) -> None:
    seed(circleci)
    assert (await herald.deliver(webhook())).status_code == 202
    await herald.work()


async def test_a_finished_workflow_is_reported_once_across_redeliveries(
    fake, circleci, herald, redis_url
) -> None:
    seed(circleci)
    body = webhook()
    await herald.deliver_three_times(lambda: herald.deliver(body), redis_url)

    [check] = fake.repo(REPO).check_runs
    assert check["name"] == CHECK_NAME
    assert (check["head_sha"], check["conclusion"]) == (SHA, "failure")
    assert check["output"]["title"].startswith("2 failed, 2 passed, 1 skipped")
    assert check["details_url"] == page(circleci)
    [comment] = fake.repo(REPO).comments[PR]
    assert md_text("test_settles_negative_balance") in comment["body"]
    assert f"{page(circleci)}/jobs/4411" in comment["body"]
    assert len(fake.calls_to("POST", f"/repos/{REPO}/check-runs")) == 1
    assert len(fake.calls_to("POST", f"/repos/{REPO}/issues/{PR}/comments")) == 1


@pytest.mark.parametrize(("status", "headers"), [(502, {}), (429, {"Retry-After": "1"})])
async def test_a_5xx_or_429_from_circleci_once_then_one_report(
    fake, circleci, herald, status, headers
) -> None:
    seed(circleci)
    circleci.fail("GET", WORKFLOW_PATH, status=status, headers=headers)
    await herald.deliver(webhook())
    await herald.work()
    assert [c.fault for c in circleci.api_calls("GET", WORKFLOW_PATH)][:2] == [status, None]
    assert len(fake.repo(REPO).check_runs) == 1
    assert len(fake.repo(REPO).comments[PR]) == 1


async def test_a_wrongly_signed_webhook_is_refused_and_reads_nothing(
    fake, circleci, herald
) -> None:
    seed(circleci)
    refused = await herald.deliver(webhook(), secret="guessed")
    assert refused.status_code == 401
    await herald.work()
    assert circleci.calls == [] and fake.repo(REPO).check_runs == []


async def test_a_failed_build_job_without_tests_fails_the_check_and_is_named(
    fake, circleci, herald
) -> None:
    seed(circleci, jobs=[FakeJob("build", "failed", 4500),
                         FakeJob("test", "success", 4501, tests=[stored_test("test_ok")])])
    await herald.deliver(webhook())
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    [comment] = fake.repo(REPO).comments[PR]
    assert md_text("job build") in comment["body"]


async def test_a_parallel_job_s_artifacts_count_every_node(fake, circleci, herald) -> None:
    seed(circleci, jobs=[FakeJob("api-tests", "failed", 4510, artifacts=[
        Artifact("reports/junit.xml", 0, junit(("test_a", "pass"), ("test_b", "fail"))),
        Artifact("reports/junit.xml", 1, junit(("test_c", "pass"), ("test_d", "fail"))),
    ])])
    await herald.deliver(webhook())
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    # Two nodes, two results each: neither node's file stands in for the other's. Their
    # failures say how the job failed: it is not counted again as an error of its own.
    assert check["output"]["title"].startswith("2 failed, 2 passed")


async def test_a_failed_job_whose_artifacts_show_no_failure_is_named_as_failed(
    fake, circleci, herald
) -> None:
    seed(circleci, jobs=[FakeJob("api-tests", "failed", 4510, artifacts=[
        Artifact("reports/junit.xml", 0, junit(("test_a", "pass"))),
        Artifact("reports/junit.xml", 1, junit(("test_c", "pass"))),
    ])])
    await herald.deliver(webhook())
    await herald.work()
    [check] = fake.repo(REPO).check_runs
    # Every test in its files passed, yet the job failed (a step after the tests): the
    # report must not read green.
    assert (check["conclusion"], check["output"]["title"].startswith("1 error, 2 passed")) == (
        "failure", True)
    assert md_text("job api-tests") in fake.repo(REPO).comments[PR][0]["body"]


async def test_a_rerun_s_report_replaces_the_comment_and_a_late_older_one_does_not(
    fake, circleci, herald, redis_url
) -> None:
    await reported(herald, circleci)
    rerun_id = str(uuid.uuid4())
    circleci.add_workflow(rerun_id, PIPELINE, status="success", created=STARTED + timedelta(
        minutes=20), jobs=[FakeJob("test", "success", 4600, tests=[stored_test("test_ok")])])
    await herald.deliver(webhook(id=rerun_id, status="success", url=page(circleci, rerun_id)))
    await herald.work()
    [comment] = fake.repo(REPO).comments[PR]
    marker = comment["body"].splitlines()[0]
    assert "1 test passed" in fake.repo(REPO).check_runs[-1]["output"]["title"]

    ci_world.forget_deliveries(redis_url)
    await herald.deliver(webhook())  # the first workflow's webhook, delivered late
    await herald.work()
    [comment] = fake.repo(REPO).comments[PR]
    assert comment["body"].splitlines()[0] == marker


async def test_retest_from_a_trusted_user_reruns_the_failed_workflow_once(
    fake, circleci, herald
) -> None:
    await reported(herald, circleci)
    fake.grant(REPO, "lena", "write", "maintain")

    await herald.comment(retest_comment(fake, "lena"))
    await herald.work()
    assert circleci.reruns == [(WORKFLOW, {"from_failed": True})]
    [new] = [w["id"] for w in circleci.workflows.values() if w["id"] != WORKFLOW]
    reply = fake.repo(REPO).comments[PR][-1]["body"]
    label = md_link(f"{NAME} (pipeline {NUMBER})", page(circleci))
    assert reply == (f"{reply_marker('2498765432')}\n@lena re-running the failed jobs of "
                     f"{label} on CircleCI ({md_link('new run', page(circleci, new))}).")
    assert fake.repo(REPO).reactions == [{"comment_id": 2498765432, "content": "eyes"}]

    # Another /retest while the rerun runs asks CircleCI for nothing more.
    await herald.comment(retest_comment(fake, "lena", comment_id=2498765433))
    await herald.work()
    assert len(circleci.api_calls("POST", RERUN)) == 1
    assert "nothing to retest" in fake.repo(REPO).comments[PR][-1]["body"]


async def test_github_s_rerun_button_on_the_circleci_check_reruns_the_workflow_once(
    fake, circleci, herald
) -> None:
    await reported(herald, circleci)
    [check] = fake.repo(REPO).check_runs
    pressed = copy.deepcopy(payload("check_run_rerequested.json"))
    owner, name = REPO.split("/")
    pressed["repository"].update(full_name=REPO, name=name)
    pressed["repository"]["owner"]["login"] = owner
    pressed["check_run"].update(id=check["id"], external_id=check["external_id"],
                                head_sha=SHA, name=check["name"])
    pressed["installation"]["id"] = fake.installation_id
    assert (await herald.github("check_run", pressed)).status_code == 202
    await herald.work()
    assert circleci.reruns == [(WORKFLOW, {"from_failed": True})]


async def test_retest_whose_rerun_answer_was_lost_reruns_once(fake, circleci, herald) -> None:
    await reported(herald, circleci)
    fake.grant(REPO, "lena", "write")
    circleci.lose_answer(r"^POST /api/v2/workflow/[^/]+/rerun$", how="reset")
    await herald.comment(retest_comment(fake, "lena"))
    await herald.work()
    assert len(circleci.reruns) == 1 and len(circleci.api_calls("POST", RERUN)) == 1
    assert "re-running the failed jobs of" in fake.repo(REPO).comments[PR][-1]["body"]


async def test_retest_from_an_untrusted_user_is_politely_refused(fake, circleci, herald) -> None:
    await reported(herald, circleci)
    fake.grant(REPO, "drive-by", "read")
    await herald.comment(retest_comment(fake, "drive-by"))
    await herald.work()
    assert circleci.reruns == [] and circleci.api_calls("POST", RERUN) == []
    assert fake.repo(REPO).comments[PR][-1]["body"] == (
        f"{reply_marker('2498765432')}\n"
        f"@drive-by sorry, I can't retest on your request. {RETEST_POLICY}"
    )


async def test_a_rerun_circleci_refuses_is_said_in_the_reply_and_not_retried(
    fake, circleci, herald
) -> None:
    await reported(herald, circleci)
    fake.grant(REPO, "lena", "write")
    circleci.refuse_reruns = "Rerun limit reached"
    await herald.comment(retest_comment(fake, "lena"))
    await herald.work()
    assert len(circleci.api_calls("POST", RERUN)) == 1
    reply = fake.repo(REPO).comments[PR][-1]["body"]
    assert "Could not rerun" in reply and "Rerun limit reached" in reply


async def test_test_names_from_circleci_are_inert_on_github(fake, circleci, herald) -> None:
    hostile = "@everyone <img src=x onerror=alert(1)> closes #123"
    seed(circleci, jobs=[FakeJob("test", "failed", 4700, tests=[stored_test(
        hostile, "failure", classname="Evil", message="/retest @maintainers "
        "![x](https://evil.example/x.png)")])])
    await herald.deliver(webhook())
    await herald.work()
    [comment] = fake.repo(REPO).comments[PR]
    prose = "\n".join(outside_code_blocks(comment["body"]))
    assert "Evil" in prose
    for live in ("@everyone", "@maintainers", "<img", "![x](", "#123"):
        assert live not in prose


async def test_urls_a_webhook_names_on_other_hosts_see_no_request(
    fake, circleci, herald, capture
) -> None:
    seed(circleci)
    body = webhook(url=f"{capture.url}/pipelines/x")
    body["webhook"] = {"id": "cf8c4fdd", "name": "herald", "url": f"{capture.url}/hook"}
    await herald.deliver(body)
    await herald.work()
    assert capture.requests == []
    [check] = fake.repo(REPO).check_runs
    assert check["details_url"] == page(circleci)


@pytest.mark.parametrize("spelling", [
    "http://localhost:{port}", "http://2130706433:{port}", "http://0x7f.0.0.1:{port}",
    "http://[::ffff:127.0.0.1]:{port}",
], ids=["loopback-name", "decimal", "hex", "ipv4-mapped"])
async def test_an_artifact_redirected_to_a_private_address_is_never_contacted(
    fake, circleci, herald, capture, spelling
) -> None:
    """A redirect to loopback (a hostile or misconfigured storage hop) is refused before
    connecting; the other file is still read, and the report names the refused one."""
    seed(circleci, status="success", jobs=[FakeJob("api-tests", "success", 4800, artifacts=[
        Artifact("reports/unit-junit.xml", 0, junit(("test_a", "pass"))),
        Artifact("reports/it-junit.xml", 0, b""),
    ])])
    port = capture.url.rsplit(":", 1)[1]
    circleci.redirects["reports/it-junit.xml"] = f"{spelling.format(port=port)}/bucket/it.xml"
    await herald.deliver(webhook(status="success"))
    await herald.work()
    assert capture.requests == []
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "neutral"  # the unread file may have held a failure
    text = check["output"]["summary"] + (check["output"].get("text") or "")
    assert md_text("api-tests[0]/reports/it-junit.xml") in text and "refused to connect to" in text


async def test_a_project_slug_of_a_github_app_project_is_rerun_from_its_record(
    fake, circleci, herald
) -> None:
    """`circleci/<org>/<project>` names no repository: the recorded report leads to it."""
    slug = "circleci/f22b6566-597d-46d5-ba74-99ef5bb3d85c/84996744-a854-4f5e-aea3-04e2851dc1d2"
    circleci.add_pipeline(PIPELINE, number=NUMBER, slug=slug, trigger_parameters={"git": {
        "checkout_sha": SHA, "branch": "fix/rounding",
        "repo_url": f"https://github.com/{REPO}"}})
    seed(circleci)
    body = webhook()
    body["project"]["slug"] = slug
    del body["pipeline"]["vcs"]
    body["pipeline"]["trigger_parameters"]["git"] = {"checkout_sha": SHA}
    await herald.deliver(body)
    await herald.work()
    assert len(fake.repo(REPO).check_runs) == 1
    fake.grant(REPO, "lena", "write")
    await herald.comment(retest_comment(fake, "lena"))
    await herald.work()
    assert circleci.reruns == [(WORKFLOW, {"from_failed": True})]


__all__ = ["SLUG"]
