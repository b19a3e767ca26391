"""handlers.retest: which comments are commands, who may retest, what gets rerun, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.events import CHECK_REREQUESTED, COMMENT_CREATED, Comment, Event, RunRef
from bot.ports import Change, PermanentError, TransientError
from handlers.retest import Command, parse_command, rerequested, retest
from tests.fakes import FakeCI, FakeForge, context


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/retest", Command("retest")),
        ("/retest\n", Command("retest")),
        ("  /retest", Command("retest")),
        ("/RETEST", Command("retest")),
        ("/retest please", Command("retest", ("please",))),
        ("CI flaked again.\n\n/retest", Command("retest")),
        ("/retest\r\nthanks", Command("retest")),
        ("please /retest", None),
        ("/retesting the waters", None),
        ("/rebase", None),
        ("`/retest`", None),
        ("use `/retest` to rerun", None),
        ("    /retest", None),
        ("\t/retest", None),
        ("> /retest", None),
        ("  > /retest", None),
        (">/retest", None),
        ("```\n/retest\n```", None),
        ("~~~\n/retest\n~~~", None),
        ("```sh\n/retest\n```\n/retest", Command("retest")),
        ("````\n```\n/retest\n````", None),
        ("```\n/retest", None),  # an unclosed fence runs to the end
        ("~~~\n```\n~~~\n/retest", Command("retest")),
        ("<!-- /retest -->", None),
        ("", None),
    ],
)
def test_parse_command(body: str, expected: Command | None) -> None:
    assert parse_command(body) == expected


def comment_event(body: str = "/retest", author: str = "alice", bot: bool = False) -> Event:
    return Event(
        provider="github",
        name=COMMENT_CREATED,
        native_name="issue_comment",
        delivery_id="d-1",
        repo="octo/app",
        comment=Comment(id="77", body=body, author=author, change=5, author_is_bot=bot),
    )


def failed_run(run_id: str, name: str) -> RunRef:
    return RunRef(
        provider="github", repo="octo/app", run_id=run_id,
        url=f"https://github.com/octo/app/actions/runs/{run_id}", extra={"name": name},
    )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_trusted_retest_acknowledges_first_then_reruns_and_replies(redis) -> None:
    forge = FakeForge(trusted={"alice"})
    ci = FakeCI(failed=[failed_run("1", "CI"), failed_run("2", "Lint")])
    await retest(context(comment_event(), redis, ci=ci, forge=forge))
    assert forge.calls == [
        ("can_retest", "alice"),
        ("acknowledge", "77"),
        ("head_change", 5),
        ("reply", "@alice re-running the failed jobs of "
                  "[CI](https://github.com/octo/app/actions/runs/1), "
                  "[Lint](https://github.com/octo/app/actions/runs/2)."),
    ]
    assert ci.calls == [("latest_failed_runs", "abc123"), ("rerun", "1", True),
                        ("rerun", "2", True)]


async def test_a_rerun_that_starts_a_new_run_links_it_beside_the_old(redis) -> None:
    forge = FakeForge(trusted={"alice"})
    ci = FakeCI(failed=[failed_run("1", "CI"), failed_run("2", "Lint")],
                started={"1": "https://ci.example/runs/3"})
    await retest(context(comment_event(), redis, ci=ci, forge=forge))
    assert forge.calls[-1] == (
        "reply", "@alice re-running the failed jobs of "
                 "[CI](https://github.com/octo/app/actions/runs/1) "
                 "([new run](https://ci.example/runs/3)), "
                 "[Lint](https://github.com/octo/app/actions/runs/2).")


async def test_nothing_failed_says_so(redis) -> None:
    forge = FakeForge(trusted={"alice"})
    await retest(context(comment_event(), redis, forge=forge))
    assert forge.calls[-1] == (
        "reply",
        "@alice nothing to retest: no run for this pull request's latest commit has failed.",
    )


async def test_an_untrusted_author_gets_a_polite_reply_and_nothing_runs(redis) -> None:
    forge = FakeForge(trusted={"alice"})
    ci = FakeCI(failed=[failed_run("1", "CI")])
    await retest(context(comment_event(author="mallory"), redis, ci=ci, forge=forge))
    assert forge.calls == [
        ("can_retest", "mallory"),
        ("reply", "@mallory sorry, I can't retest on your request. "
                  "Only people with write access to this repository can retest."),
    ]
    assert ci.calls == []


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (comment_event(author="ci-bot[bot]", bot=True), "bots never trigger commands"),
        (comment_event(body="> /retest\nno, I won't"), "quoted"),
        (comment_event(body="LGTM"), "no command"),
    ],
)
async def test_comments_that_are_not_requests_do_nothing(redis, event: Event, why: str) -> None:
    forge = FakeForge(trusted={"alice", "ci-bot[bot]"})
    ci = FakeCI(failed=[failed_run("1", "CI")])
    await retest(context(event, redis, ci=ci, forge=forge))
    assert forge.calls == [] and ci.calls == [], why


async def test_a_retried_job_neither_reruns_twice_nor_replies_twice(redis) -> None:
    forge = FakeForge(trusted={"alice"})
    # First try: run 2's rerun fails transiently after run 1 was rerun.
    ci = FakeCI(failed=[failed_run("1", "CI"), failed_run("2", "Lint")],
                failures={"rerun:2": TransientError("503", retry_after=1)})
    with pytest.raises(TransientError):
        await retest(context(comment_event(), redis, ci=ci, forge=forge))
    ci.failures.clear()
    await retest(context(comment_event(), redis, ci=ci, forge=forge, job_try=2))
    await retest(context(comment_event(), redis, ci=ci, forge=forge, job_try=3))
    # Run 2 is asked again (its first attempt failed), run 1 never again.
    reruns = [call for call in ci.calls if call[0] == "rerun"]
    assert reruns == [("rerun", "1", True), ("rerun", "2", True), ("rerun", "2", True)]
    assert [c[0] for c in forge.calls].count("reply") == 1


async def test_two_deliveries_of_one_comment_at_once_rerun_and_reply_once(redis) -> None:
    # A project hook and a group hook deliver the same note under different delivery ids;
    # two workers take them at the same moment.
    forge = FakeForge(trusted={"alice"})
    ci = FakeCI(failed=[failed_run("1", "CI")])
    await asyncio.gather(
        retest(context(comment_event(), redis, ci=ci, forge=forge)),
        retest(context(comment_event(), redis, ci=ci, forge=forge)),
    )
    assert [call for call in ci.calls if call[0] == "rerun"] == [("rerun", "1", True)]
    assert [c[0] for c in forge.calls].count("reply") == 1


async def test_a_run_that_cannot_be_rerun_is_named_in_the_reply(redis) -> None:
    forge = FakeForge(trusted={"alice"})
    ci = FakeCI(failed=[failed_run("1", "CI"), failed_run("2", "Old")],
                failures={"rerun:2": PermanentError("the run is older than 30 days")})
    await retest(context(comment_event(), redis, ci=ci, forge=forge))
    assert forge.calls[-1] == (
        "reply",
        "@alice re-running the failed jobs of [CI](https://github.com/octo/app/actions/runs/1)."
        "\n\nCould not rerun [Old](https://github.com/octo/app/actions/runs/2): "
        "the run is older than 30 days.",
    )


async def test_names_from_the_repository_cannot_forge_links_or_mention_anyone(redis) -> None:
    # A workflow named by the change under review is shown literally in the reply.
    forge = FakeForge(trusted={"alice"})
    ci = FakeCI(failed=[
        failed_run("1", "CI](https://evil.example) @all ["),
        RunRef(provider="github", repo="octo/app", run_id="2", url="javascript:alert(1)",
               extra={"name": "Lint"}),
    ], failures={"rerun:2": PermanentError("workflow `<b>` is disabled")})
    await retest(context(comment_event(), redis, ci=ci, forge=forge))
    assert forge.calls[-1] == (
        "reply",
        "@alice re-running the failed jobs of "
        "[CI\\](https:\u2060//evil.example) @\u2060all \\[](https://github.com/octo/app/actions/runs/1)."
        "\n\nCould not rerun Lint: workflow \\`&lt;b&gt;\\` is disabled.",
    )


async def test_the_comment_lock_outlives_the_job_timeout(redis) -> None:
    # Each call of a retest may take a request timeout and two quick retries: a lock that
    # lapsed mid-job would let a redelivery of the comment reply a second time.
    seen: list[int] = []

    class SlowForge(FakeForge):
        async def head_change(self, repo: str, comment: Comment) -> Change | None:
            seen.append(await redis.pttl("herald:lock:retest:github:octo/app:77"))
            return await super().head_change(repo, comment)

    forge = SlowForge(trusted={"alice"})
    await retest(context(comment_event(), redis, forge=forge,
                         environ={"HERALD_JOB_TIMEOUT_SECONDS": "900"}))
    assert len(seen) == 1 and seen[0] > 900_000


async def test_the_permission_answer_is_cached_briefly(redis) -> None:
    forge = FakeForge(trusted={"alice"})
    await retest(context(comment_event(), redis, forge=forge))
    again = Event(provider="github", name=COMMENT_CREATED, native_name="issue_comment",
                  delivery_id="d-9", repo="octo/app",
                  comment=Comment(id="78", body="/retest", author="Alice", change=5))
    await retest(context(again, redis, forge=forge))
    assert [c for c in forge.calls if c[0] == "can_retest"] == [("can_retest", "alice")]
    assert 0 < await redis.ttl("herald:cache:permission:github:octo/app:alice") <= 60


async def test_a_cached_refusal_is_still_a_refusal(redis) -> None:
    # The second request is answered from the cache: it must refuse as the forge did.
    forge = FakeForge(trusted={"alice"})
    ci = FakeCI(failed=[failed_run("1", "CI")])
    await retest(context(comment_event(author="mallory"), redis, ci=ci, forge=forge))
    again = Event(provider="github", name=COMMENT_CREATED, native_name="issue_comment",
                  delivery_id="d-9", repo="octo/app",
                  comment=Comment(id="78", body="/retest", author="Mallory", change=5))
    await retest(context(again, redis, ci=ci, forge=forge))
    refusal = ("reply", "@mallory sorry, I can't retest on your request. "
                        "Only people with write access to this repository can retest.")
    assert forge.calls == [("can_retest", "mallory"), refusal,
                           ("reply", refusal[1].replace("@mallory", "@Mallory"))]
    assert ci.calls == []


async def test_rerequesting_our_check_reruns_the_run_behind_it(redis) -> None:
    ref = RunRef(provider="github", repo="octo/app", run_id="4242/1")
    event = Event(provider="github", name=CHECK_REREQUESTED, native_name="check_run",
                  delivery_id="d-2", repo="octo/app", run=ref)
    ci = FakeCI()
    await rerequested(context(event, redis, ci=ci))
    assert ci.calls == [("rerun", "4242/1", True)]


class ReportedOnly(FakeCI):
    """A CI source that cannot search runs by commit (`ReportedRunsSource`, Jenkins)."""

    async def latest_failed_of(self, change: Change, reported: list[RunRef]) -> list[RunRef]:
        self.calls.append(("latest_failed_of", change.sha, sorted(r.run_id for r in reported)))
        return list(reported)


class TwoSources:
    def __init__(self, forge: FakeForge, **sources: FakeCI) -> None:
        self.sources, self.forge_client = sources, forge

    def source(self, provider: str) -> FakeCI:
        return self.sources[provider]

    def forge(self, provider: str) -> FakeForge:
        return self.forge_client


async def test_a_source_that_cannot_search_by_commit_is_handed_its_own_reported_runs(
    redis,
) -> None:
    from bot.store import Store

    head = Change(forge="github", repo="octo/app", sha="abc123", numbers=(5,))
    store = Store(redis)
    jenkins_run = RunRef(provider="jenkins", repo="octo/app/PR-5", run_id="17",
                         extra={"name": "octo/app/PR-5 #17"})
    await store.record_report(head, jenkins_run)
    await store.record_report(head, failed_run("9", "CI"))
    forge, actions, jenkins = FakeForge(trusted={"alice"}), FakeCI(), ReportedOnly()
    ctx = context(comment_event(), redis, forge=forge)
    ctx.clients = TwoSources(forge, github=actions, jenkins=jenkins)
    await retest(ctx)
    # GitHub searches its own runs; Jenkins is told only of the Jenkins build reported here.
    assert actions.calls == [("latest_failed_runs", "abc123")]
    assert jenkins.calls == [("latest_failed_of", "abc123", ["17"]), ("rerun", "17", True)]


async def test_the_reply_says_where_each_rerun_runs_when_it_is_not_the_forge_s_own_ci(
    redis,
) -> None:
    from bot.store import Store

    head = Change(forge="github", repo="octo/app", sha="abc123", numbers=(5,))
    jenkins_run = RunRef(provider="jenkins", repo="octo/app/PR-5", run_id="17",
                         url="https://ci.example/job/PR-5/17/", extra={"name": "PR-5 #17"})
    actions_run = failed_run("9", "CI")
    await Store(redis).record_report(head, jenkins_run)
    forge = FakeForge(trusted={"alice"})
    ctx = context(comment_event(), redis, forge=forge)
    ctx.clients = TwoSources(forge, github=FakeCI(failed=[actions_run]),
                             jenkins=ReportedOnly())
    await retest(ctx)

    [reply] = [call[1] for call in forge.calls if call[0] == "reply"]
    assert reply == (
        f"@alice re-running the failed jobs of [CI]({actions_run.url}), "
        "[PR-\u20605 #\u206017](https://ci.example/job/PR-5/17/) on Jenkins."
    )
