"""`herald replay` tells a GitHub event from its body's shape, or refuses and asks for one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

import providers
from bot.commands import replay
from bot.events import Event, Ignored
from bot.settings import Settings

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
COMMON = {"repository": {"full_name": "org/repo"}, "sender": {"login": "octocat"},
          "installation": {"id": 1}, "organization": {"login": "org"}}


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "github" / name).read_text())
    return data


def shaped(**keys: Any) -> dict[str, Any]:
    """A payload with GitHub's common keys and the event's own."""
    return {**COMMON, **keys}


#: (event, body): recorded payloads where the tests have one, else the event's top-level
#: keys as octokit/webhooks' schemas give them, nullable ones included.
BODIES = [
    ("workflow_run", fixture("workflow_run_completed.json")),
    ("workflow_run", fixture("workflow_run_requested.json")),
    ("check_run", fixture("check_run_rerequested.json")),
    ("check_run", fixture("check_run_requested_action.json")),
    ("check_suite", fixture("check_suite_completed.json")),
    ("issue_comment", fixture("issue_comment_created.json")),
    ("issue_comment", fixture("issue_comment_edited.json")),
    ("ping", fixture("ping.json")),
    ("push", fixture("push.json")),
    ("pull_request", shaped(action="opened", number=7, pull_request={"number": 7})),
    ("pull_request", shaped(action="synchronize", number=7, pull_request={"number": 7},
                            before="a", after="b")),
    ("installation", {"action": "created", "installation": {"id": 1},
                      "repositories": [{"full_name": "org/repo"}], "requester": None,
                      "sender": {"login": "octocat"}}),
    ("installation", {"action": "deleted", "installation": {"id": 1},
                      "sender": {"login": "octocat"}}),
    ("installation", {"action": "new_permissions_accepted", "installation": {"id": 1},
                      "sender": {"login": "octocat"}}),
    ("installation_repositories", {"action": "added", "installation": {"id": 1},
                                   "repository_selection": "selected",
                                   "repositories_added": [{"full_name": "org/repo"}],
                                   "repositories_removed": [], "requester": None,
                                   "sender": {"login": "octocat"}}),
    ("installation_repositories", {"action": "removed", "installation": {"id": 1},
                                   "repository_selection": "all", "repositories_added": [],
                                   "repositories_removed": [{"full_name": "org/old"}],
                                   "requester": None, "sender": {"login": "octocat"}}),
    ("installation_target", {"action": "renamed", "installation": {"id": 1},
                             "target_type": "Organization", "account": {"login": "org"},
                             "changes": {"login": {"from": "old"}},
                             "sender": {"login": "octocat"}}),
    ("workflow_job", shaped(action="queued", workflow_job={"id": 3}, deployment=None)),
    ("pull_request_review", shaped(action="submitted", review={"id": 1},
                                   pull_request={"number": 7})),
    ("pull_request_review_comment", shaped(action="created", comment={"id": 1},
                                           pull_request={"number": 7})),
    ("pull_request_review_thread", shaped(action="resolved", thread={"comments": []},
                                          pull_request={"number": 7})),
    ("commit_comment", shaped(action="created", comment={"commit_id": "abc"})),
    ("discussion", shaped(action="created", discussion={"number": 1})),
    ("discussion_comment", shaped(action="created", discussion={"number": 1},
                                  comment={"id": 1})),
    ("issues", shaped(action="opened", issue={"number": 3})),
    ("create", shaped(ref="v1.0", ref_type="tag", master_branch="main", description=None,
                      pusher_type="user")),
    ("delete", shaped(ref="old", ref_type="branch", pusher_type="user")),
    ("status", shaped(id=1, sha="abc", name="org/repo", target_url=None, context="ci",
                      description=None, state="success", commit={"sha": "abc"}, branches=[])),
    ("deployment", shaped(action="created", deployment={"id": 1}, workflow=None,
                          workflow_run=None)),
    ("deployment_status", shaped(action="created", deployment={"id": 1},
                                 deployment_status={"state": "success"}, check_run=None,
                                 workflow=None, workflow_run=None)),
    ("release", shaped(action="published", release={"tag_name": "v1"})),
    ("merge_group", shaped(action="checks_requested", merge_group={"head_sha": "abc"})),
    ("repository_dispatch", shaped(action="deploy", branch="main", client_payload={})),
    ("workflow_dispatch", shaped(workflow=".github/workflows/ci.yml", inputs=None, ref="main")),
    ("fork", shaped(forkee={"full_name": "someone/repo"})),
    ("gollum", shaped(pages=[{"page_name": "Home"}])),
    ("star", shaped(action="created", starred_at="2026-12-01T10:00:00Z")),
    ("meta", shaped(action="deleted", hook_id=1, hook={"id": 1})),
    ("github_app_authorization", {"action": "revoked", "sender": {"login": "octocat"}}),
]


def test_every_shape_is_tested() -> None:
    assert {event for event, _ in BODIES} == {shape.event for shape in replay.GITHUB_SHAPES}


@pytest.mark.parametrize(("event", "body"), BODIES,
                         ids=[f"{event}-{index}" for index, (event, _) in enumerate(BODIES)])
def test_the_event_is_told_from_the_body(event: str, body: dict[str, Any]) -> None:
    assert replay.default_event("github", body) == event


@pytest.mark.parametrize(("body", "message"), [
    ({"action": "completed", "repository": {}, "sender": {}}, "top-level keys: action, "
     "repository, sender"),
    ({}, "not a JSON object"),
    (["a", "list"], "not a JSON object"),
    (None, "not a JSON object"),
    ({"workflow_run": {"id": 1}, "check_run": {"id": 2}}, "several GitHub events "
     "(workflow_run, check_run)"),
    # a star removed has `starred_at: null`: nothing tells it from other repository events
    (shaped(action="deleted", starred_at=None), "cannot tell"),
])
def test_a_body_of_no_known_shape_or_of_several_is_refused(body: Any, message: str) -> None:
    with pytest.raises(replay.ReplayError, match="--event") as refused:
        replay.default_event("github", body)

    assert message in str(refused.value)


#: The recorded deliveries (the first nine of `BODIES`), which GitHub's parser reads whole.
RECORDED = BODIES[:9]


@pytest.mark.parametrize(("event", "body"), RECORDED)
def test_the_header_sent_is_the_one_githubs_parser_reads(event: str, body: dict[str, Any]
                                                          ) -> None:
    raw = json.dumps(body).encode()
    settings = Settings.from_env({"HERALD_GITHUB_WEBHOOK_SECRET": "s"})

    headers = replay.build_request("github", raw, settings, event=None, delivery="d-1")
    parsed = providers.get("github").parse({k.lower(): v for k, v in headers.items()}, raw,
                                           [b"s"])

    assert headers["X-GitHub-Event"] == event
    assert isinstance(parsed, Event | Ignored)
    assert parsed.native_name.split(".")[0] == event


def test_given_event_is_sent_as_is_even_for_a_body_it_cannot_tell() -> None:
    settings = Settings.from_env({"HERALD_GITHUB_WEBHOOK_SECRET": "s"})

    headers = replay.build_request("github", b'{"action": "x"}', settings,
                                   event="security_advisory", delivery="d-1")

    assert headers["X-GitHub-Event"] == "security_advisory"


@pytest.mark.parametrize(("body", "header"), [
    ({"object_kind": "pipeline"}, "Pipeline Hook"),
    ({"object_kind": "tag_push"}, "Tag Push Hook"),
    ({"object_kind": "note"}, "Note Hook"),
])
def test_gitlab_events_are_told_by_their_object_kind(body: dict[str, str], header: str
                                                     ) -> None:
    assert replay.default_event("gitlab", body) == header


def test_a_gitlab_body_of_unknown_kind_is_refused() -> None:
    with pytest.raises(replay.ReplayError, match=r"object_kind 'feature_flag'.*--event"):
        replay.default_event("gitlab", {"object_kind": "feature_flag"})


def test_replay_refuses_before_sending_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "unknown.json"
    body.write_text(json.dumps({"action": "completed", "repository": {}}))
    monkeypatch.setenv("HERALD_GITHUB_WEBHOOK_SECRET", "s")
    args = argparse.Namespace(file=body, provider="github", url="http://127.0.0.1:9/never",
                              event=None, delivery=None, timeout=1.0)

    code = replay.run(args)
    printed = capsys.readouterr()

    assert code == 2
    assert printed.out == ""
    assert "cannot tell which GitHub event" in printed.err and "--event" in printed.err


@pytest.mark.parametrize(("provider", "headers", "given", "line"), [
    ("github", {"X-GitHub-Event": "push"}, False,
     "sending X-GitHub-Event: push (from the body's shape)"),
    ("github", {"X-GitHub-Event": "push"}, True, "sending X-GitHub-Event: push (as given)"),
    ("gitlab", {"X-Gitlab-Event": "Note Hook"}, False,
     "sending X-Gitlab-Event: Note Hook (from the body's shape)"),
    ("jenkins", {"X-Herald-Token": "t"}, False,
     "sending a jenkins delivery (its event is in the body)"),
])
def test_replay_says_which_event_header_it_sent(provider: str, headers: dict[str, str],
                                                given: bool, line: str) -> None:
    assert replay.describe(provider, headers, given=given) == line
