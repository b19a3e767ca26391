"""Fakes shared by handler and provider tests: in-memory CI and forge clients that
implement `providers.base.CIClient`/`Forge` and record every call as a readable tuple,
a recording logger, and a `Context` builder. Provider API fakes on loopback live beside
this module (`tests.fakes.github`)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bot.context import Context
from bot.events import Comment, Event, RunRef
from bot.ports import Build, Change, PermanentError, Published, RemoteArtifact, ReportOrigin, Rerun
from bot.results.model import TestRun
from bot.settings import Settings


@dataclass
class RecordingLog:
    """A structlog-shaped logger that keeps (level, event, fields) for assertions."""

    lines: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    bound: dict[str, Any] = field(default_factory=dict)

    def bind(self, **values: Any) -> RecordingLog:
        return RecordingLog(self.lines, {**self.bound, **values})

    def _log(self, level: str, event: str, **values: Any) -> None:
        self.lines.append((level, event, {**self.bound, **values}))

    def debug(self, event: str, **values: Any) -> None:
        self._log("debug", event, **values)

    def info(self, event: str, **values: Any) -> None:
        self._log("info", event, **values)

    def warning(self, event: str, **values: Any) -> None:
        self._log("warning", event, **values)

    def error(self, event: str, **values: Any) -> None:
        self._log("error", event, **values)

    def exception(self, event: str, **values: Any) -> None:
        self._log("error", event, **values)

    def events(self, level: str | None = None) -> list[str]:
        return [event for lvl, event, _ in self.lines if level in (None, lvl)]


@dataclass
class FakeCI:
    """A CI system with fixed builds, artifacts (name → bytes) and native results."""

    artifacts: dict[str, bytes] | list[tuple[str, bytes]] = field(default_factory=dict)
    native: TestRun | None = None
    failures: dict[str, Exception] = field(default_factory=dict)  # method → error to raise
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    #: What `latest_failed_runs` answers: the runs `/retest` reruns.
    failed: list[RunRef] = field(default_factory=list)
    #: The forge the runs' code lives on (the CI's own, for GitHub Actions and GitLab CI).
    forge: str = "github"
    #: run id → the new run a rerun of it starts (a CI that reruns by starting a new run).
    started: dict[str, str] = field(default_factory=dict)

    def _maybe_fail(self, method: str) -> None:
        error = self.failures.get(method)
        if error is not None:
            raise error

    async def get_build(self, ref: RunRef) -> Build:
        self.calls.append(("get_build", ref.run_id))
        self._maybe_fail("get_build")
        return Build(ref=ref, status="failure", failed=True, url=f"https://ci.example/{ref.run_id}")

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        self.calls.append(("list_artifacts", ref.run_id))
        self._maybe_fail("list_artifacts")
        return [
            RemoteArtifact(id=str(i), name=name, size=len(data), url=f"https://ci.example/a/{i}")
            for i, (name, data) in enumerate(self._pairs())
        ]

    def _pairs(self) -> list[tuple[str, bytes]]:
        """`artifacts` as (name, bytes), oldest first; a list of pairs may repeat a name
        (a re-run's upload beside the first attempt's)."""
        if isinstance(self.artifacts, dict):
            return list(self.artifacts.items())
        return list(self.artifacts)

    async def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        self.calls.append(("open_artifact", artifact.name))
        self._maybe_fail(f"open_artifact:{artifact.name}")
        data = self._pairs()[int(artifact.id)][1]
        for start in range(0, len(data), 4096):
            yield data[start : start + 4096]

    async def native_results(self, ref: RunRef) -> TestRun | None:
        self.calls.append(("native_results", ref.run_id))
        return self.native

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        self.calls.append(("rerun", ref.run_id, failed_only))
        self._maybe_fail(f"rerun:{ref.run_id}")
        return Rerun(runs=[ref.run_id], url=self.started.get(ref.run_id))

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        self._maybe_fail("change_of")
        if not ref.sha:
            raise PermanentError(f"run {ref.run_id} has no commit")
        return Change(forge=self.forge, repo=ref.repo, sha=ref.sha,
                      numbers=(ref.change,) if ref.change else ())

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        return ReportOrigin(run=ref, name=ref.extra.get("name"),
                            url=build.url if build else ref.url,
                            failed=build.failed if build else False)

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        self.calls.append(("latest_failed_runs", change.sha))
        return list(self.failed)


@dataclass
class FakeForge:
    """A forge that records publications, replies and reactions."""

    trusted: set[str] = field(default_factory=set)
    #: The head commit `head_change` answers with; None: the change has none.
    head_sha: str | None = "abc123"
    retest_policy: str = "Only people with write access to this repository can retest."
    failures: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    published: list[TestRun] = field(default_factory=list)

    def _maybe_fail(self, method: str) -> None:
        error = self.failures.get(method)
        if error is not None:
            raise error

    async def publish(self, change: Change, origin: ReportOrigin, run: TestRun) -> Published:
        self.calls.append(("publish", origin.run.run_id))
        self._maybe_fail("publish")
        self.published.append(run)
        return Published(check_run_id="1", created=True)

    async def publish_error(self, change: Change, origin: ReportOrigin, message: str) -> None:
        self.calls.append(("publish_error", origin.run.run_id, message))

    async def can_retest(self, repo: str, comment: Comment) -> bool:
        self.calls.append(("can_retest", comment.author))
        return comment.author in self.trusted

    async def head_change(self, repo: str, comment: Comment) -> Change | None:
        self.calls.append(("head_change", comment.change))
        if self.head_sha is None:
            return None
        return Change(forge="github", repo=repo, sha=self.head_sha, numbers=(comment.change,))

    async def acknowledge(self, repo: str, comment: Comment) -> None:
        self.calls.append(("acknowledge", comment.id))

    async def reply(self, repo: str, comment: Comment, body: str) -> None:
        self.calls.append(("reply", body))


@dataclass
class FakeClients:
    """`ctx.clients`: the CI source and the forge target, whatever the provider's name."""

    ci_client: Any
    forge_client: Any

    def source(self, provider: str) -> Any:
        return self.ci_client

    def forge(self, provider: str) -> Any:
        return self.forge_client


class SourceAndForge:
    """`ctx.clients` of a worker with one CI source that is not a forge (Jenkins,
    CircleCI) and one forge's real client."""

    def __init__(self, ci_name: str, ci: Any, forge_name: str, forge: Any) -> None:
        self.by_name = {ci_name: ci, forge_name: forge}
        self.forge_name = forge_name

    def source(self, provider: str) -> Any:
        return self.by_name[provider]

    def forge(self, provider: str) -> Any:
        assert provider == self.forge_name
        return self.by_name[provider]


def context(
    event: Event,
    redis: Any,
    *,
    ci: Any = None,
    forge: Any = None,
    environ: dict[str, str] | None = None,
    job_try: int = 1,
    http: Any = None,
) -> Context:
    return Context(
        event=event,
        settings=Settings.from_env(environ or {}),
        redis=redis,
        http=http,
        log=RecordingLog(),
        clients=FakeClients(ci or FakeCI(), forge or FakeForge()),
        job_try=job_try,
    )


def zipped(members: dict[str, bytes]) -> bytes:
    """A deflated zip archive of `members`, as CI systems serve artifacts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def publish(client: Any, ref: RunRef, run: TestRun, build: Build | None) -> Published:
    """What the report handler does with a provider that is both CI source and forge: the
    run's change and origin from the source, then the forge publishes."""
    change = await client.change_of(ref, build)
    return await client.publish(change, client.origin_of(ref, build), run)  # type: ignore[no-any-return]


async def publish_error(client: Any, ref: RunRef, message: str, build: Build | None = None) -> None:
    """The report handler's give-up answer, as it sends it."""
    change = await client.change_of(ref, build)
    await client.publish_error(change, client.origin_of(ref, build), message)


async def failed_runs(client: Any, repo: str, comment: Comment) -> list[RunRef]:
    """What `/retest` asks a provider that is both forge and CI: the head commit of the
    comment's change, then the latest failed runs for it."""
    change = await client.head_change(repo, comment)
    return [] if change is None else await client.latest_failed_runs(change)  # type: ignore[no-any-return]
