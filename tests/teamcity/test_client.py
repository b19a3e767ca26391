"""The TeamCity client against the fake TeamCity: what it reads, how results map, where
the change is, what it queues, and which hosts it never contacts."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.egress import EgressPolicy, guarded_transport
from bot.ports import CISource, ReportedRunsSource, RunSurface
from bot.results.model import Status, TestRun
from bot.settings import ProviderSettings, Settings
from providers.base import Change, NotConfigured, PermanentError, ProviderError
from providers.http import Forbidden, Unauthorized
from providers.teamcity.client import PAGE_SIZE, TeamCityClient, create_client
from tests.fakes.jenkins import CaptureServer
from tests.fakes.teamcity import FakeTeamCity, occurrence, problem
from tests.teamcity.conftest import (
    BUILD_ID,
    BUILD_TYPE,
    INSTANCE,
    PR,
    REPO,
    ROOT,
    SHA,
    teamcity_env,
)
from tests.teamcity.world import notification, ref_of, seed_build

BUILD = rf"/app/rest/builds/id:{BUILD_ID}"


async def results_of(client: TeamCityClient, **build: object) -> TestRun:
    ref = ref_of(notification(**build))
    await client.get_build(ref)
    run = await client.native_results(ref)
    assert run is not None
    return run


def failures(run: TestRun) -> dict[str, str | None]:
    return {case.name: case.message for case in run.failures()}


# ---- reading ---------------------------------------------------------------------------


async def test_a_build_is_read_with_fields_and_the_bearer_token(teamcity, client) -> None:
    seed_build(teamcity)
    build = await client.get_build(ref_of(notification()))
    assert (build.status, build.failed, build.sha, build.changes) == ("FAILURE", True, SHA, [PR])
    assert build.url == f"{teamcity.url}/buildConfiguration/{BUILD_TYPE}/{BUILD_ID}"
    assert build.name == "Storefront / Build"
    [call] = teamcity.calls_to("GET", BUILD)
    assert call.headers["authorization"].startswith("Bearer ")
    assert "revisions(revision(version" in call.query["fields"]


def test_the_client_is_a_ci_source_a_reported_runs_source_and_a_run_surface(client) -> None:
    assert isinstance(client, CISource)
    assert isinstance(client, ReportedRunsSource)
    assert isinstance(client, RunSurface)


async def test_a_wrong_token_is_refused_with_teamcity_s_own_401(teamcity, make_client) -> None:
    seed_build(teamcity)
    with pytest.raises(Unauthorized, match="TeamCity answered 401"):
        await make_client(HERALD_TEAMCITY_TOKEN="guessed").get_build(ref_of(notification()))


@pytest.mark.parametrize("missing", ["HERALD_TEAMCITY_URL", "HERALD_TEAMCITY_TOKEN"])
def test_without_url_or_token_teamcity_is_not_configured(teamcity, missing) -> None:
    env = {k: v for k, v in teamcity_env(teamcity).items() if k != missing}
    with pytest.raises(NotConfigured, match=missing):
        create_client(ProviderSettings("teamcity", env), None)


async def test_the_token_may_come_from_a_file(teamcity, tmp_path: Path) -> None:
    seed_build(teamcity)
    (tmp_path / "token").write_text(teamcity.token + "\n")
    env = {k: v for k, v in teamcity_env(teamcity).items() if k != "HERALD_TEAMCITY_TOKEN"}
    env["HERALD_TEAMCITY_TOKEN_FILE"] = str(tmp_path / "token")
    client = create_client(ProviderSettings("teamcity", env), None)
    try:
        assert (await client.get_build(ref_of(notification()))).status == "FAILURE"
    finally:
        await client.aclose()


async def test_a_build_configuration_id_that_is_no_teamcity_id_is_never_put_in_a_locator(
    teamcity, client
) -> None:
    seed_build(teamcity, build_type="Storefront_Build),count:(1")
    with pytest.raises(PermanentError, match="not a TeamCity build configuration id"):
        await client.rerun(ref_of(notification()))
    assert teamcity.queued == []


# ---- results -------------------------------------------------------------------------------


async def test_teamcity_s_tests_give_the_counts_and_names(teamcity, client) -> None:
    seed_build(teamcity)
    run = await results_of(client)
    totals = run.totals()
    assert (totals.total, totals.passed, totals.failed, totals.skipped) == (5, 2, 2, 1)
    case = next(c for c in run.cases() if c.name == "appliesCoupon")
    assert (case.suite, case.classname, case.message) == (
        "unit", "com.acme.cart.CartTest", "expected:<90> but was:<100>")
    assert case.origin is not None and case.origin.url == (
        f"{teamcity.url}/buildConfiguration/{BUILD_TYPE}/{BUILD_ID}?buildTab=tests")
    skipped = next(c for c in run.cases() if c.status is Status.SKIPPED)
    assert skipped.message == "@Disabled until the sandbox is back"
    assert run.errors == []


async def test_tests_are_read_page_by_page(teamcity, client) -> None:
    tests = [occurrence(f"unit: com.acme.Big.t{i}", number=i) for i in range(2 * PAGE_SIZE + 7)]
    tests[PAGE_SIZE + 3] = occurrence("unit: com.acme.Big.late", "FAILURE", details="boom")
    seed_build(teamcity, tests=tests)
    run = await results_of(client)
    assert run.totals().total == len(tests)
    assert failures(run) == {"late": "boom"}
    starts = [parse_qs(urlsplit(f"http://x{c.path}?locator={c.query['locator']}").query)
              for c in teamcity.calls_to("GET", r"/app/rest/testOccurrences")]
    assert [s["locator"][0].rsplit("start:", 1)[1] for s in starts] == [
        "0", str(PAGE_SIZE), str(2 * PAGE_SIZE)]


async def test_a_muted_failure_is_still_a_failure_and_says_it_is_muted(teamcity, client) -> None:
    seed_build(teamcity, status="SUCCESS", tests=[
        occurrence("unit: com.acme.A.flaps", "FAILURE", details="timeout", muted=True,
                   investigated=True),
    ])
    run = await results_of(client)
    assert failures(run) == {"flaps": "timeout (muted in TeamCity, under investigation)"}


async def test_an_unknown_status_that_is_not_ignored_is_an_error_not_a_pass(
    teamcity, client
) -> None:
    seed_build(teamcity, tests=[occurrence("unit: com.acme.A.odd", "UNKNOWN"),
                                occurrence("unit: com.acme.A.newer", "WARNING")])
    run = await results_of(client)
    assert {c.name: c.status for c in run.cases()} == {"odd": Status.ERROR,
                                                       "newer": Status.ERROR}


async def test_a_test_that_failed_then_passed_on_a_rerun_is_flaky_not_clean(
    teamcity, client
) -> None:
    seed_build(teamcity, status="SUCCESS", tests=[occurrence(
        "unit: com.acme.A.retried", "SUCCESS", invocations=[
            occurrence("unit: com.acme.A.retried", "FAILURE", details="flake", number=1),
            occurrence("unit: com.acme.A.retried", "SUCCESS", number=2),
        ])])
    run = await results_of(client)
    [case] = list(run.cases())
    assert case.status is Status.PASSED and case.flaky
    assert [a.message for a in case.attempts] == ["flake"]


async def test_a_test_teamcity_failed_over_its_invocations_stays_failed(teamcity, client) -> None:
    seed_build(teamcity, tests=[occurrence(
        "unit: com.acme.A.retried", "FAILURE", invocations=[
            occurrence("unit: com.acme.A.retried", "FAILURE", details="first", number=1),
            occurrence("unit: com.acme.A.retried", "SUCCESS", number=2),
        ])])
    run = await results_of(client)
    [case] = list(run.cases())
    assert case.status is Status.FAILED and case.message == "first"


async def test_two_occurrences_of_one_name_are_each_counted(teamcity, client) -> None:
    same = "integration: com.acme.Api.answers(region)"
    seed_build(teamcity, tests=[occurrence(same, "FAILURE", details="eu down", number=1),
                                occurrence(same, "SUCCESS", number=2)])
    run = await results_of(client)
    assert run.totals().total == 2 and len(run.failures()) == 1
    assert run.failures()[0].name == "answers(region)"


async def test_counts_that_disagree_with_teamcity_s_are_said_in_the_report(
    teamcity, client
) -> None:
    seed_build(teamcity)["testOccurrences"]["count"] = 6
    run = await results_of(client)
    assert [e.reason for e in run.errors] == ["TeamCity counts 6 tests, Herald read 5"]


async def test_a_compile_error_with_no_test_shows_the_build_failed_and_why(
    teamcity, client
) -> None:
    seed_build(teamcity, tests=[], status_text="Compilation error: src/Cart.kt", problems=[
        problem("TC_COMPILATION_ERROR", "kotlinc", "src/Cart.kt:12: unresolved reference"),
        problem("TC_EXIT_CODE", "step 2", "Process exited with code 1"),
        problem("TC_FAILED_TESTS", "tests", "Tests failed: 0"),
    ])
    run = await results_of(client)
    assert failures(run) == {"kotlinc": "src/Cart.kt:12: unresolved reference",
                             "step 2": "Process exited with code 1"}
    assert run.overall_status().value == "failed"


async def test_a_failed_build_with_nothing_failing_read_is_still_failed(teamcity, client) -> None:
    seed_build(teamcity, tests=[occurrence("unit: com.acme.A.ok")],
               status_text="Failure condition: coverage below 80%")
    run = await results_of(client)
    assert failures(run) == {
        "build failed": "TeamCity marked the build failed: Failure condition: coverage "
        "below 80%"}


async def test_a_canceled_build_says_its_results_are_partial(teamcity, client) -> None:
    seed_build(teamcity, status="UNKNOWN", canceled=True, status_text="Canceled",
               tests=[occurrence("unit: com.acme.A.ok")])
    run = await results_of(client, status="UNKNOWN")
    assert [e.source for e in run.errors] == ["TeamCity"]
    assert "canceled" in run.errors[0].reason


async def test_a_passing_build_without_tests_or_problems_has_no_results(teamcity, client) -> None:
    seed_build(teamcity, status="SUCCESS", tests=[])
    ref = ref_of(notification())
    assert await client.native_results(ref) is None


async def test_with_teamcity_tests_the_artifacts_are_not_read(teamcity, client) -> None:
    seed_build(teamcity, artifacts={"reports/TEST-cart.xml": b"<testsuite/>"})
    assert await client.list_artifacts(ref_of(notification())) == []
    assert not teamcity.calls_to("GET", r".*/artifacts/.*")


async def test_without_teamcity_tests_the_artifacts_are_the_results(teamcity, client) -> None:
    junit = b'<testsuite name="s"><testcase name="t"/></testsuite>'
    seed_build(teamcity, status="SUCCESS", tests=[],
               artifacts={"reports/TEST-cart.xml": junit, "app.jar": b"PK"})
    ref = ref_of(notification())
    listed = await client.list_artifacts(ref)
    assert [(a.name, a.size) for a in listed] == [("app.jar", 2), ("reports/TEST-cart.xml",
                                                                     len(junit))]
    assert listed[1].url == (f"{teamcity.url}/repository/download/{BUILD_TYPE}/"
                             f"{BUILD_ID}:id/reports/TEST-cart.xml")
    body = b"".join([chunk async for chunk in client.open_artifact(ref, listed[1])])
    assert body == junit


# ---- the change ----------------------------------------------------------------------------


async def test_the_change_is_the_github_pull_request_of_the_vcs_root(teamcity, client) -> None:
    seed_build(teamcity)
    ref = ref_of(notification())
    change = await client.change_of(ref, await client.get_build(ref))
    assert change == Change(forge="github", repo=REPO, sha=SHA, numbers=(PR,))


async def test_the_pull_requests_feature_parameter_names_the_pull_request(
    teamcity, client
) -> None:
    seed_build(teamcity, branch="feature/coupons")
    teamcity.server.properties[(BUILD_ID, "teamcity.pullRequest.number")] = "121"
    ref = ref_of(notification(branchName="feature/coupons"))
    change = await client.change_of(ref, await client.get_build(ref))
    assert (change.numbers, change.numbers_known) == ((121,), True)


async def test_a_branch_build_leaves_the_pull_requests_to_the_forge(teamcity, client) -> None:
    seed_build(teamcity, branch="main")
    ref = ref_of(notification(branchName="main"))
    change = await client.change_of(ref, await client.get_build(ref))
    assert (change.numbers, change.numbers_known) == ((), False)


async def test_a_build_of_several_repositories_is_not_guessed(teamcity, client) -> None:
    teamcity.add_root("1300", "Shared_Lib", "https://github.com/acme/shared-lib.git")
    seed_build(teamcity, revisions=[(INSTANCE, SHA), ("1300", "a" * 40)])
    ref = ref_of(notification(revisions={"revision": []}))
    with pytest.raises(PermanentError, match="several repositories"):
        await client.change_of(ref, await client.get_build(ref))


async def test_the_webhook_s_revision_picks_among_several(teamcity, client) -> None:
    teamcity.add_root("1300", "Shared_Lib", "https://github.com/acme/shared-lib.git")
    seed_build(teamcity, revisions=[("1300", "a" * 40), (INSTANCE, SHA)])
    ref = ref_of(notification())
    change = await client.change_of(ref, await client.get_build(ref))
    assert (change.repo, change.sha) == (REPO, SHA)


async def test_a_repository_on_no_configured_forge_is_refused(teamcity, client) -> None:
    teamcity.add_root(INSTANCE, ROOT, "https://git.unknown.example/acme/storefront.git")
    seed_build(teamcity)
    ref = ref_of(notification())
    with pytest.raises(PermanentError, match="no repository on a forge"):
        await client.change_of(ref, await client.get_build(ref))


# ---- hosts never contacted -----------------------------------------------------------------


async def test_urls_in_webhooks_and_answers_are_never_fetched(
    teamcity, client, capture: CaptureServer
) -> None:
    seed_build(teamcity, artifacts={})["webUrl"] = f"{capture.url}/build"
    ref = ref_of(notification(webUrl=f"{capture.url}/buildConfiguration/x/1",
                              href=f"{capture.url}/app/rest/builds/id:1",
                              artifacts={"href": f"{capture.url}/app/rest/artifacts"}))
    build = await client.get_build(ref)
    await client.native_results(ref)
    await client.list_artifacts(ref)
    origin = client.origin_of(ref, build)
    assert capture.requests == []
    assert origin.url is not None and origin.url.startswith(teamcity.url)


async def test_a_next_page_on_another_host_is_refused_and_never_asked(
    teamcity, client, capture: CaptureServer
) -> None:
    seed_build(teamcity, tests=[occurrence(f"unit: a.B.t{i}") for i in range(PAGE_SIZE + 1)])
    teamcity.next_href = f"{capture.url}/app/rest/testOccurrences?locator=build:(id:1)"
    with pytest.raises(PermanentError, match=r"outside|next page"):
        await results_of(client)
    assert capture.requests == []


async def test_a_next_page_outside_the_collection_is_refused(teamcity, client) -> None:
    seed_build(teamcity, tests=[occurrence(f"unit: a.B.t{i}") for i in range(PAGE_SIZE + 1)])
    teamcity.next_href = "/app/rest/users/current"
    with pytest.raises(PermanentError, match="next page"):
        await results_of(client)
    assert not teamcity.calls_to("GET", r"/app/rest/users.*")


async def test_an_artifact_redirected_elsewhere_goes_there_without_the_token(
    teamcity, client, capture: CaptureServer
) -> None:
    seed_build(teamcity, status="SUCCESS", tests=[], artifacts={"TEST-a.xml": b""})
    teamcity.server.redirects[(BUILD_ID, "TEST-a.xml")] = f"{capture.url}/bucket/a.xml"
    ref = ref_of(notification())
    [artifact] = await client.list_artifacts(ref)
    body = b"".join([chunk async for chunk in client.open_artifact(ref, artifact)])
    assert json.loads(body) == {"captured": True}
    [(_, path, headers)] = capture.requests
    assert path == "/bucket/a.xml" and "authorization" not in headers


async def download_redirected_to(teamcity: FakeTeamCity, location: str) -> None:
    """Download an artifact that TeamCity redirects to `location`, through the worker's
    guarded transport: only the configured TeamCity (host and port) is trusted."""
    seed_build(teamcity, status="SUCCESS", tests=[], artifacts={"TEST-a.xml": b""})
    teamcity.server.redirects[(BUILD_ID, "TEST-a.xml")] = location
    env = teamcity_env(teamcity)
    policy = EgressPolicy.from_settings(Settings.from_env(env))
    async with httpx.AsyncClient(transport=guarded_transport(policy)) as guarded:
        client = create_client(ProviderSettings("teamcity", env), guarded)
        ref = ref_of(notification())
        [artifact] = await client.list_artifacts(ref)
        async for _ in client.open_artifact(ref, artifact):
            pass


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "2130706433", "0x7f000001", "[::ffff:127.0.0.1]",
    "169.254.169.254", "10.0.0.7", "192.168.1.1", "[fe80::1]",
])
async def test_an_artifact_redirected_to_a_private_address_is_refused_before_connecting(
    teamcity, capture: CaptureServer, host: str
) -> None:
    port = urlsplit(capture.url).port
    with pytest.raises(PermanentError, match="refused to connect"):
        await download_redirected_to(teamcity, f"http://{host}:{port}/a.xml")
    assert capture.requests == []


async def test_an_artifact_redirected_to_an_octal_address_is_never_contacted(
    teamcity, capture: CaptureServer
) -> None:
    """httpx itself refuses to read `0177.0.0.1` in a Location header (a protocol error,
    retried as a fault the server made): no connection is made either way."""
    port = urlsplit(capture.url).port
    with pytest.raises(ProviderError):
        await download_redirected_to(teamcity, f"http://0177.0.0.1:{port}/a.xml")
    assert capture.requests == []


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://files.example/a.xml",
                                      "http://user:pw@files.example/a.xml"])
async def test_an_artifact_redirected_to_another_scheme_or_credentials_is_refused(
    teamcity, client, location: str
) -> None:
    seed_build(teamcity, status="SUCCESS", tests=[], artifacts={"TEST-a.xml": b""})
    teamcity.server.redirects[(BUILD_ID, "TEST-a.xml")] = location
    ref = ref_of(notification())
    [artifact] = await client.list_artifacts(ref)
    with pytest.raises(PermanentError, match="refusing"):
        async for _ in client.open_artifact(ref, artifact):
            pass


def test_an_https_teamcity_never_follows_a_redirect_to_plain_http(make_client) -> None:
    client = make_client(HERALD_TEAMCITY_URL="https://teamcity.acme.example")
    with pytest.raises(PermanentError, match="refusing to download from http://"):
        client.session.checked_location("http://teamcity.acme.example/a.xml", "download")


# ---- the build's comment -------------------------------------------------------------------


async def test_the_report_is_summed_up_in_the_build_s_comment(teamcity, client) -> None:
    seed_build(teamcity)
    ref = ref_of(notification())
    run = await results_of(client)
    await client.describe(ref, run, Change("github", REPO, SHA, (PR,)))
    [(build_id, text)] = teamcity.comments
    assert build_id == BUILD_ID
    assert text.startswith("Herald: 2 failed, 2 passed, 1 skipped")
    assert text.endswith(f"(reported on github {REPO}, pull request {PR})")
    await client.describe(ref, run, Change("github", REPO, SHA, (PR,)))  # a redelivery
    assert len(teamcity.comments) == 1


async def test_a_comment_of_the_build_s_own_is_kept(teamcity, client) -> None:
    seed_build(teamcity)["comment"] = {"text": "hotfix for INC-42"}
    ref = ref_of(notification())
    await client.describe(ref, await results_of(client), Change("github", REPO, SHA))
    assert teamcity.comments == []


async def test_without_the_permission_the_comment_is_refused(teamcity, client) -> None:
    teamcity.may_comment = False
    seed_build(teamcity)
    ref = ref_of(notification())
    with pytest.raises(Forbidden):
        await client.describe(ref, await results_of(client), Change("github", REPO, SHA))


# ---- queued again --------------------------------------------------------------------------


def asked_by(ref, author: str = "lena"):  # type: ignore[no-untyped-def]
    return type(ref)(**{**{f: getattr(ref, f) for f in ref.__dataclass_fields__},
                        "extra": {**ref.extra, "requested_by": author,
                                  "requested_on": "github"}})


async def test_a_rerun_queues_the_same_configuration_branch_and_revision(
    teamcity, client
) -> None:
    seed_build(teamcity)
    rerun = await client.rerun(asked_by(ref_of(notification())))
    assert rerun.runs == [BUILD_TYPE]
    [queued] = teamcity.queued
    assert queued["buildType"] == {"id": BUILD_TYPE}
    assert queued["branchName"] == "pull/118"
    assert queued["revisions"] == {"revision": [{
        "version": SHA, "vcsBranchName": "refs/pull/118",
        "vcs-root-instance": {"id": INSTANCE, "vcs-root-id": ROOT}}],
        "failOnMissingRevisions": True}
    assert queued["comment"]["text"].startswith("Herald: /retest by @lena on github [herald-")


async def test_a_502_on_the_queue_request_is_checked_before_sending_again(
    teamcity, client
) -> None:
    seed_build(teamcity)
    teamcity.fail("POST", "/app/rest/buildQueue", status=502)
    await client.rerun(asked_by(ref_of(notification())))
    assert [c.fault for c in teamcity.calls_to("POST", "/app/rest/buildQueue")] == [502, None]
    assert len(teamcity.queued) == 1
    assert teamcity.calls_to("GET", "/app/rest/buildQueue")  # looked before sending again


async def test_a_queue_request_whose_answer_is_lost_is_not_sent_again(teamcity, client) -> None:
    seed_build(teamcity)
    teamcity.lose_answer("^POST /app/rest/buildQueue$", how="reset")
    await client.rerun(asked_by(ref_of(notification())))
    assert len(teamcity.calls_to("POST", "/app/rest/buildQueue")) == 1
    assert len(teamcity.queued) == 1


async def test_the_latest_failed_build_of_each_reported_configuration_is_named(
    teamcity, client
) -> None:
    seed_build(teamcity, 204100, number="510")
    seed_build(teamcity, BUILD_ID)
    teamcity.add_root("1400", "Docs_GitHub", "https://github.com/acme/storefront.git")
    seed_build(teamcity, 204119, build_type="Storefront_Docs", name="Docs", status="SUCCESS",
               revisions=[("1400", SHA)])
    reported = [ref_of(notification(id=i, buildTypeId=t)) for i, t in (
        (204100, BUILD_TYPE), (BUILD_ID, BUILD_TYPE), (204119, "Storefront_Docs"))]
    found = await client.latest_failed_of(Change("github", REPO, SHA, (PR,)), reported)
    assert [(r.repo, r.run_id, r.extra["name"]) for r in found] == [
        (BUILD_TYPE, str(BUILD_ID), "Storefront / Build #512")]


async def test_a_configuration_queued_again_since_is_not_named_again(teamcity, client) -> None:
    seed_build(teamcity)
    ref = ref_of(notification())
    await client.rerun(asked_by(ref))
    assert await client.latest_failed_of(Change("github", REPO, SHA, (PR,)), [ref]) == []


async def test_without_records_teamcity_names_no_build(client) -> None:
    assert await client.latest_failed_runs(Change("github", REPO, SHA)) == []


async def test_the_token_is_never_logged(teamcity, client) -> None:
    from structlog.testing import capture_logs

    seed_build(teamcity)
    with capture_logs() as lines:
        ref = ref_of(notification())
        await client.get_build(ref)
        await client.native_results(ref)
    assert lines and teamcity.token not in repr(lines)
