"""Body-read deadlines: one shared timer turns a stalled read into a 408, nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.webhooks import BodyDeadlines, _read_body, _Refused


def stalled_after(*messages: dict[str, Any]) -> Any:
    """An ASGI receive that hands out `messages`, then waits forever."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


def chunk(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_that_stops_arriving_is_refused_with_408_at_the_deadline() -> None:
    deadlines = BodyDeadlines(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(_Refused) as refused:
        await _read_body({}, stalled_after(chunk(b"{", True)), 1000, deadlines)

    assert (refused.value.status, refused.value.outcome) == (408, "timeout")
    assert refused.value.reason == "body not received within 0.05 s"
    assert 0.04 < loop.time() - started < 1.0
    deadlines.close()


async def test_only_the_stalled_reads_time_out_and_the_others_complete() -> None:
    deadlines = BodyDeadlines(0.05)
    complete = [chunk(b'{"a":', True), chunk(b"1}", False)]

    results = await asyncio.gather(
        _read_body({}, stalled_after(*complete), 1000, deadlines),
        _read_body({}, stalled_after(chunk(b"{", True)), 1000, deadlines),
        _read_body({}, stalled_after(chunk(b"{}", False)), 1000, deadlines),
        return_exceptions=True,
    )

    assert results[0] == b'{"a":1}'
    assert isinstance(results[1], _Refused) and results[1].status == 408
    assert results[2] == b"{}"
    deadlines.close()


async def test_a_cancellation_from_elsewhere_is_not_turned_into_a_408() -> None:
    deadlines = BodyDeadlines(10.0)
    task = asyncio.create_task(_read_body({}, stalled_after(), 1000, deadlines))
    await asyncio.sleep(0.01)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    deadlines.close()


async def test_finished_reads_leave_no_pending_deadline_behind() -> None:
    deadlines = BodyDeadlines(10.0)

    for _ in range(100):
        await _read_body({}, stalled_after(chunk(b"{}", False)), 1000, deadlines)

    assert not deadlines._reading
    deadlines.close()
