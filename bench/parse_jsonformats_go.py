"""JSON-format parse benchmark: Herald's Go test2json and RSpec JSON readers against a bare
orjson pass over the same bytes.

    python -m bench.parse_jsonformats_go [--tests N] [--repeat R]

Generates under /tmp/herald-bench-json/ (reused when present) a `go test -json` stream of N
tests (default 200,000; 3% fail, 2% skip, ~5 output lines each, 20 packages) and an RSpec
`--format json` document of N examples (3% failing with a 20-frame backtrace, 2% pending).
Each contender runs R times (default 3) in a fresh subprocess, rounds interleaved; the
fastest time and the highest peak RSS (VmHWM) are printed.

- bare orjson, Go: `orjson.loads` of every line, counting `pass`/`fail`/`skip` test events.
- bare orjson, RSpec: `orjson.loads` of the whole document, `len(examples)`.
- Herald: `bot.results.parsers.parse_file` (detection, the full model, bounded output).

Target: Herald >= 0.8x the bare pass.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

DATA_DIR = Path("/tmp/herald-bench-json")
DEFAULT_TESTS = 200_000
FAIL_RATE = 0.03
SKIP_RATE = 0.02


def _stamp(i: int) -> str:
    return f"2026-12-02T18:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}123456Z"


def _event(time: str, action: str, package: str, test: str | None = None,
           elapsed: float | None = None, output: str | None = None) -> str:
    """One line exactly as test2json writes it: its field order, no spaces."""
    line = f'{{"Time":"{time}","Action":"{action}","Package":{json.dumps(package)}'
    if test is not None:
        line += f',"Test":{json.dumps(test)}'
    if elapsed is not None:
        line += f',"Elapsed":{elapsed}'
    if output is not None:
        line += f',"Output":{json.dumps(output)}'
    return line + "}\n"


def generate_go(path: Path, tests: int, seed: int = 2026) -> None:
    """`go test -json` of `tests` tests in 20 packages, ~5 output lines per test."""
    rng = random.Random(seed)
    packages = [f"example.com/service/internal/pkg{p:02d}" for p in range(20)]
    per_package = -(-tests // len(packages))
    with path.open("w") as out:
        written = 0
        for package in packages:
            elapsed = 0.0
            failed = False
            for _ in range(min(per_package, tests - written)):
                i = written
                name = f"TestHandler{i}/case_{i % 7}" if i % 4 == 0 else f"TestHandler{i}"
                roll = rng.random()
                action = "pass"
                if roll < FAIL_RATE:
                    action = "fail"
                elif roll < FAIL_RATE + SKIP_RATE:
                    action = "skip"
                where = f"    handler_test.go:{rng.randrange(10, 900)}"
                lines = [f"=== RUN   {name}\n", f"{where}: request {i} took 3ms\n",
                         f"{where}: cache hit ratio 0.{i % 97}\n"]
                if action == "fail":
                    lines.append(f"{where}: got 500, want 200\n")
                    failed = True
                elif action == "skip":
                    lines.append(f"{where}: needs redis\n")
                lines.append(f"--- {action.upper()}: {name} (0.00s)\n")
                stamp = _stamp(i)
                out.write(_event(stamp, "run", package, name))
                for line in lines:
                    out.write(_event(stamp, "output", package, name, output=line))
                seconds = round(rng.random() / 100, 2)
                elapsed += seconds
                out.write(_event(stamp, action, package, name, elapsed=seconds))
                written += 1
            verdict = "fail" if failed else "pass"
            stamp = _stamp(written)
            out.write(_event(stamp, "output", package, output=f"{verdict.upper()}\n"))
            out.write(_event(stamp, verdict, package, elapsed=round(elapsed, 3)))


def generate_rspec(path: Path, tests: int, seed: int = 2026) -> None:
    rng = random.Random(seed)
    examples = []
    for i in range(tests):
        spec = f"./spec/models/model_{i // 100}_spec.rb"
        example: dict[str, object] = {
            "id": f"{spec}[1:{i % 100 + 1}]",
            "description": f"handles request {i % 100}",
            "full_description": f"Model{i // 100} handles request {i % 100}",
            "status": "passed", "file_path": spec, "line_number": 4 * (i % 100) + 2,
            "run_time": round(rng.random() / 100, 6), "pending_message": None,
        }
        roll = rng.random()
        if roll < FAIL_RATE:
            example["status"] = "failed"
            example["exception"] = {
                "class": "RSpec::Expectations::ExpectationNotMetError",
                "message": f"\nexpected: 200\n     got: {rng.randrange(400, 600)}\n",
                "backtrace": [f"/app/{spec[2:]}:{rng.randrange(2, 400)}:in `block (2 levels)'"
                              for _ in range(20)],
            }
        elif roll < FAIL_RATE + SKIP_RATE:
            example["status"] = "pending"
            example["pending_message"] = "not implemented yet"
        examples.append(example)
    document = {
        "version": "3.12.0", "examples": examples,
        "summary": {"duration": 123.4, "example_count": tests, "failure_count": 0,
                    "pending_count": 0, "errors_outside_of_examples_count": 0},
        "summary_line": f"{tests} examples",
    }
    path.write_text(json.dumps(document, separators=(",", ":")))


def data_files(tests: int) -> dict[str, Path]:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    go = DATA_DIR / f"go-test-{tests}.json"
    rspec = DATA_DIR / f"rspec-{tests}.json"
    if not go.exists():
        generate_go(go, tests)
    if not rspec.exists():
        generate_rspec(rspec, tests)
    return {"go": go, "rspec": rspec}


def bare_go(path: Path) -> int:
    import orjson

    loads = orjson.loads
    count = 0
    with path.open("rb") as f:
        for line in f:
            event = loads(line)
            if event.get("Test") is not None and event.get("Action") in ("pass", "fail", "skip"):
                count += 1
    return count


def bare_rspec(path: Path) -> int:
    import orjson

    return len(orjson.loads(path.read_bytes())["examples"])


def herald(path: Path) -> int:
    from bot.results.parsers import parse_file

    return parse_file(path).totals().total


CONTENDERS = {"bare orjson": {"go": bare_go, "rspec": bare_rspec},
              "Herald": {"go": herald, "rspec": herald}}


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _child(contender: str, kind: str, path: Path) -> None:
    function = CONTENDERS[contender][kind]
    if contender == "Herald":
        import bot.results.parsers  # noqa: F401  (import time is not parse time)
    import orjson  # noqa: F401

    start = time.perf_counter()
    count = function(path)
    seconds = time.perf_counter() - start
    print(json.dumps({"count": count, "seconds": seconds, "rss": _peak_rss_mb()}))


def measure(contender: str, kind: str, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.parse_jsonformats_go", "--child", contender, kind, str(path)],
        capture_output=True, text=True, check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=DEFAULT_TESTS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("CONTENDER", "KIND", "PATH"))
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], Path(args.child[2]))
        return 0
    files = data_files(args.tests)
    print("| format | contender | tests | MB | seconds (best of "
          f"{args.repeat}) | peak RSS (MB) |\n|---|---|---:|---:|---:|---:|")
    for kind, path in files.items():
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for contender in CONTENDERS:
                result = measure(contender, kind, path)
                kept = best.get(contender)
                if kept is None:
                    best[contender] = result
                else:
                    kept["seconds"] = min(kept["seconds"], result["seconds"])
                    kept["rss"] = max(kept["rss"], result["rss"])
        size = path.stat().st_size / 1e6
        for contender, result in best.items():
            print(f"| {kind} | {contender} | {int(result['count']):,} | {size:.1f} | "
                  f"{result['seconds']:.2f} | {result['rss']:.0f} |")
        ratio = best["bare orjson"]["seconds"] / best["Herald"]["seconds"]
        print(f"| {kind} | Herald / bare | | | **{ratio:.2f}x** | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
