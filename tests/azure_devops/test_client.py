"""providers.azure_devops.client against the fake Azure DevOps, over real HTTP."""

from __future__ import annotations

import html
import re
import time

import pytest

from bot.events import Comment, Event
from bot.ports import Change
from bot.reports.markdown import WORD_JOINER
from bot.results.model import Status, TestRun
from bot.settings import ProviderSettings
from handlers.retest import parse_command
from providers.azure_devops import AzureDevOpsProvider
from providers.azure_devops.client import (
    COMMENT_LIMIT,
    GENRE,
    RETEST_POLICY,
    AzureDevOpsClient,
    create_client,
)
from providers.azure_devops.testresults import to_test_run
from providers.base import (
    CISource,
    ForgeTarget,
    NotConfigured,
    PermanentError,
    TransientError,
)
from providers.http import Unauthorized
from tests.azure_devops.conftest import ClientFactory
from tests.azure_devops.world import (
    BUILD,
    CONTRIBUTORS,
    DEFINITION,
    GUEST,
    MERGE_SHA,
    ORG,
    PRIYA,
    PROJECT,
    PROJECT_ID,
    PULL,
    REPO_ID,
    SOURCE_SHA,
    THREAD,
    build_ref,
    result,
)
from tests.fakes import publish
from tests.fakes.azure_devops import FakeAzureDevOps
from tests.providers.senders import fixture
from tests.reports.checks import live_references, outside_code_blocks


def test_one_object_is_both_ci_source_and_forge(client: AzureDevOpsClient) -> None:
    assert isinstance(client, CISource)
    assert isinstance(client, ForgeTarget)
    assert client.retest_policy == RETEST_POLICY


def test_no_token_is_not_configured() -> None:
    with pytest.raises(NotConfigured, match="HERALD_AZURE_DEVOPS_TOKEN"):
        create_client(ProviderSettings("azure-devops", {}), None)


async def test_a_wrong_token_is_refused(make_client: ClientFactory) -> None:
    client = make_client(azure_devops_token="not-the-pat")
    with pytest.raises(Unauthorized):
        await client.get_build(build_ref())


async def test_a_hook_of_another_organization_is_not_fetched(
    azure: FakeAzureDevOps,
) -> None:
    client = create_client(ProviderSettings("azure-devops", {
        "HERALD_AZURE_DEVOPS_URL": "https://dev.azure.com/contoso",
        "HERALD_AZURE_DEVOPS_TOKEN": "pat"}), None)
    ref = build_ref(extra={**build_ref().extra, "organization": "evil"})
    with pytest.raises(PermanentError, match="not the configured one"):
        await client.get_build(ref)


async def test_the_build_names_its_jobs_pull_request_and_commit(
    client: AzureDevOpsClient,
) -> None:
    build = await client.get_build(build_ref(change=None))
    assert (build.status, build.failed, build.changes, build.sha, build.name) == (
        "failed", True, [PULL], MERGE_SHA, DEFINITION[1])
    assert [(j.name, j.failed) for j in build.jobs] == [
        ("unit tests", True), ("integration tests", False)]
    assert build.jobs[0].url is not None and "&view=logs&j=" in build.jobs[0].url


def _counts(run: TestRun) -> tuple[int, int, int, int, int]:
    totals = run.totals()
    return totals.total, totals.passed, totals.failed, totals.errors, totals.skipped


async def test_every_result_of_every_test_run_counts(client: AzureDevOpsClient) -> None:
    """Twin executions of a parameterised test, a same-named test passing in another job,
    and a timeout: nothing folds, nothing that did not pass reads as passed."""
    run = await client.native_results(build_ref())
    assert run is not None
    # run 301: 2 passed, 1 + 6 + 1 failed, 1 timeout, 1 skipped; run 302: 2 passed
    assert _counts(run) == (14, 4, 8, 1, 1)
    failing = {(c.origin.name if c.origin else "", c.name) for c in run.failures()}
    assert ("Test / unit tests", "test_refunds") in failing
    assert ("Test / unit tests", "test_amount[10]") in failing
    timeout = next(c for c in run.cases() if c.name == "test_slow_gateway")
    assert (timeout.status, timeout.message) == (Status.ERROR, "outcome Timeout")


async def test_a_retried_job_turns_its_earlier_failure_into_a_retry(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.add_test_run(BUILD, 303, f"JUnit_TestResults_{BUILD}",
                       [result("test_refunds", "Passed")],
                       job=("Test", "unit", "unit tests"), attempt=2)
    run = await client.native_results(build_ref())
    assert run is not None
    [refunds] = [c for c in run.cases()
                 if c.name == "test_refunds" and c.origin and c.origin.name == "Test / unit tests"]
    assert (refunds.status, refunds.flaky) == (Status.PASSED, True)
    # The second attempt ran one test: what it did not run counts no more.
    assert run.totals().failed == 0 or all(
        c.origin and c.origin.name != "Test / unit tests" for c in run.failures())


async def test_artifacts_are_parsed_only_without_test_runs(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    assert await client.list_artifacts(build_ref()) == []
    azure.test_runs.clear()
    fresh = await client.get_build(build_ref())  # a new job reads the build anew
    assert fresh.ref.run_id == str(BUILD)
    client._builds.clear()
    listed = await client.list_artifacts(build_ref())
    assert [a.name for a in listed] == ["drop", "test-results"]
    data = b"".join([chunk async for chunk in client.open_artifact(build_ref(), listed[1])])
    assert data.startswith(b"PK")


async def test_a_report_is_one_status_and_one_thread_edited_in_place(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    ref = build_ref()
    build = await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    await client.list_artifacts(ref)
    first = await publish(client, ref, run, build)
    again = await publish(client, ref, run, build)
    assert (first.created, again.created, again.comment_id) == (True, False, first.comment_id)
    [status] = azure.herald_statuses(f"pr:{PULL}")
    assert (status["state"], status["context"], status["targetUrl"]) == (
        "failed", {"name": DEFINITION[1], "genre": GENRE}, build.url)
    [thread] = azure.our_threads(PULL)
    body = thread["comments"][0]["content"]
    assert "test\\_refunds" in body and "unit tests" in body and "Artifacts: " in body
    # An older build of the same definition never replaces the newer report.
    older = build_ref(run_id="90790")
    await publish(client, older, run, await client.get_build(older))
    assert azure.our_threads(PULL)[0]["comments"][0]["content"] == body
    assert len(azure.calls_to("POST", r"/threads$")) == 1


async def test_a_green_build_starts_no_thread_but_updates_one(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    ref = build_ref()
    build = await client.get_build(ref)
    green = TestRun(id=str(BUILD))
    green.merge([to_test_run([{"id": 1, "name": "r"}],
                             {1: [{"testCaseTitle": "t", "outcome": "Passed"}]}, run_id="1")])
    assert (await publish(client, ref, green, build)).comment_id is None
    assert azure.our_threads(PULL) == []
    [status] = azure.herald_statuses(f"pr:{PULL}")
    assert status["state"] == "succeeded"
    red = await client.native_results(ref)
    assert red is not None
    await publish(client, ref, red, build)
    await publish(client, ref, green, build)  # fixed: the thread says so, in place
    [thread] = azure.our_threads(PULL)
    assert "Status: PASSED" in thread["comments"][0]["content"]


async def test_hostile_test_names_render_inert(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    ref = build_ref()
    build = await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    await publish(client, ref, run, build)
    body = azure.our_threads(PULL)[0]["comments"][0]["content"]
    # A leading `/` survives only inside code, where no `/retest` is ever read.
    assert parse_command(body) is None
    assert not any(line.startswith("/") for line in body.splitlines())
    # Outside code, as a reader sees the text (links' targets, markers and escapes gone),
    # nothing mentions, links a work item or pull request, or shows an image or HTML.
    for line in outside_code_blocks(body):
        seen = html.unescape(re.sub(r"\\(.)", r"\1", re.sub(r"\]\([^)]*\)|<!--.*?-->", "]", line)))
        assert live_references(seen) == [], line
        assert "<img" not in line and "![" not in line, line  # shown as text, never drawn
    assert f"@{WORD_JOINER}everyone" in body and f"#{WORD_JOINER}123" in body
    # Azure's own mention form is broken inside code too (the messages' code blocks).
    assert "@<" not in body and f"@{WORD_JOINER}<6F9619FF" in body


async def test_a_huge_report_fits_the_comment_limit(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.results[301] = [result(f"test_{i}_" + "x" * 200, "Failed", errorMessage="y" * 2000)
                          for i in range(400)]
    ref = build_ref()
    run = await client.native_results(ref)
    assert run is not None
    await publish(client, ref, run, await client.get_build(ref))
    [thread] = azure.our_threads(PULL)
    assert 0 < len(thread["comments"][0]["content"]) <= COMMENT_LIMIT


async def test_a_lost_answer_to_the_new_thread_never_makes_two(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.lose_answer(r"POST .*/threads$", how="reset")
    ref = build_ref()
    run = await client.native_results(ref)
    assert run is not None
    await publish(client, ref, run, await client.get_build(ref))
    assert len(azure.our_threads(PULL)) == 1
    assert len(azure.calls_to("POST", r"/threads$")) == 1


async def test_a_delayed_answer_makes_the_next_request_wait(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.delay_next(r"GET .*/build/builds/\d+$", 1)
    started = time.monotonic()
    await client.get_build(build_ref())  # the build is answered, the timeline waits
    assert time.monotonic() - started >= 1.0
    assert len(azure.calls_to("GET", r"/timeline$")) == 1


def comment(author_id: str, author: str = "priya@contoso.com") -> Comment:
    return Comment(id="1", body="/retest", author=author, change=PULL, extra={
        "organization": ORG, "project": PROJECT, "author_id": author_id,
        "thread_id": THREAD, "repository_id": REPO_ID})


@pytest.mark.parametrize(("author", "deny", "allowed"), [
    (PRIYA, 0, True),     # a Contributor: queue builds allowed through the group
    (GUEST, 0, False),    # a Reader: may view builds only
    (PRIYA, 128, False),  # a deny on the user wins over the group's allow
])
async def test_only_people_allowed_to_queue_builds_may_retest(
    azure: FakeAzureDevOps, client: AzureDevOpsClient, author: str, deny: int, allowed: bool,
) -> None:
    if deny:
        azure.aces[azure.identities[PRIYA]["descriptor"]] = {"allow": 0, "deny": deny}
    assert await client.can_retest(f"{ORG}/{PROJECT}", comment(author)) is allowed
    [acl] = azure.calls_to("GET", "/_apis/accesscontrollists/")
    assert CONTRIBUTORS in acl.query["descriptors"] or author == GUEST


async def test_retest_retries_the_failed_stage_of_the_latest_failed_build(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    change = await client.head_change(f"{ORG}/{PROJECT}", comment(PRIYA))
    assert change == Change("azure-devops", f"{ORG}/{PROJECT}", MERGE_SHA, numbers=(PULL,),
                            extra=change.extra)
    runs = await client.latest_failed_runs(change)
    assert [r.run_id for r in runs] == [str(BUILD)]  # the older build is of another commit
    rerun = await client.rerun(runs[0])
    assert azure.retried_stages == [(BUILD, "Test")]
    assert rerun.jobs == ["unit tests"]
    [patch] = azure.calls_to("PATCH", "/stages/Test$")
    assert patch.query["api-version"].endswith("-preview.1")


async def test_a_build_without_stages_to_retry_is_queued_again(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.timelines[BUILD] = []
    rerun = await client.rerun(build_ref())
    [queued] = azure.queued
    assert (queued["definition"], queued["sourceBranch"], queued["sourceVersion"]) == (
        {"id": DEFINITION[0]}, f"refs/pull/{PULL}/merge", MERGE_SHA)
    assert rerun.runs == [str(queued["id"])]
    assert rerun.url == queued["_links"]["web"]["href"]  # the reply links the new build


async def test_a_reply_goes_into_the_comments_thread_once(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.add_comment(PULL, "/retest", author={"id": PRIYA}, thread_id=THREAD)
    await client.acknowledge(f"{ORG}/{PROJECT}", comment(PRIYA))
    await client.acknowledge(f"{ORG}/{PROJECT}", comment(PRIYA))
    await client.reply(f"{ORG}/{PROJECT}", comment(PRIYA), "re-running")
    await client.reply(f"{ORG}/{PROJECT}", comment(PRIYA), "re-running")
    [thread] = [t for t in azure.threads[PULL] if t["id"] == THREAD]
    assert [c["content"].split("\n")[-1] for c in thread["comments"]] == ["/retest", "re-running"]
    assert thread["comments"][1]["parentCommentId"] == 1
    assert len(azure.likes) == 1


@pytest.mark.parametrize("organization", ["", "..", "contoso/../evil", "a b", None])
async def test_an_organization_name_that_would_leave_the_path_is_refused(
    client: AzureDevOpsClient, organization: str | None,
) -> None:
    with pytest.raises(PermanentError, match="names no Azure DevOps organization"):
        await client.get_build(build_ref(extra={**build_ref().extra,
                                                "organization": organization}))


async def test_a_pipeline_building_a_github_repository_reports_on_github(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    build = azure.builds[BUILD]
    build["repository"] = {"id": "octo/app", "type": "GitHub", "name": "octo/app",
                           "url": "https://github.com/octo/app.git"}
    build["triggerInfo"] = {"pr.number": "42", "pr.sourceSha": "ab" * 20}
    ref = build_ref(change=None)
    change = await client.change_of(ref, await client.get_build(ref))
    assert (change.forge, change.repo, change.sha, change.numbers, change.numbers_known) == (
        "github", "octo/app", "ab" * 20, (42,), True)


async def test_a_change_without_known_pull_requests_reports_where_its_commit_is_the_head(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    ref = build_ref()
    run = await client.native_results(ref)
    assert run is not None
    build = await client.get_build(ref)
    change = await client.change_of(ref, build)
    unknown = Change(change.forge, change.repo, SOURCE_SHA, numbers_known=False,
                     extra=change.extra)
    await client.publish(unknown, client.origin_of(ref, build), run)
    assert len(azure.herald_statuses(f"pr:{PULL}")) == 1
    assert len(azure.our_threads(PULL)) == 1


async def test_a_build_of_a_branch_gets_a_commit_status_and_no_thread(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    build = azure.builds[BUILD]
    build.update(sourceBranch="refs/heads/main", triggerInfo={})
    ref = build_ref(change=None, branch="refs/heads/main")
    run = await client.native_results(ref)
    assert run is not None
    published = await publish(client, ref, run, await client.get_build(ref))
    [status] = azure.herald_statuses(f"commit:{MERGE_SHA}")
    assert (status["state"], published.comment_id) == ("failed", None)
    assert azure.our_threads(PULL) == []


async def test_a_5xx_on_a_read_is_retried_in_place(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.fail_next(r"GET .*/build/builds/\d+$", status=503)
    build = await client.get_build(build_ref())
    assert build.status == "failed"
    assert len(azure.calls_to("GET", r"/build/builds/\d+$")) == 2


async def test_a_hanging_api_is_a_transient_error_for_the_queue(
    azure: FakeAzureDevOps, make_client: ClientFactory,
) -> None:
    client = make_client(azure_devops_timeout="0.3")
    azure.fail_next(r"GET .*/build/builds/\d+$", hang=True, times=10)
    with pytest.raises(TransientError):
        await client.get_build(build_ref())


async def test_a_lost_answer_to_a_stage_retry_is_not_sent_again(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.lose_answer(r"PATCH .*/stages/Test$", how="reset")
    await client.rerun(build_ref())
    assert azure.retried_stages == [(BUILD, "Test")]


async def test_a_lost_answer_to_a_reply_never_posts_it_twice(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.add_comment(PULL, "/retest", author={"id": PRIYA}, thread_id=THREAD)
    azure.lose_answer(r"POST .*/threads/\d+/comments$", how="reset")
    await client.reply(f"{ORG}/{PROJECT}", comment(PRIYA), "re-running")
    [thread] = [t for t in azure.threads[PULL] if t["id"] == THREAD]
    assert len(thread["comments"]) == 2


async def test_a_pipeline_run_hook_reports_the_same_change_as_a_build_hook(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    """The run-state hook names the project by id and no repository: the build says."""
    event = AzureDevOpsProvider().parse(
        {"X-Herald-Token": "t"}, fixture("azure-devops", "run_state_changed_completed.json"),
        [b"t"])
    assert isinstance(event, Event) and event.run is not None
    azure.add_build(PROJECT_ID, int(event.run.run_id), definition=(71, "payments-api-yaml"),
                    sha=MERGE_SHA, branch=f"refs/pull/{PULL}/merge", pull=PULL,
                    repository=(REPO_ID, "payments-api"))
    build = await client.get_build(event.run)
    change = await client.change_of(event.run, build)
    assert (change.repo, change.numbers, change.extra["repository_id"]) == (
        f"{ORG}/{PROJECT}", (PULL,), REPO_ID)
    assert client.origin_of(event.run, build).name == "payments-api-yaml"


async def test_a_queued_build_whose_answer_was_lost_is_never_queued_twice(
    azure: FakeAzureDevOps, client: AzureDevOpsClient,
) -> None:
    azure.timelines[BUILD] = []
    azure.lose_answer(r"POST .*/_apis/build/builds$", how="reset")
    with pytest.raises(PermanentError, match="did not say whether"):
        await client.rerun(build_ref())
    assert len(azure.queued) == 1
