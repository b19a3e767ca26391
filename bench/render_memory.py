"""Render memory benchmark: peak RSS of `herald render --format md,html,json`, 100k vs 1M cases.

    python -m bench.render_memory [--cases 100000,1000000] [--keep]

The whole path a user runs: the `herald` console script in a fresh process parses one
JUnit file of N minimal cases (`<testcase classname=… name=… time=…/>`, ~72 bytes each, as
the issue's probe wrote them) and writes report.md, report.html and report.json. Beside it,
in its own process, the baseline: a plain lxml iterparse loop over the same file that keeps
nothing (the floor of reading the file at all).

Peak RSS is the child's `ru_maxrss` (from `wait4`), so the benchmark's own memory never
counts. Targets (issue 10): at most 300 MB for 1M cases, and 1M within 1.5x of 100k.
Files are generated under bench/.data/ and deleted afterwards unless `--keep`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / ".data"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SIZES = (100_000, 1_000_000)
TARGET_MB = 300
TARGET_RATIO = 1.5

BARE = """
import sys
from lxml import etree
count = 0
for _event, element in etree.iterparse(sys.argv[1], tag="testcase"):
    count += 1
    element.clear()
    while element.getprevious() is not None:
        del element.getparent()[0]
print(count)
"""


def generate(path: Path, cases: int) -> None:
    """One suite of `cases` minimal passing cases, written as a stream."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii") as out:
        out.write(f'<?xml version="1.0"?>\n<testsuites>\n<testsuite name="s" tests="{cases}">\n')
        for index in range(cases):
            out.write(f'<testcase classname="pkg.mod.Class{index % 100}" '
                      f'name="test_{index}" time="0.001"/>\n')
        out.write("</testsuite>\n</testsuites>\n")


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    peak_mb: float


def _run(command: list[str]) -> Run:
    """`command` in a fresh process: its wall time and its own peak RSS."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[0]} failed: {errors.strip()}")
    return Run(seconds, usage.ru_maxrss / 1024)


def herald() -> str:
    found = shutil.which("herald", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("no `herald` console script beside this Python: pip install -e .")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(map(str, DEFAULT_SIZES)),
                        help="comma-separated case counts (default: 100000,1000000)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.cases.split(",")]
    script = herald()
    rows: list[tuple[int, float, Run, Run, int]] = []
    for cases in sizes:
        path = DATA_DIR / f"minimal-{cases}.xml"
        generated = not path.exists()
        if generated:
            print(f"generating {path.name} ({cases:,} cases)...", file=sys.stderr)
            generate(path, cases)
        try:
            bare = _run([sys.executable, "-c", BARE, str(path)])
            with tempfile.TemporaryDirectory() as out:
                rendered = _run([script, "render", str(path), "--format", "md,html,json",
                                 "--out", out])
                json_bytes = (Path(out) / "report.json").stat().st_size
            rows.append((cases, path.stat().st_size / 1e6, bare, rendered, json_bytes))
        finally:
            if generated and not args.keep:
                path.unlink()
    print("| cases | file MB | baseline: bare lxml loop (peak MB, s) "
          "| herald render md,html,json (peak MB, s) | report.json MB |")
    print("|---:|---:|---:|---:|---:|")
    for cases, file_mb, bare, rendered, json_bytes in rows:
        print(f"| {cases:,} | {file_mb:.1f} | {bare.peak_mb:.0f} MB, {bare.seconds:.1f} s "
              f"| {rendered.peak_mb:.0f} MB, {rendered.seconds:.1f} s "
              f"| {json_bytes / 1e6:.1f} |")
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        ratio = large[3].peak_mb / small[3].peak_mb
        print(f"\npeak RSS {large[0]:,} / {small[0]:,} cases: {ratio:.2f}x "
              f"(target <= {TARGET_RATIO}x); {large[0]:,} cases: {large[3].peak_mb:.0f} MB "
              f"(target <= {TARGET_MB} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
