"""The provider contract: what the core asks of a CI system and of a forge, and the errors
providers raise. It lives in `bot`, so that the core depends on no provider; each provider
(`providers.*`) implements it, and the composition root (`bot.composition`) wires them in.

Two parts, following gidgethub's sans-I/O shape:

- `Provider`: a pure webhook parser, a function of (headers, body, secrets), used by the web
  process, which verifies and translates without any network access;
- the I/O roles, objects made once per worker process: a **CI source** (`CISource`: builds,
  artifacts, results, reruns, the latest failed runs of a commit) and a **forge target**
  (`ForgeTarget`: publish a report or an error where the change is reviewed, who may
  retest, comments and reactions). A finished run resolves its `Change` (forge, repository,
  commit, pull/merge requests) and its `ReportOrigin` (which CI run the report is of).
  GitHub Actions, GitLab CI, Bitbucket Pipelines and Azure Pipelines are both roles on one
  system; Jenkins, CircleCI, Travis CI and TeamCity are CI sources whose changes live on
  another system's forge (`bot.forges.change_from_repository_url`).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from bot.events import Comment, Event, Ignored, RunRef
from bot.repo_config import DEFAULT_OPTIONS, PublishOptions
from bot.results.model import TestRun
from bot.settings import ProviderSettings


class ProviderError(Exception):
    """Base of all provider errors; the message is safe to show to a user."""


class InvalidSignature(ProviderError):
    """The delivery is not from who it claims (401)."""


class BadPayload(ProviderError):
    """Verified, but not a body this provider sends (400)."""


class NotConfigured(ProviderError):
    """The provider has no secret or credentials configured (401 for webhooks)."""


class Unsupported(ProviderError):
    """The CI system cannot do this (no rerun API, no artifacts...)."""


class TransientError(ProviderError):
    """Worth retrying later: 5xx, 429, timeouts. `retry_after` in seconds when known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknown(TransientError):
    """A write that may or may not have happened: it reached the server, then the answer
    was lost (a timeout, a reset connection, a 5xx from a proxy).

    Raised only for writes that append (a comment, an annotation batch, a rerun), which
    must never be sent again blindly: the client reads back what the server holds and sends
    only what is missing. A job that gets it retries like any `TransientError`, and the
    retry goes through the same read-back.
    """


class UnknownProvider(LookupError):
    """No provider of that name in this build (or it has no API client)."""


class PermanentError(ProviderError):
    """Retrying will not help: 4xx other than rate limits, missing objects."""


Headers = Mapping[str, str]
"""Request headers. Lookups must be case-insensitive: Starlette's `Headers` is, and pure
callers pass lower-case keys."""


class Provider(abc.ABC):
    """The pure part of a provider. Subclasses set `name` and implement `parse`."""

    name: ClassVar[str]
    #: The content types this provider's webhooks use (checked before verification).
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)

    @abc.abstractmethod
    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        """Verify the delivery against any of `secrets`, then translate it.

        Raises `NotConfigured` when `secrets` is empty, `InvalidSignature` when no secret
        matches, `BadPayload` when the verified body is not what this provider sends.
        No JSON is parsed before the signature holds.
        """

    def detect(self, environ: Mapping[str, str]) -> RunRef | None:
        """Push mode: the run this process is part of, from the CI job's environment."""
        return None


# ---- the I/O side, used by handlers in the worker --------------------------------------


@dataclass(slots=True)
class Job:
    id: str
    name: str
    status: str  # provider's own word: success, failed, ...
    failed: bool = False
    url: str | None = None


@dataclass(slots=True)
class Build:
    ref: RunRef
    status: str  # final state in the provider's own word
    failed: bool
    url: str | None = None
    name: str | None = None
    jobs: list[Job] = field(default_factory=list)
    changes: list[int] = field(default_factory=list)  # PR/MR numbers this run is for
    #: The commit the run built, as the CI system says (the webhook may not have said).
    sha: str | None = None


@dataclass(slots=True)
class RemoteArtifact:
    id: str
    name: str
    size: int | None = None
    url: str | None = None  # where a human can browse or download it
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Published:
    """What a publish created or updated, by the forge's own ids."""

    check_run_id: str | None = None
    comment_id: str | None = None
    status_id: str | None = None
    created: bool = False


@dataclass(slots=True)
class Rerun:
    """What a rerun asked the CI system to do."""

    runs: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    #: Where to watch it, when the rerun is a new run of its own (a new Bitbucket pipeline).
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """Where a run's results are reviewed: one commit of a repository on a forge, and the
    pull/merge requests whose head it is (none for a push to a branch)."""

    #: The forge's provider name: `github`, `gitlab`, `bitbucket`, `azure-devops`.
    forge: str
    #: The forge's own name for the repository (`owner/name`, a GitLab project path...).
    repo: str
    sha: str
    numbers: tuple[int, ...] = ()
    #: False when the CI system cannot say which pull/merge requests build this commit
    #: (CircleCI, a plain Jenkins job): the forge then finds the open ones whose head it
    #: is. True with no numbers means there are none (a push to a branch).
    numbers_known: bool = True
    #: Forge coordinates the CI source already knows (GitHub `installation_id`, GitLab
    #: `project_id`), so the forge need not look them up again.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportOrigin:
    """Which CI run a report is of. It names the check run, the status context and the
    comment marker, so that reports of several CI systems or workflows on one commit never
    overwrite each other, and a late report of an older run never replaces a newer one."""

    run: RunRef
    #: The workflow, pipeline or job name as the CI shows it (`CI`, `build / test`).
    name: str | None = None
    attempt: int = 1
    #: Orders runs of one name: a newer run has a larger one (a GitHub run id, a GitLab
    #: pipeline id, a Jenkins build number); 0 when the CI gives none.
    sequence: int = 0
    #: The run's number as people quote it (`#1873`), for titles.
    number: str | None = None
    url: str | None = None
    #: The CI system said the run failed (a rerun button makes sense).
    failed: bool = False

    @property
    def ci(self) -> str:
        return self.run.provider


@runtime_checkable
class CISource(Protocol):
    """What the report and retest handlers need from a CI system."""

    async def get_build(self, ref: RunRef) -> Build: ...

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        """The change the run is for. `build` is None when it could not be fetched (a job
        giving up early): a CI source on its own forge still knows the change from `ref`,
        another raises `PermanentError`."""
        ...

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin: ...

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        """The run's artifacts, oldest first. Several of one name are attempts of the same
        job (a re-run uploads again): the report reads the newest as the result, and an
        earlier attempt's failures as that job's retries (see `TestRun.absorb_retry`)."""
        ...

    def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        """The artifact's bytes (a zip archive, a gzip file or a raw report), streamed and
        size-capped; the handler sniffs the format."""
        ...

    async def native_results(self, ref: RunRef) -> TestRun | None:
        """Results the CI system parsed itself (GitLab's pipeline test report); None if none."""
        ...

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun: ...

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        """The latest run of each workflow/definition for the change's commit, those that
        failed: what `/retest` reruns."""
        ...


@runtime_checkable
class ReportedRunsSource(Protocol):
    """A CI source that cannot search its runs by commit (Jenkins), or need not (TeamCity:
    the records name the configurations that reported): `/retest` hands it the
    runs Herald recorded reporting on the change's commit, and it says which of them are
    the latest of their job and failed. A source without this method is asked
    `CISource.latest_failed_runs` instead."""

    async def latest_failed_of(self, change: Change, reported: Sequence[RunRef]) -> list[RunRef]:
        ...


@runtime_checkable
class RunSurface(Protocol):
    """A CI source that also shows a one-line result on the run itself (Jenkins' build
    description, TeamCity's build comment), second to the forge's report: the report
    handler calls it after publishing, and a refusal (no permission) costs the forge's
    report nothing."""

    async def describe(self, ref: RunRef, run: TestRun, change: Change) -> None: ...


@runtime_checkable
class FailureAccounting(Protocol):
    """A CI source whose results can miss a failure it knows of (Travis CI: a job that
    failed while no test of it did, or whose results could not be read): once every result
    is read, the report handler lets it add each such failure, named, so that a failed run
    is never reported green."""

    def account_for_failures(self, ref: RunRef, build: Build, run: TestRun) -> None: ...


@runtime_checkable
class ForgeTarget(Protocol):
    """What the handlers need from the place where the change is reviewed."""

    #: One sentence for the polite refusal: who may ask for a retest.
    retest_policy: str

    async def publish(self, change: Change, origin: ReportOrigin, run: TestRun) -> Published:
        """Create or update in place (check run / status, sticky comment): never twice."""
        ...

    async def publish_error(self, change: Change, origin: ReportOrigin, message: str) -> None:
        """Leave the reviewer an answer when a job gives up: what went wrong, how to retry."""
        ...

    async def can_retest(self, repo: str, comment: Comment) -> bool: ...

    async def head_change(self, repo: str, comment: Comment) -> Change | None:
        """The change a comment is on, at its head commit now; None when it has none (a
        closed request without a head, a comment on a commit)."""
        ...

    async def acknowledge(self, repo: str, comment: Comment) -> None:
        """React to the comment at once (👀), so its author knows it was seen."""
        ...

    async def reply(self, repo: str, comment: Comment, body: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RepoFile:
    """A file of a repository as its forge names it: which repository holds it (the
    change's own, or the organisation's `.github` on GitHub), its git blob id (the same
    bytes have the same id at every commit, which is what caches key on) and its size."""

    repo: str
    blob: str
    size: int | None = None


@runtime_checkable
class BaseBranches(Protocol):
    """A forge target that can say which branch a change's pull request targets, for a
    CI system whose webhook does not (Jenkins, CircleCI, Travis CI, TeamCity): the
    comparison with the base (`bot.baseline`) needs it."""

    async def base_of(self, change: Change) -> tuple[str, str | None] | None:
        """(target branch, its commit when the forge says it) of the change's first open
        pull request; None for a change no pull request builds."""
        ...


@runtime_checkable
class RepoFiles(Protocol):
    """A forge target that reads the repository's `.herald.yml` at the head commit and
    applies it (`bot.repo_config`): the report handler reads the file through it, then
    hands `publish` what the file decides. A forge without this role is published to with
    today's behaviour."""

    async def find_file(self, change: Change, path: str) -> RepoFile | None:
        """`path` at the change's commit, without its content; None when it has none."""
        ...

    async def find_default_file(self, change: Change, path: str) -> RepoFile | None:
        """The organisation's default of `path`, for a repository without one; None when
        the forge has no such place or it holds no such file."""
        ...

    async def read_file(self, change: Change, file: RepoFile, *, max_bytes: int) -> bytes:
        """The file's bytes; more than `max_bytes` raises `PermanentError`."""
        ...

    async def publish(
        self, change: Change, origin: ReportOrigin, run: TestRun,
        options: PublishOptions = DEFAULT_OPTIONS,
    ) -> Published: ...


class SecretSource(Protocol):
    """Where a provider's webhook secrets come from: the I/O side of verification, so that
    `Provider.parse` stays a pure function of what it is given.

    Every provider but one uses `HERALD_<PROVIDER>_WEBHOOK_SECRET` (comma-separated for
    rotation; for the senders that cannot sign, Basic credentials and tokens alike).
    Travis CI's is its RSA public key, configured or fetched from its API and cached
    (`providers.travis.keys`)."""

    async def secrets(self, settings: ProviderSettings, http: Any) -> list[bytes]: ...

    async def refresh(self, settings: ProviderSettings, http: Any) -> list[bytes] | None:
        """Fresh secrets after `parse` raised `InvalidSignature`, or None if none can change:
        a fetched key may have been rotated; configured secrets never change this way."""
        ...


@runtime_checkable
class ProviderDirectory(Protocol):
    """The providers this build has, as the core sees them. `bot.composition` hands the
    core `providers.DIRECTORY`; tests may hand it their own."""

    def names(self) -> list[str]: ...

    def parser(self, name: str) -> Provider:
        """The pure webhook parser of `name`; raises `UnknownProvider`."""
        ...

    def client(self, name: str, settings: ProviderSettings, http: Any) -> Any:
        """A new API client of `name` (its CI source and, for forges, forge target);
        raises `UnknownProvider` when it has none, `NotConfigured` without credentials."""
        ...

    def secret_source(self, name: str) -> SecretSource:
        """Where `name`'s webhook secrets come from (one object per process)."""
        ...


class Clients(Protocol):
    """A handler's view of the worker's API clients: the CI source and the forge target
    of a provider, made once per process."""

    def source(self, provider: str) -> CISource: ...

    def forge(self, provider: str) -> ForgeTarget: ...
