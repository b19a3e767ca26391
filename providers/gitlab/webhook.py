"""GitLab webhooks: secret token or signing token verification, and translation to events.

Two schemes, either or both configured in `HERALD_GITLAB_WEBHOOK_SECRET`:
- a secret token, sent verbatim in `X-Gitlab-Token`
  (https://docs.gitlab.com/user/project/integrations/webhooks/#create-a-webhook);
- a signing token `whsec_<base64 key>`, GitLab's Standard Webhooks signature
  (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` over
  `{id}.{timestamp}.{body}`; gitlab-org/gitlab!230944), checked within a replay window.

Payloads: https://docs.gitlab.com/user/project/integrations/webhook_events/
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, Comment, Event, Ignored, RunRef
from providers.base import BadPayload, Headers, InvalidSignature, Provider
from providers.signatures import (
    as_id,
    as_int,
    as_str,
    as_text,
    as_unix_time,
    delivery_id,
    dig,
    event_header,
    header,
    hmac_sha256,
    load_json_object,
    matches_any,
    require_secrets,
)

NAME: Final = "gitlab"
SIGNING_PREFIX: Final = b"whsec_"
#: How far a signed delivery's timestamp may be from our clock, either way.
REPLAY_WINDOW_SECONDS: Final = 300
FINAL_PIPELINE_STATUSES: Final = frozenset({"success", "failed", "canceled", "skipped"})
_PULL_REF = re.compile(r"^refs/merge-requests/(\d+)/")


def _signing_key(secret: bytes) -> bytes:
    try:
        key = base64.b64decode(secret[len(SIGNING_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        # A configuration mistake, not a bad delivery; say which kind of value is wrong.
        raise InvalidSignature("a configured whsec_ signing token is not valid base64") from exc
    if not key:
        # Anyone can compute an HMAC under an empty key.
        raise InvalidSignature("a configured whsec_ signing token is empty")
    return key


class GitLabProvider(Provider):
    """GitLab project and group hooks. `clock` is injectable for the replay-window tests."""

    name: ClassVar[str] = NAME

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        require_secrets(secrets, NAME)
        self._verify(headers, body, secrets)
        event_name = event_header(headers, "X-Gitlab-Event")
        payload = load_json_object(body)
        delivery = delivery_id(headers, body, "Idempotency-Key", "X-Gitlab-Event-UUID")
        if event_name == "Pipeline Hook":
            return self._pipeline(payload, event_name, delivery)
        if event_name == "Note Hook":
            return self._note(payload, event_name, delivery)
        return Ignored(NAME, event_name, f"gitlab event {event_name!r} is not used by Herald")

    # ---- verification -----------------------------------------------------------------

    def _verify(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> None:
        signing = [_signing_key(s) for s in secrets if s.startswith(SIGNING_PREFIX)]
        tokens = [s for s in secrets if s and not s.startswith(SIGNING_PREFIX)]
        signature = header(headers, "webhook-signature")
        token = header(headers, "X-Gitlab-Token")
        if signing and signature is not None:
            self._verify_signature(headers, body, signature, signing)
            return
        if tokens and token is not None:
            if matches_any(token.encode(), tokens):
                return
            raise InvalidSignature("X-Gitlab-Token does not match any configured secret")
        expected = []
        if signing:
            expected.append("webhook-signature")
        if tokens:
            expected.append("X-Gitlab-Token")
        raise InvalidSignature(f"missing {' or '.join(expected)} header")

    def _verify_signature(
        self, headers: Headers, body: bytes, signature: str, keys: list[bytes]
    ) -> None:
        message_id = (header(headers, "webhook-id") or "").strip()
        timestamp = (header(headers, "webhook-timestamp") or "").strip()
        if not message_id or not timestamp:
            raise InvalidSignature("signed delivery lacks webhook-id or webhook-timestamp header")
        seconds = as_unix_time(timestamp)
        if seconds is None:
            raise InvalidSignature("webhook-timestamp is not a Unix time in seconds")
        skew = abs(self._clock() - seconds)
        if skew > REPLAY_WINDOW_SECONDS:
            raise InvalidSignature(
                f"webhook-timestamp is {int(skew)} s away from now (window "
                f"{REPLAY_WINDOW_SECONDS} s): stale or replayed delivery"
            )
        signed = f"{message_id}.{timestamp}.".encode() + body
        expected = [base64.b64encode(hmac_sha256(key, signed)) for key in keys]
        matched = False
        for entry in signature.split():
            version, _, value = entry.partition(",")
            if version == "v1" and value:
                matched |= matches_any(value.encode(), expected)
        if not matched:
            raise InvalidSignature("webhook-signature does not match any configured signing token")

    # ---- translation ------------------------------------------------------------------

    def _pipeline(self, payload: dict[str, Any], native: str, delivery: str) -> Event | Ignored:
        attributes = payload.get("object_attributes")
        status = as_str(dig(attributes, "status"))
        if status not in FINAL_PIPELINE_STATUSES:
            return Ignored(NAME, native, f"pipeline status {status!r} is not final")
        repo = as_str(dig(payload, "project", "path_with_namespace"))
        pipeline_id = as_id(dig(attributes, "id"))
        if not isinstance(attributes, dict) or repo is None or pipeline_id is None:
            raise BadPayload("Pipeline Hook lacks object_attributes.id or project")
        change = as_int(dig(payload, "merge_request", "iid"))
        ref_name = as_str(attributes.get("ref"))
        if change is None and ref_name:
            # Merged-results pipelines run on refs/merge-requests/<iid>/merge.
            match = _PULL_REF.match(ref_name)
            change = as_int(match.group(1)) if match else None
        source_pipeline = payload.get("source_pipeline")
        parent = None
        if isinstance(source_pipeline, dict):
            parent = {
                "project_id": as_int(dig(source_pipeline, "project", "id")),
                "project_path": as_str(dig(source_pipeline, "project", "path_with_namespace")),
                "pipeline_id": as_int(source_pipeline.get("pipeline_id")),
                "job_id": as_int(source_pipeline.get("job_id")),
            }
        run = RunRef(
            provider=NAME,
            repo=repo,
            run_id=pipeline_id,
            sha=as_str(attributes.get("sha")),
            branch=ref_name,
            change=change,
            url=as_str(attributes.get("url")),
            status=status,
            extra={
                "project_id": as_int(dig(payload, "project", "id")),
                "project_web_url": as_str(dig(payload, "project", "web_url")),
                "pipeline_iid": as_int(attributes.get("iid")),
                "source": as_str(attributes.get("source")),
                "tag": bool(attributes.get("tag")),
                "merge_request_url": as_str(dig(payload, "merge_request", "url")),
                "parent_pipeline": parent,
                # The merge request's target, for the comparison with the base.
                "base_branch": as_str(dig(payload, "merge_request", "target_branch")),
            },
        )
        return Event(NAME, BUILD_COMPLETED, native, delivery, repo=repo, run=run, payload=payload)

    def _note(self, payload: dict[str, Any], native: str, delivery: str) -> Event | Ignored:
        attributes = payload.get("object_attributes")
        noteable = as_str(dig(attributes, "noteable_type"))
        if noteable != "MergeRequest":
            return Ignored(NAME, native, f"note on a {noteable or 'unknown object'}, not an MR")
        if dig(attributes, "system"):
            return Ignored(NAME, native, "system note (written by GitLab, not a person)")
        action = as_str(dig(attributes, "action"))
        if action is not None and action != "create":
            return Ignored(NAME, native, f"note {action!r}: only new comments are read")
        repo = as_str(dig(payload, "project", "path_with_namespace"))
        iid = as_int(dig(payload, "merge_request", "iid"))
        note_id = as_id(dig(attributes, "id"))
        if not isinstance(attributes, dict) or repo is None or iid is None or note_id is None:
            raise BadPayload("Note Hook lacks object_attributes.id, merge_request.iid or project")
        user = payload.get("user") if isinstance(payload.get("user"), dict) else None
        username = as_str(dig(user, "username")) or ""
        comment = Comment(
            id=note_id,
            body=as_text(attributes.get("note")) or "",
            author=username,
            change=iid,
            # GitLab marks bots (project/group access tokens, service accounts) on the user
            # object in newer versions only; the `_bot` suffix covers access-token bots.
            author_is_bot=bool(dig(user, "bot")) or "_bot" in username,
            url=as_str(attributes.get("url")),
            extra={
                "project_id": as_int(dig(payload, "project", "id"))
                or as_int(payload.get("project_id")),
                "note_url": as_str(attributes.get("url")),
                "merge_request_state": as_str(dig(payload, "merge_request", "state")),
                "last_commit_sha": as_str(dig(payload, "merge_request", "last_commit", "id")),
                "source_branch": as_str(dig(payload, "merge_request", "source_branch")),
                "user_id": as_int(dig(user, "id")),
                "discussion_id": as_str(attributes.get("discussion_id")),
            },
        )
        return Event(
            NAME, COMMENT_CREATED, native, delivery, repo=repo, comment=comment, payload=payload
        )

    # ---- push mode --------------------------------------------------------------------

    def detect(self, environ: Mapping[str, str]) -> RunRef | None:
        """GitLab CI/CD, from the predefined variables."""
        if environ.get("GITLAB_CI") != "true":
            return None
        repo = environ.get("CI_PROJECT_PATH")
        run_id = environ.get("CI_PIPELINE_ID")
        if not repo or not run_id:
            return None
        return RunRef(
            provider=NAME,
            repo=repo,
            run_id=run_id,
            sha=environ.get("CI_COMMIT_SHA") or None,
            branch=environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
            or environ.get("CI_COMMIT_REF_NAME")
            or None,
            change=as_int(environ.get("CI_MERGE_REQUEST_IID")),
            url=environ.get("CI_PIPELINE_URL") or None,
            extra={
                "project_id": as_int(environ.get("CI_PROJECT_ID")),
                "project_web_url": environ.get("CI_PROJECT_URL") or None,
                "server_url": environ.get("CI_SERVER_URL") or None,
                "api_url": environ.get("CI_API_V4_URL") or None,
                "pipeline_iid": as_int(environ.get("CI_PIPELINE_IID")),
                "source": environ.get("CI_PIPELINE_SOURCE") or None,
                "job_id": as_int(environ.get("CI_JOB_ID")),
                "job_url": environ.get("CI_JOB_URL") or None,
                "merge_request_source_sha": environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")
                or None,
            },
        )
