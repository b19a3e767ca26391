"""Job metrics end to end: a GitHub delivery reported through the fake, then /metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.status import collect
from tests.app.test_health import samples
from tests.fakes.github import FakeGitHub
from tests.github.conftest import REPO
from tests.github.test_end_to_end import run_completed, start
from tests.github.world import seed_run

pytestmark = pytest.mark.e2e


async def test_a_reported_run_is_counted_by_handler_and_timed(
    fake: FakeGitHub, redis_url: str, tmp_path: Path
) -> None:
    run = seed_run(fake, failures=1, passes=2)
    async with start(redis_url, tmp_path, fake) as herald:
        assert (await herald.deliver("workflow_run", run_completed(run))).status_code == 202
        await herald.work()
        found = samples((await herald.http.get("/metrics")).text)

    jobs = {dict(labels)["handler"]: value for (name, labels), value in found.items()
            if name == "herald_jobs_total" and dict(labels)["provider"] == "github"
            and dict(labels)["outcome"] == "done"}
    assert fake.repo(REPO).check_runs  # the report went out
    assert [value for handler, value in jobs.items() if "report" in handler] == [1.0]
    done = (("le", "+Inf"), ("outcome", "done"), ("provider", "github"))
    assert found[("herald_job_duration_seconds_bucket", done)] == 1
    assert found[("herald_job_duration_seconds_count", (("outcome", "done"),
                                                        ("provider", "github")))] == 1
    assert found[("herald_workers", ())] == 0


async def test_a_job_that_cannot_publish_is_listed_among_recent_failures(
    fake: FakeGitHub, redis_url: str, tmp_path: Path
) -> None:
    run = seed_run(fake)
    fake.fail("POST", "/repos/heraldhq/herald/check-runs", status=422, times=100,
              body={"message": "Validation Failed"})
    async with start(redis_url, tmp_path, fake) as herald:
        await herald.deliver("workflow_run", run_completed(run))
        await herald.work()
        found = samples((await herald.http.get("/metrics")).text)
    async with Redis.from_url(redis_url) as redis:
        failures = (await collect(redis, herald.settings.queue_name))["recent_failures"]

    # The report handler gives up itself (it tells the reviewer and returns): counted as
    # such, never as done.
    counted = {(dict(labels)["handler"], dict(labels)["outcome"]): value
               for (name, labels), value in found.items()
               if name == "herald_jobs_total" and "report" in dict(labels)["handler"]}
    assert [(outcome, value) for (_, outcome), value in counted.items()] == [("gave_up", 1.0)]
    [failure] = failures
    assert (failure["provider"], failure["repo"], failure["outcome"]) == (
        "github", REPO, "gave_up")
    assert "said why on the change" in failure["error"]
