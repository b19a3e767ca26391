"""Parse benchmark for the JavaScript JSON formats: Herald against a bare `orjson.loads`.

    python -m bench.parse_jsonformats_js [--tests N] [--repeat R]

Generates, under /tmp, a Jest `--json` report of N assertions (default 200,000) across N/100
test files and a Mocha JSON reporter document of N tests, both mostly passing (3% failing
with a stack, 2% skipped), shaped like the real tools' output (Jest compact, Mocha indented
by two spaces). For each, it prints the best of R runs (default 3) of: a bare `orjson.loads`
of the whole file plus counting the tests (the floor: one C call that holds every test at
once), and Herald's `parse_file` (streamed, bounded memory, the full model), each in a fresh
subprocess, with Herald's peak RSS, and the ratio Herald/bare (speed, higher is better).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

import orjson

DATA_DIR = Path("/tmp/herald-bench-js")
DEFAULT_TESTS = 200_000
TESTS_PER_FILE = 100
FAILURE_RATE = 0.03
SKIP_RATE = 0.02
_WORDS = (
    "request handler session cache token retry upstream payload schema worker queue "
    "commit branch merge artifact shard report status check build pipeline job step"
).split()


def _title(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _stack(rng: random.Random, path: str) -> str:
    frames = "\n".join(
        f"    at {rng.choice(_WORDS)} (/repo/node_modules/jest-circus/build/x.js:"
        f"{rng.randrange(10, 2000)}:{rng.randrange(1, 40)})"
        for _ in range(12)
    )
    return (
        "Error: \x1b[2mexpect(\x1b[22m\x1b[31mreceived\x1b[39m\x1b[2m).toBe(expected)\x1b[22m"
        f"\n\nExpected: {rng.randrange(100)}\nReceived: {rng.randrange(100)}\n"
        f"    at Object.toBe ({path}:{rng.randrange(5, 300)}:19)\n{frames}"
    )


def generate_jest(path: Path, tests: int, seed: int = 2026) -> None:
    rng = random.Random(seed)
    files = max(1, tests // TESTS_PER_FILE)
    start = 1_796_000_000_000
    with path.open("wb") as out:
        out.write(
            b'{"numFailedTestSuites":0,"numFailedTests":0,"numPassedTestSuites":0,'
            b'"numPassedTests":0,"numPendingTestSuites":0,"numPendingTests":0,'
            b'"numRuntimeErrorTestSuites":0,"numTodoTests":0,"numTotalTestSuites":%d,'
            b'"numTotalTests":%d,"openHandles":[],"snapshot":{"added":0,"total":0},'
            b'"startTime":%d,"success":false,"testResults":[' % (files, tests, start)
        )
        clock = start
        for index in range(files):
            name = f"/repo/src/{_title(rng, 2).replace(' ', '/')}/{index}.test.js"
            count = tests // files + (1 if index < tests % files else 0)
            results = []
            for _ in range(count):
                roll = rng.random()
                status = "failed" if roll < FAILURE_RATE else "passed"
                if FAILURE_RATE <= roll < FAILURE_RATE + SKIP_RATE:
                    status = "pending"
                ancestors = [_title(rng, 2), _title(rng, 3)]
                title = _title(rng, 5)
                messages = [_stack(rng, name)] if status == "failed" else []
                results.append(
                    {
                        "ancestorTitles": ancestors,
                        "duration": None if status == "pending" else rng.randrange(0, 40),
                        "failing": False,
                        "failureDetails": [{}] if messages else [],
                        "failureMessages": messages,
                        "fullName": " ".join([*ancestors, title]),
                        "invocations": 1,
                        "location": {"column": 3, "line": rng.randrange(1, 400)},
                        "numPassingAsserts": 1,
                        "retryReasons": [],
                        "status": status,
                        "title": title,
                        "startAt": clock,
                    }
                )
            end = clock + rng.randrange(50, 500)
            entry = {
                "assertionResults": results,
                "endTime": end,
                "message": "",
                "name": name,
                "startTime": clock,
                "status": "failed" if any(r["status"] == "failed" for r in results) else "passed",
                "summary": "",
            }
            clock = end
            if index:
                out.write(b",")
            out.write(orjson.dumps(entry))
        out.write(b'],"wasInterrupted":false}')


def generate_mocha(path: Path, tests: int, seed: int = 2026) -> None:
    rng = random.Random(seed)
    entries = []
    for index in range(tests):
        roll = rng.random()
        file = f"/repo/test/{index // TESTS_PER_FILE}.spec.js"
        title = _title(rng, 5)
        entry: dict[str, object] = {
            "title": title,
            "fullTitle": f"{_title(rng, 3)} {title}",
            "file": file,
            "duration": rng.randrange(0, 40),
            "currentRetry": 0,
            "speed": "fast",
            "err": {},
        }
        if roll < FAILURE_RATE:
            del entry["speed"]
            stack = _stack(rng, file)
            entry["err"] = {"stack": stack, "message": stack.splitlines()[0], "name": "Error"}
        elif roll < FAILURE_RATE + SKIP_RATE:
            del entry["speed"], entry["duration"]
        entries.append(entry)
    failures = [e for e in entries if e["err"]]
    pending = [e for e in entries if "duration" not in e]
    passes = [e for e in entries if "speed" in e]
    document = {
        "stats": {
            "suites": tests // TESTS_PER_FILE,
            "tests": tests,
            "passes": len(passes),
            "pending": len(pending),
            "failures": len(failures),
            "start": "2026-12-02T18:00:00.000Z",
            "end": "2026-12-02T18:01:00.000Z",
            "duration": 60000,
        },
        "tests": entries,
        "pending": pending,
        "failures": failures,
        "passes": passes,
    }
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def count_bare(path: Path, kind: str) -> int:
    document = orjson.loads(path.read_bytes())
    if kind == "jest":
        return sum(len(entry["assertionResults"]) for entry in document["testResults"])
    return len(document["tests"])


def count_herald(path: Path) -> int:
    from bot.results.parsers import parse_file

    return parse_file(path).totals().total


_CHILD = """
import resource, sys, time
from pathlib import Path
from bench.parse_jsonformats_js import count_bare, count_herald
path, kind, which = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
start = time.perf_counter()
count = count_herald(path) if which == "herald" else count_bare(path, kind)
elapsed = time.perf_counter() - start
print(count, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def measure(path: Path, kind: str, which: str) -> tuple[int, float, float]:
    """(tests, seconds, peak RSS in MB) of one run in a fresh interpreter."""
    output = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), kind, which],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.split()
    return int(output[0]), float(output[1]), float(output[2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=DEFAULT_TESTS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for kind, generate in (("jest", generate_jest), ("mocha", generate_mocha)):
        path = DATA_DIR / f"{kind}-{args.tests}.json"
        if not path.exists():
            started = time.perf_counter()
            generate(path, args.tests)
            print(f"generated {path} in {time.perf_counter() - started:.1f}s", flush=True)
        size = path.stat().st_size / 1e6
        best: dict[str, tuple[int, float, float]] = {}
        for _ in range(args.repeat):
            for which in ("bare", "herald"):
                result = measure(path, kind, which)
                if which not in best or result[1] < best[which][1]:
                    best[which] = result
        bare, herald = best["bare"], best["herald"]
        print(
            f"{kind}: {size:.0f} MB, {herald[0]:,} tests (bare counted {bare[0]:,}); "
            f"bare orjson.loads {bare[1]:.2f}s ({bare[2]:.0f} MB peak), "
            f"Herald parse_file {herald[1]:.2f}s ({herald[2]:.0f} MB peak); "
            f"Herald/bare speed {bare[1] / herald[1]:.2f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
