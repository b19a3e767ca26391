"""A real uvicorn on 127.0.0.1: a request's line and headers must arrive within the deadline.

uvicorn alone waits forever for the headers of a connection's first request, and any byte
resets its keep-alive timer; `bot.connections` closes such connections (408 if a request
had begun). Each test runs for a few seconds at most and stops its server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn

from bot.composition import create_app
from bot.connections import protocol_class
from bot.embedded_redis import free_port
from tests.app.conftest import BUILD_BODY, TEST_PROVIDER, delivery_headers, make_settings

TIMEOUT = 0.4


@pytest.fixture(params=["httptools", "h11"])
def server_port(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> Iterator[int]:
    settings = make_settings(redis_url, tmp_path / "state")
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False,
        lifespan="on", http=protocol_class(TIMEOUT, base=request.param),
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def request_head(body: bytes) -> bytes:
    headers = {**delivery_headers(body), "Content-Length": str(len(body)), "Host": "herald"}
    lines = [f"POST /webhooks/{TEST_PROVIDER} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (bounded: the test never hangs)."""
    return await asyncio.wait_for(reader.read(), 5)


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One response on a kept-alive connection: its head and its content-length body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


async def trickle(writer: asyncio.StreamWriter, data: bytes, pause: float,
                  closed: Callable[[], bool]) -> int:
    sent = 0
    for byte in data:
        if closed():
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except (ConnectionError, OSError):
            break
        sent += 1
        await asyncio.sleep(pause)
    return sent


async def test_headers_trickling_in_are_cut_off_with_408(server_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    started = time.monotonic()
    answer = asyncio.create_task(read_all(reader))

    sent = await trickle(writer, request_head(BUILD_BODY), 0.05, answer.done)
    data = await answer

    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"headers not received in time" in data
    assert TIMEOUT * 0.8 < time.monotonic() - started < 3
    assert sent < len(request_head(BUILD_BODY))
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed_silently(server_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    started = time.monotonic()

    data = await read_all(reader)

    assert data == b""
    assert TIMEOUT * 0.8 < time.monotonic() - started < 3
    writer.close()


async def test_the_deadline_starts_again_for_the_next_request_on_a_kept_alive_connection(
    server_port: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    writer.write(request_head(BUILD_BODY) + BUILD_BODY)
    await writer.drain()
    first = await read_response(reader)
    assert first.startswith(b"HTTP/1.1 202 ")
    await asyncio.sleep(TIMEOUT * 1.5)  # idle between requests: keep-alive (5 s) decides

    writer.write(request_head(BUILD_BODY) + BUILD_BODY)
    await writer.drain()
    second = await read_response(reader)
    assert second.startswith(b"HTTP/1.1 202 ")

    answer = asyncio.create_task(read_all(reader))
    await trickle(writer, request_head(BUILD_BODY), 0.05, answer.done)
    data = await answer
    assert b"HTTP/1.1 408 " in data
    writer.close()
