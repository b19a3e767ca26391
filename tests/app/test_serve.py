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
from bot.state_lock import StateDirBusy, hold_state_dir
from tests.github.conftest import app_key

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
SECRET = "serve-test-secret"
#: A webhook secret with the API credentials its jobs need: `herald serve` refuses one
#: without the other (`bot.startup`).
SERVE_ENV = {
    "HERALD_GITHUB_WEBHOOK_SECRET": SECRET,
    "HERALD_GITHUB_APP_ID": "4242",
    "HERALD_GITHUB_PRIVATE_KEY": app_key()[0],
}


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
        **SERVE_ENV,
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


def test_a_second_serve_on_the_same_state_directory_names_the_owner_and_exits(
    serve_process: Any, tmp_path: Path
) -> None:
    first, port, log_path = serve_process
    wait_for_line(log_path, {"message": "worker started"})
    socket = tmp_path / "state" / "redis" / "redis.sock"
    assert socket.exists()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "HERALD_REDIS_URL")}
    env |= {"HERALD_STATE_DIR": str(tmp_path / "state"), "HERALD_LOG_FORMAT": "json",
            **SERVE_ENV}

    second = subprocess.run(
        [*herald_command(), "serve", "--port", str(free_port())],
        env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )

    assert second.returncode == 1
    assert f"is in use by another `herald serve` (process {first.pid})" in second.stderr
    # The first one's embedded Redis and spool were never touched: it still queues.
    assert socket.exists()
    body = (FIXTURES / "github" / "ping.json").read_bytes()
    settings = Settings.from_env({"HERALD_GITHUB_WEBHOOK_SECRET": SECRET})
    headers = replay.build_request("github", body, settings, event="ping", delivery="after")
    response = httpx.post(f"http://127.0.0.1:{port}/webhooks/github", content=body,
                          headers=headers, timeout=10)
    assert response.json()["status"] == "queued"
    assert not (tmp_path / "state" / "spool").exists() or not list(
        (tmp_path / "state" / "spool").glob("*.spool"))


def test_the_state_directory_is_free_again_once_its_owner_is_killed(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from bot.state_lock import hold_state_dir\n"
         "with hold_state_dir(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
         str(tmp_path / "state")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StateDirBusy, match=f"process {holder.pid}"), \
                hold_state_dir(tmp_path / "state"):
            pass
    finally:
        holder.kill()  # SIGKILL: no clean-up of its own
        holder.wait()

    with hold_state_dir(tmp_path / "state") as lock:
        assert lock.read_text() == f"{os.getpid()}\n"
