"""CircleCI outbound webhooks: `circleci-signature: v1=<hex>` and translation to events.

Implements https://circleci.com/docs/guides/integration/outbound-webhooks/ (signature and
headers) and the payloads of its webhooks reference (`workflow-completed`,
`job-completed`). Herald reports per workflow, so job events are acknowledged and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final
from urllib.parse import urlparse

from bot.events import BUILD_COMPLETED, PING, Event, Ignored, RunRef
from providers.base import BadPayload, Headers, InvalidSignature, Provider
from providers.signatures import (
    as_int,
    as_str,
    as_text,
    body_digest,
    dig,
    header,
    hex_hmac_matches,
    load_json_object,
    require_secrets,
)

NAME: Final = "circleci"
SIGNATURE_HEADER: Final = "circleci-signature"
#: The newest signature version Herald supports; older versions are never checked
#: (downgrade protection, as the CircleCI docs advise).
SIGNATURE_VERSION: Final = "v1"
#: The UI's "Test Ping Event" sends an abbreviated payload of this type.
PING_TYPE: Final = "ping"
_VCS_PREFIX: Final = {"github.com": "gh", "bitbucket.org": "bb"}


class CircleCIProvider(Provider):
    name: ClassVar[str] = NAME

    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        require_secrets(secrets, NAME)
        signature = header(headers, SIGNATURE_HEADER)
        if signature is None:
            raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
        digests = [
            value
            for version, _, value in (part.strip().partition("=") for part in signature.split(","))
            if version == SIGNATURE_VERSION and value
        ]
        if not digests:
            raise InvalidSignature(f"{SIGNATURE_HEADER} has no {SIGNATURE_VERSION}= signature")
        if not hex_hmac_matches(body, digests, secrets):
            raise InvalidSignature(f"{SIGNATURE_HEADER} does not match any configured secret")

        payload = load_json_object(body)
        event_type = (header(headers, "circleci-event-type") or "").strip() or as_str(
            payload.get("type")
        )
        if not event_type:
            raise BadPayload("missing circleci-event-type header and body type")
        delivery = as_str(payload.get("id")) or body_digest(body)
        if event_type == "workflow-completed":
            return self._workflow(payload, event_type, delivery)
        if event_type == "job-completed":
            return Ignored(NAME, event_type, "Herald reports per workflow, not per job")
        if event_type == PING_TYPE:
            repo = as_str(dig(payload, "project", "slug"))
            return Event(NAME, PING, event_type, delivery, repo=repo, payload=payload)
        return Ignored(NAME, event_type, f"circleci event {event_type!r} is not used by Herald")

    def _workflow(self, payload: dict[str, Any], native: str, delivery: str) -> Event:
        workflow = payload.get("workflow")
        repo = as_str(dig(payload, "project", "slug"))
        workflow_id = as_str(dig(workflow, "id"))
        if not isinstance(workflow, dict) or repo is None or workflow_id is None:
            raise BadPayload("workflow-completed lacks workflow.id or project.slug")
        pipeline = payload.get("pipeline") if isinstance(payload.get("pipeline"), dict) else {}
        # GitHub OAuth and Bitbucket Cloud projects describe the commit in `pipeline.vcs`;
        # GitHub App, GitLab and Bitbucket DC projects in `pipeline.trigger_parameters.git`.
        vcs = dig(pipeline, "vcs")
        git = dig(pipeline, "trigger_parameters", "git")
        sha = as_str(dig(vcs, "revision")) or as_str(dig(git, "checkout_sha"))
        branch = as_str(dig(vcs, "branch")) or as_str(dig(git, "branch"))
        tag = as_str(dig(vcs, "tag")) or as_str(dig(git, "tag"))
        run = RunRef(
            provider=NAME,
            repo=repo,
            run_id=workflow_id,
            sha=sha,
            branch=branch,
            change=None,  # CircleCI payloads carry no PR number; resolved from the sha
            url=as_str(workflow.get("url")),
            status=as_str(workflow.get("status")),
            extra={
                "workflow_name": as_text(workflow.get("name")),
                "pipeline_id": as_str(dig(pipeline, "id")),
                "pipeline_number": as_int(dig(pipeline, "number")),
                "project_id": as_str(dig(payload, "project", "id")),
                "project_name": as_text(dig(payload, "project", "name")),
                "organization_id": as_str(dig(payload, "organization", "id")),
                "organization_name": as_text(dig(payload, "organization", "name")),
                "vcs_provider": as_str(dig(vcs, "provider_name")),
                "origin_repository_url": as_str(dig(vcs, "origin_repository_url")),
                "target_repository_url": as_str(dig(vcs, "target_repository_url")),
                "tag": tag,
                "trigger_type": as_str(dig(pipeline, "trigger", "type"))
                or as_str(dig(pipeline, "trigger_parameters", "circleci", "trigger_type")),
            },
        )
        return Event(NAME, BUILD_COMPLETED, native, delivery, repo=repo, run=run, payload=payload)

    def detect(self, environ: Mapping[str, str]) -> RunRef | None:
        """CircleCI jobs, from the built-in environment variables."""
        if environ.get("CIRCLECI") != "true":
            return None
        workflow_id = environ.get("CIRCLE_WORKFLOW_ID")
        owner = environ.get("CIRCLE_PROJECT_USERNAME")
        name = environ.get("CIRCLE_PROJECT_REPONAME")
        if not workflow_id or not owner or not name:
            return None
        host = urlparse(_as_url(environ.get("CIRCLE_REPOSITORY_URL") or "")).hostname or ""
        prefix = _VCS_PREFIX.get(host)
        # GitHub App and GitLab projects use `circleci/<org-id>/<project-id>` slugs, which
        # the environment does not expose; the client resolves those from the workflow id.
        repo = f"{prefix}/{owner}/{name}" if prefix else f"{owner}/{name}"
        pull_url = environ.get("CIRCLE_PULL_REQUEST") or ""
        change = as_int(environ.get("CIRCLE_PR_NUMBER")) or as_int(pull_url.rsplit("/", 1)[-1])
        return RunRef(
            provider=NAME,
            repo=repo,
            run_id=workflow_id,
            sha=environ.get("CIRCLE_SHA1") or None,
            branch=environ.get("CIRCLE_BRANCH") or environ.get("CIRCLE_TAG") or None,
            change=change,
            url=f"https://app.circleci.com/pipelines/workflows/{workflow_id}",
            extra={
                "job_number": as_int(environ.get("CIRCLE_BUILD_NUM")),
                "job_url": environ.get("CIRCLE_BUILD_URL") or None,
                "job_name": environ.get("CIRCLE_JOB") or None,
                "repository_url": environ.get("CIRCLE_REPOSITORY_URL") or None,
                "slug_known": prefix is not None,
            },
        )


def _as_url(repository: str) -> str:
    """`git@github.com:org/repo.git` → `ssh://git@github.com/org/repo.git` for urlparse."""
    if "://" not in repository and ":" in repository:
        user_host, _, path = repository.partition(":")
        return f"ssh://{user_host}/{path}"
    return repository
