"""providers.github.client against the fake GitHub: auth, faults, downloads, publishing."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest

from bot.reports.markdown import WORD_JOINER
from bot.results.model import Status, Suite, TestCase, TestRun
from bot.settings import ConfigError, ProviderSettings, Secret
from providers.base import CISource, ForgeTarget, NotConfigured, PermanentError, TransientError
from providers.github.auth import (
    AppCredentials,
    AppJWT,
    InstallationToken,
    InstallationTokens,
)
from providers.github.client import GitHubClient, create_client
from providers.http import Forbidden, Unauthorized
from tests.fakes import failed_runs, publish, publish_error
from tests.fakes.github import FakeGitHub
from tests.github.conftest import REPO, app_key, github_env
from tests.github.world import PR, SHA, comment, ref_for, seed_run

RUN_PATH = r"/repos/heraldhq/herald/actions/runs/\d+"
CHECKS = "/repos/heraldhq/herald/check-runs"
CHECK = r"/repos/heraldhq/herald/check-runs/\d+"
COMMENTS = rf"/repos/heraldhq/herald/issues/{PR}/comments"
TOKENS = r"/app/installations/\d+/access_tokens"


def failing_run(failures: int, *, file: str | None = "tests/test_calc.py") -> TestRun:
    cases = [
        TestCase(f"test_{i}", "tests.test_calc", "pytest", Status.FAILED, file=file, line=i + 1,
                 message=f"assert {i} == -1", stack_trace=f"trace {i}")
        for i in range(failures)
    ]
    cases.append(TestCase("test_ok", "tests.test_calc", "pytest"))
    return TestRun(id="run", suites=[Suite("pytest", cases)])


# ---- configuration and auth --------------------------------------------------------------


def test_the_client_is_both_ci_and_forge(client: GitHubClient) -> None:
    assert isinstance(client, CISource)
    assert isinstance(client, ForgeTarget)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HERALD_GITHUB_APP_ID": ""}, "HERALD_GITHUB_APP_ID"),
        ({"HERALD_GITHUB_PRIVATE_KEY": ""}, "HERALD_GITHUB_PRIVATE_KEY"),
        ({"HERALD_GITHUB_PRIVATE_KEY": "not a key"}, "not a PEM private key"),
    ],
)
def test_missing_or_bad_credentials_are_not_configured(
    fake: FakeGitHub, env: dict[str, str], message: str
) -> None:
    settings = ProviderSettings("github", {**github_env(fake), **env})
    with pytest.raises(NotConfigured, match=message):
        create_client(settings, httpx.AsyncClient())


def test_an_app_id_that_is_not_a_number_is_a_config_error(fake: FakeGitHub) -> None:
    # a malformed value, not a missing one: the schema refuses it (at start, in production)
    settings = ProviderSettings("github", {**github_env(fake), "HERALD_GITHUB_APP_ID": "herald"})
    with pytest.raises(ConfigError, match="HERALD_GITHUB_APP_ID must be the App's numeric id"):
        create_client(settings, httpx.AsyncClient())


@pytest.mark.parametrize(
    "env",
    [
        {"HERALD_GITHUB_REQUEST_TIMEOUT": "0"},
        {"HERALD_GITHUB_REQUEST_TIMEOUT": "-5"},
        {"HERALD_GITHUB_REQUEST_TIMEOUT": "nan"},
        {"HERALD_GITHUB_REQUEST_TIMEOUT": "300"},
        {"HERALD_GITHUB_REQUEST_TIMEOUT": "60", "HERALD_JOB_TIMEOUT_SECONDS": "30"},
    ],
)
def test_a_request_timeout_must_fit_inside_the_job_timeout(
    fake: FakeGitHub, env: dict[str, str]
) -> None:
    settings = ProviderSettings("github", {**github_env(fake), **env})
    with pytest.raises(ConfigError, match="HERALD_GITHUB_REQUEST_TIMEOUT"):
        create_client(settings, httpx.AsyncClient())


def test_the_key_may_come_from_a_file_or_with_escaped_newlines(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(fake.private_key)
    from_file = {**github_env(fake), "HERALD_GITHUB_PRIVATE_KEY": "",
                 "HERALD_GITHUB_PRIVATE_KEY_FILE": str(key_file)}
    one_line = {**github_env(fake),
                "HERALD_GITHUB_PRIVATE_KEY": fake.private_key.replace("\n", "\\n")}
    for env in (from_file, one_line):
        client = create_client(ProviderSettings("github", env), httpx.AsyncClient())
        assert client.credentials.private_key.reveal().strip() == fake.private_key.strip()


@pytest.mark.parametrize(("client_id", "issuer"), [(None, "4242"), ("Iv1.abc", "Iv1.abc")])
def test_the_app_jwt_is_rs256_backdated_and_short_lived(client_id: str | None, issuer: str):
    private, public = app_key()
    now = 1_800_000_000.0
    signer = AppJWT(AppCredentials("4242", Secret(private), client_id), clock=lambda: now)
    claims = pyjwt.decode(signer.token(), public, algorithms=["RS256"],
                          options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iat": int(now) - 60, "exp": int(now) + 540, "iss": issuer}


async def test_installation_tokens_are_reused_and_refreshed_before_expiry() -> None:
    now = 1_000.0
    fetched: list[str] = []

    async def fetch(installation: str) -> InstallationToken:
        fetched.append(installation)
        return InstallationToken(Secret(f"t{len(fetched)}"), expires_at=now + 3600)

    tokens = InstallationTokens(fetch, clock=lambda: now)
    assert (await tokens.get("1")).reveal() == "t1"
    now += 3600 - 301  # still more than five minutes left
    assert (await tokens.get("1")).reveal() == "t1"
    now += 2  # inside the last five minutes: replaced before anyone uses it
    assert (await tokens.get("1")).reveal() == "t2"
    results = await asyncio.gather(*(tokens.get("2") for _ in range(5)))
    assert {r.reveal() for r in results} == {"t3"}  # one refresh for five waiting requests
    assert fetched == ["1", "1", "2"]


async def test_one_token_serves_many_requests(fake: FakeGitHub, client: GitHubClient) -> None:
    run = seed_run(fake)
    ref = ref_for(fake, run)
    await client.get_build(ref)
    await client.list_artifacts(ref)
    assert len(fake.calls_to("POST", TOKENS)) == 1


async def test_a_revoked_token_is_refreshed_once_mid_job(fake, client) -> None:
    run = seed_run(fake)
    ref = ref_for(fake, run)
    await client.get_build(ref)
    fake.tokens.clear()  # GitHub revoked it (or the clock lied)
    await client.list_artifacts(ref)
    assert len(fake.calls_to("POST", TOKENS)) == 2


async def test_a_token_refused_twice_is_a_permanent_error_not_a_loop(fake, client) -> None:
    run = seed_run(fake)
    fake.fail("GET", RUN_PATH, times=5, status=401, body={"message": "Bad credentials"})
    with pytest.raises(PermanentError, match="401"):
        await client.get_build(ref_for(fake, run))
    assert len(fake.calls_to("GET", RUN_PATH)) == 2
    assert len(fake.calls_to("POST", TOKENS)) == 2


# ---- rate limits and faults --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (429, {"retry-after": "30"}, None, 30),
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "+120"}, None, 121),
        (403, {}, {"message": "You have exceeded a secondary rate limit."}, 60),
        (429, {}, None, 60),
    ],
)
async def test_a_rate_limit_blocks_the_installation_until_it_lifts(
    fake, client, status, headers, body, expected
) -> None:
    run = seed_run(fake)
    if headers.get("x-ratelimit-reset") == "+120":
        headers = {**headers, "x-ratelimit-reset": str(int(time.time()) + 120)}
    fake.fail("GET", RUN_PATH, status=status, headers=headers, body=body)
    ref = ref_for(fake, run)
    with pytest.raises(TransientError) as first:
        await client.get_build(ref)
    assert first.value.retry_after == pytest.approx(expected, abs=2)
    sent = len(fake.calls)
    # While blocked, nothing at all is sent for this installation.
    with pytest.raises(TransientError) as second:
        await client.list_artifacts(ref)
    assert len(fake.calls) == sent
    assert 0 < (second.value.retry_after or 0) <= expected + 1


async def test_a_plain_403_is_permanent_and_blocks_nothing(fake, client) -> None:
    run = seed_run(fake)
    refusal = {"message": "Resource not accessible by integration"}
    fake.fail("GET", RUN_PATH, status=403, body=refusal)
    with pytest.raises(PermanentError, match="Resource not accessible"):
        await client.get_build(ref_for(fake, run))
    await client.list_artifacts(ref_for(fake, run))


async def test_5xx_on_a_read_is_retried_quickly_then_succeeds(fake, client) -> None:
    run = seed_run(fake)
    fake.fail("GET", RUN_PATH, times=2, status=502)
    build = await client.get_build(ref_for(fake, run))
    assert build.status == "failure"
    assert [c.fault for c in fake.calls_to("GET", RUN_PATH)] == [502, 502, None]


async def test_5xx_that_persists_becomes_transient(fake, client) -> None:
    run = seed_run(fake)
    fake.fail("GET", RUN_PATH, times=3, status=503)
    with pytest.raises(TransientError, match="503"):
        await client.get_build(ref_for(fake, run))


async def test_a_hanging_github_times_out_per_request(fake, make_client) -> None:
    client = make_client(HERALD_GITHUB_REQUEST_TIMEOUT="0.3")
    run = seed_run(fake)
    fake.fail("GET", RUN_PATH, times=3, hang=2)
    started = time.monotonic()
    with pytest.raises(TransientError, match="did not answer"):
        await client.get_build(ref_for(fake, run))
    assert time.monotonic() - started < 2.5
    assert len(fake.calls_to("GET", RUN_PATH)) == 3


async def test_writes_of_one_installation_go_one_at_a_time(fake, client) -> None:
    seed_run(fake)
    fake.slow("POST", COMMENTS, 0.1)
    await asyncio.gather(*(client.reply(REPO, comment(fake), f"reply {i}") for i in range(4)))
    assert len(fake.repo(REPO).comments[PR]) == 4
    assert fake.most_writes_in_flight == 1


async def test_pagination_links_never_leave_the_api_host(fake, client) -> None:
    seed_run(fake)
    fake.fail("GET", COMMENTS, status=200, body=[],
              headers={"link": '<https://evil.example/steal?page=2>; rel="next"'})
    with pytest.raises(PermanentError, match="outside"):
        await publish(client, *await _build_for_publish(fake, client, failing_run(1)))


# ---- artifacts -----------------------------------------------------------------------------


async def test_the_artifact_download_follows_the_redirect_without_credentials(fake) -> None:
    run = seed_run(fake)
    leaky = httpx.AsyncClient(headers={"Authorization": "Bearer shared-default"},
                              cookies={"session": "s3cret"})
    client = create_client(ProviderSettings("github", github_env(fake)), leaky)
    ref = ref_for(fake, run)
    [artifact, _] = await client.list_artifacts(ref)
    data = b"".join([chunk async for chunk in client.open_artifact(ref, artifact)])
    assert data.startswith(b"PK\x03\x04")
    [blob_request] = fake.blob_requests
    assert not {"authorization", "cookie", "proxy-authorization"} & set(blob_request)
    await leaky.aclose()


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("ftp://storage.example/a.zip", "refusing to download from ftp"),
        ("https://user:pw@storage.example/a.zip", "carries credentials"),
    ],
)
async def test_odd_redirects_are_refused(fake, client, location: str, message: str) -> None:
    run = seed_run(fake)
    ref = ref_for(fake, run)
    [artifact, _] = await client.list_artifacts(ref)
    fake.fail("GET", r".*/artifacts/\d+/zip", status=302, headers={"location": location})
    with pytest.raises(PermanentError, match=message):
        async for _ in client.open_artifact(ref, artifact):
            pass
    assert fake.blob_requests == []


async def test_an_expired_artifact_is_permanent(fake, client) -> None:
    run = seed_run(fake)
    ref = ref_for(fake, run)
    [artifact, _] = await client.list_artifacts(ref)
    fake.repo(REPO).runs[run["id"]].artifacts[0]["expired"] = True
    with pytest.raises(PermanentError, match="gone"):
        async for _ in client.open_artifact(ref, artifact):
            pass


async def test_an_artifact_over_the_cap_is_not_downloaded(fake, make_client) -> None:
    client = make_client(HERALD_ARTIFACT_MAX_BYTES="100")
    run = seed_run(fake, failures=30)
    ref = ref_for(fake, run)
    [artifact, _] = await client.list_artifacts(ref)
    with pytest.raises(PermanentError, match="more than 100"):
        async for _ in client.open_artifact(ref, artifact):
            pass
    assert fake.calls_to("GET", r".*/zip") == []


# ---- publishing ----------------------------------------------------------------------------


async def _build_for_publish(fake, client, run: TestRun, **changes):
    workflow = seed_run(fake, **changes)
    ref = ref_for(fake, workflow)
    return ref, run, await client.get_build(ref)


async def test_publish_creates_one_named_check_run_and_one_sticky_comment(fake, client) -> None:
    ref, run, build = await _build_for_publish(fake, client, failing_run(2))
    published = await publish(client, ref, run, build)
    [check] = fake.repo(REPO).check_runs
    assert check["name"] == "Herald (CI)"
    assert check["head_sha"] == SHA
    assert check["external_id"] == f"{ref.run_id}/2"
    assert check["conclusion"] == "failure"
    assert check["status"] == "completed"
    assert check["details_url"] == ref.url
    assert check["output"]["title"].startswith("2 failed, 1 passed")
    assert check["actions"] == [{"label": "Re-run failed", "identifier": "rerun-failed",
                                 "description": "Re-run this workflow's failed jobs"}]
    assert [(a["path"], a["start_line"], a["title"]) for a in check["annotations"]] == [
        ("tests/test_calc.py", 1, "tests.test_calc.test_0"),
        ("tests/test_calc.py", 2, "tests.test_calc.test_1"),
    ]
    [posted] = fake.repo(REPO).comments[PR]
    assert posted["body"].startswith(f"<!-- herald:report:CI run={ref.run_id}.2 -->")
    assert f"CI #{WORD_JOINER}1873" in posted["body"]  # the run's number, not issue 1873
    assert published.check_run_id == str(check["id"])
    assert published.comment_id == str(posted["id"])
    assert published.created


async def test_publishing_again_updates_in_place_without_repeating_annotations(fake, client):
    ref, run, build = await _build_for_publish(fake, client, failing_run(3))
    await publish(client, ref, run, build)
    again = await publish(client, ref, run, build)
    [check] = fake.repo(REPO).check_runs
    assert len(check["annotations"]) == 3
    assert len(fake.repo(REPO).comments[PR]) == 1
    assert not again.created
    [update] = fake.calls_to("PATCH", CHECK)
    assert "annotations" not in update.json["output"]


async def test_120_annotations_go_in_batches_of_50(fake, client) -> None:
    ref, run, build = await _build_for_publish(fake, client, failing_run(120))
    await publish(client, ref, run, build)
    sent = [len(c.json["output"].get("annotations", []))
            for c in fake.calls if c.path.startswith(CHECKS)]
    assert sent == [50, 50, 20]
    [check] = fake.repo(REPO).check_runs
    assert [a["start_line"] for a in check["annotations"]] == list(range(1, 121))


async def test_an_interrupted_batch_resumes_where_github_stopped(fake, client) -> None:
    ref, run, build = await _build_for_publish(fake, client, failing_run(120))
    fake.fail("PATCH", CHECK, times=3, status=502)  # the second batch never lands
    with pytest.raises(TransientError):
        await publish(client, ref, run, build)
    assert len(fake.repo(REPO).check_runs[0]["annotations"]) == 50
    await publish(client, ref, run, build)
    [check] = fake.repo(REPO).check_runs
    assert [a["start_line"] for a in check["annotations"]] == list(range(1, 121))


async def test_failures_without_a_file_in_the_repo_get_no_annotation(fake, client) -> None:
    run = failing_run(1, file="/opt/elsewhere/test_calc.py")
    run.suites[0].cases.append(TestCase("test_x", "tests", "pytest", Status.FAILED,
                                        file="/home/runner/work/herald/herald/tests/test_x.py"))
    ref, run, build = await _build_for_publish(fake, client, run)
    await publish(client, ref, run, build)
    [check] = fake.repo(REPO).check_runs
    assert [a["path"] for a in check["annotations"]] == ["tests/test_x.py"]


async def test_a_green_run_does_not_start_a_comment_but_updates_one(fake, client) -> None:
    green = TestRun(id="g", suites=[Suite("s", [TestCase("test_ok", "t", "s")])])
    ref, _, build = await _build_for_publish(fake, client, green)
    await publish(client, ref, green, build)
    assert fake.repo(REPO).comments.get(PR, []) == []
    assert fake.repo(REPO).check_runs[0]["conclusion"] == "success"
    await publish(client, ref, failing_run(1), build)
    await publish(client, ref, green, build)
    [posted] = fake.repo(REPO).comments[PR]
    assert "1 test passed" in posted["body"]
    assert "Failed Tests" not in posted["body"]


async def test_an_older_run_never_overwrites_a_newer_report(fake, client) -> None:
    ref, run, build = await _build_for_publish(fake, client, failing_run(1))
    await publish(client, ref, run, build)
    older = seed_run(fake, id=int(ref.run_id) - 5, run_attempt=1)
    older_ref = ref_for(fake, older)
    await publish(client, older_ref, failing_run(7), await client.get_build(older_ref))
    [posted] = fake.repo(REPO).comments[PR]
    assert f"run={ref.run_id}.2" in posted["body"]
    assert len(fake.repo(REPO).check_runs) == 2  # each run still has its own check run


async def test_a_workflow_never_takes_over_the_comment_of_one_whose_name_it_begins(
    fake, client
) -> None:
    # "CI"'s marker is a prefix of "CI nightly"'s but for the space that ends the key.
    nightly = seed_run(fake, id=7001, workflow_id=71, name="CI nightly")
    nightly_ref = ref_for(fake, nightly)
    await publish(client, nightly_ref, failing_run(3), await client.get_build(nightly_ref))
    ci = seed_run(fake, id=7002, workflow_id=72, name="CI")
    ci_ref = ref_for(fake, ci)
    await publish(client, ci_ref, failing_run(1), await client.get_build(ci_ref))
    bodies = [c["body"] for c in fake.repo(REPO).comments[PR]]
    assert [b.split(" run=")[0] for b in bodies] == [
        "<!-- herald:report:CI%20nightly", "<!-- herald:report:CI",
    ]
    assert "run=7001." in bodies[0] and "3 failed" in bodies[0]


async def test_a_human_comment_quoting_the_marker_is_left_alone(fake, client) -> None:
    ref, run, build = await _build_for_publish(fake, client, failing_run(1))
    fake.add_human_comment(REPO, PR, f"<!-- herald:report:CI run={ref.run_id}.9 --> ha", "eve")
    await publish(client, ref, run, build)
    bodies = [c["body"] for c in fake.repo(REPO).comments[PR]]
    assert bodies[0].endswith(" ha")
    assert len(bodies) == 2


async def test_a_fork_pr_is_found_by_its_head_sha(fake, client) -> None:
    ref, run, build = await _build_for_publish(fake, client, failing_run(1),
                                               pull_requests=[], id=999001)
    fake.add_pull(REPO, 17, SHA, listed_for_commit=False)
    build = await client.get_build(ref)
    assert build.changes == [17]
    await publish(client, ref, run, build)
    assert len(fake.repo(REPO).comments[17]) == 1
    assert fake.calls_to("GET", r".*/commits/[0-9a-f]+/pulls") != []
    assert fake.calls_to("GET", r"/repos/heraldhq/herald/pulls") != []


async def test_publish_error_leaves_a_neutral_check_run_saying_why(fake, client) -> None:
    ref, run, build = await _build_for_publish(fake, client, failing_run(1))
    await publish_error(client, ref, "GitHub answered 502 to GET /x")
    [check] = fake.repo(REPO).check_runs
    assert (check["conclusion"], check["output"]["title"]) == (
        "neutral", "Herald could not report on this run"
    )
    assert "GitHub answered 502" in check["output"]["summary"]
    await publish(client, ref, run, build)  # a later success replaces the explanation
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"


async def test_a_huge_report_fits_github_limits(fake, client) -> None:
    run = failing_run(3000)
    for case in run.cases():
        case.stack_trace = "x" * 5000
    ref, run, build = await _build_for_publish(fake, client, run)
    await publish(client, ref, run, build)  # the fake answers 422 past any limit
    [check] = fake.repo(REPO).check_runs
    assert len(check["output"]["summary"]) <= 65_535
    assert len(check["annotations"]) == 500


# ---- /retest -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permission", "role", "trusted"),
    [("admin", "admin", True), ("write", "write", True), ("write", "maintain", True),
     ("read", "triage", False), ("read", "read", False), ("none", "none", False)],
)
async def test_can_retest_follows_repository_permission(fake, client, permission, role, trusted):
    seed_run(fake)
    fake.grant(REPO, "octo-dev", permission, role)
    assert await client.can_retest(REPO, comment(fake)) is trusted


async def test_a_404_from_the_permission_api_means_not_a_collaborator(fake, client) -> None:
    seed_run(fake)
    fake.fail("GET", r".*/collaborators/[^/]+/permission", status=404,
              body={"message": "Not Found"})
    assert await client.can_retest(REPO, comment(fake)) is False


@pytest.mark.parametrize(("status", "kind"), [(403, Forbidden), (401, Unauthorized)])
async def test_a_refused_permission_lookup_is_an_error_never_an_answer(
    fake, client, status, kind
) -> None:
    seed_run(fake)
    fake.fail("GET", r".*/collaborators/[^/]+/permission", status=status, times=2,
              body={"message": "Resource not accessible by integration"})
    with pytest.raises(kind) as caught:
        await client.can_retest(REPO, comment(fake))
    assert caught.value.status == status


async def test_the_allowlist_trusts_without_asking(fake, make_client) -> None:
    client = make_client(HERALD_GITHUB_RETEST_ALLOWLIST="Release-Bot, octo-dev")
    seed_run(fake)
    assert await client.can_retest(REPO, comment(fake, author="OCTO-dev"))
    assert fake.calls_to("GET", r".*/permission") == []


async def test_failed_runs_are_the_latest_failed_run_of_each_workflow(fake, client) -> None:
    seed_run(fake, id=1, workflow_id=10, name="CI", conclusion="failure")
    seed_run(fake, id=2, workflow_id=10, name="CI", conclusion="failure")
    seed_run(fake, id=3, workflow_id=20, name="Lint", conclusion="success")
    seed_run(fake, id=4, workflow_id=30, name="E2E", conclusion="timed_out")
    seed_run(fake, id=5, workflow_id=40, name="Docs", conclusion="failure", status="in_progress")
    seed_run(fake, id=6, workflow_id=50, name="Old", conclusion="failure", head_sha="0" * 40)
    runs = await failed_runs(client, REPO, comment(fake))
    assert [(r.run_id, r.extra["name"]) for r in runs] == [("2", "CI"), ("4", "E2E")]


async def test_long_lists_are_read_page_by_page(fake, client) -> None:
    for run_id in range(1, 151):
        seed_run(fake, id=run_id, workflow_id=run_id, name=f"W{run_id}", conclusion="failure")
    runs = await failed_runs(client, REPO, comment(fake))
    assert len(runs) == 150
    pages = [c.query.get("page", "1") for c in fake.calls_to("GET", r".*/actions/runs")]
    assert pages == ["1", "2"]


async def test_acknowledge_reply_and_rerun(fake, client) -> None:
    run = seed_run(fake)
    await client.acknowledge(REPO, comment(fake))
    await client.reply(REPO, comment(fake), "@octo-dev re-running")
    rerun = await client.rerun(ref_for(fake, run))
    assert fake.repo(REPO).reactions == [{"comment_id": 5551234, "content": "eyes"}]
    assert fake.repo(REPO).comments[PR][-1]["body"] == (
        "<!-- herald:reply:5551234 -->\n@octo-dev re-running"
    )
    assert fake.repo(REPO).reruns == [(run["id"], "rerun-failed-jobs")]
    assert rerun.runs == [str(run["id"])]


async def test_the_re_run_button_reruns_the_run_named_by_our_external_id(fake, client) -> None:
    run = seed_run(fake)
    ref = ref_for(fake, run)
    pressed = dataclasses.replace(ref, run_id=f"{run['id']}/2", extra={
        "installation_id": fake.installation_id, "action": "requested_action",
        "check_run_id": 1, "external_id": f"{run['id']}/2"})
    assert (await client.rerun(pressed)).runs == [str(run["id"])]
    foreign = dataclasses.replace(pressed, run_id="1", extra={**pressed.extra, "external_id": ""})
    with pytest.raises(PermanentError, match="not created by Herald"):
        await client.rerun(foreign)
    assert fake.repo(REPO).reruns == [(run["id"], "rerun-failed-jobs")]


async def test_re_requesting_our_suite_reruns_every_run_it_reported(fake, client) -> None:
    ref, run, build = await _build_for_publish(fake, client, failing_run(1))
    await publish(client, ref, run, build)
    suite = fake.repo(REPO).check_runs[0]["check_suite"]["id"]
    requested = dataclasses.replace(ref, run_id=str(suite), extra={
        "installation_id": fake.installation_id, "action": "rerequested",
        "check_suite_id": suite})
    assert (await client.rerun(requested)).runs == [ref.run_id]


def test_passing_tests_beside_an_unreadable_input_are_neutral_not_success() -> None:
    from bot.results.model import ParseError, Suite, TestCase, TestRun
    from providers.github.publish import conclusion

    run = TestRun("1", suites=[Suite("s", cases=[TestCase("t")])])
    assert conclusion(run) == "success"
    run.errors.append(ParseError("junit/b.xml", "truncated"))
    assert conclusion(run) == "neutral"
