"""examples/: each script runs as its docstring says, the forges' against their fakes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import gitlab as gitlab_fake
from tests.fakes.ci_world import GITLAB_PROJECT
from tests.push import conftest as push_world

ROOT = Path(__file__).resolve().parents[2]
FAILING = ('<testsuite name="unit"><testcase classname="app" name="ok"/>'
           '<testcase classname="app" name="bad"><failure message="boom"/></testcase>'
           "</testsuite>")


@pytest.fixture(autouse=True)
def _in_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An example run in this process writes where it runs: never into the checkout."""
    monkeypatch.chdir(tmp_path)


def run(script: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    environ.update(HERALD_STATE_DIR=str(cwd / "state"), **env)
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=cwd,
                          env=environ, capture_output=True, text=True, timeout=60)


def test_local_report_publishes_the_folder_and_exits_1_for_a_failure(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "junit.xml").write_text(FAILING)
    (tmp_path / "results" / "notes.xml").write_text("<project/>")

    done = run("local_report.py", "results", "ci-7", cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("2 tests, 1 failed; published to the report folder ")
    assert "unreadable: " in done.stderr and "notes.xml" in done.stderr
    assert (tmp_path / "herald-reports" / "ci-7" / "report.md").exists()
    assert (tmp_path / "herald-report" / "report.html").exists()


def test_artifact_urls_prints_a_signed_link_per_file(tmp_path: Path) -> None:
    (tmp_path / "build" / "logs").mkdir(parents=True)
    (tmp_path / "build" / "logs" / "app.log").write_text("started\n")

    done = run("artifact_urls.py", "build", "ci-7", "logs/*.log", cwd=tmp_path,
               HERALD_PUBLIC_URL="https://herald.example", HERALD_URL_SIGNING_KEY="key")

    assert done.returncode == 0, done.stderr
    name, size, url = done.stdout.strip().split("\t")
    assert (name, size) == ("logs/app.log", "8")
    assert url.startswith("https://herald.example/files/store/ci-7/logs/app.log?expires=")


# ---- the forges' examples, against their fakes --------------------------------------------


def load(script: str) -> Any:
    spec = importlib.util.spec_from_file_location(script, ROOT / "examples" / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def reports(tmp_path: Path) -> str:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "junit.xml").write_bytes(push_world.FAILING)
    return str(tmp_path / "reports" / "*.xml")


def test_gitlab_report_posts_one_status_and_one_note(gitlab, reports, tmp_path: Path) -> None:
    args = [str(GITLAB_PROJECT), push_world.GITLAB_PATH, push_world.GITLAB_SHA,
            str(push_world.GITLAB_MR), reports]
    for _ in range(2):  # run again: replaced, not added
        done = run("gitlab_report.py", *args, cwd=tmp_path, HERALD_GITLAB_URL=gitlab.url,
                   HERALD_GITLAB_TOKEN=gitlab_fake.TOKEN)
        assert done.returncode == 1, done.stderr

    assert f"merge_requests/{push_world.GITLAB_MR}#note_" in done.stdout
    assert gitlab_fake.TOKEN not in done.stdout + done.stderr
    assert len(gitlab.our_notes(GITLAB_PROJECT, push_world.GITLAB_MR)) == 1
    assert len(gitlab.statuses[(GITLAB_PROJECT, push_world.GITLAB_SHA)]) == 1


async def test_github_report_posts_one_check_run_and_one_comment(
    github, reports, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in push_world.github_forge(github, github.issue_token()).items():
        monkeypatch.setenv(name, value)
    example = load("github_report.py")

    code = await example.main(push_world.GITHUB_REPO, push_world.HEAD,
                              str(push_world.GITHUB_PR), [reports])

    assert code == 1
    assert f"/pull/{push_world.GITHUB_PR}#issuecomment-" in capsys.readouterr().out
    assert len(github.repo(push_world.GITHUB_REPO).check_runs) == 1


async def test_ci_report_finds_the_github_actions_job_and_publishes_there(
    github, reports, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = github.issue_actions_token()
    for name, value in push_world.github_actions(github, tmp_path / "event.json",
                                                 token).items():
        monkeypatch.setenv(name, value)

    code = await load("ci_report.py").main([reports])

    printed = capsys.readouterr().out
    assert code == 1
    # (the log's lines go to the same stream in tests)
    assert "\ngithub: 3 tests, 1 failed; " in "\n" + printed
    [comment] = github.repo(push_world.GITHUB_REPO).comments[push_world.GITHUB_PR]
    assert comment["user"]["login"] == "github-actions[bot]"
    assert token not in printed


async def test_ci_report_outside_a_job_says_so(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):
        monkeypatch.delenv(name)
    assert await load("ci_report.py").main(["x.xml"]) == 3
    assert "not inside a CI job" in capsys.readouterr().err
