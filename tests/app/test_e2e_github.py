"""End to end with the real GitHub provider: a signed workflow_run reaches a handler once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.commands import replay
from bot.composition import create_worker
from bot.context import Context
from bot.events import BUILD_COMPLETED
from bot.routing import Router
from tests.app.conftest import AppFactory

FIXTURE = Path(__file__).parents[1] / "fixtures" / "webhooks" / "github"
SECRET = "e2e-github-secret"

pytestmark = pytest.mark.e2e


async def test_a_github_workflow_run_is_queued_once_and_handled_once(
    start_app: AppFactory,
) -> None:
    body = (FIXTURE / "workflow_run_completed.json").read_bytes()
    router, handled = Router(), []

    @router.register(BUILD_COMPLETED, providers=["github"])
    async def report(context: Context) -> None:
        handled.append(context.event)

    async with start_app(HERALD_GITHUB_WEBHOOK_SECRET=SECRET) as running:
        headers = replay.build_request("github", body, running.settings, event="workflow_run",
                                       delivery="gh-e2e-1")
        first = await running.post(body=body, provider="github", headers=headers)
        redelivered = await running.post(body=body, provider="github", headers=headers)
        forged = await running.post(body=body, provider="github",
                                    headers={**headers, "X-Hub-Signature-256": "sha256=00"})
        worker = create_worker(running.settings, router, burst=True, handle_signals=False)
        try:
            await worker.async_run()
        finally:
            await worker.close()

    assert (first.status_code, first.json()) == (202, {"status": "queued",
                                                       "job_id": "github:gh-e2e-1"})
    assert (redelivered.status_code, redelivered.json()["status"]) == (200, "duplicate")
    assert forged.status_code == 401
    (event,) = handled
    assert event.provider == "github"
    assert event.native_name == "workflow_run.completed"
    assert event.run is not None
    assert event.run.run_id == "11850412377"
    assert event.run.sha == "3f9b1c2d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"


@pytest.mark.parametrize(
    ("fixture", "event", "reason"),
    [
        ("push.json", "push", "not used by Herald"),
        ("workflow_run_requested.json", "workflow_run", "only once it is completed"),
    ],
)
async def test_github_events_herald_does_not_use_are_acknowledged_not_refused(
    start_app: AppFactory, fixture: str, event: str, reason: str
) -> None:
    body = (FIXTURE / fixture).read_bytes()
    async with start_app(HERALD_GITHUB_WEBHOOK_SECRET=SECRET) as running:
        headers = replay.build_request("github", body, running.settings, event=event,
                                       delivery=None)
        response = await running.post(body=body, provider="github", headers=headers)
        queued = await running.runtime.redis.zcard(running.settings.queue_name)

    assert response.status_code == 202
    assert response.json()["status"] == "ignored"
    assert reason in response.json()["reason"]
    assert queued == 0


async def test_an_unwritable_state_directory_does_not_stop_the_app(
    start_app: AppFactory, tmp_path: Path
) -> None:
    body = (FIXTURE / "ping.json").read_bytes()
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    async with start_app(HERALD_GITHUB_WEBHOOK_SECRET=SECRET) as running:
        headers = replay.build_request("github", body, running.settings, event="ping",
                                       delivery="ro-1")
        response = await running.post(body=body, provider="github", headers=headers)

    assert response.status_code == 202
