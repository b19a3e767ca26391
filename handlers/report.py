"""Report a finished CI run where the change is reviewed: results, failures, artifacts.

Provider-neutral: it uses only the roles of `bot.ports`. On `build.completed` it takes a
Redis lock for the run (redeliveries and retries of one run never race), then reads
source → results → forge: the event's CI source gives the build, the artifacts (streamed
through `bot.artifacts` into the parsers' `Collector`; in the worker, each artifact in a
child process with CPU and memory limits: `bot.isolation`), the results the CI parsed itself,
the run's `Change` and its `ReportOrigin`; the forge target holding the change publishes
once (it upserts: check run, status, sticky comment), named after the origin so several CI
systems on one commit never overwrite each other. What was reported on which commit is
recorded (`Store.record_report`) for `/retest`.

A run with nothing to report (no matching artifact, no native results) publishes nothing:
a lint workflow should not grow an empty test report on every commit.

A forge that reads `.herald.yml` (`bot.ports.RepoFiles`: GitHub, GitLab) has it read at
the head commit before the artifacts are chosen (its `artifacts` patterns replace the
configured ones), and is handed what it decides for publishing
(`bot.repo_config.publish_options`): the surfaces, the comment mode, the gate, and the
notices a report must carry when the file could not be applied.

When the job gives up (a permanent error, a transient one on the last try, a run that
takes too long to read, or a bug) the forge's `publish_error` leaves the reviewer an
answer saying what went wrong and how to retry, still under the run's lock. A job that
ARQ cancels at its timeout is never retried, so the handler stops itself first,
`GIVE_UP_MARGIN_SECONDS` early, to still answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from bot.artifacts import (
    DEFAULT_ARTIFACT_PATTERNS,  # noqa: F401 (re-exported: where the report reads them)
    ArchiveBudget,
    ArtifactLimits,
    Sizes,
    artifact_patterns,
    budget_spent,
    matches,
)
from bot.baseline import compare_with_history, record, thresholds_of
from bot.context import Context
from bot.events import BUILD_COMPLETED, RunRef
from bot.isolation import ArtifactJob, ArtifactReader, InProcessReader
from bot.ports import (
    BaseBranches,
    Build,
    Change,
    CISource,
    FailureAccounting,
    ForgeTarget,
    PermanentError,
    ProviderError,
    Published,
    RemoteArtifact,
    RunSurface,
    TransientError,
)
from bot.repo_config_read import publish_configured, read_repo_config
from bot.results.model import Artifact, Origin, ParseError, TestRun
from bot.routing import Router
from bot.settings import Settings
from bot.store import LockBusy, Store, lock_ttl
from handlers import commit

router = Router()

#: How long a second delivery of one run waits for the first to finish before it is
#: retried later (the lock's remaining TTL tells when).
LOCK_WAIT_SECONDS = 10.0
#: How much of the job timeout is kept for the give-up answer (one or two API calls, each
#: with its own request timeout) when reading a run runs long.
GIVE_UP_MARGIN_SECONDS: Final = 30.0
UNEXPECTED: Final = Exception("an unexpected error (the worker's log has the details)")
GAVE_UP: Final = (
    "Herald could not report on this run: {error}. "
    "Re-run the CI run, or ask a maintainer to redeliver the webhook, to try again."
)


def wanted(artifacts: Sequence[RemoteArtifact], patterns: Sequence[str]) -> list[RemoteArtifact]:
    """The artifacts whose names match any pattern, in the CI's order."""
    return [a for a in artifacts if matches(a.name, patterns)]


def report_budget(settings: Settings) -> float:
    """Seconds the handler may spend on a run: the job timeout less the give-up margin,
    and at least half of it when the job timeout is shorter than twice the margin."""
    job_timeout = settings.job_timeout_seconds()
    return max(job_timeout - GIVE_UP_MARGIN_SECONDS, job_timeout / 2)


def lock_name(ref: RunRef) -> str:
    return f"report:{ref.provider}:{ref.repo}:{ref.run_id}"


@router.register(BUILD_COMPLETED)
async def report(ctx: Context) -> None:
    ref = ctx.event.run
    if ref is None:
        ctx.log.warning("build.completed without a run reference")
        return
    source: CISource = ctx.clients.source(ref.provider)
    # The budget counts from here: waiting for the lock spends the job's time too.
    started = asyncio.get_running_loop().time()
    try:
        async with Store(ctx.redis).lock(
            lock_name(ref), ttl=lock_ttl(ctx.settings), wait=LOCK_WAIT_SECONDS
        ):
            # Giving up happens under the lock too: an answer and another delivery's report
            # must not both find no check run (or note) and both create one.
            await _report_or_give_up(ctx, ref, source, started)
    except LockBusy as busy:
        # Another worker is reporting this very run; come back when it is surely done.
        raise TransientError(str(busy), retry_after=busy.retry_after) from None


@dataclass(slots=True)
class _Progress:
    """What one report has learned so far, for the give-up answer to use."""

    build: Build | None = None


async def _report_or_give_up(
    ctx: Context, ref: RunRef, source: CISource, started: float
) -> None:
    max_tries = ctx.settings.job_max_tries()
    progress = _Progress()
    try:
        await _report_in_time(ctx, ref, source, progress, started)
    except PermanentError as exc:
        await _give_up(ctx, source, ref, progress, exc)
    except TransientError as exc:
        if ctx.job_try < max_tries:
            raise
        await _give_up(ctx, source, ref, progress, exc)
    except Exception as exc:
        # A bug of ours, or a provider error no retry can mend: the worker logs it with its
        # traceback, the reviewer still gets an answer (without our internals in it).
        await _give_up(ctx, source, ref, progress,
                       exc if isinstance(exc, ProviderError) else UNEXPECTED)
        raise


async def _report_in_time(
    ctx: Context, ref: RunRef, source: CISource, progress: _Progress, started: float
) -> None:
    """`_report`, stopped with a `PermanentError` once the budget since `started` is spent."""
    budget = report_budget(ctx.settings)
    try:
        async with asyncio.timeout_at(started + budget) as deadline:
            await _report(ctx, ref, source, progress)
    except TimeoutError:
        if not deadline.expired():
            raise
        # Per-request timeouts bound each read, not a slow artifact's many reads.
        raise PermanentError(f"reading the run took longer than {budget:g} s") from None


async def _report(ctx: Context, ref: RunRef, source: CISource, progress: _Progress) -> None:
    """Source, then results, then the forge: the CI system says what ran and where the
    change lives; the forge that holds the change gets the report."""
    build = progress.build = await source.get_build(ref)
    listed = await source.list_artifacts(ref)
    native = await source.native_results(ref)
    if not listed and native is None:
        ctx.log.info("nothing to report", artifacts=0, reported=False)
        return
    change = await source.change_of(ref, build)
    forge: ForgeTarget = ctx.clients.forge(change.forge)
    # The repository's `.herald.yml` at the head commit, where the forge can read it; a
    # file that cannot be used gives the defaults, and the report says why.
    configured = await read_repo_config(ctx.redis, forge, change)
    patterns = configured.config.artifacts or artifact_patterns(ctx.settings, ref.provider)
    chosen = wanted(listed, patterns)
    if not chosen and native is None:
        ctx.log.info("nothing to report", artifacts=len(listed), reported=False,
                     repo_config=configured.source)
        return
    run = await collect(ctx, ref, source, chosen)
    if native is not None:
        run.merge([native])
    run.artifacts = [Artifact(name=a.name, size=a.size, url=a.url) for a in chosen]
    run.url = build.url or ref.url
    if isinstance(source, FailureAccounting):
        source.account_for_failures(ref, build, run)
    origin = source.origin_of(ref, build)
    if ctx.history is not None:
        # Before publishing: the report leads with what is new since the base.
        ref = await _with_base(ctx, ref, forge, change)
        run.comparison = await compare_with_history(
            ctx.history, ref, change, origin, run, thresholds_of(configured.config))
    published: Published | None = None
    wait = commit.window(ctx, configured.config)
    arrival = await commit.arrive(ctx, change, origin, run, wait, ref) if wait else None
    if arrival is None or arrival.alone:
        published = await publish_configured(forge, change, origin, run, configured)
    # `/retest` on this commit asks every CI system recorded here what failed.
    await Store(ctx.redis).record_report(change, origin.run)
    if ctx.history is not None:
        await record(ctx.history, ref, change, origin, run)
    if isinstance(source, RunSurface):
        try:
            await source.describe(ref, run, change)
        except ProviderError as exc:
            # The CI's own surface is second: the reviewer has the report already.
            ctx.log.warning("could not write the summary on the run itself", error=str(exc))
    totals = run.totals()
    ctx.log.info(
        "reported",
        reported=True,
        forge=change.forge,
        artifacts=len(chosen),
        tests=totals.total,
        failures=totals.failures,
        parse_errors=len(run.errors),
        check_run=published.check_run_id if published else None,
        comment=published.comment_id if published else None,
        created=published.created if published else None,
        coalesced=published is None,
    )


async def _with_base(ctx: Context, ref: RunRef, forge: ForgeTarget, change: Change) -> RunRef:
    """`ref` with its pull request's target (`base_branch`, `base_sha`) where its webhook
    did not name it and the forge can (a CI system apart from the forge); the comparison
    needs nothing else. A forge failing to say costs the comparison its base only."""
    if ref.extra.get("base_branch") or not isinstance(forge, BaseBranches):
        return ref
    try:
        found = await forge.base_of(change)
    except ProviderError as exc:
        ctx.log.warning("could not ask the forge for the pull request's base", error=str(exc))
        return ref
    if found is None:
        return ref
    branch, sha = found
    return replace(ref, extra={**ref.extra, "base_branch": branch,
                               **({"base_sha": sha} if sha else {})})


async def collect(
    ctx: Context, ref: RunRef, ci: CISource, artifacts: Sequence[RemoteArtifact]
) -> TestRun:
    """Every chosen artifact streamed into the parsers; refusals become ParseErrors.

    Artifacts of one name are attempts of one job, oldest first (`CISource.list_artifacts`):
    the newest is the result, and an earlier attempt's failures become retries of the
    matching executions, so a test that failed and then passed on a re-run reads as flaky.
    Different names never stand in for each other.

    One budget of inflated bytes spans all of them: a job that lists many artifacts
    gets no more than one that lists one, and what the budget refuses is named.
    """
    limits = ArtifactLimits.from_settings(ctx.settings)
    budget = ArchiveBudget(limits.max_total_bytes)
    attempts: dict[str, list[RemoteArtifact]] = {}
    for artifact in artifacts:
        attempts.setdefault(artifact.name, []).append(artifact)
    run = TestRun(id=ref.run_id)
    for name, tries in attempts.items():
        latest: TestRun | None = None
        for artifact in tries:
            this = await _read_one(ctx, ref, ci, artifact, limits, budget)
            if latest is not None:
                this.absorb_retry(latest)
                if latest.errors:
                    # Superseded by this attempt: what it could not read no longer counts.
                    ctx.log.info("earlier attempt's unreadable inputs superseded",
                                 artifact=name, errors=len(latest.errors))
            latest = this
        if latest is not None:
            run.merge([latest])
    return run


async def _read_one(
    ctx: Context,
    ref: RunRef,
    ci: CISource,
    artifact: RemoteArtifact,
    limits: ArtifactLimits,
    budget: ArchiveBudget,
) -> TestRun:
    if budget.remaining <= 0:
        # Not even downloaded: nothing of it could be read.
        reason = f"refused: {budget_spent(budget.limit)}"
        return TestRun(id=ref.run_id, errors=[ParseError(source=artifact.name, reason=reason)])
    # Each artifact is its own origin (CI templates name them per job or matrix leg), so
    # two legs' results never stand in for each other in the report.
    job = ArtifactJob(ref.run_id, artifact.name, Origin(artifact.name, url=artifact.url),
                      limits, remaining_bytes=budget.remaining)
    # The worker's pool parses in a child process with CPU and memory limits, so that a
    # hostile artifact costs only this job; without one (tests), in this process.
    reader: ArtifactReader = ctx.artifacts or IN_PROCESS
    try:
        read = await reader.read(job, ci.open_artifact(ref, artifact))
    except PermanentError as exc:
        # One expired or missing artifact must not hide the others.
        return TestRun(
            id=ref.run_id, errors=[ParseError(source=artifact.name, reason=str(exc))]
        )
    budget.spend(read.sizes)
    _log_read(ctx, artifact, read.sizes, budget)
    run = read.run
    run.errors.extend(read.errors)
    return run


def _log_read(ctx: Context, artifact: RemoteArtifact, sizes: Sizes, budget: ArchiveBudget) -> None:
    ctx.log.debug(
        "artifact read",
        artifact=artifact.name,
        downloaded=sizes.downloaded,
        inflated=sizes.inflated,
        budget_left=budget.remaining,
        reports=sizes.reports,
    )


IN_PROCESS: Final = InProcessReader()


async def _give_up(
    ctx: Context, source: CISource, ref: RunRef, progress: _Progress, error: Exception
) -> None:
    ctx.log.error("giving up on this run", error=str(error), job_try=ctx.job_try)
    ctx.gave_up = True  # a redelivery of this webhook then runs the job again
    try:
        change = await source.change_of(ref, progress.build)
        forge: ForgeTarget = ctx.clients.forge(change.forge)
        await forge.publish_error(
            change, source.origin_of(ref, progress.build),
            GAVE_UP.format(error=str(error).rstrip(".")),
        )
    except ProviderError as exc:
        # No change to tell (the run's commit is unknown), no forge configured for it, or
        # the forge failing too: the log is all there is.
        ctx.log.error("could not tell the reviewer either", error=str(exc))
