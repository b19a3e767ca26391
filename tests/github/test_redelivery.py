"""Missed webhooks recovered: the periodic pass asks GitHub (the fake) to redeliver what failed."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.composition import create_worker
from bot.queue import dedupe_key
from bot.redelivery import (
    GITHUB_HISTORY_SECONDS,
    RedeliveryConfig,
    record_key,
    recover,
    recover_missed_deliveries,
    select,
)
from bot.settings import Settings
from bot.worker import Clients, cron_jobs
from providers import DIRECTORY
from providers.github.client import GitHubClient
from tests.fakes.github import FakeGitHub
from tests.github.conftest import github_env

DAY = 24 * 3600.0
CONFIG = RedeliveryConfig(window_seconds=DAY, max_per_pass=50)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis[bytes]]:
    client: Redis[bytes] = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def redelivered(fake: FakeGitHub) -> list[int]:
    calls = fake.calls_to("POST", r"/app/hook/deliveries/\d+/attempts")
    return [int(call.path.split("/")[4]) for call in calls]


def listed(guid: str, status_code: int, *, at: str = "2026-12-04T10:00:00Z",
           number: int = 1) -> dict[str, Any]:
    return {"id": number, "guid": guid, "status_code": status_code, "delivered_at": at,
            "event": "workflow_run"}


# ---- selection: a plain function of the listing ------------------------------------------

def test_a_guid_whose_later_attempt_succeeded_is_not_selected() -> None:
    # Newest first, as GitHub lists: a redelivery (by hand or by us) got through.
    deliveries = [listed("a", 202, number=2), listed("a", 502, number=1)]
    assert select(deliveries, since=0) == []


def test_a_guid_is_selected_once_with_its_latest_failed_attempt() -> None:
    deliveries = [listed("a", 0, number=3), listed("a", 503, number=1)]
    [candidate] = select(deliveries, since=0)
    assert (candidate.id, candidate.guid, candidate.status_code) == (3, "a", 0)


def test_deliveries_before_the_window_are_not_selected() -> None:
    since = 1_764_842_400.0  # 2025-12-04T10:00:00Z
    deliveries = [listed("new", 500, at="2025-12-04T11:00:00Z"),
                  listed("old", 500, at="2025-12-04T09:00:00Z")]
    assert [c.guid for c in select(deliveries, since=since)] == ["new"]


def test_deliveries_without_an_id_guid_or_time_are_skipped_not_fatal() -> None:
    deliveries: list[dict[str, Any]] = [
        {"guid": "no-id", "status_code": 500, "delivered_at": "2026-12-04T10:00:00Z"},
        {"id": 2, "status_code": 500, "delivered_at": "2026-12-04T10:00:00Z"},
        {"id": 3, "guid": "bad-time", "status_code": 500, "delivered_at": "yesterday"},
        listed("fine", 500, number=4),
    ]
    assert [c.guid for c in select(deliveries, since=0)] == ["fine"]


# ---- the pass against the fake --------------------------------------------------------------

async def test_failed_deliveries_are_redelivered_and_successful_ones_left_alone(
    fake: FakeGitHub, client: GitHubClient, redis: Redis[bytes]
) -> None:
    down = fake.add_delivery("guid-down", 0, age=600)
    proxy = fake.add_delivery("guid-502", 502, age=300)
    fake.add_delivery("guid-ok", 202, age=200)

    asked = await recover(redis, client, CONFIG)

    assert sorted(asked) == ["guid-502", "guid-down"]
    assert sorted(redelivered(fake)) == sorted([down, proxy])


async def test_a_second_pass_asks_for_nothing_already_asked_for(
    fake: FakeGitHub, client: GitHubClient, redis: Redis[bytes]
) -> None:
    fake.add_delivery("guid-down", 0, age=600)
    # GitHub's redelivery also fails (Herald still down): listed failed again.
    fake.redelivery_status = 503
    assert await recover(redis, client, CONFIG) == ["guid-down"]

    assert await recover(redis, client, CONFIG) == []
    assert len(redelivered(fake)) == 1
    assert await redis.ttl(record_key("github", "guid-down")) > GITHUB_HISTORY_SECONDS - 60


async def test_a_delivery_herald_accepted_is_not_redelivered_though_github_saw_a_failure(
    fake: FakeGitHub, client: GitHubClient, redis: Redis[bytes]
) -> None:
    # Herald queued it, but the answer was lost to a proxy timeout: GitHub lists 504.
    fake.add_delivery("guid-taken", 504, age=60)
    await redis.set(dedupe_key("github", "guid-taken"), 1)

    assert await recover(redis, client, CONFIG) == []
    assert redelivered(fake) == []


async def test_the_pass_is_bounded_and_the_next_pass_takes_up_the_rest(
    fake: FakeGitHub, client: GitHubClient, redis: Redis[bytes]
) -> None:
    for n in range(5):
        fake.add_delivery(f"guid-{n}", 500, age=1000 - n)
    bounded = RedeliveryConfig(window_seconds=DAY, max_per_pass=2)

    first = await recover(redis, client, bounded)
    second = await recover(redis, client, bounded)
    third = await recover(redis, client, bounded)

    assert first == ["guid-4", "guid-3"]  # newest first
    assert second == ["guid-2", "guid-1"]
    assert third == ["guid-0"]


async def test_deliveries_are_read_across_cursor_pages_and_only_back_to_the_window(
    fake: FakeGitHub, client: GitHubClient, redis: Redis[bytes]
) -> None:
    for n in range(150):
        fake.add_delivery(f"guid-{n}", 500, age=3 * 3600 - n)  # all in the last 3 hours
    fake.add_delivery("guid-old", 500, age=DAY + 3600)
    fake.add_delivery("guid-older", 500, age=DAY + 7200)
    wide = RedeliveryConfig(window_seconds=DAY, max_per_pass=1000)

    asked = await recover(redis, client, wide)

    assert len(asked) == 150 and "guid-old" not in asked
    pages = fake.calls_to("GET", "/app/hook/deliveries")
    assert [call.query.get("cursor") is None for call in pages] == [True, False]
    assert all(call.query["per_page"] == "100" for call in pages)


async def test_a_refused_redelivery_may_be_asked_for_again_by_a_later_pass(
    fake: FakeGitHub, client: GitHubClient, redis: Redis[bytes]
) -> None:
    fake.add_delivery("guid-down", 0, age=60)
    fake.fail("POST", r"/app/hook/deliveries/\d+/attempts", status=422)

    assert await recover(redis, client, CONFIG) == []
    assert await recover(redis, client, CONFIG) == ["guid-down"]


async def test_a_redelivery_whose_answer_was_lost_is_not_asked_for_again(
    fake: FakeGitHub, client: GitHubClient, redis: Redis[bytes]
) -> None:
    # GitHub may have acted on it: once per guid holds whatever the answer was.
    fake.add_delivery("guid-down", 0, age=60)
    fake.lose_answer("POST", r"/app/hook/deliveries/\d+/attempts", how="reset")

    assert await recover(redis, client, CONFIG) == []
    assert await recover(redis, client, CONFIG) == []
    assert len(redelivered(fake)) == 1


async def test_the_listing_is_asked_for_with_the_app_jwt(
    fake: FakeGitHub, client: GitHubClient, redis: Redis[bytes]
) -> None:
    fake.add_delivery("guid-down", 0, age=60)
    await recover(redis, client, CONFIG)
    # The fake answers 401 to anything but a JWT signed with the App's key; it answered.
    assert [c.fault for c in fake.calls_to("GET", "/app/hook/deliveries")] == [None]


# ---- the cron job in the worker ----------------------------------------------------------

def test_the_worker_schedules_the_pass_only_for_a_configured_app(fake: FakeGitHub) -> None:
    assert len(cron_jobs(Settings.from_env(github_env(fake)))) == 1
    off = {**github_env(fake), "HERALD_GITHUB_REDELIVER_INTERVAL_MINUTES": "0"}
    assert cron_jobs(Settings.from_env(off)) == []
    assert cron_jobs(Settings.from_env({"HERALD_GITHUB_TOKEN": "ghp_x"})) == []


def test_the_pass_runs_at_the_configured_minutes(fake: FakeGitHub) -> None:
    env = {**github_env(fake), "HERALD_GITHUB_REDELIVER_INTERVAL_MINUTES": "15"}
    [job] = cron_jobs(Settings.from_env(env))
    assert job.minute == {0, 15, 30, 45}
    assert job.unique  # one pass per slot however many workers run


async def test_the_cron_job_runs_a_pass_with_the_workers_clients(
    fake: FakeGitHub, http: Any, redis: Redis[bytes]
) -> None:
    fake.add_delivery("guid-down", 0, age=60)
    settings = Settings.from_env(github_env(fake))
    clients = Clients(settings, http, DIRECTORY)
    ctx = {"clients": clients, "redis": redis, "redelivery_config": CONFIG}

    await recover_missed_deliveries(ctx)

    assert len(redelivered(fake)) == 1


async def test_the_cron_job_without_credentials_logs_and_returns(
    http: Any, redis: Redis[bytes]
) -> None:
    clients = Clients(Settings.from_env({}), http, DIRECTORY)
    ctx = {"clients": clients, "redis": redis, "redelivery_config": CONFIG}
    await recover_missed_deliveries(ctx)  # no exception: the next slot tries again
    assert await redis.keys("herald:redelivered:*") == []


async def test_a_burst_worker_runs_the_pass_as_an_arq_cron_job(
    fake: FakeGitHub, redis_url: str
) -> None:
    # The whole wiring: ARQ's cron enqueues the job with Herald's serializer, the worker's
    # on_startup has made the clients, and the pass reaches the fake.
    fake.add_delivery("guid-down", 0, age=60)
    settings = Settings.from_env({**github_env(fake), "HERALD_REDIS_URL": redis_url})
    [scheduled] = cron_jobs(settings)
    at_startup = dataclasses.replace(scheduled, run_at_startup=True)
    worker = create_worker(settings, cron_jobs=[at_startup], burst=True, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()
    assert len(redelivered(fake)) == 1



async def test_a_delivery_accepted_under_a_named_queue_is_not_redelivered(
    fake: FakeGitHub, client: GitHubClient, redis: Redis[bytes]
) -> None:
    fake.add_delivery("guid-taken", 504, age=60)
    await redis.set(dedupe_key("github", "guid-taken", "team-b:queue"), 1)
    named = dataclasses.replace(CONFIG, queue_name="team-b:queue")

    assert await recover(redis, client, named) == []
    assert await recover(redis, client, CONFIG) == ["guid-taken"]  # another queue's: asked
