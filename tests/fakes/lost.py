"""Dropping an answer the way a network does, for the fakes' `lose_answer`: the request
was done, then the client sees a timeout or a reset connection instead of the response.

ASGI has no word for "drop the connection", so the transport is reached through the bound
`send` of uvicorn's request cycle: test code only, tied to uvicorn's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

#: How long a "timeout" holds the connection open: longer than any client timeout in tests.
LOST_ANSWER_HOLD_SECONDS = 30.0


async def drop_answer(how: str, receive: Any, send: Any) -> None:
    """`how` is "timeout" (hold until the client gives up) or "reset" (RST at once)."""
    cycle = send.__self__
    transport = cycle.transport
    if how == "timeout":
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LOST_ANSWER_HOLD_SECONDS):
                while (await receive())["type"] != "http.disconnect":
                    pass
    else:
        # Linger 0: close() sends RST instead of FIN, a reset as the client sees it.
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Let uvicorn see the connection gone, or it answers 500 for the silent app.
    for _ in range(200):
        if cycle.disconnected:
            break
        await asyncio.sleep(0.005)
