"""The history store's contract, its retention rule, and the choice of backend.

Every backend keeps, per `HistoryKey`, the newest `max_runs` runs that finished within
`max_days`, each stored whole as `bot.history.codec` encodes it, and beside them the
`Aggregates` of that window, recomputed whenever a run is written. A report's lookup is
then one or two reads (`HistoryStore.lookup`: the newest run and the aggregates), whatever
the window's length; the cost of folding 50 runs of 10,000 tests is paid once per write.

A run is one run id per key: recording it again (a retried job, a redelivered webhook)
replaces it, unless the stored one is of a later attempt, so it is counted once. A run
that finished before the retention window is not stored at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable
from urllib.parse import urlsplit

from bot.config import ConfigError
from bot.history.codec import decode_run
from bot.history.summary import Aggregates, HistoryError, HistoryKey, RunSummary
from bot.logging import get_logger

if TYPE_CHECKING:
    from bot.settings import Settings

DEFAULT_MAX_RUNS: Final = 50
DEFAULT_MAX_DAYS: Final = 30
#: How many times a write that lost a race with another writer of its key is redone.
WRITE_TRIES: Final = 20

Clock = Callable[[], datetime]

log = get_logger("herald.history")


def utc_now() -> datetime:
    return datetime.now(UTC)


def readable(blobs: Iterable[tuple[str, bytes]], key: HistoryKey) -> tuple[list[RunSummary],
                                                                         list[str]]:
    """(the runs that decode, the ids of those that do not), for a write folding its window.
    A stored run that no longer reads (written by another version, damaged) is logged and
    left out, to be deleted by the write: otherwise no run of its line could ever be
    written again. Reads still raise `HistoryError` on it until then."""
    runs: list[RunSummary] = []
    unreadable: list[str] = []
    for run_id, blob in blobs:
        try:
            runs.append(decode_run(blob, names=False, what=f"history run {run_id}"))
        except HistoryError as exc:
            log.warning("dropping a stored run that does not read", repo=key.repo,
                        branch=key.branch, run=run_id, error=str(exc))
            unreadable.append(run_id)
    return runs, unreadable


async def fold(window: Sequence[RunSummary]) -> Aggregates:
    """`Aggregates.of(window)` in a thread: folding 50 runs of 10,000 tests is ~0.4 s of
    Python, which on the event loop would stall every other job of the worker (their
    lock extensions and request timeouts included); in a thread the loop keeps turning."""
    return await asyncio.to_thread(Aggregates.of, window)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history a key keeps: the newest `max_runs` runs of the last `max_days`."""

    max_runs: int = DEFAULT_MAX_RUNS
    max_days: float = DEFAULT_MAX_DAYS

    def __post_init__(self) -> None:
        if self.max_runs < 1 or self.max_days <= 0:
            raise ValueError("history retention needs at least one run and a positive age")

    @property
    def max_age(self) -> timedelta:
        return timedelta(days=self.max_days)

    def cutoff(self, now: datetime) -> datetime:
        """Runs that finished before this are no longer history."""
        return now - self.max_age

    def keep(
        self, runs: Sequence[tuple[str, datetime]], now: datetime
    ) -> tuple[list[str], list[str]]:
        """(kept, dropped) run ids of `runs` ((id, finished)), kept newest first. Ties in
        time are broken by run id, so every backend keeps and orders the same runs."""
        cutoff = self.cutoff(now)
        ordered = sorted(runs, key=lambda run: (run[1], run[0]), reverse=True)
        live = [run_id for run_id, finished in ordered if finished >= cutoff]
        kept = live[: self.max_runs]
        chosen = set(kept)
        return kept, [run_id for run_id, _ in ordered if run_id not in chosen]


@dataclass(slots=True)
class Lookup:
    """What one report reads of its key's history."""

    #: The newest run (for a sha: the newest run of that commit), or None.
    latest: RunSummary | None
    aggregates: Aggregates


@runtime_checkable
class HistoryStore(Protocol):
    """Run history per `HistoryKey`. Every method may raise `HistoryError`."""

    retention: Retention

    async def record(self, summary: RunSummary) -> bool:
        """Store `summary` and recompute its key's aggregates; False when it was not
        stored (older than the retention window, or an earlier attempt of a stored run)."""
        ...

    async def latest(self, key: HistoryKey, sha: str | None = None) -> RunSummary | None:
        """The newest run of `key` (with `sha`: the newest run of that commit, such as the
        merge base), names included; None when there is none within retention."""
        ...

    async def window(self, key: HistoryKey, limit: int | None = None) -> list[RunSummary]:
        """The newest `limit` runs (all kept when None), newest first, without names."""
        ...

    async def aggregates(self, key: HistoryKey) -> Aggregates:
        """Per-test counts over the window (empty when there is no history)."""
        ...

    async def lookup(self, key: HistoryKey, sha: str | None = None) -> Lookup:
        """`latest` and `aggregates` together, in as few reads as the backend allows."""
        ...

    async def close(self) -> None: ...


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in ("postgresql", "postgres")


async def open_history(settings: Settings, clock: Clock = utc_now) -> HistoryStore | None:
    """The store `HERALD_HISTORY_URL` names (the Redis of `HERALD_REDIS_URL` by default),
    with `HERALD_HISTORY_MAX_RUNS` and `HERALD_HISTORY_MAX_DAYS`; None when
    `HERALD_HISTORY_MAX_RUNS` is 0 (no history kept). PostgreSQL's migrations are applied
    before it is returned."""
    config = settings.config
    if config.history_max_runs == 0:
        return None
    retention = Retention(config.history_max_runs, config.history_max_days)
    url = config.history_url or settings.redis_url
    if url is None:
        raise ConfigError("run history needs HERALD_HISTORY_URL or HERALD_REDIS_URL")
    if is_postgres_url(url):
        from bot.history.postgres import PostgresHistory

        return await PostgresHistory.connect(url, retention, clock=clock)
    from bot.history.redis import RedisHistory

    return RedisHistory.from_url(url, retention, clock=clock)
