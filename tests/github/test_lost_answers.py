"""A write is resent only when it is idempotent: GitHub did the request, the answer was lost.

The fake does each request, then loses its answer: held until the client's timeout
(`timeout`) or the connection reset (`reset`). Reads and writes that set whole fields are
simply sent again; writes that append (a check run, an annotation batch, a comment, a
rerun) are first looked for in what GitHub holds, and only what is missing is sent.
"""

from __future__ import annotations

import dataclasses
import re

import httpx
import pytest

from bot.embedded_redis import free_port
from bot.events import RunRef
from bot.results.model import TestRun
from providers.base import Build, OutcomeUnknown, TransientError
from providers.github.api import GitHubAPI, Throttle
from providers.github.client import GitHubClient
from tests.fakes import publish
from tests.fakes.github import FakeGitHub
from tests.github.conftest import REPO
from tests.github.test_client import failing_run
from tests.github.world import PR, comment, ref_for, seed_run

RUN_PATH = r"/repos/heraldhq/herald/actions/runs/\d+"
CHECKS = "/repos/heraldhq/herald/check-runs"
CHECK = r"/repos/heraldhq/herald/check-runs/\d+"
COMMENTS = rf"/repos/heraldhq/herald/issues/{PR}/comments"
REACTIONS = r"/repos/heraldhq/herald/issues/comments/\d+/reactions"
RERUN = r"/repos/heraldhq/herald/actions/runs/\d+/rerun-failed-jobs"

LOST = pytest.mark.parametrize("how", ["timeout", "reset"])


@pytest.fixture
def client(make_client) -> GitHubClient:
    # Short, so that a held answer gives up quickly.
    client: GitHubClient = make_client(HERALD_GITHUB_REQUEST_TIMEOUT="0.5")
    return client


async def publishing(fake: FakeGitHub, client: GitHubClient, run: TestRun
                     ) -> tuple[RunRef, TestRun, Build]:
    ref = ref_for(fake, seed_run(fake))
    return ref, run, await client.get_build(ref)


def lines_annotated(fake: FakeGitHub) -> list[int]:
    [check] = fake.repo(REPO).check_runs
    return [a["start_line"] for a in check["annotations"]]


def check_run_calls(fake: FakeGitHub, since: int = 0) -> list[tuple[str, int | None, object]]:
    """Requests about check runs (listed, created, read, updated) from call `since` on:
    (method, annotations sent, how the answer was lost or which fault answered)."""
    return [
        (c.method, len(c.json["output"].get("annotations", [])) if c.json else None, c.fault)
        for c in fake.calls[since:]
        if re.fullmatch(r".*/check-runs(/\d+)?", c.path)
    ]


# ---- reads and whole-state writes: sent again ---------------------------------------------


@LOST
async def test_a_read_whose_answer_is_lost_is_asked_again(fake, client, how) -> None:
    run = seed_run(fake)
    fake.lose_answer("GET", RUN_PATH, how=how)
    build = await client.get_build(ref_for(fake, run))
    assert build.status == "failure"
    assert [c.fault for c in fake.calls_to("GET", RUN_PATH)] == [how, None]


@LOST
async def test_a_patch_that_sets_fields_only_is_sent_again(fake, client, how) -> None:
    ref, run, build = await publishing(fake, client, failing_run(3))
    await publish(client, ref, run, build)
    since = len(fake.calls)
    fake.lose_answer("PATCH", CHECK, how=how)
    await publish(client, ref, run, build)
    # No annotations in it, so nothing to look up first: the same PATCH once more.
    assert check_run_calls(fake, since) == [
        ("GET", None, None), ("PATCH", 0, how), ("PATCH", 0, None),
    ]
    assert lines_annotated(fake) == [1, 2, 3]


@LOST
async def test_a_reaction_is_sent_again_because_github_keeps_one_of_a_kind(
    fake, client, how
) -> None:
    seed_run(fake)
    fake.lose_answer("POST", REACTIONS, how=how)
    await client.acknowledge(REPO, comment(fake))
    assert len(fake.calls_to("POST", REACTIONS)) == 2
    assert fake.repo(REPO).reactions == [{"comment_id": 5551234, "content": "eyes"}]


# ---- appending writes: looked for, then only what is missing ------------------------------


@LOST
async def test_an_annotation_batch_whose_answer_is_lost_lands_exactly_once(
    fake, client, how
) -> None:
    ref, run, build = await publishing(fake, client, failing_run(120))
    fake.lose_answer("PATCH", CHECK, how=how)  # the second batch: done, answer lost
    await publish(client, ref, run, build)
    assert lines_annotated(fake) == list(range(1, 121))
    assert check_run_calls(fake) == [
        ("GET", None, None),  # is there one already? no
        ("POST", 50, None),
        ("PATCH", 50, how),
        ("GET", None, None),  # annotations_count: 100, so the batch is there
        ("PATCH", 20, None),
    ]


async def test_an_annotation_batch_that_did_not_land_is_sent_again_after_looking(
    fake, client
) -> None:
    ref, run, build = await publishing(fake, client, failing_run(120))
    fake.fail("PATCH", CHECK, status=502)  # a gateway error: GitHub did nothing
    await publish(client, ref, run, build)
    assert lines_annotated(fake) == list(range(1, 121))
    assert check_run_calls(fake) == [
        ("GET", None, None),
        ("POST", 50, None),
        ("PATCH", 50, 502),
        ("GET", None, None),  # annotations_count: 50, so the batch is missing
        ("PATCH", 50, None),
        ("PATCH", 20, None),
    ]


@LOST
async def test_a_lost_answer_to_creating_the_check_run_finds_it_instead_of_a_second(
    fake, client, how
) -> None:
    ref, run, build = await publishing(fake, client, failing_run(70))
    fake.lose_answer("POST", CHECKS, how=how)
    published = await publish(client, ref, run, build)
    [check] = fake.repo(REPO).check_runs
    assert published.check_run_id == str(check["id"])
    assert published.created
    assert lines_annotated(fake) == list(range(1, 71))
    assert len(fake.calls_to("POST", CHECKS)) == 1


@LOST
async def test_a_lost_answer_to_the_sticky_comment_finds_it_by_its_marker(
    fake, client, how
) -> None:
    ref, run, build = await publishing(fake, client, failing_run(2))
    fake.lose_answer("POST", COMMENTS, how=how)
    published = await publish(client, ref, run, build)
    [posted] = fake.repo(REPO).comments[PR]
    assert published.comment_id == str(posted["id"])
    # Looked for, posted, looked for after the lost answer, then listed once more for a
    # twin another process may have posted meanwhile (bot.sticky).
    assert [c.method for c in fake.calls if c.path == COMMENTS] == ["GET", "POST", "GET", "GET"]


@LOST
async def test_a_lost_answer_to_a_reply_finds_it_by_the_comment_it_answers(
    fake, client, how
) -> None:
    seed_run(fake)
    fake.add_human_comment(REPO, PR, "<!-- herald:reply:5551234 --> quoting the bot", "octo")
    fake.lose_answer("POST", COMMENTS, how=how)
    await client.reply(REPO, comment(fake), "@octo-dev re-running")
    replies = [c for c in fake.repo(REPO).comments[PR] if c["user"]["type"] == "Bot"]
    assert [r["body"] for r in replies] == ["<!-- herald:reply:5551234 -->\n@octo-dev re-running"]
    assert len(fake.calls_to("POST", COMMENTS)) == 1


async def test_a_reply_that_did_not_land_is_posted_again_after_looking(fake, client) -> None:
    seed_run(fake)
    fake.fail("POST", COMMENTS, status=502)
    await client.reply(REPO, comment(fake), "hello")
    assert [(c.method, c.fault) for c in fake.calls if c.path == COMMENTS] == [
        ("POST", 502), ("GET", None), ("POST", None),
    ]
    assert len(fake.repo(REPO).comments[PR]) == 1


async def test_a_reply_to_another_comment_whose_id_begins_alike_is_not_this_ones(
    fake, client
) -> None:
    # Our reply to comment 55512345 begins with "<!-- herald:reply:5551234" too: only the
    # marker's closing " -->" tells it from a reply to comment 5551234.
    seed_run(fake)
    earlier = comment(fake)
    await client.reply(REPO, dataclasses.replace(earlier, id="55512345"), "earlier answer")
    fake.fail("POST", COMMENTS, status=502)
    await client.reply(REPO, earlier, "re-running")
    assert [c["body"] for c in fake.repo(REPO).comments[PR]] == [
        "<!-- herald:reply:55512345 -->\nearlier answer",
        "<!-- herald:reply:5551234 -->\nre-running",
    ]


@LOST
async def test_a_lost_answer_to_a_rerun_does_not_rerun_twice(fake, client, how) -> None:
    run = seed_run(fake)
    fake.lose_answer("POST", RERUN, how=how)
    rerun = await client.rerun(ref_for(fake, run))
    assert rerun.runs == [str(run["id"])]
    assert fake.repo(REPO).reruns == [(run["id"], "rerun-failed-jobs")]


async def test_answers_lost_again_and_again_give_up_with_nothing_doubled(fake, client) -> None:
    ref, run, build = await publishing(fake, client, failing_run(200))
    fake.lose_answer("PATCH", CHECK, how="reset", times=3)
    with pytest.raises(OutcomeUnknown, match="did not answer PATCH"):
        await publish(client, ref, run, build)
    # Each lost answer's batch was done, and none was sent twice.
    assert lines_annotated(fake) == list(range(1, 201))
    # The job's retry reads the count: only the fields are left to send.
    since = len(fake.calls)
    await publish(client, ref, run, build)
    assert check_run_calls(fake, since) == [("GET", None, None), ("PATCH", 0, None)]
    assert lines_annotated(fake) == list(range(1, 201))


async def test_a_write_that_never_reached_github_is_not_an_unknown_outcome() -> None:
    # Nothing listens on the port: the connection is refused, so the POST surely did not
    # happen and is retried inline; in the end it is an ordinary transient failure.
    api_url = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient() as http:
        api = GitHubAPI(http, scope="test", throttle=Throttle(), base_url=api_url)
        with pytest.raises(TransientError) as caught:
            await api.send("POST", f"{api_url}/repos/o/r/issues/1/comments", {}, b"{}",
                           idempotent=False)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert "ConnectError" in str(caught.value)
