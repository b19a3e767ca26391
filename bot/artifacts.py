"""Safe artifact handling: stream a downloaded artifact's reports into a parser, bounded.

An artifact is whatever a CI system hands back: a zip archive (GitHub Actions, GitLab job
artifacts), a gzip file, or one raw report. `read_artifact` spools the download to a
temporary file with a size cap checked while downloading (zip needs seek), sniffs the
format by its first bytes, and feeds each report it finds to a `ReportSink` (the parsers'
`Collector`) as a stream, never as one big string.

Nothing in an archive is trusted:

- sizes are counted while inflating, never read from headers. One budget of inflated
  bytes spans every member, every nesting level and every artifact of one report job
  (`ArchiveBudget`); a member's compression ratio is its bytes inflated so far over the
  compressed bytes actually read from its archive for it so far, so a central directory
  that overstates a member's compressed size buys it nothing. A member stops the moment it
  passes either;
- the zip's entry count and central directory size are read from the end record before
  `zipfile` builds its member list, so a million-entry archive costs nothing;
- overlapping entries (several central-directory records pointing into the same
  compressed bytes, the "better zip bomb") are detected from the local headers, which the
  `zipfile` of Python 3.11 does not do itself;
- member names with `..`, absolute paths, drive letters, backslashes or NUL are refused,
  as are symlinks and encrypted members; directories are skipped;
- zips inside zips (and gzip inside either) are opened up to a small depth.

Members that are not reports are skipped cheaply: only their first few KiB are inflated
for `looks_like_report`. Each refused member becomes a `ParseError` naming it and why
(`refused: ...`); the other members still count. Refusals are returned, not raised: one bad
member never hides the good ones.

A member refused while a parser reads it is dropped whole: the parser is unwound (its
partial state, an lxml tree or half a JSON document, is freed at once) and none of the
cases it read before the cap count. What that could hide: failures in the part read
before the cap are not listed, only the refusal naming the member is. Keeping them would
hide more: the counts of a cut member look like those of a whole file, with nothing read
after the cut, and whether a cut keeps anything would differ by format (each parser
handles a read error its own way). A refusal is never a plain success either way.

Inflated bytes are streamed, never held here: a nested zip is spooled to a temporary file,
a report goes to its parser through a 64 KiB buffer. What a job holds in memory is what
its parsers keep (docs/limits.md).
"""

from __future__ import annotations

import asyncio
import fnmatch
import gc
import gzip
import io
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO, Final, Protocol

from bot.results.model import ParseError
from bot.settings import Settings

#: Artifact names (case-insensitive globs) read when HERALD_<PROVIDER>_ARTIFACT_PATTERNS is
#: unset: the names CI templates and test tools give test results. Coverage reports are not
#: test results and stay out.
DEFAULT_ARTIFACT_PATTERNS: Final = (
    "*test*", "*junit*", "*report*", "*result*", "*surefire*", "*failsafe*", "*xunit*",
    "*nunit*", "*trx*",
)


def artifact_patterns(settings: Settings, provider: str) -> tuple[str, ...]:
    """HERALD_<PROVIDER>_ARTIFACT_PATTERNS, or the section's own default, or the defaults."""
    configured = settings.provider(provider).get("artifact_patterns")
    if configured is None:
        # A section may have a default of its own (the Local provider reads every file).
        section = getattr(settings.config, provider.replace("-", "_"), None)
        configured = getattr(section, "artifact_patterns", None)
    if configured is None:
        return DEFAULT_ARTIFACT_PATTERNS
    return tuple(p.strip() for p in configured.split(",") if p.strip())


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether `name` matches any of the case-insensitive globs."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


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
#: A member refused after inflating this much has its parser's memory freed at once.
_COLLECT_AFTER_BYTES = 8 * 1024 * 1024


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
    #: Bytes inflated across all members, nested archives and artifacts of one report job
    #: (and of one archive `herald render` reads). Real test-report artifacts inflate to
    #: tens of MB; 512 MiB leaves room for a large monorepo's while bounding the disk a
    #: nested zip is spooled to and the text a parser could be made to hold
    #: (docs/limits.md has the sum over a worker's concurrent jobs).
    max_total_bytes: int = 512 * 1024 * 1024
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
        config = settings.config
        return cls(
            max_download_bytes=config.artifact_max_bytes,
            max_total_bytes=config.artifact_max_total_bytes,
            max_entries=config.artifact_max_entries,
            max_depth=config.artifact_max_depth,
            max_ratio=config.artifact_max_ratio,
            ratio_grace_bytes=config.artifact_ratio_grace_bytes,
        )


class Refused(OSError):
    """One input was refused; the message says why, in terms a user can act on.

    An `OSError`, so that a parser reading the stream records it as a read failure of
    that member (the parsers' `Collector` does) rather than crashing."""


class ArtifactTooLarge(Refused):
    pass


class _MemberRefused(BaseException):
    """Raised into a parser reading a member that passed a cap, and caught by the walker.

    A `BaseException`, so that no parser takes it for a read error: each parser records
    those its own way, some keeping the cases read so far. This unwinds the parser
    whatever its format, dropping its partial state, and the walker names the member."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Sizes:
    """What one `read_artifact` or `read_file` call measured (logged by the report
    handler). `inflated` is what it took from the job's budget: the caller subtracts it."""

    downloaded: int
    inflated: int
    reports: int


class ArchiveBudget:
    """Inflated bytes one report job may still read, across all its artifacts.

    Made once per job (`handlers.report.collect`) and handed to each `read_artifact`,
    which passes `read_file` the remaining count as a plain number and subtracts the
    `Sizes.inflated` it reports back: nothing mutable crosses that call, so `read_file`
    can run in another process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def spend(self, sizes: Sizes) -> None:
        self.used += sizes.inflated


class _Budget:
    """What is left of the job's budget inside one `read_file` call, shared by every
    member and level of that artifact."""

    def __init__(self, remaining: int, job_limit: int) -> None:
        self.remaining = remaining
        self.job_limit = job_limit
        self.used = 0
        self.exhausted = remaining <= 0

    def take(self, count: int) -> str | None:
        """Why `count` more bytes are refused, or None."""
        self.used += count
        if self.used > self.remaining:
            self.exhausted = True
            return over_budget(self.job_limit)
        return None


def over_budget(job_limit: int) -> str:
    return f"over the budget of {job_limit:,} inflated bytes (HERALD_ARTIFACT_MAX_TOTAL_BYTES)"


def budget_spent(job_limit: int) -> str:
    return f"not read: the budget of {job_limit:,} inflated bytes is spent"


class _CountingReader(io.RawIOBase):
    """A read-only stream over `inner` that counts the bytes it yields and raises
    `Refused` as soon as the job's budget or this member's ratio cap is passed (a
    `_MemberRefused` once a parser reads it: see `unwinding`)."""

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
        # The compressed bytes behind what this reader yields, as counted so far: the
        # bytes read from the archive file for this zip member, or the live count of the
        # layer below a gzip. Never a size a header states.
        self._compressed = compressed
        self._limits = limits
        self.count = 0
        # Why this stream was refused. A reason, not the exception raised: an exception
        # kept here would hold, through its traceback, the frames of the parser that read
        # it, and in a cycle with this reader that only a full collection frees. That is
        # how refused members once stayed in memory.
        self.refusal: str | None = None
        self.unwinding = False

    def push_back(self, data: bytes) -> None:
        """Serve `data` (just read, for sniffing) again, without counting it twice."""
        self._prefix = data + self._prefix
        self.count -= len(data)
        self._budget.used -= len(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.refusal is not None:
            raise self._raised(self.refusal)
        want = len(buffer)
        if self._prefix:
            data, self._prefix = self._prefix[:want], self._prefix[want:]
        else:
            below: str | None = None
            try:
                data = self._inner.read(want)
            except Refused as refusal:  # the layer below a gzip passed the budget
                below = str(refusal)
            if below is not None:
                # Raised outside the handler, so that it carries no chain to that refusal.
                self.refusal = below
                raise self._raised(below)
        if not data:
            return 0
        self._account(len(data))
        buffer[: len(data)] = data
        return len(data)

    def _account(self, count: int) -> None:
        self.count += count
        limits = self._limits
        reason: str | None = None
        if self._compressed is not None and self.count > limits.ratio_grace_bytes:
            if self.count > self._compressed() * limits.max_ratio:
                reason = f"inflates more than {limits.max_ratio}:1 (a zip bomb?)"
        reason = self._budget.take(count) if reason is None else reason
        if reason is not None:
            # Remember it: a layer above (gzip, a parser) may swallow it, the walker must not.
            self.refusal = reason
            raise self._raised(reason)

    def _raised(self, reason: str) -> BaseException:
        # A fresh exception each time: one raised twice would chain its tracebacks.
        return _MemberRefused(reason) if self.unwinding else Refused(reason)


class _ArchiveFile:
    """The seekable file a zip is read from, as `zipfile` sees it, counting every byte
    `zipfile` reads: the count's growth while one member is read is the compressed bytes
    that member actually consumed, whatever its headers say.

    Counting what `zipfile` reads rather than inflating members here keeps its handling
    of zip64 extras, data descriptors, CRCs and methods. `zipfile` reads at most one
    request (64 KiB) ahead of what it has inflated, so the count errs by that much, on
    the generous side, and only within `ratio_grace_bytes`' reach of a member's start."""

    def __init__(self, fp: IO[bytes]) -> None:
        self._fp = fp
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._fp.read(size)
        self.count += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        return self._fp.seek(offset, whence)

    def tell(self) -> int:
        return self._fp.tell()

    def seekable(self) -> bool:
        return True


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
        remaining: int,
    ) -> None:
        self.sink = sink
        self.limits = limits
        self.is_report = is_report
        self.budget = _Budget(remaining, limits.max_total_bytes)
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
        reader.unwinding = True
        unwound = False
        try:
            self.sink.add_stream(source, _buffered(reader))  # type: ignore[arg-type]
        except _MemberRefused as stop:
            self.refuse(source, stop.reason)
            unwound = True
        except Refused as refusal:  # a sink that reads without a parser's care
            self.refuse(source, str(refusal))
        self.reports += 1
        # Out of the handler: the exception's traceback still holds the parser's frames.
        if unwound and reader.count >= _COLLECT_AFTER_BYTES:
            _free_unwound_parser()

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
            counted = _ArchiveFile(fp)
            archive = zipfile.ZipFile(counted)  # type: ignore[arg-type]
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
            for at, info in enumerate(infos):
                if self.budget.exhausted:
                    self._not_read(source, infos[at:])
                    return
                self._member(source, archive, counted, info, depth=depth)

    def _not_read(self, source: str, infos: list[zipfile.ZipInfo]) -> None:
        """One error for the members left when the budget ran out, so none is skipped
        without a word, and a million of them cost one line."""
        files = [info for info in infos if not info.is_dir()]
        if files:
            first = files[0].filename
            more = f" and {len(files) - 1:,} more" if len(files) > 1 else ""
            self.refuse(
                source,
                f"{first!r}{more} {budget_spent(self.budget.job_limit)}",
            )

    def _member(
        self,
        source: str,
        archive: zipfile.ZipFile,
        counted: _ArchiveFile,
        info: zipfile.ZipInfo,
        *,
        depth: int,
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
            # Opening read the local header; what is read from here on is the member's.
            start = counted.count
            self.stream(
                name, member, depth=depth + 1, compressed=lambda: counted.count - start
            )


def _free_unwound_parser() -> None:
    """Free what the parser of a refused member held, now rather than some day.

    An lxml parser stopped mid-document is a reference cycle (parser, context, document),
    and the parsers move what a parse allocated to the oldest generation, which Python
    collects rarely: each refused member's text (up to the ratio grace, 16 MiB, or the
    rest of the budget) stayed in memory, and a nested bomb's twelve added up. A full
    collection costs ~0.2 s per million live objects; it runs only after a member that
    inflated `_COLLECT_AFTER_BYTES`, so at most budget / that many times in one job."""
    gc.collect()


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
    remaining: int | None = None,
) -> tuple[list[ParseError], Sizes]:
    """Feed the reports in the seekable file `fp` (artifact `name`) to `sink`.

    `remaining` is what the job has left of its inflated-byte budget (a plain number, so
    this can run in another process); None is the whole `limits.max_total_bytes`.
    `Sizes.inflated` says how much of it this call used. Synchronous and CPU-bound;
    `read_artifact` runs it in a thread.
    """
    limits = limits or ArtifactLimits()
    if remaining is None:
        remaining = limits.max_total_bytes
    walker = _Walker(sink, limits, is_report or _default_is_report(), remaining)
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
    budget: ArchiveBudget | None = None,
) -> tuple[list[ParseError], Sizes]:
    """Download `chunks` (size-capped) and feed the reports inside to `sink`.

    `budget` is the job's, shared by all its artifacts and charged with what this one
    inflated; None gives this artifact a budget of its own. Returns the refusals as
    `ParseError`s (the sink records its own parse errors) and the sizes measured.
    Transport errors from `chunks` (the provider's `TransientError`...) propagate: only
    the content is judged here.
    """
    limits = limits or ArtifactLimits()
    if budget is None:
        budget = ArchiveBudget(limits.max_total_bytes)
    if budget.remaining <= 0:
        # Not even downloaded: nothing of it could be read.
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
        reason = f"refused: {budget_spent(budget.limit)}"
        return [ParseError(source=name, reason=reason)], Sizes(0, 0, 0)
    try:
        fp = await spool(chunks, limits.max_download_bytes)
    except ArtifactTooLarge as refusal:
        return [ParseError(source=name, reason=f"refused: {refusal}")], Sizes(0, 0, 0)
    with fp:
        errors, sizes = await asyncio.to_thread(
            read_file, sink, name, fp, limits, is_report=is_report, remaining=budget.remaining
        )
    budget.spend(sizes)
    return errors, sizes


def _named_like_a_report(source: str) -> bool:
    from bot.results.parsers import REPORT_SUFFIXES

    return source.lower().endswith(REPORT_SUFFIXES)


def _default_is_report() -> Callable[[bytes], bool]:
    # Imported on use: the parsers package is heavier than this module needs at import.
    from bot.results import parsers

    sniff: Callable[[bytes], bool] = parsers.looks_like_report
    return sniff
