"""`herald replay FILE --provider P`: sign a saved payload as that provider would, and post it.

For trying Herald out and for reproducing a report: save a delivery's body (GitHub shows
it under the App's "Advanced" tab), replay it against a local `herald serve`. The secret
is the first one configured for the provider (`HERALD_<PROVIDER>_WEBHOOK_SECRET`), and the
signature follows the provider's scheme (PROVIDERS.md; `providers/<name>/webhook.py`):

============  ==================================================================
github        ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body)>``
gitlab        ``X-Gitlab-Token: <secret>``; a ``whsec_`` secret signs Standard
              Webhooks style (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)
bitbucket     ``X-Hub-Signature: sha256=<hex HMAC-SHA256(body)>``
circleci      ``circleci-signature: v1=<hex HMAC-SHA256(body)>``
azure-devops, ``X-Herald-Token: <secret>``, or HTTP Basic when the secret is
jenkins,      ``user:password``
teamcity
travis        not possible: Travis CI signs with its own private key
============  ==================================================================

The event header is told from the body's own shape (`GITHUB_SHAPES`: every GitHub event
has top-level keys no other has; GitLab's `object_kind`); a body that fits no event, or
several, is refused with a request for `--event`, never sent as a guess. Replay prints
which event header it sent before the answer.

Each run sends a fresh delivery id (where the provider takes one from a header) unless
`--delivery` is given, so replaying twice queues twice; with `--delivery` the second is a
duplicate. CircleCI and Jenkins identify a delivery by the body, not a header.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

import providers
from bot.console import printable
from bot.settings import ConfigError, Settings, env_name
from providers.signatures import TOKEN_HEADER

DEFAULT_URL: Final = "http://127.0.0.1:8000/webhooks/{provider}"
GITLAB_SIGNING_PREFIX: Final = "whsec_"

Signer = Callable[[bytes, str, str, str], dict[str, str]]


class ReplayError(Exception):
    """A reason replay cannot sign or send; printed as is."""


def _hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_github(body: bytes, secret: str, event: str, delivery: str) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": f"sha256={_hex_hmac(secret, body)}",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "User-Agent": "GitHub-Hookshot/herald-replay",
    }


def sign_gitlab(body: bytes, secret: str, event: str, delivery: str) -> dict[str, str]:
    headers = {"X-Gitlab-Event": event, "Idempotency-Key": delivery,
               "X-Gitlab-Event-UUID": delivery}
    if secret.startswith(GITLAB_SIGNING_PREFIX):
        key = base64.b64decode(secret[len(GITLAB_SIGNING_PREFIX):])
        timestamp = str(int(time.time()))
        signed = f"{delivery}.{timestamp}.".encode() + body
        signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        headers |= {"webhook-id": delivery, "webhook-timestamp": timestamp,
                    "webhook-signature": f"v1,{signature}"}
    else:
        headers["X-Gitlab-Token"] = secret
    return headers


def sign_bitbucket(body: bytes, secret: str, event: str, delivery: str) -> dict[str, str]:
    return {
        "X-Hub-Signature": f"sha256={_hex_hmac(secret, body)}",
        "X-Event-Key": event,
        "X-Request-UUID": delivery,
    }


def sign_circleci(body: bytes, secret: str, event: str, delivery: str) -> dict[str, str]:
    return {
        "circleci-signature": f"v1={_hex_hmac(secret, body)}",
        "circleci-event-type": event,
        "User-Agent": "CircleCI-Webhook/1.0",
    }


def sign_shared_secret(body: bytes, secret: str, event: str, delivery: str) -> dict[str, str]:
    if ":" in secret:
        credential = base64.b64encode(secret.encode()).decode()
        return {"Authorization": f"Basic {credential}"}
    return {TOKEN_HEADER: secret}


SIGNERS: Final[dict[str, Signer]] = {
    "github": sign_github,
    "gitlab": sign_gitlab,
    "bitbucket": sign_bitbucket,
    "circleci": sign_circleci,
    "azure-devops": sign_shared_secret,
    "jenkins": sign_shared_secret,
    "teamcity": sign_shared_secret,
}

@dataclass(frozen=True)
class Shape:
    """The top-level keys that tell one GitHub event's payload from every other's."""

    event: str
    has: tuple[str, ...]
    lacks: tuple[str, ...] = ()
    actions: frozenset[str] | None = None  # the event's own `action` values, when it has one

    def matches(self, data: dict[str, Any]) -> bool:
        # null counts as absent: `deployment` carries `"workflow_run": null`, for one
        return (all(data.get(key) is not None for key in self.has)
                and not any(data.get(key) is not None for key in self.lacks)
                and (self.actions is None or data.get("action") in self.actions))


#: GitHub's webhook events (the shapes of octokit/webhooks' schemas), each told by what
#: it has and what it lacks, so that one payload matches one shape or none. Keys nearly
#: every event carries (`repository`, `sender`, `installation`, `organization`) tell
#: nothing and are used only to rule out.
GITHUB_SHAPES: Final = (
    Shape("ping", ("zen", "hook_id")),
    Shape("workflow_run", ("workflow_run",)),
    Shape("workflow_job", ("workflow_job",)),
    Shape("check_run", ("check_run",)),
    Shape("check_suite", ("check_suite",)),
    Shape("issue_comment", ("comment", "issue")),
    Shape("pull_request_review_comment", ("comment", "pull_request")),
    Shape("discussion_comment", ("comment", "discussion")),
    Shape("commit_comment", ("comment",), ("issue", "pull_request", "discussion")),
    Shape("pull_request_review", ("review", "pull_request")),
    Shape("pull_request_review_thread", ("thread", "pull_request")),
    Shape("pull_request", ("pull_request", "number"), ("comment", "review", "thread")),
    Shape("issues", ("issue",), ("comment",)),
    Shape("discussion", ("discussion",), ("comment",)),
    Shape("push", ("ref", "before", "after", "commits")),
    Shape("create", ("ref", "ref_type", "master_branch")),
    Shape("delete", ("ref", "ref_type", "pusher_type"), ("master_branch",)),
    Shape("installation_repositories", ("installation", "repository_selection"),
          actions=frozenset({"added", "removed"})),
    Shape("installation", ("installation",),
          ("repository", "repository_selection", "target_type"),
          frozenset({"created", "deleted", "suspend", "unsuspend",
                     "new_permissions_accepted"})),
    Shape("installation_target", ("installation", "target_type", "account")),
    Shape("status", ("sha", "state", "context", "commit")),
    Shape("deployment_status", ("deployment_status", "deployment")),
    Shape("deployment", ("deployment",), ("deployment_status",)),
    Shape("release", ("release",)),
    Shape("merge_group", ("merge_group",)),
    Shape("repository_dispatch", ("branch", "client_payload")),
    Shape("workflow_dispatch", ("workflow", "ref"), ("workflow_run", "commits")),
    Shape("fork", ("forkee",)),
    Shape("gollum", ("pages",)),
    Shape("star", ("starred_at",)),
    Shape("meta", ("hook", "hook_id"), ("zen",), frozenset({"deleted"})),
    Shape("github_app_authorization", ("sender",), ("repository", "installation"),
          frozenset({"revoked"})),
)

_GITLAB_KINDS: Final = {"pipeline": "Pipeline Hook", "note": "Note Hook", "build": "Job Hook",
                        "merge_request": "Merge Request Hook", "push": "Push Hook",
                        "tag_push": "Tag Push Hook", "issue": "Issue Hook",
                        "wiki_page": "Wiki Page Hook", "deployment": "Deployment Hook",
                        "release": "Release Hook"}


def github_event(payload: Any) -> str:
    """The `X-GitHub-Event` GitHub sends with this body, told from its shape; `ReplayError`
    when no event, or more than one, has this shape."""
    data = payload if isinstance(payload, dict) else {}
    matched = [shape.event for shape in GITHUB_SHAPES if shape.matches(data)]
    if len(matched) == 1:
        return matched[0]
    if matched:
        raise ReplayError(f"the body fits several GitHub events ({', '.join(matched)}): "
                          "say which with --event")
    keys = ", ".join(sorted(data)[:12]) if data else "not a JSON object"
    raise ReplayError(f"cannot tell which GitHub event this body is (top-level keys: {keys}): "
                      "say which with --event, e.g. --event workflow_run")


def default_event(provider: str, payload: Any) -> str:
    """The event header value a sender would use for this body, told from its shape."""
    data = payload if isinstance(payload, dict) else {}
    if provider == "github":
        return github_event(data)
    if provider == "gitlab":
        kind = data.get("object_kind")
        if kind not in _GITLAB_KINDS:
            raise ReplayError(f"cannot tell which GitLab event this body is (object_kind "
                              f"{kind!r}): say which with --event, e.g. --event 'Pipeline Hook'")
        return _GITLAB_KINDS[str(kind)]
    if provider == "bitbucket":
        return "pullrequest:comment_created" if "comment" in data else "repo:commit_status_updated"
    if provider == "circleci":
        return str(data.get("type") or "workflow-completed")
    return ""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the saved payload (the request body)")
    parser.add_argument("--provider", required=True, help="who sent it: github, gitlab, ...")
    parser.add_argument("--url", help="where to post (default http://127.0.0.1:8000/webhooks/P)")
    parser.add_argument("--event", help="event header value (default: told from the body's "
                        "shape; replay refuses a body it cannot tell)")
    parser.add_argument("--delivery", help="delivery id to send (default: a fresh one)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait")


def build_request(
    provider: str, body: bytes, settings: Settings, *, event: str | None, delivery: str | None
) -> dict[str, str]:
    """The headers of a delivery of `body` signed as `provider` with its configured secret."""
    signer = SIGNERS.get(provider)
    if signer is None:
        if provider == "travis":
            raise ReplayError("Travis CI signs deliveries with its private key; they cannot be "
                              "forged for a replay. Post a real Travis notification instead.")
        raise ReplayError(f"no signing scheme known for provider {provider!r}")
    secrets = settings.provider(provider).webhook_secrets()
    if not secrets:
        raise ReplayError(f"no secret to sign with: set {env_name(provider, 'webhook_secret')}")
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    headers = signer(
        body,
        secrets[0].reveal(),
        event or default_event(provider, payload),
        delivery or str(uuid.uuid4()),
    )
    content_type = providers.get(provider).content_types[0]
    return {"Content-Type": content_type, **headers}


#: The header each provider names its event in (those that have one).
EVENT_HEADERS: Final = {"github": "X-GitHub-Event", "gitlab": "X-Gitlab-Event",
                        "bitbucket": "X-Event-Key", "circleci": "circleci-event-type"}


def describe(provider: str, headers: dict[str, str], *, given: bool) -> str:
    """One line saying which event was sent and whether it was given or told from the body."""
    name = EVENT_HEADERS.get(provider)
    if name is None or name not in headers:
        return f"sending a {provider} delivery (its event is in the body)"
    how = "as given" if given else "from the body's shape"
    return f"sending {name}: {headers[name]} ({how})"


def run(args: argparse.Namespace) -> int:
    try:
        body = args.file.read_bytes()
    except OSError as exc:
        print(printable(f"herald replay: cannot read {args.file}: {exc.strerror}"), file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
        headers = build_request(args.provider, body, settings,
                                event=args.event, delivery=args.delivery)
    except (ReplayError, ConfigError, providers.UnknownProvider) as exc:
        print(printable(f"herald replay: {exc}"), file=sys.stderr)
        return 2
    url = args.url or DEFAULT_URL.format(provider=args.provider)
    print(printable(describe(args.provider, headers, given=args.event is not None)))
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(printable(f"herald replay: {url}: {exc}"), file=sys.stderr)
        return 1
    print(printable(f"{response.status_code} {response.reason_phrase}"))
    print(printable(response.text, multiline=True))
    return 0 if response.is_success else 1
