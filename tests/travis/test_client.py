"""The Travis CI client against the fake Travis API: what it reads, what it restarts,
where it connects (never with the token anywhere but Travis' API), and how a failed job
always shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.config import ConfigError
from bot.results.model import Artifact, TestRun
from bot.settings import ProviderSettings, Settings
from providers.base import NotConfigured, OutcomeUnknown, PermanentError
from providers.travis.client import TravisClient, create_client, fill_template
from tests.fakes.jenkins import CaptureServer
from tests.fakes.travis import TOKEN, FakeTravis, ReportHost, TravisJob, matrix
from tests.travis.conftest import travis_env
from tests.travis.world import (
    BUILD_ID,
    HEAD,
    LEG_311,
    LEG_312,
    PR,
    REPO,
    REPO_ID,
    notification,
    ref_of,
    seed_build,
)

LEG_311_NAME = "job 1042.1 (os: linux, language: python, python: 3.11)"
LEG_312_NAME = "job 1042.2 (os: linux, language: python, python: 3.12)"


def ref(**changes: Any):
    return ref_of(notification(**changes))


async def test_a_wrong_token_is_refused_by_travis_and_nothing_is_read(
    travis: FakeTravis, make_client: Callable[..., TravisClient]
) -> None:
    seed_build(travis)
    client = make_client(HERALD_TRAVIS_TOKEN="guessed")
    with pytest.raises(PermanentError, match=r"403.*access denied"):
        await client.get_build(ref())
    [call] = travis.calls
    assert call.headers["authorization"] == "token guessed"
    assert call.headers["travis-api-version"] == "3"


def test_without_a_token_there_is_no_client(travis: FakeTravis) -> None:
    env = travis_env(travis)
    del env["HERALD_TRAVIS_TOKEN"]
    with pytest.raises(NotConfigured, match="HERALD_TRAVIS_TOKEN"):
        create_client(ProviderSettings("travis", env), None)


async def test_a_build_s_jobs_are_its_matrix_legs_named_by_number_and_config(
    travis: FakeTravis, client: TravisClient
) -> None:
    seed_build(travis)
    build = await client.get_build(ref())
    assert (build.status, build.failed, build.changes, build.sha) == ("failed", True, [PR], HEAD)
    assert [(j.name, j.status, j.failed) for j in build.jobs] == [
        (LEG_311_NAME, "failed", True), (LEG_312_NAME, "passed", False)]
    assert build.jobs[0].url == (
        f"https://app.travis-ci.com/github/{REPO}/jobs/{LEG_311}")
    assert build.url == f"https://app.travis-ci.com/github/{REPO}/builds/{BUILD_ID}"
    # The jobs were asked for with their config: the standard representation has none.
    [jobs] = travis.calls_to("GET", rf"/build/{BUILD_ID}/jobs")
    assert jobs.query == {"limit": "100", "offset": "0", "include": "job.config"}


async def test_a_build_of_many_jobs_is_read_page_by_page(travis: FakeTravis,
                                                         client: TravisClient) -> None:
    legs = matrix(BUILD_ID, "1042", [("passed", {"env": f"SHARD={i}"}, b"") for i in range(150)])
    seed_build(travis, legs=legs)
    build = await client.get_build(ref())
    assert len(build.jobs) == 150 and build.jobs[-1].name == "job 1042.150 (env: SHARD=149)"
    assert [c.query["offset"] for c in travis.calls_to("GET", r"/jobs$")] == ["0", "100"]


async def test_each_leg_s_log_summary_is_its_own_origin(travis: FakeTravis,
                                                        make_client) -> None:
    seed_build(travis)
    client = make_client(HERALD_TRAVIS_LOG_SUMMARY="pytest")
    run = await results(client, ref())
    by_origin: dict[str, list[str]] = {}
    for case in run.cases():
        by_origin.setdefault(case.origin.name, []).append(case.status.value)
    # The same five tests ran on both legs: ten executions, never folded into five.
    assert by_origin == {
        f"{LEG_311_NAME} — log": ["passed"] * 3 + ["failed"] * 2,
        f"{LEG_312_NAME} — log": ["passed"] * 5,
    }
    assert (run.totals().total, run.totals().failures) == (10, 2)
    logs = travis.calls_to("GET", r"/job/\d+/log")
    assert {c.headers["accept"] for c in logs} == {"text/plain"}


async def results(client: TravisClient, run_ref, artifacts: list[Artifact] | None = None
                  ) -> TestRun:
    """What the report handler does with a source: native results, then the failures
    only the CI knows of."""
    build = await client.get_build(run_ref)
    run = await client.native_results(run_ref) or TestRun(id=run_ref.run_id)
    run.artifacts = artifacts or []
    client.account_for_failures(run_ref, build, run)
    return run


async def test_a_failed_job_whose_log_has_no_summary_is_a_failure_named_after_it(
    travis: FakeTravis, make_client
) -> None:
    seed_build(travis, legs=[
        TravisJob(LEG_311, "1042.1", "errored", {"name": "lint"},
                  log=b"$ flake8\nsrc/a.py:1:1: F401\n"),
        TravisJob(LEG_312, "1042.2", "passed", {"python": "3.12"}, log=b"5 passed in 1s\n"),
    ])
    run = await results(make_client(HERALD_TRAVIS_LOG_SUMMARY="pytest"), ref())
    [failure] = run.failures()
    assert (failure.name, failure.status.value, failure.suite) == (
        "job 1042.1 (lint)", "error", "Travis CI jobs")
    assert failure.message.startswith("Travis CI says the job errored")
    assert failure.origin.url == f"https://app.travis-ci.com/github/{REPO}/jobs/{LEG_311}"
    assert run.overall_status().value == "failed"


async def test_a_failed_build_with_no_results_configured_still_reports_its_failed_jobs(
    travis: FakeTravis, client: TravisClient
) -> None:
    seed_build(travis)
    run = await results(client, ref())
    assert [c.name for c in run.failures()] == [LEG_311_NAME]
    assert travis.calls_to("GET", r"/log$") == []  # no log read unless configured


async def test_a_failed_job_whose_tests_all_passed_still_shows_as_failed(
    travis: FakeTravis, make_client
) -> None:
    """A step after the tests failed (a coverage gate): green tests must not hide it."""
    from tests.travis.world import PASSING_LOG

    seed_build(travis, legs=[TravisJob(LEG_311, "1042.1", "failed", {}, log=PASSING_LOG)])
    run = await results(make_client(HERALD_TRAVIS_LOG_SUMMARY="pytest"), ref())
    assert [c.name for c in run.failures()] == ["job 1042.1"]
    assert run.totals().passed == 5


async def test_a_job_allowed_to_fail_keeps_its_failures_but_adds_no_entry_of_its_own(
    travis: FakeTravis, make_client
) -> None:
    seed_build(travis, state="passed", legs=[
        TravisJob(LEG_311, "1042.1", "failed", {}, allow_failure=True, log=b"$ make\n"),
        TravisJob(LEG_312, "1042.2", "passed", {}, log=b"FAILED t.py::a\n1 failed in 1s\n")])
    run = await results(make_client(HERALD_TRAVIS_LOG_SUMMARY="pytest"), ref())
    assert [c.name for c in run.failures()] == ["a"]


async def test_a_passed_build_without_results_reports_nothing(travis: FakeTravis,
                                                              client: TravisClient) -> None:
    seed_build(travis, state="passed",
               legs=[TravisJob(LEG_311, "1042.1", "passed", {})])
    assert await client.native_results(ref(state="passed")) is None


# ---- report files --------------------------------------------------------------------------


async def test_report_files_are_named_per_job_and_fetched_without_the_travis_token(
    travis: FakeTravis, reports: ReportHost, make_client
) -> None:
    seed_build(travis)
    template = f"{reports.url}/bucket/{{repo}}/{{build_number}}/{{job_number}}/junit.xml"
    client = make_client(HERALD_TRAVIS_REPORT_URL=template)
    reports.files[f"/bucket/{REPO}/1042/1042.1/junit.xml"] = b"<testsuite/>"
    run_ref = ref()
    await client.get_build(run_ref)
    listed = await client.list_artifacts(run_ref)
    assert [(a.name, a.url) for a in listed] == [
        (f"{LEG_311_NAME} — report junit.xml",
         f"{reports.url}/bucket/{REPO}/1042/1042.1/junit.xml"),
        (f"{LEG_312_NAME} — report junit.xml",
         f"{reports.url}/bucket/{REPO}/1042/1042.2/junit.xml"),
    ]
    body = b"".join([c async for c in client.open_artifact(run_ref, listed[0])])
    assert body == b"<testsuite/>"
    [(method, _, headers)] = reports.requests
    assert method == "GET" and "authorization" not in headers
    assert TOKEN not in " ".join(headers.values())
    # With report files configured, logs are not read as well (nothing counts twice).
    assert await client.native_results(run_ref) is not None
    assert travis.calls_to("GET", r"/log$") == []


async def test_a_report_file_redirected_to_a_private_address_is_never_contacted(
    travis: FakeTravis, reports: ReportHost, capture: CaptureServer, make_client
) -> None:
    seed_build(travis)
    client = make_client(HERALD_TRAVIS_REPORT_URL=f"{reports.url}/{{job_id}}.xml")
    reports.redirects[f"/{LEG_311}.xml"] = f"{capture.url}/latest/meta-data/"
    run_ref = ref()
    await client.get_build(run_ref)
    [first, _] = await client.list_artifacts(run_ref)
    with pytest.raises(PermanentError, match="refused to connect"):
        [c async for c in client.open_artifact(run_ref, first)]
    assert capture.requests == []


async def test_an_archived_log_on_another_host_gets_no_token(
    travis: FakeTravis, reports: ReportHost, make_client
) -> None:
    """Travis may redirect a log to where it is archived: the token stays behind."""
    seed_build(travis)
    reports.files["/archive/log.txt"] = b"FAILED t.py::a - x\n=== 1 failed in 1s ===\n"
    travis.log_redirects[LEG_311] = f"{reports.url}/archive/log.txt"
    client = make_client(HERALD_TRAVIS_LOG_SUMMARY="pytest",
                         HERALD_EGRESS_ALLOWED_HOSTS=reports.url.removeprefix("http://"))
    run = await results(client, ref())
    assert "a" in [c.name for c in run.failures()]
    [(_, path, headers)] = reports.requests
    assert path == "/archive/log.txt" and "authorization" not in headers


async def test_a_log_redirected_to_a_private_address_is_never_contacted(
    travis: FakeTravis, capture: CaptureServer, make_client
) -> None:
    seed_build(travis)
    travis.log_redirects[LEG_311] = f"{capture.url}/log.txt"
    with pytest.raises(PermanentError, match="refused to connect"):
        await results(make_client(HERALD_TRAVIS_LOG_SUMMARY="pytest"), ref())
    assert capture.requests == []


def test_template_values_cannot_leave_the_path() -> None:
    url = fill_template("https://r.example/{repo}/{job_number}.xml",
                        {"repo": "a/b?x=1", "job_number": "../../@evil.example#"})
    assert url == "https://r.example/a/b%3Fx%3D1/..%2F..%2F%40evil.example%23.xml"


@pytest.mark.parametrize("template", [
    "https://{repo}.s3.amazonaws.com/x.xml",  # the host is the operator's, not a build's
    "https://r.example/{token}.xml",
    "https://r.example/{job_id!r}.xml",
    "ftp://r.example/{job_id}.xml",
    "https://user:pw@r.example/{job_id}.xml",
])
def test_a_report_url_that_could_go_elsewhere_is_refused_at_start(template: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_TRAVIS_REPORT_URL"):
        Settings.from_env({"HERALD_TRAVIS_REPORT_URL": template}).config  # noqa: B018


# ---- the change ------------------------------------------------------------------------------


async def test_a_pull_request_build_is_the_pull_request_s_head(travis: FakeTravis,
                                                               client: TravisClient) -> None:
    seed_build(travis)
    run_ref = ref()
    change = await client.change_of(run_ref, await client.get_build(run_ref))
    assert (change.forge, change.repo, change.sha, change.numbers, change.numbers_known) == (
        "github", REPO, HEAD, (PR,), True)
    origin = client.origin_of(run_ref, None)
    assert (origin.name, origin.number, origin.sequence) == (
        f"{REPO} (pull request)", "1042", BUILD_ID)


async def test_a_push_build_lets_the_forge_find_the_pull_requests(travis: FakeTravis,
                                                                  client: TravisClient) -> None:
    seed_build(travis, event_type="push", pull_request_number=None)
    run_ref = ref(type="push", pull_request=False, pull_request_number=None)
    change = await client.change_of(run_ref, await client.get_build(run_ref))
    assert (change.numbers, change.numbers_known) == ((), False)
    assert client.origin_of(run_ref, None).name == f"{REPO} (push)"


@pytest.mark.parametrize(("vcs", "forge"), [("GitlabRepository", "gitlab"),
                                            ("BitbucketRepository", "bitbucket")])
async def test_the_repository_s_vcs_type_names_the_forge(travis: FakeTravis,
                                                         client: TravisClient, vcs, forge) -> None:
    travis.add_repo(REPO_ID, REPO, vcs)
    seed_build(travis)
    run_ref = ref()
    assert (await client.change_of(run_ref, await client.get_build(run_ref))).forge == forge


async def test_a_repository_on_no_forge_herald_reports_to_is_refused(
    travis: FakeTravis, client: TravisClient
) -> None:
    travis.add_repo(REPO_ID, REPO, "AssemblaRepository")
    seed_build(travis)
    run_ref = ref()
    with pytest.raises(PermanentError, match="AssemblaRepository"):
        await client.change_of(run_ref, await client.get_build(run_ref))


# ---- restarts ----------------------------------------------------------------------------------


async def test_retest_restarts_only_the_failed_jobs(travis: FakeTravis,
                                                    client: TravisClient) -> None:
    seed_build(travis)
    rerun = await client.rerun(ref())
    assert travis.restarts == [LEG_311]
    assert rerun.jobs == [str(LEG_311)]
    assert travis.calls_to("POST", r"/build/") == []  # never the whole build


async def test_a_restart_whose_answer_was_lost_is_read_back_not_sent_again(
    travis: FakeTravis, client: TravisClient
) -> None:
    seed_build(travis)
    travis.lose_answer(rf"^POST /job/{LEG_311}/restart$")
    await client.rerun(ref())
    assert travis.restarts == [LEG_311]
    assert len(travis.calls_to("POST", r"/restart$")) == 1
    assert travis.calls_to("GET", rf"^/job/{LEG_311}$")


async def test_a_5xx_on_a_restart_is_read_back_and_the_restart_sent_once_more(
    travis: FakeTravis, client: TravisClient
) -> None:
    """A 502 may come from a proxy after Travis acted, or before: the job is read back,
    found still failed, and the restart sent once more; exactly one lands."""
    seed_build(travis)
    travis.fail("POST", rf"/job/{LEG_311}/restart", status=502)
    await client.rerun(ref())
    assert travis.restarts == [LEG_311]
    assert [c.fault for c in travis.calls_to("POST", r"/restart$")] == [502, None]


async def test_restarts_that_keep_failing_are_left_to_the_job_s_retry(
    travis: FakeTravis, client: TravisClient
) -> None:
    seed_build(travis)
    travis.fail("POST", rf"/job/{LEG_311}/restart", status=502, times=10)
    with pytest.raises(OutcomeUnknown):
        await client.rerun(ref())
    assert travis.restarts == []
    assert len(travis.calls_to("POST", r"/restart$")) == 3  # bounded: one send, two resends


async def test_a_restart_without_permission_says_so(travis: FakeTravis,
                                                    client: TravisClient) -> None:
    travis.may_restart = False
    seed_build(travis)
    with pytest.raises(PermanentError, match="403: operation requires restart access to job"):
        await client.rerun(ref())


async def test_only_the_latest_reported_build_with_failed_jobs_is_retested(
    travis: FakeTravis, client: TravisClient
) -> None:
    seed_build(travis)
    run_ref = ref()
    change = await client.change_of(run_ref, await client.get_build(run_ref))
    [found] = await client.latest_failed_of(change, [run_ref])
    assert (found.run_id, found.extra["name"]) == (str(BUILD_ID),
                                                   f"Travis CI build #1042 of {REPO}")
    await client.rerun(found)
    # Restarted, so no longer failed: a second /retest asks for nothing.
    assert await client.latest_failed_of(change, [run_ref]) == []
    assert travis.job(LEG_312).state == "passed"


async def test_a_log_over_the_size_cap_is_named_unread_and_its_failed_job_still_shows(
    travis: FakeTravis, make_client
) -> None:
    huge = b"PASSED t.py::a\n" * 2000 + b"=== 1 failed, 2000 passed in 9s ===\n"
    seed_build(travis, legs=[TravisJob(LEG_311, "1042.1", "failed", {}, log=huge)])
    client = make_client(HERALD_TRAVIS_LOG_SUMMARY="pytest", HERALD_ARTIFACT_MAX_BYTES="8192")
    run = await results(client, ref())
    [error] = run.errors
    assert error.source == "job 1042.1 — log" and "8,192-byte limit" in error.reason
    [failure] = run.failures()
    assert failure.name == "job 1042.1"
    assert "could not all be read" in failure.message


async def test_without_a_build_url_in_the_notification_the_pages_are_derived_from_the_api(
    travis: FakeTravis, client: TravisClient
) -> None:
    seed_build(travis)
    run_ref = ref(build_url=None)
    build = await client.get_build(run_ref)
    # The fake serves on loopback: its "web root" is itself, as an Enterprise host's is.
    assert build.url == f"{travis.url}/{REPO}/builds/{BUILD_ID}"
    assert build.jobs[0].url == f"{travis.url}/{REPO}/jobs/{LEG_311}"
