"""Push mode's world: each CI system's job environment, set as that system sets it
(PROVIDERS.md sections f and 9), beside the forge fakes the real clients publish to over
HTTP on loopback; and `herald report` run as the job would run it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.commands import report as report_command
from tests.azure_devops.world import (
    BUILD,
    DEFINITION,
    PROJECT,
    PROJECT_ID,
    PULL,
    REPO_ID,
    SOURCE_SHA,
)
from tests.azure_devops.world import REPO as AZURE_REPO
from tests.azure_devops.world import build_world as azure_world
from tests.bitbucket.world import REPO as BITBUCKET_REPO
from tests.bitbucket.world import build_world as bitbucket_world
from tests.fakes import azure_devops as azure_fake
from tests.fakes import bitbucket as bitbucket_fake
from tests.fakes import gitlab as gitlab_fake
from tests.fakes.ci_world import GITLAB_PROJECT, capture, gitlab_project  # noqa: F401 (fixture)
from tests.fakes.faults import serve
from tests.fakes.github import FakeGitHub, running_fake
from tests.github.conftest import app_key

GITHUB_REPO = "acme/widgets"
GITHUB_PR = 17
HEAD = "4f1c2e3d5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d"
MERGE = "ffffeeee" * 5
GITLAB_PATH, GITLAB_MR = "acme/inventory", 64
GITLAB_SHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
GITLAB_PIPELINE = 880_123
BITBUCKET_SHA, BITBUCKET_PR = "5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d", 91

FAILING = (b'<testsuite name="unit" tests="3" failures="1">'
           b'<testcase classname="shop.Cart" name="adds_items"/>'
           b'<testcase classname="shop.Cart" name="@everyone fixes #123">'
           b'<failure message="total was 9, expected 10">AssertionError</failure></testcase>'
           b'<testcase classname="shop.Cart" name="removes_items"/></testsuite>')
PASSING = (b'<testsuite name="unit" tests="2" failures="0">'
           b'<testcase classname="shop.Cart" name="adds_items"/>'
           b'<testcase classname="shop.Cart" name="removes_items"/></testsuite>')


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    logs: str

    @property
    def text(self) -> str:
        return self.out + self.err + self.logs


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """`reports/junit.xml` with one failed test of three."""
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "junit.xml").write_bytes(FAILING)
    return folder


@pytest.fixture
def herald(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
           ) -> Callable[..., Awaitable[Outcome]]:
    """`herald report --auto-detect PATTERN` in a job with environment `env`, off the
    test's event loop (the command runs its own, as in a job); what it printed and logged."""

    async def run(env: dict[str, str], *paths: str, **options: str) -> Outcome:
        caplog.set_level(logging.DEBUG)
        code = await asyncio.to_thread(report_command.report, list(paths), env, **options)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err, caplog.text)

    return run


# ---- the forges ---------------------------------------------------------------------------


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    private, public = app_key()
    async with running_fake(FakeGitHub(private_key=private, public_key=public)) as fake:
        fake.add_pull(GITHUB_REPO, GITHUB_PR, HEAD)
        yield fake


@pytest.fixture
def gitlab() -> Iterator[gitlab_fake.FakeGitLab]:
    with gitlab_project(GITLAB_PATH, GITLAB_MR, GITLAB_SHA, "stock-ledger") as fake:
        fake.add_pipeline(GITLAB_PROJECT, GITLAB_PIPELINE, sha=GITLAB_SHA, ref="stock-ledger")
        yield fake


@pytest.fixture
def bitbucket() -> Iterator[bitbucket_fake.FakeBitbucket]:
    fake = bitbucket_fake.FakeBitbucket()
    with serve(fake) as url:
        fake.url = url
        bitbucket_world(fake)
        yield fake


@pytest.fixture
def azure() -> Iterator[azure_fake.FakeAzureDevOps]:
    fake = azure_fake.FakeAzureDevOps()
    with serve(fake) as url:
        fake.url = f"{url}/{azure_fake.ORGANIZATION}"
        azure_world(fake)
        yield fake


# ---- the job environments, as each CI system sets them --------------------------------------


def github_actions(fake: FakeGitHub, event_file: Path, token: str) -> dict[str, str]:
    """A `pull_request` workflow job whose step maps `GITHUB_TOKEN` into its env."""
    event_file.write_text(json.dumps({"action": "synchronize", "number": GITHUB_PR,
                                      "pull_request": {"number": GITHUB_PR,
                                                       "head": {"sha": HEAD}}}))
    return {
        "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": GITHUB_REPO,
        "GITHUB_REPOSITORY_OWNER": "acme", "GITHUB_RUN_ID": "9100200300",
        "GITHUB_RUN_NUMBER": "412", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_WORKFLOW": "CI",
        "GITHUB_JOB": "test", "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event_file), "GITHUB_SHA": MERGE,
        "GITHUB_REF": f"refs/pull/{GITHUB_PR}/merge", "GITHUB_REF_NAME": f"{GITHUB_PR}/merge",
        "GITHUB_HEAD_REF": "feature/cart", "GITHUB_BASE_REF": "main",
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_API_URL": fake.base_url,
        "GITHUB_TOKEN": token, "RUNNER_OS": "Linux",
    }


def gitlab_ci(fake: gitlab_fake.FakeGitLab, **more: str) -> dict[str, str]:
    """A merge request pipeline's job; HERALD_GITLAB_TOKEN is a masked CI/CD variable."""
    project_url = f"{fake.url}/{GITLAB_PATH}"
    return {
        "CI": "true", "GITLAB_CI": "true", "CI_SERVER_URL": fake.url,
        "CI_API_V4_URL": f"{fake.url}/api/v4", "CI_PROJECT_ID": str(GITLAB_PROJECT),
        "CI_PROJECT_PATH": GITLAB_PATH, "CI_PROJECT_URL": project_url,
        "CI_PIPELINE_ID": str(GITLAB_PIPELINE), "CI_PIPELINE_IID": "77",
        "CI_PIPELINE_URL": f"{project_url}/-/pipelines/{GITLAB_PIPELINE}",
        "CI_PIPELINE_SOURCE": "merge_request_event", "CI_JOB_ID": "5550001",
        "CI_JOB_NAME": "test 1/2", "CI_JOB_URL": f"{project_url}/-/jobs/5550001",
        "CI_COMMIT_SHA": GITLAB_SHA, "CI_COMMIT_REF_NAME": "stock-ledger",
        "CI_MERGE_REQUEST_IID": str(GITLAB_MR),
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "stock-ledger",
        "CI_JOB_TOKEN": "glcbt-64_job-token-that-cannot-post-notes",
        "HERALD_GITLAB_TOKEN": gitlab_fake.TOKEN, "HERALD_GITLAB_TIMEOUT": "2", **more,
    }


def bitbucket_pipelines(fake: bitbucket_fake.FakeBitbucket) -> dict[str, str]:
    """A pull request pipeline's step; HERALD_BITBUCKET_TOKEN is a secured variable."""
    workspace, slug = BITBUCKET_REPO.split("/")
    return {
        "CI": "true", "BITBUCKET_BUILD_NUMBER": "318", "BITBUCKET_REPO_FULL_NAME": BITBUCKET_REPO,
        "BITBUCKET_WORKSPACE": workspace, "BITBUCKET_REPO_SLUG": slug,
        "BITBUCKET_REPO_UUID": "{a1b2}", "BITBUCKET_COMMIT": BITBUCKET_SHA,
        "BITBUCKET_BRANCH": "feature/retry-payments", "BITBUCKET_PR_ID": str(BITBUCKET_PR),
        "BITBUCKET_PR_DESTINATION_BRANCH": "main",
        "BITBUCKET_PIPELINE_UUID": "{b1a2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d}",
        "BITBUCKET_STEP_UUID": "{c0ffee00-0000-4000-8000-000000000001}",
        "BITBUCKET_CLONE_DIR": "/opt/atlassian/pipelines/agent/build",
        "HERALD_BITBUCKET_API_URL": f"{fake.url}/2.0",
        "HERALD_BITBUCKET_TOKEN": bitbucket_fake.TOKEN, "HERALD_BITBUCKET_TIMEOUT": "2",
    }


def azure_pipelines(fake: azure_fake.FakeAzureDevOps) -> dict[str, str]:
    """A PR validation build's job whose step maps `SYSTEM_ACCESSTOKEN`."""
    return {
        "TF_BUILD": "True", "BUILD_BUILDID": str(BUILD), "BUILD_BUILDNUMBER": "20261204.3",
        "BUILD_DEFINITIONNAME": DEFINITION[1], "SYSTEM_DEFINITIONID": str(DEFINITION[0]),
        "SYSTEM_COLLECTIONURI": f"{fake.url}/", "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI":
        f"{fake.url}/", "SYSTEM_TEAMPROJECT": PROJECT, "SYSTEM_TEAMPROJECTID": PROJECT_ID,
        "BUILD_REASON": "PullRequest", "BUILD_SOURCEVERSION": "9e8d7c6b" * 5,
        "BUILD_SOURCEBRANCH": f"refs/pull/{PULL}/merge", "BUILD_REPOSITORY_ID": REPO_ID,
        "BUILD_REPOSITORY_NAME": AZURE_REPO, "BUILD_REPOSITORY_PROVIDER": "TfsGit",
        "BUILD_REPOSITORY_URI": f"{fake.url}/{PROJECT}/_git/{AZURE_REPO}",
        "SYSTEM_PULLREQUEST_PULLREQUESTID": str(PULL),
        "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/feature/refunds",
        "SYSTEM_PULLREQUEST_SOURCECOMMITID": SOURCE_SHA,
        "SYSTEM_JOBDISPLAYNAME": "unit tests", "SYSTEM_JOBATTEMPT": "1",
        "AGENT_JOBNAME": "unit tests", "SYSTEM_ACCESSTOKEN": azure_fake.TOKEN,
        "HERALD_AZURE_DEVOPS_TIMEOUT": "2",
    }


def github_forge(fake: FakeGitHub, token: str) -> dict[str, str]:
    """What a job of another CI system sets to report on GitHub: a token (here an App
    installation's, credited to `herald[bot]`) and, for GitHub Enterprise, the API."""
    return {"HERALD_GITHUB_API_URL": fake.base_url, "HERALD_GITHUB_TOKEN": token,
            "HERALD_GITHUB_TOKEN_LOGIN": "herald[bot]", "HERALD_GITHUB_REQUEST_TIMEOUT": "2"}


def jenkins_multibranch(remote: str) -> dict[str, str]:
    """A multibranch Pipeline build of pull request 17 (Git plugin and Branch API)."""
    return {
        "JENKINS_URL": "https://ci.example.com/", "JENKINS_HOME": "/var/jenkins_home",
        "JOB_NAME": "acme/widgets/PR-17", "JOB_BASE_NAME": "PR-17", "BUILD_NUMBER": "23",
        "BUILD_ID": "23", "BUILD_URL": "https://ci.example.com/job/acme/job/widgets/job/PR-17/23/",
        "JOB_URL": "https://ci.example.com/job/acme/job/widgets/job/PR-17/",
        "BRANCH_NAME": "PR-17", "CHANGE_ID": str(GITHUB_PR), "CHANGE_BRANCH": "feature/cart",
        "CHANGE_TARGET": "main", "GIT_URL": remote, "GIT_COMMIT": HEAD,
        "GIT_BRANCH": "PR-17", "WORKSPACE": "/var/jenkins_home/workspace/widgets_PR-17",
    }


def circleci_job(remote: str, pull_url: str | None) -> dict[str, str]:
    env = {
        "CI": "true", "CIRCLECI": "true",
        "CIRCLE_WORKFLOW_ID": "5f2a7e1c-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        "CIRCLE_PROJECT_USERNAME": "acme", "CIRCLE_PROJECT_REPONAME": "inventory",
        "CIRCLE_REPOSITORY_URL": remote, "CIRCLE_SHA1": GITLAB_SHA,
        "CIRCLE_BRANCH": "stock-ledger", "CIRCLE_BUILD_NUM": "1207", "CIRCLE_JOB": "test",
        "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme/inventory/1207",
        "CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "1",
        "CIRCLE_WORKING_DIRECTORY": "~/project",
    }
    if pull_url:
        env["CIRCLE_PULL_REQUEST"] = pull_url
    return env


def travis_pull_request() -> dict[str, str]:
    return {
        "CI": "true", "TRAVIS": "true", "CONTINUOUS_INTEGRATION": "true",
        "TRAVIS_REPO_SLUG": GITHUB_REPO, "TRAVIS_BUILD_ID": "612345678",
        "TRAVIS_BUILD_NUMBER": "88", "TRAVIS_JOB_ID": "612345679", "TRAVIS_JOB_NUMBER": "88.1",
        "TRAVIS_EVENT_TYPE": "pull_request", "TRAVIS_PULL_REQUEST": str(GITHUB_PR),
        "TRAVIS_PULL_REQUEST_SHA": HEAD, "TRAVIS_PULL_REQUEST_BRANCH": "feature/cart",
        "TRAVIS_BRANCH": "main", "TRAVIS_COMMIT": MERGE,
        "TRAVIS_BUILD_WEB_URL": "https://app.travis-ci.com/acme/widgets/builds/612345678",
    }


def teamcity_build(remote: str) -> dict[str, str]:
    """A TeamCity build step whose configuration exposes the `env.` parameters
    docs/push-mode.md lists (TeamCity sets TEAMCITY_VERSION and BUILD_VCS_NUMBER itself)."""
    return {
        "TEAMCITY_VERSION": "2025.07.1 (build 197398)", "TEAMCITY_PROJECT_NAME": "Checkout",
        "TEAMCITY_BUILDCONF_NAME": "Unit tests", "BUILD_NUMBER": "141",
        "BUILD_VCS_NUMBER": BITBUCKET_SHA, "TEAMCITY_BUILD_ID": "80412",
        "TEAMCITY_BUILDTYPE_ID": "Checkout_UnitTests",
        "TEAMCITY_SERVER_URL": "https://teamcity.example.com",
        "TEAMCITY_VCSROOT_URL": remote, "TEAMCITY_PULL_REQUEST_NUMBER": str(BITBUCKET_PR),
    }
