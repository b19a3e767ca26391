"""The sticky report comment, written once for every forge: one comment per pull/merge
request and origin, edited in place, never a second one.

A forge plugs its comments API in as a `Thread` (list ours, create, edit, delete); this
module decides:

- **which comment is ours**: the forge lists only comments by Herald's own identity that
  carry the origin's exact marker (a workflow "CI" never finds "CI nightly"'s comment);
- **a newer run stays**: the marker records the run's order (`ReportOrigin.sequence` and
  attempt); a late report of an older run leaves a newer one in place;
- **a green run starts no conversation**: without a comment yet, a passing run posts none;
- **no edit that says nothing**: a body that differs only in its "Generated on" stamp is
  left as it is;
- **no twins**: after creating, ours are listed again, and if another process created one
  at the same moment the oldest is kept and the others deleted, the kept one then saying
  what this run says (unless it holds a newer run's report).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.reports.summary import same_but_for_the_stamp


@dataclass(frozen=True, slots=True)
class Posted:
    """A comment as the mechanism needs it: the forge's id for it and its body."""

    id: str
    body: str


class Thread(Protocol):
    """One pull/merge request's comments, through a forge's API."""

    async def ours(self, marker: str, *, first: bool = False) -> list[Posted]:
        """Herald's own comments carrying `marker`, oldest first; with `first`, only the
        oldest is needed (a forge may stop listing there)."""
        ...

    async def create(self, body: str) -> Posted:
        """Post `body`. After a lost answer the forge reads back before posting again
        (`providers.writes.append_once`): never two comments from one call."""
        ...

    async def edit(self, comment_id: str, body: str) -> None: ...

    async def delete(self, comment_id: str) -> None:
        """Delete a twin; one already gone is no error."""
        ...


@dataclass(frozen=True, slots=True)
class Upserted:
    id: str | None  # None: nothing posted (a green run, no comment yet)
    created: bool = False


async def upsert(
    thread: Thread,
    *,
    marker: str,
    order: tuple[int, ...],
    order_of: Callable[[str], tuple[int, ...] | None],
    render: Callable[[], str],
    start: bool,
) -> Upserted:
    """Edit our comment to `render()`'s body, or create it when `start` (see the module
    docstring). `order_of(body)` reads the run order a posted comment's marker records."""
    found = await thread.ours(marker, first=True)
    if found:
        first = found[0]
        shown = order_of(first.body)
        if shown is not None and shown > order:
            return Upserted(first.id)  # a newer run's report is already there
        body = render()
        if not same_but_for_the_stamp(first.body, body):
            await thread.edit(first.id, body)
        return Upserted(first.id)
    if not start:
        return Upserted(None)
    body = render()
    created = await thread.create(body)
    mine = await thread.ours(marker)
    keep = mine[0] if mine else created
    for twin in mine[1:]:
        await thread.delete(twin.id)
    shown = order_of(keep.body)
    if keep.body != body and not (shown is not None and shown > order):
        await thread.edit(keep.id, body)
    return Upserted(keep.id, created=keep.id == created.id)
