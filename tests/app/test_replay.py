"""`herald replay`: payloads signed the way each provider signs, verified by the real parsers."""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import providers
from bot.commands import replay
from bot.events import Event
from bot.settings import Settings
from tests.app.conftest import ServerThread

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
WHSEC = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize(
    ("provider", "fixture", "secret", "canonical"),
    [
        ("github", "github/workflow_run_completed.json", "gh-secret", "build.completed"),
        ("github", "github/issue_comment_created.json", "gh-secret", "comment.created"),
        ("github", "github/ping.json", "gh-secret", "ping"),
        ("gitlab", "gitlab/pipeline_success.json", "plain-token", "build.completed"),
        ("gitlab", "gitlab/pipeline_success.json", WHSEC, "build.completed"),
        ("gitlab", "gitlab/note_merge_request.json", "plain-token", "comment.created"),
        ("bitbucket", "bitbucket/commit_status_updated_failed.json", "bb", "build.completed"),
        ("circleci", "circleci/workflow_completed.json", "cc", "build.completed"),
        ("azure-devops", "azure-devops/build_complete.json", "header-token", "build.completed"),
        ("azure-devops", "azure-devops/build_complete.json", "hook:pass", "build.completed"),
        ("jenkins", "jenkins/finalized.json", "jk", "build.completed"),
        ("teamcity", "teamcity/build_finished.json", "tc", "build.completed"),
    ],
)
def test_replayed_payloads_verify_with_the_providers_own_parser(
    provider: str, fixture: str, secret: str, canonical: str
) -> None:
    body = (FIXTURES / fixture).read_bytes()
    variable = f"HERALD_{provider.upper().replace('-', '_')}_WEBHOOK_SECRET"
    settings = Settings.from_env({variable: secret})

    headers = replay.build_request(provider, body, settings, event=None, delivery=None)
    result = providers.get(provider).parse(
        {k.lower(): v for k, v in headers.items()}, body, [secret.encode()]
    )

    assert isinstance(result, Event), result
    assert result.name == canonical
    assert headers["Content-Type"] == "application/json"


def test_each_replay_is_a_fresh_delivery_unless_one_is_given() -> None:
    settings = Settings.from_env({"HERALD_GITHUB_WEBHOOK_SECRET": "s"})
    body = (FIXTURES / "github/ping.json").read_bytes()

    first = replay.build_request("github", body, settings, event=None, delivery=None)
    second = replay.build_request("github", body, settings, event=None, delivery=None)
    fixed = replay.build_request("github", body, settings, event="ping", delivery="d-7")

    assert first["X-GitHub-Delivery"] != second["X-GitHub-Delivery"]
    assert fixed["X-GitHub-Delivery"] == "d-7"


@pytest.mark.parametrize(
    ("provider", "environ", "message"),
    [
        ("travis", {}, "private key"),
        ("github", {}, "set HERALD_GITHUB_WEBHOOK_SECRET"),
        ("no-such", {}, "no signing scheme"),
    ],
)
def test_what_replay_cannot_sign_it_says_why(
    provider: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(replay.ReplayError, match=message):
        replay.build_request(provider, b"{}", Settings.from_env(environ), event=None,
                             delivery=None)


def test_replay_posts_and_prints_the_answer(
    serve_app: Callable[..., ServerThread], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = serve_app(HERALD_GITHUB_WEBHOOK_SECRET="replay-secret")
    monkeypatch.setenv("HERALD_GITHUB_WEBHOOK_SECRET", "replay-secret")
    args = argparse.Namespace(
        file=FIXTURES / "github/workflow_run_completed.json", provider="github",
        url=f"{server.url}/webhooks/github", event=None, delivery="replayed-1", timeout=10.0,
    )

    first = replay.run(args)
    first_out = capsys.readouterr().out
    again = replay.run(args)
    again_out = capsys.readouterr().out

    assert first == 0
    assert first_out.startswith("sending X-GitHub-Event: workflow_run (from the body's shape)\n"
                                "202 Accepted\n")
    assert json.loads(first_out.splitlines()[2]) == {"status": "queued",
                                                      "job_id": "github:replayed-1"}
    assert again == 0
    assert again_out.splitlines()[1] == "200 OK"
    assert json.loads(again_out.splitlines()[2])["status"] == "duplicate"
