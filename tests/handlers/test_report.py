"""handlers.report: what is read, what is published, and the answer left when giving up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

import handlers.report as report_module
from bot.events import BUILD_COMPLETED, Event, RunRef
from bot.results.model import Origin, Status, Suite, TestCase, TestRun
from bot.settings import ConfigError, Settings
from bot.store import Store
from handlers.report import (
    DEFAULT_ARTIFACT_PATTERNS,
    artifact_patterns,
    lock_name,
    lock_ttl,
    report,
    report_budget,
    wanted,
)
from providers.base import Build, PermanentError, RemoteArtifact, TransientError
from tests.fakes import FakeCI, FakeForge, context, zipped

JUNIT = (
    b'<?xml version="1.0"?><testsuite name="unit">'
    b'<testcase classname="app.Calc" name="adds"/>'
    b'<testcase classname="app.Calc" name="divides"><failure message="ZeroDivisionError"/>'
    b"</testcase></testsuite>"
)



REF = RunRef(provider="github", repo="octo/app", run_id="100", sha="abc",
             url="https://github.com/octo/app/actions/runs/100")
EVENT = Event(provider="github", name=BUILD_COMPLETED, native_name="workflow_run",
              delivery_id="d-1", repo="octo/app", run=REF)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.mark.parametrize(
    ("name", "picked"),
    [
        ("test-results", True), ("junit-report", True), ("surefire-reports", True),
        ("pytest-results-3.11", True), ("TestResults", True), ("e2e.trx", True),
        ("coverage", False), ("dist", False), ("docs-site", False),
    ],
)
def test_default_patterns_pick_test_result_artifacts(name: str, picked: bool) -> None:
    artifacts = [RemoteArtifact(id="1", name=name)]
    assert bool(wanted(artifacts, DEFAULT_ARTIFACT_PATTERNS)) is picked


@pytest.mark.parametrize(("timeout", "ttl"), [(None, 360.0), ("120", 360.0), ("900", 960.0)])
def test_the_run_lock_outlives_the_job_timeout(timeout: str | None, ttl: float) -> None:
    environ = {"HERALD_JOB_TIMEOUT_SECONDS": timeout} if timeout else {}
    assert lock_ttl(Settings.from_env(environ)) == ttl


@pytest.mark.parametrize("timeout", ["five minutes", "0", "-1", "nan", "inf"])
def test_a_malformed_job_timeout_is_refused_not_guessed(timeout: str) -> None:
    # The worker refuses it too: a lock sized from a guess could lapse mid-job.
    with pytest.raises(ConfigError, match="HERALD_JOB_TIMEOUT_SECONDS"):
        lock_ttl(Settings.from_env({"HERALD_JOB_TIMEOUT_SECONDS": timeout}))


def test_patterns_are_configurable_per_provider() -> None:
    settings = Settings.from_env({"HERALD_GITHUB_ARTIFACT_PATTERNS": "reports-*, *.xml"})
    assert artifact_patterns(settings, "github") == ("reports-*", "*.xml")
    assert artifact_patterns(settings, "gitlab") == DEFAULT_ARTIFACT_PATTERNS


async def test_reports_the_matching_artifacts_and_skips_the_rest(redis) -> None:
    ci = FakeCI(artifacts={
        "test-results": zipped({"unit.xml": JUNIT, "screenshot.png": b"\x89PNG"}),
        "dist": b"not read",
    })
    forge = FakeForge()
    await report(context(EVENT, redis, ci=ci, forge=forge))
    assert ("open_artifact", "dist") not in ci.calls
    [run] = forge.published
    assert [(c.name, c.status) for c in run.cases()] == [
        ("adds", Status.PASSED), ("divides", Status.FAILED)
    ]
    assert [(a.name, a.size) for a in run.artifacts] == [
        ("test-results", len(ci.artifacts["test-results"]))
    ]
    assert run.url == "https://ci.example/100"
    assert run.errors == []


async def test_native_results_are_merged_in(redis) -> None:
    native = TestRun(id="n", suites=[Suite("api", [TestCase("lists", "api.Items", "api")])])
    ci = FakeCI(artifacts={"junit": JUNIT}, native=native)
    forge = FakeForge()
    await report(context(EVENT, redis, ci=ci, forge=forge))
    assert sorted(c.name for c in forge.published[0].cases()) == ["adds", "divides", "lists"]


async def test_a_run_without_results_publishes_nothing(redis) -> None:
    ci = FakeCI(artifacts={"dist": b"binary"})
    forge = FakeForge()
    ctx = context(EVENT, redis, ci=ci, forge=forge)
    await report(ctx)
    assert forge.calls == []
    assert "nothing to report" in ctx.log.events("info")


async def test_a_bad_artifact_is_named_and_the_good_ones_still_count(redis) -> None:
    ci = FakeCI(
        artifacts={"junit": JUNIT, "test-logs": b"plain text", "old-results": b""},
        failures={"open_artifact:old-results": PermanentError("artifact has expired")},
    )
    forge = FakeForge()
    await report(context(EVENT, redis, ci=ci, forge=forge))
    run = forge.published[0]
    assert run.totals().total == 2
    assert {(e.source, e.reason) for e in run.errors} == {
        ("test-logs", "refused: not a zip archive, a gzip file or a test report"),
        ("old-results", "artifact has expired"),
    }


async def test_a_transient_failure_is_retried_until_the_last_try(redis) -> None:
    ci = FakeCI(artifacts={"junit": JUNIT},
                failures={"get_build": TransientError("GitHub answered 502", retry_after=3)})
    forge = FakeForge()
    with pytest.raises(TransientError):
        await report(context(EVENT, redis, ci=ci, forge=forge, job_try=4))
    assert forge.calls == []
    ctx = context(EVENT, redis, ci=ci, forge=forge, job_try=5)
    await report(ctx)
    assert forge.calls == [(
        "publish_error", "100",
        "Herald could not report on this run: GitHub answered 502. Re-run the CI run, "
        "or ask a maintainer to redeliver the webhook, to try again.",
    )]
    assert ctx.log.events("error") == ["giving up on this run"]


async def test_the_last_try_follows_the_worker_setting(redis) -> None:
    ci = FakeCI(failures={"get_build": TransientError("timeout")})
    forge = FakeForge()
    await report(context(EVENT, redis, ci=ci, forge=forge, job_try=2,
                         environ={"HERALD_JOB_MAX_TRIES": "2"}))
    assert [c[0] for c in forge.calls] == ["publish_error"]


async def test_a_permanent_failure_gives_up_at_once(redis) -> None:
    ci = FakeCI(failures={"list_artifacts": PermanentError("404 from GitHub: run not found")})
    forge = FakeForge()
    await report(context(EVENT, redis, ci=ci, forge=forge))
    assert [c[0] for c in forge.calls] == ["publish_error"]
    assert "404 from GitHub: run not found" in forge.calls[0][2]


async def test_a_run_too_slow_to_read_still_gets_an_answer_before_the_job_timeout(redis) -> None:
    # ARQ cancels a job at its timeout and never retries it: without a deadline of its own
    # the handler would leave the reviewer no answer at all.
    ci = FakeCI(artifacts={"junit": JUNIT})

    async def stalled_build(ref: RunRef) -> None:
        await asyncio.sleep(3600)

    ci.get_build = stalled_build  # type: ignore[method-assign,assignment]
    forge = FakeForge()
    ctx = context(EVENT, redis, ci=ci, forge=forge, environ={"HERALD_JOB_TIMEOUT_SECONDS": "1"})
    await asyncio.wait_for(report(ctx), timeout=1)
    assert forge.calls == [(
        "publish_error", "100",
        "Herald could not report on this run: reading the run took longer than 0.5 s. "
        "Re-run the CI run, or ask a maintainer to redeliver the webhook, to try again.",
    )]
    assert not await redis.keys("herald:lock:*")


async def test_a_bug_still_leaves_an_answer_and_reaches_the_worker_log(redis) -> None:
    ci = FakeCI(failures={"list_artifacts": KeyError("archive_download_url")})
    forge = FakeForge()
    with pytest.raises(KeyError):
        await report(context(EVENT, redis, ci=ci, forge=forge))
    assert forge.calls == [(
        "publish_error", "100",
        "Herald could not report on this run: an unexpected error (the worker's log has the "
        "details). Re-run the CI run, or ask a maintainer to redeliver the webhook, to try "
        "again.",
    )]


async def test_giving_up_never_overlaps_another_deliverys_report(redis) -> None:
    # Both find no check run and both create one, were the answer posted outside the lock.
    failing_first = FakeCI(artifacts={"junit": JUNIT})
    get_build = failing_first.get_build

    async def build_once_missing(ref: RunRef) -> Build:
        if len(failing_first.calls) == 0:
            failing_first.calls.append(("get_build", ref.run_id))
            raise PermanentError("404 from GitHub: run not found")
        return await get_build(ref)

    failing_first.get_build = build_once_missing  # type: ignore[method-assign]
    forge = FakeForge()
    active = 0
    overlap = False

    def slow(method):  # type: ignore[no-untyped-def]
        async def wrapped(*args):  # type: ignore[no-untyped-def]
            nonlocal active, overlap
            active += 1
            overlap = overlap or active > 1
            await asyncio.sleep(0.3)
            active -= 1
            return await method(*args)

        return wrapped

    forge.publish = slow(forge.publish)  # type: ignore[method-assign]
    forge.publish_error = slow(forge.publish_error)  # type: ignore[method-assign]
    await asyncio.gather(*(
        report(context(EVENT, redis, ci=failing_first, forge=forge)) for _ in range(2)
    ))
    assert sorted(c[0] for c in forge.calls) == ["publish", "publish_error"]
    assert not overlap


@pytest.mark.parametrize(("timeout", "budget"), [(None, 270.0), ("900", 870.0), ("40", 20.0)])
def test_the_handler_stops_short_of_the_job_timeout(timeout: str | None, budget: float) -> None:
    environ = {"HERALD_JOB_TIMEOUT_SECONDS": timeout} if timeout else {}
    assert report_budget(Settings.from_env(environ)) == budget


async def test_a_run_being_reported_elsewhere_is_retried_later(redis, monkeypatch) -> None:
    monkeypatch.setattr(report_module, "LOCK_WAIT_SECONDS", 0.2)
    ci = FakeCI(artifacts={"junit": JUNIT})
    forge = FakeForge()
    async with Store(redis).lock(lock_name(REF), ttl=30):
        with pytest.raises(TransientError) as raised:
            await report(context(EVENT, redis, ci=ci, forge=forge))
    assert 1 <= (raised.value.retry_after or 0) <= 30
    assert forge.calls == []


async def test_concurrent_deliveries_of_one_run_publish_one_after_the_other(redis) -> None:
    ci = FakeCI(artifacts={"junit": JUNIT})
    forge = FakeForge()
    active = 0
    overlap = False
    publish = forge.publish

    async def slow_publish(ref, run, build):
        nonlocal active, overlap
        active += 1
        overlap = overlap or active > 1
        await asyncio.sleep(0.2)
        active -= 1
        return await publish(ref, run, build)

    forge.publish = slow_publish  # type: ignore[method-assign]
    await asyncio.gather(*(report(context(EVENT, redis, ci=ci, forge=forge)) for _ in range(3)))
    assert not overlap
    assert len(forge.published) == 3


def junit(*cases: str) -> bytes:
    """A JUnit file of app.Calc cases; "name" passes, "name:fail" fails."""
    body = "".join(
        f'<testcase classname="app.Calc" name="{spec.partition(":")[0]}">'
        + ('<failure message="boom"/>' if spec.endswith(":fail") else "")
        + "</testcase>"
        for spec in cases
    )
    return f'<testsuite name="unit">{body}</testsuite>'.encode()


async def test_a_rerun_job_s_artifact_turns_its_earlier_failure_into_flaky(redis) -> None:
    # GitHub keeps the first attempt's artifact beside the re-run's, under the same name.
    ci = FakeCI(artifacts=[
        ("results-3.11", junit("adds:fail", "row", "row:fail")),
        ("results-3.12", junit("adds:fail")),
        ("results-3.11", junit("adds", "row:fail", "row")),
    ])
    forge = FakeForge()
    await report(context(EVENT, redis, ci=ci, forge=forge))
    [run] = forge.published
    cases = [(c.origin.name, c.name, c.status, c.flaky) for c in run.cases()]
    assert cases == [
        ("results-3.11", "adds", Status.PASSED, True),
        # The first `row` passed before and fails now: a new failure, not hidden by its twin;
        # the second failed before and passes now.
        ("results-3.11", "row", Status.FAILED, False),
        ("results-3.11", "row", Status.PASSED, True),
        # The other leg was not re-run: its failure stands.
        ("results-3.12", "adds", Status.FAILED, False),
    ]
    totals = run.totals()
    assert (totals.total, totals.failed, totals.flaky) == (4, 2, 2)


async def test_cases_keep_the_artifact_they_came_from(redis) -> None:
    ci = FakeCI(artifacts={"results-a": junit("adds:fail"), "results-b": junit("adds")})
    forge = FakeForge()
    await report(context(EVENT, redis, ci=ci, forge=forge))
    [run] = forge.published
    assert [(c.origin, c.status) for c in run.cases()] == [
        (Origin("results-a", url="https://ci.example/a/0"), Status.FAILED),
        (Origin("results-b", url="https://ci.example/a/1"), Status.PASSED),
    ]


async def test_the_artifacts_of_one_run_share_one_inflated_byte_budget(redis) -> None:
    padded = JUNIT.replace(b"</testsuite>", b" " * 60_000 + b"</testsuite>")
    big = zipped({"TEST-big.xml": padded})
    ci = FakeCI(artifacts={"unit-results": big, "e2e-results": big, "junit": JUNIT})
    forge = FakeForge()
    # Each artifact alone fits in 100 kB; the second one passes what the first left.
    environ = {"HERALD_ARTIFACT_MAX_TOTAL_BYTES": "100000"}
    await report(context(EVENT, redis, ci=ci, forge=forge, environ=environ))
    run = forge.published[0]
    assert run.totals().total == 2
    assert [(e.source, e.reason) for e in run.errors] == [
        ("e2e-results/TEST-big.xml", "refused: over the budget of 100,000 inflated bytes "
                                     "(HERALD_ARTIFACT_MAX_TOTAL_BYTES)"),
        ("junit", "refused: not read: the budget of 100,000 inflated bytes is spent"),
    ]
    # The spent budget is known before the third download, which is never started.
    assert ("open_artifact", "junit") not in ci.calls


async def test_an_artifact_over_the_parse_limits_is_named_and_the_others_still_count(
    redis,
) -> None:
    from bot.isolation import ParseLimits, ParsePool
    from tests.artifacts.test_isolation import install_hostile_formats

    pool = ParsePool(ParseLimits(max_cpu_seconds=1), initializer=install_hostile_formats)
    await pool.start()
    ci = FakeCI(artifacts={
        "junit": JUNIT, "hostile-results": zipped({"spin.xml": b"BURN PYTHON"}),
    })
    forge = FakeForge()
    ctx = context(EVENT, redis, ci=ci, forge=forge)
    ctx.artifacts = pool
    try:
        await report(ctx)
    finally:
        await pool.aclose()
    [run] = forge.published
    assert run.totals().total == 2
    assert [(e.source, e.reason) for e in run.errors] == [
        ("hostile-results/spin.xml", "could not be read: used more than 1 s of CPU"),
    ]
