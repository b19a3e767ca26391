"""A redelivery after a failed job runs it again, once; any other redelivery is a duplicate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.context import Context
from bot.events import BUILD_COMPLETED, Event, RunRef
from bot.queue import RedisQueue, dedupe_key, record_state
from bot.routing import Router
from bot.settings import Settings
from providers.base import PermanentError, TransientError
from tests.app.conftest import QUEUE, make_settings, run_burst


def event(delivery: str) -> Event:
    run = RunRef("github", "org/repo", "7", sha="abc")
    return Event("github", BUILD_COMPLETED, "workflow_run.completed", delivery,
                 repo="org/repo", run=run, payload={"action": "completed"})


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "state", HERALD_JOB_MAX_TRIES="2")


def router_that(outcome: str, runs: list[str]) -> Router:
    """A router whose one handler gives up (answers the reviewer), raises, or succeeds."""
    router = Router()

    @router.register(BUILD_COMPLETED)
    async def handler(context: Context) -> None:
        runs.append(context.event.delivery_id)
        if outcome == "gave_up":
            context.gave_up = True
        elif outcome == "failed":
            raise PermanentError("the CI system refused the request")

    return router


@pytest.mark.parametrize("ending", ["gave_up", "failed"])
async def test_fifty_concurrent_redeliveries_after_a_failed_job_queue_exactly_one_job(
    ending: str, queue: RedisQueue, redis: Redis, settings: Settings
) -> None:
    runs: list[str] = []
    assert await queue.enqueue(event("d-1")) == "queued"
    await run_burst(settings, router_that(ending, runs))
    assert await redis.get(dedupe_key("github", "d-1")) == ending.encode()

    answers = await asyncio.gather(*(queue.enqueue(event("d-1")) for _ in range(50)))

    assert sorted(answers) == ["duplicate"] * 49 + ["queued"]
    assert await queue.depth() == 1
    await run_burst(settings, router_that("done", runs))
    assert runs == ["d-1", "d-1"]
    assert await redis.get(dedupe_key("github", "d-1")) == b"done"


async def test_a_redelivery_while_the_job_runs_is_a_duplicate(
    queue: RedisQueue, redis: Redis, settings: Settings
) -> None:
    answers: list[str] = []
    router = Router()

    @router.register(BUILD_COMPLETED)
    async def handler(context: Context) -> None:
        answers.append(await queue.enqueue(event("d-2")))

    await queue.enqueue(event("d-2"))
    await run_burst(settings, router)

    assert answers == ["duplicate"]
    assert await queue.depth() == 0


async def test_a_redelivery_after_success_is_a_duplicate(
    queue: RedisQueue, redis: Redis, settings: Settings
) -> None:
    runs: list[str] = []
    await queue.enqueue(event("d-3"))
    await run_burst(settings, router_that("done", runs))

    assert await queue.enqueue(event("d-3")) == "duplicate"
    assert await queue.depth() == 0
    assert runs == ["d-3"]


async def test_a_redelivery_while_arq_still_holds_the_failed_job_is_a_duplicate(
    queue: RedisQueue, redis: Redis
) -> None:
    # The job wrote how it ended but ARQ has not cleaned it up yet: queued now, the new job
    # would be deleted by that clean-up, so the copy is refused and the sender may resend.
    await queue.enqueue(event("d-4"))
    await redis.set("arq:in-progress:github:d-4", b"1")
    await record_state(redis, "github:d-4", "gave_up")

    assert await queue.enqueue(event("d-4")) == "duplicate"
    await redis.delete("arq:in-progress:github:d-4")
    await redis.zrem(QUEUE, "github:d-4")
    assert await queue.enqueue(event("d-4")) == "queued"


async def test_a_job_queued_again_starts_from_its_first_try(
    queue: RedisQueue, redis: Redis, settings: Settings
) -> None:
    tries: list[int] = []
    router = Router()

    @router.register(BUILD_COMPLETED)
    async def handler(context: Context) -> None:
        tries.append(context.job_try)
        context.gave_up = True

    await queue.enqueue(event("d-5"))
    await redis.set("arq:retry:github:d-5", b"1")  # a try that a killed worker left counted
    await run_burst(settings, router)
    await queue.enqueue(event("d-5"))
    await run_burst(settings, router)

    assert tries == [2, 1]


async def test_a_dedupe_record_of_an_older_herald_counts_as_queued(
    queue: RedisQueue, redis: Redis
) -> None:
    await redis.set(dedupe_key("github", "old"), b"1764800000000", px=3600_000)

    assert await queue.enqueue(event("old")) == "duplicate"


async def test_two_queue_names_on_one_redis_never_see_each_others_deliveries(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    production = make_settings(redis_url, tmp_path / "a")
    staging = make_settings(redis_url, tmp_path / "b", HERALD_QUEUE_NAME="staging:queue")
    runs: dict[str, list[str]] = {"production": [], "staging": []}
    for settings in (production, staging):
        queue = RedisQueue(redis, queue_name=settings.queue_name)
        # One delivery id at both: each installation queues it once, for itself.
        assert await queue.enqueue(event("shared")) == "queued"
        assert await queue.enqueue(event("shared")) == "duplicate"
        await queue.aclose()
    await run_burst(staging, router_that("failed", runs["staging"]))
    await run_burst(production, router_that("done", runs["production"]))

    assert runs == {"production": ["shared"], "staging": ["shared"]}
    assert await redis.get(dedupe_key("github", "shared")) == b"done"
    assert await redis.get(dedupe_key("github", "shared", "staging:queue")) == b"failed"
    keys = sorted(k.decode() for k in await redis.keys("*") if b"shared" in k)
    assert keys == ["herald:delivery:github:shared",
                    "herald:delivery:staging:queue/github:shared"]


async def test_the_default_queue_name_keeps_the_layout_deployments_already_have(
    queue: RedisQueue, redis: Redis
) -> None:
    await queue.enqueue(event("d-6"))

    assert await redis.exists("herald:delivery:github:d-6", "arq:job:github:d-6") == 2
    assert await redis.zrange(QUEUE, 0, -1) == [b"github:d-6"]


async def test_a_give_up_still_counts_when_a_retry_skips_the_handler_that_gave_up(
    queue: RedisQueue, redis: Redis, settings: Settings
) -> None:
    # Were the give-up forgotten on the try that runs only the other handler, the job would
    # read as done, and a redelivery after fixing the cause would be refused.
    calls: list[str] = []
    router = Router()

    @router.register(BUILD_COMPLETED)
    async def gives_up(context: Context) -> None:
        calls.append(f"gives_up:{context.job_try}")
        context.gave_up = True

    @router.register(BUILD_COMPLETED)
    async def flaky(context: Context) -> None:
        calls.append(f"flaky:{context.job_try}")
        if context.job_try == 1:
            raise TransientError("502 from the API", retry_after=0.01)

    await queue.enqueue(event("d-7"))
    await run_burst(settings, router)

    assert calls == ["gives_up:1", "flaky:1", "flaky:2"]
    assert await redis.get(dedupe_key("github", "d-7")) == b"gave_up"
    assert await queue.enqueue(event("d-7")) == "queued"
