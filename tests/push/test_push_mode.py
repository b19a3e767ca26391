"""`herald report --auto-detect` inside a job of each of the eight CI systems publishes on
the right forge through the bot's own clients (the fakes on loopback), once however often
the step runs, and says plainly what is missing when it cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.commands.report import CANNOT_PUBLISH, read_config
from tests.azure_devops.world import PULL
from tests.bitbucket.world import REPO as BITBUCKET_REPO
from tests.fakes import azure_devops as azure_fake
from tests.fakes import bitbucket as bitbucket_fake
from tests.fakes import gitlab as gitlab_fake
from tests.fakes.ci_world import GITLAB_PROJECT
from tests.fakes.github import FakeGitHub
from tests.fakes.jenkins import CaptureServer
from tests.push.conftest import (
    BITBUCKET_PR,
    BITBUCKET_SHA,
    GITHUB_PR,
    GITHUB_REPO,
    GITLAB_MR,
    GITLAB_PATH,
    GITLAB_SHA,
    HEAD,
    MERGE,
    PASSING,
    azure_pipelines,
    bitbucket_pipelines,
    circleci_job,
    github_actions,
    github_forge,
    gitlab_ci,
    jenkins_multibranch,
    teamcity_build,
    travis_pull_request,
)


def _pattern(reports: Path) -> str:
    return f"{reports}/**/*.xml"


async def twice(herald: Any, env: dict[str, str], reports: Path) -> tuple[Any, Any]:
    """The step run, then run again (a retried step): each reports a failed test."""
    first = await herald(env, _pattern(reports))
    second = await herald(env, _pattern(reports))
    assert first.code == second.code == 1, first.err + second.err
    return first, second


def _one_check_and_comment(fake: FakeGitHub, name: str, login: str) -> tuple[Any, Any]:
    repo = fake.repo(GITHUB_REPO)
    [check] = repo.check_runs
    assert check["name"] == name
    assert check["head_sha"] == HEAD
    assert check["conclusion"] == "failure"
    [comment] = repo.comments[GITHUB_PR]
    assert comment["user"]["login"] == login
    assert "total was 9, expected 10" in comment["body"]
    return check, comment


# ---- one job of each system ------------------------------------------------------------------


async def test_a_github_actions_job_gets_one_check_run_and_one_sticky_comment_as_github_actions(
    github, reports, tmp_path, herald
) -> None:
    token = github.issue_actions_token()
    env = github_actions(github, tmp_path / "event.json", token)
    first = await herald(env, _pattern(reports))
    second = await herald(env, _pattern(reports))  # a retried step

    check, comment = _one_check_and_comment(github, "Herald (CI / test)", "github-actions[bot]")
    assert check["external_id"] == "9100200300/1"  # the run's attempt, as the bot names it
    assert "@everyone" not in comment["body"].replace("@\u200beveryone", "")
    assert f"pull/{GITHUB_PR}#issuecomment-{comment['id']}" in first.out
    assert token not in first.text + second.text


async def test_a_gitlab_ci_job_gets_one_commit_status_and_one_merge_request_note(
    gitlab, reports, herald
) -> None:
    env = gitlab_ci(gitlab)
    first, second = await twice(herald, env, reports)

    [status] = gitlab.statuses[(GITLAB_PROJECT, GITLAB_SHA)]
    assert status["status"] == "failed"
    assert status["target_url"] == env["CI_JOB_URL"]  # the job that reported, its log
    [note] = gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)
    assert "total was 9, expected 10" in note["body"]
    assert f"merge_requests/{GITLAB_MR}#note_{note['id']}" in first.out
    assert gitlab_fake.TOKEN not in first.text + second.text
    assert env["CI_JOB_TOKEN"] not in first.text
    assert gitlab.mentions == [] and gitlab.quick_actions == []  # `@everyone` stays inert


async def test_a_bitbucket_pipelines_step_gets_one_status_one_insights_report_and_one_comment(
    bitbucket, reports, herald
) -> None:
    env = bitbucket_pipelines(bitbucket)
    first, second = await twice(herald, env, reports)

    repo = bitbucket.repos[BITBUCKET_REPO]
    [status] = [s for (sha, _key), s in repo.statuses.items() if sha == BITBUCKET_SHA]
    assert status["state"] == "FAILED"
    [report] = [r for (sha, _key), r in repo.reports.items() if sha == BITBUCKET_SHA]
    assert report["result"] == "FAILED"
    [comment] = bitbucket.our_comments(BITBUCKET_REPO, BITBUCKET_PR)
    assert "total was 9, expected 10" in comment["content"]["raw"]
    assert bitbucket_fake.TOKEN not in first.text + second.text
    assert bitbucket.mentions == []


async def test_an_azure_pipelines_job_gets_one_pull_request_status_and_one_thread(
    azure, reports, herald
) -> None:
    env = azure_pipelines(azure)
    first, second = await twice(herald, env, reports)

    [status] = azure.herald_statuses(f"pr:{PULL}")
    assert status["state"] == "failed"
    [thread] = azure.our_threads(PULL)
    assert "total was 9, expected 10" in thread["comments"][0]["content"]
    assert f"pullrequest/{PULL}" in first.out
    assert azure_fake.TOKEN not in first.text + second.text


async def test_an_azure_pipeline_of_a_github_repository_reports_on_its_pull_request_number(
    github, azure, reports, herald
) -> None:
    """GitHub's internal pull request id (SYSTEM_PULLREQUEST_PULLREQUESTID) is not its
    number: the report must land on pull request 17, not on id 1534218807."""
    env = {**azure_pipelines(azure), **github_forge(github, github.issue_token()),
           "BUILD_REPOSITORY_PROVIDER": "GitHub", "BUILD_REPOSITORY_NAME": GITHUB_REPO,
           "BUILD_REPOSITORY_URI": f"https://github.com/{GITHUB_REPO}",
           "SYSTEM_PULLREQUEST_PULLREQUESTID": "1534218807",
           "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER": str(GITHUB_PR),
           "SYSTEM_PULLREQUEST_SOURCECOMMITID": HEAD}
    await twice(herald, env, reports)

    _one_check_and_comment(github, "Herald (azure-devops: payments-api-ci / unit tests)",
                           "herald[bot]")
    assert azure.calls == []


async def test_a_jenkins_multibranch_build_reports_on_the_github_its_git_url_names(
    github, reports, herald
) -> None:
    token = github.issue_token()
    env = {**jenkins_multibranch(f"{github.base_url}/{GITHUB_REPO}.git"),
           **github_forge(github, token)}
    first, second = await twice(herald, env, reports)

    _one_check_and_comment(github, "Herald (jenkins: acme/widgets/PR-17)", "herald[bot]")
    assert token not in first.text + second.text


async def test_a_circleci_job_reports_on_the_gitlab_its_repository_url_names(
    gitlab, reports, herald
) -> None:
    remote = f"{gitlab.url}/{GITLAB_PATH}.git"
    pull = f"{gitlab.url}/{GITLAB_PATH}/-/merge_requests/{GITLAB_MR}"
    env = {**circleci_job(remote, pull), "HERALD_GITLAB_URL": gitlab.url,
           "HERALD_GITLAB_TOKEN": gitlab_fake.TOKEN, "HERALD_GITLAB_TIMEOUT": "2"}
    await twice(herald, env, reports)

    [status] = gitlab.statuses[(GITLAB_PROJECT, GITLAB_SHA)]
    assert status["status"] == "failed"
    assert status["name"].startswith("herald")
    [note] = gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)
    assert "total was 9, expected 10" in note["body"]


async def test_a_circleci_branch_job_without_a_pull_request_finds_the_open_merge_request(
    gitlab, reports, herald
) -> None:
    remote = f"{gitlab.url}/{GITLAB_PATH}.git"
    env = {**circleci_job(remote, None), "HERALD_GITLAB_URL": gitlab.url,
           "HERALD_GITLAB_TOKEN": gitlab_fake.TOKEN, "HERALD_GITLAB_TIMEOUT": "2"}
    outcome = await herald(env, _pattern(reports))

    assert outcome.code == 1, outcome.err
    [note] = gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)
    assert "total was 9, expected 10" in note["body"]


async def test_a_travis_ci_pull_request_job_reports_on_github_at_the_pull_requests_head(
    github, reports, herald
) -> None:
    token = github.issue_token()
    env = {**travis_pull_request(), **github_forge(github, token)}
    await twice(herald, env, reports)

    _one_check_and_comment(
        github, "Herald (travis: acme/widgets (pull request) / job 88.1)", "herald[bot]")


async def test_a_teamcity_build_reports_on_the_bitbucket_its_vcs_root_names(
    bitbucket, reports, herald
) -> None:
    env = {**teamcity_build(f"{bitbucket.url}/{BITBUCKET_REPO}.git"),
           "HERALD_BITBUCKET_API_URL": f"{bitbucket.url}/2.0",
           "HERALD_BITBUCKET_TOKEN": bitbucket_fake.TOKEN, "HERALD_BITBUCKET_TIMEOUT": "2"}
    await twice(herald, env, reports)

    repo = bitbucket.repos[BITBUCKET_REPO]
    [status] = [s for (sha, _key), s in repo.statuses.items() if sha == BITBUCKET_SHA]
    assert status["state"] == "FAILED"
    [comment] = bitbucket.our_comments(BITBUCKET_REPO, BITBUCKET_PR)
    assert "herald:report:teamcity:Unit%20tests" in comment["content"]["raw"]
    assert "total was 9, expected 10" in comment["content"]["raw"]


# ---- what a report must not hide ----------------------------------------------------------------


async def test_two_jobs_of_one_workflow_get_a_check_run_each_never_one_overwritten(
    github, reports, tmp_path, herald
) -> None:
    env = github_actions(github, tmp_path / "event.json", github.issue_actions_token())
    passing = tmp_path / "lint"
    passing.mkdir()
    (passing / "junit.xml").write_bytes(PASSING)
    failed = await herald(env, _pattern(reports))
    passed = await herald({**env, "GITHUB_JOB": "lint"}, f"{passing}/*.xml")

    assert (failed.code, passed.code) == (1, 0)
    checks = {c["name"]: c["conclusion"] for c in github.repo(GITHUB_REPO).check_runs}
    assert checks == {"Herald (CI / test)": "failure", "Herald (CI / lint)": "success"}


async def test_matrix_legs_sharing_a_job_name_are_told_apart_by_name(
    github, reports, tmp_path, herald
) -> None:
    env = github_actions(github, tmp_path / "event.json", github.issue_actions_token())
    await herald(env, _pattern(reports), name="test (3.12)")
    await herald(env, _pattern(reports), name="test (3.13)")

    names = sorted(c["name"] for c in github.repo(GITHUB_REPO).check_runs)
    assert names == ["Herald (CI / test (3.12))", "Herald (CI / test (3.13))"]


async def test_an_unreadable_report_is_named_and_the_passing_run_exits_2_not_green(
    gitlab, tmp_path, herald
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "junit.xml").write_bytes(PASSING)
    (folder / "broken.xml").write_bytes(b"<testsuite><testcase name='cut")
    outcome = await herald(gitlab_ci(gitlab), f"{folder}/*.xml", f"{tmp_path}/missing/*.xml")

    assert outcome.code == 2
    assert "2 unusable" in outcome.out and "missing" in outcome.out
    [status] = gitlab.statuses[(GITLAB_PROJECT, GITLAB_SHA)]
    assert status["status"] != "success"  # the unread file may have held the failure
    [note] = gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)
    assert "broken.xml" in note["body"]


# ---- when it cannot publish -------------------------------------------------------------------


async def test_a_gitlab_job_without_herald_gitlab_token_names_it_and_posts_nothing(
    gitlab, reports, herald
) -> None:
    env = gitlab_ci(gitlab)
    del env["HERALD_GITLAB_TOKEN"]
    outcome = await herald(env, _pattern(reports))

    assert outcome.code == CANNOT_PUBLISH
    assert "HERALD_GITLAB_TOKEN" in outcome.err and "CI_JOB_TOKEN cannot" in outcome.err
    assert gitlab.calls == []
    assert env["CI_JOB_TOKEN"] not in outcome.text


async def test_a_workflow_that_does_not_map_github_token_is_told_how_and_nothing_is_sent(
    github, reports, tmp_path, herald
) -> None:
    env = github_actions(github, tmp_path / "event.json", "unused")
    del env["GITHUB_TOKEN"]
    outcome = await herald(env, _pattern(reports))

    assert outcome.code == CANNOT_PUBLISH
    assert "HERALD_GITHUB_TOKEN" in outcome.err and "secrets.GITHUB_TOKEN" in outcome.err
    assert "checks: write" in outcome.err
    assert github.calls == []


async def test_a_teamcity_build_without_herald_bitbucket_token_names_it(
    bitbucket, reports, herald
) -> None:
    env = {**teamcity_build(f"{bitbucket.url}/{BITBUCKET_REPO}.git"),
           "HERALD_BITBUCKET_API_URL": f"{bitbucket.url}/2.0"}
    outcome = await herald(env, _pattern(reports))

    assert outcome.code == CANNOT_PUBLISH
    assert "HERALD_BITBUCKET_TOKEN" in outcome.err and "repository access token" in outcome.err
    assert bitbucket.calls == []


async def test_an_azure_job_without_system_accesstoken_names_it(azure, reports, herald) -> None:
    env = azure_pipelines(azure)
    del env["SYSTEM_ACCESSTOKEN"]
    outcome = await herald(env, _pattern(reports))

    assert outcome.code == CANNOT_PUBLISH
    assert "SYSTEM_ACCESSTOKEN" in outcome.err and "$(System.AccessToken)" in outcome.err
    assert azure.calls == []


async def test_a_refused_token_is_a_publish_failure_not_a_test_result(
    gitlab, reports, herald
) -> None:
    outcome = await herald(gitlab_ci(gitlab, HERALD_GITLAB_TOKEN="glpat-wrong"),
                           _pattern(reports))

    assert outcome.code == CANNOT_PUBLISH
    assert "gitlab refused the report" in outcome.err
    assert "glpat-wrong" not in outcome.text
    assert gitlab.statuses.get((GITLAB_PROJECT, GITLAB_SHA)) is None


async def test_outside_any_ci_job_it_says_so(reports, herald) -> None:
    outcome = await herald({"HOME": "/home/dev"}, _pattern(reports))

    assert outcome.code == CANNOT_PUBLISH
    assert "not inside a job" in outcome.err


async def test_a_repository_on_no_configured_forge_is_refused_before_any_request(
    capture: CaptureServer, github, reports, herald
) -> None:
    """A job's GIT_URL is input: Herald never sends a token where it points unless that
    host is a configured forge."""
    env = {**jenkins_multibranch(f"{capture.url}/{GITHUB_REPO}.git"),
           "HERALD_GITHUB_TOKEN": github.issue_token()}
    outcome = await herald(env, _pattern(reports))

    assert outcome.code == CANNOT_PUBLISH
    assert "no configured forge" in outcome.err
    assert capture.requests == []
    assert github.calls == []


def test_a_config_file_holds_herald_settings_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "herald.env"
    path.write_text("# push mode\nHERALD_GITLAB_URL=https://git.example.com\n"
                    "export HERALD_GITLAB_TIMEOUT='5'\n")
    assert read_config(path) == {"HERALD_GITLAB_URL": "https://git.example.com",
                                 "HERALD_GITLAB_TIMEOUT": "5"}
    path.write_text("PATH=/tmp/evil\n")
    with pytest.raises(ValueError, match="line 1"):
        read_config(path)



# ---- once, whatever the network does -------------------------------------------------------------


async def test_a_lost_answer_to_the_comment_is_read_back_never_posted_twice(
    github, reports, tmp_path, herald
) -> None:
    """The read-back after a lost answer must recognise the token's own comment
    (github-actions[bot]), or it would post a second one."""
    env = github_actions(github, tmp_path / "event.json", github.issue_actions_token())
    github.lose_answer("POST", rf"/repos/{GITHUB_REPO}/issues/{GITHUB_PR}/comments",
                       how="reset")
    github.fail("POST", rf"/repos/{GITHUB_REPO}/check-runs", status=502)
    outcome = await herald(env, _pattern(reports))

    assert outcome.code == 1, outcome.err
    _one_check_and_comment(github, "Herald (CI / test)", "github-actions[bot]")
    comments = rf"/repos/{GITHUB_REPO}/issues/{GITHUB_PR}/comments"
    assert len(github.calls_to("POST", comments)) == 1  # found again, not resent
    assert len(github.calls_to("GET", comments)) >= 2


async def test_push_mode_never_connects_to_redis(
    github, reports, tmp_path, herald, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.asyncio.connection

    async def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("push mode connected to Redis")

    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "connect", refuse)
    env = {**github_actions(github, tmp_path / "event.json", github.issue_actions_token()),
           "HERALD_REDIS_URL": "redis://127.0.0.1:6379/15"}
    outcome = await herald(env, _pattern(reports))

    assert outcome.code == 1, outcome.err
    assert len(github.repo(GITHUB_REPO).check_runs) == 1


def test_the_command_line_reads_the_job_environment_and_a_config_file(
    gitlab, reports, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli import main

    env = gitlab_ci(gitlab)
    settings = tmp_path / "herald.env"
    settings.write_text(f"HERALD_GITLAB_TOKEN={env.pop('HERALD_GITLAB_TOKEN')}\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["report", "--auto-detect", _pattern(reports), "--config", str(settings),
                 "--metric", "p95=12.5ms"])

    assert code == 1
    [note] = gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)
    assert "p95" in note["body"]
    assert gitlab_fake.TOKEN not in capsys.readouterr().out


def test_provider_picks_the_system_when_a_job_carries_variables_of_two() -> None:
    """A Jenkins agent running inside a GitHub Actions job: detection takes GitHub
    (PROVIDERS.md section 9); `--provider jenkins` reads Jenkins' variables instead."""
    from providers.push import CannotPublish, detect_job

    env = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": GITHUB_REPO, "GITHUB_RUN_ID": "1",
           **jenkins_multibranch("https://github.com/acme/widgets.git")}
    assert detect_job(env).provider == "github"
    assert detect_job(env, "jenkins").provider == "jenkins"
    with pytest.raises(CannotPublish, match="unknown CI system 'jenkinz'"):
        detect_job(env, "jenkinz")


def test_the_herald_command_in_a_process_of_its_own_publishes_and_prints_no_secret(
    gitlab, reports
) -> None:
    """As a job runs it: `python -m bot.cli report ...` with only the job's environment
    (no Redis configured or reachable: HERALD_REDIS_URL points at a closed port)."""
    import os
    import subprocess
    import sys

    env = {**gitlab_ci(gitlab), "PATH": os.environ.get("PATH", ""),
           "HERALD_REDIS_URL": "redis://127.0.0.1:9/0", "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "report", "--auto-detect", _pattern(reports)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )

    assert done.returncode == 1, done.stderr
    assert f"merge_requests/{GITLAB_MR}#note_" in done.stdout
    assert gitlab_fake.TOKEN not in done.stdout + done.stderr
    assert len(gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)) == 1


async def test_a_push_to_a_branch_gets_a_check_run_on_its_commit_and_no_comment(
    github, reports, tmp_path, herald
) -> None:
    env = github_actions(github, tmp_path / "event.json", github.issue_actions_token())
    (tmp_path / "event.json").write_text(f'{{"ref": "refs/heads/main", "after": "{MERGE}"}}')
    env.update({"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/main",
                "GITHUB_REF_NAME": "main", "GITHUB_HEAD_REF": "", "GITHUB_BASE_REF": ""})
    outcome = await herald(env, _pattern(reports))

    assert outcome.code == 1, outcome.err
    [check] = github.repo(GITHUB_REPO).check_runs
    assert check["head_sha"] == MERGE  # on a push, GITHUB_SHA is the pushed commit
    assert github.repo(GITHUB_REPO).comments.get(GITHUB_PR, []) == []
    assert f"/runs/{check['id']}" in outcome.out
