"""The enqueue script with job states (issue 16) beside the one it replaced.

    python -m bench.enqueue [--jobs 20000] [--batch 256] [--rounds 5]

The web process enqueues through one Lua script per batch (`bot.queue.ENQUEUE_SCRIPT`).
Since issue 16 the script reads the dedupe record's state (GET, not EXISTS), takes four
keys per job (the in-progress and retry keys too) and may reset the retry count. This
measures what that costs, on a private redis-server (a free port, no persistence), for
the three paths a batch can take: new deliveries (queued), copies of queued deliveries
(duplicate) and redeliveries of deliveries whose job gave up (queued again; the baseline
has no such path, and answers them duplicate). Baseline: the script as it was before,
sent the same way (`BASELINE_SCRIPT`, kept here verbatim). Rounds alternate which of the
two runs first; the median of `--rounds` is printed, in jobs per second (Redis time and
the loopback round trips, the arguments being built beforehand).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from bot.embedded_redis import EmbeddedRedis
from bot.queue import (
    ARQ_IN_PROGRESS_PREFIX,
    ARQ_JOB_PREFIX,
    ARQ_RETRY_PREFIX,
    DEDUPE_PREFIX,
    DEDUPE_TTL,
    ENQUEUE_SCRIPT,
    JOB_TTL,
)

QUEUE = "herald:queue"
#: A job body: small, so the figures are the script's own work rather than copying bytes
#: (the SET of the job is the same in both).
BODY = b"x" * 1_000

BASELINE_SCRIPT = b"""
local results = {}
local dedupe_ttl, job_ttl = ARGV[1], ARGV[2]
for i = 0, (#KEYS - 1) / 2 - 1 do
  local key, arg = 2 + 2 * i, 3 + 3 * i
  if redis.call('EXISTS', KEYS[key]) == 0 then
    redis.call('ZADD', KEYS[1], ARGV[arg], ARGV[arg + 2])
    redis.call('SET', KEYS[key + 1], ARGV[arg + 1], 'PX', job_ttl)
    redis.call('SET', KEYS[key], ARGV[arg], 'PX', dedupe_ttl)
    results[i + 1] = 1
  else
    results[i + 1] = 0
  end
end
return results
"""


def baseline_args(ids: list[str]) -> list[Any]:
    keys: list[Any] = [QUEUE]
    values: list[Any] = [DEDUPE_TTL * 1000, JOB_TTL * 1000]
    for job_id in ids:
        keys += [f"{DEDUPE_PREFIX}{job_id}", f"{ARQ_JOB_PREFIX}{job_id}"]
        values += [1, BODY, job_id]
    return [len(keys), *keys, *values]


def current_args(ids: list[str]) -> list[Any]:
    keys: list[Any] = [QUEUE]
    values: list[Any] = [DEDUPE_TTL * 1000, JOB_TTL * 1000]
    for job_id in ids:
        keys += [f"{DEDUPE_PREFIX}{job_id}", f"{ARQ_JOB_PREFIX}{job_id}",
                 f"{ARQ_IN_PROGRESS_PREFIX}{job_id}", f"{ARQ_RETRY_PREFIX}{job_id}"]
        values += [1, BODY, job_id]
    return [len(keys), *keys, *values]


def timed(client: redis.Redis, script: bytes, make_args: Callable[[list[str]], list[Any]],
          ids: list[str], batch: int) -> tuple[float, float]:
    """Microseconds per job of running `script` over `ids` in batches: Redis' own time in
    the script (`INFO commandstats`, which a loaded machine disturbs far less than a
    clock) and the wall-clock time with the loopback round trips (arguments built first,
    so neither counts Python's work)."""
    sha = hashlib.sha1(script).hexdigest()
    client.script_load(script)
    calls = [make_args(ids[i:i + batch]) for i in range(0, len(ids), batch)]
    client.config_resetstat()
    started = time.perf_counter()
    for args in calls:
        client.evalsha(sha, *args)
    wall = time.perf_counter() - started
    stats: dict[str, Any] = client.info("commandstats")["cmdstat_evalsha"]
    return float(stats["usec"]) / len(ids), wall * 1e6 / len(ids)


def prepare(client: redis.Redis, path: str, ids: list[str]) -> None:
    """The state a path starts from: nothing, queued records, or records of jobs that gave
    up (their jobs cleaned up by ARQ)."""
    client.flushdb()
    if path == "new":
        return
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.set(f"{DEDUPE_PREFIX}{job_id}", "queued" if path == "duplicate" else "gave_up")
    pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ids = [f"github:{n:08d}" for n in range(args.jobs)]
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        print(f"{args.jobs} jobs of {len(BODY)} bytes, batches of {args.batch}, "
              f"median of {args.rounds} rounds, µs per job: Redis time (wall time)")
        print(f"{'path':<28}{'baseline':>16}{'with states':>16}{'ratio':>8}")
        for path in ("new", "duplicate", "redelivery after give-up"):
            base: list[tuple[float, float]] = []
            now: list[tuple[float, float]] = []
            contenders = [(base, BASELINE_SCRIPT, baseline_args),
                          (now, ENQUEUE_SCRIPT, current_args)]
            for round_ in range(args.rounds):
                # Which goes first alternates: the first run after a flush was measured
                # slower, whichever script it was.
                for figures, script, make_args in contenders[::1 if round_ % 2 else -1]:
                    prepare(client, path.split()[0], ids)
                    figures.append(timed(client, script, make_args, ids, args.batch))
            b = [statistics.median(f[i] for f in base) for i in (0, 1)]
            n = [statistics.median(f[i] for f in now) for i in (0, 1)]
            print(f"{path:<28}{b[0]:>8.2f} ({b[1]:>5.2f}){n[0]:>8.2f} ({n[1]:>5.2f})"
                  f"{n[0] / b[0]:>7.2f}x")
        client.close()


if __name__ == "__main__":
    main()
