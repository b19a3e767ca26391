"""Isolation benchmark: a normal report's job time alone, and beside a hostile artifact.

    python -m bench.isolation [--cases N] [--repeat R] [--hostile attributes,large]

The job is what a worker runs for a run's artifacts: `handlers.report.collect` (download,
spool, read, merge), called without ARQ on a `Context` whose CI serves files from disk.
The normal artifact is a zipped Surefire-shaped JUnit report of `--cases` cases
(`bench.parse.generate`). Each scenario runs in a fresh interpreter: the normal job `R`
times alone, or `R` times while the same event loop keeps reading a hostile artifact
(started 0.5 s before the first normal job and restarted whenever it ends):

- **attributes**: issue 10's input, one `<testcase>` with 200,000 attributes (2.3 MB,
  zipped); lxml's `items()` on it is quadratic, minutes of CPU inside C code;
- **large**: a legal, CPU-heavy report, 500,000 minimal cases in one file (zipped), for
  when the parsers cap attributes and the first input becomes cheap.

Contenders: **in-process** (the baseline: `bot.isolation.InProcessReader`, the parse in a
thread of the worker's process, as before `bot.isolation`), and **pool** (the worker's
`ParsePool`: a child process per artifact, default limits). The figure is the median job
time; the ratio is beside-hostile / alone (target ≤ 1.2x for the pool). A scenario is
stopped after `--cap` seconds (120) and its unfinished jobs shown as such: an in-process
reader beside the attributes input waits for minutes of CPU held under the GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.parse import DATA_DIR, generate

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_ATTRIBUTES = 200_000
LARGE_CASES = 500_000
WARM_UP_SECONDS = 0.5


# ---- inputs ----------------------------------------------------------------------------------


def _zip_one(path: Path, member: str, write: Any) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            with archive.open(member, "w", force_zip64=True) as out:
                write(out)
        partial.replace(path)
    return path


def normal_artifact(cases: int) -> Path:
    report = DATA_DIR / f"junit-{cases}.xml"
    if not report.exists():
        generate(report, cases)

    def write(out: Any) -> None:
        with open(report, "rb") as source:
            while chunk := source.read(1 << 20):
                out.write(chunk)

    return _zip_one(DATA_DIR / f"isolation-normal-{cases}.zip", "TEST-surefire.xml", write)


def attributes_artifact() -> Path:
    def write(out: Any) -> None:
        attributes = " ".join(f'a{i}="x"' for i in range(HOSTILE_ATTRIBUTES))
        out.write(
            b'<?xml version="1.0"?><testsuite name="s">'
            + f'<testcase classname="c" name="t" {attributes}/>'.encode()
            + b"</testsuite>"
        )

    return _zip_one(DATA_DIR / "isolation-attributes.zip", "TEST-attributes.xml", write)


def large_artifact() -> Path:
    def write(out: Any) -> None:
        out.write(b'<?xml version="1.0"?><testsuites><testsuite name="large">\n')
        for first in range(0, LARGE_CASES, 10_000):
            out.write("".join(
                f'<testcase classname="app.Large" name="case_{i}" time="0.001"/>\n'
                for i in range(first, first + 10_000)
            ).encode())
        out.write(b"</testsuite></testsuites>\n")

    return _zip_one(DATA_DIR / f"isolation-large-{LARGE_CASES}.zip", "TEST-large.xml", write)


HOSTILE = {"attributes": attributes_artifact, "large": large_artifact}


# ---- one scenario, in its own interpreter ------------------------------------------------------


class _FileCI:
    """A CI that serves artifacts, read from disk beforehand, in download-sized chunks."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.data = {name: path.read_bytes() for name, path in files.items()}

    async def open_artifact(self, ref: Any, artifact: Any) -> AsyncIterator[bytes]:
        data = self.data[artifact.name]
        for at in range(0, len(data), 256 * 1024):
            yield data[at : at + 256 * 1024]
            await asyncio.sleep(0)


class _QuietLog:
    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: None


async def _scenario(mode: str, normal: Path, hostile: Path | None, repeat: int) -> list[float]:
    from bot.context import Context
    from bot.events import BUILD_COMPLETED, Event, RunRef
    from bot.isolation import ParsePool
    from bot.settings import Settings
    from handlers.report import collect
    from providers.base import RemoteArtifact

    settings = Settings.from_env({})
    pool = ParsePool.from_settings(settings) if mode == "pool" else None
    if pool is not None:
        await pool.start()
    ref = RunRef(provider="github", repo="bench/app", run_id="1", sha="abc")
    event = Event(provider="github", name=BUILD_COMPLETED, native_name="workflow_run",
                  delivery_id="bench", repo="bench/app", run=ref)
    ctx = Context(event=event, settings=settings, redis=None, http=None, log=_QuietLog(),
                  clients=None, artifacts=pool)
    files = {"normal-results": normal}
    if hostile is not None:
        files["hostile-results"] = hostile
    ci = _FileCI(files)

    async def hostile_jobs() -> None:
        artifact = RemoteArtifact(id="h", name="hostile-results")
        while True:
            await collect(ctx, ref, ci, [artifact])  # type: ignore[arg-type]

    background = asyncio.create_task(hostile_jobs()) if hostile is not None else None
    if background is not None:
        await asyncio.sleep(WARM_UP_SECONDS)
    times = []
    artifact = RemoteArtifact(id="n", name="normal-results")
    for _ in range(repeat):
        start = time.perf_counter()
        run = await collect(ctx, ref, ci, [artifact])  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
        assert run.totals().total > 0 and not run.errors, run.errors
        print(json.dumps({"job_seconds": times[-1]}), flush=True)
    if background is not None:
        background.cancel()
    if pool is not None:
        await pool.aclose()
    return times


def _child(mode: str, normal: Path, hostile: Path | None, repeat: int) -> None:
    import handlers.report  # noqa: F401  (imports before the clock, as a worker has them)

    # Not asyncio.run: it would wait at exit for the default executor, and an in-process
    # hostile parse holds one of its threads that nothing can stop. Print, then leave.
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_scenario(mode, normal, hostile, repeat))
    os._exit(0)


@dataclass
class Result:
    mode: str
    hostile: str
    times: list[float]
    #: Jobs that had not finished when the scenario's time was up.
    unfinished: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("inf")


def run(mode: str, normal: Path, hostile: str | None, repeat: int, cap: float) -> Result:
    """One scenario in a fresh interpreter, stopped after `cap` seconds: an in-process
    reader beside issue 10's input waits minutes for each job."""
    hostile_path = HOSTILE[hostile]() if hostile else None
    argv = [sys.executable, "-m", "bench.isolation", "--child", mode, str(normal),
            str(hostile_path or "-"), "--repeat", str(repeat)]
    times: list[float] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT) as child:
        assert child.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_lines, args=(child.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + cap
        while len(times) < repeat:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"scenario {mode}/{hostile} ended early")
            times.append(json.loads(line)["job_seconds"])
        if len(times) == repeat:
            # Let it close its pool (killing the hostile child) rather than orphan it.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=30)
        child.kill()
    return Result(mode, hostile or "none", times, repeat - len(times))


def _lines(stream: Any, into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def _row(result: Result, alone: Result, cap: float) -> str:
    if result.unfinished:
        done = f"{len(result.times)} of {result.unfinished + len(result.times)}"
        return (f"| {result.mode} | {result.hostile} | > {cap:g} ({done} jobs done) "
                f"| | | > {cap / alone.median:.0f}x |")
    ratio = result.median / alone.median
    return (f"| {result.mode} | {result.hostile} | {result.median:.3f} | "
            f"{min(result.times):.3f} | {max(result.times):.3f} | {ratio:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--hostile", default="attributes,large")
    parser.add_argument("--cap", type=float, default=120.0,
                        help="seconds a scenario may take before it is stopped")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "NORMAL", "HOSTILE"))
    args = parser.parse_args(argv)
    if args.child:
        mode, normal, hostile = args.child
        _child(mode, Path(normal), None if hostile == "-" else Path(hostile), args.repeat)
        return 0
    normal = normal_artifact(args.cases)
    hostiles = [h for h in args.hostile.split(",") if h]
    print(f"normal artifact: {normal.name}, {normal.stat().st_size / 1e6:.1f} MB zipped, "
          f"{args.cases:,} cases; {args.repeat} jobs per scenario; {os.cpu_count()} cores")
    for name in hostiles:
        path = HOSTILE[name]()
        print(f"hostile '{name}': {path.name}, {path.stat().st_size / 1e6:.2f} MB zipped")
    print()
    print("| reader | hostile beside it | job s (median) | min | max | vs alone |")
    print("|---|---|---:|---:|---:|---:|")
    for mode in ("in-process", "pool"):
        alone = run(mode, normal, None, args.repeat, args.cap)
        print(_row(alone, alone, args.cap), flush=True)
        for hostile in hostiles:
            print(_row(run(mode, normal, hostile, args.repeat, args.cap), alone, args.cap),
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
