"""Queue scaling: jobs per second through Redis and real `herald worker` processes.

    python -m bench.queue_scaling [--jobs 4000] [--workers 1,2,4] [--concurrency 10]

A redis-server of its own on a free port (`bot.embedded_redis`), so the shared one is not
loaded. For each number of worker processes, two contenders move the same number of jobs:

- **bare Redis**: that many consumer processes each `BRPOP` a list the bench `LPUSH`es
  to, and do nothing with what they pop. The floor: one Redis round trip per job.
- **arq**: that many processes of arq's own `Worker` (the same poll delay, concurrency
  and `keep_result=0` as Herald's) with one job function that only counts itself, fed by
  arq's `enqueue_job`: what the queue library costs before Herald adds anything.
- **Herald**: that many `herald worker` processes (the real command, default settings,
  JSON log lines to /dev/null) take jobs the bench enqueues through `bot.queue.RedisQueue`
  (the web process's Lua script, batched as concurrent requests are). Each job is a
  GitHub `ping`, which no handler is routed for: the figure is the queue's and the
  worker's own cost per job (ARQ's pickup, in-progress and retry keys, our job decoding,
  log line and `bot.status` counters), not a report's.

Workers are started first and timed only once all are live (their heartbeats, read
through `bot.status`); then the jobs are enqueued, and the clock stops when the last one
is counted done (`herald_jobs_total`'s hash, for Herald; a counter the consumers
`INCR`, for bare Redis). Beside each figure: Redis' own CPU time per wall second
(`INFO cpu`; 1.0 is its one thread saturated), commands per second (`INFO stats`), and
the worker processes' CPU time per wall second, all together (`/proc/<pid>/stat`; this
machine's 2 cores make 2.0 the most they can have, less what Redis and the bench take),
and the bench's own (the enqueuer's) CPU time per wall second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.asyncio import Redis

from bot.embedded_redis import EmbeddedRedis
from bot.events import PING, Event
from bot.queue import PreparedJob, RedisQueue
from bot.status import collect, stats_key

QUEUE = "herald:queue"
BARE_LIST = "bench:bare"
BARE_DONE = "bench:bare:done"


@dataclass
class Figures:
    jobs: int
    seconds: float
    redis_cpu: float  # Redis CPU seconds per wall second
    redis_ops: float  # commands per second
    worker_cpu: float  # the worker processes' CPU seconds per wall second, all together
    bench_cpu: float  # this process's (the enqueuer's) CPU seconds per wall second

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


def redis_counters(client: redis.Redis) -> tuple[float, int]:
    cpu = client.info("cpu")
    stats = client.info("stats")
    return (float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
            int(stats["total_commands_processed"]))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux' /proc; 0 where unreadable)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def measured(client: redis.Redis, jobs: int, run: object, pids: list[int]) -> Figures:
    cpu0, ops0 = redis_counters(client)
    workers0 = cpu_seconds(pids)
    started, own0 = time.perf_counter(), time.process_time()
    asyncio.run(run)  # type: ignore[arg-type]
    seconds, own = time.perf_counter() - started, time.process_time() - own0
    cpu1, ops1 = redis_counters(client)
    return Figures(jobs, seconds, (cpu1 - cpu0) / seconds, (ops1 - ops0) / seconds,
                   (cpu_seconds(pids) - workers0) / seconds, own / seconds)


async def counter(client: Redis, key: str) -> int:
    return int(await client.get(key) or 0)


async def until(count: Callable[[], Awaitable[int]], target: int) -> None:
    """Poll `count` every 5 ms until it reaches `target`: the clock stops within 5 ms."""
    while True:
        if await count() >= target:
            return
        await asyncio.sleep(0.005)


# -- bare Redis ------------------------------------------------------------------------------


def bare_consumer(url: str) -> None:
    client = redis.Redis.from_url(url)
    while True:
        popped = client.brpop([BARE_LIST], timeout=0)
        if popped and popped[1] == b"stop":
            return
        client.incr(BARE_DONE)


async def bare_run(url: str, jobs: int) -> None:
    client: Redis = Redis.from_url(url)
    try:
        body = b"x" * 600  # about the size of a ping job
        for start in range(0, jobs, 256):
            await client.lpush(BARE_LIST, *[body] * min(256, jobs - start))
        await until(lambda: counter(client, BARE_DONE), jobs)
    finally:
        await client.aclose()


# -- arq alone ------------------------------------------------------------------------------

ARQ_QUEUE = "bench:arq"
ARQ_DONE = "bench:arq:done"
ARQ_READY = "bench:arq:ready"


async def _count(ctx: dict[str, object]) -> None:
    await ctx["redis"].incr(ARQ_DONE)  # type: ignore[attr-defined]


async def _ready(ctx: dict[str, object]) -> None:
    await ctx["redis"].sadd(ARQ_READY, os.getpid())  # type: ignore[attr-defined]


def arq_worker(url: str, concurrency: int) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    worker = Worker(functions=[func(_count, name="count")], queue_name=ARQ_QUEUE,
                    redis_settings=RedisSettings.from_dsn(url), on_startup=_ready,
                    max_jobs=concurrency, poll_delay=0.01, keep_result=0, log_results=False)
    worker.run()


async def arq_run(url: str, jobs: int) -> None:
    from arq.connections import RedisSettings, create_pool

    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        for start in range(0, jobs, 256):
            await asyncio.gather(*[pool.enqueue_job("count", _queue_name=ARQ_QUEUE)
                                   for _ in range(start, min(jobs, start + 256))])
        await until(lambda: counter(pool, ARQ_DONE), jobs)
    finally:
        await pool.aclose()


def run_arq(url: str, workers: int, jobs: int, concurrency: int) -> Figures:
    client = redis.Redis.from_url(url)
    client.delete(ARQ_DONE, ARQ_READY)
    command = [sys.executable, "-c", "from bench.queue_scaling import arq_worker; "
               f"arq_worker({url!r}, {concurrency})"]
    with processes([command] * workers, dict(os.environ)) as pids:
        deadline = time.monotonic() + 60
        while client.scard(ARQ_READY) < workers:
            if time.monotonic() > deadline:
                raise SystemExit("the arq workers did not start within 60 s")
            time.sleep(0.05)
        figures = measured(client, jobs, arq_run(url, jobs), pids)
    client.close()
    return figures


# -- Herald ----------------------------------------------------------------------------------


def ping(number: int) -> Event:
    return Event("github", PING, "ping", f"bench-{number}",
                 payload={"zen": "Keep it logically awesome.", "hook_id": 1,
                          "hook": {"type": "App", "id": 1, "events": ["workflow_run"]}})


async def herald_run(url: str, jobs: int, offset: int) -> None:
    client: Redis = Redis.from_url(url)
    queue = RedisQueue(client, queue_name=QUEUE)
    try:
        for start in range(0, jobs, 256):
            batch = [PreparedJob.from_event(ping(offset + n))
                     for n in range(start, min(jobs, start + 256))]
            await asyncio.gather(*[queue.enqueue_prepared(job) for job in batch])
        await until(lambda: done(client), offset + jobs)
    finally:
        await queue.aclose()
        await client.aclose()


async def done(client: Redis) -> int:
    counts = await client.hgetall(stats_key(QUEUE))
    return sum(int(v) for k, v in counts.items() if k.startswith(b"handler\t"))


async def live_workers(url: str) -> int:
    client: Redis = Redis.from_url(url)
    try:
        return len((await collect(client, QUEUE))["workers"])
    finally:
        await client.aclose()


@contextlib.contextmanager
def processes(commands: list[list[str]], env: dict[str, str]) -> Iterator[list[int]]:
    started = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for c in commands]
    try:
        yield [process.pid for process in started]
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_herald(url: str, workers: int, jobs: int, concurrency: int, offset: int,
               state: Path) -> Figures:
    env = {**os.environ, "HERALD_REDIS_URL": url, "HERALD_STATE_DIR": str(state),
           "HERALD_LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "bot.cli", "worker", "--concurrency", str(concurrency)]
    client = redis.Redis.from_url(url)
    with processes([command] * workers, env) as pids:
        deadline = time.monotonic() + 60
        while asyncio.run(live_workers(url)) < workers:
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start within 60 s")
            time.sleep(0.1)
        figures = measured(client, jobs, herald_run(url, jobs, offset), pids)
    client.close()
    return figures


def run_bare(url: str, consumers: int, jobs: int) -> Figures:
    client = redis.Redis.from_url(url)
    client.delete(BARE_LIST, BARE_DONE)
    command = [sys.executable, "-c",
               f"from bench.queue_scaling import bare_consumer; bare_consumer({url!r})"]
    with processes([command] * consumers, dict(os.environ)) as pids:
        deadline = time.monotonic() + 60
        # timed once every consumer waits in BRPOP, as Herald's once every worker is live
        while sum(c.get("cmd") == "brpop" for c in client.client_list()) < consumers:
            if time.monotonic() > deadline:
                raise SystemExit("the consumers did not start within 60 s")
            time.sleep(0.05)
        figures = measured(client, jobs, bare_run(url, jobs), pids)
        client.lpush(BARE_LIST, *[b"stop"] * consumers)
    client.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="HERALD_WORKER_CONCURRENCY of each worker (its default)")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(f"{args.jobs} jobs per run; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}")
    print(f"{'processes':>9}  {'contender':<10} {'jobs/s':>8} {'seconds':>8} "
          f"{'Redis CPU':>9} {'Redis ops/s':>11} {'ops/job':>7} {'worker CPU':>10} "
          f"{'bench CPU':>9}")
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as state:
        offset = 0
        for workers in counts:
            bare = run_bare(server.url, workers, args.jobs)
            arq = run_arq(server.url, workers, args.jobs, args.concurrency)
            herald = run_herald(server.url, workers, args.jobs, args.concurrency, offset,
                                Path(state))
            offset += args.jobs
            for name, f in (("bare Redis", bare), ("arq", arq), ("Herald", herald)):
                print(f"{workers:>9}  {name:<10} {f.rate:>8.0f} {f.seconds:>8.2f} "
                      f"{f.redis_cpu:>9.2f} {f.redis_ops:>11.0f} "
                      f"{f.redis_ops * f.seconds / f.jobs:>7.1f} {f.worker_cpu:>10.2f} "
                      f"{f.bench_cpu:>9.2f}")
            print(f"{'':>9}  Herald / bare: {herald.rate / bare.rate:.2f}x, "
                  f"Herald / arq: {herald.rate / arq.rate:.2f}x")


if __name__ == "__main__":
    main()
