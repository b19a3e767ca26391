"""providers.bitbucket.client against the fake Bitbucket, over real HTTP through httpx."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from structlog.testing import capture_logs

from bot.events import Comment, RunRef
from bot.ports import Change, ReportOrigin
from bot.reports.markdown import WORD_JOINER
from bot.results.compact import CaseList
from bot.results.model import Status, Suite, TestCase, TestRun
from bot.settings import ConfigError, ProviderSettings
from providers.base import CISource, ForgeTarget, NotConfigured, PermanentError, TransientError
from providers.bitbucket import client as client_module
from providers.bitbucket import insights
from providers.bitbucket.api import ClientError
from providers.bitbucket.client import RETEST_POLICY, BitbucketClient, create_client
from tests.bitbucket.conftest import ClientFactory
from tests.bitbucket.world import (
    BRANCH,
    NUMBER,
    OLD_NUMBER,
    OTHER_SHA,
    PIPELINE_UUID,
    PR,
    READER_ID,
    READER_NAME,
    REPO,
    SHA,
    WEB,
    WRITER_ID,
    WRITER_NAME,
    pipeline_ref,
)
from tests.fakes import failed_runs, publish, publish_error
from tests.fakes.bitbucket import API_TOKEN, EMAIL, TOKEN, FakeBitbucket


def test_one_object_is_both_ci_source_and_forge(client: BitbucketClient) -> None:
    assert isinstance(client, CISource)
    assert isinstance(client, ForgeTarget)
    assert client.retest_policy == RETEST_POLICY


# ---- construction -------------------------------------------------------------------------


def test_no_token_is_not_configured() -> None:
    with pytest.raises(NotConfigured, match="HERALD_BITBUCKET_TOKEN"):
        create_client(ProviderSettings("bitbucket", {}), None)  # type: ignore[arg-type]


def test_a_timeout_as_long_as_the_job_is_refused() -> None:
    with pytest.raises(ConfigError, match="HERALD_BITBUCKET_TIMEOUT"):
        create_client(ProviderSettings("bitbucket", {
            "HERALD_BITBUCKET_TOKEN": "t", "HERALD_BITBUCKET_TIMEOUT": "900",
            "HERALD_JOB_TIMEOUT_SECONDS": "300"}), None)  # type: ignore[arg-type]


async def test_an_access_token_is_sent_as_bearer(client: BitbucketClient,
                                                 bitbucket: FakeBitbucket) -> None:
    await client.get_build(pipeline_ref())
    assert {c.auth for c in bitbucket.calls} == {f"Bearer {TOKEN}"}


async def test_an_api_token_goes_as_basic_with_the_account_email(
    make_client: ClientFactory, bitbucket: FakeBitbucket
) -> None:
    client = make_client(token=API_TOKEN, username=EMAIL)
    await client.get_build(pipeline_ref())
    pair = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
    assert {c.auth for c in bitbucket.calls} == {f"Basic {pair}"}


async def test_a_refused_token_says_which_setting_to_check(make_client: ClientFactory) -> None:
    client = make_client(token="wrong")
    with pytest.raises(PermanentError, match="HERALD_BITBUCKET_TOKEN"):
        await client.get_build(pipeline_ref())


# ---- reading a pipeline ---------------------------------------------------------------------


async def test_the_build_is_the_pipeline_of_the_status_key_with_its_steps(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    build = await client.get_build(pipeline_ref())
    assert (build.status, build.failed, build.sha, build.changes) == ("FAILED", True, SHA, [PR])
    assert build.url == f"{WEB}/pipelines/results/{NUMBER}"
    assert [(j.name, j.failed) for j in build.jobs] == [
        ("unit tests", True), ("shard (1)", True), ("shard (2)", True), ("lint", False)]
    assert bitbucket.calls_to("GET", r"/pipelines/\{b1a2c3d4")


async def test_unindexed_commit_links_fall_back_to_the_branch_s_open_pull_requests(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    bitbucket.commit_links_indexed = False
    other = bitbucket.add_pullrequest(REPO, 92, sha=OTHER_SHA, branch=BRANCH)
    assert other
    build = await client.get_build(pipeline_ref())
    assert build.changes == [PR]  # #92's head is another commit: not this run's
    assert bitbucket.calls_to("GET", r"/pullrequests$")


async def test_one_step_s_refused_test_report_leaves_the_others_and_says_so(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    shard = bitbucket.repos[REPO].steps[PIPELINE_UUID][1]
    bitbucket.fail_next(rf"GET .*/steps/{re.escape(shard['uuid'])}/test_reports", status=403)
    ref = pipeline_ref()
    await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    assert [e.source for e in run.errors] == ["Bitbucket test report of step shard (1)"]
    assert run.totals().failures == 5  # the unit step's four and the other shard's one


async def test_without_a_status_key_the_pipeline_is_found_by_its_build_number(
    client: BitbucketClient,
) -> None:
    build = await client.get_build(pipeline_ref(extra={"pipeline_build_number": OLD_NUMBER}))
    assert build.ref.run_id == str(OLD_NUMBER)
    assert build.ref.extra["pipeline_uuid"] != PIPELINE_UUID


async def test_a_status_with_a_uuid_key_but_no_pipeline_link_is_another_ci_s(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    ref = pipeline_ref(run_id=PIPELINE_UUID, extra={"status_key": PIPELINE_UUID})
    await client.get_build(ref)
    assert await client.native_results(ref) is None
    assert bitbucket.calls == []


async def test_a_pipeline_found_by_its_number_reports_its_failed_steps(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    ref = pipeline_ref(extra={"pipeline_build_number": NUMBER})
    build = await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    await client.publish(await client.change_of(ref, build), client.origin_of(ref, build), run)
    [comment] = bitbucket.our_comments(REPO, PR)
    assert "Failed steps: [unit tests]" in comment["content"]["raw"]


async def test_another_ci_s_status_reads_as_a_build_with_nothing_to_report(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    ref = pipeline_ref(run_id="JENKINS-42", extra={"status_key": "JENKINS-42"})
    build = await client.get_build(ref)
    assert await client.native_results(ref) is None
    assert (build.failed, bitbucket.calls) == (True, [])


async def test_the_step_test_reports_are_the_results(client: BitbucketClient) -> None:
    ref = pipeline_ref()
    await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    totals = run.totals()
    # The unit step: 3 passed, 3 failed, 1 error, 1 skipped; each shard one failure of
    # the same test, never merged into one.
    assert (totals.passed, totals.failed, totals.errors, totals.skipped) == (3, 5, 1, 1)
    twins = [c for c in run.failures() if c.name == "test_retry[503]"]
    assert [c.message for c in twins] == ["retried 0 times", "retried 1 time"]
    shards = [c.origin.name for c in run.failures() if c.name == "checkout flow" and c.origin]
    assert shards == ["shard (1)", "shard (2)"]


async def test_a_step_rerun_in_the_pipeline_makes_its_earlier_failure_flaky_not_hidden(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    repo = bitbucket.repos[REPO]
    pipeline = repo.pipelines[-1]
    lint = repo.steps[PIPELINE_UUID][3]
    repo.test_cases[lint["uuid"]] = [{"type": "test_case", "uuid": "{l1}", "name": "test_fmt",
                                      "package_name": "lint", "status": "FAILED"}]
    again = bitbucket.add_step(REPO, pipeline, "lint", result="SUCCESSFUL", cases=[
        {"name": "test_fmt", "package_name": "lint", "status": "SUCCESSFUL"}])
    again["run_number"] = 2
    ref = pipeline_ref()
    build = await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    [fmt] = [c for c in run.cases() if c.name == "test_fmt"]
    assert (fmt.status.value, fmt.flaky) == ("passed", True)
    assert run.totals().flaky == 1
    assert [j.name for j in build.jobs].count("lint") == 1
    # The shards ran side by side (both run 1): neither is an attempt of the other.
    assert run.totals().failures == 6


async def test_a_step_with_more_cases_than_are_read_says_the_report_is_incomplete(
    client: BitbucketClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "MAX_CASES_PER_STEP", 3)
    ref = pipeline_ref()
    await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    assert [(e.source, e.reason) for e in run.errors] == [
        ("Bitbucket test report of step unit tests", "only its first 3 test cases were read")]
    assert insights.build_state(run, client.origin_of(ref, None)) == "FAILED"


async def test_an_unknown_case_status_is_an_error_not_a_pass(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    repo = bitbucket.repos[REPO]
    step = repo.steps[PIPELINE_UUID][3]
    repo.test_cases[step["uuid"]] = [{"type": "test_case", "uuid": "{x}", "name": "odd",
                                      "status": "FLAKY_MAYBE"}]
    ref = pipeline_ref()
    await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    assert [c.status.value for c in run.cases() if c.name == "odd"] == ["error"]


# ---- publishing -----------------------------------------------------------------------------


async def published(client: BitbucketClient) -> None:
    ref = pipeline_ref()
    build = await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    change = await client.change_of(ref, build)
    await client.publish(change, client.origin_of(ref, build), run)


async def test_a_report_is_one_status_one_insights_report_and_one_comment(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    await published(client)
    repo = bitbucket.repos[REPO]
    [(key, status)] = [(k, s) for (sha, k), s in repo.statuses.items() if sha == SHA]
    assert key.startswith("herald")
    assert (status["state"], status["url"], status["refname"]) == (
        "FAILED", f"{WEB}/pipelines/results/{NUMBER}", BRANCH)
    assert status["description"].startswith("5 failed, 1 error, 3 passed, 1 skipped")
    [report] = [r for (sha, _), r in repo.reports.items() if sha == SHA]
    assert (report["report_type"], report["result"]) == ("TEST", "FAILED")
    assert insights.reported_run(report) == NUMBER
    [annotations] = list(repo.annotations.values())
    assert len(annotations) == 6
    assert len({a["external_id"] for a in annotations}) == 6
    assert all(len(a["summary"]) <= 450 for a in annotations)
    [comment] = bitbucket.our_comments(REPO, PR)
    assert comment["content"]["raw"].startswith(insights.report_marker(
        client.origin_of(pipeline_ref(), await client.get_build(pipeline_ref()))))


def jenkins_origin() -> ReportOrigin:
    run = RunRef(provider="jenkins", repo="folder/app", run_id="17", sha=SHA, branch=BRANCH)
    return ReportOrigin(run=run, name="folder/app", sequence=17, number="17",
                        url="https://jenkins.example.com/job/folder/job/app/17/", failed=True)


def one_failure() -> TestRun:
    return TestRun(id="17", suites=[Suite("unit", [
        TestCase(name="test_bad", classname="suite", status=Status.FAILED, message="boom"),
    ])])


async def test_another_ci_s_pull_request_is_found_from_the_commit_when_it_cannot_say(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    change = Change(forge="bitbucket", repo=REPO, sha=SHA, numbers_known=False)
    published = await client.publish(change, jenkins_origin(), one_failure())
    [comment] = bitbucket.our_comments(REPO, PR)
    assert published.comment_id == str(comment["id"])
    assert bitbucket.calls_to("GET", rf"/commit/{SHA}/pullrequests$")


async def test_another_ci_that_says_there_is_no_pull_request_gets_no_comment(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    change = Change(forge="bitbucket", repo=REPO, sha=SHA)
    published = await client.publish(change, jenkins_origin(), one_failure())
    assert published.comment_id is None
    assert bitbucket.our_comments(REPO, PR) == []
    assert len(bitbucket.repos[REPO].statuses) == 1


async def test_publishing_again_changes_nothing_twice(client: BitbucketClient,
                                                       bitbucket: FakeBitbucket) -> None:
    await published(client)
    await published(client)
    repo = bitbucket.repos[REPO]
    assert len(repo.statuses) == 1
    assert len(repo.reports) == 1
    assert len(next(iter(repo.annotations.values()))) == 6
    assert len(bitbucket.our_comments(REPO, PR)) == 1
    assert len(bitbucket.calls_to("POST", rf"/pullrequests/{PR}/comments$")) == 1


async def test_a_thousand_and_fifty_failures_are_annotated_within_bitbucket_s_limits(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    repo = bitbucket.repos[REPO]
    lint = repo.steps[PIPELINE_UUID][3]
    repo.test_cases[lint["uuid"]] = [
        {"type": "test_case", "uuid": f"{{case-{i}}}", "name": f"test_{i}",
         "package_name": "bulk", "status": "FAILED"} for i in range(1_050)]
    await published(client)
    [annotations] = repo.annotations.values()
    assert len(annotations) == 1_000
    assert len(bitbucket.calls_to("POST", r"/annotations$")) == 10
    # Reasons are read for the first 200 failures only; the rest still count.
    assert len(bitbucket.calls_to("GET", r"/test_case_reasons$")) == 200
    [report] = repo.reports.values()
    assert "56 of the 1,056 failures are not annotated" in report["details"]


async def test_a_refused_write_carries_bitbucket_s_own_words(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    await published(client)
    [(_sha, key)] = bitbucket.repos[REPO].reports
    path = f"/repositories/{REPO}/commit/{SHA}/reports/{key}/annotations"
    with pytest.raises(ClientError) as refused:
        await client.api.post("annotate", path, [{
            "external_id": "x", "annotation_type": "BUG", "summary": "s" * 451}],
            idempotent=True)
    assert refused.value.status == 400
    assert "cannot contain more than 450 characters" in refused.value.detail


async def test_a_token_that_cannot_read_its_own_user_still_keeps_one_comment(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    bitbucket.user_readable = False
    await published(client)
    await published(client)
    assert len(bitbucket.our_comments(REPO, PR)) == 1
    assert len(bitbucket.calls_to("POST", rf"/pullrequests/{PR}/comments$")) == 1


async def test_a_fixed_failure_loses_its_annotation(client: BitbucketClient,
                                                     bitbucket: FakeBitbucket) -> None:
    await published(client)
    repo = bitbucket.repos[REPO]
    shard = repo.steps[PIPELINE_UUID][1]
    repo.test_cases[shard["uuid"]][0]["status"] = "SUCCESSFUL"
    await published(client)
    assert len(next(iter(repo.annotations.values()))) == 5


async def test_a_report_of_an_older_pipeline_leaves_the_newer_one(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    await published(client)
    old = pipeline_ref(run_id=str(OLD_NUMBER), extra={"pipeline_build_number": OLD_NUMBER})
    build = await client.get_build(old)
    run = await client.native_results(old)
    assert run is not None
    await client.publish(await client.change_of(old, build), client.origin_of(old, build), run)
    repo = bitbucket.repos[REPO]
    [report] = repo.reports.values()
    assert insights.reported_run(report) == NUMBER
    [comment] = bitbucket.our_comments(REPO, PR)
    assert insights.reported_order(comment["content"]["raw"]) == (NUMBER,)


async def test_hostile_test_names_are_inert_in_the_comment(client: BitbucketClient,
                                                            bitbucket: FakeBitbucket) -> None:
    await published(client)
    [comment] = bitbucket.our_comments(REPO, PR)
    prose = outside_code(comment["content"]["raw"])
    assert bitbucket.mentions == []
    assert "<img" not in prose and "<details" not in prose and "<summary" not in prose
    assert "![" not in prose
    assert "#123" not in prose and f"#{WORD_JOINER}123" in prose
    assert not any(line.lstrip().startswith("/") for line in prose.splitlines())


def outside_code(markdown: str) -> str:
    """The lines of `markdown` outside fenced code, where Markdown would act on them."""
    kept, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


async def test_a_rate_limited_status_is_retried_after_the_wait_and_posted_once(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    bitbucket.fail_next(r"POST .*/statuses/build", retry_after="1")
    with pytest.raises(TransientError) as raised:
        await published(client)
    assert raised.value.retry_after == 1
    await published(client)  # the job's retry: the short wait is slept through in place
    assert len(bitbucket.calls_to("POST", r"/statuses/build")) == 2
    assert len(bitbucket.repos[REPO].statuses) == 1
    assert len(bitbucket.our_comments(REPO, PR)) == 1


async def test_a_long_rate_limit_goes_back_to_the_queue(client: BitbucketClient,
                                                        bitbucket: FakeBitbucket) -> None:
    bitbucket.fail_next(r"GET .*/pipelines/", retry_after="30")
    with pytest.raises(TransientError) as raised:
        await client.get_build(pipeline_ref())
    assert raised.value.retry_after == 30


async def test_a_lost_comment_answer_is_read_back_not_posted_again(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    bitbucket.lose_answer(rf"POST .*/pullrequests/{PR}/comments$", how="reset")
    await published(client)
    assert len(bitbucket.our_comments(REPO, PR)) == 1


async def test_a_passing_5xx_is_retried_in_place(client: BitbucketClient,
                                                 bitbucket: FakeBitbucket) -> None:
    bitbucket.fail_next(r"GET .*/pipelines/\{", status=502)
    build = await client.get_build(pipeline_ref())
    assert build.failed
    assert len(bitbucket.calls_to("GET", r"/pipelines/\{[^/]*\}$")) == 2


async def test_a_lasting_5xx_goes_back_to_the_queue(client: BitbucketClient,
                                                   bitbucket: FakeBitbucket) -> None:
    bitbucket.fail_next(r"GET .*/pipelines/\{", status=503, times=5)
    with pytest.raises(TransientError):
        await client.get_build(pipeline_ref())


async def test_a_lost_reply_answer_is_read_back_not_posted_again(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    asked = bitbucket.add_comment(REPO, PR, "/retest", bitbucket.users[WRITER_ID])
    bitbucket.lose_answer(rf"POST .*/pullrequests/{PR}/comments$", how="reset")
    await client.reply(REPO, Comment(id=str(asked["id"]), body="/retest", author=WRITER_NAME,
                                     change=PR, extra={"account_id": WRITER_ID}),
                       f"@{WRITER_NAME} nothing to retest")
    assert len(bitbucket.our_comments(REPO, PR)) == 1


async def test_a_hanging_bitbucket_is_a_transient_error(client: BitbucketClient,
                                                        bitbucket: FakeBitbucket) -> None:
    bitbucket.fail_next(r"GET .*/pipelines/", hang=True, times=5)
    with pytest.raises(TransientError):
        await client.get_build(pipeline_ref())


async def test_a_give_up_answer_is_a_failed_status(client: BitbucketClient,
                                                   bitbucket: FakeBitbucket) -> None:
    await publish_error(client, pipeline_ref(), "Herald could not report: boom")
    [status] = bitbucket.repos[REPO].statuses.values()
    assert (status["state"], status["description"]) == ("FAILED", "Herald could not report: boom")


async def test_another_ci_s_run_on_a_bitbucket_commit_gets_its_own_status_report_and_comment(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    await published(client)
    jenkins = RunRef(provider="jenkins", repo=REPO, run_id="42", sha=SHA,
                     url="https://ci.example/job/app/42/")
    origin = ReportOrigin(run=jenkins, name="app", sequence=42, url=jenkins.url, failed=True)
    change = Change(forge="bitbucket", repo=REPO, sha=SHA, numbers=(PR,))
    run = TestRun(id="42", suites=[Suite(name="it", cases=CaseList(
        [TestCase(name="test_x", status=Status.FAILED)]))])
    await client.publish(change, origin, run)
    repo = bitbucket.repos[REPO]
    assert len(repo.statuses) == 2 and len(repo.reports) == 2
    assert len(bitbucket.our_comments(REPO, PR)) == 2
    jenkins_status = repo.statuses[(SHA, insights.origin_key(origin))]
    assert jenkins_status["name"] == "Herald (jenkins: app)"


async def test_a_green_run_without_a_comment_starts_no_conversation(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    ref = pipeline_ref()
    build = await client.get_build(ref)
    build.failed = False
    green = TestRun(id=str(NUMBER), suites=[
        Suite(name="unit tests", cases=CaseList([TestCase(name="test_login")]))])
    await publish(client, ref, green, build)
    assert bitbucket.our_comments(REPO, PR) == []
    [status] = bitbucket.repos[REPO].statuses.values()
    assert status["state"] == "SUCCESSFUL"


# ---- /retest --------------------------------------------------------------------------------


def comment(author: str, account: str, **extra: Any) -> Comment:
    return Comment(id="512870233", body="/retest", author=author, change=PR,
                   extra={"account_id": account, **extra})


@pytest.mark.parametrize(("author", "account", "admin", "trusted"), [
    (WRITER_NAME, WRITER_ID, True, True),
    (READER_NAME, READER_ID, True, False),
    (WRITER_NAME, WRITER_ID, False, True),  # the explicit grant, for a repository token
    (READER_NAME, READER_ID, False, False),
    ("stranger", "712020:nobody", False, False),
])
async def test_only_writers_may_retest(client: BitbucketClient, bitbucket: FakeBitbucket,
                                       author: str, account: str, admin: bool,
                                       trusted: bool) -> None:
    bitbucket.workspace_admin = admin
    assert await client.can_retest(REPO, comment(author, account)) is trusted


async def test_a_comment_without_an_account_is_not_trusted(client: BitbucketClient) -> None:
    assert await client.can_retest(REPO, comment(WRITER_NAME, "")) is False


async def test_the_latest_failed_pipeline_of_the_head_commit_is_rerun_as_a_new_one(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    [ref] = await failed_runs(client, REPO, comment(WRITER_NAME, WRITER_ID))
    assert ref.run_id == str(NUMBER)
    rerun = await client.rerun(ref)
    [created] = bitbucket.created_pipelines
    assert created["target"]["commit"]["hash"] == SHA
    assert created["target"]["ref_name"] == BRANCH
    assert created["target"]["selector"] == {"type": "branches", "pattern": BRANCH}
    assert rerun.url == f"{WEB}/pipelines/results/{created['build_number']}"
    assert rerun.jobs == ["unit tests", "shard (1)", "shard (2)"]


async def test_a_pull_request_pipeline_reports_to_its_pull_request_and_reruns_as_one(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    repo = bitbucket.repos[REPO]
    pipeline = repo.pipelines[-1]
    pipeline["target"] = {
        "type": "pipeline_pullrequest_target", "source": BRANCH, "destination": "main",
        "destination_commit": {"type": "commit", "hash": "a1b2c3d4e5f6"},
        "commit": {"type": "commit", "hash": SHA},
        "pull_request": {"type": "pullrequest", "id": PR, "title": "Change"},
        "selector": {"type": "pull-requests", "pattern": "**"},
    }
    bitbucket.commit_links_indexed = False  # the target alone names the pull request
    build = await client.get_build(pipeline_ref())
    assert (build.changes, build.name) == ([PR], "pull-requests: **")
    await client.rerun(build.ref)
    [created] = bitbucket.created_pipelines
    assert created["target"]["type"] == "pipeline_pullrequest_target"
    assert created["target"]["pull_request"] == {"id": PR}
    assert created["target"]["commit"] == {"type": "commit", "hash": SHA}


async def test_no_credential_reaches_the_log(client: BitbucketClient) -> None:
    with capture_logs() as lines:
        await published(client)
    assert lines
    logged = repr(lines)
    assert TOKEN not in logged and "Bearer" not in logged


async def test_a_lost_rerun_answer_starts_no_second_pipeline(client: BitbucketClient,
                                                             bitbucket: FakeBitbucket) -> None:
    bitbucket.lose_answer(r"POST .*/pipelines", how="reset")
    [ref] = await failed_runs(client, REPO, comment(WRITER_NAME, WRITER_ID))
    await client.rerun(ref)
    assert len(bitbucket.created_pipelines) == 1


async def test_a_reply_mentions_the_asker_by_account_and_nobody_else(
    client: BitbucketClient, bitbucket: FakeBitbucket
) -> None:
    asked = bitbucket.add_comment(REPO, PR, "/retest", bitbucket.users[WRITER_ID])
    await client.reply(REPO, Comment(id=str(asked["id"]), body="/retest", author=WRITER_NAME,
                                     change=PR, extra={"account_id": WRITER_ID}),
                       f"@{WRITER_NAME} re-running; ping @everyone")
    [reply] = bitbucket.our_comments(REPO, PR)
    assert reply["parent"] == {"id": asked["id"]}
    assert bitbucket.mentions == [WRITER_ID]


async def test_a_closed_pull_request_has_no_head_to_retest(client: BitbucketClient,
                                                           bitbucket: FakeBitbucket) -> None:
    bitbucket.repos[REPO].pullrequests[PR]["state"] = "MERGED"
    assert await client.head_change(REPO, comment(WRITER_NAME, WRITER_ID)) is None


async def test_failed_runs_of_another_forge_are_not_ours(client: BitbucketClient) -> None:
    change = Change(forge="github", repo=REPO, sha=SHA, numbers=(PR,))
    assert await client.latest_failed_runs(change) == []
