"""`herald.create_provider` for a forge named by a config mapping, and for a CI job
read from its environment: the Reporter publishes through the same forge clients as the
bot and push mode, once across retries."""

from __future__ import annotations

from pathlib import Path

import pytest

import herald
from bot.ports import NotConfigured
from bot.settings import Settings
from tests.fakes import gitlab as gitlab_fake
from tests.fakes.ci_world import GITLAB_PROJECT
from tests.push.conftest import (
    FAILING,
    GITHUB_PR,
    GITHUB_REPO,
    GITLAB_MR,
    GITLAB_PATH,
    GITLAB_SHA,
    HEAD,
    github_actions,
)


@pytest.fixture
def run(tmp_path: Path) -> herald.TestRun:
    (tmp_path / "junit.xml").write_bytes(FAILING)
    return herald.parse_reports([str(tmp_path / "junit.xml")], run_id="nightly-412")


def reporter(provider: herald.Publisher, tmp_path: Path) -> herald.Reporter:
    return herald.Reporter(provider, report_dir=tmp_path / "out",
                           settings=Settings.from_env({"HERALD_STATE_DIR": str(tmp_path)}))


async def test_a_github_change_from_config_gets_one_check_run_and_one_comment(
    github, run, tmp_path: Path
) -> None:
    token = github.issue_token()
    provider = herald.create_provider("github", {
        "token": token, "token_login": "herald[bot]", "api_url": github.base_url,
        "repository": GITHUB_REPO, "commit_sha": HEAD, "pr_number": GITHUB_PR,
    })
    for _ in range(2):  # a retried script replaces, never adds
        report = await reporter(provider, tmp_path).report_test_result(run)

    repo = github.repo(GITHUB_REPO)
    [check] = repo.check_runs
    assert (check["head_sha"], check["conclusion"]) == (HEAD, "failure")
    [comment] = repo.comments[GITHUB_PR]
    assert "total was 9, expected 10" in comment["body"]
    assert report.published is not None and report.published.url is not None
    assert report.published.url.endswith(f"/pull/{GITHUB_PR}#issuecomment-{comment['id']}")


async def test_a_gitlab_change_from_config_gets_one_status_and_one_note(
    gitlab, run, tmp_path: Path
) -> None:
    provider = herald.create_provider("gitlab", {
        "token": gitlab_fake.TOKEN, "url": gitlab.url, "repository": GITLAB_PATH,
        "project_id": GITLAB_PROJECT, "commit_sha": GITLAB_SHA, "mr_iid": GITLAB_MR,
    })
    for _ in range(2):
        await reporter(provider, tmp_path).report_test_result(run)

    [status] = gitlab.statuses[(GITLAB_PROJECT, GITLAB_SHA)]
    assert status["status"] == "failed"
    [note] = gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)
    assert "total was 9, expected 10" in note["body"]


async def test_a_missing_token_is_named_and_nothing_is_sent(github, run, tmp_path: Path) -> None:
    provider = herald.create_provider("github", {
        "api_url": github.base_url, "repository": GITHUB_REPO, "commit_sha": HEAD})

    with pytest.raises(NotConfigured, match="HERALD_GITHUB_TOKEN"):
        await reporter(provider, tmp_path).report_test_result(run)
    assert github.repo(GITHUB_REPO).check_runs == []


async def test_inside_a_github_actions_job_the_environment_is_enough(
    github, run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = github.issue_actions_token()
    for name, value in github_actions(github, tmp_path / "event.json", token).items():
        monkeypatch.setenv(name, value)
    provider = herald.create_provider("github")

    report = await reporter(provider, tmp_path).report_test_result(run)

    [comment] = github.repo(GITHUB_REPO).comments[GITHUB_PR]
    assert comment["user"]["login"] == "github-actions[bot]"
    assert report.published is not None and "acme/widgets" in report.published.where


@pytest.mark.parametrize(("name", "config", "reason"), [
    ("github", {"repository": GITHUB_REPO}, "needs commit_sha"),
    ("gitlab", {"repository": "g/p", "commit_sha": "ab", "mr_iid": "one"},
     "no pull request number"),
    ("jenkins", {"repository": "https://github.com/o/r"}, "omit the config"),
    ("azure-devops", {"repository": "r"}, "omit the config"),
])
def test_a_config_that_names_no_change_is_refused(name: str, config: dict[str, str],
                                                  reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        herald.create_provider(name, config)
