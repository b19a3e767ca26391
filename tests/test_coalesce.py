"""A commit's runs kept for its one report: what replaces what, what is never dropped."""

from __future__ import annotations

import redis.asyncio as aioredis

from bot.coalesce import Commits, combined
from bot.events import COMMIT_REPORT, Event, RunRef
from bot.ports import Change, ReportOrigin
from bot.queue import schedule
from bot.results.model import Origin, RunStatus, Status, Suite, TestCase, TestRun

CHANGE = Change(forge="github", repo="acme/shop", sha="3f9b1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c",
                numbers=(17,))


def origin(name: str, sequence: int, attempt: int = 1, ci: str = "github") -> ReportOrigin:
    return ReportOrigin(run=RunRef(provider=ci, repo="acme/shop", run_id=str(sequence)),
                        name=name, sequence=sequence, attempt=attempt)


def run(*statuses: Status, job: str = "test-results") -> TestRun:
    cases = [TestCase(name=f"t{i}", classname="shop", status=s, origin=Origin(job))
             for i, s in enumerate(statuses)]
    return TestRun(id="r", suites=[Suite("unit", cases)])


async def parts_of(commits: Commits) -> list[tuple[str | None, list[Status]]]:
    return [(part.origin.name, [c.status for c in kept.cases()] if kept else [])
            for part, kept in await commits.parts(CHANGE)]


async def test_a_late_delivery_of_an_older_run_never_replaces_the_newer_one(redis_url) -> None:
    commits = Commits(aioredis.Redis.from_url(redis_url))
    await commits.add(CHANGE, origin("CI", sequence=20), run(Status.FAILED))
    late = await commits.add(CHANGE, origin("CI", sequence=19), run(Status.PASSED))

    assert late.generation is None
    assert await parts_of(commits) == [("CI", [Status.FAILED])]


async def test_a_rerun_attempt_of_one_run_replaces_its_part(redis_url) -> None:
    commits = Commits(aioredis.Redis.from_url(redis_url))
    await commits.add(CHANGE, origin("CI", sequence=20), run(Status.FAILED))
    again = await commits.add(CHANGE, origin("CI", sequence=20, attempt=2), run(Status.PASSED))

    assert again.generation == 2 and again.parts == 1
    assert await parts_of(commits) == [("CI", [Status.PASSED])]


async def test_a_run_too_large_to_keep_is_named_in_the_commits_report(redis_url) -> None:
    commits = Commits(aioredis.Redis.from_url(redis_url), part_max_bytes=64)
    arrival = await commits.add(CHANGE, origin("nightly", 5), run(*[Status.PASSED] * 500))
    await Commits(aioredis.Redis.from_url(redis_url)).add(CHANGE, origin("CI", 6),
                                                          run(Status.PASSED))

    assert arrival.alone
    _, merged, _ = combined(CHANGE, await commits.parts(CHANGE), 2)
    [error] = merged.errors
    assert error.source == "nightly" and error.reason.startswith("reported on its own")
    assert merged.overall_status() is RunStatus.PASSED  # named, so the check is neutral
    assert merged.errors  # ... never a plain success


async def test_each_runs_jobs_stay_named_and_the_worst_verdict_holds(redis_url) -> None:
    commits = Commits(aioredis.Redis.from_url(redis_url))
    cancelled = run(Status.PASSED, job="unit")
    cancelled.status = RunStatus.CANCELLED
    await commits.add(CHANGE, origin("CI (3.11)", 1), cancelled)
    await commits.add(CHANGE, origin("app/main", 2, ci="jenkins"), run(Status.PASSED, job="unit"))

    report_origin, merged, parts = combined(CHANGE, await commits.parts(CHANGE), 2)

    assert {c.origin.name for c in merged.cases() if c.origin} == {
        "CI (3.11): unit", "jenkins: app/main: unit"}
    assert merged.overall_status() is RunStatus.CANCELLED
    assert (report_origin.ci, report_origin.name, report_origin.sequence) == ("commit", None, 2)
    assert len(parts) == 2


async def test_failures_win_over_any_part_that_reported_passed(redis_url) -> None:
    commits = Commits(aioredis.Redis.from_url(redis_url))
    green = run(Status.PASSED)
    green.status = RunStatus.PASSED
    await commits.add(CHANGE, origin("lint", 1), green)
    await commits.add(CHANGE, origin("CI", 2), run(Status.FAILED))

    _, merged, _ = combined(CHANGE, await commits.parts(CHANGE), 2)

    assert merged.overall_status() is RunStatus.FAILED


async def test_a_retried_handler_schedules_the_commits_report_once(redis_url) -> None:
    client = aioredis.Redis.from_url(redis_url)
    event = Event(provider="github", name=COMMIT_REPORT, native_name=COMMIT_REPORT,
                  delivery_id="commit-abc-1", payload={})

    first = await schedule(client, "herald:test-queue", event, at_ms=10**13)
    second = await schedule(client, "herald:test-queue", event, at_ms=10**13)

    assert (first, second) == ("queued", "duplicate")
    assert await client.zcard("herald:test-queue") == 1
