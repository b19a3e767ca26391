"""HTTP layer benchmark: what `providers.http.HttpSession` adds to each API request.

    python -m bench.http_layer [--requests 3000] [--repeat 3]

One uvicorn server on loopback answers `GET /item` with a 200-byte JSON body and GitHub's
rate-limit headers. Two contenders send the same sequential GETs over one shared
`httpx.AsyncClient`, rounds interleaved so background load hits both alike, fastest round
shown:

- **bare httpx**: `client.get(url)` and `.content`; the floor.
- **HttpSession**: `session.send(..., idempotent=True, scope=...)` with GitHub's reader:
  origin check, throttle check, tenacity's retry loop, rate-limit headers read, and the
  per-request log line rendered as JSON (written to /dev/null, as production's goes to a
  pipe).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.logging import configure
from bot.settings import Settings
from providers.github.api import policy, rate_limit
from providers.http import HttpSession
from tests.fakes.gitlab import serve

BODY = b'{"id": 1, "name": "ci", "status": "completed", "conclusion": "failure"' + (
    b', "pad": "' + b"x" * 120 + b'"}'
)


async def item(request: Request) -> Response:
    reset = str(int(time.time()) + 3600)
    return Response(
        BODY,
        media_type="application/json",
        headers={"x-ratelimit-remaining": "4999", "x-ratelimit-reset": reset},
    )


async def timed(requests: int, send: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await send()
    return time.perf_counter() - started


async def main(requests: int, repeat: int) -> None:
    app = Starlette(routes=[Route("/item", item)])
    configure(Settings.from_env({"HERALD_LOG_FORMAT": "json"}))
    with serve(app) as base, open("/dev/null", "w") as null:  # noqa: ASYNC230
        url = f"{base}/item"
        async with httpx.AsyncClient() as client:
            session = HttpSession(client, provider="github", label="GitHub", base_url=base,
                                  policy=policy(), rate_limits=rate_limit)

            async def bare() -> object:
                return (await client.get(url)).content

            async def layered() -> object:
                return (await session.send("GET", url, idempotent=True, scope="i")).content

            await timed(200, bare)  # warm the connection pool and the server
            best = {"bare httpx": float("inf"), "HttpSession": float("inf")}
            for _ in range(repeat):
                best["bare httpx"] = min(best["bare httpx"], await timed(requests, bare))
                with contextlib.redirect_stderr(null):
                    best["HttpSession"] = min(best["HttpSession"], await timed(requests, layered))
    out = io.StringIO()
    print(f"{requests:,} sequential GETs on loopback, best of {repeat}", file=out)
    print("| contender | seconds | requests/s | µs per request |", file=out)
    print("|---|---:|---:|---:|", file=out)
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {requests / seconds:,.0f} | "
              f"{seconds / requests * 1e6:,.0f} |", file=out)
    added = (best["HttpSession"] - best["bare httpx"]) / requests * 1e6
    print(f"HttpSession adds {added:,.0f} µs per request "
          f"({best['HttpSession'] / best['bare httpx']:.2f}x the bare time)", file=out)
    sys.stdout.write(out.getvalue())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.repeat))
