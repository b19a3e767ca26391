"""Bitbucket Cloud webhooks: `X-Hub-Signature: sha256=<hex>` and translation to events.

Signature: https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/ (the same
HMAC-SHA256 as GitHub's `X-Hub-Signature-256`, under GitHub's legacy header name).
Payloads: https://support.atlassian.com/bitbucket-cloud/docs/event-payloads/

Bitbucket Pipelines has no pipeline webhook: it reports through commit statuses, so a
final `repo:commit_status_created`/`_updated` is a finished build.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, PING, Comment, Event, Ignored, RunRef
from providers.base import BadPayload, Headers, Provider
from providers.signatures import (
    as_id,
    as_int,
    as_str,
    as_text,
    check_sha256_signature,
    delivery_id,
    dig,
    event_header,
    header,
    load_json_object,
    require_secrets,
)

NAME: Final = "bitbucket"
SIGNATURE_HEADER: Final = "X-Hub-Signature"
FINAL_STATES: Final = frozenset({"SUCCESSFUL", "FAILED", "STOPPED"})
STATUS_EVENTS: Final = frozenset({"repo:commit_status_created", "repo:commit_status_updated"})
#: What Bitbucket Data Center sends for "Test connection"; Bitbucket Cloud sends no ping.
PING_EVENT: Final = "diagnostics:ping"
#: The key (or key prefix) of the build statuses Herald sets (`providers.bitbucket.insights`).
OWN_STATUS_KEY: Final = "herald"
_PIPELINE_RESULT = re.compile(r"/(?:pipelines/results|addon/pipelines/home#!/results)/(\d+)")


class BitbucketProvider(Provider):
    name: ClassVar[str] = NAME

    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        require_secrets(secrets, NAME)
        check_sha256_signature(header(headers, SIGNATURE_HEADER), SIGNATURE_HEADER, body, secrets)

        event_key = event_header(headers, "X-Event-Key")
        payload = load_json_object(body)
        delivery = delivery_id(headers, body, "X-Request-UUID")
        if event_key in STATUS_EVENTS:
            return self._commit_status(payload, event_key, delivery)
        if event_key == "pullrequest:comment_created":
            return self._comment(payload, event_key, delivery)
        if event_key == PING_EVENT:
            repo = as_str(dig(payload, "repository", "full_name"))
            return Event(NAME, PING, event_key, delivery, repo=repo, payload=payload)
        return Ignored(NAME, event_key, f"bitbucket event {event_key!r} is not used by Herald")

    def _commit_status(
        self, payload: dict[str, Any], native: str, delivery: str
    ) -> Event | Ignored:
        status = payload.get("commit_status")
        state = as_str(dig(status, "state"))
        if state not in FINAL_STATES:
            return Ignored(NAME, native, f"commit status state {state!r} is not final")
        repo = as_str(dig(payload, "repository", "full_name"))
        if not isinstance(status, dict) or repo is None:
            raise BadPayload(f"{native} lacks commit_status or repository.full_name")
        url = as_str(status.get("url"))
        key = as_str(status.get("key"))
        if key is not None and (key == OWN_STATUS_KEY or key.startswith(f"{OWN_STATUS_KEY}-")):
            # Herald's own status: reporting on it would report again, without end.
            return Ignored(NAME, native, "the status is Herald's own")
        # Pipelines statuses link to the pipeline result page, whose number is the run id
        # the Pipelines API and `BITBUCKET_BUILD_NUMBER` use; other CIs are keyed by `key`.
        match = _PIPELINE_RESULT.search(url or "")
        build_number = as_int(match.group(1)) if match else None
        run_id = str(build_number) if build_number is not None else key
        if run_id is None:
            raise BadPayload(f"{native} has neither a pipeline result url nor a status key")
        refname = as_str(status.get("refname"))
        run = RunRef(
            provider=NAME,
            repo=repo,
            run_id=run_id,
            sha=as_str(dig(status, "commit", "hash")),
            branch=refname,
            change=None,
            url=url,
            status=state,
            extra={
                "status_key": key,
                "status_name": as_text(status.get("name")),
                "status_type": as_str(status.get("type")),
                "pipeline_build_number": build_number,
                "repository_uuid": as_str(dig(payload, "repository", "uuid")),
            },
        )
        return Event(NAME, BUILD_COMPLETED, native, delivery, repo=repo, run=run, payload=payload)

    def _comment(self, payload: dict[str, Any], native: str, delivery: str) -> Event | Ignored:
        comment = payload.get("comment")
        repo = as_str(dig(payload, "repository", "full_name"))
        pull_id = as_int(dig(payload, "pullrequest", "id"))
        comment_id = as_id(dig(comment, "id"))
        if not isinstance(comment, dict) or repo is None or pull_id is None or comment_id is None:
            raise BadPayload(f"{native} lacks comment.id, pullrequest.id or repository")
        user = comment.get("user") if isinstance(comment.get("user"), dict) else None
        if user is None and isinstance(payload.get("actor"), dict):
            user = payload["actor"]
        parsed = Comment(
            id=comment_id,
            body=as_text(dig(comment, "content", "raw")) or "",
            author=as_str(dig(user, "nickname")) or as_str(dig(user, "display_name")) or "",
            change=pull_id,
            # Access tokens and apps comment as `app_user`.
            author_is_bot=dig(user, "type") == "app_user",
            url=as_str(dig(comment, "links", "html", "href")),
            extra={
                "account_id": as_str(dig(user, "account_id")),
                "user_uuid": as_str(dig(user, "uuid")),
                "inline": comment.get("inline") is not None,
                "parent_id": as_int(dig(comment, "parent", "id")),
                "source_commit": as_str(dig(payload, "pullrequest", "source", "commit", "hash")),
                "source_branch": as_str(dig(payload, "pullrequest", "source", "branch", "name")),
            },
        )
        return Event(
            NAME, COMMENT_CREATED, native, delivery, repo=repo, comment=parsed, payload=payload
        )

    def detect(self, environ: Mapping[str, str]) -> RunRef | None:
        """Bitbucket Pipelines, from its default variables."""
        number = environ.get("BITBUCKET_BUILD_NUMBER")
        if not number:
            return None
        repo = environ.get("BITBUCKET_REPO_FULL_NAME")
        if not repo and environ.get("BITBUCKET_WORKSPACE") and environ.get("BITBUCKET_REPO_SLUG"):
            repo = f"{environ['BITBUCKET_WORKSPACE']}/{environ['BITBUCKET_REPO_SLUG']}"
        if not repo:
            return None
        return RunRef(
            provider=NAME,
            repo=repo,
            run_id=number,
            sha=environ.get("BITBUCKET_COMMIT") or None,
            branch=environ.get("BITBUCKET_BRANCH") or environ.get("BITBUCKET_TAG") or None,
            change=as_int(environ.get("BITBUCKET_PR_ID")),
            url=f"https://bitbucket.org/{repo}/pipelines/results/{number}",
            extra={
                "pipeline_uuid": environ.get("BITBUCKET_PIPELINE_UUID") or None,
                "step_uuid": environ.get("BITBUCKET_STEP_UUID") or None,
                "repository_uuid": environ.get("BITBUCKET_REPO_UUID") or None,
                "pipeline_build_number": as_int(number),
                "pr_destination_branch": environ.get("BITBUCKET_PR_DESTINATION_BRANCH") or None,
            },
        )
