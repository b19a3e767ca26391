"""Herald itself in an end-to-end test: the web app over ASGI (with its lifespan), and a
burst worker that runs the queue dry. Each provider's end-to-end module subclasses
`Herald` with a `deliver` that signs and sends that provider's webhooks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

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
