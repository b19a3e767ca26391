"""The bytes of a `RunSummary` and of `Aggregates`, the same for every backend.

A run is one blob: a fixed header (`<4sIII`: magic, then the lengths of the three parts),
a small JSON header (key, sha, run id, time, attempt, origins, omitted counts), the
columns zlib-compressed together (identity hashes as little-endian int64, status codes and
attempts as bytes, origin indexes as uint16, durations as float32), and the display names
zlib-compressed on their own, so that a reader that needs no names (the aggregates, a
comparison of hashes) never inflates them. Sorting by identity makes the names compress
to about a tenth; the hashes, being random, do not compress, and are most of the bytes.

The aggregates are one blob of the same shape without names. A blob that does not read
(another version's, truncated) raises `HistoryError` naming what was wrong: the store
then treats that run as missing rather than reporting from a half-read one.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import orjson

from bot.history.summary import FLAKY_BIT, Aggregates, HistoryError, HistoryKey, RunSummary

T = TypeVar("T")
#: Status codes a run may hold: the four statuses, with or without the flaky bit.
_VALID_CODES: Final = bytes([*range(4), *range(FLAKY_BIT, FLAKY_BIT + 4)])

RUN_MAGIC: Final = b"HHR1"
AGGREGATE_MAGIC: Final = b"HHA1"
_HEAD: Final = struct.Struct("<4sIII")
#: zlib level: 6 is within a few % of 9 on these columns at a third of the time.
LEVEL: Final = 6
#: No blob inflates past this (a million executions' columns are ~15 MB): a corrupt or
#: hostile blob cannot make a reader allocate without bound.
MAX_INFLATED: Final = 64 * 1024 * 1024


def _le(values: array[Any]) -> bytes:
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _column(typecode: str, data: bytes | memoryview) -> array[Any]:
    values = array(typecode)
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _inflate(data: bytes | memoryview, what: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_INFLATED)
    except zlib.error as exc:
        raise HistoryError(f"{what}: not a history blob ({exc})") from None
    if inflater.unconsumed_tail:
        raise HistoryError(f"{what}: inflates past {MAX_INFLATED:,} bytes")
    return out


def _split(blob: bytes, magic: bytes, what: str) -> tuple[dict[str, Any], memoryview, memoryview]:
    if len(blob) < _HEAD.size:
        raise HistoryError(f"{what}: {len(blob)} bytes is too short for a history blob")
    found, head_len, columns_len, names_len = _HEAD.unpack_from(blob)
    if found != magic:
        raise HistoryError(f"{what}: unknown format {found!r} (expected {magic!r})")
    if _HEAD.size + head_len + columns_len + names_len != len(blob):
        raise HistoryError(f"{what}: truncated or padded ({len(blob)} bytes)")
    view = memoryview(blob)
    start = _HEAD.size
    try:
        header = orjson.loads(view[start:start + head_len])
    except orjson.JSONDecodeError as exc:
        raise HistoryError(f"{what}: header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise HistoryError(f"{what}: header is not an object")
    start += head_len
    return header, view[start:start + columns_len], view[start + columns_len:]


def _read(blob: bytes, magic: bytes, what: str, width: int,
          build: Callable[[dict[str, Any]], T]) -> tuple[T, int, memoryview, memoryview]:
    """(what `build` made of the header, entries, their columns inflated, the names part):
    a header that lacks a field, or columns not `width` bytes an entry, is refused."""
    header, columns, names = _split(blob, magic, what)
    try:
        n = int(header["n"])
        built = build(header)
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryError(f"{what}: header lacks or mangles {exc}") from None
    raw = _inflate(columns, what)
    if len(raw) != n * width:
        raise HistoryError(f"{what}: columns hold {len(raw)} bytes for {n} entries")
    return built, n, memoryview(raw), names


def _pack(magic: bytes, header: dict[str, Any], columns: bytes, names: bytes) -> bytes:
    head = orjson.dumps(header)
    return _HEAD.pack(magic, len(head), len(columns), len(names)) + head + columns + names


def encode_run(summary: RunSummary) -> bytes:
    n = len(summary)
    if not (len(summary.codes) == len(summary.durations) == len(summary.attempts)
            == len(summary.origins) == n) or (summary.names is not None
                                              and len(summary.names) != n):
        raise HistoryError(f"run {summary.run_id}: columns of different lengths")
    header = {
        "key": summary.key.parts(),
        "sha": summary.sha,
        "run": summary.run_id,
        "at": summary.finished_at.timestamp(),
        "attempt": summary.attempt,
        "n": n,
        "origins": summary.origin_names,
        "omitted": summary.omitted,
        "omitted_failures": summary.omitted_failures,
        "metrics": summary.metrics,
    }
    columns = zlib.compress(
        _le(summary.hashes) + bytes(summary.codes) + bytes(summary.attempts)
        + _le(summary.origins) + _le(summary.durations), LEVEL,
    )
    names = zlib.compress(orjson.dumps(summary.names or []), LEVEL)
    return _pack(RUN_MAGIC, header, columns, names)


def decode_run(blob: bytes, *, names: bool = True, what: str = "history run") -> RunSummary:
    """The summary in `blob`. Its names are inflated when first read (`names=False`: never,
    `names` is None); a blob whose names do not read raises `HistoryError` then."""
    summary, n, view, packed_names = _read(blob, RUN_MAGIC, what, 16, lambda header: RunSummary(
        key=HistoryKey(*header["key"]), sha=header["sha"], run_id=header["run"],
        finished_at=datetime.fromtimestamp(header["at"], UTC),
        attempt=int(header["attempt"]), origin_names=list(header["origins"]),
        omitted=int(header["omitted"]), omitted_failures=int(header["omitted_failures"]),
        metrics=_metrics(header.get("metrics", {}), what),
    ))
    summary.hashes = _column("q", view[: 8 * n])
    summary.codes = bytearray(view[8 * n: 9 * n])
    if summary.codes.translate(None, _VALID_CODES):
        raise HistoryError(f"{what}: a status code that is none of Herald's")
    summary.attempts = bytearray(view[9 * n: 10 * n])
    summary.origins = _column("H", view[10 * n: 12 * n])
    summary.durations = _column("f", view[12 * n:])
    if summary.origins and max(summary.origins) >= len(summary.origin_names):
        raise HistoryError(f"{what}: an origin index past its {len(summary.origin_names)} names")
    summary.names = None
    if names:
        packed = bytes(packed_names)

        def load() -> list[str]:
            listed = orjson.loads(_inflate(packed, what))
            if not isinstance(listed, list) or len(listed) != n:
                raise HistoryError(f"{what}: names do not match its {n} executions")
            return listed

        summary.names_loader = load
    return summary


def _metrics(value: Any, what: str) -> dict[str, float]:
    """A run's metrics as stored (absent from blobs written before they were kept)."""
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in value.items()):
        raise HistoryError(f"{what}: metrics are not an object of numbers")
    return {k: float(v) for k, v in value.items()}


def encode_aggregates(aggregates: Aggregates) -> bytes:
    header = {
        "runs": aggregates.runs,
        "oldest": aggregates.oldest.timestamp() if aggregates.oldest else None,
        "n": len(aggregates),
        "origins": aggregates.origin_names,
    }
    columns = zlib.compress(
        _le(aggregates.hashes) + _le(aggregates.origins) + _le(aggregates.seen)
        + _le(aggregates.failures) + _le(aggregates.flips) + _le(aggregates.flaky)
        + bytes(aggregates.last) + _le(aggregates.medians), LEVEL,
    )
    return _pack(AGGREGATE_MAGIC, header, columns, b"")


def decode_aggregates(blob: bytes, what: str = "history aggregates") -> Aggregates:
    aggregates, n, view, _ = _read(blob, AGGREGATE_MAGIC, what, 23, lambda header: Aggregates(
        runs=[str(run) for run in header["runs"]],
        oldest=None if header["oldest"] is None
        else datetime.fromtimestamp(header["oldest"], UTC),
        origin_names=list(header["origins"]),
    ))
    at = 0
    for name, typecode, width in (("hashes", "q", 8), ("origins", "H", 2), ("seen", "H", 2),
                                  ("failures", "H", 2), ("flips", "H", 2), ("flaky", "H", 2)):
        setattr(aggregates, name, _column(typecode, view[at: at + width * n]))
        at += width * n
    aggregates.last = bytearray(view[at: at + n])
    aggregates.medians = _column("f", view[at + n:])
    if aggregates.origins and max(aggregates.origins) >= len(aggregates.origin_names):
        raise HistoryError(f"{what}: an origin index past its names")
    return aggregates
