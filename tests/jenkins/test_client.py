"""The Jenkins client against the fake Jenkins over real HTTP: builds read with `tree=`
and an API token, the JUnit report as results, the change found from the checkout, and
rebuilds with the same parameters."""

from __future__ import annotations

import base64

import pytest

from bot.events import RunRef
from bot.ports import CISource, NotConfigured, PermanentError, ReportedRunsSource
from bot.results.model import Status
from bot.settings import ProviderSettings
from providers.http import Unauthorized
from providers.jenkins.client import BUILD_TREE, JenkinsClient, create_client
from tests.fakes.github import serve
from tests.fakes.jenkins import TOKEN, USER, CaptureServer, case, junit_report, suite
from tests.jenkins.conftest import JOB, PR, REMOTE, SHA, jenkins_env
from tests.jenkins.world import notification, ref_of, seed_build

BUILD = r"/job/acme/job/inventory/job/PR-64/17/api/json"


async def read(client: JenkinsClient, ref: RunRef) -> tuple[int, int, int]:
    await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    totals = run.totals()
    return totals.total, totals.failures, totals.skipped


# ---- reading a build ---------------------------------------------------------------------


async def test_a_build_is_read_with_tree_and_the_api_token(jenkins, client) -> None:
    seed_build(jenkins)
    build = await client.get_build(ref_of(notification()))

    assert (build.status, build.failed, build.sha) == ("UNSTABLE", True, SHA)
    assert build.url == f"{jenkins.url}/job/acme/job/inventory/job/PR-64/17/"
    assert build.changes == [PR]
    [call] = jenkins.calls_to("GET", BUILD)
    assert call.query == {"tree": BUILD_TREE}
    expected = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    assert call.headers["authorization"] == f"Basic {expected}"


async def test_a_build_notified_from_its_own_post_step_has_the_notification_s_result(
    jenkins, client
) -> None:
    seed_build(jenkins, result=None)  # still in its `post` block: no result in the API yet
    build = await client.get_build(ref_of(notification(status="FAILURE")))
    assert (build.status, build.failed) == ("FAILURE", True)


async def test_the_client_is_both_a_ci_source_and_a_reported_runs_source(client) -> None:
    assert isinstance(client, CISource) and isinstance(client, ReportedRunsSource)


async def test_closing_the_client_leaves_the_worker_s_http_client_open(client, http) -> None:
    await client.aclose()
    assert not http.is_closed


async def test_a_wrong_token_is_refused_with_jenkins_own_401(jenkins, make_client) -> None:
    seed_build(jenkins)
    client = make_client(HERALD_JENKINS_TOKEN="not-the-token")
    with pytest.raises(Unauthorized) as refused:
        await client.get_build(ref_of(notification()))
    assert refused.value.status == 401
    assert "not-the-token" not in str(refused.value)


@pytest.mark.parametrize("missing", ["HERALD_JENKINS_URL", "HERALD_JENKINS_USER",
                                     "HERALD_JENKINS_TOKEN"])
def test_without_url_user_or_token_jenkins_is_not_configured(jenkins, missing) -> None:
    env = {k: v for k, v in jenkins_env(jenkins).items() if k != missing}
    with pytest.raises(NotConfigured, match=missing):
        create_client(ProviderSettings("jenkins", env), None)


async def test_the_token_may_come_from_a_file(jenkins, tmp_path) -> None:
    seed_build(jenkins)
    (tmp_path / "token").write_text(TOKEN + "\n")
    env = {k: v for k, v in jenkins_env(jenkins).items() if k != "HERALD_JENKINS_TOKEN"}
    env["HERALD_JENKINS_TOKEN_FILE"] = str(tmp_path / "token")
    client = create_client(ProviderSettings("jenkins", env), None)
    assert (await client.get_build(ref_of(notification()))).status == "UNSTABLE"
    await client.aclose()  # the HTTP client it made for itself
    assert client.session.client.is_closed


async def test_nested_folders_and_encoded_branch_names_reach_the_right_job(
    jenkins, client
) -> None:
    # A multibranch job of branch `feature/login` is named `feature%2Flogin`.
    job = "acme/platform/inventory/feature%2Flogin"
    jenkins.add_build(job, 3, result="SUCCESS", checkouts=[(REMOTE, SHA)])
    body = notification(number=3, full_url="https://ci.acme.example/job/acme/job/platform/"
                        "job/inventory/job/feature%252Flogin/3/")
    body["url"] = "job/acme/job/platform/job/inventory/job/feature%252Flogin/"
    ref = ref_of(body)
    assert ref.repo == job

    build = await client.get_build(ref)
    assert build.status == "SUCCESS" and not build.failed
    assert jenkins.calls_to(
        "GET", "/job/acme/job/platform/job/inventory/job/feature%252Flogin/3/api/json")


async def test_a_jenkins_under_a_context_path_is_reached_there(jenkins, make_client) -> None:
    jenkins.context = "/ci/jenkins"
    seed_build(jenkins, report=None, artifacts={"junit.xml": b"<testsuite/>"})
    client = make_client(HERALD_JENKINS_URL=f"{jenkins.url}/ci/jenkins")
    ref = ref_of(notification())
    build = await client.get_build(ref)
    assert build.url == f"{jenkins.url}/ci/jenkins/job/acme/job/inventory/job/PR-64/17/"
    [artifact] = await client.list_artifacts(ref)
    assert b"".join([c async for c in client.open_artifact(ref, artifact)]) == b"<testsuite/>"
    await client.rerun(ref)
    assert jenkins.rebuilds == [(JOB, {})]
    assert all(c.path.startswith("/ci/jenkins/job/") for c in jenkins.calls)


# ---- results ----------------------------------------------------------------------------


async def test_the_junit_report_gives_the_counts_and_the_archived_copies_are_not_read(
    jenkins, client
) -> None:
    # The same file archived and recorded by `junit`: counting both would double it.
    seed_build(jenkins, artifacts={
        "target/surefire-reports/TEST-com.acme.inventory.StockLedgerTest.xml": b"<testsuite/>",
    })
    ref = ref_of(notification())
    await client.get_build(ref)
    assert await client.list_artifacts(ref) == []  # as the report handler asks: first
    run = await client.native_results(ref)
    assert run is not None
    assert (run.totals().total, run.totals().failures, run.totals().skipped) == (5, 2, 1)
    # Read once for both questions.
    [call] = jenkins.calls_to("GET", r".*/17/testReport/api/json")
    assert "cases[className,name,status" in call.query["tree"]


async def test_the_same_tests_in_two_parallel_stages_are_each_counted(jenkins, client) -> None:
    tests = [case("opensLedger"), case("postsEntry", "FAILED", details="boom")]
    report = junit_report([
        suite("com.acme.StockLedgerTest", [dict(c) for c in tests], stages=["jdk17", "Test"]),
        suite("com.acme.StockLedgerTest", [dict(c) for c in tests], stages=["jdk21", "Test"]),
    ])
    seed_build(jenkins, report=report)
    ref = ref_of(notification())
    assert await read(client, ref) == (4, 2, 0)
    run = await client.native_results(ref)
    assert run is not None and not run.errors
    assert sorted(f.suite for f in run.failures()) == [
        "Test / jdk17 / com.acme.StockLedgerTest", "Test / jdk21 / com.acme.StockLedgerTest"]


async def test_a_status_jenkins_never_documented_is_an_error_not_a_pass(jenkins, client) -> None:
    report = junit_report([suite("s", [case("a"), {**case("b"), "status": "FLAKY"}])])
    seed_build(jenkins, report=report)
    run = await client.native_results(ref_of(notification()))
    assert run is not None
    assert [c.status for c in run.cases()] == [Status.PASSED, Status.ERROR]


async def test_counts_that_disagree_with_jenkins_totals_are_said_in_the_report(
    jenkins, client
) -> None:
    report = junit_report([suite("s", [case("a"), case("b", "FAILED", details="x")])])
    report["failCount"] = 3  # Jenkins counted failures that did not come through
    seed_build(jenkins, report=report)
    run = await client.native_results(ref_of(notification()))
    assert run is not None
    assert [e.reason for e in run.errors] == ["Jenkins counts 3 failed tests, Herald read 1"]


async def test_a_junit_report_jenkins_no_longer_serves_leaves_the_archived_files(
    jenkins, client
) -> None:
    junit = b'<testsuite name="s"><testcase name="t"/></testsuite>'
    seed_build(jenkins, artifacts={"build/test-results/junit.xml": junit})
    del jenkins.reports[(JOB, 17)]  # the action is listed, the report is gone
    ref = ref_of(notification())
    await client.get_build(ref)
    assert [a.name for a in await client.list_artifacts(ref)] == ["build/test-results/junit.xml"]
    assert await client.native_results(ref) is None
    assert len(jenkins.calls_to("GET", r".*/17/testReport/api/json")) == 1


async def test_without_a_junit_report_the_archived_files_are_the_results(jenkins, client) -> None:
    junit = b'<testsuite name="s"><testcase name="t"/></testsuite>'
    seed_build(jenkins, report=None, artifacts={"build/test-results/junit.xml": junit,
                                                "dist/app.jar": b"PK"})
    ref = ref_of(notification())
    assert await client.native_results(ref) is None
    listed = await client.list_artifacts(ref)
    assert [a.name for a in listed] == ["build/test-results/junit.xml", "dist/app.jar"]
    assert listed[0].url == (f"{jenkins.url}/job/acme/job/inventory/job/PR-64/17/artifact/"
                             "build/test-results/junit.xml")
    assert b"".join([c async for c in client.open_artifact(ref, listed[0])]) == junit


# ---- the change --------------------------------------------------------------------------


async def test_the_change_is_the_github_pull_request_of_the_checkout(jenkins, client) -> None:
    seed_build(jenkins)
    ref = ref_of(notification())
    change = await client.change_of(ref, await client.get_build(ref))
    assert (change.forge, change.repo, change.sha, change.numbers) == (
        "github", "acme/inventory", SHA, (PR,))


async def test_without_scm_in_the_notification_the_git_build_data_names_it(
    jenkins, client
) -> None:
    seed_build(jenkins)
    body = notification()
    del body["build"]["scm"]
    ref = ref_of(body)
    change = await client.change_of(ref, await client.get_build(ref))
    assert (change.repo, change.sha) == ("acme/inventory", SHA)


async def test_a_build_of_several_repositories_naming_none_is_not_guessed(jenkins, client) -> None:
    # A Jenkinsfile that loads a shared library checks out two repositories.
    seed_build(jenkins, checkouts=[("https://github.com/acme/jenkins-lib.git", "1" * 40),
                                   (REMOTE, SHA)])
    body = notification()
    del body["build"]["scm"]
    ref = ref_of(body)
    with pytest.raises(PermanentError, match="several repositories"):
        await client.change_of(ref, await client.get_build(ref))


async def test_the_notification_s_checkout_picks_among_several(jenkins, client) -> None:
    seed_build(jenkins, checkouts=[("https://github.com/acme/jenkins-lib.git", "1" * 40),
                                   (REMOTE, SHA)])
    ref = ref_of(notification())
    change = await client.change_of(ref, await client.get_build(ref))
    assert (change.repo, change.sha) == ("acme/inventory", SHA)


async def test_a_repository_on_no_configured_forge_is_refused(jenkins, client) -> None:
    seed_build(jenkins, checkouts=[("https://git.elsewhere.example/acme/inventory.git", SHA)])
    body = notification(scm={"url": "https://git.elsewhere.example/acme/inventory.git",
                             "commit": SHA})
    ref = ref_of(body)
    with pytest.raises(PermanentError, match="no forge Herald is configured for"):
        await client.change_of(ref, await client.get_build(ref))


# ---- URLs from payloads ------------------------------------------------------------------


async def test_urls_in_notifications_and_answers_are_never_fetched(
    jenkins, client, capture: CaptureServer
) -> None:
    # The notification's URLs, and the root URL Jenkins believes it has, name another host.
    jenkins.root_url = capture.url
    seed_build(jenkins, artifacts={"junit.xml": b"<testsuite/>"}, report=None)
    body = notification(full_url=f"{capture.url}/job/acme/job/inventory/job/PR-64/17/",
                        url=f"{capture.url}/job/acme/job/inventory/job/PR-64/17/",
                        artifacts={"junit.xml": {"archive": f"{capture.url}/junit.xml"}})
    body["url"] = f"{capture.url}/job/acme/job/inventory/job/PR-64/"
    ref = ref_of(body)
    build = await client.get_build(ref)
    [artifact] = await client.list_artifacts(ref)
    assert b"".join([c async for c in client.open_artifact(ref, artifact)]) == b"<testsuite/>"
    await client.native_results(ref)
    assert build.url is not None and build.url.startswith(jenkins.url)
    assert client.origin_of(ref, build).url == build.url
    assert capture.requests == []


async def test_the_http_layer_refuses_any_other_origin(client, capture: CaptureServer) -> None:
    with pytest.raises(PermanentError, match="outside"):
        async for _ in client.session.download(f"{capture.url}/job/x/1/api/json",
                                               what="read", max_bytes=100):
            pass
    assert capture.requests == []


async def test_an_artifact_redirected_elsewhere_goes_there_without_the_token(
    jenkins, client
) -> None:
    seen: list[dict[str, str]] = []

    async def storage(scope, receive, send) -> None:
        seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"<testsuite/>"})

    async with serve(storage) as url:
        seed_build(jenkins, report=None, artifacts={"junit.xml": b""})
        jenkins.redirects[(JOB, 17, "junit.xml")] = f"{url}/bucket/junit.xml"
        ref = ref_of(notification())
        [artifact] = await client.list_artifacts(ref)
        assert b"".join([c async for c in client.open_artifact(ref, artifact)]) == b"<testsuite/>"
    assert seen and all("authorization" not in headers for headers in seen)


# ---- rebuilds ----------------------------------------------------------------------------


async def test_a_rebuild_sends_the_failed_build_s_parameters(jenkins, client) -> None:
    jenkins.job(JOB, parameters={"TARGET": "staging", "FAST": "false", "DEPLOY_KEY": "default"})
    seed_build(jenkins, parameters={"TARGET": "qa", "FAST": True, "DEPLOY_KEY": None})
    await client.rerun(ref_of(notification()))
    # The password parameter's value is not exported: Jenkins takes its default.
    assert jenkins.rebuilds == [(JOB, {"TARGET": "qa", "FAST": "true", "DEPLOY_KEY": "default"})]
    [post] = jenkins.calls_to("POST", r".*/buildWithParameters")
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "jenkins-crumb" not in post.headers  # API tokens need none


async def test_a_job_without_parameters_is_built_again_plainly(jenkins, client) -> None:
    seed_build(jenkins)
    await client.rerun(ref_of(notification()))
    assert jenkins.rebuilds == [(JOB, {})]
    assert jenkins.calls_to("POST", "/job/acme/job/inventory/job/PR-64/build")


async def test_a_jenkins_that_wants_a_crumb_gets_one_and_builds_once(jenkins, client) -> None:
    jenkins.crumbs_for_tokens = True
    seed_build(jenkins)
    await client.rerun(ref_of(notification()))
    assert jenkins.rebuilds == [(JOB, {})]
    assert jenkins.calls_to("GET", "/crumbIssuer/api/json")
    posts = jenkins.calls_to("POST", r".*/build")
    assert [p.headers.get("jenkins-crumb") for p in posts] == [None, jenkins.crumb]


async def test_a_502_on_the_build_request_is_checked_before_sending_again(
    jenkins, client
) -> None:
    seed_build(jenkins)
    jenkins.fail("POST", r".*/build", status=502)
    await client.rerun(ref_of(notification()))
    # The proxy's 502 left the outcome unknown: the job was read back (not queued), then
    # the build asked for once more, and only once done.
    assert [c.fault for c in jenkins.calls_to("POST", r".*/build")] == [502, None]
    assert jenkins.rebuilds == [(JOB, {})]


@pytest.mark.parametrize("how", ["reset", "timeout"])
async def test_a_build_request_whose_answer_is_lost_is_not_sent_again(
    jenkins, client, how
) -> None:
    seed_build(jenkins)
    jenkins.lose_answer(r"^POST .*/build$", how=how)
    await client.rerun(ref_of(notification()))
    # Jenkins queued it; the read-back sees the job in the queue and sends nothing more.
    assert jenkins.rebuilds == [(JOB, {})]
    assert len(jenkins.calls_to("POST", r".*/build")) == 1


# ---- what /retest reruns -----------------------------------------------------------------


async def test_the_latest_failed_build_of_each_reported_job_is_named(jenkins, client) -> None:
    seed_build(jenkins, 16)
    seed_build(jenkins, 17)
    jenkins.add_build("acme/inventory/lint", 5, result="SUCCESS", checkouts=[(REMOTE, SHA)])
    reported = [ref_of(notification(number=n)) for n in (16, 17)]
    reported.append(RunRef(provider="jenkins", repo="acme/inventory/lint", run_id="5", sha=SHA))
    change = await client.change_of(reported[1], None)
    [failed] = await client.latest_failed_of(change, reported)
    assert (failed.repo, failed.run_id, failed.status) == (JOB, "17", "UNSTABLE")
    assert failed.url == f"{jenkins.url}/job/acme/job/inventory/job/PR-64/17/"
    assert failed.extra["name"] == f"{JOB} #17"


async def test_a_job_rebuilt_since_or_in_the_queue_is_not_named_again(jenkins, client) -> None:
    seed_build(jenkins)
    ref = ref_of(notification())
    change = await client.change_of(ref, None)
    jenkins.job(JOB).in_queue = True
    assert await client.latest_failed_of(change, [ref]) == []
    jenkins.job(JOB).in_queue = False
    jenkins.add_build(JOB, 18, result=None)  # running
    assert await client.latest_failed_of(change, [ref]) == []


async def test_without_records_jenkins_names_no_build(client) -> None:
    change = await client.change_of(ref_of(notification()), None)
    assert await client.latest_failed_runs(change) == []


async def test_a_jenkins_that_hangs_once_is_asked_again(jenkins, client) -> None:
    seed_build(jenkins)
    jenkins.fail("GET", BUILD, hang=True)
    build = await client.get_build(ref_of(notification()))
    assert build.status == "UNSTABLE"
    assert [c.fault for c in jenkins.calls_to("GET", BUILD)] == ["hang", None]


async def test_the_token_is_never_logged(jenkins, make_client) -> None:
    from structlog.testing import capture_logs

    seed_build(jenkins)
    with capture_logs() as lines:
        client = make_client()
        ref = ref_of(notification())
        await client.get_build(ref)
        await client.native_results(ref)
        await client.rerun(ref)
        bad = make_client(HERALD_JENKINS_TOKEN=TOKEN[::-1])
        with pytest.raises(Unauthorized):
            await bad.get_build(ref)
    assert lines and all(TOKEN not in repr(line) and TOKEN[::-1] not in repr(line)
                         for line in lines)
    encoded = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    assert all(encoded not in repr(line) for line in lines)


async def test_an_aggregated_matrix_report_is_named_as_unread_not_passed(jenkins, client) -> None:
    report = {"_class": "hudson.tasks.test.MatrixTestResult", "failCount": 1, "skipCount": 0,
              "totalCount": 9, "childReports": [
                  {"child": {"_class": "hudson.matrix.MatrixRun",
                             "url": f"{jenkins.url}/job/m/jdk=17/4/"},
                   "result": {"_class": "hudson.tasks.junit.TestResult", "failCount": 1}}]}
    seed_build(jenkins, report=report)
    run = await client.native_results(ref_of(notification()))
    assert run is not None and run.totals().total == 0
    [error] = run.errors
    assert "aggregated report" in error.reason
