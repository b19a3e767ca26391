"""`CaseList`: a suite's cases, kept compactly so that memory stays flat in their number.

A million-case run used to cost ~400 bytes per `TestCase` object, and every renderer built
another copy on top. Here a case that passed or was skipped, with no attempts, is packed into
a plain tuple once nothing else holds it, and packed tuples go in batches (marshal) to one
temporary file per process (`_Spool`): what stays in memory is an 8-byte identity hash per
case (for `Totals.tests`) and the batches' offsets. Failures, errors and cases with
attempts stay live objects: the reports show them in full, and they may still change
(`TestRun.absorb_retry` adds attempts).

Iteration yields the cases in the order they were appended; a packed case comes back as a
fresh `TestCase` with the same fields. So a packed case must never be changed through an
object that iteration handed out: the change would be lost. Two rules make that safe:

- a case is packed only when nothing but this list refers to it (its reference count says
  so): a parser that keeps a case to finish it later (Go's package-level outputs, a TAP
  diagnostic block) keeps it live, and its changes land;
- code that changes a case it found by iterating asks for it with `CaseList.live(index)`,
  which unpacks it into a live object for good (`TestRun.absorb_retry` does).

What packing could hide: nothing the reports count. Every field a `TestCase` has except
`attempts` (empty for a packed case by definition) is packed, captured output included,
so a packed case reads back equal to the one appended.
"""

from __future__ import annotations

import marshal
import os
import sys
import tempfile
import threading
from array import array
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, SupportsIndex, overload

if TYPE_CHECKING:
    from bot.results.model import Origin, TestCase

#: Cases appended before the oldest of them are considered for packing. A batch of this many
#: packed tuples is one marshal call and one write.
BATCH = 1024
#: A process's spool is replaced once it holds this many bytes; the old file goes when the
#: last list that has batches in it does.
SPOOL_ROTATE_BYTES = 256 * 1024 * 1024

# Tuple layout of a packed case. Strings that repeat across cases (classname, suite, file,
# source, origin) are kept once per list, in `_strings`, and packed as their index.
_NAME, _CLASS, _SUITE, _STATUS, _DURATION, _FILE, _LINE, _MESSAGE, _TYPE, _TRACE, _OUT, \
    _ERR, _SOURCE, _ORIGIN = range(14)


class _Spool:
    """One append-only temporary file that many lists write their batches to.

    Positional reads and writes (`os.pread`/`os.pwrite`) with the append offset taken under
    a lock: the worker parses artifacts in threads, so lists of several jobs share it.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="herald-cases-")
        self._fd = self._file.fileno()
        self._lock = threading.Lock()
        self.size = 0
        self.pid = os.getpid()

    def write(self, data: bytes) -> int:
        with self._lock:
            offset = self.size
            self.size += len(data)
        written = 0
        while written < len(data):
            written += os.pwrite(self._fd, data[written:], offset + written)
        return offset

    def read(self, offset: int, length: int) -> bytes:
        parts: list[bytes] = []
        while length:
            chunk = os.pread(self._fd, length, offset)
            if not chunk:
                raise OSError("the case spool was truncated")
            parts.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(parts)


_current: _Spool | None = None
_current_lock = threading.Lock()


def _spool() -> _Spool:
    global _current
    with _current_lock:
        # A forked child must not append to its parent's file: both would write at the
        # offsets each believes free.
        if (
            _current is None
            or _current.size >= SPOOL_ROTATE_BYTES
            or _current.pid != os.getpid()
        ):
            _current = _Spool()
        return _current


def _referrers_baseline() -> int:
    """What `sys.getrefcount` says, in `CaseList._pack_oldest`'s loop, of a case that only
    the batch holds: measured the same way, since interpreters differ in how many
    references a loop variable and a call argument add."""
    batch = [object()]
    count = 0
    for position in range(len(batch)):
        case = batch[position]
        count = sys.getrefcount(case)
    return count


_UNSHARED = _referrers_baseline()


class CaseList:
    """A sequence of `TestCase`s that packs the passed and skipped ones (module docstring).

    Supports what the parsers and renderers use: `append`, `extend`, iteration, `len`,
    truth, indexing (by walking: for tests and one-off lookups, not for loops), equality
    with a list or another `CaseList`, and pickling (the cases travel packed).
    """

    __slots__ = (
        "_batches",
        "_count",
        "_hashes",
        "_live",
        "_live_positions",
        "_override",
        "_override_until",
        "_packed_counts",
        "_packed_origins",
        "_packed_time",
        "_promoted",
        "_promoted_packed",
        "_spool",
        "_string_index",
        "_strings",
        "_tail",
    )

    def __init__(self, cases: Iterable[TestCase] = ()) -> None:
        #: (offset, length) of each batch in `_spool`, oldest first.
        self._batches: list[tuple[int, int]] = []
        #: Identity hash of each packed case, in order (what `Totals.tests` counts).
        self._hashes = array("q")
        #: Cases that stayed objects when their batch was packed; the batch holds `-1 - k`
        #: for `_live[k]`.
        self._live: list[TestCase] = []
        self._live_positions: dict[int, int] = {}  # position -> k in _live
        #: Packed cases unpacked for good by `live()`, by position.
        self._promoted: dict[int, TestCase] = {}
        #: What each promoted case was packed with (passed or skipped, and its duration),
        #: so that totals count it as it is now, not as it was.
        self._promoted_packed: dict[int, tuple[int, float]] = {}
        self._tail: list[TestCase] = []  # appended, not yet considered for packing
        self._strings: list[Any] = [None]
        self._string_index: dict[Any, int] = {None: 0}
        self._spool: _Spool | None = None
        self._count = 0
        self._packed_counts = [0, 0]  # passed, skipped
        self._packed_time = 0.0
        #: `set_origin` on packed cases: the origin of positions below `_override_until`.
        self._override: Origin | None = None
        self._override_until = 0
        #: The origins of packed cases, each once, in the order first packed.
        self._packed_origins: dict[Origin | None, None] = {}
        self.extend(cases)

    # -- building -----------------------------------------------------------------------

    def append(self, case: TestCase) -> None:
        tail = self._tail
        tail.append(case)
        self._count += 1
        if len(tail) >= 2 * BATCH:
            self._pack_oldest()

    def extend(self, cases: Iterable[TestCase]) -> None:
        for case in cases:
            self.append(case)

    def _intern(self, value: Any) -> int:
        index = self._string_index.get(value)
        if index is None:
            index = self._string_index[value] = len(self._strings)
            self._strings.append(value)
        return index

    def _pack_oldest(self) -> None:
        """Pack the oldest `BATCH` cases of the tail. The newest stay objects a while longer:
        a parser may be finishing one through the reference it just appended."""
        from bot.results.model import Status

        tail = self._tail
        start = self._count - len(tail)
        batch = tail[:BATCH]
        del tail[:BATCH]
        passed, skipped = Status.PASSED, Status.SKIPPED
        intern, hashes, live = self._intern, self._hashes, self._live
        counts = self._packed_counts
        unshared = _UNSHARED
        time = 0.0
        records: list[Any] = []
        origins = self._packed_origins
        last_origin: object = origins  # no case's origin is this
        for position in range(len(batch)):
            case = batch[position]
            status = case.status
            if (
                (status is passed or status is skipped)
                and not case.attempts
                and sys.getrefcount(case) <= unshared
            ):
                records.append((
                    case.name, intern(case.classname), intern(case.suite),
                    0 if status is passed else 1, case.duration, intern(case.file),
                    case.line, case.message, case.failure_type, case.stack_trace,
                    case.stdout, case.stderr, intern(case.source), intern(case.origin),
                ))
                hashes.append(hash((case.suite, case.classname, case.name)))
                if case.origin is not last_origin:
                    last_origin = case.origin
                    origins[case.origin] = None
                time += case.duration
                counts[0 if status is passed else 1] += 1
            else:
                records.append(-1 - len(live))
                self._live_positions[start + position] = len(live)
                live.append(case)
        self._packed_time += time
        self._write(marshal.dumps(records))

    def _write(self, data: bytes) -> None:
        if self._spool is None:
            self._spool = _spool()
        self._batches.append((self._spool.write(data), len(data)))

    # -- reading --------------------------------------------------------------------------

    def _blobs(self) -> Iterator[bytes]:
        spool = self._spool
        for offset, length in self._batches:
            assert spool is not None
            yield spool.read(offset, length)

    def _unpack(self, record: tuple[Any, ...]) -> TestCase:
        from bot.results.model import Status, TestCase

        strings = self._strings
        case = object.__new__(TestCase)
        case.name = record[_NAME]
        case.classname = strings[record[_CLASS]]
        case.suite = strings[record[_SUITE]]
        case.status = Status.PASSED if record[_STATUS] == 0 else Status.SKIPPED
        case.duration = record[_DURATION]
        case.file = strings[record[_FILE]]
        case.line = record[_LINE]
        case.message = record[_MESSAGE]
        case.failure_type = record[_TYPE]
        case.stack_trace = record[_TRACE]
        case.stdout = record[_OUT]
        case.stderr = record[_ERR]
        case.attempts = []
        case.source = strings[record[_SOURCE]]
        case.origin = strings[record[_ORIGIN]]
        return case

    def __iter__(self) -> Iterator[TestCase]:
        live, promoted = self._live, self._promoted
        unpack = self._unpack
        override, until = self._override, self._override_until
        position = 0
        for blob in self._blobs():
            for record in marshal.loads(blob):  # noqa: S302 (our own batches, see _restore)
                if type(record) is int:
                    yield live[-1 - record]
                elif promoted and position in promoted:
                    yield promoted[position]
                else:
                    case = unpack(record)
                    if position < until:
                        case.origin = override
                    yield case
                position += 1
        yield from self._tail

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    @overload
    def __getitem__(self, index: SupportsIndex) -> TestCase: ...
    @overload
    def __getitem__(self, index: slice) -> list[TestCase]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> TestCase | list[TestCase]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index.__index__()
        if position < 0:
            position += self._count
        if not 0 <= position < self._count:
            raise IndexError("case index out of range")
        for at, case in enumerate(self):
            if at == position:
                return case
        raise AssertionError("unreachable: the length counts every case")

    def live(self, position: int, found: TestCase | None = None) -> TestCase:
        """The case at `position` as an object whose changes are kept (unpacked for good).

        `found` is the case iteration just gave for `position`, which spares walking the
        list again; a caller changing cases while iterating passes it."""
        packed = self._count - len(self._tail)
        if position >= packed:
            return self._tail[position - packed]
        k = self._live_positions.get(position)
        if k is not None:
            return self._live[k]
        case = self._promoted.get(position)
        if case is None:
            from bot.results.model import Status

            case = self._promoted[position] = found if found is not None else self[position]
            self._promoted_packed[position] = (
                0 if case.status is Status.PASSED else 1, case.duration
            )
        return case

    def set_origin(self, origin: Origin | None) -> None:
        """Give every case `origin`; packed ones take it as they are unpacked."""
        for case in self._live:
            case.origin = origin
        for case in self._promoted.values():
            case.origin = origin
        for case in self._tail:
            case.origin = origin
        self._override, self._override_until = origin, self._count - len(self._tail)
        self._packed_origins = {origin: None} if self._override_until else {}

    def origins(self) -> dict[Origin | None, None]:
        """Every case's origin, each once (`None` among them when some case has none), in
        the order they first appear among the packed cases, then the others: what the
        reports need to know of origins without unpacking every case."""
        found = dict(self._packed_origins)
        for case in self.objects():
            found.setdefault(case.origin)
        for case in self._promoted.values():
            found.setdefault(case.origin)
        return found

    # -- what totals need, without unpacking ----------------------------------------------

    def packed_summary(self) -> tuple[int, int, float, array[int]]:
        """(passed, skipped, duration) of the packed cases that are still packed, and the
        identity hashes of every case ever packed (promoted ones included: `live()` hands
        a case out to gain attempts, never a new name)."""
        passed, skipped = self._packed_counts
        time = self._packed_time
        for status, duration in self._promoted_packed.values():
            if status == 0:
                passed -= 1
            else:
                skipped -= 1
            time -= duration
        return passed, skipped, time, self._hashes

    def objects(self) -> Iterator[TestCase]:
        """The cases that were never packed (every failure and error, every case with
        attempts, the most recent ones), in their order."""
        yield from self._live
        yield from self._tail

    def promoted(self) -> Iterator[TestCase]:
        """Packed cases that `live()` unpacked for good (they may have gained attempts)."""
        yield from self._promoted.values()

    # -- comparison and pickling ------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CaseList | list):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        if self._count <= 20:
            return f"CaseList({list(self)!r})"
        return f"<CaseList of {self._count:,} cases>"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The batches travel as the bytes they are; the hashes do not (a string's hash
        # differs between processes) and are computed again on arrival.
        state = (
            list(self._blobs()), self._live, self._live_positions, self._promoted,
            self._promoted_packed, self._tail, self._strings, self._count,
            self._packed_counts, self._packed_time,
            self._override, self._override_until, self._packed_origins,
        )
        return (_restore, state)


def _restore(
    blobs: list[bytes], live: list[TestCase], live_positions: dict[int, int],
    promoted: dict[int, TestCase], promoted_packed: dict[int, tuple[int, float]],
    tail: list[TestCase], strings: list[Any], count: int,
    packed_counts: list[int], packed_time: float, override: Origin | None,
    override_until: int, packed_origins: dict[Origin | None, None],
) -> CaseList:
    restored = CaseList()
    restored._live, restored._live_positions = live, live_positions
    restored._promoted, restored._tail = promoted, tail
    restored._promoted_packed = promoted_packed
    restored._strings = strings
    restored._string_index = {value: index for index, value in enumerate(strings)}
    restored._count = count
    restored._packed_counts, restored._packed_time = packed_counts, packed_time
    restored._override, restored._override_until = override, override_until
    restored._packed_origins = packed_origins
    hashes = restored._hashes
    for blob in blobs:
        restored._write(blob)
        for record in marshal.loads(blob):  # noqa: S302 (batches this list's own writer packed)
            if type(record) is not int:
                hashes.append(hash((strings[record[_SUITE]], strings[record[_CLASS]],
                                    record[_NAME])))
    return restored
