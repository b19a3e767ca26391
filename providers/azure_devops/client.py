"""Azure DevOps' API client: Azure Pipelines as a CI source, Azure Repos as a forge target.

One object reads a build (`build/builds/{id}`), its timeline (stages, jobs and their logs),
the test runs published for it (`test/runs?buildUri=…`, then each run's results: the
primary source) and its artifacts (the fallback: parsed only when the build published no
test run, so a JUnit file that the PublishTestResults task also uploaded is never counted
twice), and writes, on each pull request the build is for, one pull request status
(`context.genre` `herald`) and one sticky thread whose first comment is edited in place.
A pipeline that builds a GitHub (or another forge's) repository reports on that forge:
its repository URL names it (`bot.forges.forge_of_url`).

`/retest` (a pull request comment service hook): the author must be allowed to queue
builds, which Herald reads from the Build security namespace's access control lists for
the author and every group they belong to (see `can_retest`). Failed stages of the latest
failed build of each definition are retried (the stages API); a build without retryable
stages is queued again for the same branch and commit.

API: https://learn.microsoft.com/rest/api/azure/devops/ (build/builds, build/timeline,
build/artifacts, build/stages, test/runs, test/results, git/pull-request-statuses,
git/pull-request-threads, git/pull-request-thread-comments, git/pull-request-comment-likes,
git/pull-requests, ims/identities, security/access-control-lists).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx
import structlog

from bot import sticky
from bot.artifacts import ArtifactLimits
from bot.events import Comment, RunRef
from bot.forges import forge_of_url, latest_per_key
from bot.reports import render_markdown, run_title
from bot.reports.budget import AZURE_DEVOPS_COMMENT_LIMIT, fit_comment
from bot.reports.budget import one_line as clip
from bot.reports.markdown import WORD_JOINER, md_link, md_text
from bot.results.model import RunStatus, TestRun, format_size
from bot.settings import ProviderSettings, Settings
from providers.azure_devops import testresults
from providers.azure_devops.api import STAGES_API_VERSION, AzureDevOpsAPI
from providers.base import (
    Build,
    Change,
    Job,
    NotConfigured,
    OutcomeUnknown,
    PermanentError,
    Published,
    RemoteArtifact,
    ReportOrigin,
    Rerun,
)
from providers.http import NotFound, Throttle
from providers.writes import append_once, post_unless_said

log = structlog.get_logger(__name__)

NAME: Final = "azure-devops"
PUBLIC_HOST: Final = "dev.azure.com"
#: Every status Herald writes has this genre; its name tells the pipelines apart.
GENRE: Final = "herald"
RETEST_POLICY: Final = (
    "Only people allowed to queue builds in this project can ask for a retest."
)
COMMENT_LIMIT: Final = AZURE_DEVOPS_COMMENT_LIMIT
#: Herald keeps a status description to one short line.
DESCRIPTION_LIMIT: Final = 250
TRUNCATED: Final = "\n\n… (report cut to fit Azure DevOps' comment size limit)\n"
#: The Build security namespace and its "Queue builds" bit
#: (https://learn.microsoft.com/azure/devops/organizations/security/namespace-reference).
BUILD_NAMESPACE: Final = "33344d9c-fc72-4d6f-aba5-fa317101a7e9"
QUEUE_BUILDS: Final = 128
#: Descriptors per access-control-list query (they travel in the query string).
DESCRIPTORS_PER_QUERY: Final = 40
BUILD_TTL_SECONDS: Final = 120.0
BUILD_CACHE_SIZE: Final = 64
MAX_LINKS: Final = 50
#: Builds of one pull request looked at for `/retest`.
MAX_BUILDS: Final = 100
_PULL_REF = re.compile(r"^refs/pull/(\d+)/")
#: What Azure DevOps allows in an organization's name: nothing that leaves its URL path.
_ORGANIZATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,49}$")
_BUILD_MARKER = re.compile(r"<!-- herald:build:(\d+) -->")
# Azure DevOps' mention in Markdown is `@<user id>` (and `@{name}` in some editors); the
# renderer breaks them outside code, this breaks them in code too, where Azure does not
# document that it leaves them alone.
_MENTION = re.compile(r"@(?=[<{])")


# ---- markers and states -------------------------------------------------------------------


def report_marker(origin: ReportOrigin) -> str:
    """The hidden first line of the thread of `origin`'s pipeline definition (an Azure
    pipeline) or workflow (another CI system): one thread each, never found by another's
    marker (the name is encoded and the marker ends in ` -->`)."""
    key = quote(f"{origin.ci}:{origin.name or 'run'}", safe=":")
    return f"<!-- herald:report:{key} -->"


def build_marker(sequence: int) -> str:
    return f"<!-- herald:build:{sequence} -->"


def reported_build(body: str) -> tuple[int, ...] | None:
    match = _BUILD_MARKER.search(body)
    return (int(match.group(1)),) if match else None


def reply_marker(comment: Comment) -> str:
    thread = comment.extra.get("thread_id")
    return f"<!-- herald:reply:{thread}/{quote(comment.id, safe='')} -->"


def status_name(origin: ReportOrigin) -> str:
    """The status' `context.name`: the pipeline's definition name for Azure Pipelines,
    `<ci>: <name>` for another CI system."""
    name = origin.name or "build"
    return name if origin.ci == NAME else f"{origin.ci}: {name}"


def status_state(run: TestRun, origin: ReportOrigin) -> str:
    """The status: what the tests say; the build's own fate when none ran."""
    status = run.overall_status()
    if status in (RunStatus.FAILED, RunStatus.ERROR):
        return "failed"
    if status is RunStatus.CANCELLED:
        return "error"
    if status is RunStatus.RUNNING:
        return "pending"
    if status is RunStatus.NO_TESTS and origin.failed:
        return "failed"
    # Passing tests beside a report that could not be read are not a success: the unread
    # file may have held the failure.
    if run.errors:
        return "failed"
    return "succeeded"


def defuse_mentions(text: str) -> str:
    """`text` with a word joiner after every `@` that would start an Azure mention."""
    return _MENTION.sub(f"@{WORD_JOINER}", text)


def _pull_request(build: dict[str, Any]) -> int | None:
    trigger = build.get("triggerInfo")
    number = trigger.get("pr.number") if isinstance(trigger, dict) else None
    if isinstance(number, str) and number.isdigit():
        return int(number)
    match = _PULL_REF.match(str(build.get("sourceBranch") or ""))
    return int(match.group(1)) if match else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _web(build: dict[str, Any]) -> str | None:
    links = build.get("_links")
    web = links.get("web") if isinstance(links, dict) else None
    return _text(web.get("href")) if isinstance(web, dict) else None


# ---- the client ---------------------------------------------------------------------------


@dataclass(slots=True)
class BuildData:
    """One build as read for a report: the build, its timeline records, its test runs."""

    build: dict[str, Any]
    records: list[dict[str, Any]]
    fetched_at: float
    test_runs: list[dict[str, Any]] | None = None
    artifacts: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AzureDevOpsClient:
    """`CISource` and `ForgeTarget` for the organizations of one Azure DevOps token."""

    retest_policy: str = RETEST_POLICY

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: str,
        *,
        url: str | None,
        timeout: float,
        settings: Settings,
        max_artifact_bytes: int,
    ) -> None:
        self._http = http
        self._token = token
        self._url = url.rstrip("/") if url else None
        self._timeout = timeout
        self._settings = settings
        self.max_artifact_bytes = max_artifact_bytes
        self._throttle = Throttle()
        self._apis: dict[str, AzureDevOpsAPI] = {}
        self._builds: OrderedDict[tuple[str, str], BuildData] = OrderedDict()
        self._me: dict[str, str] = {}
        self._thread_locks: dict[tuple[str, str, int], asyncio.Lock] = {}

    async def aclose(self) -> None:
        """The httpx client is the worker's: nothing of this client's own to close."""

    # ---- coordinates --------------------------------------------------------------------

    def api(self, organization: Any) -> AzureDevOpsAPI:
        """The API of `organization` (a name from a service hook), on the configured host
        only: a hook naming another organization than the configured one is refused."""
        if not isinstance(organization, str) or not _ORGANIZATION.match(organization):
            raise PermanentError("the service hook names no Azure DevOps organization")
        if self._url is None:
            url = f"https://{PUBLIC_HOST}/{quote(organization, safe='')}"
        else:
            url = self._url
            parts = urlsplit(url)
            named = parts.path.strip("/").split("/")[0] if parts.path.strip("/") else ""
            if (parts.hostname or "").lower() == PUBLIC_HOST and named.lower() != \
                    organization.lower():
                raise PermanentError(
                    f"organization {organization!r} is not the configured one "
                    f"(HERALD_AZURE_DEVOPS_URL)"
                )
        api = self._apis.get(url)
        if api is None:
            api = self._apis[url] = AzureDevOpsAPI(
                self._http, url, self._token, timeout=self._timeout, throttle=self._throttle
            )
        return api

    @staticmethod
    def _project(extra: Any) -> str:
        project = extra.get("project_id") or extra.get("project") if extra else None
        if not isinstance(project, str) or not project:
            raise PermanentError("the service hook names no Azure DevOps project")
        return quote(project, safe="")

    @staticmethod
    def _build_id(ref: RunRef) -> int:
        try:
            return int(ref.run_id)
        except ValueError:
            raise PermanentError(f"not an Azure Pipelines build id: {ref.run_id!r}") from None

    # ---- the build ----------------------------------------------------------------------

    async def _data(self, ref: RunRef, *, fresh: bool = False) -> BuildData:
        key = (str(ref.extra.get("organization")), ref.run_id)
        cached = self._builds.get(key)
        if cached and not fresh and time.monotonic() - cached.fetched_at < BUILD_TTL_SECONDS:
            return cached
        api = self.api(ref.extra.get("organization"))
        project = self._project(ref.extra)
        build_id = self._build_id(ref)
        base = f"/{project}/_apis/build/builds/{build_id}"
        build = await api.get(f"read build {build_id}", base)
        if not isinstance(build, dict):
            raise PermanentError(f"read build {build_id}: Azure DevOps sent no build")
        try:
            timeline = await api.get(f"read the timeline of build {build_id}", f"{base}/timeline")
        except NotFound:
            timeline = None
        records = timeline.get("records") if isinstance(timeline, dict) else None
        data = BuildData(build, [r for r in records or [] if isinstance(r, dict)],
                         time.monotonic())
        self._builds[key] = data
        self._builds.move_to_end(key)
        while len(self._builds) > BUILD_CACHE_SIZE:
            self._builds.popitem(last=False)
        return data

    async def get_build(self, ref: RunRef) -> Build:
        data = await self._data(ref, fresh=True)
        build = data.build
        web = _web(build) or ref.url
        status = str(build.get("result") or build.get("status") or ref.status or "unknown")
        repository = _dict(build.get("repository"))
        definition = _dict(build.get("definition"))
        project = _dict(build.get("project"))
        number = _pull_request(build) or ref.change
        trigger = _dict(build.get("triggerInfo"))
        sha = _text(build.get("sourceVersion")) or ref.sha
        # A run-state hook names the project by id, a build hook by name: the change is
        # named one way whichever hook reported it.
        organization = ref.extra.get("organization")
        repo = f"{organization}/{project['name']}" if isinstance(project.get("name"), str) \
            and isinstance(organization, str) else ref.repo
        target = RunRef(
            provider=NAME, repo=repo, run_id=str(build.get("id") or ref.run_id), sha=sha,
            branch=ref.branch, change=number, url=web, status=status,
            extra={
                **ref.extra,
                "project_id": _text(project.get("id")) or ref.extra.get("project_id"),
                "definition_id": definition.get("id", ref.extra.get("definition_id")),
                "definition_name": _text(definition.get("name"))
                or ref.extra.get("definition_name"),
                "build_number": _text(build.get("buildNumber")),
                "source_branch": _text(build.get("sourceBranch")),
                "repository_id": _text(repository.get("id")) or ref.extra.get("repository_id"),
                "repository_type": _text(repository.get("type"))
                or ref.extra.get("repository_type"),
                "repository_url": _text(repository.get("url")),
                "head_sha": _text(trigger.get("pr.sourceSha")),
            },
        )
        jobs = [
            Job(id=str(record.get("id")), name=str(record.get("name") or "job"),
                status=str(record.get("result") or record.get("state") or "unknown"),
                failed=record.get("result") == "failed", url=self._log_url(web, record))
            for record in data.records if record.get("type") == "Job"
        ]
        return Build(ref=target, status=status, failed=status == "failed", url=web,
                     name=target.extra.get("definition_name"), jobs=jobs,
                     changes=[number] if number else [], sha=sha)

    @staticmethod
    def _log_url(web: str | None, record: dict[str, Any]) -> str | None:
        if not web or not isinstance(record.get("id"), str):
            return None
        return f"{web}&view=logs&j={quote(record['id'], safe='')}"

    # ---- results ------------------------------------------------------------------------

    async def _test_runs(self, ref: RunRef) -> list[dict[str, Any]]:
        data = await self._data(ref)
        if data.test_runs is None:
            api = self.api(ref.extra.get("organization"))
            build_id = self._build_id(ref)
            data.test_runs = await api.list(
                f"list the test runs of build {build_id}",
                f"/{self._project(ref.extra)}/_apis/test/runs",
                {"buildUri": f"vstfs:///Build/Build/{build_id}", "includeRunDetails": "true"},
            )
        return data.test_runs

    async def native_results(self, ref: RunRef) -> TestRun | None:
        """The build's test runs and their results (see `testresults`)."""
        runs = await self._test_runs(ref)
        if not runs:
            return None
        api = self.api(ref.extra.get("organization"))
        project = self._project(ref.extra)

        async def results(run_id: int) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            while len(found) < testresults.MAX_RESULTS:
                page = await api.get(
                    f"read the results of test run {run_id}",
                    f"/{project}/_apis/test/Runs/{run_id}/results",
                    {"$top": testresults.PAGE, "$skip": len(found)},
                )
                values = page.get("value") if isinstance(page, dict) else None
                batch = [v for v in values or [] if isinstance(v, dict)]
                found.extend(batch)
                if len(batch) < testresults.PAGE:
                    break
            return found

        fetched = {}
        for run in runs:
            run_id = run.get("id")
            if isinstance(run_id, int):
                fetched[run_id] = await results(run_id)
        data = await self._data(ref)
        web = _web(data.build) or ref.url
        logs = {str(r.get("name")): url for r in data.records if r.get("type") == "Job"
                and (url := self._log_url(web, r)) is not None}
        return testresults.to_test_run(runs, fetched, run_id=ref.run_id, build_url=web,
                                       job_urls=logs)

    async def _artifacts(self, ref: RunRef) -> list[dict[str, Any]]:
        data = await self._data(ref)
        if data.artifacts is None:
            api = self.api(ref.extra.get("organization"))
            build_id = self._build_id(ref)
            data.artifacts = await api.list(
                f"list the artifacts of build {build_id}",
                f"/{self._project(ref.extra)}/_apis/build/builds/{build_id}/artifacts",
            )
        return data.artifacts

    def _remote(self, ref: RunRef, data: BuildData, artifact: dict[str, Any]) -> RemoteArtifact:
        resource = _dict(artifact.get("resource"))
        properties = _dict(resource.get("properties"))
        size = properties.get("artifactsize")
        web = _web(data.build)
        return RemoteArtifact(
            id=str(artifact.get("id") or artifact.get("name")),
            name=str(artifact.get("name")),
            size=int(size) if isinstance(size, str) and size.isdigit() else None,
            url=f"{web}&view=artifacts&type=publishedArtifacts" if web else None,
        )

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        """The build's artifacts, for parsing only when it published no test run (whose
        results would otherwise be counted twice)."""
        listed = await self._artifacts(ref)  # linked from the thread either way
        if await self._test_runs(ref):
            return []
        data = await self._data(ref)
        return [self._remote(ref, data, a) for a in listed if isinstance(a.get("name"), str)]

    async def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        api = self.api(ref.extra.get("organization"))
        build_id = self._build_id(ref)
        url = api.address(
            f"/{self._project(ref.extra)}/_apis/build/builds/{build_id}/artifacts",
            {"artifactName": artifact.name, "$format": "zip"},
        )
        chunks = api.session.download(
            url, what=f"download artifact {artifact.name!r} of build {build_id}",
            max_bytes=self.max_artifact_bytes, headers=api.headers, scope=api.scope,
        )
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    # ---- the change and the origin of a run ---------------------------------------------

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        target = build.ref if build is not None else ref
        extra = target.extra
        numbers = tuple(build.changes) if build is not None and build.changes else (
            (target.change,) if target.change else ())
        kind = extra.get("repository_type")
        if kind not in (None, "TfsGit"):
            # A pipeline building another forge's repository reports on that forge.
            url = extra.get("repository_url")
            found = forge_of_url(url, self._settings) if isinstance(url, str) else None
            sha = extra.get("head_sha") or target.sha
            if found is None or not sha:
                raise PermanentError(
                    f"build {target.run_id} builds a {kind} repository on no configured forge"
                )
            # A branch build names no pull request; the forge finds those it is the head of.
            return Change(forge=found.forge, repo=found.repo, sha=str(sha), numbers=numbers,
                          numbers_known=bool(numbers))
        sha = target.sha or ref.sha
        if not sha:
            raise PermanentError(f"build {target.run_id} has no commit")
        repository = extra.get("repository_id")
        if not isinstance(repository, str):
            raise PermanentError(f"build {target.run_id} names no repository")
        return Change(forge=NAME, repo=target.repo, sha=sha, numbers=numbers, extra={
            "organization": extra.get("organization"), "project": extra.get("project"),
            "project_id": extra.get("project_id"), "repository_id": repository,
        })

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        target = build.ref if build is not None else ref
        try:
            sequence = int(target.run_id)
        except ValueError:
            sequence = 0
        name = target.extra.get("definition_name") or target.extra.get("pipeline_name")
        return ReportOrigin(
            run=target, name=str(name) if name else None, sequence=sequence,
            number=str(target.extra.get("build_number") or target.run_id),
            url=(build.url if build is not None else None) or target.url,
            failed=build.failed if build is not None else target.status == "failed",
        )

    # ---- ForgeTarget: reports -----------------------------------------------------------

    def _repository_base(self, change: Change) -> tuple[AzureDevOpsAPI, str]:
        extra = change.extra
        repository = extra.get("repository_id")
        if not isinstance(repository, str) or not repository:
            raise PermanentError(f"change {change.sha[:12]} names no Azure Repos repository")
        api = self.api(extra.get("organization"))
        return api, f"/{self._project(extra)}/_apis/git/repositories/{quote(repository, safe='')}"

    async def publish(self, change: Change, origin: ReportOrigin, run: TestRun) -> Published:
        api, base = self._repository_base(change)
        data = await self._data(origin.run) if origin.ci == NAME else None
        state = status_state(run, origin)
        description = clip(run_title(run), DESCRIPTION_LIMIT)
        numbers = change.numbers
        if not change.numbers_known:
            numbers = await self._pulls_headed_by(api, base, change.sha)
        targets = [f"{base}/pullRequests/{n}" for n in numbers] or \
            [f"{base}/commits/{change.sha}"]
        status_id: str | None = None
        for target in targets:
            status_id = await self._set_status(api, target, origin, state, description) \
                or status_id
        comment_id: str | None = None
        created = False
        for number in numbers:
            body = self._thread_body(run, origin, data)
            # A green build with no thread yet starts no conversation (`bot.sticky`).
            thread_id, made = await self._upsert_thread(api, base, number, origin, body,
                                                        start=state != "succeeded")
            comment_id = comment_id or thread_id
            created = created or made
        return Published(status_id=status_id, comment_id=comment_id, created=created)

    async def _pulls_headed_by(self, api: AzureDevOpsAPI, base: str, sha: str
                               ) -> tuple[int, ...]:
        """The active pull requests whose source branch is at `sha`."""
        pulls = await api.list(f"list the active pull requests of {sha[:12]}",
                               f"{base}/pullrequests", {"searchCriteria.status": "active"})
        return tuple(sorted(
            int(p["pullRequestId"]) for p in pulls
            if isinstance(p.get("pullRequestId"), int)
            and _dict(p.get("lastMergeSourceCommit")).get("commitId") == sha
        ))

    async def publish_error(self, change: Change, origin: ReportOrigin, message: str) -> None:
        api, base = self._repository_base(change)
        targets = [f"{base}/pullRequests/{n}" for n in change.numbers] or \
            [f"{base}/commits/{change.sha}"]
        for target in targets:
            await self._set_status(api, target, origin, "error",
                                   clip(message, DESCRIPTION_LIMIT))

    async def _set_status(self, api: AzureDevOpsAPI, target: str, origin: ReportOrigin,
                          state: str, description: str) -> str | None:
        """Post our status unless the latest of its context already says exactly this: a
        redelivery must not stack up identical statuses, nor a POST whose answer was lost
        (looked for the same way before it is sent again)."""
        name = status_name(origin)
        url = origin.url

        async def latest() -> dict[str, Any] | None:
            where = " ".join(target.rsplit("/", 2)[-2:])  # "pullRequests 1187"
            statuses = await api.list(f"read the statuses of {where}", f"{target}/statuses")
            ours = [s for s in statuses if isinstance(s.get("context"), dict)
                    and s["context"].get("genre") == GENRE and s["context"].get("name") == name]
            return max(ours, key=lambda s: int(s.get("id") or 0)) if ours else None

        def says_this(status: dict[str, Any]) -> bool:
            return (status.get("state"), status.get("description"), status.get("targetUrl")) \
                == (state, description, url)

        body: dict[str, Any] = {"state": state, "description": description,
                                "context": {"name": name, "genre": GENRE}}
        if url:
            body["targetUrl"] = url
        posted = await post_unless_said(
            latest, says_this,
            lambda: api.post(f"set the {name} status", f"{target}/statuses", body,
                             idempotent=False),
        )
        return str(posted.get("id")) if isinstance(posted, dict) else None

    def _thread_body(self, run: TestRun, origin: ReportOrigin, data: BuildData | None) -> str:
        head = f"{report_marker(origin)}\n{build_marker(origin.sequence)}\n"
        tail = self._build_section(origin, data) if data is not None else ""

        def render(budget: int) -> str:
            room = max(0, budget - len(head) - len(tail))
            report = render_markdown(run, budget=room, details_url=origin.url, heading_level=2)
            return head + report + tail

        return fit_comment(render, COMMENT_LIMIT, TRUNCATED, defuse_mentions)

    def _build_section(self, origin: ReportOrigin, data: BuildData) -> str:
        """Links a reviewer wants next to the results: the build, failed jobs' logs, the
        artifacts."""
        web = _web(data.build) or origin.url
        title = f"Build {origin.number or origin.run.run_id}"
        lines = ["", "---", f"{md_link(title, web, limit=None)}: "
                 f"{md_text(origin.run.status or 'unknown')}"]
        failed = [r for r in data.records if r.get("type") == "Job" and r.get("result") ==
                  "failed"]
        if failed:
            links = [md_link(str(r.get("name") or "job"), self._log_url(web, r))
                     for r in failed[:MAX_LINKS]]
            more = f" and {len(failed) - MAX_LINKS} more" if len(failed) > MAX_LINKS else ""
            lines.append(f"Failed jobs: {', '.join(links)}{more}")
        artifacts = [self._remote(origin.run, data, a) for a in data.artifacts or []
                     if isinstance(a.get("name"), str)]
        if artifacts:
            shown = [f"{md_link(a.name, a.url)} ({format_size(a.size)})"
                     for a in artifacts[:MAX_LINKS]]
            more = f" and {len(artifacts) - MAX_LINKS} more" if len(artifacts) > MAX_LINKS \
                else ""
            lines.append(f"Artifacts: {', '.join(shown)}{more}")
        return "\n".join(lines) + "\n"

    async def _whoami(self, api: AzureDevOpsAPI) -> str:
        me = self._me.get(api.url)
        if me is None:
            data = await api.get("read the token's identity", "/_apis/connectionData",
                                 version=STAGES_API_VERSION)
            user = data.get("authenticatedUser") if isinstance(data, dict) else None
            if not isinstance(user, dict) or not isinstance(user.get("id"), str):
                raise PermanentError("read the token's identity: Azure DevOps sent no user id")
            me = self._me[api.url] = user["id"]
        return me

    async def _upsert_thread(self, api: AzureDevOpsAPI, base: str, number: int,
                             origin: ReportOrigin, body: str, *, start: bool
                             ) -> tuple[str | None, bool]:
        """Edit the first comment of our thread on the pull request, or start the thread:
        never two of them (see `bot.sticky`)."""
        lock = self._thread_locks.setdefault((api.url, base, number), asyncio.Lock())
        async with lock:
            thread = _PullRequestThreads(api, f"{base}/pullRequests/{number}/threads",
                                         await self._whoami(api), number)
            upserted = await sticky.upsert(
                thread, marker=report_marker(origin), order=(origin.sequence,),
                order_of=reported_build, render=lambda: body, start=start,
            )
        return upserted.id, upserted.created

    # ---- ForgeTarget: /retest -----------------------------------------------------------

    async def _pull(self, repo: str, comment: Comment) -> tuple[AzureDevOpsAPI, str, Any]:
        """The comment's pull request as Azure DevOps holds it now."""
        extra = comment.extra
        repository = extra.get("repository_id")
        if not isinstance(repository, str):
            raise PermanentError("the comment's service hook names no repository")
        api = self.api(extra.get("organization"))
        base = f"/{self._project(extra)}/_apis/git/repositories/{quote(repository, safe='')}"
        pull = await api.get(f"read pull request {comment.change}",
                             f"{base}/pullRequests/{comment.change}")
        return api, base, pull

    async def can_retest(self, repo: str, comment: Comment) -> bool:
        """Whether the author may queue builds in the project: the "Queue builds" bit of
        the Build namespace on the project's token, from the access control entries of the
        author and every group they are in (expanded), a deny anywhere winning. Not seen:
        entries set on one pipeline or folder only (Herald reads the project's)."""
        author = comment.extra.get("author_id")
        if not isinstance(author, str) or not author:
            log.warning("retest: the comment names no author id; refusing",
                        author=comment.author)
            return False
        api, _base, pull = await self._pull(repo, comment)
        project = pull.get("repository", {}).get("project", {}).get("id") \
            if isinstance(pull, dict) else None
        if not isinstance(project, str):
            raise PermanentError(f"pull request {comment.change} names no project id")
        found = await api.get(f"read the identity of {comment.author}", "/_apis/identities",
                              {"identityIds": author, "queryMembership": "expanded"},
                              identities=True)
        identities = found.get("value") if isinstance(found, dict) else None
        if not identities or not isinstance(identities[0], dict):
            return False
        identity = identities[0]
        descriptors = [d for d in [_descriptor(identity.get("descriptor")),
                                   *(_descriptor(m) for m in identity.get("memberOf") or [])]
                       if d]
        allowed = denied = 0
        for start in range(0, len(descriptors), DESCRIPTORS_PER_QUERY):
            batch = descriptors[start:start + DESCRIPTORS_PER_QUERY]
            acls = await api.list(
                f"read who may queue builds in project {project}",
                f"/_apis/accesscontrollists/{BUILD_NAMESPACE}",
                {"token": project, "descriptors": ",".join(batch),
                 "includeExtendedInfo": "true"},
            )
            for acl in acls:
                for entry in (acl.get("acesDictionary") or {}).values():
                    if not isinstance(entry, dict):
                        continue
                    info = _dict(entry.get("extendedInfo"))
                    allowed |= int(info.get("effectiveAllow", entry.get("allow")) or 0)
                    denied |= int(info.get("effectiveDeny", entry.get("deny")) or 0)
        return bool(allowed & QUEUE_BUILDS) and not denied & QUEUE_BUILDS

    async def head_change(self, repo: str, comment: Comment) -> Change | None:
        """The pull request's latest merge commit: what its builds build."""
        _api, _base, pull = await self._pull(repo, comment)
        if not isinstance(pull, dict) or pull.get("status") != "active":
            return None
        merge = pull.get("lastMergeCommit")
        sha = merge.get("commitId") if isinstance(merge, dict) else None
        if not isinstance(sha, str) or not sha:
            return None
        extra = comment.extra
        return Change(forge=NAME, repo=repo, sha=sha, numbers=(comment.change,), extra={
            "organization": extra.get("organization"), "project": extra.get("project"),
            "project_id": pull.get("repository", {}).get("project", {}).get("id"),
            "repository_id": extra.get("repository_id"),
        })

    async def acknowledge(self, repo: str, comment: Comment) -> None:
        """Like the comment: one like per user, so a redelivery cannot add another."""
        thread = comment.extra.get("thread_id")
        if not isinstance(thread, int):
            return
        api, base = self._repository_base(Change(NAME, repo, "", extra=comment.extra))
        await api.post(f"like comment {comment.id}",
                       f"{base}/pullRequests/{comment.change}/threads/{thread}/comments/"
                       f"{quote(comment.id, safe='')}/likes", None, idempotent=True)

    async def reply(self, repo: str, comment: Comment, body: str) -> None:
        """Answer in the comment's thread, once: the reply's hidden first line names the
        comment it answers, by which it is found again if the answer to the POST is lost."""
        thread = comment.extra.get("thread_id")
        if not isinstance(thread, int):
            raise PermanentError(f"comment {comment.id} names no thread to reply in")
        api, base = self._repository_base(Change(NAME, repo, "", extra=comment.extra))
        path = f"{base}/pullRequests/{comment.change}/threads/{thread}"
        marker = reply_marker(comment)
        text = f"{marker}\n{body}"[:COMMENT_LIMIT]
        me = await self._whoami(api)

        async def landed() -> dict[str, Any] | None:
            found = await api.get("look for Herald's reply", path)
            for posted in found.get("comments") or [] if isinstance(found, dict) else []:
                if isinstance(posted, dict) and (posted.get("author") or {}).get("id") == me \
                        and str(posted.get("content") or "").startswith(marker):
                    return posted
            return None

        if await landed() is not None:
            return
        await append_once(
            lambda: api.post(f"reply on pull request {comment.change}", f"{path}/comments",
                             {"content": text, "parentCommentId": int(comment.id)
                              if comment.id.isdigit() else 0, "commentType": 1},
                             idempotent=False),
            landed,
        )

    # ---- CISource: what /retest reruns --------------------------------------------------

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        """The latest build of each definition for the pull request's merge commit, those
        that failed."""
        if change.forge != NAME or not change.numbers:
            return []
        extra = change.extra
        api = self.api(extra.get("organization"))
        number = change.numbers[0]
        builds = await api.list(
            f"list the builds of pull request {number}",
            f"/{self._project(extra)}/_apis/build/builds",
            {"branchName": f"refs/pull/{number}/merge",
             "repositoryId": extra.get("repository_id"), "repositoryType": "TfsGit",
             "queryOrder": "queueTimeDescending", "$top": MAX_BUILDS},
        )
        latest = latest_per_key(
            (b for b in builds if b.get("sourceVersion") == change.sha),
            key=lambda b: (b.get("definition") or {}).get("id"),
            order=lambda b: int(b.get("id") or 0),
        )
        return [
            RunRef(
                provider=NAME, repo=change.repo, run_id=str(b["id"]), sha=change.sha,
                branch=f"refs/pull/{number}/merge", change=number, url=_web(b),
                status="failed",
                extra={
                    "organization": extra.get("organization"), "project": extra.get("project"),
                    "project_id": extra.get("project_id"),
                    "repository_id": extra.get("repository_id"),
                    "definition_id": (b.get("definition") or {}).get("id"),
                    "name": (b.get("definition") or {}).get("name"),
                },
            )
            for b in latest if b.get("result") == "failed"
        ]

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        """Retry the build's failed stages in place; without any (a classic pipeline, or
        no stage that failed), queue its definition again for the same branch and commit."""
        data = await self._data(ref, fresh=True)
        api = self.api(ref.extra.get("organization"))
        project = self._project(ref.extra)
        build_id = self._build_id(ref)
        stages = [r for r in data.records if r.get("type") == "Stage"
                  and r.get("result") in ("failed", "canceled")
                  and isinstance(r.get("identifier"), str)]
        failed_jobs = [str(r.get("name")) for r in data.records
                       if r.get("type") == "Job" and r.get("result") == "failed"]
        if failed_only and stages:

            async def restarted() -> dict[str, Any] | None:
                # A retried stage puts its build back in progress at once.
                build = await api.get(f"read build {build_id}",
                                      f"/{project}/_apis/build/builds/{build_id}")
                return build if _dict(build).get("status") != "completed" else None

            def retry(identifier: str) -> Callable[[], Awaitable[Any]]:
                return lambda: api.patch(
                    f"retry stage {identifier} of build {build_id}",
                    f"/{project}/_apis/build/builds/{build_id}/stages/"
                    f"{quote(identifier, safe='')}",
                    {"state": "retry", "forceRetryAllJobs": False},
                    idempotent=False, version=STAGES_API_VERSION,
                )

            for stage in stages:
                # After a lost answer, sent again only if the build has not restarted: a
                # stage that is running again cannot be retried a second time.
                await append_once(retry(stage["identifier"]), restarted)
            self._builds.pop((str(ref.extra.get("organization")), ref.run_id), None)
            return Rerun(runs=[str(build_id)], jobs=failed_jobs)
        build = data.build
        definition = _dict(build.get("definition"))
        if not isinstance(definition.get("id"), int):
            raise PermanentError(f"build {build_id} names no definition to queue again")
        # Never resent after a lost answer, by this job or its retry: a new build cannot be
        # told apart from one somebody else queued for the same commit. The reviewer is
        # told instead, and can look before asking again.
        try:
            queued = await api.post(
                f"queue definition {definition['id']} again",
                f"/{project}/_apis/build/builds",
                {"definition": {"id": definition["id"]},
                 "sourceBranch": build.get("sourceBranch"),
                 "sourceVersion": build.get("sourceVersion")},
                idempotent=False,
            )
        except OutcomeUnknown:
            raise PermanentError(
                f"Azure DevOps did not say whether definition {definition['id']} was queued "
                "again; look at its runs before asking once more"
            ) from None
        return Rerun(runs=[str(queued.get("id"))] if isinstance(queued, dict) else [],
                     jobs=failed_jobs, url=_web(_dict(queued)))


def _descriptor(value: Any) -> str | None:
    """An identity descriptor as the access-control-list API takes it: `type;identifier`."""
    if isinstance(value, str) and ";" in value:
        return value
    if isinstance(value, dict) and value.get("identityType") and value.get("identifier"):
        return f"{value['identityType']};{value['identifier']}"
    return None


class _PullRequestThreads:
    """A pull request's threads as `bot.sticky` sees them: ours are those whose first
    comment the token's identity wrote, holding the marker; the first comment is the one
    edited."""

    def __init__(self, api: AzureDevOpsAPI, path: str, me: str, number: int) -> None:
        self._api = api
        self._path = path
        self._me = me
        self._number = number
        self._first: dict[str, int] = {}

    def _first_comment(self, thread: dict[str, Any]) -> dict[str, Any] | None:
        comments = [c for c in thread.get("comments") or [] if isinstance(c, dict)]
        if thread.get("isDeleted") or not comments:
            return None
        first = min(comments, key=lambda c: int(c.get("id") or 0))
        if first.get("isDeleted") or (first.get("author") or {}).get("id") != self._me:
            return None
        return first

    async def _ours(self, marker: str) -> list[sticky.Posted]:
        found = await self._api.list(f"list the threads of pull request {self._number}",
                                     self._path)
        posted = []
        for thread in sorted(found, key=lambda t: int(t.get("id") or 0)):
            first = self._first_comment(thread)
            content = str(first.get("content") or "") if first else ""
            if first is not None and marker in content:
                self._first[str(thread["id"])] = int(first.get("id") or 1)
                posted.append(sticky.Posted(str(thread["id"]), content))
        return posted

    async def ours(self, marker: str, *, first: bool = False) -> list[sticky.Posted]:
        found = await self._ours(marker)
        return found[:1] if first else found

    async def create(self, body: str) -> sticky.Posted:
        marker = body.split("\n", 1)[0]

        async def landed() -> dict[str, Any] | None:
            found = await self._ours(marker)
            return {"id": int(found[0].id), "comments": [{"id": 1, "content": found[0].body}]} \
                if found else None

        # No `status`: a thread without one is a plain comment, which a "comments must be
        # resolved" branch policy does not wait for.
        created = await append_once(
            lambda: self._api.post(
                f"start a thread on pull request {self._number}", self._path,
                {"comments": [{"parentCommentId": 0, "content": body, "commentType": 1}]},
                idempotent=False,
            ),
            landed,
        )
        if not isinstance(created, dict) or "id" not in created:
            raise PermanentError(f"start a thread on pull request {self._number}: "
                                 "Azure DevOps sent no thread")
        comments = created.get("comments") or [{}]
        self._first[str(created["id"])] = int(comments[0].get("id") or 1)
        return sticky.Posted(str(created["id"]), str(comments[0].get("content") or body))

    async def edit(self, comment_id: str, body: str) -> None:
        first = self._first.get(comment_id, 1)
        await self._api.patch(f"update thread {comment_id} on pull request {self._number}",
                              f"{self._path}/{comment_id}/comments/{first}",
                              {"content": body}, idempotent=True)

    async def delete(self, comment_id: str) -> None:
        first = self._first.get(comment_id, 1)
        try:
            await self._api.delete(f"delete duplicate thread {comment_id}",
                                   f"{self._path}/{comment_id}/comments/{first}")
        except NotFound:
            pass  # the other process removed it first


# ---- construction -------------------------------------------------------------------------


def create_client(
    settings: ProviderSettings, http: httpx.AsyncClient | None = None
) -> AzureDevOpsClient:
    """The worker's Azure DevOps client over its httpx client (one of its own when None).

    Raises `NotConfigured` without a token, `ConfigError` for a malformed setting.
    """
    token = settings.secret("token")
    if token is None or not token.reveal().strip():
        raise NotConfigured(
            "no Azure DevOps token configured: set HERALD_AZURE_DEVOPS_TOKEN "
            "(or HERALD_AZURE_DEVOPS_TOKEN_FILE) to a personal access token"
        )
    whole = Settings.from_env(settings.environ)
    config = whole.config.azure_devops
    return AzureDevOpsClient(
        http or httpx.AsyncClient(), token.reveal().strip(), url=config.url,
        timeout=config.timeout, settings=whole,
        max_artifact_bytes=ArtifactLimits.from_settings(whole).max_download_bytes,
    )
