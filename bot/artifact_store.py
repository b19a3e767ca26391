"""Where collected artifacts are kept, and the links to them.

    store = DirectoryStore.from_settings(settings)
    kept = await store.put("run-42", "junit.xml", Path("build/junit.xml"))  # StoredArtifact
    await store.url("run-42", "junit.xml")   # a signed /files/store/... link, or None

`ArtifactStore` is the interface (a directory today; an S3-compatible bucket fits the
same two calls). `DirectoryStore` keeps `<dir>/<run>/<name>`: each file is copied to a
temporary name beside its place and renamed there, so a reader never sees half a file
and storing it again replaces it; a file over `HERALD_ARTIFACT_MAX_BYTES` is refused by
name. Its links are the signed, expiring `/files/store/<run>/<name>` URLs of `bot.files`
when Herald's web app serves them (`HERALD_PUBLIC_URL`, `HERALD_URL_SIGNING_KEY`),
`file:` URLs otherwise.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.files import relative_path, signed_url, store_dir
from bot.settings import Settings


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    name: str
    size: int
    url: str


class TooLargeToStore(ValueError):
    """A file over the store's size cap: refused by name, never cut."""


class ArtifactStore(Protocol):
    async def put(self, run_id: str, name: str, source: Path) -> StoredArtifact: ...

    async def url(self, run_id: str, name: str) -> str | None:
        """A link to the stored artifact, or None when there is none."""
        ...


class DirectoryStore:
    def __init__(self, root: Path, settings: Settings, max_bytes: int) -> None:
        self.root = root
        self.settings = settings
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> DirectoryStore:
        return cls(store_dir(settings), settings, settings.config.artifact_max_bytes)

    def _path(self, run_id: str, name: str) -> Path:
        return self.root / relative_path(run_id, "run id") / relative_path(name, "artifact name")

    def _link(self, run_id: str, name: str, path: Path) -> str:
        return signed_url(self.settings, f"store/{run_id}/{name}") or path.resolve().as_uri()

    async def put(self, run_id: str, name: str, source: Path) -> StoredArtifact:
        target = self._path(run_id, name)
        size = await asyncio.to_thread(self._copy, source, target)
        return StoredArtifact(name=name, size=size, url=self._link(run_id, name, target))

    def _copy(self, source: Path, target: Path) -> int:
        size = source.stat().st_size
        if size > self.max_bytes:
            raise TooLargeToStore(
                f"{source} is larger than {self.max_bytes:,} bytes (HERALD_ARTIFACT_MAX_BYTES)")
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with open(source, "rb") as reader, open(handle, "wb") as writer:
                copied = 0
                while chunk := reader.read(1024 * 1024):
                    copied += len(chunk)
                    if copied > self.max_bytes:  # it grew while being copied
                        raise TooLargeToStore(f"{source} is larger than {self.max_bytes:,} "
                                              "bytes (HERALD_ARTIFACT_MAX_BYTES)")
                    writer.write(chunk)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return copied

    async def url(self, run_id: str, name: str) -> str | None:
        path = self._path(run_id, name)
        if not await asyncio.to_thread(path.is_file):
            return None
        return self._link(run_id, name, path)


__all__ = ["ArtifactStore", "DirectoryStore", "StoredArtifact", "TooLargeToStore"]
