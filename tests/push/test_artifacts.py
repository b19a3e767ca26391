"""`herald report --artifacts GLOB`: a job's files kept where its forge hosts files, linked
from the report; where they cannot be kept, the report and the job's log say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from providers.stores import flat_name
from tests.fakes.ci_world import GITLAB_PROJECT
from tests.push.conftest import (
    BITBUCKET_PR,
    BITBUCKET_REPO,
    GITHUB_PR,
    GITHUB_REPO,
    GITLAB_MR,
    GITLAB_PIPELINE,
    PASSING,
    bitbucket_pipelines,
    github_actions,
    gitlab_ci,
)


@pytest.fixture
def job_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The job's working directory: its reports, a log and a screenshot."""
    work = tmp_path / "job"
    (work / "reports").mkdir(parents=True)
    (work / "logs").mkdir()
    (work / "shots").mkdir()
    (work / "logs" / "app.log").write_text("booted\nready\n")
    (work / "shots" / "cart.png").write_bytes(b"\x89PNG" + bytes(2000))
    monkeypatch.chdir(work)
    return work


def _failing(work: Path, reports: Path) -> str:
    (work / "reports" / "junit.xml").write_bytes((reports / "junit.xml").read_bytes())
    return "reports/*.xml"


def _passing(work: Path) -> str:
    (work / "reports" / "junit.xml").write_bytes(PASSING)
    return "reports/*.xml"


async def _step_with_log(herald: Any, env: dict[str, str], pattern: str, work: Path,
                         log: str, **options: Any) -> int:
    """The step run once more, its log now saying `log`; its exit status."""
    (work / "logs" / "app.log").write_text(log)
    outcome = await herald(env, pattern, artifacts=["logs/*.log"], **options)
    return int(outcome.code)


def _gitlab_files(fake: Any, key: str) -> dict[str, bytes]:
    return {f["file_name"]: fake.package_bytes[f["id"]]
            for f in fake.generic_files(GITLAB_PROJECT, "herald", flat_name(key))}


async def test_a_gitlab_job_keeps_its_artifacts_as_a_generic_package_linked_from_the_note(
    gitlab, reports, job_dir, herald
) -> None:
    env = gitlab_ci(gitlab)
    outcome = await herald(env, _failing(job_dir, reports),
                           artifacts=["logs/*.log", "shots/**/*.png"])

    assert outcome.code == 1, outcome.err  # the failed test, not the artifacts
    key = f"{GITLAB_PIPELINE}__{flat_name('test 1/2')}"  # the run, then the job
    held = _gitlab_files(gitlab, key)
    assert held == {"logs_2fapp.log": b"booted\nready\n",
                    "shots_2fcart.png": b"\x89PNG" + bytes(2000)}
    [note] = gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)
    assert "Artifacts" in note["body"]
    assert f"/packages/generic/herald/{flat_name(key)}/logs_2fapp.log" in note["body"]
    assert "stored logs/app.log (13 bytes)" in outcome.out


async def test_a_retried_step_links_the_files_of_its_latest_attempt(
    gitlab, reports, job_dir, herald
) -> None:
    env = gitlab_ci(gitlab)
    pattern = _failing(job_dir, reports)
    for text in ("first try\n", "second try\n"):
        assert await _step_with_log(herald, env, pattern, job_dir, text) == 1

    # GitLab keeps every upload of a name and serves the newest, which the note links.
    key = f"{GITLAB_PIPELINE}__{flat_name('test 1/2')}"
    assert _gitlab_files(gitlab, key) == {"logs_2fapp.log": b"second try\n"}
    [note] = gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)
    assert note["body"].count("logs_2fapp.log") == 1


async def test_two_matrix_legs_of_one_job_keep_their_own_files_and_link_their_own(
    gitlab, job_dir, herald
) -> None:
    env = gitlab_ci(gitlab)
    pattern = _passing(job_dir)
    for leg in ("py3.11", "py3.12"):
        assert await _step_with_log(herald, env, pattern, job_dir, f"log of {leg}\n",
                                    name=leg) == 0

    for leg in ("py3.11", "py3.12"):
        held = _gitlab_files(gitlab, f"{GITLAB_PIPELINE}__{flat_name(leg)}")
        assert held == {"logs_2fapp.log": f"log of {leg}\n".encode()}


async def test_a_bitbucket_step_keeps_its_artifacts_in_the_repositorys_downloads(
    bitbucket, reports, job_dir, herald
) -> None:
    env = bitbucket_pipelines(bitbucket)
    outcome = await herald(env, _failing(job_dir, reports), artifacts=["logs/*.log"])

    assert outcome.code == 1, outcome.err
    repo = bitbucket.repos[BITBUCKET_REPO]
    [stored] = [name for name in repo.downloads if name.endswith(flat_name("logs/app.log"))]
    assert stored == f"318__{flat_name('logs/app.log')}"  # the build, then the file
    assert repo.download_bytes[stored] == b"booted\nready\n"
    [comment] = bitbucket.our_comments(BITBUCKET_REPO, BITBUCKET_PR)
    assert f"/downloads/{stored}" in comment["content"]["raw"]


async def test_on_github_the_report_says_why_nothing_was_stored_and_the_step_exits_2(
    github, job_dir, tmp_path, herald
) -> None:
    env = github_actions(github, tmp_path / "event.json", github.issue_actions_token())
    outcome = await herald(env, _passing(job_dir), artifacts=["logs/*.log"])

    assert outcome.code == 2  # the tests passed; what was asked of the artifacts was not done
    assert "actions/upload-artifact" in outcome.err
    [comment] = github.repo(GITHUB_REPO).comments[GITHUB_PR]
    assert "actions/upload-artifact" in comment["body"]
    assert "not stored" in comment["body"] and "logs/" in comment["body"]


async def test_on_github_a_herald_web_app_serving_the_store_gets_signed_links(
    github, reports, job_dir, tmp_path, herald
) -> None:
    store = tmp_path / "shared-store"
    env = {**github_actions(github, tmp_path / "event.json", github.issue_actions_token()),
           "HERALD_PUBLIC_URL": "https://herald.example.com",
           "HERALD_URL_SIGNING_KEY": "k" * 32, "HERALD_STORE_DIR": str(store)}
    outcome = await herald(env, _failing(job_dir, reports), artifacts=["logs/*.log"])

    assert outcome.code == 1, outcome.err
    [kept] = list(store.rglob("app.log"))
    assert kept.read_text() == "booted\nready\n"
    [comment] = github.repo(GITHUB_REPO).comments[GITHUB_PR]
    assert "https://herald.example.com/files/store/" in comment["body"]
    assert "signature=" in comment["body"]
    assert "k" * 32 not in outcome.text


async def test_a_pattern_naming_no_file_is_said_and_costs_a_passing_run_nothing(
    gitlab, job_dir, herald
) -> None:
    outcome = await herald(gitlab_ci(gitlab), _passing(job_dir),
                           artifacts=["screenshots/*.png", "logs/*.log"])

    assert outcome.code == 0, outcome.err
    assert "--artifacts 'screenshots/*.png' names no file" in outcome.err
    assert "stored logs/app.log" in outcome.out


async def test_a_file_over_the_size_cap_is_named_in_the_report_and_the_others_are_kept(
    gitlab, job_dir, herald
) -> None:
    env = gitlab_ci(gitlab, HERALD_ARTIFACT_MAX_BYTES="1024")
    outcome = await herald(env, _passing(job_dir), artifacts=["logs/*.log", "shots/*.png"])

    assert outcome.code == 2
    assert "shots/cart.png: not stored" in outcome.err
    key = f"{GITLAB_PIPELINE}__{flat_name('test 1/2')}"
    assert list(_gitlab_files(gitlab, key)) == ["logs_2fapp.log"]
    [note] = gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR)
    assert "shots/cart.png" in note["body"] and "not stored" in note["body"]


async def test_a_pattern_leaving_the_working_directory_is_refused_and_nothing_is_posted(
    gitlab, job_dir, herald
) -> None:
    outcome = await herald(gitlab_ci(gitlab), _passing(job_dir), artifacts=["../*"])

    assert outcome.code == 3
    assert "must stay inside" in outcome.err
    assert gitlab.our_notes(GITLAB_PROJECT, GITLAB_MR) == []


async def test_a_retried_bitbucket_step_replaces_its_download_never_lists_two_of_one_name(
    bitbucket, job_dir, herald
) -> None:
    env = bitbucket_pipelines(bitbucket)
    pattern = _passing(job_dir)
    for text in ("first try\n", "second try\n"):
        assert await _step_with_log(herald, env, pattern, job_dir, text) == 0

    stored = f"318__{flat_name('logs/app.log')}"
    repo = bitbucket.repos[BITBUCKET_REPO]
    assert repo.download_bytes[stored] == b"second try\n"
    deletes = [c for c in bitbucket.calls if c.method == "DELETE" and "/downloads/" in c.path]
    assert len(deletes) == 1  # the second step's upload, of the name the first one stored
