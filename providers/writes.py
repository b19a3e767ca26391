"""Writes that append (a comment, a check run, a rerun), sent so that they happen once.

Shared by the forge clients. A request whose answer was lost (a timeout or a reset after
it was sent, a 5xx from a proxy) may have been done; the HTTP seams raise
`OutcomeUnknown` for those instead of resending an appending write. `append_once` then
reads back what the server holds and sends the write again only when it is not there.

A request still in the server's hands when we look could land after the read-back and
be doubled by the resend; a short pause before looking makes that unlikely, and the
bound on resends keeps a flapping network from posting without end.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from bot.reports import run_title
from bot.results.model import TestRun
from providers.base import Change, OutcomeUnknown

T = TypeVar("T")

#: Read-backs (and so resends) after lost answers, per write, before giving up.
RESENDS: Final = 2
PAUSE_SECONDS: Final = 0.25


def pause(resend: int) -> float:
    """Full jitter, doubling: up to 0.25 s before the first read-back, then 0.5 s."""
    return random.uniform(0, PAUSE_SECONDS * 2**resend)


async def append_once(
    write: Callable[[], Awaitable[T]],
    landed: Callable[[], Awaitable[T | None]],
    *,
    resends: int = RESENDS,
) -> T:
    """`write()`, and after each `OutcomeUnknown` what `landed()` finds, if anything.

    `landed` returns what the write would have made (the comment by its marker, the check
    run by its external id...) or None when the server does not hold it; only then is
    `write` sent again. The last `OutcomeUnknown` propagates: the job retries later, and
    its retry goes through the same read-back.
    """
    for resend in range(resends + 1):
        try:
            return await write()
        except OutcomeUnknown:
            if resend == resends:
                raise
            await asyncio.sleep(pause(resend))
            found = await landed()
            if found is not None:
                return found
    raise AssertionError("unreachable")


async def post_unless_said(
    latest: Callable[[], Awaitable[T | None]],
    says_this: Callable[[T], bool],
    post: Callable[[], Awaitable[T]],
) -> T:
    """A status written once: nothing is posted when the `latest` one already `says_this`
    (a redelivery), and a post whose answer was lost is looked for the same way before it
    is sent again (`append_once`). Forges keep every status posted, so resending one that
    landed would stack up twins."""
    current = await latest()
    if current is not None and says_this(current):
        return current

    async def posted_already() -> T | None:
        status = await latest()
        return status if status is not None and says_this(status) else None

    return await append_once(post, posted_already)


def surface_line(current: object, prefix: str, run: TestRun, change: Change) -> str | None:
    """The one line a CI shows on the run itself (Jenkins' build description, TeamCity's
    build comment): the counts and where they were reported, after `prefix`; or None when
    nothing is to be written, because the run holds someone's own text (never replaced)
    or already says exactly this."""
    if isinstance(current, str) and current.strip() and not current.startswith(prefix):
        return None
    where = f"{change.forge} {change.repo}" + (
        f", pull request {change.numbers[0]}" if change.numbers else ""
    )
    text = f"{prefix}{run_title(run)} (reported on {where})"
    return None if current == text else text
