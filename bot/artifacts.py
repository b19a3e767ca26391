"""Safe artifact handling: stream a downloaded artifact's reports into a parser, bounded.

An artifact is whatever a CI system hands back: a zip archive (GitHub Actions, GitLab job
artifacts), a gzip file, or one raw report. `read_artifact` spools the download to a
temporary file with a size cap checked while downloading (zip needs seek), sniffs the
format by its first bytes, and feeds each report it finds to a `ReportSink` (the parsers'
`Collector`) as a stream, never as one big string.

Nothing in an archive is trusted:

- sizes are counted while inflating, never read from headers; a member stops the moment
  it passes the artifact's total budget or its own compression-ratio cap;
- the zip's entry count and central directory size are read from the end record before
  `zipfile` builds its member list, so a million-entry archive costs nothing;
- overlapping entries (several central-directory records pointing into the same
  compressed bytes, the "better zip bomb") are detected from the local headers, which the
  `zipfile` of Python 3.11 does not do itself;
- member names with `..`, absolute paths, drive letters, backslashes or NUL are refused,
  as are symlinks and encrypted members; directories are skipped;
- zips inside zips (and gzip inside either) are opened up to a small depth.

Members that are not reports are skipped cheaply: only their first few KiB are inflated
for `looks_like_report`. Each refused member becomes a `ParseError` naming it and why; the
other members still count. Refusals are returned, not raised: one bad member never hides
the good ones.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO, BinaryIO, Protocol

from bot.results.model import ParseError
from bot.settings import Settings

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
GZIP_MAGIC = b"\x1f\x8b"
#: How a zip or gzip file starts, whatever its name.
ARCHIVE_MAGIC = (ZIP_MAGIC, EMPTY_ZIP_MAGIC, GZIP_MAGIC)
#: How much of a member is inflated to decide whether it is a report at all.
SNIFF_BYTES = 4096
_CHUNK = 64 * 1024

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_MAX_COMMENT = 0xFFFF
#: A central directory record is 46 bytes plus its name and extras; names and extras
#: beyond this average mean the directory is padded to exhaust memory.
_MAX_DIRECTORY_BYTES_PER_ENTRY = 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ReportSink(Protocol):
    """Where reports go: `bot.results.parsers.Collector` (never raises, records errors)."""

    def add_stream(self, source: str, stream: BinaryIO) -> None: ...


@dataclass(frozen=True, slots=True)
class ArtifactLimits:
    """Caps for one artifact. Each is `HERALD_ARTIFACT_<NAME>` in the environment."""

    #: Bytes downloaded (the compressed artifact as the CI serves it).
    max_download_bytes: int = 512 * 1024 * 1024
    #: Bytes inflated across all members and nested archives of one artifact.
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    #: Members of one archive, directories included.
    max_entries: int = 10_000
    #: Archive levels: 1 = the artifact itself, 2 = zips inside it, and so on.
    max_depth: int = 2
    #: Inflated bytes per compressed byte, counted while inflating...
    max_ratio: int = 200
    #: ...once a member has produced more than this (small files compress very well).
    ratio_grace_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactLimits:
        default = cls()
        return cls(
            max_download_bytes=settings.whole_number(
                "artifact_max_bytes", default.max_download_bytes
            ),
            max_total_bytes=settings.whole_number(
                "artifact_max_total_bytes", default.max_total_bytes
            ),
            max_entries=settings.whole_number("artifact_max_entries", default.max_entries),
            max_depth=settings.whole_number("artifact_max_depth", default.max_depth),
            max_ratio=settings.whole_number("artifact_max_ratio", default.max_ratio),
            ratio_grace_bytes=settings.whole_number(
                "artifact_ratio_grace_bytes", default.ratio_grace_bytes, minimum=0
            ),
        )


class Refused(OSError):
    """One input was refused; the message says why, in terms a user can act on.

    An `OSError`, so that a parser reading the stream records it as a read failure of
    that member (the parsers' `Collector` does) rather than crashing."""


class ArtifactTooLarge(Refused):
    pass


@dataclass(frozen=True, slots=True)
class Sizes:
    """What one `read_artifact` call measured (logged by the report handler)."""

    downloaded: int
    inflated: int
    reports: int


class _Budget:
    """Inflated bytes left for the whole artifact, shared by every member and level."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.exhausted = False

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            self.exhausted = True
            raise Refused(f"artifact inflates to more than {self.limit:,} bytes")


class _CountingReader(io.RawIOBase):
    """A read-only stream over `inner` that counts the bytes it yields and raises
    `Refused` as soon as the artifact budget or this member's ratio cap is passed."""

    def __init__(
        self,
        inner: Readable,
        budget: _Budget,
        *,
        compressed: Callable[[], int] | None,
        limits: ArtifactLimits,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._budget = budget
        self._prefix = b""
        # The compressed bytes behind what this reader yields, as counted so far: a zip
        # member's stored size, or the live count of the layer below a gzip.
        self._compressed = compressed
        self._limits = limits
        self.count = 0
        self.refusal: Refused | None = None

    def push_back(self, data: bytes) -> None:
        """Serve `data` (just read, for sniffing) again, without counting it twice."""
        self._prefix = data + self._prefix
        self.count -= len(data)
        self._budget.used -= len(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.refusal is not None:
            raise self.refusal
        want = len(buffer)
        if self._prefix:
            data, self._prefix = self._prefix[:want], self._prefix[want:]
        else:
            data = self._inner.read(want)
        if not data:
            return 0
        self._account(len(data))
        buffer[: len(data)] = data
        return len(data)

    def _account(self, count: int) -> None:
        self.count += count
        try:
            limits = self._limits
            if self._compressed is not None and self.count > limits.ratio_grace_bytes:
                if self.count > self._compressed() * limits.max_ratio:
                    raise Refused(f"inflates more than {limits.max_ratio}:1 (a zip bomb?)")
            self._budget.take(count)
        except Refused as refusal:
            # Remember it: a parser may swallow the exception, the caller must not.
            self.refusal = refusal
            raise


def _buffered(raw: _CountingReader) -> io.BufferedReader:
    return io.BufferedReader(raw, buffer_size=_CHUNK)


def unsafe_member_name(name: str) -> str | None:
    """Why a zip member name must not be used, or None when it is a plain relative path."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/"):
        return "absolute path"
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        return "drive letter in name"
    if any(part == ".." for part in name.split("/")):
        return "'..' in path"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def _central_directory_shape(fp: IO[bytes]) -> tuple[int, int]:
    """(entries, directory bytes) from the end record, read before zipfile trusts them."""
    fp.seek(0, io.SEEK_END)
    size = fp.tell()
    tail_size = min(size, _EOCD.size + _MAX_COMMENT)
    fp.seek(size - tail_size)
    tail = fp.read(tail_size)
    at = tail.rfind(EMPTY_ZIP_MAGIC)
    if at < 0 or at + _EOCD.size > len(tail):
        raise Refused("not a readable zip archive (no end of central directory)")
    fields = _EOCD.unpack_from(tail, at)
    entries, directory_size = fields[4], fields[5]
    locator_at = at - _EOCD64_LOCATOR.size
    if (entries == 0xFFFF or directory_size == 0xFFFFFFFF) and locator_at >= 0:
        locator = _EOCD64_LOCATOR.unpack_from(tail, locator_at)
        if locator[0] == b"PK\x06\x07" and locator[2] + _EOCD64.size <= size:
            fp.seek(locator[2])
            record = _EOCD64.unpack(fp.read(_EOCD64.size))
            if record[0] == b"PK\x06\x06":
                entries, directory_size = record[6], record[7]
    return entries, directory_size


def _check_no_overlap(fp: IO[bytes], infos: list[zipfile.ZipInfo]) -> None:
    """Refuse archives whose members share compressed bytes (overlapping-entry bombs)."""
    fp.seek(0, io.SEEK_END)
    size = fp.tell()
    end = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset < end:
            raise Refused("overlapping entries (a zip bomb?)")
        fp.seek(info.header_offset)
        header = fp.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size or header[:4] != ZIP_MAGIC:
            raise Refused(f"member {info.filename!r} has no local header (truncated zip?)")
        fields = _LOCAL_HEADER.unpack(header)
        name_length, extra_length = fields[9], fields[10]
        end = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        end += info.compress_size
        if end > size:
            raise Refused(f"member {info.filename!r} runs past the end (truncated zip?)")


class _Walker:
    """Walks one artifact: formats, nesting, budgets; reports go to the sink."""

    def __init__(
        self,
        sink: ReportSink,
        limits: ArtifactLimits,
        is_report: Callable[[bytes], bool],
    ) -> None:
        self.sink = sink
        self.limits = limits
        self.is_report = is_report
        self.budget = _Budget(limits.max_total_bytes)
        self.errors: list[ParseError] = []
        self.reports = 0

    def refuse(self, source: str, reason: str) -> None:
        self.errors.append(ParseError(source=source, reason=f"refused: {reason}"))

    # -- one stream of unknown format ---------------------------------------------------

    def stream(
        self,
        source: str,
        inner: Readable,
        *,
        depth: int,
        compressed: Callable[[], int] | None,
        top_level: bool = False,
    ) -> None:
        """Sniff `inner` and hand it on: zip, gzip, report, or skip."""
        reader = _CountingReader(inner, self.budget, compressed=compressed, limits=self.limits)
        try:
            head = _read_at_most(reader, SNIFF_BYTES)
        except Refused as refusal:
            self.refuse(source, str(refusal))
            return
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            self.refuse(source, f"unreadable ({exc})")
            return
        reader.push_back(head)
        if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
            self._nested_zip(source, reader, depth=depth)
        elif head.startswith(GZIP_MAGIC):
            self._gzip(source, reader, depth=depth)
        elif self.is_report(head) or _named_like_a_report(source):
            # A member named like a report that is none (a settings.xml, a package.json) goes
            # to the sink too, which names it and why: nothing is dropped without a word.
            self._report(source, reader)
        elif top_level:
            self.refuse(source, "not a zip archive, a gzip file or a test report")

    def _report(self, source: str, reader: _CountingReader) -> None:
        try:
            self.sink.add_stream(source, _buffered(reader))  # type: ignore[arg-type]
        except Refused as refusal:
            # The sink let it through; a sink that records read errors itself has already
            # named this member and the reason, and must not get it twice.
            self.refuse(source, str(refusal))
        self.reports += 1

    def _gzip(self, source: str, reader: _CountingReader, *, depth: int) -> None:
        if depth > self.limits.max_depth:
            self.refuse(source, f"nested more than {self.limits.max_depth} archives deep")
            return
        inflated = gzip.GzipFile(fileobj=_buffered(reader), mode="rb")
        name = source[:-3] if source.endswith(".gz") else source
        # The gzip's input is counted by `reader` as it is pulled; its output is counted
        # again, with the ratio taken against the input pulled so far.
        self.stream(name, inflated, depth=depth + 1, compressed=lambda: reader.count)

    def _nested_zip(self, source: str, reader: _CountingReader, *, depth: int) -> None:
        if depth > self.limits.max_depth:
            self.refuse(source, f"nested more than {self.limits.max_depth} archives deep")
            return
        with tempfile.TemporaryFile() as spool:
            try:
                while chunk := reader.read(_CHUNK):
                    spool.write(chunk)
            except Refused as refusal:
                self.refuse(source, str(refusal))
                return
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                self.refuse(source, f"unreadable ({exc})")
                return
            self.zip(source, spool, depth=depth)

    # -- a zip archive on a seekable file ------------------------------------------------

    def zip(self, source: str, fp: IO[bytes], *, depth: int) -> None:
        limits = self.limits
        try:
            entries, directory_size = _central_directory_shape(fp)
            if entries > limits.max_entries:
                raise Refused(f"{entries:,} entries, more than {limits.max_entries:,}")
            if directory_size > limits.max_entries * _MAX_DIRECTORY_BYTES_PER_ENTRY:
                raise Refused(f"central directory of {directory_size:,} bytes is too large")
            fp.seek(0)
            archive = zipfile.ZipFile(fp)
        except Refused as refusal:
            self.refuse(source, str(refusal))
            return
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error) as exc:
            self.refuse(source, f"not a readable zip archive ({exc})")
            return
        with archive:
            infos = archive.infolist()
            try:
                if len(infos) > limits.max_entries:
                    raise Refused(f"{len(infos):,} entries, more than {limits.max_entries:,}")
                _check_no_overlap(fp, infos)
            except Refused as refusal:
                self.refuse(source, str(refusal))
                return
            for info in infos:
                if self.budget.exhausted:
                    return
                self._member(source, archive, info, depth=depth)

    def _member(
        self, source: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, depth: int
    ) -> None:
        name = f"{source}/{info.filename}"
        if info.is_dir():
            return
        reason = unsafe_member_name(info.filename)
        if reason is None and _is_symlink(info):
            reason = "symbolic link"
        if reason is None and info.flag_bits & 0x1:
            reason = "encrypted"
        if reason is not None:
            self.refuse(name, reason)
            return
        try:
            member = archive.open(info)
        except (zipfile.BadZipFile, NotImplementedError, OSError, ValueError) as exc:
            self.refuse(name, f"unreadable ({exc})")
            return
        with member:
            stored = info.compress_size
            self.stream(name, member, depth=depth + 1, compressed=lambda: stored)


def _read_at_most(stream: Readable, size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left > 0:
        data = stream.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


async def spool(chunks: AsyncIterator[bytes], max_bytes: int) -> IO[bytes]:
    """Write a download to an anonymous temporary file, refusing it past `max_bytes`.

    The caller closes the file. The cap is checked per chunk, so at most one chunk more
    than the cap is ever written.
    """
    target = tempfile.TemporaryFile()
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise ArtifactTooLarge(f"download larger than {max_bytes:,} bytes")
            target.write(chunk)
    except BaseException:
        target.close()
        # Stop the download too (an async generator holding an HTTP response, say).
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
        raise
    target.flush()
    target.seek(0)
    return target


def read_file(
    sink: ReportSink,
    name: str,
    fp: IO[bytes],
    limits: ArtifactLimits | None = None,
    *,
    is_report: Callable[[bytes], bool] | None = None,
) -> tuple[list[ParseError], Sizes]:
    """Feed the reports in the seekable file `fp` (artifact `name`) to `sink`.

    Synchronous and CPU-bound; `read_artifact` runs it in a thread.
    """
    limits = limits or ArtifactLimits()
    walker = _Walker(sink, limits, is_report or _default_is_report())
    fp.seek(0, io.SEEK_END)
    downloaded = fp.tell()
    fp.seek(0)
    head = fp.read(len(ZIP_MAGIC))
    fp.seek(0)
    if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        walker.zip(name, fp, depth=1)
    else:
        # A gzip or a raw report: the whole download is its compressed input.
        walker.stream(name, fp, depth=1, compressed=lambda: downloaded, top_level=True)
    return walker.errors, Sizes(downloaded, walker.budget.used, walker.reports)


async def read_artifact(
    sink: ReportSink,
    name: str,
    chunks: AsyncIterator[bytes],
    limits: ArtifactLimits | None = None,
    *,
    is_report: Callable[[bytes], bool] | None = None,
) -> tuple[list[ParseError], Sizes]:
    """Download `chunks` (size-capped) and feed the reports inside to `sink`.

    Returns the refusals as `ParseError`s (the sink records its own parse errors) and the
    sizes measured. Transport errors from `chunks` (the provider's `TransientError`...)
    propagate: only the content is judged here.
    """
    limits = limits or ArtifactLimits()
    try:
        fp = await spool(chunks, limits.max_download_bytes)
    except ArtifactTooLarge as refusal:
        return [ParseError(source=name, reason=f"refused: {refusal}")], Sizes(0, 0, 0)
    with fp:
        return await asyncio.to_thread(read_file, sink, name, fp, limits, is_report=is_report)


def _named_like_a_report(source: str) -> bool:
    from bot.results.parsers import REPORT_SUFFIXES

    return source.lower().endswith(REPORT_SUFFIXES)


def _default_is_report() -> Callable[[bytes], bool]:
    # Imported on use: the parsers package is heavier than this module needs at import.
    from bot.results import parsers

    sniff: Callable[[bytes], bool] = parsers.looks_like_report
    return sniff
