"""Reading `.herald.yml` through the forge at the head commit, cached in Redis by blob id.

Key layout (under `herald:`, each with a TTL; see `bot.store` for the rest):

- `herald:repoconf:at:{forge}:{repo}:{sha}`: which file applies at that commit, as JSON
  (`{"repo", "blob", "size"}`, or `{}` for none). A commit's own file never changes, so
  it is kept `AT_TTL_SECONDS`; "no file" and an organisation default are kept only
  `MISSING_TTL_SECONDS`, because the organisation's `.github` repository moves on.
- `herald:repoconf:blob:{forge}:{repo}:{blob}`: the file's bytes (at most
  `bot.repo_config.MAX_FILE_BYTES`), `BLOB_TTL_SECONDS`. The same bytes have the same
  blob id at every commit, so a push that leaves the file alone costs no read of it.

A forge error while reading never costs the report: it goes out with the defaults and
says the file could not be read (`Outcome.notices`). The error is not retried here: the
report matters more than the configuration, and the next run reads again.
"""

from __future__ import annotations

import json
from typing import Any, Final

from redis.asyncio import Redis

from bot.logging import get_logger
from bot.ports import (
    Change,
    ForgeTarget,
    ProviderError,
    Published,
    RepoFile,
    RepoFiles,
    ReportOrigin,
)
from bot.repo_config import FILE_NAME, MAX_FILE_BYTES, Outcome, outcome_of, publish_options
from bot.results.model import TestRun
from bot.store import key

AT_TTL_SECONDS: Final = 24 * 3600
MISSING_TTL_SECONDS: Final = 300
BLOB_TTL_SECONDS: Final = 7 * 24 * 3600

log = get_logger("herald.repo_config")


def _at_key(change: Change) -> str:
    return key("repoconf", "at", change.forge, change.repo, change.sha)


def _blob_key(forge: str, file: RepoFile) -> str:
    return key("repoconf", "blob", forge, file.repo, file.blob)


async def _which_file(redis: Redis[bytes], forge: RepoFiles, change: Change) -> RepoFile | None:
    cached = await redis.get(_at_key(change))
    if cached is not None:
        held: dict[str, Any] = json.loads(cached)
        return RepoFile(**held) if held else None
    file = await forge.find_file(change, FILE_NAME)
    ttl = AT_TTL_SECONDS
    if file is None:
        file = await forge.find_default_file(change, FILE_NAME)
        ttl = MISSING_TTL_SECONDS
    value = {} if file is None else {"repo": file.repo, "blob": file.blob, "size": file.size}
    await redis.set(_at_key(change), json.dumps(value), ex=ttl)
    return file


async def _bytes_of(redis: Redis[bytes], forge: RepoFiles, change: Change, file: RepoFile) -> bytes:
    name = _blob_key(change.forge, file)
    cached = await redis.get(name)
    if cached is not None:
        return bytes(cached)
    data = await forge.read_file(change, file, max_bytes=MAX_FILE_BYTES)
    await redis.set(name, data, ex=BLOB_TTL_SECONDS)
    return data


async def read_repo_config(redis: Redis[bytes], forge: ForgeTarget | RepoFiles,
                           change: Change) -> Outcome:
    """The configuration a report on `change` uses, and what the report must say of it:
    the defaults where the forge cannot read the file (Bitbucket, Azure DevOps)."""
    if not isinstance(forge, RepoFiles):
        return Outcome()
    try:
        file = await _which_file(redis, forge, change)
        if file is None:
            return Outcome()
        if file.size is not None and file.size > MAX_FILE_BYTES:
            # Told without reading it: the forge said how large it is.
            return Outcome(notices=(
                f"{FILE_NAME} is {file.size:,} bytes; at most {MAX_FILE_BYTES:,} are read; "
                "the defaults were used",
            ))
        data = await _bytes_of(redis, forge, change, file)
    except ProviderError as exc:
        log.warning("could not read the repository's configuration", repo=change.repo,
                    error=str(exc))
        return Outcome(notices=(f"{FILE_NAME} could not be read ({exc}); "
                                "the defaults were used",))
    source = "repository" if file.repo == change.repo else "organisation"
    return outcome_of(data, source=source)


async def publish_configured(
    forge: ForgeTarget, change: Change, origin: ReportOrigin, run: TestRun, configured: Outcome
) -> Published:
    """`forge.publish`, with what the repository's `.herald.yml` decides (`configured`)
    where the forge reads that file; a forge that does not is published to as ever. Every
    report of a run (one run's, a commit's coalesced one) publishes through here."""
    if isinstance(forge, RepoFiles):
        return await forge.publish(change, origin, run,
                                   publish_options(configured, run.comparison))
    return await forge.publish(change, origin, run)
