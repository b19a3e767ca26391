"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bot.embedded_redis import EmbeddedRedis
from tests.app.conftest import TEST_PROVIDER, AppFactory, RunningApp, sign


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_healthz_answers_while_the_process_lives(running: RunningApp) -> None:
    response = await running.client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_follows_redis(start_app: AppFactory, own_redis: EmbeddedRedis) -> None:
    async with start_app(redis=own_redis.url) as running:
        up = await running.client.get("/readyz")
        own_redis.stop()
        down = await running.client.get("/readyz")
        alive = await running.client.get("/healthz")

    assert (up.status_code, up.json()) == (200, {"status": "ready", "spooled": 0})
    assert down.status_code == 503
    assert down.json()["reason"] == "redis unreachable"
    assert alive.status_code == 200


async def test_metrics_count_deliveries_by_outcome_and_read_the_queue_depth(
    running: RunningApp,
) -> None:
    await running.post(delivery="m1")
    await running.post(delivery="m1")
    await running.post(delivery="m2")
    await running.post(event="deployment")
    await running.post(secret="wrong")
    await running.client.post("/webhooks/not-a-provider", content=b"{}")

    response = await running.client.get("/metrics")
    found = samples(response.text)

    assert response.headers["content-type"].startswith("text/plain")

    def deliveries(provider: str, event: str, outcome: str) -> float:
        labels = (("event", event), ("outcome", outcome), ("provider", provider))
        return found.get(("herald_webhook_deliveries_total", labels), 0.0)

    assert deliveries(TEST_PROVIDER, "build.completed", "queued") == 2
    assert deliveries(TEST_PROVIDER, "build.completed", "duplicate") == 1
    assert deliveries(TEST_PROVIDER, "deployment", "ignored") == 1
    assert deliveries(TEST_PROVIDER, "unknown", "unauthorized") == 1
    assert deliveries("unknown", "unknown", "unknown_provider") == 1
    assert found[("herald_webhook_signature_failures_total", (("provider", TEST_PROVIDER),))] == 1
    assert found[("herald_enqueue_seconds_count", ())] == 3
    assert found[("herald_queue_depth", ())] == 2
    assert found[("herald_spool_depth", ())] == 0
    assert found[("herald_redis_up", ())] == 1
    assert sign(b"{}") not in response.text


async def test_metrics_still_answer_with_redis_down(
    start_app: AppFactory, own_redis: EmbeddedRedis
) -> None:
    async with start_app(redis=own_redis.url) as running:
        own_redis.stop()
        response = await running.client.get("/metrics")

    assert response.status_code == 200
    assert samples(response.text)[("herald_redis_up", ())] == 0
