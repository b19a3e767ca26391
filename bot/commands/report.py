"""`herald report --auto-detect PATHS...`: inside a CI job, parse its test reports and
publish them where the change is reviewed, through the bot's own forge clients.

    herald report --auto-detect 'reports/**/*.xml'
    herald report --auto-detect junit.xml --provider jenkins --metric p95=12.5ms
    herald report --auto-detect 'reports/*.xml' --artifacts 'logs/**/*.log' --artifacts core

The CI system, run, commit and pull request come from the job's environment
(`providers.push`, docs/push-mode.md); the token from the environment or a `_FILE`, never
from an argument. `--config FILE` reads `HERALD_*` settings from a file of `NAME=value`
lines, under the environment (a variable set in the job wins). `--artifacts GLOB` keeps
the files it names (under the working directory) where the forge hosts files and links
them from the report; one that cannot be kept is named in the report. No Redis is used.

Exit status as `herald render`: 1 when a test failed or errored; else 2 when an input was
unusable; else 0. 3 when the report could not be published (no job detected, no token, the
forge refused): then nothing is reported, and the message says what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from bot.commands.render import (
    Progress,
    _encodable,
    add_metric,
    add_paths,
    exit_status,
    read_reports,
    summary_line,
)
from bot.console import printable
from bot.results.model import Metric

#: Exit status when nothing could be published (1 and 2 are `herald render`'s).
CANNOT_PUBLISH = 3


def configure(parser: argparse.ArgumentParser) -> None:
    add_paths(parser)
    parser.add_argument("--auto-detect", action="store_true", required=True,
                        help="take the CI system, run and change from the job's environment")
    parser.add_argument("--provider", metavar="NAME",
                        help="the CI system to read the job's variables of (default: detected)")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="HERALD_* settings as NAME=value lines, under the environment")
    parser.add_argument("--name", metavar="NAME",
                        help="the report's name after the run's (default: the job's name); "
                             "give each matrix leg its own")
    parser.add_argument("--artifacts", metavar="GLOB", action="append", default=[],
                        help="files to keep beside the report and link from it (a glob "
                             "under the working directory; repeatable)")
    add_metric(parser)


def read_config(path: Path) -> dict[str, str]:
    """`NAME=value` lines (blank lines and `#` comments skipped) of HERALD_* settings."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, equals, value = text.partition("=")
        name = name.strip().removeprefix("export ").strip()
        if not equals or not name.startswith("HERALD_"):
            raise ValueError(f"line {number}: expected NAME=value, the name starting HERALD_")
        values[name] = value.strip().strip("'\"")
    return values


def run(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    if args.config is not None:
        try:
            environ = {**read_config(args.config), **environ}
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            print(printable(f"herald: cannot read {args.config}: {exc}"), file=sys.stderr)
            return CANNOT_PUBLISH
    return report(args.paths, environ, provider=args.provider, name=args.name,
                  metrics=args.metric, artifacts=args.artifacts)


def report(paths: list[str], environ: dict[str, str], *, provider: str | None = None,
           name: str | None = None, metrics: list[Metric] | None = None,
           artifacts: list[str] | None = None) -> int:
    from bot.results.parsers import expand_paths
    from providers.push import CannotPublish, detect_job, publish_from_job

    try:
        ref = detect_job(environ, provider)  # before parsing: a wrong place fails at once
    except CannotPublish as exc:
        print(printable(f"herald: cannot publish: {exc}"), file=sys.stderr)
        return CANNOT_PUBLISH
    files, errors = expand_paths(paths)
    result, read = read_reports(ref.run_id, files, Progress(0, sys.stderr))
    result.errors[:0] = errors
    result.metrics.extend(metrics or [])
    print(_encodable(summary_line(result, read)))
    try:
        done = asyncio.run(publish_from_job(environ, result, provider=ref.provider, name=name,
                                            artifacts=artifacts or ()))
    except CannotPublish as exc:
        print(printable(f"herald: cannot publish: {exc}"), file=sys.stderr)
        return CANNOT_PUBLISH
    for pattern in done.unmatched:
        print(printable(f"herald: --artifacts {pattern!r} names no file"), file=sys.stderr)
    for refused in done.refused:
        print(printable(f"herald: {refused.source}: {refused.reason}"), file=sys.stderr)
    for kept in done.artifacts:
        print(printable(f"herald: stored {kept.name} ({kept.size:,} bytes): {kept.url}"))
    print(printable(f"herald: reported on {done.change.forge} {done.change.repo}: "
                    f"{done.url or done.change.sha}"))
    return exit_status(result)
