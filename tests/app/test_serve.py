"""`herald serve` from a fresh state directory: embedded Redis, a job run, a clean exit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.commands import replay
from bot.embedded_redis import free_port
from bot.settings import Settings

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
SECRET = "serve-test-secret"


def herald_command() -> list[str]:
    script = Path(sys.executable).with_name("herald")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def wait_for_line(path: Path, match: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_lines(path):
            if all(line.get(k) == v for k, v in match.items()):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line {match} in:\n{path.read_text()[-3000:]}")


@pytest.fixture
def serve_process(tmp_path: Path) -> Any:
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "HERALD_REDIS_URL")}
    env |= {
        "HERALD_STATE_DIR": str(tmp_path / "state"),
        "HERALD_LOG_FORMAT": "json",
        "HERALD_GITHUB_WEBHOOK_SECRET": SECRET,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*herald_command(), "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
    try:
        yield process, port, log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(tmp_path / "state", ignore_errors=True)


def test_serve_starts_embedded_redis_queues_runs_and_exits_cleanly(serve_process: Any) -> None:
    process, port, log_path = serve_process
    started = wait_for_line(log_path, {"logger": "herald.serve", "persistence": "append-only file"})
    wait_for_line(log_path, {"message": "worker started"})
    body = (FIXTURES / "github" / "ping.json").read_bytes()
    settings = Settings.from_env({"HERALD_GITHUB_WEBHOOK_SECRET": SECRET})
    headers = replay.build_request("github", body, settings, event="ping", delivery="serve-1")

    response = httpx.post(f"http://127.0.0.1:{port}/webhooks/github", content=body,
                          headers=headers, timeout=10)
    job = wait_for_line(log_path, {"message": "job", "delivery": "serve-1"})
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)

    assert "embedded Redis" in started["message"]
    assert started["url"].startswith("unix://")
    assert response.status_code == 202
    assert response.json() == {"status": "queued", "job_id": "github:serve-1"}
    assert job["outcome"] == "done"
    assert job["event"] == "ping"
    assert job["pickup_ms"] < 1000
    assert code == 0, log_path.read_text()[-3000:]
    messages = [line.get("message") for line in log_lines(log_path)]
    assert "herald stopped" in messages
    assert "embedded redis stopped" in messages
