"""Test report parsers: JUnit XML (every common dialect), NUnit 3, xUnit.net v2 and TRX.

The format is chosen by content (the root element), never by file name. Parsing streams
with lxml's pull parser and keeps memory flat whatever the file size: each case is read at
its end tag and its element freed at once; captured output is kept only for failing cases,
and every kept text is cut to `text_limit` characters.

Safety: entities are never expanded (a document that declares any is refused before it is
parsed), no DTD or network access, and libxml2's default limits all stay on (huge_tree is
never set): 256 levels of nesting, 50,000 bytes per name, 10 MB per attribute value or text
node. Text and CDATA longer than that are not refused but cut by the byte filter
(`_input.text_runs_cut`, 1 MiB per run), so memory stays bounded whatever one text holds.
The one exception: UTF-16/32 files, which that filter cannot scan by bytes, have only
libxml2's limits, and its push parser buffers a CDATA section whole before refusing it.

Dirty input is repaired rather than refused: characters XML 1.0 forbids (ANSI colour codes,
NUL) are removed, invalid UTF-8 becomes U+FFFD, odd attribute values ("2,120.532", "NaN",
"") become usable numbers. Clean files, nearly all of them, go to libxml2 untouched; a file
it rejects, for any reason, is read again through the byte filter (seekable streams; a
one-way stream is filtered from the start), so the common case pays nothing for the repair.

What the repairs and caps could hide, never a status: a cut text hides the rest of that
output or trace (the report says how much was cut); a dropped control character or a
U+FFFD hides that character; a comment or processing instruction is never read. A file
past libxml2's limits (a 10 MB attribute value, a 50,000-byte name, 257 levels) is
refused by name and reason, with the cases read before the problem kept.

A broken file (truncated, corrupt half way) raises `ReportError`; the cases read before the
break ride along on `ReportError.partial`, and `Collector` keeps them *and* records the
error, so nothing a user sent is lost silently.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import io
import os
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from lxml import etree

from bot.results.model import DEFAULT_TEXT_LIMIT, Origin, ParseError, TestRun

from ._base import FormatParser, ReportError, StreamFormat
from ._input import (
    SNIFF_LIMIT,
    TEXT_RUN_LIMIT,
    TooManyAttributes,
    cleaned,
    filter_mode,
    read_chunks,
    sniff,
    text_runs_cut,
)
from .ctrf import CtrfFormat
from .dart import DartJson
from .gotest import GoTestJson
from .jest import JestJson
from .junit import JUnitParser
from .mocha import MochaJson
from .nunit import NUnitParser
from .nunit2 import NUnit2Parser
from .rspec import RSpecJson
from .tap import TapFormat
from .trx import TrxParser
from .xunit import XunitParser

__all__ = [
    "DEFAULT_TEXT_LIMIT",
    "REPORT_SUFFIXES",
    "STREAM_FORMATS",
    "Collector",
    "ReportError",
    "StreamFormat",
    "collect",
    "expand_paths",
    "looks_like_report",
    "parse_file",
    "parse_stream",
]

#: Root element (local name) -> parser.
FORMATS: dict[str, type[FormatParser]] = {
    "testsuites": JUnitParser,
    "testsuite": JUnitParser,
    "test-run": NUnitParser,
    "test-results": NUnit2Parser,
    "assemblies": XunitParser,
    "assembly": XunitParser,
    "TestRun": TrxParser,
}

#: Formats that are not XML, tried in this order on a file's first bytes.
STREAM_FORMATS: tuple[type[StreamFormat], ...] = (
    JestJson, MochaJson, GoTestJson, DartJson, RSpecJson, CtrfFormat, TapFormat
)

#: Files a directory walk reads. Each one that turns out not to be a report is named with
#: the reason; files with other endings (Surefire's .txt summaries, logs) are not inputs.
REPORT_SUFFIXES = (".xml", ".trx", ".json", ".jsonl", ".ndjson", ".tap")



class _ReadAgain(Exception):
    """The first, fast attempt could not read this file as it is; the filter may."""


#: libxml2 messages for what no filter repairs: reading again would only repeat them.
_FINAL_MARKERS = ("amplification", "Excessive depth")


def looks_like_report(first_bytes: bytes) -> bool:
    """Whether a file starting with `first_bytes` may be a test report we read.

    True for a known root element, and for an XML prolog that has not reached its root yet
    (the file itself will tell); False for logs, images, archives, HTML and other XML.
    """
    prolog = sniff(first_bytes)
    if not prolog.xml:
        return _stream_format(first_bytes) is not None
    if prolog.root is None or not prolog.complete:
        return True
    return prolog.local_root in FORMATS


def _stream_format(first: bytes) -> type[StreamFormat] | None:
    for candidate in STREAM_FORMATS:
        if candidate.detect(first):
            return candidate
    return None


def parse_file(path: str | os.PathLike[str], **kw: int) -> TestRun:
    """Parse the report at `path`; `ReportError` names the path when it cannot be read."""
    source = os.fspath(path)
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise ReportError(source, f"cannot open: {exc.strerror or exc}") from exc
    with stream:
        return parse_stream(source, stream, **kw)


def parse_stream(
    source: str, stream: BinaryIO, *, text_limit: int = DEFAULT_TEXT_LIMIT
) -> TestRun:
    """Parse one report from a binary stream (a file, a zip member, a socket body)."""
    start = _position(stream)
    try:
        first = _read_prolog(stream)
        prolog = sniff(first)
        if prolog.blank:
            raise ReportError(source, "empty file")
        if not prolog.xml:
            stream_format = _stream_format(first)
            if stream_format is None:
                raise ReportError(source, _not_xml(first))
            if start is not None:
                stream.seek(start)
            else:
                stream = io.BufferedReader(_Replay(first, stream))
            with _cyclic_gc_paused():
                return stream_format.parse(source, stream, text_limit)
        if prolog.declares_entities:
            raise ReportError(
                source,
                "refused: the document declares XML entities (<!ENTITY>), which test "
                "reports never need and which can expand to gigabytes or read local files",
            )
        if prolog.root is None:
            raise ReportError(
                source, f"not XML: no root element in the first {SNIFF_LIMIT // 1024} KB"
            )
        parser_class = FORMATS.get(prolog.local_root or "")
        if parser_class is None:
            raise ReportError(source, f"not a test report: root element <{prolog.root}>")
        if prolog.encoding_mismatch:
            raise ReportError(
                source,
                f"wrong encoding: declared {prolog.encoding!r}, but the bytes are 8-bit text",
            )
        mode = filter_mode(prolog.encoding)
        if start is None:
            # Cannot read it twice: clean every byte on the way in.
            chunks = read_chunks(stream, first)
            return _parse(source, parser_class, chunks, text_limit, mode, repair=True)
        # Most files are clean: libxml2 reads the bytes as they are (long texts cut). Only a
        # file it stumbles on is read again, through the filter for forbidden characters.
        try:
            chunks = read_chunks(stream, first)
            return _parse(source, parser_class, chunks, text_limit, mode, repair=False)
        except _ReadAgain:
            stream.seek(start)
            chunks = read_chunks(stream, b"")
            return _parse(source, parser_class, chunks, text_limit, mode, repair=True)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ReportError(source, f"cannot read: {exc}") from exc


class _Replay(io.RawIOBase):
    """A one-way stream read again from its start: the bytes already sniffed, then the rest."""

    def __init__(self, first: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._first = memoryview(first)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._first:
            count = min(len(buffer), len(self._first))
            buffer[:count] = self._first[:count]
            self._first = self._first[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _position(stream: BinaryIO) -> int | None:
    try:
        return stream.tell() if stream.seekable() else None
    except (OSError, AttributeError, ValueError):
        return None


def _read_prolog(stream: BinaryIO) -> bytes:
    """The first bytes of `stream`, enough to see its root element (up to SNIFF_LIMIT)."""
    data = stream.read(64 * 1024)
    while data and len(data) < SNIFF_LIMIT:
        prolog = sniff(data)
        if prolog.complete and not prolog.blank:
            break
        more = stream.read(64 * 1024)
        if not more:
            break
        data += more
    return data


def _not_xml(first: bytes) -> str:
    start = first.lstrip()[:16]
    if _binary(first[:512]):
        return f"not a test report: binary data (starts with {start!r})"
    return f"not a test report: starts with {start.decode('utf-8', errors='replace')!r}"


def _binary(sample: bytes) -> bool:
    """Control characters other than whitespace, or bytes that are not UTF-8 (a character
    cut at the end of the sample aside), mean an image, an archive or the like."""
    if any(b < 0x20 and b not in (0x09, 0x0A, 0x0D) for b in sample):
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 3
    return False


def _parse(
    source: str,
    parser_class: type[FormatParser],
    chunks: Iterator[bytes],
    text_limit: int,
    mode: str,
    *,
    repair: bool,
) -> TestRun:
    """Stream `chunks` through libxml2 into `parser_class`, with long texts cut (see
    `_input.text_runs_cut`; `mode` is `_input.filter_mode`'s). `repair` filters forbidden
    characters and bytes too; without it, an error raises `_ReadAgain` where it may help.

    The cut runs on every attempt, because libxml2's push parser holds a whole CDATA
    section, comment or PI in its input buffer until it sees the end: its 10 MB limit
    comes only after 200 MB have been buffered."""
    if repair:
        chunks = cleaned(chunks, mode, char_refs=True)
    chunks = text_runs_cut(chunks, mode, max(TEXT_RUN_LIMIT, 4 * text_limit))
    handler = parser_class(source, text_limit)
    parser = etree.XMLPullParser(
        events=parser_class.EVENTS,
        tag=parser_class.TAGS,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        # libxml2's limits stay on; the cut above keeps texts far below them, so none is
        # ever built whole.
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        # Whitespace between elements would become one text node per indent; nothing reads
        # them, and not building them is measurably faster. Text with content is untouched.
        remove_blank_text=True,
    )
    with _cyclic_gc_paused():
        return _feed(source, parser, handler, chunks, repair)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a report is read.

    A parse allocates two tracked objects per case (the case and its attempt list) that
    live as long as the run, so the collector walks an ever larger heap over and over
    while finding nothing to free: on 100,000 cases that is ~15% of the parse time. Plain
    reference counting still frees everything as usual; the collector resumes (if it was
    running) the moment the parse ends, also on error.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _promote_young_objects()
            gc.enable()


def _promote_young_objects() -> None:
    """Move the objects allocated during the parse straight to the oldest generation.

    With the collector paused they all pile up in the youngest generation, and the first
    allocation after it resumes would scan every one of them (~25 ms per 100,000 cases),
    then the middle generation would scan them again, only to find them all alive: a
    parsed run is kept. freeze() + unfreeze() moves them to the oldest generation in O(1),
    where they are scanned only by full collections, like any long-lived object. Objects
    frozen by the application (gc.freeze before fork keeps pages shared) must stay frozen,
    so then the move is skipped and the collector simply resumes.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def _feed(
    source: str,
    parser: etree.XMLPullParser,
    handler: FormatParser,
    chunks: Iterator[bytes],
    repair: bool,
) -> TestRun:
    handle_events = handler.handle_events
    at_end = False
    try:
        for chunk in chunks:
            parser.feed(chunk)
            handle_events(parser.read_events())
        at_end = True
        parser.close()
        handle_events(parser.read_events())
    except TooManyAttributes as exc:
        handler.finish()
        partial = handler.run() if handler.cases_read else None
        reason = f"refused: {exc}"
        if handler.cases_read:
            reason += _kept(handler.cases_read)
        raise ReportError(source, reason, partial) from None
    except etree.XMLSyntaxError as exc:
        # Any error may come from a forbidden character (libxml2 names them in many ways:
        # "CData section not finished" for an ESC in CDATA) or from a long text: the
        # filter's attempt tells. Only entity expansion and nesting are final at once.
        message = str(exc.msg)
        if not repair and not any(marker in message for marker in _FINAL_MARKERS):
            raise _ReadAgain from exc
        # Events parsed before an error in the middle are still queued: keep those cases
        # too. An error from close() is different: libxml2 2.14 (lxml 6.2) then queues an
        # end event for every element the file left open, so a case cut inside its
        # <system-out>, before the <failure> that followed, would count as passed. Every
        # complete tag was already reported while it was fed, so those events go unread.
        if not at_end:
            try:
                handle_events(parser.read_events())
            except etree.XMLSyntaxError:
                pass
        handler.finish()
        partial = handler.run() if handler.cases_read else None
        reason = _syntax_reason(exc, at_end, handler.cases_read)
        raise ReportError(source, reason, partial) from None
    handler.finish()
    return handler.run()


def _syntax_reason(exc: etree.XMLSyntaxError, at_end: bool, cases: int) -> str:
    message = str(exc.msg or exc).strip()
    line, column = exc.position if exc.position else (exc.lineno or 0, 0)
    if message == "no element found" and len(exc.error_log):
        # lxml's generic word when libxml2 stopped early on an error it did not raise (an
        # undefined entity such as &nbsp;): the real cause is the latest logged error.
        last = exc.error_log.last_error
        message, line, column, at_end = last.message, last.line, last.column, False
    # libxml2 appends the position to its message; we say it our way.
    message = message.split(", line ")[0].strip()
    where = f"line {line}, column {column}"
    if "Excessive depth" in message:
        limit = message.partition(":")[2].split(",")[0].strip()
        reason = f"elements nested deeper than {limit} levels ({where})"
    elif "limit exceeded" in message or "too long" in message or "too big" in message:
        # libxml2's own limits: a name over 50,000 bytes, a value or tag over 10 MB. Its
        # advice to set XML_PARSE_HUGE is not one for a user to follow.
        message = message.partition(", try XML_PARSE_HUGE")[0]
        reason = (
            f"refused: a name, tag or attribute value over libxml2's size limit "
            f"({where}: {message})"
        )
    elif "amplification" in message:
        reason = f"refused: entity expansion ({where}: {message})"
    elif "encoding" in message.lower() or "labelled" in message:
        reason = f"wrong or unsupported encoding ({where}: {message})"
    elif at_end or "Premature end" in message:
        reason = f"truncated: the file ends inside an element ({where}: {message})"
    elif cases == 0:
        reason = f"not XML ({where}: {message})"
    else:
        reason = f"invalid XML ({where}: {message})"
    if cases:
        reason += _kept(cases)
    return reason


def _kept(cases: int) -> str:
    return f"; kept the {cases:,} test case{'' if cases == 1 else 's'} read before it"


class Collector:
    """Reads many inputs into one run. Every case stays its own record (no input folds into
    another, so the order of the inputs never changes a count), each tagged with the origin
    it was added under; a bad input is recorded as a `ParseError` while every other input
    still counts."""

    def __init__(self, run_id: str, *, text_limit: int = DEFAULT_TEXT_LIMIT) -> None:
        self._run = TestRun(id=run_id)
        self._errors: list[ParseError] = []
        self._text_limit = text_limit
        self._seen: set[str] = set()

    @property
    def errors(self) -> list[ParseError]:
        return list(self._errors)

    def add_stream(self, source: str, stream: BinaryIO, origin: Origin | None = None) -> None:
        """Parse one input; never raises for bad input."""
        try:
            run = parse_stream(source, stream, text_limit=self._text_limit)
        except ReportError as exc:
            self._errors.append(ParseError(exc.source, exc.reason))
            if exc.partial is not None:
                self._add(exc.partial, origin)
            return
        self._add(run, origin)

    def _add(self, run: TestRun, origin: Origin | None) -> None:
        if origin is not None:
            run.set_origin(origin)
        self._run.merge([run])

    def add_file(self, path: str | os.PathLike[str], origin: Origin | None = None) -> None:
        source = os.fspath(path)
        if not self._first_time(source):
            return
        try:
            stream = open(path, "rb")
        except OSError as exc:
            self._errors.append(ParseError(source, f"cannot open: {exc.strerror or exc}"))
            return
        with stream:
            self.add_stream(source, stream, origin)

    def add_paths(self, patterns: Iterable[str], origin: Origin | None = None) -> None:
        """Files, directories and glob patterns, as `expand_paths` finds them. Each file
        found is read, and one that is not a test report (a pom.xml, Surefire's
        failsafe-summary.xml) is named with the reason, like an unreadable one."""
        files, errors = expand_paths(patterns)
        self._errors.extend(errors)
        for path, _named in files:
            self.add_file(path, origin)

    def _first_time(self, path: str) -> bool:
        """A file reached by two patterns is read once, not merged with itself as a retry."""
        key = os.path.realpath(path)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def result(self) -> TestRun:
        """The merged run with every recorded error attached."""
        self._run.errors = list(self._errors)
        return self._run


def expand_paths(patterns: Iterable[str]) -> tuple[list[tuple[str, bool]], list[ParseError]]:
    """The files that PATHS name, each once, with whether it was named outright; and an
    error for each path that named nothing.

    A path is a file, a directory (searched recursively for *.xml and *.trx) or a glob
    pattern (`**` included). A file named outright is meant to be read even when it does
    not look like a report, so that its user hears why it is unusable.
    """
    found: list[tuple[str, bool]] = []
    errors: list[ParseError] = []
    seen: set[str] = set()

    def add(paths: Iterable[str], named: bool) -> None:
        for path in paths:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                found.append((path, named))

    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            files = [m for m in matches if os.path.isfile(m)]
            for match in matches:
                if os.path.isdir(match):
                    files.extend(_walk(match))
            if not files:
                errors.append(ParseError(pattern, "no files match"))
            add(files, named=False)
        elif os.path.isdir(pattern):
            files = _walk(pattern)
            if not files:
                errors.append(ParseError(pattern, "no report files in directory"))
            add(files, named=False)
        elif os.path.exists(pattern):
            add([pattern], named=True)
        else:
            errors.append(ParseError(pattern, "no such file or directory"))
    return found, errors


def _walk(directory: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(REPORT_SUFFIXES):
                found.append(os.path.join(root, name))
    return found


def collect(patterns: Iterable[str], run_id: str) -> TestRun:
    """Parse every report the patterns name into one merged run."""
    collector = Collector(run_id)
    collector.add_paths(patterns)
    return collector.result()
