"""`.herald.yml` on GitLab end to end: the file found at the pipeline's commit with the
repository files API's HEAD (its blob id in the headers), read as a raw blob once, and what
the report does with it: the MR note's mode, the status' gate, a broken file named in the
status with its line."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from bot.ports import Change
from bot.repo_config import FailOn
from bot.repo_config_read import read_repo_config
from providers.gitlab.client import DESCRIPTION_LIMIT, GitLabClient
from tests.fakes import zipped
from tests.fakes.ci_world import redis as redis  # the fixture
from tests.fakes.gitlab import FakeGitLab
from tests.gitlab.test_end_to_end import Herald, herald_statuses, pipeline_hook, report_note
from tests.gitlab.test_end_to_end import herald as herald  # the fixture
from tests.gitlab.world import CHILD, MR, PATH, PROJECT, ROOT, SHA, Jobs

pytestmark = pytest.mark.e2e

FILES = rf"/projects/{PROJECT}/repository/files/\.herald\.yml"
BLOBS = rf"/projects/{PROJECT}/repository/blobs/[0-9a-f]{{40}}/raw"
PASSING_JUNIT = (b'<testsuite name="integration" tests="1">'
                 b'<testcase classname="payments.Gateway" name="test_charges_card"/>'
                 b"</testsuite>")


def all_green(gitlab: FakeGitLab, world: Jobs) -> None:
    """The world's pipelines, with every test passing."""
    for pipeline in (ROOT, CHILD):
        gitlab.set_test_report(pipeline, [{"name": "unit", "test_cases": [
            {"name": "test_login", "classname": "auth.LoginTest", "status": "success"}]}])
    gitlab.artifacts[world.integration["id"]] = zipped({"reports/integration.xml":
                                                        PASSING_JUNIT})


async def report(herald: Herald) -> None:
    assert (await herald.deliver("Pipeline Hook", pipeline_hook())).status_code == 202
    await herald.work()


def notes_of(gitlab: FakeGitLab) -> list[str]:
    return [n["body"] for n in gitlab.our_notes(PROJECT, MR)]


async def test_comment_off_posts_no_note_and_still_the_status(herald, gitlab) -> None:
    gitlab.add_file(PROJECT, SHA, ".herald.yml", b"report:\n  comment: off\n")
    await report(herald)
    [status] = herald_statuses(gitlab)
    assert status["status"] == "failed"
    assert notes_of(gitlab) == []
    [head] = gitlab.calls_to("HEAD", FILES)
    assert head.query == {"ref": SHA}


async def test_comment_on_failure_notes_only_a_failing_pipeline(herald, gitlab, world) -> None:
    # GitLab's habit is a note for every pipeline: `on_failure` keeps green ones quiet.
    gitlab.add_file(PROJECT, SHA, ".herald.yml", b"report: {comment: on_failure}\n")
    all_green(gitlab, world)
    await report(herald)
    [status] = herald_statuses(gitlab)
    assert status["status"] == "success"
    assert notes_of(gitlab) == []


async def test_comment_on_failure_notes_a_failing_pipeline(herald, gitlab) -> None:
    gitlab.add_file(PROJECT, SHA, ".herald.yml", b"report: {comment: on_failure}\n")
    await report(herald)
    assert "4 failed" in report_note(gitlab)["body"]


async def test_without_a_file_a_green_pipeline_gets_its_note_as_ever(
    herald, gitlab, world
) -> None:
    all_green(gitlab, world)
    await report(herald)
    assert "passed" in report_note(gitlab)["body"]


async def test_a_broken_file_is_named_in_the_status_with_its_line(herald, gitlab) -> None:
    gitlab.add_file(PROJECT, SHA, ".herald.yml",
                    b"version: 1\n# the gate\nfail_on: sometimes\n")
    await report(herald)
    [status] = herald_statuses(gitlab)
    assert status["status"] == "failed"  # the defaults: failures fail
    assert status["description"].startswith("4 failed, 1 error, 3 passed, 1 skipped")
    assert ".herald.yml line 3: `fail_on`: Input should be 'failures', 'regressions' or " \
        "'nothing'" in status["description"]
    assert len(status["description"]) <= DESCRIPTION_LIMIT
    assert ".herald.yml line 3" in report_note(gitlab)["body"]


async def test_fail_on_nothing_keeps_the_status_successful_and_says_why(
    herald, gitlab
) -> None:
    gitlab.add_file(PROJECT, SHA, ".herald.yml", b"fail_on: nothing\n")
    await report(herald)
    [status] = herald_statuses(gitlab)
    assert status["status"] == "success"
    assert status["description"].startswith("4 failed")
    assert "not gating" in status["description"]
    assert "4 failed" in report_note(gitlab)["body"]


async def test_comment_on_change_leaves_a_note_showing_the_same_failures(
    herald, gitlab
) -> None:
    gitlab.add_file(PROJECT, SHA, ".herald.yml", b"report: {comment: on_change}\n")
    await report(herald)
    note = report_note(gitlab)
    assert "<!-- herald:result:" in note["body"]
    await report(herald)
    assert gitlab.calls_to("PUT", rf"/projects/{PROJECT}/merge_requests/{MR}/notes/\d+") == []
    assert report_note(gitlab)["id"] == note["id"]


# ---- the forge reading -------------------------------------------------------------------


def change(sha: str) -> Change:
    return Change(forge="gitlab", repo=PATH, sha=sha, numbers=(MR,),
                  extra={"project_id": PROJECT})


async def test_a_new_commit_with_the_same_blob_does_not_read_the_blob_again(
    gitlab: FakeGitLab, client: GitLabClient, redis: aioredis.Redis
) -> None:
    for sha in ("a" * 40, "b" * 40):
        gitlab.add_file(PROJECT, sha, ".herald.yml", b"fail_on: nothing\n")
    for sha in ("a" * 40, "b" * 40, "a" * 40):
        outcome = await read_repo_config(redis, client, change(sha))
        assert outcome.config.fail_on is FailOn.NOTHING
    assert [c.query["ref"] for c in gitlab.calls_to("HEAD", FILES)] == ["a" * 40, "b" * 40]
    assert len(gitlab.calls_to("GET", BLOBS)) == 1


async def test_gitlab_has_no_organisation_default(gitlab, client, redis) -> None:
    outcome = await read_repo_config(redis, client, change("c" * 40))
    assert (outcome.source, outcome.notices) == (None, ())
    assert len(gitlab.calls_to("HEAD", FILES)) == 1
