"""What comes before the parser: sniffing a file's prolog, and the byte filter that lets
libxml2 read the dirty files real tools write.

Sniffing reads only the prolog (BOM, XML declaration, comments, DOCTYPE) and the root
element's name, so callers can tell a report from a .log or a .png by its first bytes, and a
document that declares entities is refused before any of it reaches the parser.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

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
