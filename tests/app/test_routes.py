"""Every route answers JSON, its errors included; `/metrics` alone speaks Prometheus' format."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.app import ROUTES
from bot.metrics import CONTENT_TYPE
from tests.app.conftest import TEST_PROVIDER, AppFactory, RunningApp

JSON = "application/json"

#: (method, path, the route it reaches, status, content type): every route, and the
#: router's own answers for what no route takes.
ANSWERS = [
    ("GET", "/", "/", 200, JSON),
    ("POST", f"/webhooks/{TEST_PROVIDER}", "/webhooks/{provider}", 401, JSON),
    ("GET", "/webhooks/github", "/webhooks/{provider}", 405, JSON),
    ("GET", "/healthz", "/healthz", 200, JSON),
    ("GET", "/readyz", "/readyz", 200, JSON),
    ("GET", "/metrics", "/metrics", 200, CONTENT_TYPE),
    ("POST", "/metrics", "/metrics", 405, JSON),
    ("GET", "/status", "/status", 403, JSON),
    ("GET", "/files/local/run/1/junit.xml", "/files/{key:path}", 404, JSON),
    ("HEAD", "/files/local/run/1/junit.xml", "/files/{key:path}", 404, JSON),
    ("GET", "/no/such/page", None, 404, JSON),
    ("DELETE", "/", "/", 405, JSON),
]


def test_the_table_below_covers_every_route_of_the_app() -> None:
    assert {route for _, _, route, _, _ in ANSWERS if route} == {r.path for r in ROUTES}


@pytest.mark.parametrize(("method", "path", "route", "status", "content_type"), ANSWERS)
async def test_every_route_answers_json_with_its_content_type(
    running: RunningApp, method: str, path: str, route: str | None, status: int,
    content_type: str,
) -> None:
    response = await running.client.request(method, path, content=b"{}" if method == "POST"
                                            else None, headers={"content-type": JSON})

    assert response.status_code == status
    assert response.headers["content-type"] == content_type
    if content_type == JSON and method != "HEAD":
        answer = response.json()
        assert isinstance(answer, dict) and answer


async def test_a_wrong_method_says_which_ones_the_route_takes(running: RunningApp) -> None:
    response = await running.client.get("/webhooks/github")

    assert response.json() == {"status": "error", "reason": "Method Not Allowed"}
    assert response.headers["allow"] == "POST"


async def test_the_index_names_the_service_and_its_routes(running: RunningApp) -> None:
    answer = (await running.client.get("/")).json()

    assert answer["service"] == "herald"
    assert "/webhooks/{provider}" in answer["routes"] and answer["version"]


async def test_an_unexpected_error_is_a_json_500_without_its_details(
    start_app: AppFactory,
) -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("secret detail from a bug")

    async with start_app() as running:
        running.app.router.routes.append(Route("/broken", broken))
        transport = httpx.ASGITransport(app=running.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald") as client:
            response = await client.get("/broken")

    assert response.status_code == 500
    assert response.json() == {"status": "error", "reason": "internal error"}
    assert "secret detail" not in response.text
