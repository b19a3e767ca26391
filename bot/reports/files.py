"""Reports as files: `report.md`, `report.html`, `report.json` in one directory.

`herald render` writes them, and so does the Local provider's report target. Each file is
written piece by piece (a million-test report is never one string) to a temporary file
beside it, then renamed over the old one: a reader never sees half a report, and writing
the same run's reports again replaces them instead of adding a second set.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from bot.reports.html import iter_html
from bot.reports.json import iter_json
from bot.reports.markdown import render_markdown
from bot.results.model import TestRun

#: format -> the file it is written to.
REPORT_FILES: Final = {"md": "report.md", "html": "report.html", "json": "report.json"}


def iter_report(fmt: str, run: TestRun, *, passed_detail: bool = False) -> Iterator[str]:
    """The report in `fmt` (`md`, `html`, `json`) in pieces."""
    if fmt == "json":
        yield from iter_json(run, passed_detail=passed_detail)
        yield "\n"
    elif fmt == "html":
        yield from iter_html(run)
    elif fmt == "md":
        yield render_markdown(run)  # a comment's size: one string is fine
    else:
        raise ValueError(f"unknown report format {fmt!r}: choose from md, html, json")


def write_text_atomically(path: Path, pieces: Iterable[str]) -> None:
    """`pieces` into `path`, whole or not at all. `errors="replace"` writes what UTF-8
    cannot hold (lone surrogates from a file name, PEP 383) as `?`."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with open(handle, "w", encoding="utf-8", errors="replace") as fp:
            fp.writelines(pieces)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_reports(out: Path, run: TestRun, formats: Iterable[str] = REPORT_FILES, *,
                  passed_detail: bool = False) -> list[Path]:
    """Each of `formats` written into `out` (made if missing); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = out / REPORT_FILES[fmt]
        write_text_atomically(path, iter_report(fmt, run, passed_detail=passed_detail))
        written.append(path)
    return written
