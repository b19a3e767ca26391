"""The CircleCI client against the fake CircleCI over real HTTP: workflows and jobs read
with the `Circle-Token`, stored test results streamed page by page, artifacts only of the
jobs that stored none, the change found from the pipeline, and reruns from failed that are
never sent twice."""

from __future__ import annotations

import pytest

from bot.config import ConfigError
from bot.events import RunRef
from bot.ports import CISource, NotConfigured, PermanentError, ReportedRunsSource
from bot.results.model import Status
from bot.settings import ProviderSettings
from providers.base import Change
from providers.circleci.client import CircleCIClient, checkout, create_client, slug_path
from providers.http import ClientError, RateLimited, Unauthorized
from tests.circleci.conftest import circleci_env
from tests.circleci.world import (
    NAME,
    NUMBER,
    PIPELINE,
    REMOTE,
    REPO,
    SHA,
    SLUG,
    WORKFLOW,
    junit,
    ref_of,
    seed,
    webhook,
)
from tests.fakes.circleci import TOKEN, Artifact, FakeCircleCI, FakeJob, stored_test
from tests.providers.senders import fixture_json

WORKFLOW_PATH = f"/workflow/{WORKFLOW}"
RERUN = f"/workflow/{WORKFLOW}/rerun"
CHANGE = Change(forge="github", repo=REPO, sha=SHA, numbers_known=False)


async def results(client: CircleCIClient, ref: RunRef) -> tuple[int, int, int]:
    await client.get_build(ref)
    await client.list_artifacts(ref)
    run = await client.native_results(ref)
    assert run is not None
    totals = run.totals()
    return totals.total, totals.failures, totals.skipped


def web(circleci: FakeCircleCI, workflow: str = WORKFLOW) -> str:
    return f"{circleci.served}/pipelines/github/acme-fin/ledger/{NUMBER}/workflows/{workflow}"


# ---- reading a workflow ------------------------------------------------------------------


async def test_a_workflow_and_its_jobs_are_read_with_the_circle_token(circleci, client) -> None:
    seed(circleci)
    build = await client.get_build(ref_of(webhook()))

    assert (build.status, build.failed, build.name, build.sha) == ("failed", True, NAME, SHA)
    assert build.url == web(circleci)
    assert [(j.name, j.status, j.failed) for j in build.jobs] == [
        ("lint", "success", False), ("test", "failed", True)]
    assert build.jobs[1].url == f"{web(circleci)}/jobs/4411"
    [call] = circleci.api_calls("GET", WORKFLOW_PATH)
    assert call.headers["circle-token"] == TOKEN
    assert "authorization" not in call.headers


async def test_a_wrong_token_is_refused_by_circleci_and_said_so(circleci, make_client) -> None:
    seed(circleci)
    client = make_client(HERALD_CIRCLECI_TOKEN="CCIPAT_revoked")
    with pytest.raises(Unauthorized, match="401"):
        await client.get_build(ref_of(webhook()))


def test_without_a_token_the_client_is_not_configured(circleci) -> None:
    env = circleci_env(circleci)
    del env["HERALD_CIRCLECI_TOKEN"]
    with pytest.raises(NotConfigured, match="HERALD_CIRCLECI_TOKEN"):
        create_client(ProviderSettings("circleci", env), None)


def test_the_client_is_a_ci_source_that_asks_about_reported_runs(client) -> None:
    assert isinstance(client, CISource) and isinstance(client, ReportedRunsSource)


async def test_a_workflow_id_that_is_no_uuid_is_refused_before_any_request(
    circleci, client
) -> None:
    body = webhook(id="../project/gh/other/repo")
    with pytest.raises(PermanentError, match="not a CircleCI id"):
        await client.get_build(ref_of(body))
    assert circleci.calls == []


# ---- stored test results ------------------------------------------------------------------


async def test_stored_test_results_are_read_page_by_page_with_the_right_counts(
    circleci, client
) -> None:
    seed(circleci)
    ref = ref_of(webhook())
    assert await results(client, ref) == (5, 2, 1)
    pages = circleci.api_calls("GET", f"/project/{SLUG}/4411/tests")
    # Five results, two a page: three pages, each asked with the token of the one before.
    assert [c.query.get("page-token") is None for c in pages] == [True, False, False]


async def test_failures_keep_their_message_file_and_a_link_to_their_job(circleci, client) -> None:
    seed(circleci)
    ref = ref_of(webhook())
    await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    [first, second] = run.failures()
    assert (first.name, first.classname, first.file) == (
        "test_settles_negative_balance", "ledger.settlement", "tests/test_settlement.py")
    assert first.message == "AssertionError: assert -3 == 0"
    assert first.stack_trace == "AssertionError: assert -3 == 0\nfull traceback"
    assert first.origin is not None and first.origin.url == f"{web(circleci)}/jobs/4411"
    assert second.status is Status.FAILED


async def test_a_failed_job_that_stored_no_tests_is_a_failure_named_in_the_report(
    circleci, client
) -> None:
    seed(circleci, jobs=[FakeJob("build", "failed", 4420),
                         FakeJob("test", "success", 4421, tests=[stored_test("test_ok")])])
    ref = ref_of(webhook())
    assert await results(client, ref) == (2, 1, 0)
    await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    [failure] = run.failures()
    assert (failure.name, failure.status) == ("job build", Status.ERROR)
    assert "'failed'" in (failure.message or "")


async def test_a_failed_job_whose_stored_tests_all_passed_is_never_green(
    circleci, client
) -> None:
    # The tests passed; a later step (coverage gate, lint) failed the job.
    seed(circleci, jobs=[FakeJob("test", "failed", 4430, tests=[stored_test("test_ok")])])
    assert await results(client, ref_of(webhook())) == (2, 1, 0)


async def test_a_workflow_that_failed_without_a_failed_job_is_one_error(
    circleci, client
) -> None:
    seed(circleci, status="error", jobs=[FakeJob("hold", "success", None, type="approval")])
    ref = ref_of(webhook(status="error"))
    await client.get_build(ref)
    assert await client.list_artifacts(ref) == []
    run = await client.native_results(ref)
    assert run is not None
    [failure] = run.failures()
    assert failure.name == f"workflow {NAME}"
    assert circleci.api_calls("GET", r"/project/.*") == []  # an approval has no tests


async def test_a_result_circleci_adds_later_is_an_error_never_a_pass(circleci, client) -> None:
    seed(circleci, status="success", jobs=[FakeJob("test", "success", 4440, tests=[
        stored_test("test_new_word", "flaky")])])
    ref = ref_of(webhook(status="success"))
    await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    [failure] = run.failures()
    assert failure.status is Status.ERROR and failure.message == "CircleCI result 'flaky'"


async def test_results_that_expire_while_read_are_said_to_be_read_in_part(
    circleci, client
) -> None:
    seed(circleci, status="success", jobs=[FakeJob("test", "success", 4445, tests=[
        stored_test(f"test_{i}") for i in range(5)], gone_from=2)])
    ref = ref_of(webhook(status="success"))
    await client.get_build(ref)
    assert await client.list_artifacts(ref) == []
    run = await client.native_results(ref)
    assert run is not None and run.totals().total == 2
    [error] = run.errors
    assert error.source == "test results of job test" and "read in part" in error.reason


async def test_a_passed_workflow_without_tests_or_artifacts_has_nothing_to_report(
    circleci, client
) -> None:
    seed(circleci, status="success", jobs=[FakeJob("lint", "success", 4450)])
    ref = ref_of(webhook(status="success"))
    await client.get_build(ref)
    assert await client.list_artifacts(ref) == []
    assert await client.native_results(ref) is None


@pytest.mark.parametrize(("status", "headers"), [(502, {}), (429, {"Retry-After": "0"})])
async def test_a_5xx_or_429_on_a_page_is_retried_and_nothing_is_counted_twice(
    circleci, client, status, headers
) -> None:
    seed(circleci)
    circleci.fail("GET", f"/project/{SLUG}/4411/tests", status=status, headers=headers)
    ref = ref_of(webhook())
    if status == 429:
        # A rate limit goes back to the queue; the job's retry reads it whole.
        with pytest.raises(RateLimited):
            await results(client, ref)
    assert await results(client, ref) == (5, 2, 1)


# ---- artifacts ----------------------------------------------------------------------------


def parallel_job(number: int = 4460) -> FakeJob:
    """A `parallelism: 2` job that only stores artifacts: both nodes upload the same path."""
    return FakeJob("api-tests", "failed", number, artifacts=[
        Artifact("reports/junit.xml", 0, junit(("test_a", "pass"), ("test_b", "fail"))),
        Artifact("reports/junit.xml", 1, junit(("test_c", "pass"))),
        Artifact("coverage/index.html", 0, b"<html></html>"),
    ])


async def test_artifacts_are_listed_only_for_jobs_that_stored_no_test_results(
    circleci, client
) -> None:
    seed(circleci, jobs=[FakeJob("test", "failed", 4411, tests=[stored_test("t", "failure")],
                                 artifacts=[Artifact("junit.xml", 0, b"")]),
                         parallel_job()])
    ref = ref_of(webhook())
    await client.get_build(ref)
    listed = await client.list_artifacts(ref)
    # Never both sources for one job: its tests would count twice.
    assert circleci.api_calls("GET", f"/project/{SLUG}/4411/artifacts") == []
    # Two nodes' files of one path are two results, not two attempts of one.
    assert [a.name for a in listed] == [
        "api-tests[0]/reports/junit.xml", "api-tests[1]/reports/junit.xml"]


async def test_artifacts_are_chosen_by_their_path_not_by_their_job_s_name(
    circleci, make_client
) -> None:
    seed(circleci, jobs=[FakeJob("e2e-tests", "success", 4470, artifacts=[
        Artifact("screenshots/login.png", 0, b"\x89PNG"),
        Artifact("out/junit.xml", 0, junit(("t", "pass")))])])
    ref = ref_of(webhook(status="success"))
    client = make_client(HERALD_CIRCLECI_ARTIFACT_PATTERNS="*/junit.xml")
    await client.get_build(ref)
    assert [a.name for a in await client.list_artifacts(ref)] == ["e2e-tests[0]/out/junit.xml"]


async def test_an_artifact_list_cut_short_is_an_error_not_a_shorter_list(
    circleci, client
) -> None:
    job = parallel_job()
    job.artifacts += [Artifact(f"reports/more-{i}-junit.xml", 0, b"") for i in range(3)]
    job.gone_from = 2
    seed(circleci, jobs=[job])
    ref = ref_of(webhook())
    await client.get_build(ref)
    with pytest.raises(PermanentError, match="listed in part only"):
        await client.list_artifacts(ref)


async def test_an_artifact_is_downloaded_from_the_artifact_host_with_the_token(
    circleci, client
) -> None:
    seed(circleci, jobs=[parallel_job()])
    ref = ref_of(webhook())
    await client.get_build(ref)
    first = (await client.list_artifacts(ref))[0]
    data = b"".join([chunk async for chunk in client.open_artifact(ref, first)])
    assert data == junit(("test_a", "pass"), ("test_b", "fail"))
    [download] = [c for c in circleci.calls if c.path.startswith("/output/")]
    assert download.host == circleci.artifact_host
    assert download.headers["circle-token"] == TOKEN


async def test_an_artifact_redirected_to_another_host_goes_there_without_the_token(
    circleci, client, capture
) -> None:
    seed(circleci, jobs=[parallel_job()])
    circleci.redirects["reports/junit.xml"] = f"{capture.url}/bucket/junit.xml"
    ref = ref_of(webhook())
    await client.get_build(ref)
    first = (await client.list_artifacts(ref))[0]
    async for _ in client.open_artifact(ref, first):
        pass
    [(method, path, headers)] = capture.requests
    assert (method, path) == ("GET", "/bucket/junit.xml")
    assert "circle-token" not in headers


async def test_an_artifact_url_on_a_host_not_configured_for_artifacts_sees_no_request(
    circleci, client, capture
) -> None:
    seed(circleci, jobs=[parallel_job()])
    circleci.artifact_base = capture.url  # the API names another host
    ref = ref_of(webhook())
    await client.get_build(ref)
    first = (await client.list_artifacts(ref))[0]
    with pytest.raises(PermanentError, match="HERALD_CIRCLECI_ARTIFACT_HOSTS"):
        async for _ in client.open_artifact(ref, first):
            pass
    assert capture.requests == []


# ---- the change and the origin --------------------------------------------------------------


async def test_the_change_is_the_pipeline_s_commit_on_github_found_by_commit(client) -> None:
    change = await client.change_of(ref_of(webhook()), None)
    assert change == Change(forge="github", repo=REPO, sha=SHA, numbers_known=False)


async def test_a_pull_request_from_a_fork_is_reported_on_the_target_repository(client) -> None:
    body = webhook()
    body["pipeline"]["vcs"]["origin_repository_url"] = "https://github.com/forker/ledger"
    change = await client.change_of(ref_of(body), None)
    assert change.repo == REPO


async def test_a_github_app_project_s_change_comes_from_the_pipeline_s_trigger_parameters(
    circleci, client
) -> None:
    body = fixture_json("circleci", "workflow_completed_github_app.json")
    git = body["pipeline"]["trigger_parameters"]["git"]
    circleci.add_pipeline(body["pipeline"]["id"], number=1285, slug=body["project"]["slug"],
                          trigger_parameters={"git": git})
    change = await client.change_of(ref_of(body), None)
    assert (change.forge, change.repo, change.sha) == ("github", REPO, git["checkout_sha"])
    assert len(circleci.api_calls("GET", f"/pipeline/{PIPELINE}")) == 1


async def test_a_repository_on_no_configured_forge_is_not_guessed_at(client) -> None:
    body = webhook()
    body["pipeline"]["vcs"].update(target_repository_url="https://git.evil.example/acme/l",
                                   origin_repository_url=REMOTE)
    with pytest.raises(PermanentError, match="no forge Herald is configured for"):
        await client.change_of(ref_of(body), None)


async def test_the_origin_names_the_workflow_and_orders_a_rerun_after_it(
    circleci, client
) -> None:
    seed(circleci)
    ref = ref_of(webhook())
    build = await client.get_build(ref)
    origin = client.origin_of(ref, build)
    assert (origin.name, origin.number, origin.url, origin.failed) == (
        NAME, str(NUMBER), web(circleci), True)
    rerun = await client.rerun(ref)
    assert rerun.runs == [WORKFLOW]
    new_id = rerun.url.rsplit("/", 1)[-1] if rerun.url else ""
    new_ref = RunRef(provider="circleci", repo=SLUG, run_id=new_id, sha=SHA)
    circleci.workflows[new_id]["status"] = "success"
    later = client.origin_of(new_ref, await client.get_build(new_ref))
    assert later.name == origin.name and later.sequence > origin.sequence


# ---- reruns ---------------------------------------------------------------------------------


async def test_a_rerun_is_from_failed_and_links_the_new_workflow(circleci, client) -> None:
    seed(circleci)
    rerun = await client.rerun(ref_of(webhook()))
    [(workflow, body)] = circleci.reruns
    assert (workflow, body) == (WORKFLOW, {"from_failed": True})
    [call] = circleci.api_calls("POST", RERUN)
    assert call.headers["content-type"] == "application/json"
    assert rerun.jobs == ["test"]
    assert rerun.url is not None and rerun.url.startswith(f"{circleci.served}/pipelines/")


async def test_a_rerun_whose_answer_was_lost_is_read_back_not_sent_again(
    circleci, client
) -> None:
    seed(circleci)
    circleci.lose_answer(f"^POST /api/v2{RERUN}$", how="reset")
    rerun = await client.rerun(ref_of(webhook()))
    assert len(circleci.reruns) == 1
    assert len(circleci.api_calls("POST", RERUN)) == 1
    assert rerun.url is not None


async def test_a_workflow_rerun_already_is_not_rerun_again(circleci, client) -> None:
    seed(circleci)
    ref = ref_of(webhook())
    first = await client.rerun(ref)
    second = await client.rerun(ref)  # a retried job, or the check's Re-run pressed late
    assert len(circleci.reruns) == 1 and second.url == first.url


@pytest.mark.parametrize("words", ["Rerun requests are disabled for this project",
                                   "Rerun limit reached"])
async def test_circleci_refusing_a_rerun_is_a_clear_error_sent_once(
    circleci, client, words
) -> None:
    seed(circleci)
    circleci.refuse_reruns = words
    with pytest.raises(ClientError, match=words):
        await client.rerun(ref_of(webhook()))
    assert len(circleci.api_calls("POST", RERUN)) == 1


async def test_retest_asks_for_the_latest_failed_workflow_of_each_name(
    circleci, client
) -> None:
    seed(circleci)
    ref = ref_of(webhook())
    [found] = await client.latest_failed_of(CHANGE, [ref])
    assert (found.run_id, found.repo, found.sha) == (WORKFLOW, SLUG, SHA)
    assert found.extra["name"] == f"{NAME} (pipeline {NUMBER})"
    await client.rerun(found)
    # The rerun is running: nothing more to ask for; once it failed, it is the one.
    assert await client.latest_failed_of(CHANGE, [ref]) == []
    [(_, _)] = circleci.reruns
    new = next(w for w in circleci.workflows.values() if w["id"] != WORKFLOW)
    new["status"] = "failed"
    [again] = await client.latest_failed_of(CHANGE, [ref])
    assert again.run_id == new["id"]


async def test_retest_finds_nothing_for_a_passed_workflow_or_without_records(
    circleci, client
) -> None:
    seed(circleci, status="success")
    assert await client.latest_failed_of(CHANGE, [ref_of(webhook(status="success"))]) == []
    assert await client.latest_failed_runs(CHANGE) == []


@pytest.mark.parametrize("spelling", [
    "http://localhost:{port}", "http://2130706433:{port}", "http://0x7f.1:{port}",
    "http://[::ffff:127.0.0.1]:{port}", "http://169.254.169.254", "file://",
], ids=["loopback-name", "decimal", "hex", "ipv4-mapped", "link-local", "file"])
async def test_an_artifact_url_naming_loopback_in_any_spelling_sees_no_request(
    circleci, client, capture, spelling
) -> None:
    seed(circleci, jobs=[parallel_job()])
    port = capture.url.rsplit(":", 1)[1]
    circleci.artifact_base = spelling.format(port=port)
    ref = ref_of(webhook())
    await client.get_build(ref)
    first = (await client.list_artifacts(ref))[0]
    with pytest.raises(PermanentError):
        async for _ in client.open_artifact(ref, first):
            pass
    assert capture.requests == []


# ---- pure helpers ---------------------------------------------------------------------------


def test_a_pipeline_s_checkout_is_the_target_s_whichever_kind_of_project() -> None:
    fork = {"vcs": {"origin_repository_url": "https://github.com/forker/ledger",
                    "target_repository_url": REMOTE, "revision": SHA}}
    assert checkout(fork) == (REMOTE, SHA)
    gitlab = {"trigger_parameters": {"gitlab": {"web_url": "https://gitlab.com/acme/l"},
                                     "git": {"checkout_sha": SHA}}}
    assert checkout(gitlab) == ("https://gitlab.com/acme/l", SHA)
    assert checkout({}) == (None, None)


@pytest.mark.parametrize("slug", ["gh/acme", "gh/../ledger", "gh/acme/ledger/extra", "gh//x"])
def test_a_project_slug_of_another_shape_never_reaches_a_path(slug) -> None:
    with pytest.raises(PermanentError, match="not a CircleCI project slug"):
        slug_path(slug)


def test_a_slug_s_parts_are_encoded_in_the_path() -> None:
    assert slug_path("gh/acme fin/led?ger") == "gh/acme%20fin/led%3Fger"


# ---- bounds and secrets -------------------------------------------------------------------


async def test_a_circleci_that_hangs_once_is_asked_again_within_the_timeout(
    circleci, make_client
) -> None:
    seed(circleci)
    circleci.fail("GET", WORKFLOW_PATH, hang=True)
    client = make_client(HERALD_CIRCLECI_TIMEOUT="0.5")
    build = await client.get_build(ref_of(webhook()))
    assert build.status == "failed"
    assert [c.fault for c in circleci.api_calls("GET", WORKFLOW_PATH)] == ["hang", None]


def test_a_request_timeout_longer_than_the_job_s_is_refused(circleci) -> None:
    env = circleci_env(circleci, HERALD_CIRCLECI_TIMEOUT="90", HERALD_JOB_TIMEOUT_SECONDS="60")
    with pytest.raises(ConfigError, match="HERALD_CIRCLECI_TIMEOUT"):
        create_client(ProviderSettings("circleci", env), None)


def test_artifact_hosts_of_another_shape_are_refused(circleci) -> None:
    env = circleci_env(circleci, HERALD_CIRCLECI_ARTIFACT_HOSTS="https://x.example/a")
    with pytest.raises(ConfigError, match="HERALD_CIRCLECI_ARTIFACT_HOSTS"):
        create_client(ProviderSettings("circleci", env), None)


async def test_the_token_is_never_logged(circleci, make_client) -> None:
    from structlog.testing import capture_logs

    seed(circleci, jobs=[FakeJob("test", "failed", 4411, tests=[stored_test("t", "failure")]),
                         parallel_job()])
    with capture_logs() as lines:
        client = make_client()
        ref = ref_of(webhook())
        await client.get_build(ref)
        for artifact in await client.list_artifacts(ref):
            async for _ in client.open_artifact(ref, artifact):
                pass
        await client.native_results(ref)
        await client.rerun(ref)
        bad = make_client(HERALD_CIRCLECI_TOKEN=TOKEN[::-1])
        with pytest.raises(Unauthorized):
            await bad.get_build(ref)
    assert lines and all(TOKEN not in repr(line) and TOKEN[::-1] not in repr(line)
                         for line in lines)
