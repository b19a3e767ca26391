"""examples/: each script runs as its docstring says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAILING = ('<testsuite name="unit"><testcase classname="app" name="ok"/>'
           '<testcase classname="app" name="bad"><failure message="boom"/></testcase>'
           "</testsuite>")


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
