"""One report per commit (`HERALD_COALESCE_SECONDS` > 0; `bot.coalesce` says how).

The report handler hands each run it has read to `arrive`: the run is kept as its
workflow's part of the commit, and a `commit.report` job is scheduled for when the commit
has been quiet for the period, or the commit's report is published at once when
`HERALD_COALESCE_EXPECTED_RUNS` are in. `report_commit` is that job: under the commit's
lock, and only if no run has arrived since it was scheduled, it publishes every part as
one report (`Herald (commit)`), which later runs update in place.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from bot.baseline import compare_with_history, thresholds_of
from bot.coalesce import Arrival, Commits, Part, combined, run_label
from bot.compare import Comparison, merge
from bot.context import Context
from bot.events import COMMIT_REPORT, Event, RunRef
from bot.ports import Change, ForgeTarget, ReportOrigin, TransientError
from bot.queue import schedule
from bot.repo_config import RepoConfig
from bot.repo_config_read import publish_configured, read_repo_config
from bot.results.model import TestRun
from bot.routing import Router
from bot.store import LockBusy, Store, lock_ttl

router = Router()

#: How long a commit's report waits for another worker publishing it before retrying.
LOCK_WAIT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Window:
    """How long a commit waits for its runs, and how many it expects."""

    quiet_seconds: float
    expected_runs: int


def window(ctx: Context, config: RepoConfig) -> Window | None:
    """The repository's `.herald.yml` `coalesce` section over the server's settings; None
    when each run is reported on its own."""
    quiet = config.coalesce.quiet_seconds
    expected = config.coalesce.expected_runs
    found = Window(ctx.settings.config.coalesce_seconds if quiet is None else quiet,
                   ctx.settings.config.coalesce_expected_runs if expected is None else expected)
    return found if found.quiet_seconds > 0 else None


def _plain(extra: Any) -> dict[str, Any]:
    """The change's forge coordinates that a job's JSON can carry."""
    return {k: v for k, v in dict(extra).items()
            if isinstance(v, (str, int, float, bool)) or v is None}


def _change_of(payload: dict[str, Any]) -> Change:
    return Change(forge=payload["forge"], repo=payload["repo"], sha=payload["sha"],
                  numbers=tuple(payload["numbers"]), numbers_known=payload["numbers_known"],
                  extra=payload["extra"])


async def arrive(ctx: Context, change: Change, origin: ReportOrigin, run: TestRun,
                 wait: Window, ref: RunRef | None = None) -> Arrival:
    """Keep `run` (`ref`: as its webhook named it) for the commit's report, and see that
    the report follows."""
    commits = Commits(ctx.redis)
    arrival = await commits.add(change, origin, run, ref)
    if arrival.generation is None:
        ctx.log.info("a newer run of this name is in the commit's report already",
                     commit=change.sha, run_name=origin.name)
        return arrival
    if wait.expected_runs and arrival.parts >= wait.expected_runs:
        await publish_commit(ctx, change, arrival.generation)
        return arrival
    quiet = wait.quiet_seconds
    digest = hashlib.sha256(f"{change.forge}\x1f{change.repo}\x1f{change.sha}".encode())
    event = Event(
        provider=change.forge, name=COMMIT_REPORT, native_name=COMMIT_REPORT,
        delivery_id=f"commit-{digest.hexdigest()[:32]}-{arrival.generation}",
        repo=change.repo,
        payload={"forge": change.forge, "repo": change.repo, "sha": change.sha,
                 "numbers": list(change.numbers), "numbers_known": change.numbers_known,
                 "extra": _plain(change.extra), "generation": arrival.generation},
    )
    await schedule(ctx.redis, ctx.settings.queue_name, event,
                   at_ms=int((time.time() + quiet) * 1000))
    ctx.log.info("waiting for the commit's other runs", commit=change.sha,
                 parts=arrival.parts, generation=arrival.generation, quiet_seconds=quiet)
    return arrival


async def _compared(ctx: Context, change: Change, held: list[tuple[Part, TestRun | None]],
                    config: RepoConfig) -> Comparison | None:
    """Each run against its own base, before their jobs are renamed for the commit's
    report, merged into one (`bot.compare.merge`); None without history."""
    if ctx.history is None:
        return None
    thresholds = thresholds_of(config)
    found: list[tuple[str, Comparison | None]] = []
    for part, run in held:
        own = await compare_with_history(ctx.history, part.event_ref(), change, part.origin,
                                         run, thresholds) if run is not None else None
        found.append((run_label(part, change.forge), own))
    return merge(found)


@router.register(COMMIT_REPORT)
async def report_commit(ctx: Context) -> None:
    payload = ctx.event.payload
    await publish_commit(ctx, _change_of(payload), int(payload["generation"]))


async def publish_commit(ctx: Context, change: Change, generation: int) -> None:
    """The commit's one report, unless a run arrived after `generation` (its own job
    publishes then, with it)."""
    name = f"report:commit:{change.forge}:{change.repo}:{change.sha}"
    try:
        async with Store(ctx.redis).lock(name, ttl=lock_ttl(ctx.settings),
                                         wait=LOCK_WAIT_SECONDS):
            commits = Commits(ctx.redis)
            latest = await commits.generation(change)
            if latest != generation:
                ctx.log.info("a later run will report this commit", commit=change.sha,
                             generation=generation, latest=latest)
                return
            forge: ForgeTarget = ctx.clients.forge(change.forge)
            configured = await read_repo_config(ctx.redis, forge, change)
            held = list(await commits.parts(change))
            compared = await _compared(ctx, change, held, configured.config)
            origin, run, parts = combined(change, iter(held), generation)
            run.comparison = compared
            published = await publish_configured(forge, change, origin, run, configured)
    except LockBusy as busy:
        raise TransientError(str(busy), retry_after=busy.retry_after) from None
    totals = run.totals()
    ctx.log.info("reported the commit", reported=True, forge=change.forge, commit=change.sha,
                 runs=len(parts), tests=totals.total, failures=totals.failures,
                 check_run=published.check_run_id, comment=published.comment_id)


__all__ = ["Window", "arrive", "publish_commit", "report_commit", "router", "window"]
