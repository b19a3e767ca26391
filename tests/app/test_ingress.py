"""POST /webhooks/{provider}: what each kind of delivery is answered, and what gets queued."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from arq.jobs import deserialize_job
from redis.asyncio import Redis

from bot.queue import dedupe_key, job_key, loads_job
from tests.app.conftest import (
    BUILD_BODY,
    OLD_SECRET,
    SECRET,
    TEST_PROVIDER,
    AppFactory,
    RunningApp,
    delivery_headers,
    sign,
)


async def queued_job_ids(running: RunningApp) -> list[str]:
    redis: Redis = running.runtime.redis
    return [m.decode() for m in await redis.zrange(running.settings.queue_name, 0, -1)]


def refusal(**changes: Any) -> dict[str, str]:
    headers = delivery_headers(BUILD_BODY)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    return headers


@pytest.mark.parametrize(
    ("case", "provider", "headers", "body", "status", "reason"),
    [
        ("unknown provider", "nope", None, BUILD_BODY, 404, "no provider named 'nope'"),
        ("missing signature", TEST_PROVIDER, refusal(x_test_signature=None), BUILD_BODY, 401,
         "missing X-Test-Signature header"),
        ("wrong secret", TEST_PROVIDER, refusal(x_test_signature=sign(BUILD_BODY, "guess")),
         BUILD_BODY, 401, "does not match any configured secret"),
        ("body changed after signing", TEST_PROVIDER, delivery_headers(BUILD_BODY),
         BUILD_BODY + b" ", 401, "does not match"),
        ("invalid JSON", TEST_PROVIDER, delivery_headers(b"{not json"), b"{not json", 400,
         "invalid JSON"),
        ("wrong content type", TEST_PROVIDER, refusal(content_type="text/plain"), BUILD_BODY, 400,
         "content type 'text/plain'; expected application/json"),
        ("no content type", TEST_PROVIDER, refusal(content_type=None), BUILD_BODY, 400,
         "content type 'none'"),
    ],
)
async def test_refused_deliveries_get_a_status_and_a_reason_and_queue_nothing(
    running: RunningApp, case: str, provider: str, headers: dict[str, str] | None, body: bytes,
    status: int, reason: str,
) -> None:
    response = await running.client.post(
        f"/webhooks/{provider}", content=body, headers=headers or delivery_headers(body)
    )

    assert response.status_code == status, case
    assert response.json()["status"] == "error"
    assert reason in response.json()["reason"]
    assert await queued_job_ids(running) == []


async def test_a_signed_event_is_queued_as_an_arq_job_keyed_by_provider_and_delivery(
    running: RunningApp,
) -> None:
    response = await running.post(delivery="d-1")

    assert response.status_code == 202
    assert response.json() == {"status": "queued", "job_id": f"{TEST_PROVIDER}:d-1"}
    assert await queued_job_ids(running) == [f"{TEST_PROVIDER}:d-1"]
    raw = await running.runtime.redis.get(job_key(f"{TEST_PROVIDER}:d-1"))
    job = deserialize_job(raw, deserializer=loads_job)  # ARQ's own reader
    assert job.function == "handle_event"
    (event,) = job.args
    assert event["provider"] == TEST_PROVIDER
    assert event["name"] == "build.completed"
    assert event["delivery_id"] == "d-1"
    assert event["run"]["run_id"] == "42"
    assert event["payload"] == json.loads(BUILD_BODY)


async def test_a_redelivery_is_answered_duplicate_and_queues_nothing_more(
    running: RunningApp,
) -> None:
    first = await running.post(delivery="same")
    again = await running.post(delivery="same")

    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "job_id": f"{TEST_PROVIDER}:same"}
    assert await queued_job_ids(running) == [f"{TEST_PROVIDER}:same"]


async def test_fifty_concurrent_posts_of_one_delivery_make_exactly_one_job(
    running: RunningApp,
) -> None:
    responses = await asyncio.gather(*(running.post(delivery="storm") for _ in range(50)))

    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["duplicate"] * 49 + ["queued"]
    assert await queued_job_ids(running) == [f"{TEST_PROVIDER}:storm"]


async def test_the_dedupe_record_outlives_the_72_hour_redelivery_window(
    running: RunningApp,
) -> None:
    await running.post(delivery="late")
    redis: Redis = running.runtime.redis
    key = dedupe_key(TEST_PROVIDER, "late")

    ttl_ms = await redis.pttl(key)
    assert ttl_ms >= 72 * 3600 * 1000
    # 71 hours later: what is left of the record's lifetime, the record still refuses a copy
    await redis.pexpire(key, ttl_ms - 71 * 3600 * 1000)
    await redis.delete(job_key(f"{TEST_PROVIDER}:late"))  # the job ran long ago
    await redis.zrem(running.settings.queue_name, f"{TEST_PROVIDER}:late")
    again = await running.post(delivery="late")

    assert again.json()["status"] == "duplicate"
    assert await queued_job_ids(running) == []


async def test_rotated_secrets_old_and_new_both_verify(start_app: AppFactory) -> None:
    async with start_app(HERALD_HMAC_TEST_WEBHOOK_SECRET=f"{SECRET},{OLD_SECRET}") as running:
        new = await running.post(secret=SECRET)
        old = await running.post(secret=OLD_SECRET)
        other = await running.post(secret="never-configured")

    assert (new.status_code, old.status_code, other.status_code) == (202, 202, 401)


async def test_an_unconfigured_provider_refuses_with_401_and_says_what_to_set(
    start_app: AppFactory,
) -> None:
    async with start_app(HERALD_HMAC_TEST_WEBHOOK_SECRET="") as running:
        response = await running.post()

    assert response.status_code == 401
    assert "HERALD_HMAC_TEST_WEBHOOK_SECRET" in response.json()["reason"]


async def test_an_event_herald_does_not_use_is_acknowledged_with_the_reason(
    running: RunningApp,
) -> None:
    response = await running.post(event="deployment")

    assert response.status_code == 202  # never a 4xx: GitLab disables hooks that get them
    assert response.json() == {"status": "ignored", "reason": "event 'deployment' is not used"}
    assert await queued_job_ids(running) == []


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    start_app: AppFactory,
) -> None:
    async with start_app(HERALD_MAX_BODY_BYTES="1000") as running:
        big = json.dumps({"filler": "x" * 2000}).encode()
        response = await running.post(body=big)
        small = await running.post()

    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert small.status_code == 202


async def test_one_log_line_per_delivery_with_no_secret_and_no_body(
    running: RunningApp, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    await running.post(delivery="logged")
    await running.post(secret="wrong-one")
    text = capsys.readouterr().err

    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    webhook_lines = [line for line in lines if line["message"] == "webhook"]
    assert [(line["outcome"], line["status"]) for line in webhook_lines] == [
        ("queued", 202), ("unauthorized", 401),
    ]
    assert webhook_lines[0]["delivery"] == "logged"
    assert webhook_lines[0]["provider"] == TEST_PROVIDER
    assert webhook_lines[0]["event"] == "build.completed"
    assert isinstance(webhook_lines[0]["latency_ms"], float)
    assert SECRET not in text
    assert "failed" not in text  # the body's "status": "failed" never reaches the log
    assert sign(BUILD_BODY) not in text
