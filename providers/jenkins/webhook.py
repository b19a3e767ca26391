"""Jenkins build notifications: shared-secret check and translation to `build.completed`.

Jenkins core sends no webhooks. Herald reads the JSON of the Notification plugin
(https://plugins.jenkins.io/notification, `{name, url, build: {full_url, number, phase,
status, scm: {url, branch, commit}, parameters}}`), sent either by that plugin (which can
only authenticate with HTTP Basic credentials from the URL's user-info) or by an
`httpRequest` step in a Jenkinsfile `post` block with an `X-Herald-Token` header; see
docs/webhooks.md. Either way the credential must match `HERALD_JENKINS_WEBHOOK_SECRET`.

Only the `FINALIZED` phase is a finished build: it comes after post-build actions
(archived artifacts and test reports are in place), and taking one phase only means one
report per build.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import ClassVar, Final
from urllib.parse import unquote, urlparse

from bot.events import BUILD_COMPLETED, Event, Ignored, RunRef
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
)

NAME: Final = "jenkins"
FINAL_PHASE: Final = "FINALIZED"
_PULL_JOB = re.compile(r"^PR-(\d+)$")


def job_path(url: str | None) -> str | None:
    """`job/org/job/repo/job/PR-7/` (or a full URL) → `org/repo/PR-7`, Jenkins' full name."""
    if not url:
        return None
    path = urlparse(url).path if "://" in url else url
    parts = [unquote(part) for part in path.split("/") if part]
    names = [parts[i + 1] for i, part in enumerate(parts[:-1]) if part == "job"]
    return "/".join(names) or None


def _branch(scm_branch: str | None) -> str | None:
    if scm_branch is None:
        return None
    return scm_branch.removeprefix("refs/heads/").removeprefix("origin/")


class JenkinsProvider(Provider):
    name: ClassVar[str] = NAME

    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        check_shared_secret(headers, secrets, NAME)
        payload = load_json_object(body)
        build = payload.get("build")
        if not isinstance(build, dict):
            raise BadPayload("not a Jenkins notification: no build object")
        phase = as_str(build.get("phase")) or "unknown"
        native = f"build:{phase}"
        full_url = as_str(build.get("full_url"))
        # No delivery id is sent: the build URL and phase identify a notification, so a
        # resend (plugin retry, replayed curl) dedupes.
        delivery = body_digest(full_url or body, phase)
        if phase != FINAL_PHASE:
            return Ignored(NAME, native, f"phase {phase} is not {FINAL_PHASE}: not reported yet")
        repo = job_path(as_str(payload.get("url"))) or job_path(full_url)
        repo = repo or as_str(payload.get("name"))
        number = as_id(build.get("number"))
        if repo is None or number is None:
            raise BadPayload("Jenkins notification lacks the job url/name or build.number")
        parameters = build.get("parameters") if isinstance(build.get("parameters"), dict) else {}
        leaf = repo.rsplit("/", 1)[-1]
        pull = _PULL_JOB.match(leaf)
        change = as_int(dig(parameters, "CHANGE_ID")) or (as_int(pull.group(1)) if pull else None)
        scm = build.get("scm") if isinstance(build.get("scm"), dict) else {}
        run = RunRef(
            provider=NAME,
            repo=repo,
            run_id=number,
            sha=as_str(dig(scm, "commit")),
            branch=_branch(as_str(dig(scm, "branch"))) or as_str(dig(parameters, "BRANCH_NAME")),
            change=change,
            url=full_url,
            status=as_str(build.get("status")),
            extra={
                "job_name": as_str(payload.get("name")),
                "job_url": as_str(payload.get("url")),
                "display_name": as_text(build.get("displayName")),
                "queue_id": as_int(build.get("queue_id")),
                "scm_url": as_str(dig(scm, "url")),
                "change_url": as_str(dig(parameters, "CHANGE_URL")),
                "phase": phase,
            },
        )
        return Event(NAME, BUILD_COMPLETED, native, delivery, repo=repo, run=run, payload=payload)

    def detect(self, environ: Mapping[str, str]) -> RunRef | None:
        """A Jenkins build step, from the environment Jenkins and its git plugin set."""
        if not environ.get("JENKINS_URL"):
            return None
        job = environ.get("JOB_NAME")
        number = environ.get("BUILD_NUMBER")
        if not job or not number:
            return None
        return RunRef(
            provider=NAME,
            repo=job,
            run_id=number,
            sha=environ.get("GIT_COMMIT") or None,
            branch=environ.get("CHANGE_BRANCH")
            or environ.get("BRANCH_NAME")
            or _branch(environ.get("GIT_BRANCH"))
            or None,
            change=as_int(environ.get("CHANGE_ID")),
            url=environ.get("BUILD_URL") or None,
            extra={
                "jenkins_url": environ.get("JENKINS_URL"),
                "job_url": environ.get("JOB_URL") or None,
                "change_url": environ.get("CHANGE_URL") or None,
                "change_target": environ.get("CHANGE_TARGET") or None,
                "scm_url": environ.get("GIT_URL") or None,
            },
        )
