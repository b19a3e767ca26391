"""What the artifact stores a forge hosts share: names, size caps, one listing per run and
uploads that land once.

    store = GitLabStore(api, project="group/app", max_bytes=512 * MiB)  # a `HostedStore`
    kept = await store.put("run-42", "logs/app.log", Path("build/logs/app.log"))
    await store.url("run-42", "logs/app.log")  # the forge's own link, or None

Each forge (providers/gitlab/store.py, bitbucket/store.py, azure_devops/store.py) says how
a run's file is named there (`stored_name`), how it is sent (`_upload`) and how it is
found again (`_lookup`, or the run's listing, `_list`, for a `ListedStore`); the rest is
here:

- names: the run id and the name are checked by `bot.files.relative_path`, then made flat
  with `flat_name`, which keeps letters, digits, `.` and `-` and writes every other byte as
  `_XX` (hex, `_` itself included), so two different names never meet on one stored name;
- size: a file over the smaller of `HERALD_ARTIFACT_MAX_BYTES` and the forge's own limit
  is refused by name (`TooLargeToStore`) before a byte is sent; the body is streamed from
  disk in chunks and stops at the size it was checked at, so a file that grows while it
  is sent cannot go over;
- one put, one file: a forge that keeps every upload of one name (GitLab, Azure DevOps)
  is sent the upload once; after a lost answer the run's files are listed again, and
  the upload is sent again only when no file of that name, size and (where the forge
  says it) SHA-256 is there (`providers.writes.append_once`);
- links: a `ListedStore` reads the run's listing once for all its names (concurrent
  calls for one run share the one request in flight) and keeps it `LISTING_TTL_SECONDS`
  (a put forgets it); Bitbucket, whose Downloads are one flat list per repository, asks
  for each name alone instead of reading every run's files.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from bot.artifact_store import StoredArtifact, TooLargeToStore
from bot.files import relative_path
from providers.writes import append_once

#: A run's listing is read again after this long (the reporter keeps its links longer).
LISTING_TTL_SECONDS: Final = 30.0
CHUNK_BYTES: Final = 1024 * 1024
_KEPT: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def flat_name(*parts: str) -> str:
    """`parts` as one name of letters, digits, `.`, `-` and `_`: each part escaped (`/` is
    `_2f`, `_` is `_5f`), the parts joined by `__`, which no escaped part contains."""
    return "__".join(
        "".join(chr(b) if b in _KEPT else f"_{b:02x}" for b in part.encode()) for part in parts
    )


@dataclass(frozen=True, slots=True)
class Listed:
    """One file the forge holds for a run, as its listing says."""

    name: str  # as stored (flat)
    size: int
    url: str
    sha256: str | None = None


def file_chunks(path: Path, size: int) -> Callable[[], AsyncIterator[bytes]]:
    """A body factory for `HttpSession.upload`: the first `size` bytes of `path`, a chunk at
    a time read off the event loop; a file that shrank is an error, never a short upload."""

    async def chunks() -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            left = size
            while left > 0:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK_BYTES, left))
                if not chunk:
                    raise OSError(f"{path} shrank while it was sent")
                left -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    return chunks


def _sha256(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        left = size
        while left > 0 and (chunk := handle.read(min(CHUNK_BYTES, left))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class HostedStore(abc.ABC):
    """An `ArtifactStore` on a forge's own file hosting (see the module docstring)."""

    #: How messages name the place ("GitLab's generic packages").
    label: str
    #: The forge's own limit on one file, in bytes.
    api_max_bytes: int

    def __init__(self, max_bytes: int, *, owned: httpx.AsyncClient | None = None) -> None:
        self.max_bytes = min(max_bytes, self.api_max_bytes)
        #: An HTTP client the store made for itself (none was passed), closed by `aclose`.
        self._owned = owned

    async def aclose(self) -> None:
        """Close what the store made for itself; a client passed in stays open."""
        if self._owned is not None:
            await self._owned.aclose()
            self._owned = None

    # ---- what each forge says -------------------------------------------------------

    @abc.abstractmethod
    def stored_name(self, run_id: str, name: str) -> str:
        """The flat name `name` of run `run_id` has on the forge."""

    @abc.abstractmethod
    async def _upload(self, run_id: str, stored: str, source: Path, size: int) -> Listed:
        """Send `size` bytes of `source` as `stored`; what the forge now holds."""

    @abc.abstractmethod
    async def _lookup(self, run_id: str, stored: str) -> Listed | None:
        """The file stored as `stored` for run `run_id`, if the forge holds one."""

    async def _put_once(self, run_id: str, stored: str, source: Path, size: int) -> Listed:
        """The upload, for a forge where sending one name again replaces the file."""
        return await self._upload(run_id, stored, source, size)

    # ---- the ArtifactStore ----------------------------------------------------------

    def _names(self, run_id: str, name: str) -> str:
        relative_path(run_id, "run id")
        relative_path(name, "artifact name")
        return self.stored_name(run_id, name)

    async def put(self, run_id: str, name: str, source: Path) -> StoredArtifact:
        stored = self._names(run_id, name)
        size = (await asyncio.to_thread(source.stat)).st_size
        if size > self.max_bytes:
            raise TooLargeToStore(
                f"{source} is {size:,} bytes, over the {self.max_bytes:,} bytes {self.label} "
                "take here (HERALD_ARTIFACT_MAX_BYTES, or the forge's own limit)")
        listed = await self._put_once(run_id, stored, source, size)
        return StoredArtifact(name=name, size=size, url=listed.url)

    async def url(self, run_id: str, name: str) -> str | None:
        found = await self._lookup(run_id, self._names(run_id, name))
        return found.url if found is not None else None


class ListedStore(HostedStore):
    """A store whose forge keeps every upload of one name (GitLab, Azure DevOps) and lists
    a run's files in one answer: uploads are sent once (read back after a lost answer),
    links come from the run's listing, read once for all the names asked together."""

    def __init__(self, max_bytes: int, *, listing_ttl: float = LISTING_TTL_SECONDS,
                 owned: httpx.AsyncClient | None = None) -> None:
        super().__init__(max_bytes, owned=owned)
        self.listing_ttl = listing_ttl
        self._listings: dict[str, tuple[float, asyncio.Future[dict[str, Listed]]]] = {}

    @abc.abstractmethod
    async def _list(self, run_id: str) -> dict[str, Listed]:
        """Every file the forge holds for run `run_id`, by stored name (of several with
        one name, the one a download of that name gets)."""

    async def _put_once(self, run_id: str, stored: str, source: Path, size: int) -> Listed:
        try:
            return await append_once(
                lambda: self._upload(run_id, stored, source, size),
                lambda: self._landed(run_id, stored, source, size),
            )
        finally:
            self._listings.pop(run_id, None)

    async def _landed(self, run_id: str, stored: str, source: Path, size: int) -> Listed | None:
        """The file an upload whose answer was lost left behind, if it is there whole."""
        self._listings.pop(run_id, None)
        found = (await self._list(run_id)).get(stored)
        if found is None or found.size != size:
            return None
        if found.sha256 is not None and found.sha256 != await asyncio.to_thread(
                _sha256, source, size):
            return None
        return found

    async def _lookup(self, run_id: str, stored: str) -> Listed | None:
        return (await self._listing(run_id)).get(stored)

    async def _listing(self, run_id: str) -> dict[str, Listed]:
        """The run's listing: one request in flight for every caller, kept a while; a
        failed one is not kept, so the next call asks again."""
        now = time.monotonic()
        held = self._listings.get(run_id)
        if held is None or held[0] <= now:
            future: asyncio.Future[dict[str, Listed]] = asyncio.ensure_future(self._list(run_id))
            held = (now + self.listing_ttl, future)
            self._listings[run_id] = held
        future = held[1]
        try:
            return await asyncio.shield(future)
        except Exception:
            if self._listings.get(run_id) is held:
                del self._listings[run_id]
            raise


__all__ = ["HostedStore", "Listed", "ListedStore", "file_chunks", "flat_name"]
