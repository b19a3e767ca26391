"""The Local provider: a run is a folder of result files, and its report is a folder too.

    HERALD_LOCAL_ROOT=/srv/ci-results          # runs: /srv/ci-results/<run>/...
    HERALD_LOCAL_REPORTS_DIR=/srv/herald       # reports: /srv/herald/<run>/report.md ...

Both roles of `bot.ports` on a file system, for what has no CI API and no forge: a build
box that leaves its reports in a folder, `herald render`-like runs in the worker, the
examples, and tests that involve no forge.

- **CI source.** A run id is a folder's path under the root (`nightly/2026-12-04`); its
  artifacts are the files in it, at any depth, each named by its path in the folder. So
  `linux/junit.xml` and `macos/junit.xml` are two legs, never two attempts of one. Every
  file counts (the default artifact pattern is `*`): one that is no test report is named in
  the report with its reason instead of being passed over. What is never read, and why:
  hidden files and folders (`.git`, an editor's `.swp`) and the manifest. A symbolic link
  is listed, and refused by name when it leads out of the run's folder.
- **The manifest**, `herald-run.json` in the run's folder, optional: `name`, `number`,
  `status`, `failed`, `sha`, `repository` (a clone URL: the report then goes to that
  forge, as Jenkins' builds do), `pull_requests`, `url`, `sequence`. A manifest that is
  not that is refused by name, never half-read.
- **Report target** (`forge` `local`, for a run whose manifest names no repository): the
  reports are `report.md`, `report.html` and `report.json` under the reports folder at the
  run's path, each replaced whole (`bot.reports.files`): a redelivery rewrites, never adds.

No webhook: a folder cannot sign a delivery, and an endpoint that reads the paths a
request names would be a way into the disk. Links to the files are served by Herald's
web app behind signed, expiring URLs when `HERALD_PUBLIC_URL` and
`HERALD_URL_SIGNING_KEY` are set (`bot.files`), `file:` URLs otherwise.

A folder cannot be run again, so `/retest` has nothing to rerun here (`Unsupported`, which
the retest handler names), and there are no comments to answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Final

from bot.artifacts import ArtifactLimits
from bot.events import Comment, RunRef
from bot.files import relative_path, signed_url
from bot.forges import forge_of_url
from bot.ports import (
    Build,
    Change,
    NotConfigured,
    PermanentError,
    Published,
    RemoteArtifact,
    ReportOrigin,
    Rerun,
    Unsupported,
)
from bot.reports.files import write_reports, write_text_atomically
from bot.results.model import TestRun
from bot.settings import ProviderSettings, Settings

NAME: Final = "local"
MANIFEST: Final = "herald-run.json"
#: A manifest is a few lines; anything this large is not one.
MANIFEST_MAX_BYTES: Final = 64 * 1024
#: Read per step: large enough that a 512 MiB file is a few hundred thread hops.
CHUNK_BYTES: Final = 1024 * 1024
#: `status` words that mean the run failed, when the manifest does not say `failed`.
FAILED_WORDS: Final = frozenset({"failed", "failure", "error", "errored", "broken"})
ERROR_FILE: Final = "error.md"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a run's `herald-run.json` says; every field optional."""

    name: str | None = None
    number: str | None = None
    status: str | None = None
    failed: bool | None = None
    sha: str | None = None
    repository: str | None = None
    pull_requests: tuple[int, ...] | None = None
    url: str | None = None
    sequence: int = 0

    @classmethod
    def from_json(cls, data: object, where: str) -> Manifest:
        if not isinstance(data, dict):
            raise PermanentError(f"{where}: a manifest is a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            # A misspelt `repository` read as absent would report in the wrong place.
            raise PermanentError(f"{where}: unknown field {unknown[0]!r}")
        values: dict[str, Any] = {}
        for key in ("name", "status", "sha", "repository", "url"):
            value = data.get(key)
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise PermanentError(f"{where}: {key!r} must be a non-empty string")
            values[key] = value.strip() if isinstance(value, str) else None
        number = data.get("number")
        if number is not None:
            if isinstance(number, bool) or not isinstance(number, (str, int)):
                raise PermanentError(f"{where}: 'number' must be a string or a whole number")
            values["number"] = str(number)
        failed = data.get("failed")
        if failed is not None and not isinstance(failed, bool):
            raise PermanentError(f"{where}: 'failed' must be true or false")
        values["failed"] = failed
        numbers = data.get("pull_requests")
        if numbers is not None:
            if not isinstance(numbers, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in numbers
            ):
                raise PermanentError(f"{where}: 'pull_requests' must be a list of numbers")
            values["pull_requests"] = tuple(numbers)
        sequence = data.get("sequence", 0)
        if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
            raise PermanentError(f"{where}: 'sequence' must be a whole number")
        values["sequence"] = sequence
        return cls(**values)

    @property
    def run_failed(self) -> bool:
        if self.failed is not None:
            return self.failed
        return (self.status or "").lower() in FAILED_WORDS


def run_path(run_id: str) -> PurePosixPath:
    """`run_id` as a relative path of plain names, or `PermanentError`: no `..`, no
    absolute path, no hidden part, nothing a path could escape the root with."""
    try:
        return relative_path(run_id, "run")
    except ValueError as exc:
        raise PermanentError(f"{exc} (a run is a folder's path under HERALD_LOCAL_ROOT)"
                             ) from None


class LocalRuns:
    """The Local provider's client: its CI source and its report target."""

    retest_policy = "Runs read from a folder cannot be run again: rerun the build that wrote it."

    def __init__(self, root: Path, reports: Path, settings: Settings,
                 limits: ArtifactLimits | None = None) -> None:
        self.root = root.resolve()
        self.reports = reports
        self.settings = settings
        self.limits = limits or ArtifactLimits.from_settings(settings)

    # ---- where a run is --------------------------------------------------------------

    def folder(self, ref: RunRef) -> Path:
        """The run's folder, which must be a folder inside the root once links resolve."""
        relative = run_path(ref.run_id)
        folder = (self.root / relative).resolve()
        if not folder.is_relative_to(self.root):
            raise PermanentError(f"run {ref.run_id!r} leads out of HERALD_LOCAL_ROOT")
        if not folder.is_dir():
            raise PermanentError(f"run {ref.run_id!r}: no such folder under HERALD_LOCAL_ROOT")
        return folder

    def manifest(self, ref: RunRef) -> Manifest:
        path = self.folder(ref) / MANIFEST
        where = f"{ref.run_id}/{MANIFEST}"
        if not path.exists():
            return Manifest()
        with _open_regular(path, where) as fp:
            data = fp.read(MANIFEST_MAX_BYTES + 1)
        if len(data) > MANIFEST_MAX_BYTES:
            raise PermanentError(f"{where}: larger than {MANIFEST_MAX_BYTES:,} bytes")
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PermanentError(f"{where}: not JSON ({exc})") from None
        return Manifest.from_json(parsed, where)

    # ---- the CI source ---------------------------------------------------------------

    async def get_build(self, ref: RunRef) -> Build:
        manifest = self.manifest(ref)
        return Build(
            ref=ref,
            status=manifest.status or ref.status or "completed",
            failed=manifest.run_failed,
            url=manifest.url or self.folder(ref).as_uri(),
            name=manifest.name or ref.run_id,
            changes=list(manifest.pull_requests or ()),
            sha=manifest.sha or ref.sha,
        )

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        try:
            manifest = self.manifest(ref)
        except PermanentError:
            if build is not None:
                raise
            # Giving up on a run whose folder or manifest could not be read: the answer
            # goes where a local run's reports go, since the forge it names is unknown.
            return Change(forge=NAME, repo=ref.repo, sha=ref.sha or ref.run_id)
        sha = manifest.sha or ref.sha
        if manifest.repository is None:
            return Change(forge=NAME, repo=ref.repo, sha=sha or ref.run_id)
        if not sha:
            raise PermanentError(
                f"run {ref.run_id!r} names the repository {manifest.repository} but no 'sha'"
            )
        repository = forge_of_url(manifest.repository, self.settings)
        if repository is None:
            raise PermanentError(
                f"run {ref.run_id!r} names {manifest.repository}, on no forge Herald is "
                "configured for"
            )
        numbers = manifest.pull_requests
        # Without `pull_requests` the forge finds the open ones whose head the commit is.
        return Change(forge=repository.forge, repo=repository.repo, sha=sha,
                      numbers=numbers or (), numbers_known=numbers is not None)

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        try:
            manifest = self.manifest(ref)
        except PermanentError:
            manifest = Manifest()  # the give-up answer still needs a name
        return ReportOrigin(
            run=ref,
            name=manifest.name or ref.run_id,
            sequence=manifest.sequence,
            number=manifest.number,
            url=build.url if build else manifest.url,
            failed=build.failed if build else manifest.run_failed,
        )

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        """Every file of the run's folder but the hidden ones and the manifest, by path."""
        folder = self.folder(ref)
        found: list[RemoteArtifact] = []
        for path in _files(folder):
            relative = path.relative_to(folder).as_posix()
            if relative == MANIFEST:
                continue
            if len(found) >= self.limits.max_entries:
                raise PermanentError(
                    f"run {ref.run_id!r} holds more than {self.limits.max_entries:,} files "
                    "(HERALD_ARTIFACT_MAX_ENTRIES)"
                )
            try:
                size: int | None = path.lstat().st_size
            except OSError:
                size = None
            url = signed_url(self.settings, f"{NAME}/{ref.run_id}/{relative}")
            found.append(RemoteArtifact(id=relative, name=relative, size=size,
                                        url=url or path.as_uri()))
        return found

    async def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        folder = self.folder(ref)
        path = (folder / run_path(artifact.id)).resolve()
        if not path.is_relative_to(folder):
            raise PermanentError(f"{artifact.name} links out of the run's folder: not read")
        cap = self.limits.max_download_bytes
        fp = _open_regular(path, artifact.name)
        try:
            read = 0
            while True:
                chunk = await asyncio.to_thread(fp.read, CHUNK_BYTES)
                if not chunk:
                    return
                read += len(chunk)
                if read > cap:
                    raise PermanentError(
                        f"{artifact.name} is larger than {cap:,} bytes "
                        "(HERALD_ARTIFACT_MAX_BYTES)"
                    )
                yield chunk
        finally:
            fp.close()

    async def native_results(self, ref: RunRef) -> TestRun | None:
        return None

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        raise Unsupported(f"run {ref.run_id!r} is a folder: rerun the build that wrote it")

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        return []

    # ---- the report target -----------------------------------------------------------

    def report_folder(self, origin: ReportOrigin) -> Path:
        return self.reports / run_path(origin.run.run_id)

    async def publish(self, change: Change, origin: ReportOrigin, run: TestRun) -> Published:
        out = self.report_folder(origin)
        created = not (out / "report.json").exists()
        try:
            await asyncio.to_thread(write_reports, out, run)
            (out / ERROR_FILE).unlink(missing_ok=True)  # superseded by a report
        except OSError as exc:
            raise PermanentError(f"cannot write the reports to {out}: {exc.strerror or exc}"
                                 ) from None
        return Published(status_id=str(out), created=created)

    async def publish_error(self, change: Change, origin: ReportOrigin, message: str) -> None:
        out = self.report_folder(origin)
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomically(out / ERROR_FILE, [f"# {origin.name or origin.run.run_id}\n\n",
                                                     message, "\n"])
        except OSError as exc:
            raise PermanentError(f"cannot write to {out}: {exc.strerror or exc}") from None

    async def can_retest(self, repo: str, comment: Comment) -> bool:
        return False

    async def head_change(self, repo: str, comment: Comment) -> Change | None:
        return None

    async def acknowledge(self, repo: str, comment: Comment) -> None:
        raise Unsupported("the Local provider has no comments to answer")

    async def reply(self, repo: str, comment: Comment, body: str) -> None:
        raise Unsupported("the Local provider has no comments to answer")


def _open_regular(path: Path, name: str) -> BinaryIO:
    """`path` opened for reading when it is a regular file. Opened without blocking: a
    named pipe left in a run's folder would otherwise hang the opening thread for good."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise PermanentError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PermanentError(f"{name} is not a regular file: not read")
    return os.fdopen(fd, "rb")


def _files(folder: Path) -> Iterator[Path]:
    """Files under `folder`, in path order, hidden ones left out; links are listed (and
    judged when opened) but never followed into other folders."""
    for top, folders, names in os.walk(folder, followlinks=False):
        base = Path(top)
        visible = sorted(f for f in folders if not f.startswith("."))
        # A link to a folder is not walked into (it could loop, or lead anywhere); listed
        # as a file, it is named in the report as not read instead of vanishing.
        folders[:] = [f for f in visible if not (base / f).is_symlink()]
        linked = [f for f in visible if (base / f).is_symlink()]
        for name in sorted([*names, *linked]):
            if not name.startswith("."):
                yield base / name


def create_client(settings: ProviderSettings, http: Any = None) -> LocalRuns:
    """The worker's Local client. Raises `NotConfigured` without `HERALD_LOCAL_ROOT`."""
    whole = Settings.from_env(settings.environ)
    config = whole.config.local
    if config.root is None:
        raise NotConfigured("the Local provider is not configured: set HERALD_LOCAL_ROOT")
    reports = config.reports_dir or whole.state_dir / "reports"
    return LocalRuns(config.root, reports, whole)


def local_run(run_id: str, repo: str = NAME, sha: str | None = None) -> RunRef:
    """The reference of the run in folder `run_id`."""
    run_path(run_id)
    return RunRef(provider=NAME, repo=repo, run_id=run_id, sha=sha)


__all__ = ["MANIFEST", "NAME", "LocalRuns", "Manifest", "create_client", "local_run",
           "run_path"]

