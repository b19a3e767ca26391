"""Azure DevOps service hooks (Web Hooks consumer): shared-secret check and translation.

Azure DevOps signs nothing. Its Web Hooks consumer can send HTTP Basic credentials and
custom headers (https://learn.microsoft.com/azure/devops/service-hooks/services/webhooks),
so Herald accepts either `Authorization: Basic` or `X-Herald-Token` matching an entry of
`HERALD_AZURE_DEVOPS_WEBHOOK_SECRET` (see `providers.signatures.check_shared_secret`).

Events: https://learn.microsoft.com/azure/devops/service-hooks/events (`build.complete`,
`ms.vss-pipelines.run-state-changed-event`, `ms.vss-code.git-pullrequest-comment-event`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final
from urllib.parse import urlparse

from bot.events import BUILD_COMPLETED, COMMENT_CREATED, Comment, Event, Ignored, RunRef
from providers.base import BadPayload, Headers, Provider
from providers.signatures import (
    as_id,
    as_int,
    as_str,
    as_text,
    body_digest,
    check_shared_secret,
    dig,
    load_json_object,
    strip_ref,
)

NAME: Final = "azure-devops"
BUILD_COMPLETE: Final = "build.complete"
RUN_STATE_CHANGED: Final = "ms.vss-pipelines.run-state-changed-event"
PR_COMMENT: Final = "ms.vss-code.git-pullrequest-comment-event"
_PULL_REF = re.compile(r"^refs/pull/(\d+)/")
_THREAD = re.compile(r"/threads/(\d+)")


def _org_project(*urls: str | None) -> tuple[str | None, str | None]:
    """Organization and project, each from the first URL that names it.

    `https://dev.azure.com/{org}/{project}/...` and `https://{org}.visualstudio.com/
    [DefaultCollection/]{project}/...`; API-only paths (`_apis`, `_build`) name no project.
    """
    org: str | None = None
    project: str | None = None
    for url in urls:
        if not url:
            continue
        parsed = urlparse(url)
        host = parsed.hostname or ""
        parts = [part for part in parsed.path.split("/") if part]
        if host.endswith(".visualstudio.com"):
            found_org: str | None = host.split(".", 1)[0]
            if parts and parts[0].lower() == "defaultcollection":
                parts = parts[1:]
        elif parts:
            found_org, parts = parts[0], parts[1:]
        else:
            continue
        org = org or found_org
        if project is None and parts and not parts[0].startswith("_"):
            project = parts[0]
    return org, project


def _change_from_ref(ref: str | None) -> int | None:
    match = _PULL_REF.match(ref or "")
    return as_int(match.group(1)) if match else None


class AzureDevOpsProvider(Provider):
    name: ClassVar[str] = NAME

    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        check_shared_secret(headers, secrets, NAME)
        payload = load_json_object(body)
        event_type = as_str(payload.get("eventType"))
        if not event_type:
            raise BadPayload("service hook payload has no eventType")
        delivery = as_str(payload.get("id")) or as_str(payload.get("notificationId"))
        delivery = delivery or body_digest(body)
        if event_type == BUILD_COMPLETE:
            return self._build(payload, event_type, delivery)
        if event_type == RUN_STATE_CHANGED:
            return self._run_state(payload, event_type, delivery)
        if event_type == PR_COMMENT:
            return self._comment(payload, event_type, delivery)
        return Ignored(NAME, event_type, f"azure devops event {event_type!r} is not used by Herald")

    def _build(self, payload: dict[str, Any], native: str, delivery: str) -> Event | Ignored:
        resource = payload.get("resource")
        build_id = as_id(dig(resource, "id"))
        if not isinstance(resource, dict) or build_id is None:
            raise BadPayload("build.complete lacks resource.id")
        web = as_str(dig(resource, "_links", "web", "href"))
        org, project_in_url = _org_project(
            as_str(dig(payload, "resourceContainers", "collection", "baseUrl")),
            web,
            as_str(resource.get("url")),
        )
        project = as_str(dig(resource, "project", "name")) or project_in_url
        if org is None or project is None:
            raise BadPayload("build.complete names no organization and project")
        repo = f"{org}/{project}"
        source_branch = as_str(resource.get("sourceBranch"))
        change = as_int(dig(resource, "triggerInfo", "pr.number")) or _change_from_ref(
            source_branch
        )
        run = RunRef(
            provider=NAME,
            repo=repo,
            run_id=build_id,
            sha=as_str(resource.get("sourceVersion")),
            branch=strip_ref(source_branch),
            change=change,
            url=web or f"https://dev.azure.com/{org}/{project}/_build/results?buildId={build_id}",
            # Older payloads put the result in `status`; current ones say `completed` there.
            status=as_str(resource.get("result")) or as_str(resource.get("status")),
            extra={
                "organization": org,
                "project": project,
                "project_id": as_str(dig(resource, "project", "id")),
                "definition_id": as_int(dig(resource, "definition", "id")),
                "definition_name": as_text(dig(resource, "definition", "name")),
                "build_number": as_str(resource.get("buildNumber")),
                "reason": as_str(resource.get("reason")),
                "repository_id": as_str(dig(resource, "repository", "id")),
                "repository_type": as_str(dig(resource, "repository", "type")),
                "repository_name": as_str(dig(resource, "repository", "name")),
            },
        )
        return Event(NAME, BUILD_COMPLETED, native, delivery, repo=repo, run=run, payload=payload)

    def _run_state(self, payload: dict[str, Any], native: str, delivery: str) -> Event | Ignored:
        run_data = dig(payload, "resource", "run")
        state = as_str(dig(run_data, "state"))
        if state != "completed":
            return Ignored(NAME, native, f"pipeline run state {state!r} is not final")
        run_id = as_id(dig(run_data, "id"))
        if not isinstance(run_data, dict) or run_id is None:
            raise BadPayload(f"{native} lacks resource.run.id")
        web = as_str(dig(run_data, "_links", "web", "href"))
        org, project_in_url = _org_project(
            as_str(dig(payload, "resourceContainers", "collection", "baseUrl")),
            web,
            as_str(run_data.get("url")),
        )
        project = as_str(dig(payload, "resource", "project", "name")) or project_in_url
        if org is None or project is None:
            raise BadPayload(f"{native} names no organization and project")
        repo = f"{org}/{project}"
        self_repo = dig(run_data, "resources", "repositories", "self")
        ref_name = as_str(dig(self_repo, "refName"))
        pipeline = dig(run_data, "pipeline") or dig(payload, "resource", "pipeline")
        run = RunRef(
            provider=NAME,
            repo=repo,
            run_id=run_id,  # a pipeline run id is the build id of the same run
            sha=as_str(dig(self_repo, "version")),
            branch=strip_ref(ref_name),
            change=_change_from_ref(ref_name),
            url=web or f"https://dev.azure.com/{org}/{project}/_build/results?buildId={run_id}",
            status=as_str(run_data.get("result")),
            extra={
                "organization": org,
                "project": project,
                "project_id": as_str(dig(payload, "resourceContainers", "project", "id")),
                "pipeline_id": as_int(dig(pipeline, "id")),
                "pipeline_name": as_text(dig(pipeline, "name")),
                "run_name": as_text(run_data.get("name")),
            },
        )
        return Event(NAME, BUILD_COMPLETED, native, delivery, repo=repo, run=run, payload=payload)

    def _comment(self, payload: dict[str, Any], native: str, delivery: str) -> Event | Ignored:
        comment = dig(payload, "resource", "comment")
        pull = dig(payload, "resource", "pullRequest")
        if dig(comment, "commentType") == "system":
            return Ignored(NAME, native, "system comment (written by Azure DevOps, not a person)")
        published = as_str(dig(comment, "publishedDate"))
        updated = as_str(dig(comment, "lastContentUpdatedDate"))
        # The same event type is sent for edits; an edit has a later content date.
        if published and updated and updated != published:
            return Ignored(NAME, native, "pull request comment edited: only new comments are read")
        comment_id = as_id(dig(comment, "id"))
        pull_id = as_int(dig(pull, "pullRequestId"))
        if not isinstance(comment, dict) or comment_id is None or pull_id is None:
            raise BadPayload(f"{native} lacks resource.comment.id or pullRequest.pullRequestId")
        web = as_str(dig(pull, "_links", "web", "href"))
        org, project_in_url = _org_project(
            as_str(dig(payload, "resourceContainers", "collection", "baseUrl")),
            web,
            as_str(dig(pull, "repository", "url")),
        )
        project = as_str(dig(pull, "repository", "project", "name")) or project_in_url
        if org is None or project is None:
            raise BadPayload(f"{native} names no organization and project")
        repo = f"{org}/{project}"
        author = dig(comment, "author")
        unique_name = as_str(dig(author, "uniqueName")) or ""
        descriptor = as_str(dig(author, "descriptor")) or ""
        thread = _THREAD.search(as_str(dig(comment, "_links", "threads", "href")) or "")
        parsed = Comment(
            id=comment_id,
            body=as_text(comment.get("content")) or "",
            author=unique_name or as_str(dig(author, "displayName")) or "",
            change=pull_id,
            # Service identities (build service, apps) have svc./s2s. descriptors.
            author_is_bot=descriptor.startswith(("svc.", "s2s."))
            or unique_name.startswith("Build\\"),
            url=web,
            extra={
                "organization": org,
                "project": project,
                "author_id": as_str(dig(author, "id")),
                "author_display_name": as_text(dig(author, "displayName")),
                "thread_id": as_int(thread.group(1)) if thread else None,
                "parent_comment_id": as_int(comment.get("parentCommentId")),
                "repository_id": as_str(dig(pull, "repository", "id")),
                "repository_name": as_str(dig(pull, "repository", "name")),
                "pull_request_status": as_str(dig(pull, "status")),
                "source_ref": as_str(dig(pull, "sourceRefName")),
                "last_merge_source_commit": as_str(dig(pull, "lastMergeSourceCommit", "commitId")),
            },
        )
        return Event(
            NAME, COMMENT_CREATED, native, delivery, repo=repo, comment=parsed, payload=payload
        )

    def detect(self, environ: Mapping[str, str]) -> RunRef | None:
        """Azure Pipelines, from the predefined variables."""
        if (environ.get("TF_BUILD") or "").lower() != "true":
            return None
        build_id = environ.get("BUILD_BUILDID")
        collection = environ.get("SYSTEM_COLLECTIONURI") or environ.get(
            "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI"
        )
        project = environ.get("SYSTEM_TEAMPROJECT")
        org, _ = _org_project(collection)
        if not build_id or not org or not project:
            return None
        collection_url = (collection or "").rstrip("/")
        pull_source = environ.get("SYSTEM_PULLREQUEST_SOURCEBRANCH")
        change = as_int(environ.get("SYSTEM_PULLREQUEST_PULLREQUESTID")) or as_int(
            environ.get("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER")
        )
        return RunRef(
            provider=NAME,
            repo=f"{org}/{project}",
            run_id=build_id,
            sha=environ.get("SYSTEM_PULLREQUEST_SOURCECOMMITID")
            or environ.get("BUILD_SOURCEVERSION")
            or None,
            branch=strip_ref(pull_source or environ.get("BUILD_SOURCEBRANCH") or None),
            change=change,
            url=f"{collection_url}/{project}/_build/results?buildId={build_id}",
            extra={
                "organization": org,
                "project": project,
                "collection_url": collection_url,
                "definition_id": as_int(environ.get("SYSTEM_DEFINITIONID")),
                "build_number": environ.get("BUILD_BUILDNUMBER") or None,
                "reason": environ.get("BUILD_REASON") or None,
                "repository_name": environ.get("BUILD_REPOSITORY_NAME") or None,
                "repository_provider": environ.get("BUILD_REPOSITORY_PROVIDER") or None,
            },
        )
