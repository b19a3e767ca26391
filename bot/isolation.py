"""Reading artifacts in child processes with resource limits, so one costs only its own job.

Parsing is CPU-bound Python and libxml2 work on bytes anyone who can open a pull request
can shape: one `<testcase>` with 200,000 attributes burns minutes of CPU. In the worker's
process that time is taken under the GIL from every other job (and from the event loop
that serves them). `ParsePool` reads each artifact in its own child process instead:

- the parent spools the download (`bot.artifacts.spool`, in the event loop), then hands
  the child the spooled file's descriptor and an `ArtifactJob` (artifact name, origin,
  archive limits, inflated bytes left); the child builds the `Collector` itself, runs
  `bot.artifacts.read_file` and sends back an `ArtifactRead` (the `TestRun`, refusals,
  sizes) by pickling;
- each child is forked from a forkserver that has imported the parsers already, so a
  child starts in milliseconds, and lives for one artifact only, so its limits are its
  own: address space (`RLIMIT_AS`), CPU seconds (`RLIMIT_CPU`) and a wall-clock timeout
  the parent enforces by killing that one process;
- a child still reading after `YIELD_AFTER_SECONDS` is lowered to nice 10, so that on a
  busy machine a long read runs on the CPU the short ones leave;
- a limit that is hit becomes a `ParseError` naming the report being read ("could not be
  read: used more than 120 s of CPU"); the job's other artifacts still count.

What is kept when a limit is hit: a child that runs out of CPU time in Python code, or out
of memory, still sends the reports it had finished (the soft CPU limit raises in the child,
which then has `CPU_GRACE_SECONDS` more to send them). A child stuck inside C code is killed
by the kernel at the hard CPU limit, and one over the wall-clock timeout by the parent;
then nothing of that artifact is kept but the error.

Why not `concurrent.futures.ProcessPoolExecutor`: when any of its workers dies (a hard CPU
limit, the OOM killer, a crash in C) it fails every task in flight with `BrokenProcessPool`
and terminates the other workers, so a hostile artifact would cost the concurrent jobs
their parses too; and it cannot kill the one task that overran its wall clock. One process
per artifact, forked from a preloaded forkserver, has `max_tasks_per_child=1`'s isolation
without either problem; a forkserver that died is restarted by `multiprocessing` on the
next start.

`herald render` parses in its own process (it runs on the user's machine, one command at
a time); so do the handler tests, through `InProcessReader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import reduction
from typing import IO, Any, BinaryIO, Protocol

from bot.artifacts import ArtifactLimits, ArtifactTooLarge, Sizes, read_file, spool
from bot.results.model import Attempt, Origin, ParseError, TestCase, TestRun
from bot.results.parsers import _cyclic_gc_paused as cyclic_gc_paused
from bot.settings import Settings

#: Seconds of CPU a child gets after its soft limit to send what it read, before the kernel
#: kills it (a parse stuck in C code never sees the soft limit's signal).
CPU_GRACE_SECONDS = 2
#: Modules the forkserver imports once, so that each child starts with them loaded.
#: "__main__" first: a child started from a script (the `herald` console script) would
#: otherwise run that script again as it starts (multiprocessing's main-module fixup),
#: importing all of Herald each time; loaded in the forkserver, the child finds it there.
PRELOAD = ("__main__", "bot.isolation", "bot.artifacts", "bot.results.parsers")
#: Seconds after which a child still reading yields the CPU to shorter reads: a normal
#: artifact is read well within it (50,000 cases: ~1 s), a hostile or huge one then runs
#: at `YIELDED_NICENESS` on what the worker's other jobs leave, until its limits stop it.
YIELD_AFTER_SECONDS = 5.0
#: nice 10: a tenth of the CPU of a nice-0 process competing for the same core.
YIELDED_NICENESS = 10
#: prctl(2) option: the signal a process gets when its parent (here the forkserver) dies.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Limits of one artifact's child process. Each is `HERALD_PARSE_<NAME>`."""

    #: Address space of the child (`RLIMIT_AS`), the preloaded parsers included (~100 MB).
    max_memory_bytes: int = 1024 * 1024 * 1024
    #: CPU time of the child (`RLIMIT_CPU`, soft limit).
    max_cpu_seconds: int = 120
    #: Wall-clock time from the child's start until its result has arrived.
    timeout_seconds: int = 180
    #: Children at once; by default one per job the worker runs at once.
    processes: int = 10

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        config = settings.config
        return cls(
            max_memory_bytes=config.parse_max_memory_bytes,
            max_cpu_seconds=config.parse_max_cpu_seconds,
            timeout_seconds=config.parse_timeout_seconds,
            processes=config.parse_processes or config.worker_concurrency,
        )


@dataclass(frozen=True, slots=True)
class ArtifactJob:
    """What reading one spooled artifact needs besides its bytes; crosses to the child."""

    #: The run the artifact belongs to (the `TestRun` id).
    run_id: str
    #: The artifact's name, the prefix of every member's source.
    name: str
    #: Tagged on every case read, so two matrix legs never stand in for each other.
    origin: Origin
    limits: ArtifactLimits = field(default_factory=ArtifactLimits)
    #: Inflated bytes this artifact may still use (what its job has left); None: the
    #: artifact's own `limits.max_total_bytes`.
    remaining_bytes: int | None = None


@dataclass(slots=True)
class ArtifactRead:
    """What reading one artifact gave: its cases (with the parsers' errors on
    `run.errors`), the artifact-level refusals and limit errors, and the sizes measured."""

    run: TestRun
    errors: list[ParseError]
    sizes: Sizes


class ArtifactReader(Protocol):
    """How the report handler reads an artifact: in a child process (`ParsePool`, the
    worker) or in this one (`InProcessReader`)."""

    async def read(self, job: ArtifactJob, chunks: AsyncIterator[bytes]) -> ArtifactRead: ...


class OriginSink:
    """A `Collector` as `bot.artifacts` sees it: tags each report with one origin, and
    remembers which report it is reading (a limit error names it)."""

    def __init__(self, collector: Any, origin: Origin, on_report: Callable[[str], None]) -> None:
        self._collector = collector
        self._origin = origin
        self._on_report = on_report
        self.reports = 0

    def add_stream(self, source: str, stream: BinaryIO) -> None:
        self._on_report(source)
        self._collector.add_stream(source, stream, self._origin)
        self.reports += 1


def read_spooled(
    job: ArtifactJob, fp: IO[bytes], on_report: Callable[[str], None] = lambda _: None
) -> ArtifactRead:
    """Read the spooled artifact `fp` into a fresh `Collector`: the same in a child and in
    the worker's own process. `on_report(source)` is called as each report starts."""
    from bot.results.parsers import Collector

    collector = Collector(job.run_id)
    return _read_into(collector, job, fp, OriginSink(collector, job.origin, on_report))


def _read_into(collector: Any, job: ArtifactJob, fp: IO[bytes], sink: OriginSink) -> ArtifactRead:
    errors, sizes = read_file(sink, job.name, fp, job.limits, remaining=job.remaining_bytes)
    run: TestRun = collector.result()
    return ArtifactRead(run, errors, sizes)


async def _spooled(job: ArtifactJob, chunks: AsyncIterator[bytes]) -> IO[bytes] | ArtifactRead:
    """The download on a temporary file, or the refusal of one that is too large."""
    try:
        return await spool(chunks, job.limits.max_download_bytes)
    except ArtifactTooLarge as refusal:
        refused = ParseError(source=job.name, reason=f"refused: {refusal}")
        return ArtifactRead(TestRun(id=job.run_id), [refused], Sizes(0, 0, 0))


class InProcessReader:
    """Reads in a thread of this process: for tests and for callers without a pool."""

    async def read(self, job: ArtifactJob, chunks: AsyncIterator[bytes]) -> ArtifactRead:
        fp = await _spooled(job, chunks)
        if isinstance(fp, ArtifactRead):
            return fp
        with fp:
            return await asyncio.to_thread(read_spooled, job, fp)


# -- what crosses between the processes -------------------------------------------------


def _by_init(instance: Any) -> tuple[type, tuple[Any, ...]]:
    """Pickle a dataclass as its class called with its fields in order: a tuple where the
    default for slotted dataclasses builds a dict of its state per object. The result of a
    50,000-case artifact crosses in 0.23 s instead of 0.36 s."""
    cls = type(instance)
    return cls, tuple(getattr(instance, name) for name in _INIT_FIELDS[cls])


_INIT_FIELDS: dict[type, tuple[str, ...]] = {}
for _cls in (TestCase, Attempt):
    _fields = dataclasses.fields(_cls)
    # Positional construction is only faithful when every field is an __init__ argument.
    if all(f.init for f in _fields):
        _INIT_FIELDS[_cls] = tuple(f.name for f in _fields)
        reduction.ForkingPickler.register(_cls, _by_init)


# -- the child ---------------------------------------------------------------------------


class _CpuTimeUp(BaseException):
    """Raised by the soft CPU limit's signal; a BaseException so no parser swallows it."""


class _InheritedFile:
    """A file descriptor that travels to the child with the process' arguments (as
    `multiprocessing` passes a `Connection`: duplicated over the forkserver's socket)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return _reopen, (reduction.DupFd(self._fd),)


def _reopen(duplicate: Any) -> IO[bytes]:
    return os.fdopen(duplicate.detach(), "rb")


@dataclass(frozen=True, slots=True)
class _Reading:
    """Sent by the child as each report starts, so that a kill still names it."""

    source: str


@dataclass(frozen=True, slots=True)
class _Done:
    """The child's last message: what it read, and the limit it hit, if any."""

    read: ArtifactRead | None
    limit: ParseError | None = None


def _cpu_time_up(_signum: int, _frame: object) -> None:
    # Once is enough: the kernel repeats SIGXCPU every second past the soft limit, and a
    # second exception would interrupt the sending of what was read.
    signal.signal(signal.SIGXCPU, signal.SIG_IGN)
    raise _CpuTimeUp


def _die_with_the_forkserver() -> None:
    """A worker killed outright takes its forkserver along (it watches a pipe from the
    worker); without this its children would go on reading until their CPU limit."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _limit_resources(limits: ParseLimits) -> None:
    cpu = limits.max_cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + CPU_GRACE_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (limits.max_memory_bytes, limits.max_memory_bytes))
    signal.signal(signal.SIGXCPU, _cpu_time_up)


def _child_main(
    conn: multiprocessing.connection.Connection,
    file: IO[bytes],
    job: ArtifactJob,
    limits: ParseLimits,
    initializer: Callable[[], None] | None,
) -> None:
    """One artifact, read under `limits`; the result (or the limit hit) goes to `conn`."""
    _die_with_the_forkserver()
    _limit_resources(limits)
    if initializer is not None:
        initializer()
    from bot.results.parsers import Collector

    current = job.name

    def on_report(source: str) -> None:
        nonlocal current
        current = source
        conn.send(_Reading(source))

    collector = Collector(job.run_id)
    sink = OriginSink(collector, job.origin, on_report)
    done: _Done
    with file:
        try:
            done = _Done(_read_into(collector, job, file, sink))
        except _CpuTimeUp:
            done = _Done(_partial(collector, file, sink), _cpu_error(current, limits))
        except MemoryError:
            done = _Done(_partial(collector, file, sink), _memory_error(current, limits))
    try:
        try:
            conn.send(done)
        except MemoryError:
            conn.send(_Done(None, _memory_error(current, limits)))
    except OSError:
        pass  # the parent stopped waiting (its job was cancelled): nobody left to tell
    conn.close()


def _partial(collector: Any, file: IO[bytes], sink: OriginSink) -> ArtifactRead:
    """The reports finished before a limit was hit (the Collector merges a report only
    once it is read, so the one being read is not among them)."""
    file.seek(0, os.SEEK_END)
    return ArtifactRead(collector.result(), [], Sizes(file.tell(), 0, sink.reports))


def _cpu_error(source: str, limits: ParseLimits) -> ParseError:
    return ParseError(
        source, f"could not be read: used more than {limits.max_cpu_seconds:,} s of CPU"
    )


def _memory_error(source: str, limits: ParseLimits) -> ParseError:
    return ParseError(
        source,
        f"could not be read: used more than {limits.max_memory_bytes:,} bytes of memory",
    )


# -- the parent --------------------------------------------------------------------------


class ParsePool:
    """Child processes that read artifacts, at most `limits.processes` at once.

    `start()` once in the worker's startup (it starts the forkserver, so the first job does
    not wait for it), `aclose()` at shutdown (it kills the children still reading).
    `initializer`, a module-level function, runs in each child before it reads (tests
    register hostile formats with it).
    """

    def __init__(
        self, limits: ParseLimits, *, initializer: Callable[[], None] | None = None
    ) -> None:
        self.limits = limits
        self._initializer = initializer
        self._context = multiprocessing.get_context("forkserver")
        self._slots = asyncio.Semaphore(limits.processes)
        # Each read holds one thread while it waits for its child, and briefly a second one
        # to reap it; the loop's default executor (5 threads on 2 cores) would run short.
        self._threads = ThreadPoolExecutor(
            max_workers=2 * limits.processes, thread_name_prefix="herald-parse"
        )
        self._children: set[multiprocessing.process.BaseProcess] = set()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ParsePool:
        return cls(ParseLimits.from_settings(settings))

    async def start(self) -> None:
        self._context.set_forkserver_preload(list(PRELOAD))
        await asyncio.get_running_loop().run_in_executor(
            self._threads, multiprocessing.forkserver.ensure_running
        )

    async def aclose(self) -> None:
        self._closed = True
        for child in list(self._children):
            child.kill()
        self._threads.shutdown(wait=True, cancel_futures=True)

    async def read(self, job: ArtifactJob, chunks: AsyncIterator[bytes]) -> ArtifactRead:
        if self._closed:
            raise RuntimeError("the parse pool is closed")
        fp = await _spooled(job, chunks)
        if isinstance(fp, ArtifactRead):
            return fp
        with fp:
            async with self._slots:
                return await self._read_in_child(job, fp)

    async def _read_in_child(self, job: ArtifactJob, fp: IO[bytes]) -> ArtifactRead:
        loop = asyncio.get_running_loop()
        limits = self.limits
        receiver, sender = self._context.Pipe(duplex=False)
        child = self._context.Process(
            target=_child_main,
            args=(sender, _InheritedFile(fp.fileno()), job, limits, self._initializer),
            name=f"herald-parse {job.name}",
            daemon=True,
        )
        progress = _Progress(job.name)
        self._children.add(child)
        demote: asyncio.TimerHandle | None = None
        try:
            await loop.run_in_executor(self._threads, child.start)
            sender.close()  # the child holds its own copy; EOF must come when it exits
            if child.pid is not None:
                demote = loop.call_later(YIELD_AFTER_SECONDS, _lower_priority, child.pid)
            try:
                async with asyncio.timeout(limits.timeout_seconds):
                    done = await loop.run_in_executor(self._threads, progress.receive, receiver)
            except TimeoutError:
                child.kill()
                done = _Done(None, ParseError(
                    progress.source,
                    f"could not be read: took longer than {limits.timeout_seconds:,} s",
                ))
            await loop.run_in_executor(self._threads, child.join)
        except BaseException:
            # Cancelled (the job's own deadline) or failed: that child must not outlive it.
            child.kill()
            child.join()
            raise
        finally:
            if demote is not None:
                demote.cancel()
            self._children.discard(child)
            receiver.close()
        if done is None:
            done = _Done(None, _death_error(progress.source, child.exitcode, limits))
        child.close()
        return _outcome(job, fp, done)


class _Progress:
    """The parent's side of one child's pipe: which report it reads, then its result."""

    def __init__(self, source: str) -> None:
        self.source = source

    def receive(self, conn: multiprocessing.connection.Connection) -> _Done | None:
        """Messages until the result; None when the child ended without sending one."""
        while True:
            try:
                # Unpickling a run allocates objects that all stay alive: the collector
                # would only walk them over and over (half the time on 20,000 cases).
                with cyclic_gc_paused():
                    message = conn.recv()
            except (EOFError, OSError):
                return None
            if isinstance(message, _Reading):
                self.source = message.source
            else:
                assert isinstance(message, _Done)
                return message


def _lower_priority(pid: int) -> None:
    # Raising one's own child's nice value needs no privilege; it may have just exited.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, YIELDED_NICENESS)


def _death_error(source: str, exitcode: int | None, limits: ParseLimits) -> ParseError:
    if exitcode == -signal.SIGKILL:
        # Not killed by us (that is the timeout, reported as such): the kernel's hard CPU
        # limit, as a parse stuck in C code meets it. (The OOM killer would also send
        # SIGKILL, but RLIMIT_AS makes allocations fail in the child before it comes.)
        return _cpu_error(source, limits)
    if exitcode is not None and exitcode < 0:
        how = f"signal {signal.Signals(-exitcode).name}"
    else:
        how = f"exit status {exitcode}"
    return ParseError(source, f"could not be read: the parser process ended ({how})")


def _outcome(job: ArtifactJob, fp: IO[bytes], done: _Done) -> ArtifactRead:
    read = done.read
    if read is None:
        fp.seek(0, os.SEEK_END)
        read = ArtifactRead(TestRun(id=job.run_id), [], Sizes(fp.tell(), 0, 0))
    if done.limit is not None:
        read.errors.append(done.limit)
    return read
