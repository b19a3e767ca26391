"""providers.gitlab.client against the fake GitLab, over real HTTP through python-gitlab."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import requests

from bot.events import Comment, RunRef
from bot.ports import Change, ReportOrigin
from bot.reports.markdown import WORD_JOINER
from bot.results.model import Artifact, Status, Suite, TestCase, TestRun
from bot.settings import ConfigError, ProviderSettings
from providers.base import CISource, ForgeTarget, NotConfigured, PermanentError, TransientError
from providers.gitlab import notes
from providers.gitlab.api import TooLarge
from providers.gitlab.client import RETEST_POLICY, STATUS_NAME, GitLabClient, create_client
from tests.fakes import failed_runs, publish, publish_error
from tests.fakes.gitlab import TOKEN, FakeGitLab, ObjectStorage
from tests.gitlab.conftest import ClientFactory
from tests.gitlab.world import (
    BRANCH,
    CHILD,
    DEVELOPER_ID,
    DEVELOPER_NAME,
    GUEST_ID,
    GUEST_NAME,
    MR,
    PATH,
    PROJECT,
    ROOT,
    SHA,
    SNEAKY_NAMES,
    Jobs,
    child_ref,
    root_ref,
)

WEB = f"https://gitlab.example.com/{PATH}"


def test_one_object_is_both_ci_client_and_forge(client: GitLabClient) -> None:
    assert isinstance(client, CISource)
    assert isinstance(client, ForgeTarget)
    assert client.retest_policy == RETEST_POLICY


# ---- construction -------------------------------------------------------------------------


def test_no_token_is_not_configured() -> None:
    with pytest.raises(NotConfigured, match="HERALD_GITLAB_TOKEN"):
        create_client(ProviderSettings("gitlab", {"HERALD_GITLAB_URL": "https://gl.example"}),
                      None)


@pytest.mark.parametrize("url", ["gitlab.example.com", "ftp://gitlab.example.com", "https://"])
def test_a_malformed_url_is_a_config_error(url: str) -> None:
    settings = ProviderSettings("gitlab", {"HERALD_GITLAB_URL": url, "HERALD_GITLAB_TOKEN": "t"})
    with pytest.raises(ConfigError, match="HERALD_GITLAB_URL"):
        create_client(settings, None)


@pytest.mark.parametrize(
    "env",
    [
        {"HERALD_GITLAB_TIMEOUT": "0"},
        {"HERALD_GITLAB_TIMEOUT": "300"},
        {"HERALD_GITLAB_TIMEOUT": "60", "HERALD_JOB_TIMEOUT_SECONDS": "30"},
    ],
)
def test_a_request_timeout_must_fit_inside_the_job_timeout(env: dict[str, str]) -> None:
    settings = ProviderSettings("gitlab", {"HERALD_GITLAB_TOKEN": "t", **env})
    with pytest.raises(ConfigError, match="HERALD_GITLAB_TIMEOUT"):
        create_client(settings, None)


async def test_the_token_can_come_from_a_file(gitlab: FakeGitLab, world: Jobs,
                                              tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    settings = ProviderSettings("gitlab", {"HERALD_GITLAB_URL": gitlab.url,
                                           "HERALD_GITLAB_TOKEN_FILE": str(tmp_path / "token")})
    client = create_client(settings, None)
    try:
        build = await client.get_build(root_ref())
    finally:
        await client.aclose()
    assert build.ref.run_id == str(ROOT)
    assert {call.token for call in gitlab.calls} == {TOKEN}


async def test_defaults_to_gitlab_com() -> None:
    client = create_client(ProviderSettings("gitlab", {"HERALD_GITLAB_TOKEN": "t"}), None)
    try:
        assert client.api.url == "https://gitlab.com"
    finally:
        await client.aclose()


async def test_a_wrong_token_is_a_permanent_error_naming_the_setting(
    make_client: ClientFactory, gitlab: FakeGitLab, world: Jobs
) -> None:
    client = make_client(gitlab_token="glpat-wrong")
    with pytest.raises(PermanentError, match="HERALD_GITLAB_TOKEN") as caught:
        await client.get_build(root_ref())
    assert "glpat-wrong" not in str(caught.value)


# ---- reading a pipeline -------------------------------------------------------------------


async def test_get_build_folds_child_pipelines_into_one_build(
    client: GitLabClient, gitlab: FakeGitLab, world: Jobs
) -> None:
    build = await client.get_build(root_ref())
    assert (build.status, build.failed, build.url) == ("failed", True, f"{WEB}/-/pipelines/{ROOT}")
    assert sorted((job.name, job.status, job.failed) for job in build.jobs) == [
        ("build", "success", False),
        ("docs", "success", False),
        ("e2e / e2e-chrome", "failed", True),
        ("integration-tests", "failed", True),
        ("lint", "success", False),
        ("unit-tests", "failed", True),
    ]
    # Found through the commit: the merge request whose head is this pipeline's commit.
    assert build.changes == [MR]
    assert build.ref.change == MR and build.ref.extra["project_id"] == PROJECT
    [jobs_call] = gitlab.calls_to("GET", rf"/pipelines/{ROOT}/jobs$")
    assert jobs_call.query["include_retried"] == "false"
    # Asked at once (in parallel), so in no particular order.
    assert sorted(str(c) for c in gitlab.calls_to("GET", rf"/pipelines/{CHILD}")) == [
        f"GET /projects/{PROJECT}/pipelines/{CHILD}",
        f"GET /projects/{PROJECT}/pipelines/{CHILD}/bridges",
        f"GET /projects/{PROJECT}/pipelines/{CHILD}/jobs",
    ]


async def test_only_the_latest_attempt_of_a_retried_job_counts(
    client: GitLabClient, gitlab: FakeGitLab, world: Jobs
) -> None:
    world.unit["retried"] = True
    gitlab.add_job(ROOT, "unit-tests", status="success", junit=True)
    build = await client.get_build(root_ref())
    assert [(j.name, j.status) for j in build.jobs if j.name == "unit-tests"] == [
        ("unit-tests", "success")]


async def test_a_child_pipelines_hook_reports_its_parent(client: GitLabClient,
                                                         world: Jobs) -> None:
    build = await client.get_build(child_ref())
    assert build.ref.run_id == str(ROOT)
    assert build.url == f"{WEB}/-/pipelines/{ROOT}"
    assert "e2e / e2e-chrome" in [job.name for job in build.jobs]


async def test_the_merge_request_from_the_hook_wins_over_a_lookup(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    build = await client.get_build(root_ref(change=MR))
    assert build.changes == [MR]
    assert gitlab.calls_to("GET", "merge_requests") == []


async def test_an_old_commit_is_not_reported_on_a_merge_request_that_moved_on(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    gitlab.merge_requests[(PROJECT, MR)]["sha"] = "f" * 40
    build = await client.get_build(root_ref())
    assert build.changes == []
    # Looked by commit, then by branch, and found nothing current.
    assert [str(c) for c in gitlab.calls if "merge_requests" in c.path] == [
        f"GET /projects/{PROJECT}/repository/commits/{SHA}/merge_requests",
        f"GET /projects/{PROJECT}/merge_requests",
    ]


async def test_native_results_merge_parent_and_child_test_reports(client: GitLabClient) -> None:
    run = await client.native_results(root_ref())
    assert run is not None
    assert [s.name for s in run.suites] == ["unit-tests", "e2e / e2e-chrome"]
    cases = {c.name: c for c in run.cases()}
    assert {name: c.status for name, c in cases.items()} == {
        "test_login": Status.PASSED, "/approve": Status.FAILED, "/merge": Status.FAILED,
        "@all": Status.ERROR, "@group/sub": Status.SKIPPED,
        "checkout flow": Status.FAILED, "cart flow": Status.PASSED,
    }
    checkout = cases["checkout flow"]
    assert checkout.message == "Timeout waiting for #pay"
    assert checkout.stack_trace == "at checkout.spec.ts:42\nat runner.ts:7"
    assert checkout.duration == 12.5 and checkout.suite == "e2e / e2e-chrome"
    assert cases["/approve"].file == "spec/approve_spec.rb"


async def test_no_test_report_means_no_native_results(client: GitLabClient,
                                                      gitlab: FakeGitLab) -> None:
    gitlab.test_reports.clear()
    assert await client.native_results(root_ref()) is None


async def test_artifacts_are_offered_only_where_gitlab_parsed_nothing(
    client: GitLabClient, world: Jobs
) -> None:
    artifacts = await client.list_artifacts(root_ref())
    # unit-tests and e2e-chrome have JUnit reports: their results come from the test
    # report, so their archives are not parsed again. docs' archive has expired.
    assert [(a.name, a.url, a.extra["parse"]) for a in artifacts] == [
        ("build", f"{WEB}/-/jobs/{world.build['id']}/artifacts/browse", True),
        ("integration-tests", f"{WEB}/-/jobs/{world.integration['id']}/artifacts/browse", True),
    ]
    assert all(a.size and a.size > 0 for a in artifacts)


async def test_an_artifact_streams_in_chunks(client: GitLabClient, gitlab: FakeGitLab,
                                             world: Jobs) -> None:
    [_, integration] = await client.list_artifacts(root_ref())
    chunks = [chunk async for chunk in client.open_artifact(root_ref(), integration)]
    assert b"".join(chunks) == gitlab.artifacts[world.integration["id"]]


async def test_an_artifact_over_the_limit_stops_downloading(
    make_client: ClientFactory, world: Jobs
) -> None:
    client = make_client(artifact_max_bytes="64")
    artifact = next(a for a in await client.list_artifacts(root_ref()) if a.name == "build")
    assert artifact.size is not None and artifact.size > 64
    with pytest.raises(TooLarge, match="64-byte limit"):
        async for _ in client.open_artifact(root_ref(), artifact):
            pass


async def test_the_token_never_follows_a_redirect_to_object_storage(
    client: GitLabClient, gitlab: FakeGitLab, storage: ObjectStorage, world: Jobs
) -> None:
    artifact = next(a for a in await client.list_artifacts(root_ref())
                    if a.name == "integration-tests")
    data = b"".join([chunk async for chunk in client.open_artifact(root_ref(), artifact)])
    assert data == gitlab.artifacts[world.integration["id"]]
    assert len(storage.requests) == 1
    assert storage.leaked == []
    # ...while GitLab itself was asked with the token.
    [call] = gitlab.calls_to("GET", rf"/jobs/{world.integration['id']}/artifacts$")
    assert call.token == TOKEN


def test_object_storage_catches_a_session_that_forwards_the_token(
    gitlab: FakeGitLab, storage: ObjectStorage, world: Jobs
) -> None:
    """The control for the test above: plain `requests` forwards PRIVATE-TOKEN."""
    url = f"{gitlab.url}/api/v4/projects/{PROJECT}/jobs/{world.build['id']}/artifacts"
    with requests.Session() as session:
        answer = session.get(url, headers={"PRIVATE-TOKEN": TOKEN}, timeout=5)
    assert answer.status_code == 400
    assert storage.leaked == ["private-token"]


# ---- publishing ---------------------------------------------------------------------------


def failing_run(*names: str, trace: str = "boom") -> TestRun:
    cases = [TestCase(name=name, classname="suite", status=Status.FAILED, message="failed",
                      stack_trace=trace) for name in names]
    cases.append(TestCase(name="ok", classname="suite"))
    return TestRun(id=str(ROOT), suites=[Suite("unit", cases)],
                   url=f"{WEB}/-/pipelines/{ROOT}")


async def test_publish_sets_one_status_and_one_sticky_note(
    client: GitLabClient, gitlab: FakeGitLab, world: Jobs
) -> None:
    build = await client.get_build(root_ref())
    run = failing_run("test_refunds")
    published = await publish(client, root_ref(), run, build)
    [status] = gitlab.statuses[(PROJECT, SHA)]
    assert {k: status[k] for k in ("name", "status", "ref", "pipeline_id", "target_url")} == {
        "name": STATUS_NAME, "status": "failed", "ref": BRANCH, "pipeline_id": ROOT,
        "target_url": f"{WEB}/-/pipelines/{ROOT}",
    }
    assert status["description"].startswith("1 failed, 1 passed")
    [note] = gitlab.our_notes(PROJECT, MR)
    assert note["body"].startswith(notes.REPORT_MARKER)
    assert notes.reported_pipeline(note["body"]) == ROOT
    assert published.created and published.comment_id == str(note["id"])
    assert published.status_id == str(status["id"])
    body = note["body"]
    assert "test\\_refunds" in body or "test_refunds" in body
    assert f"[Pipeline #{WORD_JOINER}{ROOT}]({WEB}/-/pipelines/{ROOT})" in body
    assert f"({WEB}/-/jobs/{world.e2e['id']})" in body  # a failed job of the child pipeline
    # Every job archive is linked, parsed or not (expired ones are gone).
    for job in (world.unit, world.integration, world.build, world.e2e):
        assert f"{WEB}/-/jobs/{job['id']}/artifacts/browse" in body
    assert f"/-/jobs/{world.docs['id']}/artifacts/browse" not in body


async def test_publishing_again_updates_in_place_and_never_duplicates(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    build = await client.get_build(root_ref())
    await publish(client, root_ref(), failing_run("a"), build)
    again = await publish(client, root_ref(), failing_run("a"), build)
    assert not again.created
    assert len(gitlab.statuses[(PROJECT, SHA)]) == 1
    assert gitlab.calls_to("PUT", "/notes/") == []  # same text: nothing to change
    await publish(client, root_ref(), failing_run("a", "b"), build)
    [note] = gitlab.our_notes(PROJECT, MR)
    assert "| suite.b |" in note["body"] or "suite.b" in note["body"]
    assert len(gitlab.calls_to("PUT", f"/notes/{note['id']}$")) == 1
    assert len(gitlab.calls_to("POST", "/notes$")) == 1
    # New results: GitLab keeps statuses as records, the newest one is what it shows.
    latest = gitlab.statuses[(PROJECT, SHA)][-1]
    assert latest["description"].startswith("2 failed, 1 passed")


async def test_concurrent_publishes_leave_one_note(client: GitLabClient,
                                                   gitlab: FakeGitLab) -> None:
    build = await client.get_build(root_ref())
    await asyncio.gather(*(publish(client, root_ref(), failing_run("x"), build)
                           for _ in range(4)))
    assert len(gitlab.our_notes(PROJECT, MR)) == 1


async def test_a_twin_note_from_another_process_is_removed(
    make_client: ClientFactory, gitlab: FakeGitLab, world: Jobs
) -> None:
    first, second = make_client(), make_client()
    build = await first.get_build(root_ref())
    # Two processes, each with its own lock, publish at the same moment.
    await asyncio.gather(publish(first, root_ref(), failing_run("x"), build),
                         publish(second, root_ref(), failing_run("x"), build))
    assert len(gitlab.our_notes(PROJECT, MR)) == 1


async def test_someone_elses_note_with_our_marker_is_left_alone(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    gitlab.add_note(PROJECT, MR, f"quoting Herald:\n{notes.REPORT_MARKER}", author_id=1)
    build = await client.get_build(root_ref())
    await publish(client, root_ref(), failing_run("x"), build)
    assert len(gitlab.our_notes(PROJECT, MR)) == 1
    assert gitlab.calls_to("PUT", "/notes/") == []


async def test_a_workflow_never_takes_over_the_note_of_one_whose_name_it_begins(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    # Another CI system's workflows each get a note; "CI"'s marker would be found inside
    # "CI nightly"'s but for the " -->" that ends it.
    change = Change(forge="gitlab", repo=PATH, sha=SHA, numbers=(MR,),
                    extra={"project_id": PROJECT})

    def circleci(name: str, sequence: int) -> ReportOrigin:
        ref = RunRef(provider="circleci", repo=f"gl/{PATH}", run_id=f"p-{sequence}", sha=SHA)
        return ReportOrigin(run=ref, name=name, sequence=sequence, failed=True)

    await client.publish(change, circleci("CI nightly", 7), failing_run("nightly"))
    await client.publish(change, circleci("CI", 8), failing_run("x"))
    bodies = [n["body"] for n in gitlab.our_notes(PROJECT, MR)]
    assert [b.splitlines()[0] for b in bodies] == [
        "<!-- herald:report:circleci:CI%20nightly -->", "<!-- herald:report:circleci:CI -->",
    ]
    assert "suite.nightly" in bodies[0] and "suite.x" not in bodies[0]


async def test_our_reply_to_a_retest_is_not_taken_for_the_report_note(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    reply = f"{notes.reply_marker('2219876')}\n@dev re-running the failed jobs"
    gitlab.add_note(PROJECT, MR, reply, author_id=gitlab.me["id"],
                    username=gitlab.me["username"])
    build = await client.get_build(root_ref())
    await publish(client, root_ref(), failing_run("x"), build)
    bodies = [n["body"] for n in gitlab.our_notes(PROJECT, MR)]
    assert bodies[0] == reply
    assert len(bodies) == 2 and notes.is_report(bodies[1])


async def test_an_older_pipeline_never_overwrites_a_newer_report(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    newer = f"{notes.REPORT_MARKER}\n{notes.pipeline_marker(ROOT + 10)}\nnewer results"
    gitlab.add_note(PROJECT, MR, newer, author_id=gitlab.me["id"],
                    username=gitlab.me["username"])
    build = await client.get_build(root_ref())
    await publish(client, root_ref(), failing_run("x"), build)
    [note] = gitlab.our_notes(PROJECT, MR)
    assert note["body"] == newer


async def test_the_note_is_found_beyond_the_first_page(client: GitLabClient,
                                                       gitlab: FakeGitLab) -> None:
    for number in range(130):
        gitlab.add_note(PROJECT, MR, f"comment {number}", author_id=2, username="reviewer")
    build = await client.get_build(root_ref())
    await publish(client, root_ref(), failing_run("x"), build)
    for number in range(5):
        gitlab.add_note(PROJECT, MR, f"later {number}", author_id=2, username="reviewer")
    await publish(client, root_ref(), failing_run("x", "y"), build)
    assert len(gitlab.our_notes(PROJECT, MR)) == 1
    listed = gitlab.calls_to("GET", f"/merge_requests/{MR}/notes")
    pages = {call.query.get("page", "1") for call in listed}
    assert {"1", "2"} <= pages


async def test_quick_actions_and_mentions_in_test_names_do_nothing(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    build = await client.get_build(root_ref())
    run = await client.native_results(root_ref())
    assert run is not None
    await publish(client, root_ref(), run, build)
    [note] = gitlab.our_notes(PROJECT, MR)
    assert gitlab.quick_actions == []
    assert gitlab.mentions == []
    assert all(not line.lstrip().startswith("/") for line in note["body"].splitlines())
    shown = note["body"]
    for invisible in (notes.ZERO_WIDTH_JOINER, notes.ZERO_WIDTH_SPACE, WORD_JOINER):
        shown = shown.replace(invisible, "")
    for name in SNEAKY_NAMES:
        assert name.lstrip("/@") in shown


async def test_a_huge_report_fits_gitlabs_note_limit(client: GitLabClient,
                                                     gitlab: FakeGitLab) -> None:
    names = [f"@team case {n}" for n in range(400)]
    run = failing_run(*names, trace="/merge\n" + "x" * 7000)
    build = await client.get_build(root_ref())
    await publish(client, root_ref(), run, build)
    [note] = gitlab.our_notes(PROJECT, MR)
    assert 100_000 < len(note["body"]) <= notes.NOTE_LIMIT
    assert gitlab.quick_actions == [] and gitlab.mentions == []


async def test_artifacts_the_report_already_lists_are_not_linked_twice(
    client: GitLabClient, gitlab: FakeGitLab, world: Jobs
) -> None:
    build = await client.get_build(root_ref())
    run = failing_run("x")
    browse = f"{WEB}/-/jobs/{world.integration['id']}/artifacts/browse"
    run.artifacts = [Artifact("integration-tests", 100, browse)]
    await publish(client, root_ref(), run, build)
    [note] = gitlab.our_notes(PROJECT, MR)
    assert note["body"].count(browse) == 1


async def test_a_pipeline_without_merge_request_gets_only_the_status(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    gitlab.merge_requests.clear()
    build = await client.get_build(root_ref())
    published = await publish(client, root_ref(), failing_run("x"), build)
    assert published.comment_id is None
    assert len(gitlab.statuses[(PROJECT, SHA)]) == 1


@pytest.mark.parametrize(
    ("cases", "pipeline", "state"),
    [
        ([Status.PASSED], "success", "success"),
        ([Status.PASSED, Status.FAILED], "failed", "failed"),
        ([Status.PASSED, Status.ERROR], "success", "failed"),
        ([Status.PASSED, Status.SKIPPED], "failed", "success"),  # the tests passed
        ([], "failed", "failed"),
        ([], "success", "success"),
        ([Status.PASSED], "running", "running"),
    ],
)
async def test_the_status_says_what_the_tests_say(
    client: GitLabClient, gitlab: FakeGitLab, cases: list[Status], pipeline: str, state: str
) -> None:
    gitlab.pipelines[ROOT]["status"] = pipeline
    build = await client.get_build(root_ref())
    run = TestRun(id="r", suites=[Suite("s", [TestCase(f"t{i}", status=s)
                                               for i, s in enumerate(cases)])])
    await publish(client, root_ref(), run, build)
    assert [s["status"] for s in gitlab.statuses[(PROJECT, SHA)]] == [state]


async def test_publish_error_fails_the_status_and_says_why(client: GitLabClient,
                                                          gitlab: FakeGitLab) -> None:
    message = "Herald could not report on this run: " + "artifact too large " * 30
    await publish_error(client, root_ref(), message)
    await publish_error(client, root_ref(), message)  # a retried job: still one status
    [status] = gitlab.statuses[(PROJECT, SHA)]
    assert status["status"] == "failed" and status["name"] == STATUS_NAME
    assert len(status["description"]) == 255
    assert status["description"].startswith("Herald could not report on this run: artifact")


# ---- rate limits and faults ---------------------------------------------------------------


async def test_a_429_names_when_to_come_back(client: GitLabClient, gitlab: FakeGitLab) -> None:
    gitlab.fail_next(rf"GET /projects/{PROJECT}/pipelines/{ROOT}$", status=429)
    with pytest.raises(TransientError) as caught:
        await client.get_build(root_ref())
    # Retry-After: 7, or (for a call made in parallel) the reset 7 s away, less a moment.
    assert caught.value.retry_after is not None and 6 <= caught.value.retry_after <= 7
    # Only once: python-gitlab's own sleeping retry loop is off.
    assert len(gitlab.calls_to("GET", rf"/pipelines/{ROOT}$")) == 1


async def test_without_retry_after_the_reset_time_is_a_unix_time(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    reset = int(time.time()) + 42
    gitlab.fail_next(rf"GET /projects/{PROJECT}/pipelines/{ROOT}$", status=429,
                     headers={"RateLimit-Remaining": "0", "RateLimit-Reset": str(reset)})
    with pytest.raises(TransientError) as caught:
        await client.get_build(root_ref())
    assert caught.value.retry_after is not None and 38 <= caught.value.retry_after <= 42


async def test_a_spent_rate_limit_pauses_calls_until_its_reset(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    gitlab.rate_limit = {"RateLimit-Remaining": "0",
                         "RateLimit-Reset": str(int(time.time()) + 30)}
    comment = note(DEVELOPER_NAME, DEVELOPER_ID)
    assert await client.can_retest(PATH, comment)  # answered, but the window is spent
    with pytest.raises(TransientError, match="rate limit") as caught:
        await client.can_retest(PATH, comment)
    assert caught.value.retry_after is not None and caught.value.retry_after > 20
    assert len(gitlab.calls) == 1


async def test_a_5xx_is_retried_quickly_then_succeeds(client: GitLabClient,
                                                      gitlab: FakeGitLab) -> None:
    gitlab.fail_next(rf"GET /projects/{PROJECT}/pipelines/{ROOT}$", status=502, times=2)
    build = await client.get_build(root_ref())
    assert build.status == "failed"
    assert len(gitlab.calls_to("GET", rf"/pipelines/{ROOT}$")) == 3


async def test_a_lasting_5xx_becomes_a_transient_error(client: GitLabClient,
                                                       gitlab: FakeGitLab) -> None:
    gitlab.fail_next(rf"GET /projects/{PROJECT}/pipelines/{ROOT}$", status=503, times=10)
    with pytest.raises(TransientError, match="503"):
        await client.get_build(root_ref())
    assert len(gitlab.calls_to("GET", rf"/pipelines/{ROOT}$")) == 3


async def test_a_hanging_gitlab_times_out_without_blocking_other_work(
    make_client: ClientFactory, gitlab: FakeGitLab, world: Jobs
) -> None:
    client = make_client(gitlab_timeout="0.5")
    gitlab.fail_next(rf"GET /projects/{PROJECT}/pipelines/{ROOT}$", hang=True, times=3)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    hanging = asyncio.create_task(client.get_build(root_ref()))
    await asyncio.sleep(0.2)
    # Another call of the same client finishes while the first one hangs.
    comment = Comment(id="1", body="/retest", author=DEVELOPER_NAME, change=MR,
                      extra={"project_id": PROJECT, "user_id": DEVELOPER_ID})
    assert await client.can_retest(PATH, comment) is True
    assert not hanging.done()
    with pytest.raises(TransientError, match="ReadTimeout"):
        await hanging
    elapsed = time.monotonic() - started
    ticker.cancel()
    assert 1.4 < elapsed < 6
    assert ticks > elapsed / 0.01 * 0.5  # the loop kept running throughout


# ---- /retest -------------------------------------------------------------------------------


def note(author: str, user_id: int | None, note_id: str = "2219876") -> Comment:
    return Comment(id=note_id, body="/retest", author=author, change=MR,
                   extra={"project_id": PROJECT, "user_id": user_id, "last_commit_sha": SHA})


@pytest.mark.parametrize(
    ("user_id", "level", "allowed"),
    [(7001, 50, True), (7002, 40, True), (7003, 30, True), (7004, 20, False),
     (7005, 10, False), (7006, None, False)],
)
async def test_developers_and_above_may_retest(
    client: GitLabClient, gitlab: FakeGitLab, user_id: int, level: int | None, allowed: bool
) -> None:
    if level is not None:
        gitlab.add_member(PROJECT, user_id, f"user{user_id}", level)
    assert await client.can_retest(PATH, note(f"user{user_id}", user_id)) is allowed
    [call] = gitlab.calls_to("GET", "/members/all/")
    assert call.path == f"/projects/{PROJECT}/members/all/{user_id}"


async def test_a_comment_without_a_user_id_is_not_trusted(client: GitLabClient,
                                                          gitlab: FakeGitLab) -> None:
    assert await client.can_retest(PATH, note("someone", None)) is False
    assert gitlab.calls == []


async def test_acknowledge_awards_eyes_once_even_when_redelivered(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    posted = gitlab.add_note(PROJECT, MR, "/retest", author_id=DEVELOPER_ID,
                             username=DEVELOPER_NAME)
    comment = note(DEVELOPER_NAME, DEVELOPER_ID, str(posted["id"]))
    await client.acknowledge(PATH, comment)
    await client.acknowledge(PATH, comment)
    assert [a["name"] for a in gitlab.awards[posted["id"]]] == ["eyes"]


async def test_failed_runs_are_the_latest_failed_pipelines_of_the_head_commit(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    runs = await failed_runs(client, PATH, note(DEVELOPER_NAME, DEVELOPER_ID))
    assert [(r.run_id, r.sha, r.change, r.url) for r in runs] == [
        (str(ROOT), SHA, MR, f"{WEB}/-/pipelines/{ROOT}")]
    assert runs[0].extra["project_id"] == PROJECT


async def test_a_newer_passing_pipeline_on_the_same_ref_means_nothing_to_retest(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    gitlab.add_pipeline(PROJECT, ROOT + 5, sha=SHA, ref=BRANCH, status="success")
    gitlab.link_pipeline(PROJECT, MR, ROOT + 5)
    assert await failed_runs(client, PATH, note(DEVELOPER_NAME, DEVELOPER_ID)) == []


async def test_rerun_retries_the_pipeline_and_names_the_failed_jobs(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    rerun = await client.rerun(root_ref())
    assert rerun.runs == [str(ROOT)]
    assert sorted(rerun.jobs) == ["e2e / e2e-chrome", "integration-tests", "unit-tests"]
    assert gitlab.retried == [ROOT]


async def test_rerun_retries_failed_child_pipelines_in_place(
    client: GitLabClient, gitlab: FakeGitLab, world: Jobs
) -> None:
    for job in (world.unit, world.integration):
        job["status"] = "success"
    rerun = await client.rerun(root_ref())
    assert (rerun.runs, rerun.jobs) == ([str(CHILD)], ["e2e / e2e-chrome"])
    assert gitlab.retried == [CHILD]


async def test_rerun_everything_starts_a_new_merge_request_pipeline(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    rerun = await client.rerun(root_ref(change=MR), failed_only=False)
    [created] = gitlab.created_pipelines
    assert rerun.runs == [str(created["id"])]
    assert created["ref"] == f"refs/merge-requests/{MR}/head"


async def test_a_reply_mentions_only_the_person_who_asked(client: GitLabClient,
                                                          gitlab: FakeGitLab) -> None:
    await client.reply(PATH, note(DEVELOPER_NAME, DEVELOPER_ID),
                       f"@{DEVELOPER_NAME} re-running.\n/merge\n@all see above")
    [reply] = gitlab.our_notes(PROJECT, MR)
    assert gitlab.mentions == [DEVELOPER_NAME]
    assert gitlab.quick_actions == []
    assert reply["body"].startswith(f"<!-- herald:reply:2219876 -->\n@{DEVELOPER_NAME} re-running.")


async def test_a_guest_is_refused_without_any_write(client: GitLabClient,
                                                    gitlab: FakeGitLab) -> None:
    assert await client.can_retest(PATH, note(GUEST_NAME, GUEST_ID)) is False
    assert [c.method for c in gitlab.calls] == ["GET"]


# ---- writes and GitLab's refusals ----------------------------------------------------------


async def test_a_write_that_may_have_happened_is_looked_for_before_it_is_repeated(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    build = await client.get_build(root_ref())
    gitlab.fail_next(rf"POST /projects/{PROJECT}/statuses/", status=502)
    await publish(client, root_ref(), failing_run("x"), build)
    assert [str(c) for c in gitlab.calls if "/statuses" in c.path] == [
        f"GET /projects/{PROJECT}/repository/commits/{SHA}/statuses",
        f"POST /projects/{PROJECT}/statuses/{SHA}",  # 502: done or not?
        f"GET /projects/{PROJECT}/repository/commits/{SHA}/statuses",  # not there
        f"POST /projects/{PROJECT}/statuses/{SHA}",
    ]
    assert len(gitlab.statuses[(PROJECT, SHA)]) == 1


async def test_a_write_refused_as_unavailable_is_repeated_inline(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    build = await client.get_build(root_ref())
    gitlab.fail_next(rf"POST /projects/{PROJECT}/statuses/", status=503)
    await publish(client, root_ref(), failing_run("x"), build)
    assert len(gitlab.calls_to("POST", "/statuses/")) == 2
    assert len(gitlab.statuses[(PROJECT, SHA)]) == 1


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (f"/projects/{PROJECT}/merge_requests/{MR}/notes", {"body": "x" * 1_000_001},
         "is too long (maximum is 1000000 characters)"),
        (f"/projects/{PROJECT}/merge_requests/{MR}/notes", {}, "body is missing"),
        (f"/projects/{PROJECT}/statuses/{SHA}", {"state": "exploded"},
         "state does not have a valid value"),
        (f"/projects/{PROJECT}/statuses/{SHA}", {"state": "failed", "description": "d" * 256},
         "is too long (maximum is 255 characters)"),
    ],
)
async def test_gitlabs_refusals_surface_in_its_own_words(
    client: GitLabClient, path: str, body: dict[str, object], message: str
) -> None:
    with pytest.raises(PermanentError, match=r"GitLab answered 400") as caught:
        await client.api.post("write", path, body, idempotent=False)
    assert message in str(caught.value)


async def test_a_status_already_in_that_state_is_not_an_error(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    gitlab.pipelines[ROOT]["status"] = "running"
    build = await client.get_build(root_ref())
    one = TestRun(id="r", suites=[Suite("s", [TestCase("t1")])])
    await publish(client, root_ref(), one, build)
    # Another summary while still running: GitLab refuses to move running → running.
    two = TestRun(id="r", suites=[Suite("s", [TestCase("t1"), TestCase("t2")])])
    published = await publish(client, root_ref(), two, build)
    [status] = gitlab.statuses[(PROJECT, SHA)]
    assert status["status"] == "running"
    assert published.status_id == str(status["id"])
    assert len(gitlab.calls_to("POST", "/statuses/")) == 2
