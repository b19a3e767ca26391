"""bot.sticky: one report comment per request and origin, edited in place, never two, and
never an older run's report over a newer one's. Every forge's comments plug in as a
`Thread`; this one keeps them in a list."""

from __future__ import annotations

import re

import pytest

from bot.repo_config import DEFAULT_OPTIONS, CommentMode, PublishOptions
from bot.results.model import ParseError, Status, Suite, TestCase, TestRun
from bot.sticky import CommentPlan, Posted, comment_plan, result_mark, run_result, upsert

MARKER = "<!-- herald:report:CI "


class ListThread:
    def __init__(self, *bodies: str) -> None:
        self.comments = [Posted(str(i), body) for i, body in enumerate(bodies, 1)]
        self.calls: list[str] = []
        self.racing: str | None = None  # a body another process posts while we create

    async def ours(self, marker: str, *, first: bool = False) -> list[Posted]:
        found = [c for c in self.comments if c.body.startswith(marker)]
        return found[:1] if first else found

    async def create(self, body: str) -> Posted:
        self.calls.append("create")
        if self.racing is not None:
            self.comments.append(Posted(str(len(self.comments) + 100), self.racing))
        posted = Posted(str(len(self.comments) + 1), body)
        self.comments.append(posted)
        return posted

    async def edit(self, comment_id: str, body: str) -> None:
        self.calls.append(f"edit {comment_id}")
        self.comments = [Posted(c.id, body) if c.id == comment_id else c for c in self.comments]

    async def delete(self, comment_id: str) -> None:
        self.calls.append(f"delete {comment_id}")
        self.comments = [c for c in self.comments if c.id != comment_id]


def report(run: int, text: str = "2 failed") -> str:
    return f"{MARKER}run={run}.1 -->\n{text}"


def order_of(body: str) -> tuple[int, ...] | None:
    match = re.search(r"run=(\d+)\.(\d+)", body)
    return (int(match.group(1)), int(match.group(2))) if match else None


async def put(thread: ListThread, run: int, text: str = "2 failed", start: bool = True):  # type: ignore[no-untyped-def]
    return await upsert(thread, marker=MARKER, order=(run, 1), order_of=order_of,
                        render=lambda: report(run, text), start=start)


async def test_the_first_report_creates_the_comment_and_later_ones_edit_it() -> None:
    thread = ListThread()
    first = await put(thread, 7)
    again = await put(thread, 8, "1 failed")
    assert first.created and not again.created and first.id == again.id
    assert [c.body for c in thread.comments] == [report(8, "1 failed")]
    assert thread.calls == ["create", f"edit {first.id}"]


async def test_the_same_report_twice_sends_nothing_the_second_time() -> None:
    thread = ListThread()
    await put(thread, 7)
    await put(thread, 7)
    assert thread.calls == ["create"]


async def test_a_report_that_differs_only_in_when_it_was_generated_is_not_edited() -> None:
    thread = ListThread()
    await put(thread, 7, "2 failed\nGenerated on 2026-12-04 03:00:59 UTC by Herald")
    await put(thread, 7, "2 failed\nGenerated on 2026-12-04 03:01:00 UTC by Herald")
    await put(thread, 7, "1 failed\nGenerated on 2026-12-04 03:01:01 UTC by Herald")
    assert thread.calls == ["create", "edit 1"]


async def test_an_older_run_never_replaces_a_newer_run_s_report() -> None:
    thread = ListThread(report(9, "all passed"))
    upserted = await put(thread, 8)
    assert upserted.id == "1" and thread.comments[0].body == report(9, "all passed")
    assert thread.calls == []


async def test_a_green_run_starts_no_conversation_but_updates_one() -> None:
    thread = ListThread()
    assert (await put(thread, 7, start=False)).id is None and thread.comments == []
    thread = ListThread(report(6))
    await put(thread, 7, "all passed", start=False)
    assert thread.comments[0].body == report(7, "all passed")


async def test_a_twin_posted_at_the_same_moment_is_deleted_and_the_oldest_kept() -> None:
    thread = ListThread()
    thread.racing = report(7)
    upserted = await put(thread, 7, "mine")
    assert [c.body for c in thread.comments] == [report(7, "mine")]
    assert not upserted.created  # the one kept is the other process's, edited
    assert any(call.startswith("delete") for call in thread.calls)


async def test_a_racing_newer_run_s_comment_is_kept_as_it_is() -> None:
    thread = ListThread()
    thread.racing = report(9, "newer")
    await put(thread, 7)
    assert [c.body for c in thread.comments] == [report(9, "newer")]


async def test_other_workflows_comments_are_never_touched() -> None:
    nightly = "<!-- herald:report:CI%20nightly run=3.1 -->\nnightly"
    thread = ListThread(nightly)
    await put(thread, 7)
    assert thread.comments[0].body == nightly and len(thread.comments) == 2


# ---- `on_change` and the comment plan ----------------------------------------------------


def failing(*names: str, passes: int = 1) -> TestRun:
    cases = [TestCase(name, "tests.calc", "pytest", Status.FAILED) for name in names]
    cases += [TestCase(f"ok_{i}", "tests.calc", "pytest") for i in range(passes)]
    return TestRun(id="run", suites=[Suite("pytest", cases)])


async def put_result(thread: ListThread, run: int, result: TestRun, text: str):  # type: ignore[no-untyped-def]
    return await upsert(thread, marker=MARKER, order=(run, 1), order_of=order_of,
                        render=lambda: report(run, text), start=True,
                        result=run_result(result))


async def test_on_change_leaves_a_comment_showing_the_same_failures_unedited() -> None:
    # What it hides, by design: the counts of the newer run (5 passed now, not 1).
    thread = ListThread()
    await put_result(thread, 7, failing("test_a", passes=1), "1 failed, 1 passed")
    await put_result(thread, 8, failing("test_a", passes=5), "1 failed, 5 passed")
    assert thread.calls == ["create"]
    assert thread.comments[0].body.startswith(report(7, "1 failed, 1 passed"))
    assert thread.comments[0].body.endswith(result_mark(run_result(failing("test_a"))))


@pytest.mark.parametrize(
    "newer",
    [
        failing("test_b"),  # another test fails: same count, other failures
        failing("test_a", "test_b"),  # one more failure
        failing(passes=3),  # fixed: the status changes
    ],
)
async def test_on_change_edits_when_the_failures_or_the_status_change(newer: TestRun) -> None:
    thread = ListThread()
    await put_result(thread, 7, failing("test_a"), "before")
    await put_result(thread, 8, newer, "after")
    assert thread.calls == ["create", "edit 1"]
    assert thread.comments[0].body.startswith(report(8, "after"))


async def test_on_change_edits_a_comment_written_before_the_mode_was_set() -> None:
    thread = ListThread(report(7, "before"))  # no result mark in it
    await put_result(thread, 8, failing("test_a"), "after")
    assert thread.calls == ["edit 1"]


@pytest.mark.parametrize(
    ("options", "run", "habit", "plan"),
    [
        (DEFAULT_OPTIONS, failing("t"), CommentMode.ON_FAILURE, CommentPlan(start=True)),
        (DEFAULT_OPTIONS, failing(), CommentMode.ON_FAILURE, CommentPlan(start=False)),
        (DEFAULT_OPTIONS, failing(), CommentMode.ALWAYS, CommentPlan(start=True)),
        (PublishOptions(comment=CommentMode.ALWAYS), failing(), CommentMode.ON_FAILURE,
         CommentPlan(start=True)),
        (PublishOptions(comment=CommentMode.ON_FAILURE), failing(), CommentMode.ALWAYS,
         CommentPlan(start=False)),
        (PublishOptions(comment=CommentMode.ON_CHANGE), failing("t"), CommentMode.ALWAYS,
         CommentPlan(start=True, result=run_result(failing("t")))),
        (PublishOptions(comment_enabled=False), failing("t"), CommentMode.ALWAYS, None),
    ],
)
def test_the_comment_plan_follows_the_mode_else_the_forge_s_habit(
    options: PublishOptions, run: TestRun, habit: CommentMode, plan: CommentPlan | None
) -> None:
    assert comment_plan(options, run, habit=habit) == plan


def test_an_unreadable_input_starts_a_comment_on_failure() -> None:
    run = failing()
    run.errors.append(ParseError(source="junit.xml", reason="truncated"))
    plan = comment_plan(PublishOptions(comment=CommentMode.ON_FAILURE), run,
                        habit=CommentMode.ALWAYS)
    assert plan == CommentPlan(start=True)
