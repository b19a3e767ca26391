"""What comes before the parser: sniffing a file's prolog, and the byte filters that let
libxml2 read the dirty and hostile files real tools and pull requests write.

Sniffing reads only the prolog (BOM, XML declaration, comments, DOCTYPE) and the root
element's name, so callers can tell a report from a .log or a .png by its first bytes, and a
document that declares entities is refused before any of it reaches the parser.

Two filters, each a few C-level operations per 128 KiB chunk, not a walk over every tag:

- `cleaned` (a file libxml2 stumbled on, and every one-way stream): control characters
  XML forbids are dropped anywhere (text, CDATA, attributes, comments, names), ESC and BEL
  become DEL so an ANSI sequence is stripped whole later, invalid UTF-8 becomes U+FFFD.
  Could hide: those characters only; U+FFFD shows where a byte was bad.
- `text_runs_cut` (every file): character data over 1 MiB between two element tags is cut,
  with a marker that the report turns into "[truncated by Herald: N more characters]";
  comments and PIs over 64 KiB are cut silently (the parser drops them anyway); a start
  tag with more than MAX_ATTRIBUTES attributes that runs past a chunk is refused. Could
  hide: output and traces past what a report shows (64 KiB) anyway; never a status, a
  name or an element, because tags pass untouched and a cut ends at the next tag.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ._values import CUT_MARKER

#: How much of a file is read to find its root element. Real prologs are a few hundred bytes;
#: a file whose root element is not within this is not a report.
SNIFF_LIMIT = 1024 * 1024
CHUNK_SIZE = 128 * 1024

# Characters XML 1.0 forbids anywhere, even as &#..; references: C0 controls except TAB, LF
# and CR. Test output is full of them (ANSI colour, NUL from crashed processes). ESC and BEL
# (which ends an OSC hyperlink) map to DEL, which XML allows, so escape sequences can still
# be recognised and stripped whole later.
_DELETE = bytes([b for b in range(0x20) if b not in (0x07, 0x09, 0x0A, 0x0D, 0x1B)])
_TABLE = bytes.maketrans(b"\x1b\x07", b"\x7f\x7f")
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")

_DECLARATION = re.compile(rb"<\?xml\s[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']")
_NAME_START = re.compile(rb"<([A-Za-z_][\w.:-]*)")

_SINGLE_BYTE = re.compile(
    r"(us-?ascii|ascii|latin-?1|l1|iso[-_]?8859[-_]?\d+|(cp|windows-?)125\d|cp437|cp850)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Prolog:
    """What the first bytes of a file say about it."""

    blank: bool = False  # nothing but whitespace (or nothing at all)
    xml: bool = False  # starts like an XML document
    root: str | None = None  # the root element's name, prefix included
    encoding: str | None = None  # from the BOM or the XML declaration, lower-cased
    declares_entities: bool = False
    complete: bool = True  # False: the prolog runs past the bytes we were given
    #: The declaration names a 16/32-bit encoding, but the bytes it is written in are 8-bit.
    encoding_mismatch: bool = False

    @property
    def local_root(self) -> str | None:
        return self.root.rpartition(":")[2] if self.root else None


def sniff(data: bytes) -> Prolog:
    """Read the prolog of `data` (the first bytes of a file) without parsing the document."""
    encoding: str | None = None
    if data.startswith(codecs.BOM_UTF8):
        encoding, data = "utf-8", data[3:]
    elif data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return _sniff_decoded(data, "utf-32")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _sniff_decoded(data, "utf-16")
    elif data.startswith(b"<\x00?\x00") or data.startswith(b"<\x00"):
        return _sniff_decoded(data, "utf-16-le")
    elif data.startswith(b"\x00<"):
        return _sniff_decoded(data, "utf-16-be")
    return _sniff_ascii(data, encoding)


def _sniff_decoded(data: bytes, encoding: str) -> Prolog:
    # Only the markup matters here, so an odd number of bytes or a bad pair is harmless.
    text = data[: len(data) - len(data) % 4].decode(encoding, errors="replace")
    found = _sniff_ascii(text.lstrip("\ufeff").encode("utf-8", errors="replace"), encoding)
    return Prolog(
        blank=found.blank,
        xml=found.xml,
        root=found.root,
        encoding=encoding,
        declares_entities=found.declares_entities,
        complete=found.complete,
    )


def _sniff_ascii(data: bytes, bom_encoding: str | None) -> Prolog:
    start = len(data) - len(data.lstrip())
    if start == len(data):
        return Prolog(blank=True, encoding=bom_encoding)
    if data[start : start + 1] != b"<":
        return Prolog(encoding=bom_encoding)
    encoding = bom_encoding
    declares_entities = mismatch = False
    pos = start
    while True:
        pos = _skip_space(data, pos)
        if pos >= len(data):
            return Prolog(xml=True, encoding=encoding, complete=False,
                          declares_entities=declares_entities)
        if data.startswith(b"<?", pos):
            end = data.find(b"?>", pos)
            if end == -1:
                return Prolog(xml=True, encoding=encoding, complete=False)
            declared = _DECLARATION.match(data, pos, end + 2)
            if declared and encoding is None:
                encoding = declared.group(1).decode("ascii").lower()
                mismatch = bom_encoding is None and encoding.startswith(("utf-16", "utf-32", "ucs"))
            pos = end + 2
        elif data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            if end == -1:
                return Prolog(xml=True, encoding=encoding, complete=False)
            pos = end + 3
        elif data.startswith(b"<!DOCTYPE", pos):
            end = _doctype_end(data, pos)
            declares_entities = b"<!ENTITY" in data[pos : end if end != -1 else len(data)]
            if end == -1:
                return Prolog(xml=True, encoding=encoding, complete=False,
                              declares_entities=declares_entities)
            pos = end
        else:
            name = _NAME_START.match(data, pos)
            if name is None:
                return Prolog(xml=False, encoding=encoding)
            if name.end() == len(data):  # the name may go on in bytes we have not read
                return Prolog(xml=True, encoding=encoding, complete=False,
                              declares_entities=declares_entities)
            return Prolog(
                xml=True,
                root=name.group(1).decode("ascii", errors="replace"),
                encoding=encoding,
                declares_entities=declares_entities,
                encoding_mismatch=mismatch,
            )


def _skip_space(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in b" \t\r\n":
        pos += 1
    return pos


def _doctype_end(data: bytes, pos: int) -> int:
    """Index just past the DOCTYPE at `pos`, internal subset included; -1 if not in `data`."""
    subset = data.find(b"[", pos)
    close = data.find(b">", pos)
    if close == -1:
        return -1
    if subset == -1 or subset > close:
        return close + 1
    end = data.find(b"]", subset)
    if end == -1:
        return -1
    close = data.find(b">", end)
    return -1 if close == -1 else close + 1


def filter_mode(encoding: str | None) -> str:
    """How to clean a document's bytes: "utf-8" (also repair invalid UTF-8), "bytes" (a
    single-byte charset: only drop control characters) or "raw" (UTF-16/32 and charsets we
    don't know: passed through untouched, libxml2 decodes them)."""
    if encoding is None or encoding.replace("_", "-") in ("utf-8", "utf8"):
        return "utf-8"
    if _SINGLE_BYTE.fullmatch(encoding):
        return "bytes"
    return "raw"


def _xml_char(code: int) -> bool:
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _fix_char_ref(match: re.Match[bytes]) -> bytes:
    hex_digits, decimal = match.groups()
    code = int(hex_digits, 16) if hex_digits else int(decimal)
    if _xml_char(code):
        return match.group()
    return b"&#x7f;" if code in (0x1B, 0x07) else b""


def cleaned(chunks: Iterator[bytes], mode: str, *, char_refs: bool = False) -> Iterator[bytes]:
    """Chunks with what XML 1.0 forbids taken out, so one stray byte never loses a file.

    In "utf-8" mode invalid byte sequences become U+FFFD (decoded incrementally, so a
    character split across two chunks survives). `char_refs` also rewrites forbidden
    character references such as `&#27;`; it is off on the first attempt because searching
    for them costs more than everything else here together.
    """
    if mode == "raw":
        yield from chunks
        return
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace") if mode == "utf-8" else None
    pending = False  # the decoder holds the first bytes of a character split across chunks
    carry = b""
    for chunk in chunks:
        if decoder is not None and (pending or not chunk.isascii()):
            text = decoder.decode(chunk, False)
            if "\ufffe" in text or "\uffff" in text:
                text = text.replace("\ufffe", "\ufffd").replace("\uffff", "\ufffd")
            chunk = text.encode("utf-8")
            pending = bool(decoder.getstate()[0])
        chunk = chunk.translate(_TABLE, _DELETE)
        if char_refs:
            chunk, carry = _fix_char_refs(carry + chunk)
        if chunk:
            yield chunk
    tail = carry
    if decoder is not None and pending:
        tail += decoder.decode(b"", True).encode("utf-8").translate(_TABLE, _DELETE)
    if tail:
        yield _CHAR_REF.sub(_fix_char_ref, tail) if char_refs else tail


def _fix_char_refs(data: bytes) -> tuple[bytes, bytes]:
    """Rewrite forbidden references in `data`, holding back a reference cut at its end."""
    carry = b""
    amp = data.rfind(b"&", max(0, len(data) - 16))
    if amp != -1 and b";" not in data[amp:]:
        data, carry = data[:amp], data[amp:]
    if b"&#" in data:
        data = _CHAR_REF.sub(_fix_char_ref, data)
    return data, carry


def read_chunks(stream: BinaryIO, first: bytes) -> Iterator[bytes]:
    """`first` (already read for sniffing), then the rest of `stream`."""
    if first:
        yield first
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


#: Character data (text and CDATA together) kept between two element tags, at the least.
#: Captured output is cut to the text limit (64 KiB characters) anyway, so this only bounds
#: what libxml2 and lxml build before the parser cuts it: never a 200 MB text node.
TEXT_RUN_LIMIT = 1024 * 1024
#: Comments and processing instructions are dropped by the parser anyway; beyond this
#: they are dropped here, before libxml2 has to hold them.
_IGNORED_RUN_LIMIT = 64 * 1024

_CDATA_OPEN, _COMMENT_OPEN, _PI_OPEN = b"<![CDATA[", b"<!--", b"<?"
_CLOSERS = {_CDATA_OPEN: b"]]>", _COMMENT_OPEN: b"-->", _PI_OPEN: b"?>"}
#: The rest of a start or end tag: anything but '>' and quotes, or whole quoted values
#: (attribute values may hold '>', never '<').
#: No report writer puts more than a few dozen attributes on an element; libxml2 and lxml
#: spend ~400 bytes of memory on each (200,000 on one <testcase>, a 2.3 MB file, took
#: 87 MB). A start tag that runs on past the end of a read chunk is counted, and refused
#: beyond this many, with the cases before it kept. One wholly inside a chunk is not
#: counted: counting every tag would cost more than the parse, and a chunk (128 KiB) holds
#: at most ~26,000 attributes, ~10 MB of tree, freed with their case. The parsers read any
#: number in linear time (see junit._MAX_ITEMS).
MAX_ATTRIBUTES = 10_000
_QUOTED = re.compile(rb"""(?:"[^"]*+"|'[^']*+')""")
_MARKUP = {0x21: re.compile(rb"<!"), 0x3F: re.compile(rb"<\?")}
_MARKUP_MISSES = 8
_TAG_BODY = re.compile(rb"""(?:[^>"']++|"[^"]*+"|'[^']*+')*+""")


def text_runs_cut(
    chunks: Iterable[bytes], mode: str, limit: int = TEXT_RUN_LIMIT
) -> Iterator[bytes]:
    """`chunks` with every run of character data longer than `limit` bytes cut, so memory
    stays bounded whatever a text or CDATA section holds; the document stays well formed.

    A run is all text and CDATA between two element tags, as libxml2 joins it into text
    nodes (comments between parts do not end it). What is cut is replaced by
    `_values.CUT_MARKER`, naming how many bytes were left out. Comments and processing
    instructions (the parser drops them) are cut to 64 KiB without a marker. Tags,
    attribute values, names and the structure pass untouched: libxml2's own limits (10 MB
    per value, 50,000 bytes per name, 256 levels) refuse those with a clear reason.

    `mode` is `filter_mode`'s: "raw" (UTF-16/32, unknown charsets) cannot be scanned by
    bytes and passes untouched; in "utf-8" a cut never splits a character. The work is a
    few C-level searches per chunk (the last tag of a chunk, each CDATA section and
    comment), not a walk over every tag, because only a run that crosses chunks can grow
    past `limit`.
    """
    if mode == "raw":
        yield from chunks
        return
    cutter = _TextCutter(limit, utf8=mode == "utf-8")
    for chunk in chunks:
        if out := cutter.feed(chunk):
            yield out
    if tail := cutter.close():
        yield tail


class TooManyAttributes(ValueError):
    """An element with more than MAX_ATTRIBUTES attributes; the message says where."""


def _find_markup(data: bytes, mark: int, pos: int, end: int) -> int:
    """Where the next "<" followed by `mark` ("!" or "?") starts at or after `pos`; -1.

    The mark alone is found with memchr, an order of magnitude faster than searching for
    the pair in a file with a "<" every few bytes; most chunks have no "!" or "?" at all.
    After a few marks without a "<" before them (text full of "?"), the pair is searched
    for instead, so no input costs more than that search.
    """
    for _ in range(_MARKUP_MISSES):
        found = data.find(mark, pos + 1, end)
        if found == -1:
            return -1
        if data[found - 1] == 0x3C:  # "<"
            return found - 1
        pos = found
    match = _MARKUP[mark].search(data, pos, end)
    return -1 if match is None else match.start()


class _TextCutter:
    """The state `text_runs_cut` carries from one chunk to the next.

    A chunk's output is the chunk itself unless something was cut: the scan records only
    the edits (a range dropped, a marker inserted), so the common chunk is never copied.
    """

    def __init__(self, limit: int, *, utf8: bool) -> None:
        self.limit = limit
        self.utf8 = utf8
        self.run = 0  # bytes of character data since the last element tag
        self.dropped = 0  # bytes of the current run left out so far
        self.closer: bytes | None = None  # inside CDATA/comment/PI: what ends it
        self.ignored = 0  # bytes of the current comment/PI kept so far
        self.in_tag = False  # inside an element tag that has not closed yet
        self.quote: int | None = None  # ... and inside this quote of an attribute value
        self.carry = b""  # the end of the last chunk, which may start a delimiter
        self.edits: list[tuple[int, int, bytes]] = []  # (start, stop, replacement), in order
        self.attributes = 0  # attribute values seen in the open tag so far
        self.offset = 0  # bytes of input before the current chunk

    def feed(self, chunk: bytes) -> bytes:
        data = self.carry + chunk if self.carry else chunk
        self.carry = b""
        # A "<", "<!" or "<![CD" at the very end may open a CDATA section or a comment, and
        # an "&am" a reference a cut must not split: they wait for the next chunk.
        end = len(data)
        lt = data.rfind(b"<", max(0, end - len(_CDATA_OPEN)))
        if lt != -1 and any(o.startswith(data[lt:]) and o != data[lt:] for o in _CLOSERS):
            end = lt
        amp = data.rfind(b"&", max(0, end - 16), end)
        if amp != -1 and data.find(b";", amp, end) == -1:
            end = amp
        pos = 0
        # Where the next "<!" and "<?" are, each searched again only once passed.
        bang = question = -2
        while pos < end:
            if self.closer is not None:
                pos, end = self._special(data, pos, end)
                continue
            if bang != -1 and bang < pos:
                bang = _find_markup(data, 0x21, pos, end)  # "!"
            if question != -1 and question < pos:
                question = _find_markup(data, 0x3F, pos, end)  # "?"
            stop = min(bang if bang != -1 else end, question if question != -1 else end)
            self._markup(data, pos, stop)
            if stop == end:
                break
            opener = next((o for o in _CLOSERS if data.startswith(o, stop)), None)
            if opener is None:  # <!DOCTYPE and the declarations in it: read as a tag
                self._markup(data, stop, stop + 2, tag_at=stop)
                pos = stop + 2
                continue
            self.closer, self.ignored = _CLOSERS[opener], 0
            pos = stop + len(opener)
        self.carry = data[end:]
        self.offset += end
        return self._output(data, end)

    def close(self) -> bytes:
        data, self.carry = self.carry, b""
        self._end_run(len(data))
        return self._output(data, len(data))

    def _output(self, data: bytes, end: int) -> bytes:
        if not self.edits:
            return data if end == len(data) else data[:end]
        parts: list[bytes] = []
        done = 0
        for start, stop, replacement in self.edits:
            parts += (data[done:start], replacement)
            done = stop
        parts.append(data[done:end])
        self.edits.clear()
        return b"".join(parts)

    def _special(self, data: bytes, pos: int, end: int) -> tuple[int, int]:
        """Inside CDATA, a comment or a PI from `pos`: up to its end, or the chunk's.
        Returns where to go on, and the end of what this chunk passes on."""
        closer = self.closer
        assert closer is not None
        close = data.find(closer, pos, end)
        stop = end if close == -1 else close
        if close == -1:
            # Hold back what may be the start of the closer ("]" or "]]"), for the next chunk.
            stop -= next(
                (k for k in (2, 1) if stop - k >= pos and closer.startswith(data[stop - k : end])),
                0,
            )
            end = stop
        if closer == b"]]>":
            self._text(data, pos, stop)
        else:
            keep = min(stop - pos, max(0, _IGNORED_RUN_LIMIT - self.ignored))
            self.ignored += keep
            if pos + keep < stop:
                self.edits.append((pos + keep, stop, b""))
        if close == -1:
            return end, end
        self.closer = None
        return close + len(closer), end

    def _markup(self, data: bytes, pos: int, stop: int, tag_at: int | None = None) -> None:
        """Text and element tags in data[pos:stop], which holds no CDATA, comment or PI."""
        if self.in_tag:
            pos = self._tag_rest(data, pos, stop)
            if self.in_tag:
                return
        first = data.find(b"<", pos, stop) if tag_at is None else tag_at
        if first == -1:
            self._text(data, pos, stop)
            return
        self._text(data, pos, first)
        self._end_run(first)
        # Runs between tags inside one chunk are shorter than the chunk: only the text
        # after the chunk's last tag can go on long enough to need cutting.
        last = data.rfind(b"<", first, stop)
        self.in_tag, self.quote, self.attributes = True, None, 0
        pos = self._tag_rest(data, last + 1, stop)
        if not self.in_tag:
            self._text(data, pos, stop)

    def _tag_rest(self, data: bytes, pos: int, stop: int) -> int:
        """Pass the rest of an open tag from `pos`; where its text begins, or `stop`."""
        if self.quote is not None:
            close = data.find(self.quote, pos, stop)
            if close == -1:
                return stop
            pos, self.quote = close + 1, None
            self.attributes += 1  # the value that began in an earlier chunk
        body = _TAG_BODY.match(data, pos, stop)
        assert body is not None  # the pattern matches the empty string
        after = body.end()
        self._count_attributes(data, pos, after)
        if after < stop and data[after] == 0x3E:  # '>'
            self.in_tag, self.run = False, 0
            return after + 1
        if after < stop:  # an opening quote whose value goes on in the next chunk
            self.quote = data[after]
        return stop

    def _count_attributes(self, data: bytes, pos: int, stop: int) -> None:
        """Count the quoted values in data[pos:stop] towards the open tag's."""
        self.attributes += len(_QUOTED.findall(data, pos, stop))
        if self.attributes > MAX_ATTRIBUTES:
            raise TooManyAttributes(
                f"an element with more than {MAX_ATTRIBUTES:,} attributes "
                f"(before byte {self.offset + stop:,})"
            )

    def _text(self, data: bytes, pos: int, stop: int) -> None:
        if stop <= pos:
            return
        size = stop - pos
        if self.dropped:
            self.dropped += size
            self.edits.append((pos, stop, b""))
            return
        room = self.limit - self.run
        self.run += size
        if size <= room:
            return
        cut = self._safe_cut(data, pos, pos + max(room, 0))
        self.edits.append((cut, stop, b""))
        self.dropped = stop - cut

    def _safe_cut(self, data: bytes, pos: int, cut: int) -> int:
        """`cut`, moved back so it splits no character and no &reference;."""
        if self.utf8:
            while cut > pos and 0x80 <= data[cut] < 0xC0:
                cut -= 1
        amp = data.rfind(b"&", max(pos, cut - 16), cut)
        if amp != -1 and data.find(b";", amp, cut) == -1:
            cut = amp
        return cut

    def _end_run(self, at: int) -> None:
        """A run ends at `at` (an element tag, or the end): say what it left out there."""
        if self.dropped:
            self.edits.append((at, at, CUT_MARKER.format(dropped=self.dropped).encode("ascii")))
        self.run = self.dropped = 0
