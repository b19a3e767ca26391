"""CTRF parse benchmark: Herald's streaming CTRF reader against a bare orjson pass.

    python -m bench.parse_ctrf [--tests N] [--repeat R]

Generates a CTRF report of N tests (default 200,000; 95% passed, 3% failed with a message
and a 15-frame trace, 2% skipped) in jest-ctrf-json-reporter's shape and indentation under
/tmp (reused on later runs), then times, each in a fresh subprocess so one's peak RSS never
includes the other's, best of R rounds (default 3, interleaved):

- bare orjson: `orjson.loads` of the whole file, then `len(results.tests)`: the floor for
  any Python reader, which holds the whole document in memory;
- Herald: `parse_file` to the model, then counting the cases.

Prints seconds, MB/s and peak RSS of each, and bare/Herald (Herald's speed as a share of the
bare pass; the target is >= 0.8).
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.parse import _peak_rss_mb

DATA_DIR = Path("/tmp/herald-bench")
DEFAULT_TESTS = 200_000
FAILURE_RATE = 0.03
SKIP_RATE = 0.02
TESTS_PER_FILE = 50

_WORDS = (
    "request handler session cache token retry upstream payload schema worker queue "
    "commit branch merge artifact shard report status check build pipeline job step"
).split()


def generate(path: Path, tests: int, seed: int = 2026) -> None:
    """Write a CTRF report of `tests` tests, one test at a time (the generator itself stays
    small), indented as JSON.stringify(report, null, 2) does."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write('{\n  "reportFormat": "CTRF",\n  "specVersion": "0.0.0",\n  "results": {\n')
        out.write('    "tool": {\n      "name": "jest"\n    },\n')
        summary = {"tests": tests, "start": 1796236391159, "stop": 1796236391159 + tests * 3}
        out.write('    "summary": ' + json.dumps(summary, indent=2).replace("\n", "\n    "))
        out.write(',\n    "tests": [\n')
        for index in range(tests):
            module = index // TESTS_PER_FILE
            file = f"/src/app/__tests__/{_WORDS[module % len(_WORDS)]}{module}.test.js"
            test: dict[str, object] = {
                "name": f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} test {index}",
                "duration": rng.randrange(0, 400),
                "status": "passed",
                "rawStatus": "passed",
                "type": "unit",
                "filePath": file,
                "retries": 0,
                "flaky": False,
                "suite": f"{file.rpartition('/')[2]} > {_WORDS[module % len(_WORDS)]}",
            }
            roll = rng.random()
            if roll < FAILURE_RATE:
                test["status"] = test["rawStatus"] = "failed"
                received = rng.randrange(400, 600)
                test["message"] = (
                    "Error: expect(received).toBe(expected)\n\n"
                    f"Expected: 200\nReceived: {received}\n"
                )
                test["trace"] = "\n".join(
                    f"at Object.{rng.choice(_WORDS)} "
                    f"({file}:{rng.randrange(1, 300)}:{rng.randrange(1, 40)})"
                    for _ in range(15)
                )
            elif roll < FAILURE_RATE + SKIP_RATE:
                test["status"] = test["rawStatus"] = "pending"
            text = json.dumps(test, indent=2).replace("\n", "\n      ")
            out.write("      " + text + (",\n" if index + 1 < tests else "\n"))
        out.write("    ]\n  }\n}\n")


def data_file(tests: int) -> Path:
    path = DATA_DIR / f"ctrf-{tests}.json"
    if not path.exists():
        print(f"generating {path}...", file=sys.stderr)
        generate(path, tests)
    return path


def measure_bare(path: Path) -> int:
    import orjson

    with open(path, "rb") as stream:
        document = orjson.loads(stream.read())
    return len(document["results"]["tests"])


def measure_herald(path: Path) -> int:
    from bot.results.parsers import parse_file

    # Counted like the bare pass counts: the list lengths (totals() would add hashing).
    return sum(len(suite.cases) for suite in parse_file(path).suites)


PARSERS: dict[str, Callable[[Path], int]] = {
    "bare orjson": measure_bare,
    "Herald": measure_herald,
}
_MODULES = {"bare orjson": ("orjson",), "Herald": ("orjson", "bot.results.parsers")}


def _child(parser: str, path: Path) -> None:
    for module in _MODULES[parser]:
        importlib.import_module(module)
    start = time.perf_counter()
    count = PARSERS[parser](path)
    seconds = time.perf_counter() - start
    print(json.dumps({"tests": count, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}))


def measure(parser: str, path: Path) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.parse_ctrf", "--child", parser, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


def best_of(path: Path, repeat: int) -> dict[str, dict[str, float]]:
    """Each parser's fastest time and highest peak RSS; rounds interleave the parsers so
    a burst of load from another process slows both alike."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in PARSERS}
    for _ in range(repeat):
        for name in PARSERS:
            print(f"measuring {name}...", file=sys.stderr)
            runs[name].append(measure(name, path))
    return {
        name: {
            "tests": measured[0]["tests"],
            "seconds": min(m["seconds"] for m in measured),
            "peak_rss_mb": max(m["peak_rss_mb"] for m in measured),
        }
        for name, measured in runs.items()
    }


def table(results: dict[str, dict[str, float]], file_mb: float) -> str:
    lines = ["| parser | tests | seconds | MB/s | peak RSS (MB) |", "|---|---:|---:|---:|---:|"]
    for name, m in results.items():
        lines.append(
            f"| {name} | {int(m['tests']):,} | {m['seconds']:.2f} | "
            f"{file_mb / m['seconds']:.0f} | {m['peak_rss_mb']:.0f} |"
        )
    ratio = results["bare orjson"]["seconds"] / results["Herald"]["seconds"]
    lines.append("")
    lines.append(f"bare/Herald: {ratio:.2f}x (target >= 0.8x); file {file_mb:.0f} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=DEFAULT_TESTS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("PARSER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return 0
    path = data_file(args.tests)
    results = best_of(path, args.repeat)
    counts = {int(m["tests"]) for m in results.values()}
    if counts != {args.tests}:
        print(f"parsers disagree on the test count: {results}", file=sys.stderr)
        return 1
    print(table(results, path.stat().st_size / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
