"""Case-dense parse benchmark (issue 9): many small passing cases, Herald against bare lxml.

    python -m bench.parse_dense [--cases N] [--keep] [--repeat R]

Generates a JUnit file of N cases (default 200,000, ~250 bytes each: ~50 MB) under
bench/.data/ (reused on later runs), in the shape a big pytest or Surefire run writes: cases
with only name, classname and time, 1% failing with a message and a short trace, 0.5%
skipped. Then times, in a fresh subprocess each, rounds interleaved (bare, Herald, bare, ...):

- **bare**: the usual lxml streaming loop that only counts cases:
  `etree.iterparse(path, tag="testcase")`, `count += 1`, `element.clear()`, and the sibling
  cleanup that keeps its memory flat (`while element.getprevious() is not None: del
  element.getparent()[0]`). Without that cleanup the tree keeps one empty element per case.
- **Herald**: what a user's path costs: `parse_file(path)` to a `TestRun`, then
  `run.totals()`, then freeing the run.

It prints each contender's best-of-R seconds and MB/s, the median of the per-round ratios
(Herald seconds over bare seconds of the same round, inverted to a throughput ratio), and
the peak RSS (VmHWM) of each child. Target: Herald >= 0.8x of bare, RSS flat in cases.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.parse import DATA_DIR, _peak_rss_mb

DEFAULT_CASES = 200_000
CASES_PER_SUITE = 100
FAILURE_RATE = 0.01
SKIP_RATE = 0.005

_WORDS = (
    "request handler session cache token retry upstream payload schema worker queue "
    "commit branch merge artifact shard report status check build pipeline job step "
    "timeout connection database migration fixture client server response header"
).split()


def _words(rng: random.Random, count: int, sep: str = "_") -> str:
    return sep.join(rng.choice(_WORDS) for _ in range(count))


def generate_dense(path: Path, cases: int, seed: int = 9) -> dict[str, int]:
    """Write the case-dense file; returns the counts it wrote (total, failed, skipped)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    failed = skipped = 0
    with open(partial, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        out.write(f'<testsuites name="dense" tests="{cases}" time="1234.500">\n')
        for first in range(0, cases, CASES_PER_SUITE):
            count = min(CASES_PER_SUITE, cases - first)
            package = f"tests.integration.{_words(rng, 2)}.{_words(rng, 2)}"
            module = f"{package}.test_{_words(rng, 3)}_{first}"
            out.write(
                f'  <testsuite name="{module}" tests="{count}" failures="0" errors="0" '
                f'skipped="0" time="{rng.uniform(1, 60):.3f}" '
                'timestamp="2026-12-02T09:00:00" hostname="ci-runner-7">\n'
            )
            classname = f"{module}.Test{_words(rng, 3, '').title()}"
            for index in range(count):
                if rng.random() < 0.1:
                    classname = f"{module}.Test{_words(rng, 3, '').title()}"
                name = f"test_{_words(rng, 7)}[{_words(rng, 3, '-')}-{index}]"
                attrs = (
                    f'name="{name}" classname="{classname}" time="{rng.uniform(0, 0.5):.4f}"'
                )
                roll = rng.random()
                if roll < FAILURE_RATE:
                    failed += 1
                    actual = rng.randrange(400, 600)
                    frames = "\n".join(
                        f'  File "{module.replace(".", "/")}.py", line {rng.randrange(10, 900)},'
                        f" in {_words(rng, 2)}"
                        for _ in range(4)
                    )
                    out.write(
                        f"    <testcase {attrs}>\n"
                        f'      <failure message="AssertionError: assert {actual} == 200" '
                        f'type="AssertionError">Traceback (most recent call last):\n{frames}\n'
                        f"AssertionError: assert {actual} == 200</failure>\n    </testcase>\n"
                    )
                elif roll < FAILURE_RATE + SKIP_RATE:
                    skipped += 1
                    reason = f"needs {_words(rng, 2, ' ')}"
                    out.write(
                        f"    <testcase {attrs}>\n"
                        f'      <skipped type="pytest.skip" message="{reason}"/>\n'
                        "    </testcase>\n"
                    )
                else:
                    out.write(f"    <testcase {attrs}/>\n")
            out.write("  </testsuite>\n")
        out.write("</testsuites>\n")
    partial.replace(path)
    return {"total": cases, "failed": failed, "skipped": skipped}


def data_file(cases: int) -> Path:
    return DATA_DIR / f"junit-dense-{cases}.xml"


def measure_bare(path: Path) -> int:
    """Count <testcase> end events, freeing each case and the emptied ones before it."""
    from lxml import etree

    count = 0
    for _event, element in etree.iterparse(str(path), tag="testcase"):
        count += 1
        element.clear()
        while element.getprevious() is not None:
            del element.getparent()[0]
    return count


def measure_herald(path: Path) -> int:
    """The user's path: parse the file into a run, count it."""
    from bot.results.parsers import parse_file

    run = parse_file(path)
    return run.totals().total


PARSERS: dict[str, Callable[[Path], int]] = {"bare": measure_bare, "Herald": measure_herald}
_MODULES = {"bare": ("lxml.etree",), "Herald": ("lxml.etree", "bot.results.parsers")}


def _child(parser: str, path: Path) -> None:
    for module in _MODULES[parser]:
        importlib.import_module(module)
    start = time.perf_counter()
    cases = PARSERS[parser](path)
    seconds = time.perf_counter() - start
    print(json.dumps({"cases": cases, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}))


def measure(parser: str, path: Path) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.parse_dense", "--child", parser, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.parse_dense", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES)
    parser.add_argument("--keep", action="store_true", help="keep a generated non-default file")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--child", nargs=2, metavar=("PARSER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return 0

    path = data_file(args.cases)
    generated = not path.exists()
    if generated:
        print(f"generating {path} ({args.cases:,} cases)...", file=sys.stderr)
        generate_dense(path, args.cases)
    try:
        size_mb = path.stat().st_size / 1e6
        print(
            f"file: {path.name}, {size_mb:.1f} MB, {args.cases:,} cases, "
            f"{path.stat().st_size / args.cases:.0f} bytes per case"
        )
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in PARSERS}
        ratios = []
        for round_ in range(args.repeat):
            for name in PARSERS:
                runs[name].append(measure(name, path))
            bare, herald = runs["bare"][-1], runs["Herald"][-1]
            ratio = bare["seconds"] / herald["seconds"]
            ratios.append(ratio)
            print(
                f"round {round_ + 1}: bare {bare['seconds']:.3f} s, "
                f"Herald {herald['seconds']:.3f} s, ratio {ratio:.2f}x",
                file=sys.stderr,
            )
        counts = {int(m["cases"]) for measured in runs.values() for m in measured}
        if counts != {args.cases}:
            print(f"case counts disagree: {counts}", file=sys.stderr)
            return 1
        print("| contender | best s | MB/s | peak RSS (MB) |")
        print("|---|---:|---:|---:|")
        best = {}
        for name, measured in runs.items():
            best[name] = min(m["seconds"] for m in measured)
            rss = max(m["peak_rss_mb"] for m in measured)
            print(f"| {name} | {best[name]:.3f} | {size_mb / best[name]:.1f} | {rss:.0f} |")
        print(
            f"\nHerald / bare throughput: best-of {best['bare'] / best['Herald']:.2f}x, "
            f"median of rounds {statistics.median(ratios):.2f}x "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    finally:
        if generated and not args.keep and args.cases != DEFAULT_CASES:
            path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
