"""`herald render PATHS...`: parse test reports and write Markdown, HTML and JSON reports.

    herald render 'reports/**/*.xml' build/test-results --out herald-report
    herald render results.xml --format json > report.json
    herald render junit.xml --metric p95=12.5ms --metric build=1m30s

PATHS are files, directories (searched for report files by their endings) and glob
patterns, as `bot.results.parsers.expand_paths` finds them. A zip or gzip file (a downloaded
CI artifact) is read with the worker's archive limits (`HERALD_ARTIFACT_*`). A one-line
summary goes to stdout, or to stderr when the JSON report itself goes to stdout
(`--format json` without `--out`).

Exit status: 1 when a test failed or errored; else 2 when any input was unusable (a path
that matched nothing, a file that is not a test report or could not be read whole) or the
arguments were wrong; else 0. A run with an unreadable file is never a plain success.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.console import printable
from bot.reports import iter_json
from bot.reports.files import REPORT_FILES, write_reports
from bot.results.model import Metric, ParseError, TestRun, format_duration

FORMATS = REPORT_FILES
DEFAULT_OUT = "herald-report"
#: Below this many input bytes parsing takes a moment; a progress bar would only flicker.
PROGRESS_THRESHOLD = 32 * 1024 * 1024
#: A reason in the summary line is cut here; the reports carry it whole.
REASON_LIMIT = 80

def add_paths(parser: argparse.ArgumentParser) -> None:
    """The PATHS argument, as every command that reads test reports takes it."""
    parser.add_argument("paths", nargs="+", metavar="PATHS",
                        help="report files, directories or glob patterns ('reports/**/*.xml')")


def add_metric(parser: argparse.ArgumentParser) -> None:
    """The repeatable `--metric NAME=VALUE[UNIT]` option."""
    parser.add_argument("--metric", action="append", type=metric, default=[],
                        metavar="NAME=VALUE[UNIT]",
                        help="a performance figure for the metrics table; repeatable")


def configure(parser: argparse.ArgumentParser) -> None:
    add_paths(parser)
    parser.add_argument("--format", type=_formats, default=list(FORMATS), metavar="md,html,json",
                        help="which reports to write (default: all three)")
    parser.add_argument("--out", metavar="DIR",
                        help=f"directory for report.md, report.html, report.json "
                             f"(default: {DEFAULT_OUT}/; with --format json alone, stdout)")
    parser.add_argument("--run-id", metavar="ID",
                        help="the run's name in the reports (default: local-<UTC time>)")
    parser.add_argument("--passed-detail", action="store_true",
                        help="write passed tests in full in report.json (location, output); "
                             "by default only their identity, status and duration")
    add_metric(parser)


def _formats(text: str) -> list[str]:
    chosen = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(unknown) or text!r}: choose from md, html, json"
        )
    return list(dict.fromkeys(chosen))


def metric(text: str) -> Metric:
    """`p95=12.5ms` -> Metric("p95", 12.5, "ms"); `build=fast` -> Metric("build", "fast");
    `build=1m30s` -> Metric("build", "1m30s")."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[UNIT], got {text!r}")
    try:
        return Metric.read(name.strip(), value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    to_stdout = args.format == ["json"] and args.out is None
    summary_stream = sys.stderr if to_stdout else sys.stdout
    run_id = args.run_id or datetime.now(UTC).strftime("local-%Y%m%dT%H%M%SZ")

    # The parsers (and lxml) load when a command parses, not on every `herald` start.
    from bot.results.parsers import expand_paths

    files, errors = expand_paths(args.paths)
    progress = Progress(sum(_size(path) for path, _named in files), sys.stderr)
    result, read = read_reports(run_id, files, progress)
    progress.close()
    result.errors[:0] = errors
    result.metrics.extend(args.metric)

    if to_stdout:
        for piece in iter_json(result, passed_detail=args.passed_detail):
            sys.stdout.write(_encodable(piece))
        sys.stdout.write("\n")
    else:
        out = Path(args.out or DEFAULT_OUT)
        try:
            write_reports(out, result, args.format, passed_detail=args.passed_detail)
        except OSError as exc:
            print(printable(f"herald: cannot write the reports to {out}: {exc}"), file=sys.stderr)
            return 2
    print(_encodable(summary_line(result, read)), file=summary_stream)
    return exit_status(result)


def exit_status(result: TestRun) -> int:
    """1 when tests failed, else 2 when any input was unusable, else 0."""
    if result.totals().failures:
        return 1
    if result.errors:
        return 2
    return 0


def _encodable(text: str) -> str:
    """`text` as UTF-8 can hold it. A file name or argument that is not valid UTF-8 reaches
    Python as lone surrogates (PEP 383), which no encoder writes: each shows as `?`."""
    return text.encode("utf-8", "replace").decode("utf-8")


def summary_line(result: TestRun, files: int) -> str:
    """`herald: 1,204 tests, 3 failed, 2 skipped in 2m 5.70s (2 files, 1 unusable: ...)`,
    for a terminal: a file name or reason holding escape sequences shows them escaped
    (`bot.console`) instead of acting on the terminal."""
    totals = result.totals()
    counts = [f"{totals.total:,} {'test' if totals.total == 1 else 'tests'}",
              f"{totals.failed:,} failed"]
    for count, word in ((totals.errors, "errors"), (totals.skipped, "skipped"),
                        (totals.flaky, "flaky")):
        if count:
            counts.append(f"{count:,} {word}")
    inputs = f"{files:,} {'file' if files == 1 else 'files'}"
    if result.errors:
        first = result.errors[0]
        reason = first.reason if len(first.reason) <= REASON_LIMIT \
            else first.reason[: REASON_LIMIT - 1] + "…"
        more = f"; and {len(result.errors) - 1:,} more" if len(result.errors) > 1 else ""
        inputs += f", {len(result.errors):,} unusable: {first.source}: {reason}{more}"
    took = format_duration(totals.duration)
    return printable(f"herald: {', '.join(counts)} in {took} ({inputs})")


def read_reports(run_id: str, files: list[tuple[str, bool]],
                 progress: Progress) -> tuple[TestRun, int]:
    """Parse every file into one run; returns it and how many files were read. A file
    that is not a report is named in the run's errors, like an unreadable one."""
    from bot.artifacts import ARCHIVE_MAGIC, ArtifactLimits, read_file
    from bot.results.parsers import Collector
    from bot.settings import ConfigError, Settings

    collector = Collector(run_id)
    unopened: list[ParseError] = []
    limits: ArtifactLimits | None = None
    for path, _named in files:
        try:
            with _CountingReader(path, progress) as stream:
                if not stream.peek(4)[:4].startswith(ARCHIVE_MAGIC):
                    collector.add_stream(path, stream)
                    continue
                # A downloaded artifact reads with exactly the worker's limits, so what CI
                # uploaded renders here as the bot would report it.
                if limits is None:
                    try:
                        limits = ArtifactLimits.from_settings(Settings.from_env())
                    except ConfigError as exc:
                        unopened.append(ParseError(path, f"cannot read archives: {exc}"))
                        continue
                refused, _sizes = read_file(collector, path, stream, limits)
                unopened.extend(refused)
        except OSError as exc:
            unopened.append(ParseError(path, f"cannot open: {exc.strerror or exc}"))
    result = collector.result()
    result.errors.extend(unopened)
    return result, len(files)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class Progress:
    """A one-line progress bar on a terminal: bytes read of all inputs. Silent when the
    stream is not a terminal (CI logs, pipes) or the input is small."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO, threshold: int | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        limit = PROGRESS_THRESHOLD if threshold is None else threshold
        self.enabled = total >= limit and stream.isatty()
        self._drawn_at = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn_at < 0.1 and self.done < self.total:
            return
        self._drawn_at = now
        self.stream.write("\r" + self.line())
        self.stream.flush()

    def line(self) -> str:
        share = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(share * self.WIDTH)
        mb = 1024 * 1024
        return (f"herald: reading [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{self.done / mb:,.1f}/{self.total / mb:,.1f} MB")

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * len(self.line()) + "\r")
            self.stream.flush()


class _CountingReader(io.BufferedReader):
    """A file that tells `progress` how far into it the parser has read."""

    def __init__(self, path: str, progress: Progress) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self._progress = progress
        self._furthest = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        position = self.tell()
        if position > self._furthest:
            self._progress.advance(position - self._furthest)
            self._furthest = position
        return data

    def close(self) -> None:
        if not self.closed:
            try:
                size = os.fstat(self.fileno()).st_size
            except (OSError, ValueError):
                size = self._furthest
            if size > self._furthest:  # what the parser skipped still counts as done
                self._progress.advance(size - self._furthest)
                self._furthest = size
        super().close()
