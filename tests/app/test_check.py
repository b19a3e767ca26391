"""Start-up checks: a configuration that accepts deliveries it cannot act on is refused,
and `herald check` shows each provider's configuration, reach and abilities."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from bot import cli
from bot.embedded_redis import free_port
from bot.startup import masked_url
from tests.fakes.github import FakeGitHub, running_fake
from tests.github.conftest import WEBHOOK_SECRET, app_key, github_env

GITLAB_TOKEN = "glpat-never-printed-0123"
JENKINS_TOKEN = "jenkins-token-never-printed"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("HERALD_") or name == "REDIS_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HERALD_STATE_DIR", str(tmp_path / "state"))
    yield


@pytest.fixture
async def fake() -> AsyncIterator[FakeGitHub]:
    private, public = app_key()
    async with running_fake(FakeGitHub(private_key=private, public_key=public)) as running:
        yield running


def set_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("command", ["serve", "web", "worker"])
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {"HERALD_GITHUB_WEBHOOK_SECRET": "s"},
            ["github: HERALD_GITHUB_WEBHOOK_SECRET is set, so its deliveries are accepted, "
             "but no job of theirs can run: the GitHub App is not configured: set "
             "HERALD_GITHUB_APP_ID and HERALD_GITHUB_PRIVATE_KEY"],
            id="a GitHub secret without the App",
        ),
        pytest.param(
            {"HERALD_GITLAB_WEBHOOK_SECRET": "s", "HERALD_BITBUCKET_WEBHOOK_SECRET": "s"},
            ["gitlab: HERALD_GITLAB_WEBHOOK_SECRET is set, so its deliveries are accepted, "
             "but no job of theirs can run: no GitLab token configured: set HERALD_GITLAB_TOKEN",
             "bitbucket: HERALD_BITBUCKET_WEBHOOK_SECRET is set, so its deliveries are "
             "accepted, but no job of theirs can run: no Bitbucket token configured"],
            id="two providers, one line each",
        ),
        pytest.param(
            {"HERALD_JENKINS_WEBHOOK_SECRET": "s", "HERALD_JENKINS_URL": "https://ci.example",
             "HERALD_JENKINS_USER": "herald", "HERALD_JENKINS_TOKEN": JENKINS_TOKEN},
            ["jenkins: HERALD_JENKINS_WEBHOOK_SECRET is set, but its reports go to the forge "
             "of the built repository and no forge has credentials"],
            id="a CI system with no forge to report on",
        ),
        pytest.param(
            {"HERALD_GITLAB_WEBHOOK_SECRET_FILE": "/nonexistent/herald-secret",
             "HERALD_GITLAB_TOKEN": "t"},
            ["gitlab: the webhook secret cannot be read: HERALD_GITLAB_WEBHOOK_SECRET_FILE: "
             "No such file or directory"],
            id="a secret file that cannot be read",
        ),
    ],
)
def test_a_configuration_that_cannot_work_is_refused_naming_what_is_missing(
    command: str, env: dict[str, str], expected: list[str],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    set_env(monkeypatch, HERALD_REDIS_URL="redis://127.0.0.1:1/0", **env)

    code = cli.main([command])

    lines = capsys.readouterr().out.splitlines()
    assert code == 2
    assert len(lines) == len(expected)
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(f"herald {command}: {start}")
    assert JENKINS_TOKEN not in "\n".join(lines)
    assert not (os.path.exists(os.environ["HERALD_STATE_DIR"]))  # nothing was started


async def test_check_shows_each_provider_with_its_reach_and_abilities_and_no_secret(
    fake: FakeGitHub, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_env(monkeypatch, HERALD_REDIS_URL=redis_url, HERALD_GITLAB_TOKEN=GITLAB_TOKEN,
            HERALD_GITLAB_URL=f"http://127.0.0.1:{free_port()}", **github_env(fake))

    code = await asyncio.to_thread(cli.main, ["check"])

    out = capsys.readouterr().out
    sections = {block.splitlines()[0]: block for block in out.split("\n\n")}
    assert code == 1  # GitLab's address answers nothing
    assert "reachable (" in sections["herald"].split("queue")[0]
    github = sections["github"]
    assert "configured  yes" in github
    assert "webhooks    accepted (a secret is set)" in github
    assert f"API         {fake.base_url}: reachable (HTTP " in github
    assert "publish reports" in github and "read .herald.yml" in github
    assert "HERALD_GITHUB_APP_ID = 4242" in github
    assert "HERALD_GITHUB_PRIVATE_KEY = set (masked)" in github
    assert "HERALD_GITHUB_WEBHOOK_SECRET = set (masked)" in github
    gitlab = sections["gitlab"]
    assert "configured  yes" in gitlab and "webhooks    refused (no secret)" in gitlab
    assert ": unreachable: ConnectError" in gitlab
    assert sections["bitbucket"].splitlines()[1].startswith("  configured  no: no Bitbucket token")
    assert "can do      nothing" in sections["bitbucket"]
    assert "webhooks    accepted (verified with the sender's own key)" in sections["travis"]
    assert "no configuration problems" in out
    for secret in (GITLAB_TOKEN, WEBHOOK_SECRET, fake.private_key.splitlines()[1]):
        assert secret not in out


async def test_check_exits_0_when_everything_is_configured_and_answers(
    fake: FakeGitHub, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    set_env(monkeypatch, HERALD_REDIS_URL=redis_url, **github_env(fake))

    assert await asyncio.to_thread(cli.main, ["check"]) == 0


async def test_check_names_an_unreachable_redis_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    set_env(monkeypatch, HERALD_REDIS_URL=f"redis://:hunter2@127.0.0.1:{free_port()}/0")

    code = await asyncio.to_thread(cli.main, ["check"])

    out = capsys.readouterr().out
    assert code == 1
    assert "redis  redis://:****@127.0.0.1:" in out and ": unreachable: ConnectionError" in out
    assert "hunter2" not in out


async def test_check_lists_the_refusals_serve_would_make(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    set_env(monkeypatch, HERALD_REDIS_URL=redis_url, HERALD_GITLAB_WEBHOOK_SECRET="s")

    code = await asyncio.to_thread(cli.main, ["check"])

    out = capsys.readouterr().out
    assert code == 1
    problems = out.split("problems (herald serve, web and worker refuse to start):\n")[1]
    assert problems.startswith("  gitlab: HERALD_GITLAB_WEBHOOK_SECRET is set")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@redis.internal:6379/0", "redis://:****@redis.internal:6379/0"),
        ("rediss://herald:hunter2@redis.internal/1", "rediss://herald:****@redis.internal/1"),
        ("redis://redis.internal/0?password=hunter2&db=2",
         "redis://redis.internal/0?password=****&db=2"),
        ("unix:///run/redis.sock?password=hunter2", "unix:///run/redis.sock?password=****"),
        ("redis://redis.internal:6379/0", "redis://redis.internal:6379/0"),
    ],
)
def test_a_redis_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown
