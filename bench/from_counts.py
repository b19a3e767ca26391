"""Hand-built run benchmark: `herald.from_counts(passed=N)` beside the model's own floor.

    python -m bench.from_counts [--cases 100000,1000000]

A run built from counts turns every counted test into a case, so its cost is that of N
cases. Each contender runs in a fresh process and builds N passed cases, then counts them
(`TestRun.totals()`), as a report would:

- **bare CaseList**: `TestCase(name=f"test_{i}", suite="s")` appended to one suite's
  `CaseList`, the floor of N cases in Herald's model;
- **from_counts**: `bot.results.counts.from_counts(id="r", passed=N)`, every case unnamed
  (`unnamed passed test i of N`), with its checks.

Shown: the build-and-count time (import time excluded, measured inside the child) and the
child's peak RSS (`ru_maxrss` from `wait4`, so the benchmark's own memory never counts).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (100_000, 1_000_000)

BARE = """
import sys, time
from bot.results.model import Suite, TestCase, TestRun
count = int(sys.argv[1])
start = time.perf_counter()
suite = Suite(name="s")
for index in range(count):
    suite.cases.append(TestCase(name=f"test_{index}", suite="s"))
total = TestRun(id="r", suites=[suite]).totals().total
print(time.perf_counter() - start, total)
"""

HERALD = """
import sys, time
from bot.results.counts import from_counts
count = int(sys.argv[1])
start = time.perf_counter()
total = from_counts(id="r", passed=count).totals().total
print(time.perf_counter() - start, total)
"""

CONTENDERS = (("bare CaseList", BARE), ("from_counts", HERALD))


def measure(code: str, cases: int) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of `code` building `cases` cases in a fresh process."""
    process = subprocess.Popen([sys.executable, "-c", code, str(cases)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    assert process.stdout is not None and process.stderr is not None
    out = process.stdout.read().decode()
    errors = process.stderr.read().decode(errors="replace")
    process.stdout.close()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the contender failed: {errors.strip()}")
    seconds, total = out.split()
    if int(total) != cases:
        raise RuntimeError(f"counted {total} cases, not {cases}")
    return float(seconds), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated case counts (default: %(default)s)")
    args = parser.parse_args()
    sizes = [int(part) for part in args.cases.split(",") if part.strip()]
    print("| contender | cases | seconds | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    for cases in sizes:
        figures = {}
        for name, code in CONTENDERS:
            seconds, peak = measure(code, cases)
            figures[name] = seconds
            print(f"| {name} | {cases:,} | {seconds:.2f} | {peak:.0f} |")
        ratio = figures["from_counts"] / figures["bare CaseList"]
        print(f"| from_counts / bare | {cases:,} | {ratio:.2f}x | |")


if __name__ == "__main__":
    main()
