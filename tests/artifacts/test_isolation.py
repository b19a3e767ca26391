"""bot.isolation: an artifact read in a child process under limits costs only its own job.

The hostile inputs are test-only formats that each child registers through the pool's
initializer: they burn CPU in Python or in C code, eat memory, or sleep, deterministically
and whatever the real parsers' own caps make of hostile XML.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, ClassVar

import pytest

from bot.artifacts import ArtifactLimits
from bot.isolation import (
    YIELD_AFTER_SECONDS,
    YIELDED_NICENESS,
    ArtifactJob,
    ArtifactRead,
    InProcessReader,
    ParseLimits,
    ParsePool,
)
from bot.results.model import Origin, ParseError, TestRun
from bot.settings import ConfigError, Settings
from tests.fakes import zipped

REPORTS = Path(__file__).parent.parent / "fixtures" / "reports"
SUREFIRE = (REPORTS / "surefire.xml").read_bytes()
PYTEST = (REPORTS / "pytest-xunit1.xml").read_bytes()
MiB = 1024 * 1024


class _Hostile:
    """A test-only report format, recognised by its first bytes."""

    name: ClassVar[str]
    magic: ClassVar[bytes]

    @classmethod
    def detect(cls, first: bytes) -> bool:
        return first.startswith(cls.magic)


class BurnsCpuInPython(_Hostile):
    name, magic = "burns CPU in Python", b"BURN PYTHON"

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        while True:
            pass


class BurnsCpuInC(_Hostile):
    """Like libxml2 or lxml on a pathological element: no Python code runs to see a signal."""

    name, magic = "burns CPU in C", b"BURN C"

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        sum(range(10**15))  # builtin sum over a range never checks for signals
        raise AssertionError("unreachable in a test's lifetime")


class EatsMemory(_Hostile):
    name, magic = "eats memory", b"EAT MEMORY"

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        hoard = []
        while True:
            hoard.append(bytearray(16 * MiB))


class Sleeps(_Hostile):
    name, magic = "sleeps", b"SLEEP"

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        time.sleep(3600)
        raise AssertionError("unreachable in a test's lifetime")


def install_hostile_formats() -> None:
    """The pool's initializer: runs in each child before it reads."""
    from bot.results import parsers

    hostile = (BurnsCpuInPython, BurnsCpuInC, EatsMemory, Sleeps)
    parsers.STREAM_FORMATS = (*hostile, *parsers.STREAM_FORMATS)  # type: ignore[assignment]


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(data), 64 * 1024):
        yield data[at : at + 64 * 1024]


def job(name: str = "junit") -> ArtifactJob:
    return ArtifactJob("100", name, Origin(name, url=f"https://ci.example/{name}"))


LIMITS = ParseLimits(max_memory_bytes=1024 * MiB, max_cpu_seconds=1, timeout_seconds=30,
                     processes=2)


@pytest.fixture
async def pool() -> AsyncIterator[ParsePool]:
    started = ParsePool(LIMITS, initializer=install_hostile_formats)
    await started.start()
    yield started
    await started.aclose()


async def read(pool: ParsePool, data: bytes, name: str = "junit") -> ArtifactRead:
    return await pool.read(job(name), chunks(data))


def until_a_child_runs() -> None:
    deadline = time.monotonic() + 10
    while not multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.01)


def errors(read: ArtifactRead) -> dict[str, str]:
    return {e.source: e.reason for e in [*read.run.errors, *read.errors]}


async def test_a_normal_artifact_round_trips_its_run_exactly(pool: ParsePool) -> None:
    artifact = zipped({"surefire.xml": SUREFIRE, "pytest.xml": PYTEST, "notes.xml": b"<a/>"})

    isolated = await read(pool, artifact)
    local = await InProcessReader().read(job(), chunks(artifact))

    assert isolated.run.totals().total > 0
    assert isolated == local
    assert {c.origin for c in isolated.run.cases()} == {job().origin}
    assert errors(isolated) == {"junit/notes.xml": "not a test report: root element <a>"}


async def test_cpu_spent_in_python_past_the_limit_names_the_report_and_keeps_earlier_ones(
    pool: ParsePool,
) -> None:
    artifact = zipped({"a/surefire.xml": SUREFIRE, "b/burn.txt": b"BURN PYTHON"})

    result = await read(pool, artifact)

    assert errors(result) == {"junit/b/burn.txt": "could not be read: used more than 1 s of CPU"}
    assert {c.source for c in result.run.cases()} == {"junit/a/surefire.xml"}


async def test_cpu_spent_in_c_code_is_stopped_by_the_kernel_and_still_named(
    pool: ParsePool,
) -> None:
    artifact = zipped({"a/surefire.xml": SUREFIRE, "b/burn.txt": b"BURN C"})

    result = await read(pool, artifact)

    # The child is killed at the hard limit: what it had read is lost with it.
    assert errors(result) == {"junit/b/burn.txt": "could not be read: used more than 1 s of CPU"}
    assert result.run.totals().total == 0


async def test_memory_past_the_limit_is_a_named_error() -> None:
    limits = ParseLimits(max_memory_bytes=512 * MiB, max_cpu_seconds=30, timeout_seconds=30)
    small = ParsePool(limits, initializer=install_hostile_formats)
    await small.start()
    try:
        result = await read(small, b"EAT MEMORY", name="hoard.txt")
    finally:
        await small.aclose()

    assert errors(result) == {
        "hoard.txt": "could not be read: used more than 536,870,912 bytes of memory"
    }


async def test_a_read_past_the_wall_clock_timeout_is_killed_and_named() -> None:
    limits = ParseLimits(max_cpu_seconds=30, timeout_seconds=1)
    slow = ParsePool(limits, initializer=install_hostile_formats)
    await slow.start()
    try:
        result = await read(slow, zipped({"nap.txt": b"SLEEP"}))
    finally:
        await slow.aclose()

    assert errors(result) == {"junit/nap.txt": "could not be read: took longer than 1 s"}
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize(
    ("hostile", "wall_seconds"), [(b"BURN PYTHON", 30), (b"BURN C", 30), (b"SLEEP", 1)]
)
async def test_the_pool_serves_the_next_artifact_after_a_limit_is_hit(
    hostile: bytes, wall_seconds: int
) -> None:
    limits = ParseLimits(max_cpu_seconds=1, timeout_seconds=wall_seconds, processes=1)
    one = ParsePool(limits, initializer=install_hostile_formats)
    await one.start()
    try:
        hit = await read(one, hostile, name="hostile.txt")
        after = await read(one, SUREFIRE, name="surefire.xml")
    finally:
        await one.aclose()

    assert list(errors(hit)) == ["hostile.txt"]
    assert errors(after) == {}
    assert after.run.totals().total > 0


async def test_an_artifact_read_beside_one_that_is_killed_is_unaffected(pool: ParsePool) -> None:
    # What a process pool executor gets wrong: one dead worker fails every task in flight.
    normal = zipped({"surefire.xml": SUREFIRE})
    expected = await InProcessReader().read(job(), chunks(normal))

    hostile, result = await asyncio.gather(
        read(pool, b"BURN C", name="burn.txt"), read(pool, normal)
    )

    assert errors(hostile) == {"burn.txt": "could not be read: used more than 1 s of CPU"}
    assert result == expected


async def test_a_cancelled_read_takes_its_child_with_it(pool: ParsePool) -> None:
    reading = asyncio.create_task(read(pool, b"SLEEP", name="nap.txt"))
    await asyncio.to_thread(until_a_child_runs)

    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading

    assert multiprocessing.active_children() == []


async def test_a_read_that_runs_long_yields_the_cpu_to_shorter_ones(pool: ParsePool) -> None:
    reading = asyncio.create_task(read(pool, b"SLEEP", name="nap.txt"))
    await asyncio.to_thread(until_a_child_runs)
    [child] = multiprocessing.active_children()
    assert child.pid is not None
    assert os.getpriority(os.PRIO_PROCESS, child.pid) == 0

    await asyncio.sleep(YIELD_AFTER_SECONDS + 0.5)

    assert os.getpriority(os.PRIO_PROCESS, child.pid) == YIELDED_NICENESS
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading


async def test_a_download_over_the_cap_is_refused_before_any_child_starts(
    pool: ParsePool,
) -> None:
    too_large = ArtifactJob("100", "junit", Origin("junit"), ArtifactLimits(max_download_bytes=10))

    result = await pool.read(too_large, chunks(SUREFIRE))

    assert result.errors == [
        ParseError("junit", "refused: download larger than 10 bytes")
    ]


def test_limits_default_to_a_gibibyte_two_minutes_and_one_process_per_job() -> None:
    assert ParseLimits.from_settings(Settings.from_env({})) == ParseLimits(
        max_memory_bytes=1024 * MiB, max_cpu_seconds=120, timeout_seconds=180, processes=10
    )
    assert ParseLimits.from_settings(
        Settings.from_env({"HERALD_WORKER_CONCURRENCY": "4"})
    ).processes == 4


def test_limits_are_read_from_the_environment() -> None:
    environ = {
        "HERALD_PARSE_MAX_MEMORY_BYTES": "268_435_456",
        "HERALD_PARSE_MAX_CPU_SECONDS": "30",
        "HERALD_PARSE_TIMEOUT_SECONDS": "45",
        "HERALD_PARSE_PROCESSES": "3",
    }
    assert ParseLimits.from_settings(Settings.from_env(environ)) == ParseLimits(
        max_memory_bytes=256 * MiB, max_cpu_seconds=30, timeout_seconds=45, processes=3
    )


@pytest.mark.parametrize("value", ["0", "lots", "-5"])
def test_a_malformed_limit_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_PARSE_MAX_CPU_SECONDS"):
        ParseLimits.from_settings(Settings.from_env({"HERALD_PARSE_MAX_CPU_SECONDS": value}))
