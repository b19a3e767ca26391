"""A real uvicorn on loopback: huge bodies cut off, slow ones timed out, none buffered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx

from tests.app.conftest import BUILD_BODY, TEST_PROVIDER, ServerThread, delivery_headers

CAP = 64 * 1024
GIGABYTE = 1024**3


async def raw_post(
    port: int, headers: dict[str, str], chunks: Iterator[bytes], *, chunked: bool,
    pause: float = 0.0,
) -> tuple[int, bytes, int]:
    """POST over a plain socket, writing the body until the server answers or hangs up.

    Returns (status, response head and body, bytes of body written). Reading runs beside
    writing, and `pause` gives the answer time to arrive between writes: a server that
    closes with unread data sends a reset, which can discard an answer not yet read.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST /webhooks/{TEST_PROVIDER} HTTP/1.1", "Host: herald"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    response = asyncio.create_task(reader.read(65536))
    sent = 0
    try:
        for chunk in chunks:
            if response.done():
                break
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
            sent += len(chunk)
            if pause:
                await asyncio.sleep(pause)
    except (ConnectionError, OSError):
        pass
    data = await asyncio.wait_for(response, 30)
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1") else 0
    return status, data, sent


def endless(size: int, total: int) -> Iterator[bytes]:
    block = b"x" * size
    for _ in range(total // size):
        yield block


async def test_a_streamed_gigabyte_without_length_is_refused_without_being_read(
    serve_app: Callable[..., ServerThread],
) -> None:
    server = serve_app(HERALD_MAX_BODY_BYTES=str(CAP))
    headers = {"Content-Type": "application/json", "X-Test-Event": "build",
               "X-Test-Signature": "0" * 64}

    status, data, sent = await raw_post(server.port, headers, endless(64 * 1024, GIGABYTE),
                                        chunked=True, pause=0.001)

    assert status == 413
    assert b"-byte limit" in data
    # what got through is the cap plus what socket buffers held, not the gigabyte
    assert sent < 32 * 1024 * 1024, sent


async def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_sent(
    serve_app: Callable[..., ServerThread],
) -> None:
    server = serve_app(HERALD_MAX_BODY_BYTES=str(CAP))
    headers = {"Content-Type": "application/json", "Content-Length": str(GIGABYTE)}

    status, _, sent = await raw_post(server.port, headers, endless(64 * 1024, GIGABYTE),
                                     chunked=False, pause=0.001)

    assert status == 413
    assert sent < 32 * 1024 * 1024, sent


async def test_a_trickling_body_is_cut_off_with_408(
    serve_app: Callable[..., ServerThread],
) -> None:
    server = serve_app(HERALD_BODY_TIMEOUT_SECONDS="0.5")
    headers = {**delivery_headers(BUILD_BODY), "Content-Length": str(len(BUILD_BODY))}
    started = time.monotonic()

    status, data, _ = await raw_post(server.port, headers, iter([bytes([b]) for b in BUILD_BODY]),
                                     chunked=False, pause=0.1)

    assert status == 408
    assert b"not received within 0.5 s" in data
    assert time.monotonic() - started < 5


async def test_an_ordinary_delivery_is_queued_over_http(
    serve_app: Callable[..., ServerThread],
) -> None:
    server = serve_app()
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(f"/webhooks/{TEST_PROVIDER}", content=BUILD_BODY,
                                     headers=delivery_headers(BUILD_BODY, delivery="http-1"))

    assert response.status_code == 202
    assert response.json() == {"status": "queued", "job_id": f"{TEST_PROVIDER}:http-1"}
