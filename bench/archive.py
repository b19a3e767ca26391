"""Archive benchmark: peak RSS of reading hostile and huge artifacts, beside a baseline.

    python -m bench.archive [--gib G] [--keep DIR]

Writes, streaming (zipfile to files, never a whole member in memory), to a temporary
directory:

- **nested bomb**: a zip of 12 zips, each holding one JUnit file whose `<system-out>` is
  G GiB of spaces (default 1: 12 GiB inflated from ~12.5 MB, the probe of issue 10);
- **honest member**: a zip64 holding one JUnit file whose `<system-out>` is G GiB of log
  lines, which deflate about 4:1, far under the ratio cap;
- **tiny**: a zip of one small report, the baseline.

Each is read by `bot.artifacts.read_file` into a real `Collector`, with the limits the
worker reads from the environment (`ArtifactLimits.from_settings`), in a fresh interpreter
whose peak RSS (`ru_maxrss`) is reported with its RSS after the read (`VmRSS`: what a
refusal left behind). The honest member is also read with the budget raised above its
size, to show what reading it whole costs. The baseline is the same process importing the
same modules and reading the tiny artifact; the bound printed beside each figure is that
baseline plus the per-job budget, the bound docs/limits.md states.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024
NESTED = 12
_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<testsuite name="bench" tests="1"><testcase classname="bench.Huge" name="%s">'
    b"<system-out>"
)
_TAIL = b"</system-out></testcase></testsuite>\n"
_WORDS = (
    "request handler session cache token retry upstream payload schema worker queue "
    "commit branch merge artifact shard report status check build pipeline job step"
).split()


def _write_member(archive: zipfile.ZipFile, name: str, size: int, block: bytes) -> None:
    """One JUnit member of `size` bytes of `block` repeated inside <system-out>."""
    info = zipfile.ZipInfo(name, date_time=(2026, 12, 3, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with archive.open(info, "w", force_zip64=True) as member:
        member.write(_HEAD % name.encode())
        left = size
        while left > 0:
            chunk = block[:left]
            member.write(chunk)
            left -= len(chunk)
        member.write(_TAIL)


def _log_block(size: int) -> bytes:
    """Varied log lines, escaped for XML: deflate finds little to repeat within 32 KB."""
    rng = random.Random(2026)
    lines: list[str] = []
    length = 0
    while length < size:
        line = (
            f"2026-12-03 07:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
            f"{rng.randrange(1000):03d} INFO [{rng.choice(_WORDS)}] "
            + " ".join(rng.choice(_WORDS) for _ in range(9))
            + f" id={rng.getrandbits(48):x}\n"
        )
        lines.append(line)
        length += len(line)
    return "".join(lines).encode()[:size]


def generate(directory: Path, size: int) -> dict[str, Path]:
    inner = directory / "inner.zip"
    with zipfile.ZipFile(inner, "w", compresslevel=6) as archive:
        _write_member(archive, "TEST-bomb.xml", size, b" " * MIB)
    nested = directory / "nested-bomb.zip"
    with zipfile.ZipFile(nested, "w", zipfile.ZIP_STORED) as archive:
        for index in range(NESTED):
            archive.write(inner, f"part-{index:02}.zip")
    inner.unlink()
    honest = directory / "honest.zip"
    with zipfile.ZipFile(honest, "w", compresslevel=1) as archive:
        _write_member(archive, "TEST-honest.xml", size, _log_block(4 * MIB))
    tiny = directory / "tiny.zip"
    with zipfile.ZipFile(tiny, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("TEST-tiny.xml", _HEAD % b"tiny" + b"ok" + _TAIL)
    return {"baseline": tiny, "nested bomb": nested, "honest member": honest}


@dataclass(frozen=True)
class Figures:
    """What one child measured."""

    seconds: float
    inflated: int
    cases: int
    errors: list[str]
    budget: int
    peak_rss_mb: float
    rss_after_mb: float


def _vm_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _child(path: Path) -> None:
    from bot.artifacts import ArtifactLimits, read_file
    from bot.results.parsers import Collector
    from bot.settings import Settings

    limits = ArtifactLimits.from_settings(Settings.from_env())
    collector = Collector("bench")
    start = time.perf_counter()
    with open(path, "rb") as fp:
        refused, sizes = read_file(collector, path.name, fp, limits)
    seconds = time.perf_counter() - start
    run = collector.result()
    errors = [f"{e.source}: {e.reason}" for e in [*run.errors, *refused]]
    figures = Figures(
        seconds=seconds,
        inflated=sizes.inflated,
        cases=run.totals().total,
        errors=errors,
        budget=limits.max_total_bytes,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        rss_after_mb=_vm_rss_mb(),
    )
    print(json.dumps(asdict(figures)))


def measure(path: Path, budget: int | None = None) -> Figures:
    env = dict(os.environ)
    if budget is not None:
        env["HERALD_ARTIFACT_MAX_TOTAL_BYTES"] = str(budget)
    completed = subprocess.run(
        [sys.executable, "-m", "bench.archive", "--child", str(path)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return Figures(**json.loads(completed.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.archive", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--gib", type=float, default=1.0,
                        help="GiB of output in each member (default 1)")
    parser.add_argument("--keep", type=Path, help="write the inputs here and keep them")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0

    size = int(args.gib * GIB)
    directory = args.keep or Path(tempfile.mkdtemp(prefix="herald-bench-archive-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        print(f"generating in {directory} ({args.gib:g} GiB per member)...", file=sys.stderr)
        inputs = generate(directory, size)
        runs: list[tuple[str, Path, int | None]] = [
            (name, path, None) for name, path in inputs.items()
        ]
        runs.append(("honest member, budget raised", inputs["honest member"], size + GIB))
        results = []
        for name, path, budget in runs:
            print(f"reading {name}...", file=sys.stderr)
            results.append((name, path, measure(path, budget)))
        baseline = results[0][2].peak_rss_mb
        print("| input | zip MB | budget MiB | inflated MiB | cases | seconds "
              "| peak RSS MB | RSS after MB | baseline + budget MB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, path, f in results:
            print(
                f"| {name} | {path.stat().st_size / 1e6:.1f} | {f.budget / MIB:,.0f} "
                f"| {f.inflated / MIB:,.1f} | {f.cases} | {f.seconds:.2f} "
                f"| {f.peak_rss_mb:.0f} | {f.rss_after_mb:.0f} "
                f"| {baseline + f.budget / 1e6:,.0f} |"
            )
        print()
        for name, _path, f in results[1:]:
            more = f"; and {len(f.errors) - 2} more" if len(f.errors) > 2 else ""
            print(f"{name}: {len(f.errors)} unread: {'; '.join(f.errors[:2]) or 'none'}{more}")
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
