"""What every provider implements: a pure webhook parser and, separately, an I/O client.

The split follows gidgethub's sans-I/O shape: `Provider.parse` is a pure function of
(headers, body, secrets) so that the web process verifies and translates without any
network access, while `CIClient`/`Forge` objects live in the worker, made once per process.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from bot.events import Comment, Event, Ignored, RunRef
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

    async def secrets(self, settings: ProviderSettings, http: Any) -> list[bytes]:
        """The secrets `parse` checks against, read where this provider keeps them.

        Every provider but one uses `HERALD_<PROVIDER>_WEBHOOK_SECRET` (comma-separated
        for rotation; for the senders that cannot sign, Basic credentials and tokens alike).
        Travis CI overrides this to return its RSA public key (configured, or fetched from
        its API with `http` and cached).
        """
        return [bytes(s) for s in settings.webhook_secrets()]

    async def refresh_secrets(self, settings: ProviderSettings, http: Any) -> list[bytes] | None:
        """Fresh secrets after `parse` raised `InvalidSignature`, or None if none can change.

        A provider that fetches its verification key (Travis CI) refetches it here, so a
        rotated key is picked up at once: the caller then parses the delivery once more
        with the result. Configured secrets never change this way, hence None by default.
        """
        return None

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


@runtime_checkable
class CIClient(Protocol):
    """What the report and retest handlers need from a CI system."""

    async def get_build(self, ref: RunRef) -> Build: ...

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


@runtime_checkable
class Forge(Protocol):
    """What the handlers need from the place where the change is reviewed."""

    #: One sentence for the polite refusal: who may ask for a retest.
    retest_policy: str

    async def publish(self, ref: RunRef, run: TestRun, build: Build) -> Published:
        """Create or update in place (check run / status, sticky comment): never twice."""
        ...

    async def publish_error(self, ref: RunRef, message: str) -> None:
        """Leave the reviewer an answer when a job gives up: what went wrong, how to retry."""
        ...

    async def can_retest(self, repo: str, comment: Comment) -> bool: ...

    async def failed_runs(self, repo: str, comment: Comment) -> list[RunRef]:
        """The latest failed runs for the change's head commit, to rerun."""
        ...

    async def acknowledge(self, repo: str, comment: Comment) -> None:
        """React at once (GitHub 👀 reaction, GitLab award emoji)."""
        ...

    async def reply(self, repo: str, comment: Comment, body: str) -> None: ...
