"""A CI system that is not GitLab reports on a GitLab merge request: the real GitLab
client publishes its run as a commit status and a sticky note of its own, and finds the
merge request from the commit when the CI system cannot say which one it is."""

from __future__ import annotations

from bot.events import RunRef
from bot.ports import Change, ReportOrigin
from providers.gitlab.client import GitLabClient
from tests.fakes.gitlab import FakeGitLab
from tests.gitlab.test_client import failing_run
from tests.gitlab.world import MR, PATH, PROJECT, SHA, Jobs

WORKFLOW = "5f3c1b7e-8a2d-4c11-9e0a-2b6d7f4c9a10"


def circleci_origin() -> ReportOrigin:
    run = RunRef(provider="circleci", repo="circleci/org/project", run_id=WORKFLOW, sha=SHA,
                 branch="flaky-report")
    return ReportOrigin(run=run, name="build-and-test", sequence=42, number="42",
                        url="https://app.circleci.com/pipelines/circleci/org/project/42",
                        failed=True)


async def test_the_merge_request_is_found_from_the_commit_when_the_ci_cannot_say(
    client: GitLabClient, gitlab: FakeGitLab, world: Jobs
) -> None:
    change = Change(forge="gitlab", repo=PATH, sha=SHA, numbers_known=False)
    published = await client.publish(change, circleci_origin(), failing_run("test_refunds"))
    [note] = gitlab.our_notes(PROJECT, MR)
    assert published.comment_id == str(note["id"])
    assert "build-and-test" in note["body"]
    statuses = gitlab.statuses[(PROJECT, SHA)]
    assert [s["target_url"] for s in statuses] == [circleci_origin().url]


async def test_a_ci_that_says_there_is_no_merge_request_gets_only_its_status(
    client: GitLabClient, gitlab: FakeGitLab, world: Jobs
) -> None:
    change = Change(forge="gitlab", repo=PATH, sha=SHA)
    published = await client.publish(change, circleci_origin(), failing_run("test_refunds"))
    assert published.comment_id is None
    assert gitlab.our_notes(PROJECT, MR) == []
    assert len(gitlab.statuses[(PROJECT, SHA)]) == 1
