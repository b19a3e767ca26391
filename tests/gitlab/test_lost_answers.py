"""A write is resent only when it is idempotent: GitLab did the request, the answer was lost.

The fake does each request, then loses its answer: held until the client's timeout
(`timeout`) or the connection reset (`reset`). Reads and whole-state writes (PUT, DELETE,
an award GitLab keeps once) are simply sent again; writes that append (the report note, a
reply, the commit status, a pipeline retry) are first looked for in what GitLab holds,
and only what is missing is sent.
"""

from __future__ import annotations

import re

import pytest

from bot.embedded_redis import free_port
from providers.base import OutcomeUnknown, TransientError
from providers.gitlab import notes
from providers.gitlab.api import GitLabAPI
from providers.gitlab.client import GitLabClient
from tests.fakes import publish
from tests.fakes.gitlab import TOKEN, FakeGitLab
from tests.gitlab.conftest import ClientFactory
from tests.gitlab.test_client import failing_run, note
from tests.gitlab.world import (
    DEVELOPER_ID,
    DEVELOPER_NAME,
    MR,
    PATH,
    PROJECT,
    ROOT,
    SHA,
    Jobs,
    root_ref,
)

NOTES = rf"/projects/{PROJECT}/merge_requests/{MR}/notes$"
STATUS = rf"POST /projects/{PROJECT}/statuses/{SHA}"

LOST = pytest.mark.parametrize("how", ["timeout", "reset"])


@pytest.fixture
def client(make_client: ClientFactory, world: Jobs) -> GitLabClient:
    # Short, so that a held answer gives up quickly.
    return make_client(gitlab_timeout="0.5")


def requests_to(gitlab: FakeGitLab, pattern: str) -> list[tuple[str, str | None]]:
    """(method, how its answer was lost) of each request whose path matches `pattern`."""
    regex = re.compile(pattern)
    return [(c.method, c.lost) for c in gitlab.calls if regex.search(c.path)]


# ---- reads and whole-state writes: sent again ---------------------------------------------


@LOST
async def test_a_read_whose_answer_is_lost_is_asked_again(
    client: GitLabClient, gitlab: FakeGitLab, how: str
) -> None:
    gitlab.lose_answer(rf"GET /projects/{PROJECT}/pipelines/{ROOT}$", how=how)
    build = await client.get_build(root_ref())
    assert build.status == "failed"
    assert requests_to(gitlab, rf"/pipelines/{ROOT}$") == [("GET", how), ("GET", None)]


@LOST
async def test_an_award_is_sent_again_because_gitlab_keeps_one_per_name(
    client: GitLabClient, gitlab: FakeGitLab, how: str
) -> None:
    posted = gitlab.add_note(PROJECT, MR, "/retest", author_id=DEVELOPER_ID,
                             username=DEVELOPER_NAME)
    gitlab.lose_answer(r"POST .*/award_emoji$", how=how)
    await client.acknowledge(PATH, note(DEVELOPER_NAME, DEVELOPER_ID, str(posted["id"])))
    # The second POST is refused as "already been taken", which is the point.
    assert requests_to(gitlab, "/award_emoji$") == [("POST", how), ("POST", None)]
    assert [a["name"] for a in gitlab.awards[posted["id"]]] == ["eyes"]


# ---- appending writes: looked for, then only what is missing ------------------------------


@LOST
async def test_a_lost_answer_to_the_report_note_finds_it_by_its_marker(
    client: GitLabClient, gitlab: FakeGitLab, how: str
) -> None:
    build = await client.get_build(root_ref())
    gitlab.lose_answer(f"POST {NOTES}", how=how)
    published = await publish(client, root_ref(), failing_run("test_refunds"), build)
    [report] = gitlab.our_notes(PROJECT, MR)
    assert notes.is_report(report["body"])
    assert published.comment_id == str(report["id"])
    assert published.created
    assert requests_to(gitlab, NOTES) == [
        ("GET", None),  # any report yet? no
        ("POST", how),
        ("GET", None),  # there it is: not posted again
        ("GET", None),  # and no twin from another process
    ]


@LOST
async def test_a_lost_answer_to_the_status_finds_it_instead_of_stacking_another(
    client: GitLabClient, gitlab: FakeGitLab, how: str
) -> None:
    build = await client.get_build(root_ref())
    gitlab.lose_answer(STATUS, how=how)
    published = await publish(client, root_ref(), failing_run("x"), build)
    [status] = gitlab.statuses[(PROJECT, SHA)]
    assert published.status_id == str(status["id"])
    assert len(gitlab.calls_to("POST", "/statuses/")) == 1


@LOST
async def test_a_lost_answer_to_a_reply_finds_it_by_the_note_it_answers(
    client: GitLabClient, gitlab: FakeGitLab, how: str
) -> None:
    # A human quoting our marker is not our reply.
    gitlab.add_note(PROJECT, MR, f"{notes.reply_marker('2219876')} says the bot",
                    author_id=DEVELOPER_ID, username=DEVELOPER_NAME)
    gitlab.lose_answer(f"POST {NOTES}", how=how)
    await client.reply(PATH, note(DEVELOPER_NAME, DEVELOPER_ID), "re-running")
    [reply] = gitlab.our_notes(PROJECT, MR)
    assert reply["body"] == "<!-- herald:reply:2219876 -->\nre-running"
    assert len(gitlab.calls_to("POST", NOTES)) == 1


async def test_a_reply_that_did_not_land_is_posted_again_after_looking(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    gitlab.fail_next(f"POST {NOTES}", status=502)  # a gateway error: GitLab did nothing
    await client.reply(PATH, note(DEVELOPER_NAME, DEVELOPER_ID), "re-running")
    assert requests_to(gitlab, NOTES) == [("POST", None), ("GET", None), ("POST", None)]
    assert len(gitlab.our_notes(PROJECT, MR)) == 1


async def test_a_reply_to_another_note_whose_id_begins_alike_is_not_this_ones(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    # Our reply to note 22198761 begins with "<!-- herald:reply:2219876" too: only the
    # marker's closing " -->" tells it from a reply to note 2219876.
    gitlab.add_note(PROJECT, MR, f"{notes.reply_marker('22198761')}\nearlier answer",
                    author_id=gitlab.me["id"], username=gitlab.me["username"])
    gitlab.fail_next(f"POST {NOTES}", status=502)  # a gateway error: GitLab did nothing
    await client.reply(PATH, note(DEVELOPER_NAME, DEVELOPER_ID), "re-running")
    assert [n["body"] for n in gitlab.our_notes(PROJECT, MR)] == [
        "<!-- herald:reply:22198761 -->\nearlier answer",
        "<!-- herald:reply:2219876 -->\nre-running",
    ]


@LOST
async def test_a_lost_answer_to_a_pipeline_retry_does_not_retry_it_twice(
    client: GitLabClient, gitlab: FakeGitLab, how: str
) -> None:
    gitlab.lose_answer(rf"POST /projects/{PROJECT}/pipelines/{ROOT}/retry", how=how)
    rerun = await client.rerun(root_ref())
    assert rerun.runs == [str(ROOT)]
    assert gitlab.retried == [ROOT]


async def test_a_note_that_keeps_failing_gives_up_and_the_jobs_retry_posts_it_once(
    client: GitLabClient, gitlab: FakeGitLab
) -> None:
    build = await client.get_build(root_ref())
    gitlab.fail_next(f"POST {NOTES}", status=502, times=3)  # looked for, missing, each time
    with pytest.raises(OutcomeUnknown, match="502"):
        await publish(client, root_ref(), failing_run("x"), build)
    assert gitlab.our_notes(PROJECT, MR) == []
    # The job's retry looks first, and posts the one note.
    await publish(client, root_ref(), failing_run("x"), build)
    assert len(gitlab.our_notes(PROJECT, MR)) == 1


async def test_a_write_that_never_reached_gitlab_is_not_an_unknown_outcome() -> None:
    # Nothing listens on the port: the connection is refused, so the POST surely did not
    # happen and is retried inline; in the end it is an ordinary transient failure.
    api = GitLabAPI(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=0.3, retries=1)
    try:
        with pytest.raises(TransientError) as caught:
            await api.post("comment", "/projects/1/merge_requests/1/notes", {"body": "x"},
                           idempotent=False)
    finally:
        api.close()
    assert not isinstance(caught.value, OutcomeUnknown)
