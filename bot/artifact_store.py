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
import glob
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.files import relative_path, signed_url, store_dir
from bot.ports import ProviderError
from bot.results.model import ParseError
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


def matching(base: Path, patterns: Iterable[str]) -> tuple[dict[Path, str], list[str]]:
    """Regular files the patterns (`logs/*.log`, `**/*.png`) name inside `base`, each once
    and in order with its name (its path from `base`), and the patterns that named none.
    A pattern that would leave the folder (absolute, `..`) is a `ValueError`; a link out
    of it is not followed."""
    root = base.resolve()
    found: dict[Path, str] = {}
    unmatched: list[str] = []
    for pattern in patterns:
        if os.path.isabs(pattern) or ".." in Path(pattern).parts:
            raise ValueError(f"artifact pattern {pattern!r} must stay inside {root}")
        before = len(found)
        for match in sorted(glob.glob(pattern, root_dir=root, recursive=True)):
            path = (root / match).resolve()
            if path.is_relative_to(root) and path.is_file():
                found.setdefault(path, path.relative_to(root).as_posix())
        if len(found) == before:
            unmatched.append(pattern)
    return found, unmatched


@dataclass(slots=True)
class Collected:
    """What `collect` did with a run's artifacts."""

    stored: list[StoredArtifact] = field(default_factory=list)
    #: Each file the store would not take, by name and why (the run's report names them).
    refused: list[ParseError] = field(default_factory=list)
    #: Patterns that named no file: a screenshot folder is empty when nothing failed, so
    #: these are said, not counted as unusable input.
    unmatched: list[str] = field(default_factory=list)


async def collect(store: ArtifactStore, run_id: str, base: Path,
                  patterns: Iterable[str]) -> Collected:
    """Every file under `base` a pattern names, put in `store` under its path from `base`.
    A file the store refuses (too large, a name or size the forge will not take, the
    forge failing) costs that file only: it is in `refused`, and the rest are stored."""
    relative_path(run_id, "run id")
    paths, unmatched = await asyncio.to_thread(matching, base, list(patterns))
    done = Collected(unmatched=unmatched)
    for path, name in paths.items():
        try:
            done.stored.append(await store.put(run_id, name, path))
        except (TooLargeToStore, OSError, ValueError, ProviderError) as exc:
            done.refused.append(ParseError(source=name, reason=f"not stored: {exc}"))
    return done


__all__ = ["ArtifactStore", "Collected", "DirectoryStore", "StoredArtifact", "TooLargeToStore",
           "collect", "matching"]
