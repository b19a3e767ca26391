"""Parse benchmark: Herald's report parser against a bare lxml loop and junitparser.

    python -m bench.parse [--cases N] [--keep] [--repeat R]

Generates a JUnit file of N cases (default 100,000, about 2 KB each: ~200 MB) under
bench/.data/ (reused on later runs; `--keep` leaves a freshly generated file there too,
otherwise a file generated for a non-default size is deleted afterwards), then times each
parser in a fresh subprocess, so one parser's peak RSS never includes another's, and prints
MB/s, peak RSS and the ratios Herald/bare and Herald/junitparser.

What each one does per case: the bare loop only counts <testcase> end events (the floor:
libxml2 building and freeing the tree); Herald builds its model (name, class, suite, time,
file/line, outcome, and message/type/trace/output of failures); junitparser is made to read
the same facts through its API (name, classname, time, results and their message, type,
text, and system-out), since a report needs them.

Targets: Herald >= 0.8x the bare loop, >= 2x junitparser, peak RSS flat in file size
(< 150 MB on the 200 MB file).
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
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / ".data"
DEFAULT_CASES = 100_000
CASES_PER_SUITE = 100
FAILURE_RATE = 0.03
SKIP_RATE = 0.02

_WORDS = (
    "request handler session cache token retry upstream payload schema worker queue "
    "commit branch merge artifact shard report status check build pipeline job step "
    "timeout connection database migration fixture client server response header"
).split()


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _log(rng: random.Random, size: int) -> str:
    """Captured output as test runs print it: timestamped log lines, some with markup."""
    lines: list[str] = []
    length = 0
    while length < size:
        line = (
            f"2026-11-25 09:{rng.randrange(60):02d}:{rng.randrange(60):02d},"
            f"{rng.randrange(1000):03d} INFO  [{rng.choice(_WORDS)}] {_sentence(rng, 9)}"
        )
        if rng.random() < 0.1:
            line += " &lt;payload id=&quot;42&quot;&gt; &amp; done"
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)


def _trace(rng: random.Random, classname: str, frames: int) -> str:
    actual = rng.randrange(400, 600)
    head = f"java.lang.AssertionError: expected:&lt;200&gt; but was:&lt;{actual}&gt;"
    body = "\n".join(
        f"\tat {classname}.{rng.choice(_WORDS)}{rng.choice(_WORDS).title()}"
        f"({classname.rpartition('.')[2]}.java:{rng.randrange(20, 900)})"
        for _ in range(frames)
    )
    return f"{head}\n{body}"


def generate(path: Path, cases: int, seed: int = 2026) -> None:
    """Write a JUnit report of `cases` cases in Surefire's shape, ~2 KB per case."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(partial, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n')
        for first in range(0, cases, CASES_PER_SUITE):
            count = min(CASES_PER_SUITE, cases - first)
            package = rng.choice(_WORDS)
            classname = f"com.example.{package}.{rng.choice(_WORDS).title()}Test{first}"
            out.write(
                f'  <testsuite name="{classname}" tests="{count}" failures="0" errors="0" '
                f'skipped="0" time="{rng.uniform(1, 60):.3f}" timestamp="2026-11-25T09:00:00" '
                f'hostname="ci-runner-7">\n'
                '    <properties><property name="java.version" value="21.0.5"/></properties>\n'
            )
            for index in range(count):
                name = f"test{rng.choice(_WORDS).title()}{rng.choice(_WORDS).title()}_{index}"
                attrs = f'name="{name}" classname="{classname}" time="{rng.uniform(0, 2):.3f}"'
                roll = rng.random()
                if roll < FAILURE_RATE:
                    out.write(
                        f"    <testcase {attrs}>\n"
                        '      <failure message="expected 200 but was 500" '
                        f'type="java.lang.AssertionError">{_trace(rng, classname, 30)}</failure>\n'
                        f"      <system-out>{_log(rng, 1200)}</system-out>\n    </testcase>\n"
                    )
                elif roll < FAILURE_RATE + SKIP_RATE:
                    out.write(
                        f'    <testcase {attrs}>\n      <skipped message="{_sentence(rng, 5)}"/>\n'
                        "    </testcase>\n"
                    )
                else:
                    out.write(
                        f"    <testcase {attrs}>\n"
                        f"      <system-out>{_log(rng, 1850)}</system-out>\n"
                        "    </testcase>\n"
                    )
            out.write("  </testsuite>\n")
        out.write("</testsuites>\n")
    partial.replace(path)


def data_file(cases: int) -> Path:
    return DATA_DIR / f"junit-{cases}.xml"


# --- the three parsers, each returning the number of cases it read -------------------------


def measure_bare(path: Path) -> int:
    """The floor: libxml2 through lxml's iterparse, counting <testcase> end events."""
    from lxml import etree

    count = 0
    for _event, element in etree.iterparse(str(path), tag="testcase"):
        count += 1
        element.clear()
    return count


def measure_herald(path: Path) -> int:
    from bot.results.parsers import parse_file

    run = parse_file(path)
    return sum(len(suite.cases) for suite in run.suites)


def measure_junitparser(path: Path) -> int:
    """junitparser, reading per case what Herald's model holds: name, class, time, outcome,
    and for a failure its message, type, text and captured output."""
    from junitparser import JUnitXml, TestSuite

    document = JUnitXml.fromfile(str(path))
    suites = [document] if isinstance(document, TestSuite) else list(document)
    count = 0
    for suite in suites:
        for case in suite:
            _facts = (case.name, case.classname, case.time)
            for result in case.result:
                _failure = (result.message, result.type, result.text, case.system_out)
            count += 1
    return count


PARSERS: dict[str, Callable[[Path], int]] = {
    "bare lxml iterparse": measure_bare,
    "Herald": measure_herald,
    "junitparser": measure_junitparser,
}


@dataclass(frozen=True, slots=True)
class Measurement:
    parser: str
    cases: int
    seconds: float
    peak_rss_mb: float
    file_mb: float

    @property
    def mb_per_second(self) -> float:
        return self.file_mb / self.seconds if self.seconds else float("inf")


def _peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


#: What each parser imports, loaded before the clock starts: import time is not parse speed.
_MODULES = {
    "bare lxml iterparse": ("lxml.etree",),
    "Herald": ("lxml.etree", "bot.results.parsers"),
    "junitparser": ("junitparser",),
}


def _child(parser: str, path: Path) -> None:
    for module in _MODULES[parser]:
        importlib.import_module(module)
    start = time.perf_counter()
    cases = PARSERS[parser](path)
    seconds = time.perf_counter() - start
    print(json.dumps({"cases": cases, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}))


def measure(parser: str, path: Path) -> Measurement:
    """Run one parser on `path` in a fresh interpreter and report what it took."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.parse", "--child", parser, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    return Measurement(
        parser=parser,
        cases=figures["cases"],
        seconds=figures["seconds"],
        peak_rss_mb=figures["peak_rss_mb"],
        file_mb=path.stat().st_size / 1e6,
    )


def best_of(path: Path, repeat: int) -> list[Measurement]:
    """Each parser's fastest time and highest peak RSS over `repeat` rounds.

    The rounds interleave the parsers (bare, Herald, junitparser, bare, ...) rather than
    running one parser's repeats back to back, so a burst of load from another process
    slows all of them alike instead of skewing the ratios.
    """
    runs: dict[str, list[Measurement]] = {name: [] for name in PARSERS}
    for _ in range(repeat):
        for name in PARSERS:
            print(f"measuring {name}...", file=sys.stderr)
            runs[name].append(measure(name, path))
    results = []
    for name, measured in runs.items():
        fastest = min(measured, key=lambda m: m.seconds)
        results.append(Measurement(
            parser=name,
            cases=fastest.cases,
            seconds=fastest.seconds,
            peak_rss_mb=max(m.peak_rss_mb for m in measured),
            file_mb=fastest.file_mb,
        ))
    return results


def table(results: list[Measurement]) -> str:
    by_name = {m.parser: m for m in results}
    lines = [
        "| parser | cases | seconds | MB/s | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in results:
        lines.append(
            f"| {m.parser} | {m.cases:,} | {m.seconds:.2f} | {m.mb_per_second:.1f} "
            f"| {m.peak_rss_mb:.0f} |"
        )
    herald = by_name["Herald"]
    lines.append("")
    for other in ("bare lxml iterparse", "junitparser"):
        ratio = herald.mb_per_second / by_name[other].mb_per_second
        lines.append(f"Herald / {other} throughput: {ratio:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.parse", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES)
    parser.add_argument("--keep", action="store_true", help="keep a generated non-default file")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of every parser; the fastest run counts"
    )
    parser.add_argument("--child", nargs=2, metavar=("PARSER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return 0

    path = data_file(args.cases)
    generated = not path.exists()
    if generated:
        print(f"generating {path} ({args.cases:,} cases)...", file=sys.stderr)
        generate(path, args.cases)
    try:
        print(f"file: {path.name}, {path.stat().st_size / 1e6:.1f} MB, {args.cases:,} cases")
        results = best_of(path, args.repeat)
        counts = {m.cases for m in results}
        if len(counts) != 1:
            print(f"parsers disagree on the case count: {counts}", file=sys.stderr)
            return 1
        print(table(results))
    finally:
        if generated and not args.keep and args.cases != DEFAULT_CASES:
            path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
