"""What outsiders probed: every answer within bounds, no traceback, no job that fails later.

And the process-wide body budget (`HERALD_MAX_BUFFERED_BYTES`): concurrent uploads share
it, and one that would overrun it is answered 503 with Retry-After before it is read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.jobs import deserialize_job
from redis.asyncio import Redis

from bot.events import Event
from bot.ports import ReportOrigin
from bot.queue import job_key, loads_job
from providers.github.publish import check_name, marker_prefix
from tests.app.conftest import TEST_PROVIDER, AppFactory, RunningApp, delivery_headers
from tests.providers.senders import fixture_json, gitlab_signing_token, hex_hmac

GITHUB_SECRET = b"gh-secret-for-the-limits-tests"
GITLAB_SIGNING = gitlab_signing_token()


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def github_headers(body: bytes, delivery: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-github-event": "workflow_run",
        "x-github-delivery": delivery,
        "x-hub-signature-256": "sha256=" + hex_hmac(GITHUB_SECRET, body),
    }


def workflow_run(**changes: str) -> bytes:
    """GitHub's completed workflow_run fixture, with fields of `workflow_run` replaced by
    raw JSON text (what a JSON encoder could not produce itself)."""
    payload = fixture_json("github", "workflow_run_completed.json")
    for key in changes:
        payload["workflow_run"][key] = f"@@{key}@@"
    text = json.dumps(payload)
    for key, raw in changes.items():
        text = text.replace(f'"@@{key}@@"', raw)
    return text.encode()


@pytest.fixture
async def real(start_app: AppFactory) -> AsyncIterator[RunningApp]:
    async with start_app(
        HERALD_GITHUB_WEBHOOK_SECRET=GITHUB_SECRET.decode(),
        HERALD_GITLAB_WEBHOOK_SECRET=GITLAB_SIGNING.decode(),
    ) as app:
        yield app


@pytest.mark.parametrize("stamp", ["9" * 400, "9" * 5000, "\u0661\u0662\u0663"])
async def test_an_unsigned_gitlab_delivery_with_a_huge_timestamp_is_401_without_a_traceback(
    real: RunningApp, capsys: pytest.CaptureFixture[str], stamp: str
) -> None:
    body = json.dumps(fixture_json("gitlab", "pipeline_success.json")).encode()
    headers = {"content-type": "application/json", "x-gitlab-event": "Pipeline Hook",
               "webhook-id": "msg_1", "webhook-timestamp": stamp,
               "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl"}
    capsys.readouterr()

    response = await real.client.post("/webhooks/gitlab", content=body,
                                      headers={k: v.encode() for k, v in headers.items()})

    assert response.status_code == 401
    assert "webhook-timestamp" in response.json()["reason"]
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line["status"] for line in log_lines(err) if line["message"] == "webhook"] == [401]


@pytest.mark.parametrize(
    ("field", "raw"),
    [("run_attempt", '"' + "9" * 5000 + '"'), ("run_attempt", "9" * 5000),
     ("id", "9" * 4000), ("id", '"' + "9" * 400 + '"'), ("run_number", str(2**63))],
)
async def test_a_huge_number_in_a_signed_payload_is_400(
    real: RunningApp, capsys: pytest.CaptureFixture[str], field: str, raw: str
) -> None:
    body = workflow_run(**{field: raw})
    capsys.readouterr()

    response = await real.client.post("/webhooks/github", content=body,
                                      headers=github_headers(body, f"huge-{field}"))

    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert "Traceback" not in capsys.readouterr().err
    assert await real.runtime.redis.zcard(real.settings.queue_name) == 0


async def test_a_lone_surrogate_in_a_workflow_name_is_queued_mended_and_the_job_can_use_it(
    real: RunningApp,
) -> None:
    body = workflow_run(name='"CI \\ud800 nightly"')

    response = await real.client.post("/webhooks/github", content=body,
                                      headers=github_headers(body, "surrogate-1"))

    assert response.status_code == 202
    redis: Redis = real.runtime.redis
    raw = await redis.get(job_key("github:surrogate-1"))
    event = Event.from_dict(deserialize_job(raw, deserializer=loads_job).args[0])
    assert event.run is not None
    assert event.run.extra["workflow_name"] == "CI \ufffd nightly"
    assert event.payload["workflow_run"]["name"] == "CI \ufffd nightly"
    # what failed in the job before: the marker's URL-quoted key, the check's name
    origin = ReportOrigin(run=event.run, name=event.run.extra["workflow_name"])
    assert marker_prefix(origin).startswith("<!-- herald:report:CI%20%EF%BF%BD%20nightly")
    check_name(origin).encode("utf-8")


async def test_a_lone_surrogate_in_a_repository_name_is_400_with_the_reason(
    real: RunningApp,
) -> None:
    payload = fixture_json("github", "workflow_run_completed.json")
    payload["repository"]["full_name"] = "@@"
    body = json.dumps(payload).replace('"@@"', '"org/\\udc00"').encode()

    response = await real.client.post("/webhooks/github", content=body,
                                      headers=github_headers(body, "surrogate-2"))

    assert response.status_code == 400
    assert "unpaired UTF-16 surrogate" in response.json()["reason"]


# ---- the process-wide body budget ------------------------------------------------------------


class Upload:
    """A request body that sends its first chunk, then waits to be let go."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.first, self.rest = first, rest
        self.go = asyncio.Event()
        self.started = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        self.started.set()
        await self.go.wait()
        yield self.rest


async def post_upload(running: RunningApp, upload: Upload, length: int | None) -> Any:
    headers = delivery_headers(upload.first + upload.rest)
    if length is not None:
        headers["content-length"] = str(length)
    return await running.client.post(f"/webhooks/{TEST_PROVIDER}", content=upload,
                                     headers=headers)


async def settle(predicate: Any) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("did not settle")


async def test_uploads_beyond_the_budget_are_refused_with_503_before_being_read(
    start_app: AppFactory,
) -> None:
    async with start_app(HERALD_MAX_BODY_BYTES="1000", HERALD_MAX_BUFFERED_BYTES="3000") as app:
        body = json.dumps({"repo": "org/repo", "run": 7, "pad": "x" * 900}).encode()
        uploads = [Upload(body[:100], body[100:]) for _ in range(10)]
        tasks = [asyncio.create_task(post_upload(app, u, len(body))) for u in uploads]
        await settle(lambda: sum(t.done() for t in tasks) == 7)

        refused = [t.result() for t in tasks if t.done()]
        assert [r.status_code for r in refused] == [503] * 7
        assert refused[0].headers["retry-after"] == "30"
        assert refused[0].headers["connection"] == "close"
        assert "3000-byte limit of request bodies" in refused[0].json()["reason"]
        assert app.runtime.body_budget.held == 3 * len(body)

        for upload in uploads:
            upload.go.set()
        admitted = [r.status_code for r in await asyncio.gather(*tasks)]
        assert sorted(admitted) == [202] * 3 + [503] * 7
        assert app.runtime.body_budget.held == 0
        # room again once they are done
        again = Upload(body[:100], body[100:])
        again.go.set()
        assert (await post_upload(app, again, len(body))).status_code == 202


async def test_a_streamed_body_without_a_length_is_counted_as_it_arrives(
    start_app: AppFactory,
) -> None:
    async with start_app(HERALD_MAX_BODY_BYTES="1000", HERALD_MAX_BUFFERED_BYTES="1000") as app:
        holder = Upload(b"x" * 900, b"")
        holding = asyncio.create_task(post_upload(app, holder, 900))
        await holder.started.wait()
        streamed = Upload(b"y" * 50, b"z" * 100)
        streamed.go.set()

        response = await post_upload(app, streamed, None)

        assert response.status_code == 503
        holder.go.set()
        assert (await holding).status_code == 400  # read in full: x * 900 is no JSON
        assert app.runtime.body_budget.held == 0


async def test_a_hundred_concurrent_25_mb_uploads_hold_at_most_the_budget(
    start_app: AppFactory,
) -> None:
    size = 25 * 1024 * 1024
    async with start_app() as app:  # the defaults: 25 MiB per body, 256 MiB in all
        uploads = [Upload(b"{", b"}") for _ in range(100)]
        tasks = [asyncio.create_task(post_upload(app, u, size)) for u in uploads]
        await settle(lambda: sum(t.done() for t in tasks) == 90)

        assert app.runtime.body_budget.held == 10 * size <= 256 * 1024 * 1024
        assert {t.result().status_code for t in tasks if t.done()} == {503}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await settle(lambda: app.runtime.body_budget.held == 0)
