"""`.herald.yml` on GitHub end to end: the file read at the head commit through the git
trees and blobs API of the fake, cached by blob id, the owner's `.github` default, and what
the report does with it (comment mode, targets, gate, a broken file named in the check)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bot.ports import Change
from bot.repo_config import CommentMode
from bot.repo_config_read import read_repo_config
from providers.github.client import GitHubClient
from providers.github.publish import reply_marker
from tests.fakes.ci_world import redis as redis  # the fixture
from tests.fakes.github import FakeGitHub
from tests.github.conftest import REPO
from tests.github.test_end_to_end import Herald, retest_comment, run_completed
from tests.github.test_end_to_end import herald as herald  # the fixture
from tests.github.world import PR, RUN, SHA, seed_run

pytestmark = pytest.mark.e2e

OWNER = REPO.partition("/")[0]
DEFAULTS_REPO = f"{OWNER}/.github"
BLOBS = rf"/repos/{REPO}/git/blobs/[0-9a-f]{{40}}"
TREES = rf"/repos/{REPO}/git/trees/\w+"


def comments(fake: FakeGitHub) -> list[dict[str, Any]]:
    return fake.repo(REPO).comments.get(PR, [])


async def report(herald: Herald, run: dict[str, Any]) -> None:
    await herald.deliver("workflow_run", run_completed(run))
    await herald.work()


async def test_comment_off_posts_no_comment_and_still_the_check(fake, herald) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"version: 1\nreport:\n  comment: off\n")
    await report(herald, seed_run(fake, failures=2))
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    assert comments(fake) == []
    assert "Note:" not in check["output"]["summary"]


async def test_comment_on_failure_posts_only_for_a_failing_run(fake, herald) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"report: {comment: on_failure}\n")
    await report(herald, seed_run(fake, failures=0, passes=3))
    assert comments(fake) == []
    failing = seed_run(fake, failures=1, id=RUN["id"] + 1, run_number=RUN["run_number"] + 1)
    await report(herald, failing)
    [comment] = comments(fake)
    assert "1 failed" in comment["body"]


async def test_comment_always_starts_a_comment_for_a_green_run(fake, herald) -> None:
    # Without the file, a green run starts no conversation: the file changes that.
    fake.add_file(REPO, SHA, ".herald.yml", b"report:\n  comment: always\n")
    await report(herald, seed_run(fake, failures=0, passes=3))
    [comment] = comments(fake)
    assert "All 3 tests passed" in comment["body"]


async def test_comment_on_change_edits_only_when_the_failures_change(fake, herald) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"report:\n  comment: on_change\n")
    await report(herald, seed_run(fake, failures=1, passes=1))
    # A newer run with the same failure and more passing tests: left as it is (the counts
    # it shows are the first run's: what `on_change` hides, by design).
    await report(herald, seed_run(fake, failures=1, passes=4, id=RUN["id"] + 1))
    [comment] = comments(fake)
    assert "1 failed of 2 tests" in comment["body"]
    edits = r"/repos/heraldhq/herald/issues/comments/\d+"
    assert fake.calls_to("PATCH", edits) == []
    # A third with another failure: edited.
    await report(herald, seed_run(fake, failures=2, passes=4, id=RUN["id"] + 2))
    [comment] = comments(fake)
    assert "2 failed of 6 tests" in comment["body"]
    assert len(fake.calls_to("PATCH", edits)) == 1


async def test_a_broken_file_is_named_in_the_check_with_its_line_and_defaults_apply(
    fake, herald
) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"version: 1\nreport:\n  coment: off\n")
    await report(herald, seed_run(fake, failures=1))
    [check] = fake.repo(REPO).check_runs
    summary = check["output"]["summary"]
    assert ".herald.yml line 3: unknown key \\`report.coment\\`; the defaults were used" \
        in summary
    assert check["conclusion"] == "failure"  # the tests are still reported, and gate
    [comment] = comments(fake)  # the default mode: a failing run gets its comment
    assert ".herald.yml line 3" in comment["body"]


async def test_fail_on_nothing_makes_the_check_neutral_with_the_failures_shown(
    fake, herald
) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"fail_on: nothing\n")
    await report(herald, seed_run(fake, failures=2))
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "neutral"
    assert check["output"]["title"].startswith("2 failed")
    assert "not gating" in check["output"]["title"]
    assert len(check["annotations"]) == 2


async def test_fail_on_regressions_without_a_base_gates_on_every_failure_and_says_so(
        fake, herald) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"fail_on: regressions\n")
    await report(herald, seed_run(fake, failures=1))
    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    assert "no earl" in check["output"]["summary"]  # no earlier run of it on the base


async def test_targets_without_the_check_post_only_the_comment(fake, herald) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"report:\n  targets: [comment]\n")
    await report(herald, seed_run(fake, failures=1))
    assert fake.repo(REPO).check_runs == []
    [comment] = comments(fake)
    assert "1 failed" in comment["body"]


async def test_annotations_can_be_left_out_of_the_check(fake, herald) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"report:\n  targets: [check, comment]\n")
    await report(herald, seed_run(fake, failures=2))
    [check] = fake.repo(REPO).check_runs
    assert check["annotations"] == []


async def test_artifact_patterns_of_the_file_replace_the_configured_ones(fake, herald) -> None:
    # The seeded run's report is in `test-results`; a file naming only `dist` reads that
    # one instead, which holds no report, and says so: the configured patterns are unused.
    fake.add_file(REPO, SHA, ".herald.yml", b"artifacts: [dist]\n")
    await report(herald, seed_run(fake, failures=1))
    [check] = fake.repo(REPO).check_runs
    assert check["output"]["title"] == "No tests found; 1 input could not be read"
    assert "dist" in check["output"]["summary"]
    assert "test\\_bad" not in check["output"]["summary"]


async def test_the_organisation_default_applies_to_a_repository_without_a_file(
    fake, herald
) -> None:
    fake.add_file(DEFAULTS_REPO, "HEAD", ".herald.yml", b"report: {comment: off}\n")
    await report(herald, seed_run(fake, failures=1))
    assert len(fake.repo(REPO).check_runs) == 1
    assert comments(fake) == []
    assert fake.calls_to("GET", rf"/repos/{DEFAULTS_REPO}/contents/\.herald\.yml")


async def test_the_repository_file_wins_over_the_organisation_default(fake, herald) -> None:
    fake.add_file(DEFAULTS_REPO, "HEAD", ".herald.yml", b"report: {comment: off}\n")
    fake.add_file(REPO, SHA, ".herald.yml", b"report: {comment: always}\n")
    await report(herald, seed_run(fake, failures=1))
    assert len(comments(fake)) == 1
    assert not fake.calls_to("GET", rf"/repos/{DEFAULTS_REPO}/contents/\.herald\.yml")


async def test_a_forge_error_reading_the_file_costs_only_the_file(fake, herald) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"report: {comment: off}\n")
    fake.fail("GET", TREES, status=500, times=50)
    await report(herald, seed_run(fake, failures=1))
    [check] = fake.repo(REPO).check_runs
    assert ".herald.yml could not be read" in check["output"]["summary"]
    assert "the defaults were used" in check["output"]["summary"]
    assert len(comments(fake)) == 1  # the defaults: a failing run gets its comment


# ---- the forge reading, cached by blob id -------------------------------------------------


@pytest.fixture
def client(fake: FakeGitHub, http: httpx.AsyncClient, make_client) -> GitHubClient:
    fake.repo(REPO)
    client: GitHubClient = make_client()
    return client


def change(sha: str) -> Change:
    return Change(forge="github", repo=REPO, sha=sha, numbers=(PR,))


async def test_a_new_commit_with_the_same_blob_does_not_read_the_blob_again(
    fake, client, redis
) -> None:
    text = b"report:\n  comment: on_change\n"
    first, second = "a" * 40, "b" * 40
    fake.add_file(REPO, first, ".herald.yml", text)
    fake.add_file(REPO, second, ".herald.yml", text)
    one = await read_repo_config(redis, client, change(first))
    two = await read_repo_config(redis, client, change(second))
    assert one.config.report.comment is two.config.report.comment is CommentMode.ON_CHANGE
    assert len(fake.calls_to("GET", TREES)) == 2  # each commit looked up once
    assert len(fake.calls_to("GET", BLOBS)) == 1  # its bytes read once
    # The same commit again: nothing asked of GitHub at all.
    await read_repo_config(redis, client, change(first))
    assert len(fake.calls_to("GET", TREES)) == 2


async def test_a_changed_file_is_read_at_its_new_commit(fake, client, redis) -> None:
    fake.add_file(REPO, "a" * 40, ".herald.yml", b"fail_on: nothing\n")
    fake.add_file(REPO, "b" * 40, ".herald.yml", b"fail_on: failures\n")
    assert (await read_repo_config(redis, client, change("a" * 40))).config.fail_on == "nothing"
    assert (await read_repo_config(redis, client, change("b" * 40))).config.fail_on == \
        "failures"
    assert len(fake.calls_to("GET", BLOBS)) == 2


async def test_a_commit_without_a_file_is_remembered_briefly(fake, client, redis) -> None:
    outcome = await read_repo_config(redis, client, change("c" * 40))
    assert (outcome.source, outcome.notices) == (None, ())
    await read_repo_config(redis, client, change("c" * 40))
    assert len(fake.calls_to("GET", TREES)) == 1
    [held] = await redis.keys("herald:repoconf:at:*")
    assert 0 < await redis.ttl(held) <= 300


async def test_a_file_too_large_is_refused_without_reading_it(fake, client, redis) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"# padding\n" * 8000)
    outcome = await read_repo_config(redis, client, change(SHA))
    assert outcome.notices == (
        ".herald.yml is 80,000 bytes; at most 65,536 are read; the defaults were used",
    )
    assert fake.calls_to("GET", BLOBS) == []


async def test_an_organisation_default_the_installation_cannot_see_is_no_default(
    fake, client, redis
) -> None:
    fake.add_file(DEFAULTS_REPO, "HEAD", ".herald.yml", b"report: {comment: off}\n")
    fake.fail("GET", rf"/repos/{DEFAULTS_REPO}/contents/\.herald\.yml", status=403,
              body={"message": "Resource not accessible by integration"})
    outcome = await read_repo_config(redis, client, change(SHA))
    assert (outcome.source, outcome.notices) == (None, ())


async def test_retest_turned_off_by_the_file_reruns_nothing_and_says_so(fake, herald) -> None:
    seed_run(fake, id=5001, workflow_id=1, name="CI", conclusion="failure")
    fake.grant(REPO, "octo-dev", "write", "maintain")
    fake.add_file(REPO, SHA, ".herald.yml", b"retest:\n  who: nobody\n")
    await herald.deliver("issue_comment", retest_comment())
    await herald.work()
    repo = fake.repo(REPO)
    assert repo.reruns == []
    assert repo.comments[PR][-1]["body"] == (
        f"{reply_marker('2498765432')}\n@octo-dev `/retest` is turned off for this "
        "repository (`.herald.yml`: `retest: {who: nobody}`)."
    )


async def test_retest_with_a_broken_file_follows_the_forge_s_rule(fake, herald) -> None:
    seed_run(fake, id=5001, workflow_id=1, name="CI", conclusion="failure")
    fake.grant(REPO, "octo-dev", "write", "maintain")
    fake.add_file(REPO, SHA, ".herald.yml", b"retest:\n  who: no-one\n")
    await herald.deliver("issue_comment", retest_comment())
    await herald.work()
    assert fake.repo(REPO).reruns == [(5001, "rerun-failed-jobs")]
