"""GitHub App webhooks: `X-Hub-Signature-256` verification and translation to Herald events.

Implements https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
and the payloads of https://docs.github.com/en/webhooks/webhook-events-and-payloads
(`workflow_run`, `check_suite`, `check_run`, `issue_comment`, `ping`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

from bot.events import (
    BUILD_COMPLETED,
    CHECK_REREQUESTED,
    COMMENT_CREATED,
    PING,
    Comment,
    Event,
    Ignored,
    RunRef,
)
from providers.base import BadPayload, Headers, InvalidSignature, Provider
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

NAME: Final = "github"
SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
#: The slug of the app that runs GitHub Actions; its suites are reported via `workflow_run`.
ACTIONS_APP_SLUG: Final = "github-actions"


def _installation_id(payload: Mapping[str, Any]) -> int | None:
    return as_int(dig(payload, "installation", "id"))


def _first_pull_request(pull_requests: Any) -> int | None:
    if isinstance(pull_requests, list):
        for pull in pull_requests:
            number = as_int(dig(pull, "number"))
            if number is not None:
                return number
    return None


def _base_of(pull_requests: Any) -> dict[str, str]:
    """The first pull request's target branch and its commit then, for the comparison
    with the base (`bot.compare`); empty when the run builds no pull request."""
    if isinstance(pull_requests, list):
        for pull in pull_requests:
            branch = as_str(dig(pull, "base", "ref"))
            if branch:
                sha = as_str(dig(pull, "base", "sha"))
                return {"base_branch": branch, **({"base_sha": sha} if sha else {})}
    return {}


def _is_bot(user: Mapping[str, Any] | None) -> bool:
    login = as_str(dig(user, "login")) or ""
    return dig(user, "type") == "Bot" or login.endswith("[bot]")


class GitHubProvider(Provider):
    """GitHub App deliveries. Only `X-Hub-Signature-256` is accepted, never SHA-1."""

    name: ClassVar[str] = NAME

    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        require_secrets(secrets, NAME)
        signature = header(headers, SIGNATURE_HEADER)
        if signature is None and header(headers, "X-Hub-Signature") is not None:
            raise InvalidSignature(
                f"missing {SIGNATURE_HEADER} header: the SHA-1 X-Hub-Signature alone is "
                "not accepted"
            )
        check_sha256_signature(signature, SIGNATURE_HEADER, body, secrets)

        event_name = event_header(headers, "X-GitHub-Event")
        payload = load_json_object(body)
        delivery = delivery_id(headers, body, "X-GitHub-Delivery")
        action = as_str(payload.get("action"))
        native = f"{event_name}.{action}" if action else event_name

        translate = {
            "workflow_run": self._workflow_run,
            "check_suite": self._check_suite,
            "check_run": self._check_run,
            "issue_comment": self._issue_comment,
            "ping": self._ping,
        }.get(event_name)
        if translate is None:
            return Ignored(NAME, native, f"github event {event_name!r} is not used by Herald")
        return translate(headers, payload, native, delivery)

    # ---- one translator per event ---------------------------------------------------

    def _ping(
        self, headers: Headers, payload: dict[str, Any], native: str, delivery: str
    ) -> Event | Ignored:
        return Event(
            provider=NAME,
            name=PING,
            native_name=native,
            delivery_id=delivery,
            repo=as_str(dig(payload, "repository", "full_name")),
            payload=payload,
        )

    def _workflow_run(
        self, headers: Headers, payload: dict[str, Any], native: str, delivery: str
    ) -> Event | Ignored:
        if payload.get("action") != "completed":
            return Ignored(NAME, native, "workflow_run is reported only once it is completed")
        run = payload.get("workflow_run")
        repo = as_str(dig(payload, "repository", "full_name"))
        run_id = as_id(dig(run, "id"))
        if not isinstance(run, dict) or repo is None or run_id is None:
            raise BadPayload("workflow_run payload lacks workflow_run.id or repository.full_name")
        ref = RunRef(
            provider=NAME,
            repo=repo,
            run_id=run_id,
            sha=as_str(run.get("head_sha")),
            branch=as_str(run.get("head_branch")),
            change=_first_pull_request(run.get("pull_requests")),
            url=as_str(run.get("html_url")),
            status=as_str(run.get("conclusion")),
            extra={
                "installation_id": _installation_id(payload),
                "run_attempt": as_int(run.get("run_attempt")),
                "run_number": as_int(run.get("run_number")),
                "workflow_id": as_int(run.get("workflow_id")),
                "workflow_name": as_text(run.get("name")),
                "event": as_str(run.get("event")),
                # For a PR from a fork `pull_requests` is empty; the handler resolves the
                # PR from the head repository and sha.
                "head_repository": as_str(dig(run, "head_repository", "full_name")),
                "check_suite_id": as_int(run.get("check_suite_id")),
                **_base_of(run.get("pull_requests")),
            },
        )
        return Event(NAME, BUILD_COMPLETED, native, delivery, repo=repo, run=ref, payload=payload)

    def _check_suite(
        self, headers: Headers, payload: dict[str, Any], native: str, delivery: str
    ) -> Event | Ignored:
        action = payload.get("action")
        suite = payload.get("check_suite")
        repo = as_str(dig(payload, "repository", "full_name"))
        suite_id = as_id(dig(suite, "id"))
        if action not in ("completed", "rerequested"):
            return Ignored(NAME, native, f"check_suite {action!r} is not used by Herald")
        if not isinstance(suite, dict) or repo is None or suite_id is None:
            raise BadPayload("check_suite payload lacks check_suite.id or repository.full_name")
        app_id = as_int(dig(suite, "app", "id"))
        app_slug = as_str(dig(suite, "app", "slug"))
        extra = {
            "installation_id": _installation_id(payload),
            "check_suite_id": as_int(suite_id),
            "app_id": app_id,
            "app_slug": app_slug,
        }

        def ref(status: str | None, **more: Any) -> RunRef:
            return RunRef(
                provider=NAME,
                repo=repo,
                run_id=suite_id,
                sha=as_str(suite.get("head_sha")),
                branch=as_str(suite.get("head_branch")),
                change=_first_pull_request(suite.get("pull_requests")),
                status=status,
                extra={**extra, **more},
            )

        if action == "rerequested":
            # GitHub sends this only to the app that owns the suite: Herald's own.
            return Event(
                NAME,
                CHECK_REREQUESTED,
                native,
                delivery,
                repo=repo,
                run=ref(None, action="rerequested"),
                payload=payload,
            )
        if self._is_own_app(headers, app_id):
            reason = f"check_suite of Herald's own app (id {app_id}) ignored to avoid loops"
            return Ignored(NAME, native, reason)
        if app_slug == ACTIONS_APP_SLUG:
            return Ignored(
                NAME, native, "GitHub Actions check suites are reported from workflow_run"
            )
        completed = ref(as_str(suite.get("conclusion")))
        return Event(
            NAME, BUILD_COMPLETED, native, delivery, repo=repo, run=completed, payload=payload
        )

    @staticmethod
    def _is_own_app(headers: Headers, app_id: int | None) -> bool:
        """App webhooks name the receiving app in `X-GitHub-Hook-Installation-Target-ID`."""
        target_type = (header(headers, "X-GitHub-Hook-Installation-Target-Type") or "").lower()
        target_id = as_int(header(headers, "X-GitHub-Hook-Installation-Target-ID"))
        return target_type == "integration" and app_id is not None and target_id == app_id

    def _check_run(
        self, headers: Headers, payload: dict[str, Any], native: str, delivery: str
    ) -> Event | Ignored:
        action = payload.get("action")
        if action not in ("rerequested", "requested_action"):
            return Ignored(NAME, native, f"check_run {action!r} is not used by Herald")
        check = payload.get("check_run")
        repo = as_str(dig(payload, "repository", "full_name"))
        check_id = as_id(dig(check, "id"))
        if not isinstance(check, dict) or repo is None or check_id is None:
            raise BadPayload("check_run payload lacks check_run.id or repository.full_name")
        external_id = as_str(check.get("external_id"))
        ref = RunRef(
            provider=NAME,
            repo=repo,
            # Herald's publisher stores the reported run in `external_id`.
            run_id=external_id or check_id,
            sha=as_str(check.get("head_sha")),
            branch=as_str(dig(check, "check_suite", "head_branch")),
            change=_first_pull_request(check.get("pull_requests")),
            url=as_str(check.get("html_url")),
            status=as_str(check.get("conclusion")),
            extra={
                "installation_id": _installation_id(payload),
                "action": action,
                "check_run_id": as_int(check_id),
                "external_id": external_id,
                "check_name": as_text(check.get("name")),
                "check_suite_id": as_int(dig(check, "check_suite", "id")),
                "requested_action": as_str(dig(payload, "requested_action", "identifier")),
            },
        )
        return Event(NAME, CHECK_REREQUESTED, native, delivery, repo=repo, run=ref, payload=payload)

    def _issue_comment(
        self, headers: Headers, payload: dict[str, Any], native: str, delivery: str
    ) -> Event | Ignored:
        action = payload.get("action")
        if action != "created":
            return Ignored(NAME, native, f"issue_comment {action!r}: only new comments are read")
        issue = payload.get("issue")
        if not isinstance(issue, dict) or "pull_request" not in issue:
            return Ignored(NAME, native, "issue_comment on an issue, not on a pull request")
        comment = payload.get("comment")
        repo = as_str(dig(payload, "repository", "full_name"))
        number = as_int(issue.get("number"))
        comment_id = as_id(dig(comment, "id"))
        if not isinstance(comment, dict) or repo is None or number is None or comment_id is None:
            raise BadPayload("issue_comment payload lacks comment.id, issue.number or repository")
        user = comment.get("user") if isinstance(comment.get("user"), dict) else None
        parsed = Comment(
            id=comment_id,
            body=as_text(comment.get("body")) or "",
            author=as_str(dig(user, "login")) or "",
            change=number,
            author_is_bot=_is_bot(user),
            url=as_str(comment.get("html_url")),
            extra={
                "installation_id": _installation_id(payload),
                "author_association": as_str(comment.get("author_association")),
                "node_id": as_str(comment.get("node_id")),
                "issue_number": number,
            },
        )
        return Event(
            NAME, COMMENT_CREATED, native, delivery, repo=repo, comment=parsed, payload=payload
        )

    # ---- push mode --------------------------------------------------------------------

    def detect(self, environ: Mapping[str, str]) -> RunRef | None:
        """GitHub Actions, from the documented default variables (no file is read)."""
        if environ.get("GITHUB_ACTIONS") != "true":
            return None
        repo = environ.get("GITHUB_REPOSITORY")
        run_id = environ.get("GITHUB_RUN_ID")
        if not repo or not run_id:
            return None
        server = (environ.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
        ref = environ.get("GITHUB_REF") or ""
        change = None
        if ref.startswith("refs/pull/"):
            change = as_int(ref.split("/")[2])
        return RunRef(
            provider=NAME,
            repo=repo,
            run_id=run_id,
            # On pull_request events GITHUB_SHA is the merge commit; the PR head sha is in
            # the event file (extra["event_path"]), which the caller may read.
            sha=environ.get("GITHUB_SHA") or None,
            branch=environ.get("GITHUB_HEAD_REF") or environ.get("GITHUB_REF_NAME") or None,
            change=change,
            url=f"{server}/{repo}/actions/runs/{run_id}",
            status=None,
            extra={
                "run_attempt": as_int(environ.get("GITHUB_RUN_ATTEMPT")),
                "run_number": as_int(environ.get("GITHUB_RUN_NUMBER")),
                "workflow_name": environ.get("GITHUB_WORKFLOW") or None,
                "job": environ.get("GITHUB_JOB") or None,
                "event": environ.get("GITHUB_EVENT_NAME") or None,
                "event_path": environ.get("GITHUB_EVENT_PATH") or None,
                "server_url": server,
                "api_url": environ.get("GITHUB_API_URL") or None,
            },
        )
