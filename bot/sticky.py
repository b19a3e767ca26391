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
- **`on_change`** (`.herald.yml`'s comment mode): the body ends in a hidden result mark
  (`result_mark`: the status word and which tests fail, hashed), and a comment whose mark
  says the same result is left as it is. What that can hide: new counts of passing tests,
  durations and links, while the same tests fail; a different set of failures, or a
  status that changes, is always written;
- **no twins**: after creating, ours are listed again, and if another process created one
  at the same moment the oldest is kept and the others deleted, the kept one then saying
  what this run says (unless it holds a newer run's report).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from bot.repo_config import CommentMode, PublishOptions
from bot.reports.summary import run_status_word, same_but_for_the_stamp
from bot.results.model import TestRun

#: Characters a result mark adds to a body (with its newline): a forge's budget for the
#: rendered report leaves this much room when the mark is written.
RESULT_MARK_ROOM: Final = 64
_RESULT_MARK = re.compile(r"<!-- herald:result:(?P<result>[0-9a-f]{1,40}) -->")


def run_result(run: TestRun) -> str:
    """What `on_change` compares: the status word, which tests fail (their identity and
    origin, order-free) and which inputs could not be read, hashed."""
    digest = hashlib.sha256(run_status_word(run).encode())
    failing = sorted(
        f"{case.origin.name if case.origin else ''}\x1f{case.identity}"
        for case in run.failures()
    ) + sorted(f"\x1e{error.source}" for error in run.errors)
    for name in failing:
        digest.update(b"\0" + name.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:24]


def result_mark(result: str) -> str:
    return f"<!-- herald:result:{result} -->"


def _shown_result(body: str) -> str | None:
    match = _RESULT_MARK.search(body[-RESULT_MARK_ROOM * 2:])
    return match.group("result") if match else None


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
    result: str | None = None,
) -> Upserted:
    """Edit our comment to `render()`'s body, or create it when `start` (see the module
    docstring). `order_of(body)` reads the run order a posted comment's marker records.
    With `result` (`run_result`, the `on_change` mode), the body carries its mark, and a
    comment already showing that result is not edited."""

    def rendered() -> str:
        body = render()
        return body if result is None else f"{body}\n{result_mark(result)}"

    found = await thread.ours(marker, first=True)
    if found:
        first = found[0]
        shown = order_of(first.body)
        if shown is not None and shown > order:
            return Upserted(first.id)  # a newer run's report is already there
        if result is not None and _shown_result(first.body) == result:
            return Upserted(first.id)  # `on_change`: the result it shows is this one
        body = rendered()
        if not same_but_for_the_stamp(first.body, body):
            await thread.edit(first.id, body)
        return Upserted(first.id)
    if not start:
        return Upserted(None)
    body = rendered()
    created = await thread.create(body)
    mine = await thread.ours(marker)
    keep = mine[0] if mine else created
    for twin in mine[1:]:
        await thread.delete(twin.id)
    shown = order_of(keep.body)
    if keep.body != body and not (shown is not None and shown > order):
        await thread.edit(keep.id, body)
    return Upserted(keep.id, created=keep.id == created.id)


@dataclass(frozen=True, slots=True)
class CommentPlan:
    """How `upsert` is called for one report: whether a new comment may be started, and
    the result mark for `on_change`."""

    start: bool
    result: str | None = None


def comment_plan(
    options: PublishOptions, run: TestRun, *, habit: CommentMode
) -> CommentPlan | None:
    """The comment mode (`.herald.yml`'s `report.comment`, else the forge's `habit`) for
    `run`; None when no comment is written at all (`off`, or `comment` not a target).

    `on_failure` starts a comment only for a failing run (or one with unreadable inputs),
    but keeps an existing one up to date, so it never goes on showing fixed failures.
    `off` leaves a comment posted before it was set as it is."""
    if not options.comment_enabled:
        return None
    mode = options.comment or habit
    failing = bool(run.totals().failures or run.errors)
    if mode is CommentMode.ALWAYS:
        return CommentPlan(start=True)
    if mode is CommentMode.ON_FAILURE:
        return CommentPlan(start=failing)
    return CommentPlan(start=failing, result=run_result(run))
