"""Push mode: finding the CI system and the run from a job's documented environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from providers.detect import ORDER, detect

GITHUB = {
    "CI": "true",
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_API_URL": "https://api.github.com",
    "GITHUB_REPOSITORY": "heraldhq/herald",
    "GITHUB_SHA": "1111111111111111111111111111111111111111",
    "GITHUB_REF": "refs/pull/482/merge",
    "GITHUB_REF_NAME": "482/merge",
    "GITHUB_HEAD_REF": "feature/flaky-retries",
    "GITHUB_BASE_REF": "main",
    "GITHUB_EVENT_NAME": "pull_request",
    "GITHUB_EVENT_PATH": "/home/runner/work/_temp/_github_workflow/event.json",
    "GITHUB_RUN_ID": "11850412377",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_RUN_NUMBER": "1873",
    "GITHUB_JOB": "test",
    "GITHUB_WORKFLOW": "CI",
}
GITLAB = {
    "CI": "true",
    "GITLAB_CI": "true",
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_API_V4_URL": "https://gitlab.example.com/api/v4",
    "CI_PROJECT_ID": "48213",
    "CI_PROJECT_PATH": "platform/herald",
    "CI_PROJECT_URL": "https://gitlab.example.com/platform/herald",
    "CI_COMMIT_SHA": "e3b4f1a2c5d6e7f8091a2b3c4d5e6f708192a3b4",
    "CI_COMMIT_REF_NAME": "flaky-report",
    "CI_PIPELINE_ID": "1093377",
    "CI_PIPELINE_IID": "812",
    "CI_PIPELINE_URL": "https://gitlab.example.com/platform/herald/-/pipelines/1093377",
    "CI_PIPELINE_SOURCE": "merge_request_event",
    "CI_JOB_ID": "5521002",
    "CI_JOB_URL": "https://gitlab.example.com/platform/herald/-/jobs/5521002",
    "CI_MERGE_REQUEST_IID": "57",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "flaky-report",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": "",
}
BITBUCKET = {
    "CI": "true",
    "BITBUCKET_BUILD_NUMBER": "318",
    "BITBUCKET_COMMIT": "5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d",
    "BITBUCKET_BRANCH": "feature/retry-payments",
    "BITBUCKET_REPO_FULL_NAME": "acme-eng/checkout-service",
    "BITBUCKET_WORKSPACE": "acme-eng",
    "BITBUCKET_REPO_SLUG": "checkout-service",
    "BITBUCKET_REPO_UUID": "{3f0a1b2c-4d5e-46f7-8a9b-0c1d2e3f4a5b}",
    "BITBUCKET_PR_ID": "91",
    "BITBUCKET_PR_DESTINATION_BRANCH": "main",
    "BITBUCKET_PIPELINE_UUID": "{b1a2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d}",
    "BITBUCKET_STEP_UUID": "{0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f}",
}
AZURE = {
    "TF_BUILD": "True",
    "BUILD_BUILDID": "90817",
    "BUILD_BUILDNUMBER": "20261125.3",
    "BUILD_SOURCEVERSION": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
    "BUILD_SOURCEBRANCH": "refs/pull/1187/merge",
    "BUILD_REASON": "PullRequest",
    "BUILD_REPOSITORY_NAME": "payments-api",
    "BUILD_REPOSITORY_PROVIDER": "TfsGit",
    "SYSTEM_COLLECTIONURI": "https://dev.azure.com/contoso/",
    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI": "https://dev.azure.com/contoso/",
    "SYSTEM_TEAMPROJECT": "Payments",
    "SYSTEM_DEFINITIONID": "64",
    "SYSTEM_PULLREQUEST_PULLREQUESTID": "1187",
    "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/feature/idempotent-refunds",
    "SYSTEM_PULLREQUEST_SOURCECOMMITID": "0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a69788796",
}
CIRCLECI = {
    "CI": "true",
    "CIRCLECI": "true",
    "CIRCLE_SHA1": "f454a02b5d10fcccfd7d9dd7608a76d6493a98b4",
    "CIRCLE_BRANCH": "fix/rounding",
    "CIRCLE_PROJECT_USERNAME": "acme-fin",
    "CIRCLE_PROJECT_REPONAME": "ledger",
    "CIRCLE_REPOSITORY_URL": "git@github.com:acme-fin/ledger.git",
    "CIRCLE_BUILD_NUM": "4187",
    "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme-fin/ledger/4187",
    "CIRCLE_JOB": "test",
    "CIRCLE_WORKFLOW_ID": "fda08377-fe7e-46b1-8992-3a7aaecac9c3",
    "CIRCLE_PULL_REQUEST": "https://github.com/acme-fin/ledger/pull/212",
}
TRAVIS = {
    "CI": "true",
    "TRAVIS": "true",
    "CONTINUOUS_INTEGRATION": "true",
    "TRAVIS_REPO_SLUG": "orbit-labs/telemetry",
    "TRAVIS_COMMIT": "b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80",
    "TRAVIS_BRANCH": "main",
    "TRAVIS_PULL_REQUEST": "233",
    "TRAVIS_PULL_REQUEST_SHA": "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2",
    "TRAVIS_PULL_REQUEST_BRANCH": "offline-batching",
    "TRAVIS_BUILD_ID": "271834455",
    "TRAVIS_BUILD_NUMBER": "1042",
    "TRAVIS_JOB_ID": "612093004",
    "TRAVIS_BUILD_WEB_URL": "https://app.travis-ci.com/orbit-labs/telemetry/builds/271834455",
    "TRAVIS_JOB_WEB_URL": "https://app.travis-ci.com/orbit-labs/telemetry/jobs/612093004",
    "TRAVIS_EVENT_TYPE": "pull_request",
}
TEAMCITY = {
    "TEAMCITY_VERSION": "2025.11 (build 197398)",
    "TEAMCITY_PROJECT_NAME": "Storefront",
    "TEAMCITY_BUILDCONF_NAME": "Build",
    "BUILD_NUMBER": "512",
    "BUILD_VCS_NUMBER": "d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5",
    "TEAMCITY_BUILD_ID": "204118",
    "TEAMCITY_BUILDTYPE_ID": "Storefront_Build",
    "TEAMCITY_SERVER_URL": "https://teamcity.acme.example",
    "TEAMCITY_BRANCH": "pull/118",
}
JENKINS = {
    "JENKINS_URL": "https://ci.acme.example/",
    "BUILD_URL": "https://ci.acme.example/job/acme/job/inventory/job/PR-64/17/",
    "BUILD_NUMBER": "17",
    "BUILD_ID": "17",
    "JOB_NAME": "acme/inventory/PR-64",
    "JOB_URL": "https://ci.acme.example/job/acme/job/inventory/job/PR-64/",
    "GIT_COMMIT": "6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b",
    "GIT_URL": "https://github.com/acme/inventory.git",
    "BRANCH_NAME": "PR-64",
    "CHANGE_ID": "64",
    "CHANGE_URL": "https://github.com/acme/inventory/pull/64",
    "CHANGE_TARGET": "main",
    "CHANGE_BRANCH": "stock-ledger",
}

CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "github",
        GITHUB,
        {
            "repo": "heraldhq/herald",
            "run_id": "11850412377",
            "sha": "1111111111111111111111111111111111111111",
            "branch": "feature/flaky-retries",
            "change": 482,
            "url": "https://github.com/heraldhq/herald/actions/runs/11850412377",
            "extra.run_attempt": 2,
            "extra.event_path": "/home/runner/work/_temp/_github_workflow/event.json",
        },
    ),
    (
        "gitlab",
        GITLAB,
        {
            "repo": "platform/herald",
            "run_id": "1093377",
            "sha": "e3b4f1a2c5d6e7f8091a2b3c4d5e6f708192a3b4",
            "branch": "flaky-report",
            "change": 57,
            "url": "https://gitlab.example.com/platform/herald/-/pipelines/1093377",
            "extra.project_id": 48213,
            "extra.api_url": "https://gitlab.example.com/api/v4",
        },
    ),
    (
        "bitbucket",
        BITBUCKET,
        {
            "repo": "acme-eng/checkout-service",
            "run_id": "318",
            "sha": "5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d",
            "branch": "feature/retry-payments",
            "change": 91,
            "url": "https://bitbucket.org/acme-eng/checkout-service/pipelines/results/318",
            "extra.pipeline_uuid": "{b1a2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d}",
        },
    ),
    (
        "azure-devops",
        AZURE,
        {
            "repo": "contoso/Payments",
            "run_id": "90817",
            "sha": "0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a69788796",
            "branch": "feature/idempotent-refunds",
            "change": 1187,
            "url": "https://dev.azure.com/contoso/Payments/_build/results?buildId=90817",
            "extra.definition_id": 64,
        },
    ),
    (
        "circleci",
        CIRCLECI,
        {
            "repo": "gh/acme-fin/ledger",
            "run_id": "fda08377-fe7e-46b1-8992-3a7aaecac9c3",
            "sha": "f454a02b5d10fcccfd7d9dd7608a76d6493a98b4",
            "branch": "fix/rounding",
            "change": 212,
            "url": "https://app.circleci.com/pipelines/workflows/fda08377-fe7e-46b1-8992-3a7aaecac9c3",
            "extra.job_number": 4187,
        },
    ),
    (
        "travis",
        TRAVIS,
        {
            "repo": "orbit-labs/telemetry",
            "run_id": "271834455",
            "sha": "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2",
            "branch": "offline-batching",
            "change": 233,
            "url": "https://app.travis-ci.com/orbit-labs/telemetry/builds/271834455",
            "extra.target_branch": "main",
        },
    ),
    (
        "teamcity",
        TEAMCITY,
        {
            "repo": "Storefront_Build",
            "run_id": "204118",
            "sha": "d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5",
            "branch": "pull/118",
            "change": 118,
            "url": "https://teamcity.acme.example/buildConfiguration/Storefront_Build/204118",
            "extra.number": "512",
        },
    ),
    (
        "jenkins",
        JENKINS,
        {
            "repo": "acme/inventory/PR-64",
            "run_id": "17",
            "sha": "6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b",
            "branch": "stock-ledger",
            "change": 64,
            "url": "https://ci.acme.example/job/acme/job/inventory/job/PR-64/17/",
            "extra.change_target": "main",
        },
    ),
]


@pytest.mark.parametrize(("provider", "environ", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_ci_is_detected_from_its_documented_variables(
    provider: str, environ: dict[str, str], expected: dict[str, Any]
) -> None:
    ref = detect(environ)

    assert ref is not None
    assert ref.provider == provider
    for key, value in expected.items():
        actual = ref.extra[key[6:]] if key.startswith("extra.") else getattr(ref, key)
        assert actual == value, key


def test_the_order_is_that_of_providers_md_and_covers_every_builtin() -> None:
    import providers

    assert sorted(ORDER) == sorted(providers.BUILTIN)
    assert [c[0] for c in CASES] == list(ORDER)


@pytest.mark.parametrize(
    ("environ", "provider"),
    [
        ({**JENKINS, **GITHUB}, "github"),  # a Jenkins agent image run inside Actions
        ({**JENKINS, **TEAMCITY}, "teamcity"),  # JENKINS_URL left in an agent's environment
        ({**TRAVIS, **CIRCLECI}, "circleci"),
        ({**AZURE, **BITBUCKET}, "bitbucket"),
    ],
    ids=["github/jenkins", "teamcity/jenkins", "circleci/travis", "bitbucket/azure"],
)
def test_the_first_match_wins(environ: dict[str, str], provider: str) -> None:
    ref = detect(environ)
    assert ref is not None and ref.provider == provider


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"CI": "true"},
        {"GITHUB_ACTIONS": "false", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "1"},
        {"GITHUB_ACTIONS": "true"},  # marker without the run: not a run we can report on
        {"TEAMCITY_VERSION": "2025.11"},
        {"TRAVIS": "true", "TRAVIS_REPO_SLUG": "o/r"},
    ],
    ids=["empty", "generic", "actions false", "no run", "teamcity no id", "travis no id"],
)
def test_no_run_is_detected_outside_a_known_ci(environ: dict[str, str]) -> None:
    assert detect(environ) is None


def test_a_push_build_has_no_change() -> None:
    github = detect(
        {
            **GITHUB,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_HEAD_REF": "",
            "GITHUB_REF_NAME": "main",
            "GITHUB_EVENT_NAME": "push",
        }
    )
    travis = detect({**TRAVIS, "TRAVIS_PULL_REQUEST": "false"})
    assert github is not None and (github.change, github.branch) == (None, "main")
    assert travis is not None and (travis.change, travis.sha, travis.branch) == (
        None,
        "b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80",
        "main",
    )


def test_teamcity_reads_the_build_id_from_the_build_properties_file(tmp_path: Path) -> None:
    properties = tmp_path / "build.properties"
    properties.write_text(
        "#TeamCity build properties without 'system.' prefix\n"
        "teamcity.build.id=204118\n"
        "teamcity.buildType.id=Storefront_Build\n"
        "teamcity.serverUrl=https\\://teamcity.acme.example\n"
        "build.vcs.number=d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5\n"
    )
    environ = {
        "TEAMCITY_VERSION": "2025.11 (build 197398)",
        "BUILD_NUMBER": "512",
        "TEAMCITY_BUILD_PROPERTIES_FILE": str(properties),
    }
    ref = detect(environ)
    assert ref is not None
    assert (ref.provider, ref.repo, ref.run_id, ref.sha, ref.url) == (
        "teamcity",
        "Storefront_Build",
        "204118",
        "d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5",
        "https://teamcity.acme.example/buildConfiguration/Storefront_Build/204118",
    )


def test_circleci_slugs_follow_the_repository_host() -> None:
    bitbucket = detect(
        {**CIRCLECI, "CIRCLE_REPOSITORY_URL": "https://bitbucket.org/acme-fin/ledger"}
    )
    gitlab = detect({**CIRCLECI, "CIRCLE_REPOSITORY_URL": "https://gitlab.com/acme-fin/ledger"})
    assert bitbucket is not None and bitbucket.repo == "bb/acme-fin/ledger"
    assert gitlab is not None and gitlab.repo == "acme-fin/ledger"
    assert gitlab.extra["slug_known"] is False
