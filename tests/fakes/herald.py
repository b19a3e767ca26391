"""Herald itself in an end-to-end test: the web app over ASGI (with its lifespan), and a
burst worker that runs the queue dry. Each provider's end-to-end module subclasses
`Herald` with a `deliver` that signs and sends that provider's webhooks."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bot.composition import create_app, create_worker
from bot.settings import Settings

H = TypeVar("H", bound="Herald")


@dataclass
class Herald:
    settings: Settings
    http: httpx.AsyncClient

    async def work(self) -> None:
        """Run a burst worker until the queue, deferred retries included, is empty."""
        worker = create_worker(self.settings, burst=True, handle_signals=False)
        try:
            await worker.main()
        finally:
            await worker.close()


class OnGitHub(Herald):
    """Herald whose forge is GitHub: pull request comments arrive as signed
    `issue_comment` deliveries (a CI source's `/retest`)."""

    async def comment(self, body: dict[str, Any]) -> httpx.Response:
        return await self.github("issue_comment", body)

    async def github(self, event: str, body: dict[str, Any]) -> httpx.Response:
        """A signed GitHub App delivery of `event`."""
        from tests.github.conftest import WEBHOOK_SECRET

        raw = json.dumps(body).encode()
        signature = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return await self.http.post("/webhooks/github", content=raw, headers={
            "content-type": "application/json",
            "x-github-event": event,
            "x-github-delivery": str(uuid.uuid4()),
            "x-hub-signature-256": f"sha256={signature}",
        })


def pull_request_comment(fake: Any, repo: str, number: int, author: str, comment_id: int,
                         body: str) -> dict[str, Any]:
    """GitHub's `issue_comment` `created` by `author` on pull request `number` of `repo`."""
    from tests.github.conftest import payload

    event = copy.deepcopy(payload("issue_comment_created.json"))
    owner, name = repo.split("/")
    event["repository"].update(full_name=repo, name=name)
    event["repository"]["owner"]["login"] = owner
    event["issue"]["number"] = number
    event["comment"].update(id=comment_id, body=body)
    event["comment"]["user"].update(login=author, type="User")
    event["installation"]["id"] = fake.installation_id
    return event


@contextlib.asynccontextmanager
async def running(
    kind: type[H], redis_url: str, tmp_path: Path, env: Mapping[str, str]
) -> AsyncIterator[H]:
    """The app on the test's Redis and state directory, plus the provider's `env`."""
    settings = Settings.from_env({
        "HERALD_REDIS_URL": redis_url,
        "HERALD_STATE_DIR": str(tmp_path / "state"),
        "HERALD_LOG_FORMAT": "json",
        **env,
    })
    app = create_app(settings, configure_logging=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald") as http:
            yield kind(settings, http)
