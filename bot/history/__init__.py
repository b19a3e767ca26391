"""Run history: what past runs of a workflow on a branch said, for the reports that compare.

`RunSummary.of` reduces a `TestRun` to what history keeps (per execution: identity,
origin, status, duration, attempts); a `HistoryStore` keeps a bounded window of them per
`HistoryKey` (repository, branch, CI system and workflow) with the window's per-test
`Aggregates` beside it, in Redis (`RedisHistory`, the default) or PostgreSQL
(`PostgresHistory`). `open_history(settings)` picks one from `HERALD_HISTORY_URL`.
What is stored, for how long, and what it could hide: docs/history.md.
"""

from bot.history.store import HistoryStore, Lookup, Retention, open_history
from bot.history.summary import (
    MAX_TESTS,
    Aggregates,
    HistoryError,
    HistoryKey,
    RunSummary,
    TestCounts,
    TestHistory,
    TestSummary,
    identity_hash,
)

__all__ = [
    "MAX_TESTS",
    "Aggregates",
    "HistoryError",
    "HistoryKey",
    "HistoryStore",
    "Lookup",
    "Retention",
    "RunSummary",
    "TestCounts",
    "TestHistory",
    "TestSummary",
    "identity_hash",
    "open_history",
]
