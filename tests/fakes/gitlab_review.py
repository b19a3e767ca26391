"""A fake GitLab holding one project with one open merge request, a Developer and a Guest:
where a CI source that is not GitLab (Jenkins, Travis CI) has its builds of GitLab code
reported, and where `/retest` is asked for."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.fakes.gitlab import DEVELOPER, GUEST, TOKEN, FakeGitLab, serve

PROJECT = 48213
DEVELOPER_ID, GUEST_ID = 4127, 5001


@contextmanager
def merge_request_on_gitlab(path: str, number: int, sha: str, source_branch: str
                            ) -> Iterator[FakeGitLab]:
    fake = FakeGitLab()
    with serve(fake) as url:
        fake.url = url
        fake.add_project(PROJECT, path)
        fake.add_merge_request(PROJECT, number, sha=sha, source_branch=source_branch)
        fake.add_member(PROJECT, DEVELOPER_ID, "mkovac", DEVELOPER)
        fake.add_member(PROJECT, GUEST_ID, "visitor", GUEST)
        yield fake


def gitlab_env(fake: FakeGitLab) -> dict[str, str]:
    return {"HERALD_GITLAB_URL": fake.url, "HERALD_GITLAB_TOKEN": TOKEN,
            "HERALD_GITLAB_TIMEOUT": "2"}
