"""Ingest benchmark: Herald's webhook endpoint beside a bare Starlette endpoint, and worker pick-up.

    python -m bench.ingest [--duration 10] [--connections 32]

(a) saturating throughput of both endpoints, (b) p50/p99 latency of both at half the
bare endpoint's saturating rate, (c) worker pick-up latency (enqueue time → job start)
over 1000 jobs. Everything runs on loopback: a private redis-server, two uvicorn servers
(one process each, same loop and HTTP implementation, access log off) and wrk as the
load generator (Debian's `wrk`; `wrk2` is not packaged, so (b) paces wrk with its Lua
`delay()` hook and reports the rate it reached). The load is signed GitHub `workflow_run`
deliveries of a ~22 kB payload (tests/fixtures/webhooks/github/workflow_run_completed.json),
one fixed body and signature, a fresh `X-GitHub-Delivery` per request.

On a 2-core machine the server under test is pinned to CPU 0 and wrk plus Redis to CPU 1
(`taskset`), so the server gets one core to itself, as in production with one uvicorn
process per core.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = ROOT / "tests" / "fixtures" / "webhooks" / "github" / "workflow_run_completed.json"
SECRET = "bench-secret"
QUEUE = "herald:queue"
PICKUP_JOBS = 1000


# ---- the baseline: a bare endpoint that answers 202 and does nothing -----------------------


async def _accept(request: Request) -> Response:
    return Response(b'{"status":"queued"}', 202, media_type="application/json")


def bare_app() -> Starlette:
    return Starlette(routes=[Route("/webhooks/{provider}", _accept, methods=["POST"])])


async def _verify_only(request: Request) -> Response:
    body = await request.body()
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-hub-signature-256", "")):
        return Response(b"{}", 401, media_type="application/json")
    orjson.loads(body)
    return Response(b'{"status":"queued"}', 202, media_type="application/json")


def floor_app() -> Starlette:
    """Not a contender: the work no receiver can skip (read, verify, parse with the parser
    Herald uses), for context."""
    return Starlette(routes=[Route("/webhooks/{provider}", _verify_only, methods=["POST"])])


# ---- processes ---------------------------------------------------------------------------


def cpus() -> tuple[list[str], list[str]]:
    """taskset prefixes for (server, load generator + Redis) when there are ≥ 2 cores."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", "0"], ["taskset", "-c", "1"]
    return [], []


def wait_http(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def start_uvicorn(
    target: str, port: int, env: dict[str, str], pin: list[str]
) -> subprocess.Popen[bytes]:
    command = [
        *pin, sys.executable, "-m", "uvicorn", target, "--factory",
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_http(port)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- wrk ---------------------------------------------------------------------------------

LUA = """
local body_file = io.open("{body_path}", "rb")
local body = body_file:read("*a")
body_file:close()
local signature = "{signature}"
local counter = 0
local prefix = "run"
local pause = {pause_ms}
local thread_number = 0

function setup(thread)
  thread_number = thread_number + 1
  thread:set("tid", thread_number)
end

function init(args)
  prefix = "{run_id}-" .. tostring(tid)
end

function request()
  counter = counter + 1
  -- wrk.format with headers replaces the default ones, so Content-Type is set here
  local headers = {{
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "workflow_run",
    ["X-Hub-Signature-256"] = signature,
    ["X-GitHub-Delivery"] = prefix .. "-" .. counter,
  }}
  return wrk.format("POST", "/webhooks/github", headers, body)
end

-- a random pause averaging `pause`: a fixed one keeps all connections in lockstep, so
-- requests would arrive in bursts of one per connection instead of spread out
if pause > 0 then
  math.randomseed(os.time() + (tid or 0))
  function delay()
    return math.random(0, 2 * pause)
  end
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: str
    cpu_us: float = 0.0  # the server's CPU time per request (steadier than req/s when shared)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(port: int, script: Path, pin: list[str], *, connections: int, duration: int,
            threads: int = 1) -> WrkResult:
    command = [*pin, "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
               "-s", str(script), f"http://127.0.0.1:{port}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=duration + 60).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.M))

    def parse(value: str) -> float:
        match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
        if not match:
            raise ValueError(f"unexpected wrk latency {value!r} in:\n{output}")
        return _ms(match.group(1), match.group(2))

    total = re.search(r"(\d+) requests in ([\d.]+)(s|m)", output)
    if not total:
        raise ValueError(output)
    seconds = float(total.group(2)) * (60 if total.group(3) == "m" else 1)
    errors = " ".join(line.strip() for line in output.splitlines()
                      if "Non-2xx" in line or "Socket errors" in line)
    return WrkResult(int(total.group(1)), seconds, int(total.group(1)) / seconds,
                     parse(latency["50"]), parse(latency["99"]), errors)


# ---- (c) worker pick-up -----------------------------------------------------------------


async def enqueue_spaced(redis_url: str, count: int, spacing: float) -> None:
    from redis.asyncio import Redis

    from bot.events import PING, Event
    from bot.queue import RedisQueue

    client: Redis[bytes] = Redis.from_url(redis_url)
    queue = RedisQueue(client, queue_name=QUEUE)
    run = f"pickup-{time.time_ns()}"
    for number in range(count):
        await queue.enqueue(Event("github", PING, "ping", f"{run}-{number}", repo="o/r"))
        await asyncio.sleep(spacing)
    await queue.aclose()
    await client.aclose()


def pickup_latency(redis_url: str, env: dict[str, str], pin: list[str],
                   state: Path) -> tuple[float, float, int]:
    log_path = state / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen([*pin, sys.executable, "-m", "bot.cli", "worker"], env=env,
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while b"worker started" not in log_path.read_bytes():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(log_path.read_text()[-2000:])
            time.sleep(0.05)
        asyncio.run(enqueue_spaced(redis_url, PICKUP_JOBS, 0.005))
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 30
        while client.zcard(QUEUE) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop(worker)
    samples = []
    for line in log_path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") == "job" and record.get("pickup_ms") is not None:
            samples.append(float(record["pickup_ms"]))
    samples.sort()
    if len(samples) < PICKUP_JOBS:
        raise RuntimeError(f"only {len(samples)} of {PICKUP_JOBS} jobs ran")
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1], len(samples)


# ---- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    from bot.embedded_redis import EmbeddedRedis, free_port

    body = PAYLOAD.read_bytes()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    server_pin, load_pin = cpus()
    state = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    redis_server = EmbeddedRedis(state / "redis")
    redis_server.start()
    if load_pin:
        subprocess.run(["taskset", "-pc", "1", str(redis_server.process.pid)],  # type: ignore[union-attr]
                       check=True, capture_output=True)
    env = {
        **os.environ,
        "HERALD_REDIS_URL": redis_server.url,
        "HERALD_GITHUB_WEBHOOK_SECRET": SECRET,
        "HERALD_STATE_DIR": str(state / "herald"),
        "HERALD_LOG_FORMAT": "json",
        "HERALD_LOG_LEVEL": "info",
    }
    client = redis.Redis.from_url(redis_server.url)

    def script(pause_ms: int) -> Path:
        path = state / f"load-{pause_ms}.lua"
        path.write_text(LUA.format(body_path=PAYLOAD, signature=signature, pause_ms=pause_ms,
                                   run_id=time.time_ns()))
        return path

    results: dict[str, Any] = {}
    try:
        bare_port, floor_port, herald_port = free_port(), free_port(), free_port()
        bare = start_uvicorn("bench.ingest:bare_app", bare_port, env, server_pin)
        floor = start_uvicorn("bench.ingest:floor_app", floor_port, env, server_pin)
        herald = start_uvicorn("bot.composition:create_app", herald_port, env, server_pin)
        try:
            for name, port, server in (("bare", bare_port, bare), ("floor", floor_port, floor),
                                       ("herald", herald_port, herald)):
                run_wrk(port, script(0), load_pin, connections=args.connections, duration=2)
                client.flushdb()
                before = cpu_seconds(server.pid)
                result = run_wrk(port, script(0), load_pin, connections=args.connections,
                                 duration=args.duration)
                result.cpu_us = (cpu_seconds(server.pid) - before) / result.requests * 1e6
                results[f"{name}_max"] = result
                if name == "herald":
                    results["herald_jobs"] = client.zcard(QUEUE)
            # each connection waits `pause` between requests: connections / pause ≈ rate.
            # First at half the bare endpoint's saturating rate (the target's yardstick),
            # then at half Herald's own, where both are below saturation.
            paced_connections = 64
            for label, rate in (("half", results["bare_max"].rps / 2),
                                ("herald_half_rate", results["herald_max"].rps / 2)):
                pause_ms = max(1, round(paced_connections / rate * 1000))
                for name, port in (("bare", bare_port), ("herald", herald_port)):
                    client.flushdb()
                    results[f"{name}_{label}"] = run_wrk(port, script(pause_ms), load_pin,
                                                         connections=paced_connections,
                                                         duration=args.duration)
        finally:
            stop(bare)
            stop(floor)
            stop(herald)
        client.flushdb()
        results["pickup"] = pickup_latency(redis_server.url, env, load_pin, state)
    finally:
        client.close()
        redis_server.close()
        shutil.rmtree(state, ignore_errors=True)

    report(results, args)
    return 0


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    bare, herald = results["bare_max"], results["herald_max"]
    bare_half, herald_half = results["bare_half"], results["herald_half"]
    p50, p99, jobs = results["pickup"]
    print(f"python -m bench.ingest --duration {args.duration} --connections {args.connections}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    print("| measure | bare Starlette | Herald | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| saturating throughput (req/s), {args.connections} connections | {bare.rps:,.0f} | "
          f"{herald.rps:,.0f} | {herald.rps / bare.rps:.2f}x | ≥ 0.3x |")
    print(f"| server CPU per request at saturation (µs) | {bare.cpu_us:.0f} | "
          f"{herald.cpu_us:.0f} | {herald.cpu_us / bare.cpu_us:.1f}x | |")
    print(f"| latency p50 at saturation (ms) | {bare.p50_ms:.2f} | {herald.p50_ms:.2f} | "
          f"{herald.p50_ms / bare.p50_ms:.1f}x | |")
    print(f"| paced rate reached (req/s), half of bare's max | {bare_half.rps:,.0f} | "
          f"{herald_half.rps:,.0f} | | |")
    print(f"| latency p50 at that rate (ms) | {bare_half.p50_ms:.2f} | {herald_half.p50_ms:.2f} "
          f"| {herald_half.p50_ms / bare_half.p50_ms:.1f}x | |")
    print(f"| latency p99 at that rate (ms) | {bare_half.p99_ms:.2f} | {herald_half.p99_ms:.2f} "
          f"| {herald_half.p99_ms / bare_half.p99_ms:.1f}x | ≤ 3x |")
    low_bare, low_herald = results["bare_herald_half_rate"], results["herald_herald_half_rate"]
    print(f"| paced rate reached (req/s), half of Herald's max | {low_bare.rps:,.0f} | "
          f"{low_herald.rps:,.0f} | | |")
    print(f"| latency p50 at that rate (ms) | {low_bare.p50_ms:.2f} | {low_herald.p50_ms:.2f} "
          f"| {low_herald.p50_ms / low_bare.p50_ms:.1f}x | |")
    print(f"| latency p99 at that rate (ms) | {low_bare.p99_ms:.2f} | {low_herald.p99_ms:.2f} "
          f"| {low_herald.p99_ms / low_bare.p99_ms:.1f}x | |")
    print(f"| worker pick-up p50 / p99 (ms), {jobs} jobs | | {p50:.1f} / {p99:.1f} | | "
          f"p99 ≤ 50 ms |")
    print()
    floor = results["floor_max"]
    print(f"for context, an endpoint that only reads, verifies and parses the body: "
          f"{floor.rps:,.0f} req/s = {floor.rps / bare.rps:.2f}x of bare "
          f"(Herald = {herald.rps / floor.rps:.2f}x of it), {floor.cpu_us:.0f} µs CPU per "
          f"request, p50 {floor.p50_ms:.2f} ms")
    print(f"jobs in Redis after the saturating Herald run: {results['herald_jobs']:,} "
          f"(wrk completed {herald.requests:,} requests)")
    for name in ("bare_max", "floor_max", "herald_max", "bare_half", "herald_half"):
        if results[name].errors:
            print(f"{name}: {results[name].errors}")


if __name__ == "__main__":
    raise SystemExit(main())
