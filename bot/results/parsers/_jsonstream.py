"""Reading one large JSON document with bounded memory: the items of chosen arrays, one by one.

Jest and Mocha write a whole run as a single JSON document, so `orjson.loads` would hold every
test at once. Here yajl (through ijson's C backend) is fed the document in chunks and builds
only the items under the wanted prefixes (`testResults.item`), each handed over and dropped
before the next chunk is read.

Nesting is checked before yajl sees a chunk: ijson spells each level's prefix out in full, so
a document nested 100,000 levels deep costs it quadratic time and gigabytes of memory. Real
reports are a few levels deep; anything deeper than `MAX_DEPTH` is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import ijson  # type: ignore[import-untyped]  # ships no type information

try:
    from ijson.backends import yajl2_c as _yajl  # type: ignore[import-untyped]
except ImportError:  # no C extension for this platform: ijson's slower backends still work
    _yajl = None

CHUNK_SIZE = 256 * 1024
MAX_DEPTH = 256
_BOM = b"\xef\xbb\xbf"
#: Only quotes and brackets matter for the nesting depth (escapes are removed before).
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_TO_PARENS = bytes.maketrans(b"[]{}", b"()()")
_STRING = re.compile(rb'"[^"]*"')


class Broken(Exception):
    """The document is not (complete) JSON; `truncated` says it merely ended too soon."""

    def __init__(self, detail: str, *, truncated: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.truncated = truncated


@dataclass(slots=True)
class Wanted:
    """The items at `prefix` (ijson's syntax: `tests.item`), each passed to `handle`; with
    `first_only`, the reading of that prefix stops at its first item (a header field)."""

    prefix: str
    handle: Callable[[Any], None]
    first_only: bool = False


class _Sink(list[Any]):
    """ijson's target: it calls send() with each finished item."""

    send = list.append


def read(stream: BinaryIO, wanted: Sequence[Wanted]) -> None:
    """Feed the whole of `stream` through one ijson pipeline per wanted prefix; raises
    `Broken` for bytes that are not one complete JSON document."""
    pipelines = [
        (_pipeline(sink, want.prefix), sink, want) for want in wanted for sink in [_Sink()]
    ]
    depth = _DepthGuard()
    first = True
    try:
        while True:
            chunk = stream.read(CHUNK_SIZE)
            if not chunk:
                break
            if first:
                first = False
                if chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM) :]
            depth.check(chunk)
            done = []
            for pipeline in pipelines:
                coro, sink, want = pipeline
                coro.send(chunk)
                if sink:
                    for item in sink:
                        want.handle(item)
                        if want.first_only:
                            done.append(pipeline)
                            break
                    sink.clear()
            for pipeline in done:
                # Dropped unfinished: its prefix was found, the rest of the document is
                # read (and checked) by the other pipelines.
                pipelines.remove(pipeline)
        if first:
            raise Broken("empty document", truncated=True)
        for coro, sink, want in pipelines:
            coro.close()
            for item in sink:
                want.handle(item)
            sink.clear()
    except ijson.JSONError as exc:
        detail = _first_line(str(exc))
        raise Broken(detail, truncated="premature EOF" in detail) from None
    except (ValueError, OverflowError, UnicodeDecodeError) as exc:
        raise Broken(_first_line(str(exc))) from None


class _Target:
    """Hands a C coroutine to the next stage as the object whose `send` it calls."""

    __slots__ = ("send",)

    def __init__(self, coroutine: Any) -> None:
        self.send = coroutine


def _pipeline(sink: _Sink, prefix: str) -> Any:
    """yajl -> prefixes -> items at `prefix` -> `sink`, as one push coroutine.

    `ijson.items_coro` links its stages through their bound `send` methods, a Python call
    per JSON event; linked as the C objects themselves, the stages call each other
    directly, which reads these reports ~3x faster (as fast as `ijson.items` on a file).
    """
    if _yajl is None:
        return ijson.items_coro(sink, prefix, use_float=True)
    items = _yajl.items_basecoro(sink, prefix, None)
    events = _yajl.parse_basecoro(_Target(items))
    return _yajl.basic_parse_basecoro(_Target(events), use_float=True)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "invalid JSON"


class _DepthGuard:
    """Tracks the nesting depth outside strings across chunks, at C speed per chunk: escapes
    dropped, then everything but quotes and brackets, then whole strings, leaving brackets
    whose deepest level the pair-removal loop bounds."""

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.carry = b""

    def check(self, chunk: bytes) -> None:
        data = self.carry + chunk
        # A backslash at the end escapes the next chunk's first byte: keep them together.
        stripped = data.rstrip(b"\\")
        self.carry = data[len(stripped) :]
        if b"\\" in stripped:
            stripped = stripped.replace(b"\\\\", b"").replace(b'\\"', b"")
        skeleton = stripped.translate(None, _NOT_STRUCTURE)
        if self.in_string:
            skeleton = b'"' + skeleton
        # Quotes alternate open and close: dropping any two adjacent ones keeps the parity
        # of every other byte's position, so what is left still tells strings from
        # structure, and it is short: only strings holding brackets keep their quotes.
        skeleton = skeleton.replace(b'""', b"")
        self.in_string = False
        if b'"' in skeleton:
            skeleton = _STRING.sub(b"", skeleton)
            open_quote = skeleton.find(b'"')
            if open_quote >= 0:
                skeleton = skeleton[:open_quote]
                self.in_string = True
        if not skeleton:
            return
        parens = skeleton.translate(_TO_PARENS)
        # Removing innermost pairs until none are left: the passes needed bound the depth
        # reached inside the chunk above what its unmatched brackets leave.
        passes = 0
        while b"()" in parens:
            parens = parens.replace(b"()", b"")
            passes += 1
            if passes > MAX_DEPTH:
                break
        closes = len(parens) - len(parens.lstrip(b")"))
        opens = len(parens) - closes
        deepest = max(self.depth, self.depth - closes + opens) + passes
        if deepest > MAX_DEPTH:
            raise Broken(f"nested deeper than {MAX_DEPTH} levels")
        self.depth = max(0, self.depth - closes) + opens
