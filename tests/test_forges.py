"""bot.forges: the run of each workflow that counts, and the configured forge a repository
URL names (never a guess: a look-alike host reports nowhere)."""

from __future__ import annotations

import pytest

from bot.forges import Repository, forge_of_url, latest_per_key
from bot.settings import Settings

SELF_HOSTED = Settings.from_env({
    "HERALD_GITHUB_API_URL": "https://ghe.example.com/api/v3",
    "HERALD_GITLAB_URL": "https://gitlab.example.com",
})


def test_the_latest_run_of_each_workflow_counts_oldest_workflow_first() -> None:
    runs = [("CI", 1), ("Lint", 2), ("CI", 5), ("Docs", 3), ("Lint", 4)]
    assert latest_per_key(runs, key=lambda r: r[0], order=lambda r: r[1]) == [
        ("Docs", 3), ("Lint", 4), ("CI", 5)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/octo/app", Repository("github", "octo/app")),
        ("https://github.com/octo/app.git", Repository("github", "octo/app")),
        ("git@github.com:octo/app.git", Repository("github", "octo/app")),
        ("ssh://git@github.com/octo/app.git", Repository("github", "octo/app")),
        ("https://github.com/octo/app/tree/main", Repository("github", "octo/app")),
        ("https://ghe.example.com/team/svc", Repository("github", "team/svc")),
        ("https://gitlab.com/group/sub/project.git", Repository("gitlab", "group/sub/project")),
        ("https://gitlab.example.com/g/p/-/tree/main", Repository("gitlab", "g/p")),
        ("https://bitbucket.org/ws/repo", Repository("bitbucket", "ws/repo")),
        ("git@bitbucket.org:ws/repo.git", Repository("bitbucket", "ws/repo")),
    ],
)
def test_a_repository_url_names_its_configured_forge(url: str, expected: Repository) -> None:
    assert forge_of_url(url, SELF_HOSTED) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com.evil.example/octo/app",  # a look-alike host
        "https://ghe.example.com/team/svc",  # GitHub Enterprise, but not configured here
        "https://github.com/octo",  # no repository
        "https://github.com/octo/../app",
        "file:///srv/git/app.git",
        "javascript:alert(1)",
        "",
    ],
)
def test_a_url_on_no_configured_forge_names_none(url: str) -> None:
    assert forge_of_url(url, Settings.from_env({})) is None
