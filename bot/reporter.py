"""The library's reporter: a test run's reports as files, published through a provider,
with the artifacts collected beside it and links to them.

    reporter = Reporter(provider, report_dir="herald-report", artifact_dir="build")
    stored = await reporter.collect_and_upload_artifacts("run-42", ["logs/*.log"])
    report = await reporter.report_test_result(run)          # files + where it was posted
    urls = await reporter.get_artifact_urls("run-42", ["logs/app.log", "missing.txt"])

The same core as the bot: `bot.reports.files` writes the Markdown, HTML and JSON, the
provider (`Publisher`: the Local provider's folder, a forge in push mode) upserts, so a
retried script replaces what it published instead of adding to it.

What is never lost silently: an artifact the store refuses (too large, or refused by the
forge that hosts it) is named among the run's unreadable inputs in the next report and
logged; a name whose link cannot be had is `None` in `get_artifact_urls`, logged once,
and never costs the other names theirs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from bot.artifact_store import ArtifactStore, DirectoryStore, StoredArtifact, collect
from bot.logging import get_logger
from bot.reports.files import write_reports
from bot.results.model import Artifact, ParseError, TestRun
from bot.settings import Settings

#: Looked up where it logs, not at import: a logger cached before logging is configured
#: would keep the defaults (as `providers.http` does).
LOGGER: Final = "herald.reporter"

#: The names `report_test_result` takes, and the file format each writes.
FORMATS: Final = {"markdown": "md", "md": "md", "html": "html", "json": "json"}
#: Links looked up are kept this long; a store's signed links outlive it by far.
URL_TTL_SECONDS: Final = 300.0
URLS_CACHED: Final = 10_000


@dataclass(frozen=True, slots=True)
class PublishedReport:
    """Where a provider put the report: a human sentence and, when it has one, a link."""

    where: str
    url: str | None = None


class Publisher(Protocol):
    """A provider the reporter publishes through (`herald.create_provider`)."""

    name: str

    async def publish(self, run: TestRun) -> PublishedReport: ...


@dataclass(frozen=True, slots=True)
class Report:
    """What `report_test_result` wrote and published."""

    files: dict[str, Path]
    published: PublishedReport | None
    artifacts: tuple[Artifact, ...] = ()


@dataclass(slots=True)
class _Collected:
    stored: list[StoredArtifact] = field(default_factory=list)
    refused: list[ParseError] = field(default_factory=list)


class Reporter:
    def __init__(
        self,
        provider: Publisher | None = None,
        report_dir: str | os.PathLike[str] = "herald-report",
        artifact_dir: str | os.PathLike[str] = ".",
        *,
        store: ArtifactStore | None = None,
        settings: Settings | None = None,
        url_ttl_seconds: float = URL_TTL_SECONDS,
    ) -> None:
        self.provider = provider
        self.report_dir = Path(report_dir)
        self.artifact_dir = Path(artifact_dir)
        self.settings = settings or Settings.from_env()
        self.store: ArtifactStore = store or DirectoryStore.from_settings(self.settings)
        self.url_ttl_seconds = url_ttl_seconds
        self._collected: dict[str, _Collected] = {}
        self._urls: OrderedDict[tuple[str, str], tuple[float, str | None]] = OrderedDict()
        self._logged: set[tuple[str, str]] = set()

    # ---- reports ---------------------------------------------------------------------

    async def report_test_result(
        self, result: TestRun, formats: Sequence[str] = ("markdown", "html", "json")
    ) -> Report:
        """`result`'s reports written to `report_dir` (`report.md`, `.html`, `.json`) and
        published through the provider, with the artifacts collected for its run."""
        chosen = []
        for name in formats:
            fmt = FORMATS.get(name.lower())
            if fmt is None:
                raise ValueError(f"unknown format {name!r}: choose from markdown, html, json")
            chosen.append(fmt)
        collected = self._collected.get(result.id)
        if collected is not None:
            listed = {a.name for a in result.artifacts}
            result.artifacts.extend(Artifact(name=s.name, size=s.size, url=s.url)
                                    for s in collected.stored if s.name not in listed)
            reasons = {(e.source, e.reason) for e in result.errors}
            result.errors.extend(e for e in collected.refused
                                 if (e.source, e.reason) not in reasons)
        written = await asyncio.to_thread(write_reports, self.report_dir, result,
                                          list(dict.fromkeys(chosen)))
        files = {path.suffix.lstrip("."): path for path in written}
        published = await self.provider.publish(result) if self.provider is not None else None
        return Report(files=files, published=published, artifacts=tuple(result.artifacts))

    # ---- artifacts -------------------------------------------------------------------

    async def collect_and_upload_artifacts(
        self, test_run_id: str, patterns: Iterable[str]
    ) -> list[StoredArtifact]:
        """Every file under `artifact_dir` that a pattern (`logs/*.log`, `**/*.png`) names,
        kept in the store under its path; what was stored, with sizes and links. A file
        the store refuses is logged and named in the run's next report."""
        done = await collect(self.store, test_run_id, self.artifact_dir, patterns)
        log = get_logger(LOGGER)
        for refused in done.refused:
            log.warning("artifact not stored", run=test_run_id, artifact=refused.source,
                        error=refused.reason)
        for pattern in done.unmatched:
            log.info("no artifact matches", run=test_run_id, pattern=pattern)
        collected = self._collected.setdefault(test_run_id, _Collected())
        collected.refused.extend(done.refused)
        collected.stored.extend(done.stored)
        for kept in done.stored:
            self._remember((test_run_id, kept.name), kept.url)
        return done.stored

    async def get_artifact_urls(
        self, test_run_id: str, names: Iterable[str]
    ) -> dict[str, str | None]:
        """A link or None for each name, looked up at once (concurrently), kept for
        `url_ttl_seconds`. One name failing is None, logged once, and nothing else."""
        wanted = list(dict.fromkeys(names))
        now = time.monotonic()
        answers: dict[str, str | None] = {}
        missing: list[str] = []
        for name in wanted:
            held = self._urls.get((test_run_id, name))
            if held is not None and held[0] > now:
                answers[name] = held[1]
            else:
                missing.append(name)
        looked_up = await asyncio.gather(*(self._lookup(test_run_id, n) for n in missing))
        answers.update(zip(missing, looked_up, strict=True))
        return {name: answers[name] for name in wanted}

    async def _lookup(self, run_id: str, name: str) -> str | None:
        try:
            url = await self.store.url(run_id, name)
        except Exception as exc:  # one name's trouble is that name's None only
            if (run_id, name) not in self._logged:
                self._logged.add((run_id, name))
                get_logger(LOGGER).warning("no link for an artifact", run=run_id,
                                           artifact=name, error=str(exc) or type(exc).__name__)
            return None  # not kept: the next call asks again
        self._remember((run_id, name), url)
        return url

    def _remember(self, key: tuple[str, str], url: str | None) -> None:
        self._urls[key] = (time.monotonic() + self.url_ttl_seconds, url)
        self._urls.move_to_end(key)
        while len(self._urls) > URLS_CACHED:
            self._urls.popitem(last=False)
