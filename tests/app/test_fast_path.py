"""The webhook path answered ahead of Starlette's stack answers exactly as the route does.

`HeraldApp` serves `POST /webhooks/{provider}` directly; under a mount prefix (a
`root_path`) the same request goes through Starlette's middleware and router to the same
endpoint. Each case is sent both ways and the answers compared.
"""

from __future__ import annotations

import httpx
import pytest

from tests.app.conftest import (
    BUILD_BODY,
    TEST_PROVIDER,
    RunningApp,
    delivery_headers,
    sign,
)

LARGE = b'{"filler": "' + b"x" * 3000 + b'"}'


def signed(body: bytes, **changes: str | None) -> dict[str, str]:
    headers = delivery_headers(body, delivery="same-delivery-both-ways")
    for key, value in changes.items():
        if value is None:
            headers.pop(key.replace("_", "-"), None)
        else:
            headers[key.replace("_", "-")] = value
    return headers


CASES = [
    ("queued", "POST", TEST_PROVIDER, BUILD_BODY, signed(BUILD_BODY)),
    ("ignored event", "POST", TEST_PROVIDER, BUILD_BODY, signed(BUILD_BODY, x_test_event="other")),
    ("unknown provider", "POST", "nope", BUILD_BODY, signed(BUILD_BODY)),
    ("wrong secret", "POST", TEST_PROVIDER, BUILD_BODY,
     signed(BUILD_BODY, x_test_signature=sign(BUILD_BODY, "guess"))),
    ("invalid JSON", "POST", TEST_PROVIDER, b"{nope", signed(b"{nope")),
    ("wrong content type", "POST", TEST_PROVIDER, BUILD_BODY,
     signed(BUILD_BODY, content_type="text/plain")),
    ("body over the cap", "POST", TEST_PROVIDER, LARGE, signed(LARGE)),
    ("malformed length", "POST", TEST_PROVIDER, BUILD_BODY,
     signed(BUILD_BODY, content_length="ten")),
    ("wrong method", "GET", TEST_PROVIDER, b"", {}),
    ("deeper path", "POST", f"{TEST_PROVIDER}/extra", BUILD_BODY, signed(BUILD_BODY)),
    ("no provider", "POST", "", BUILD_BODY, signed(BUILD_BODY)),
]


async def answer(running: RunningApp, root_path: str, method: str, provider: str, body: bytes,
                 headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    transport = httpx.ASGITransport(app=running.app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald") as client:
        response = await client.request(method, f"/webhooks/{provider}", content=body,
                                        headers=headers)
    kept = {k: v for k, v in response.headers.items()
            if k in ("content-type", "content-length", "connection", "retry-after", "allow")}
    return response.status_code, response.content, kept


@pytest.mark.parametrize(("case", "method", "provider", "body", "headers"), CASES,
                         ids=[case[0] for case in CASES])
async def test_the_direct_path_and_the_routed_path_answer_alike(
    start_app: object, case: str, method: str, provider: str, body: bytes,
    headers: dict[str, str],
) -> None:
    async with start_app(HERALD_MAX_BODY_BYTES="2000") as running:  # type: ignore[operator]
        routed = await answer(running, "/mounted", method, provider, body, headers)
        await running.runtime.redis.flushdb()
        direct = await answer(running, "", method, provider, body, headers)

    assert direct == routed


async def test_the_direct_path_is_taken_for_webhooks_only(running: RunningApp) -> None:
    seen: list[str] = []
    route_endpoint = running.app.router.routes[0].app  # type: ignore[attr-defined]

    async def spy(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(str(scope["path"]))
        await route_endpoint(scope, receive, send)

    running.app.router.routes[0].app = spy  # type: ignore[attr-defined]
    direct = await running.post()
    routed = await answer(running, "/mounted", "POST", TEST_PROVIDER, BUILD_BODY,
                          delivery_headers(BUILD_BODY))

    assert (direct.status_code, routed[0]) == (202, 202)
    assert seen == [f"/webhooks/{TEST_PROVIDER}"]  # only the mounted one used the router
