"""Hostile XML benchmark (issue 10): CPU and memory of files shaped to cost them, beside
baselines measured in the same command.

    python -m bench.hostile_xml [--attributes N] [--cdata-mb M]

Writes its inputs to a temporary directory (streamed, never built in memory; removed at
the end) and runs every measurement in a fresh subprocess, so each peak RSS is its own:

- **attributes**: one `<testcase>` with N attributes (default 200,000: 2.3 MB) and a
  failure, then a normal case; and, just under the cap, 200 cases of 9,000 attributes each
  (~20 MB). Herald's `parse_file` (seekable: read raw first) and `parse_stream` on a one-way
  stream (the worker's path: filtered from the start), in CPU seconds, beside the
  **baseline**: a plain lxml loop (`iterparse(tag="testcase")`, `clear()`) and Herald over
  a normal dense JUnit file of the same size as each.
- **cdata**: one failing case whose `<system-out>` is one CDATA section of M MB (default
  200), then a second failing case. Peak RSS (ru_maxrss) of Herald reading it, both paths,
  beside the **baseline**: the same child code reading a tiny report. Target: < 150 MB
  beyond the baseline; the two failures must both be read.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.parse_dense import generate_dense

DEFAULT_ATTRIBUTES = 200_000
DEFAULT_CDATA_MB = 200
_LINE = b"2026-12-03 07:00:00,123 INFO  [worker] polling the queue once more, nothing yet\n"


def write_attributes(path: Path, count: int, cases: int = 1) -> None:
    with open(path, "wb") as out:
        out.write(b'<?xml version="1.0"?>\n<testsuite name="hostile">')
        for index in range(cases):
            out.write(b'<testcase classname="C"')
            for start in range(0, count, 10_000):
                stop = min(count, start + 10_000)
                out.write(b"".join(b' x%d="1"' % i for i in range(start, stop)))
            out.write(b' name="wide%d" time="1"><failure message="boom"/></testcase>' % index)
        out.write(b'<testcase classname="C" name="next" time="1"/></testsuite>\n')


def write_cdata(path: Path, megabytes: int) -> None:
    with open(path, "wb") as out:
        out.write(b'<?xml version="1.0"?>\n<testsuite name="loud"><testcase name="loud">'
                  b'<failure message="first">t</failure><system-out><![CDATA[')
        block = _LINE * (1024 * 1024 // len(_LINE))
        written = 0
        while written < megabytes * 1024 * 1024:
            out.write(block)
            written += len(block)
        out.write(b']]></system-out></testcase><testcase name="after">'
                  b'<failure message="second">t</failure></testcase></testsuite>\n')


def write_tiny(path: Path) -> None:
    path.write_bytes(b'<testsuite name="t"><testcase name="a"><failure message="m">t</failure>'
                     b"</testcase></testsuite>")


def _child(how: str, path: str) -> dict[str, object]:
    """One measurement, in this (fresh) process."""
    from lxml import etree

    from bot.results.parsers import parse_file, parse_stream

    start = time.process_time()
    from bot.results.parsers import ReportError

    error = None
    if how == "lxml":
        count = 0
        for _event, element in etree.iterparse(path, tag="testcase"):
            count += 1
            element.clear()
            while element.getprevious() is not None:
                del element.getparent()[0]
        failed = 0
    else:
        try:
            if how == "seekable":
                run = parse_file(path)
            else:
                with open(path, "rb", buffering=0) as raw:
                    run = parse_stream(path, _OneWay(raw))
        except ReportError as exc:
            count = failed = 0
            error = exc.reason
        else:
            totals = run.totals()
            count, failed = totals.total, totals.failed
    seconds = time.process_time() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "cases": count, "failed": failed,
            "error": error}


class _OneWay:
    """A file read like a socket: no seek, so Herald filters it from the first byte."""

    def __init__(self, raw: object) -> None:
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)  # type: ignore[attr-defined, no-any-return]

    def seekable(self) -> bool:
        return False


def measure(how: str, path: Path) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.hostile_xml", "--child", how, str(path)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    )
    figures: dict[str, object] = json.loads(result.stdout)
    return figures


def _row(label: str, path: Path, figures: dict[str, object]) -> str:
    size = path.stat().st_size / 1e6
    read = f"refused: {str(figures['error'])[9:60]}…" if figures["error"] else figures["cases"]
    return (f"| {label} | {size:,.1f} | {read} | {figures['failed']} | "
            f"{figures['seconds']:.3f} | {figures['peak_mb']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attributes", type=int, default=DEFAULT_ATTRIBUTES)
    parser.add_argument("--cdata-mb", type=int, default=DEFAULT_CDATA_MB)
    parser.add_argument("--child", nargs=2, metavar=("HOW", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    header = ("| input | MB | cases | failed | CPU s | peak RSS (MB) |\n"
              "|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="herald-hostile-") as tmp:
        folder = Path(tmp)
        wide, many = folder / "wide.xml", folder / "many.xml"
        tiny, loud = folder / "tiny.xml", folder / "cdata.xml"
        write_attributes(wide, args.attributes)
        write_attributes(many, 9_000, cases=200)
        write_tiny(tiny)
        for title, path in ((f"one <testcase> with {args.attributes:,} attributes", wide),
                            ("200 <testcase>s with 9,000 attributes each", many)):
            normal = folder / f"normal-{path.name}"
            generate_dense(normal, max(1, path.stat().st_size // 250))
            print(f"## {title}\n\n{header}")
            print(_row("baseline: plain lxml loop, normal file", normal, measure("lxml", normal)))
            print(_row("baseline: Herald, normal file", normal, measure("seekable", normal)))
            print(_row("Herald, this file (seekable)", path, measure("seekable", path)))
            print(_row("Herald, this file (one-way)", path, measure("one-way", path)))
            print()
        write_cdata(loud, args.cdata_mb)
        base = measure("seekable", tiny)
        print(f"## one CDATA section of {args.cdata_mb} MB\n\n{header}")
        print(_row("baseline: Herald, tiny file", tiny, base))
        for how in ("seekable", "one-way"):
            figures = measure(how, loud)
            print(_row(f"Herald, CDATA file ({how})", loud, figures))
            beyond = float(figures["peak_mb"]) - float(base["peak_mb"])  # type: ignore[arg-type]
            print(f"|   beyond the baseline: **{beyond:.0f} MB** (target < 150) | | | | | |")


if __name__ == "__main__":
    main()
