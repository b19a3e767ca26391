"""GitLab's API client: one object that is both Herald's `CIClient` and its `Forge`.

GitLab is where the pipeline ran and where the merge request is reviewed, so one client
reads pipelines, jobs, child pipelines, test reports and artifacts, and writes the `herald`
commit status and the sticky merge request note. It works with gitlab.com and self-managed
instances (`HERALD_GITLAB_URL`), authenticating with a project, group or personal access
token of scope `api` (`HERALD_GITLAB_TOKEN` or `HERALD_GITLAB_TOKEN_FILE`).

Sources of truth. GitLab parses the JUnit files a job declares under
`artifacts:reports:junit` itself, and serves the result as the pipeline's test report.
Herald takes those results from there (`native_results`, parent and child pipelines), and
`list_artifacts` offers for parsing only the archives of jobs that have no JUnit report,
so the same file is never counted twice. Every job archive, parsed or not, is linked from
the note.

Child pipelines. A pipeline's bridges (trigger jobs) name their downstream pipelines; the
tree is walked to `MAX_DEPTH` levels so a parent's report covers its children. The hook of
a child pipeline (`source: parent_pipeline`) is reported as its parent, so parent and child
hooks converge on one report.

API: https://docs.gitlab.com/api/pipelines/, /api/jobs/, /api/job_artifacts/,
/api/commits/#set-the-pipeline-status-of-a-commit, /api/notes/, /api/emoji_reactions/,
/api/members/, /api/merge_requests/, /api/repository_files/ (HEAD: `.herald.yml`'s blob id)
and /api/repositories/ (the raw blob).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import httpx
import structlog

from bot import sticky
from bot.artifacts import ArtifactLimits
from bot.events import Comment, RunRef
from bot.forges import latest_per_key
from bot.repo_config import DEFAULT_OPTIONS, CommentMode, PublishOptions
from bot.reports import render_markdown, run_title
from bot.reports.budget import one_line as clip
from bot.reports.markdown import md_link, md_text
from bot.results.model import RunStatus, TestRun, format_size
from bot.settings import ProviderSettings, Settings
from providers.base import (
    Build,
    Change,
    Job,
    NotConfigured,
    PermanentError,
    Published,
    RemoteArtifact,
    RepoFile,
    ReportOrigin,
    Rerun,
)
from providers.gitlab import notes
from providers.gitlab.api import (
    GitLabAPI,
    NotFound,
    encode_id,
)
from providers.gitlab.testreport import to_test_run
from providers.http import ClientError
from providers.writes import append_once, post_unless_said

log = structlog.get_logger(__name__)

NAME: Final = "gitlab"
DEFAULT_URL: Final = "https://gitlab.com"
#: The commit status Herald owns on every pipeline it reports.
STATUS_NAME: Final = notes.STATUS_NAME
#: GitLab keeps at most this many characters of a commit status description.
DESCRIPTION_LIMIT: Final = 255
#: Said after the description of a failing run's status that `fail_on: nothing` keeps
#: `success`.
NOT_GATING: Final = " (not gating: fail_on is nothing)"
DEVELOPER: Final = 30
RETEST_POLICY: Final = (
    "Only project members with the Developer role or higher can ask for a retest."
)
ACK_EMOJI: Final = "eyes"
#: Child pipelines deeper than this, or more pipelines than this in one tree, are left out.
MAX_DEPTH: Final = 3
MAX_PIPELINES: Final = 25
#: A pipeline tree fetched by `get_build` is reused by the calls of the same job.
TREE_TTL_SECONDS: Final = 120.0
TREE_CACHE_SIZE: Final = 64
#: Merge requests one pipeline's report goes to (a commit can be in several).
MAX_MERGE_REQUESTS: Final = 5
#: Links in the note's pipeline section; the rest are counted.
MAX_LINKS: Final = 50
FINAL_STATUSES: Final = frozenset({"success", "failed", "canceled", "skipped", "manual"})
_MR_REF = re.compile(r"^refs/merge-requests/(\d+)/")


# ---- the pipeline tree --------------------------------------------------------------------


@dataclass(slots=True)
class PipelineNode:
    project: int | str
    pipeline: dict[str, Any]
    jobs: list[dict[str, Any]]
    bridges: list[dict[str, Any]]
    label: str = ""  # "" for the root, the bridge (trigger job) names down to a child
    depth: int = 0

    @property
    def id(self) -> int:
        return int(self.pipeline["id"])

    @property
    def web_url(self) -> str | None:
        url = self.pipeline.get("web_url")
        return url if isinstance(url, str) else None

    def job_name(self, job: dict[str, Any]) -> str:
        name = str(job.get("name") or f"job {job.get('id')}")
        return f"{self.label} / {name}" if self.label else name


@dataclass(slots=True)
class PipelineTree:
    root: PipelineNode
    nodes: list[PipelineNode] = field(default_factory=list)  # root first, breadth-first
    fetched_at: float = 0.0

    def failed_jobs(self) -> list[tuple[PipelineNode, dict[str, Any]]]:
        return [(n, j) for n in self.nodes for j in n.jobs if j.get("status") == "failed"]


def _job_failed(job: dict[str, Any]) -> bool:
    return job.get("status") == "failed" and not job.get("allow_failure")


def _project_web_url(*urls: Any) -> str | None:
    """`https://host/group/project` from a pipeline or job URL (`…/-/pipelines/1`)."""
    for url in urls:
        if isinstance(url, str) and "/-/" in url:
            return url.split("/-/", 1)[0]
    return None


def _has_junit_report(job: dict[str, Any]) -> bool:
    return any(
        isinstance(a, dict) and a.get("file_type") == "junit" for a in job.get("artifacts") or []
    )


def _archive(job: dict[str, Any]) -> dict[str, Any] | None:
    for entry in job.get("artifacts") or []:
        if isinstance(entry, dict) and entry.get("file_type") == "archive":
            return entry
    return None


def _expired(job: dict[str, Any], now: datetime) -> bool:
    expires = job.get("artifacts_expire_at")
    if not isinstance(expires, str):
        return False
    try:
        return datetime.fromisoformat(expires.replace("Z", "+00:00")) <= now
    except ValueError:
        return False


def commit_state(run: TestRun, origin: ReportOrigin) -> str:
    """The `herald` status: what the tests say; the run's own fate when none ran."""
    status = run.overall_status()
    if status in (RunStatus.FAILED, RunStatus.ERROR):
        return "failed"
    if status is RunStatus.CANCELLED:
        return "canceled"
    if status is RunStatus.RUNNING or (origin.ci == NAME and origin.run.status
                                       not in FINAL_STATUSES):
        return "running"
    if status is RunStatus.NO_TESTS and origin.failed:
        return "failed"
    # GitLab has no neutral state: passing tests beside a report that could not be read
    # are not a success, since the unread file may have held the failure.
    if run.errors:
        return "failed"
    return "success"


# ---- the client ---------------------------------------------------------------------------


class GitLabClient:
    """`CIClient` and `Forge` for one GitLab instance."""

    retest_policy: str = RETEST_POLICY

    def __init__(self, api: GitLabAPI, *, max_artifact_bytes: int) -> None:
        self.api = api
        self.max_artifact_bytes = max_artifact_bytes
        self._trees: OrderedDict[tuple[str, int], PipelineTree] = OrderedDict()
        self._me: int | None = None
        self._note_locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self.api.aclose()

    # ---- coordinates --------------------------------------------------------------------

    @staticmethod
    def _project(ref: RunRef) -> int | str:
        project_id = ref.extra.get("project_id")
        return project_id if isinstance(project_id, int) else ref.repo

    @classmethod
    def _target(cls, ref: RunRef) -> tuple[int | str, int]:
        """The pipeline to report for `ref`: itself, or its parent for a child pipeline."""
        project = cls._project(ref)
        parent = ref.extra.get("parent_pipeline")
        if ref.extra.get("source") == "parent_pipeline" and isinstance(parent, dict):
            parent_id = parent.get("pipeline_id")
            if isinstance(parent_id, int):
                parent_project = parent.get("project_id")
                return (parent_project if isinstance(parent_project, int) else project, parent_id)
        try:
            return project, int(ref.run_id)
        except ValueError:
            raise PermanentError(f"not a GitLab pipeline id: {ref.run_id!r}") from None

    # ---- the pipeline tree --------------------------------------------------------------

    async def _node(
        self, project: int | str, pipeline_id: int, label: str, depth: int
    ) -> PipelineNode:
        base = f"/projects/{encode_id(project)}/pipelines/{pipeline_id}"
        where = f"pipeline {pipeline_id} of {project}"
        pipeline, jobs, bridges = await asyncio.gather(
            self.api.get(f"read {where}", base),
            # include_retried=false: only the latest attempt of each job.
            self.api.list(
                f"list the jobs of {where}", f"{base}/jobs", {"include_retried": "false"}
            ),
            self.api.list(f"list the trigger jobs of {where}", f"{base}/bridges"),
        )
        if not isinstance(pipeline, dict):
            raise PermanentError(f"read {where}: GitLab sent no pipeline")
        return PipelineNode(project, pipeline, jobs, bridges, label, depth)

    async def _fetch_tree(self, project: int | str, pipeline_id: int) -> PipelineTree:
        root = await self._node(project, pipeline_id, "", 0)
        tree = PipelineTree(root, [root], time.monotonic())
        seen = {(str(project), pipeline_id)}
        frontier = [root]
        while frontier:
            pending = []
            for node in frontier:
                if node.depth >= MAX_DEPTH:
                    continue
                for bridge in node.bridges:
                    downstream = bridge.get("downstream_pipeline")
                    if not isinstance(downstream, dict) or not isinstance(
                        downstream.get("id"), int
                    ):
                        continue
                    child_project = downstream.get("project_id")
                    child_project = (
                        child_project if isinstance(child_project, int) else node.project
                    )
                    key = (str(child_project), int(downstream["id"]))
                    if key in seen or len(seen) >= MAX_PIPELINES:
                        continue
                    seen.add(key)
                    name = str(bridge.get("name") or f"pipeline {downstream['id']}")
                    label = f"{node.label} / {name}" if node.label else name
                    pending.append(
                        self._node(child_project, int(downstream["id"]), label, node.depth + 1)
                    )
            frontier = list(await asyncio.gather(*pending))
            tree.nodes.extend(frontier)
        return tree

    async def _tree(self, ref: RunRef, *, fresh: bool = False) -> PipelineTree:
        project, pipeline_id = self._target(ref)
        key = (str(project), pipeline_id)
        cached = self._trees.get(key)
        if cached and not fresh and time.monotonic() - cached.fetched_at < TREE_TTL_SECONDS:
            return cached
        tree = await self._fetch_tree(project, pipeline_id)
        self._trees[key] = tree
        self._trees.move_to_end(key)
        while len(self._trees) > TREE_CACHE_SIZE:
            self._trees.popitem(last=False)
        return tree

    # ---- CIClient -----------------------------------------------------------------------

    async def get_build(self, ref: RunRef) -> Build:
        tree = await self._tree(ref, fresh=True)
        root = tree.root
        pipeline = root.pipeline
        sha = str(pipeline.get("sha") or ref.sha or "")
        branch = pipeline.get("ref") if isinstance(pipeline.get("ref"), str) else ref.branch
        changes = await self._changes(root.project, ref, sha, branch)
        status = str(pipeline.get("status") or ref.status or "unknown")
        jobs = [
            Job(
                id=str(job.get("id")),
                name=node.job_name(job),
                status=str(job.get("status")),
                failed=_job_failed(job),
                url=job.get("web_url") if isinstance(job.get("web_url"), str) else None,
            )
            for node in tree.nodes
            for job in node.jobs
        ]
        same_pipeline = str(root.id) == ref.run_id
        target = RunRef(
            provider=NAME,
            repo=ref.repo,
            run_id=str(root.id),
            sha=sha or None,
            branch=branch,
            change=changes[0] if changes else None,
            url=root.web_url or (ref.url if same_pipeline else None),
            status=status,
            extra={
                **ref.extra,
                "project_id": root.project
                if isinstance(root.project, int)
                else ref.extra.get("project_id"),
                "project_web_url": _project_web_url(root.web_url)
                or ref.extra.get("project_web_url"),
                "source": pipeline.get("source"),
                "parent_pipeline": None,  # the report is always about this pipeline
            },
        )
        return Build(
            ref=target,
            status=status,
            failed=status == "failed",
            url=target.url,
            name=pipeline.get("name") if isinstance(pipeline.get("name"), str) else None,
            jobs=jobs,
            changes=changes,
            sha=sha or None,
        )

    async def _changes(
        self, project: int | str, ref: RunRef, sha: str, branch: str | None
    ) -> list[int]:
        """The open merge requests this pipeline's results belong on."""
        if ref.change is not None:
            return [ref.change]
        match = _MR_REF.match(branch or "")
        if match:
            return [int(match.group(1))]
        if not sha:
            return []
        base = f"/projects/{encode_id(project)}"
        try:
            found = await self.api.list(
                f"list the merge requests of commit {sha[:12]}",
                f"{base}/repository/commits/{sha}/merge_requests",
                limit=100,
            )
        except NotFound:
            found = []
        if not found and branch:
            found = await self.api.list(
                f"list the open merge requests of branch {branch}",
                f"{base}/merge_requests",
                {"source_branch": branch, "state": "opened"},
                limit=100,
            )
        # Only where this commit is still the head: an old pipeline's results do not
        # belong on a merge request that has moved on.
        iids = [
            int(mr["iid"])
            for mr in found
            if mr.get("state") == "opened"
            and mr.get("sha") == sha
            and isinstance(mr.get("iid"), int)
        ]
        return sorted(set(iids))[:MAX_MERGE_REQUESTS]

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        """Archives of the jobs whose results GitLab did not parse itself (see the module
        docstring); the archives of jobs with a JUnit report are left to the test report."""
        tree = await self._tree(ref)
        return [artifact for artifact, parse in self._archives(tree) if parse]

    def _archives(self, tree: PipelineTree) -> list[tuple[RemoteArtifact, bool]]:
        now = datetime.now(UTC)
        found = []
        for node in tree.nodes:
            for job in node.jobs:
                archive = _archive(job)
                if archive is None or _expired(job, now) or not isinstance(job.get("id"), int):
                    continue
                web = _project_web_url(job.get("web_url"), node.web_url)
                url = f"{web}/-/jobs/{job['id']}/artifacts/browse" if web else None
                size = archive.get("size")
                parse = not _has_junit_report(job)
                artifact = RemoteArtifact(
                    id=str(job["id"]),
                    name=node.job_name(job),
                    size=size if isinstance(size, int) else None,
                    url=url,
                    extra={
                        "project_id": node.project,
                        "job_id": job["id"],
                        "pipeline_id": node.id,
                        "parse": parse,
                    },
                )
                found.append((artifact, parse))
        return found

    async def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        project = artifact.extra.get("project_id", self._project(ref))
        job_id = artifact.extra.get("job_id", artifact.id)
        if not isinstance(project, int | str) or not str(job_id).isdigit():
            raise PermanentError(f"artifact {artifact.name!r} has no GitLab job coordinates")
        path = f"/projects/{encode_id(project)}/jobs/{int(job_id)}/artifacts"
        async for chunk in self.api.stream(
            f"download the artifacts of job {artifact.name!r} ({job_id})",
            path,
            self.max_artifact_bytes,
        ):
            yield chunk

    async def native_results(self, ref: RunRef) -> TestRun | None:
        tree = await self._tree(ref)
        runs = await asyncio.gather(*(self._test_report(node) for node in tree.nodes))
        found = [run for run in runs if run is not None]
        if not found:
            return None
        merged = TestRun(id=str(tree.root.id), url=tree.root.web_url)
        for run in found:
            merged.suites.extend(run.suites)
            merged.errors.extend(run.errors)
        return merged

    async def _test_report(self, node: PipelineNode) -> TestRun | None:
        path = f"/projects/{encode_id(node.project)}/pipelines/{node.id}/test_report"
        try:
            report = await self.api.get_json_capped(
                f"read the test report of pipeline {node.id}", path
            )
        except NotFound:
            return None
        if not isinstance(report, dict):
            return None
        run = to_test_run(
            report,
            run_id=str(node.id),
            label=node.label,
            source=f"GitLab test report of pipeline {node.id}",
            job_urls={
                str(job["name"]): str(job["web_url"])
                for job in node.jobs
                if isinstance(job.get("name"), str) and isinstance(job.get("web_url"), str)
            },
        )
        return run if any(suite.cases for suite in run.suites) or run.errors else None

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        tree = await self._tree(ref, fresh=True)
        root = tree.root
        if not failed_only:
            return await self._new_pipeline(root, ref)

        # GitLab's pipeline retry reruns failed and canceled jobs, trigger jobs included
        # (which start fresh child pipelines). So: retry the root when it has failed jobs
        # of its own; otherwise retry each failed child pipeline in place.
        def retryable(job: dict[str, Any]) -> bool:
            return job.get("status") in ("failed", "canceled")

        if any(retryable(job) for job in root.jobs):
            targets = [root]
        else:
            targets = [node for node in tree.nodes[1:] if any(retryable(j) for j in node.jobs)]
        runs = []
        for node in targets:
            await self._retry_once(node)
            runs.append(str(node.id))
        self._trees.pop((str(root.project), root.id), None)
        jobs = [node.job_name(job) for node, job in tree.failed_jobs()]
        return Rerun(runs=runs, jobs=list(dict.fromkeys(jobs)))

    async def _retry_once(self, node: PipelineNode) -> None:
        """Retry a pipeline; after a lost answer, only if it has not started again."""
        path = f"/projects/{encode_id(node.project)}/pipelines/{node.id}"

        async def restarted() -> dict[str, Any] | None:
            pipeline = await self.api.get(f"read pipeline {node.id}", path)
            # GitLab moves a retried pipeline to pending or running at once.
            started = isinstance(pipeline, dict) and pipeline.get("status") not in (
                "failed",
                "canceled",
            )
            return pipeline if started else None

        await append_once(
            lambda: self.api.post(f"retry pipeline {node.id}", f"{path}/retry", idempotent=False),
            restarted,
        )

    async def _new_pipeline(self, root: PipelineNode, ref: RunRef) -> Rerun:
        # Not resent after a lost answer: a new pipeline cannot be told apart from one
        # somebody else started on the same ref.
        base = f"/projects/{encode_id(root.project)}"
        if root.pipeline.get("source") == "merge_request_event" and ref.change is not None:
            created = await self.api.post(
                f"start a pipeline for merge request !{ref.change}",
                f"{base}/merge_requests/{ref.change}/pipelines",
                idempotent=False,
            )
        else:
            branch = root.pipeline.get("ref") or ref.branch
            if not branch:
                raise PermanentError(f"pipeline {root.id} names no ref to run again")
            created = await self.api.post(
                f"start a pipeline on {branch}",
                f"{base}/pipeline",
                {"ref": branch},
                idempotent=False,
            )
        return Rerun(runs=[str(created.get("id"))] if isinstance(created, dict) else [])

    # ---- Forge: publishing ----------------------------------------------------------------

    # ---- the change and the origin of a run ---------------------------------------------

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        target = build.ref if build is not None else ref
        sha = (build.sha if build is not None else None) or target.sha or ref.sha
        if not sha:
            raise PermanentError(f"pipeline {target.run_id} has no commit")
        numbers = build.changes if build is not None else []
        if not numbers and target.change:
            numbers = [target.change]
        project = self._project(target)
        return Change(forge=NAME, repo=ref.repo, sha=sha,
                      numbers=tuple(dict.fromkeys(numbers)),
                      extra={"project_id": project} if isinstance(project, int) else {})

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        target = build.ref if build is not None else ref
        if build is None:
            # A child pipeline's report is its parent's: give up on the parent's status.
            project, pipeline_id = self._target(ref)
            target = RunRef(
                provider=NAME, repo=ref.repo, run_id=str(pipeline_id), sha=ref.sha,
                branch=ref.branch, url=ref.url, status=ref.status,
                extra={**ref.extra, "project_id": project},
            )
        try:
            sequence = int(target.run_id)
        except ValueError:
            sequence = 0
        return ReportOrigin(
            run=target,
            name=build.name if build is not None else None,
            sequence=sequence,
            number=target.run_id,
            url=(build.url if build is not None else None) or target.url,
            failed=build.failed if build is not None else False,
        )

    # ---- ForgeTarget: reports ------------------------------------------------------------

    async def publish(
        self, change: Change, origin: ReportOrigin, run: TestRun,
        options: PublishOptions = DEFAULT_OPTIONS,
    ) -> Published:
        target = origin.run
        own = origin.ci == NAME
        project = change.extra.get("project_id") or change.repo
        plan = sticky.comment_plan(options, run, habit=CommentMode.ALWAYS)
        tree = await self._tree(target) if own and plan is not None else None
        status_id = None
        if options.check:
            state = commit_state(run, origin)
            description = run_title(run)
            if not options.gate and state == "failed":
                # `fail_on: nothing`: GitLab has no neutral state, and a `failed` status
                # fails the pipeline's view and merge checks, so it is `success`, and its
                # description says that failures were not gating.
                state = "success"
                description += NOT_GATING
            if options.notices:
                # The status is the one line a reviewer sees first: a broken file is
                # named there too, after the results.
                description += ". " + options.notices[0]
            status_id = await self._set_status(
                project, change, origin, state, description, origin.url
            )
        comment_id: str | None = None
        created = False
        if plan is not None:
            linked = {a.url for a in run.artifacts if a.url}
            numbers = change.numbers
            if not change.numbers_known:
                numbers = tuple(await self._changes(project, target, change.sha, target.branch))
            for iid in numbers:
                body = self._note_body(run, origin, tree, linked, options.notices,
                                       room=sticky.RESULT_MARK_ROOM if plan.result else 0)
                note_id, made = await self._upsert_note(project, iid, origin, body, plan)
                comment_id = comment_id or note_id
                created = created or made
        return Published(status_id=status_id, comment_id=comment_id, created=created)

    # ---- RepoFiles: `.herald.yml` ---------------------------------------------------------

    async def find_file(self, change: Change, path: str) -> RepoFile | None:
        """HEAD of the repository files API: the blob id and size in `X-Gitlab-*` headers,
        no content. https://docs.gitlab.com/api/repository_files/"""
        project = change.extra.get("project_id") or change.repo
        try:
            headers = await self.api.head(
                f"look for {path} at {change.sha[:12]}",
                f"/projects/{encode_id(project)}/repository/files/{quote(path, safe='')}",
                {"ref": change.sha},
            )
        except NotFound:
            return None
        blob = headers.get("x-gitlab-blob-id")
        if not blob:
            raise PermanentError(f"GitLab named no blob id for {path} at {change.sha[:12]}")
        size = headers.get("x-gitlab-size", "")
        return RepoFile(repo=str(project), blob=blob, size=int(size) if size.isdigit() else None)

    async def find_default_file(self, change: Change, path: str) -> RepoFile | None:
        """GitLab has no organisation-wide repository of defaults: none."""
        return None

    async def read_file(self, change: Change, file: RepoFile, *, max_bytes: int) -> bytes:
        """The raw blob, size-capped: https://docs.gitlab.com/api/repositories/"""
        data = bytearray()
        async for chunk in self.api.stream(
            f"read blob {file.blob[:12]}",
            f"/projects/{encode_id(file.repo)}/repository/blobs/{file.blob}/raw",
            max_bytes,
        ):
            data += chunk
        return bytes(data)

    async def publish_error(self, change: Change, origin: ReportOrigin, message: str) -> None:
        """A failed status saying what went wrong, on the run's commit."""
        project = change.extra.get("project_id") or change.repo
        await self._set_status(project, change, origin, "failed", message, origin.url)

    async def _set_status(
        self, project: int | str, change: Change, origin: ReportOrigin, state: str,
        description: str, url: str | None,
    ) -> str | None:
        """Post our status unless the latest one already says exactly this: a redelivery
        must not stack up identical statuses, nor a POST whose answer was lost (it is looked
        for the same way before it is sent again). A GitLab pipeline's is `herald`, on the
        pipeline; another CI system's is `herald (<ci>: <name>)`, on the commit."""
        sha = change.sha
        target = origin.run
        description = clip(description, DESCRIPTION_LIMIT)
        base = f"/projects/{encode_id(project)}"
        name = notes.status_name(origin)
        query: dict[str, Any] = {"name": name}
        if target.branch:
            query["ref"] = target.branch
        pipeline_id = int(target.run_id) if origin.ci == NAME else None

        def ours(status: dict[str, Any]) -> bool:
            return status.get("name") == name and status.get("pipeline_id") in (
                None,
                pipeline_id,
            )

        async def latest() -> dict[str, Any] | None:
            return await self.api.find(
                f"read the statuses of commit {sha[:12]}",
                f"{base}/repository/commits/{sha}/statuses",
                query,
                ours,
            )

        def says_this(status: dict[str, Any]) -> bool:
            return (
                status.get("status"),
                status.get("description"),
                status.get("target_url"),
            ) == (state, description, url)

        body: dict[str, Any] = {"state": state, "name": name, "description": description}
        if pipeline_id is not None:
            body["pipeline_id"] = pipeline_id
        if url:
            body["target_url"] = url
        if target.branch:
            body["ref"] = target.branch
        try:
            posted = await post_unless_said(
                latest,
                says_this,
                lambda: self.api.post(
                    f"set the {name} status on {sha[:12]}",
                    f"{base}/statuses/{sha}",
                    body,
                    idempotent=False,
                ),
            )
        except ClientError as exc:
            # GitLab answers 400 "Cannot transition status via :run from :running" when
            # the status is already in that state: the goal is met.
            if exc.status == 400 and "Cannot transition status" in exc.detail:
                current = await latest()
                return str(current.get("id")) if current else None
            raise
        return str(posted.get("id")) if isinstance(posted, dict) else None

    def _note_body(
        self, run: TestRun, origin: ReportOrigin, tree: PipelineTree | None, linked: set[str],
        notices: tuple[str, ...] = (), *, room: int = 0,
    ) -> str:
        """`room`: characters left free at the end (`sticky.result_mark`)."""
        head = f"{notes.report_marker(origin)}\n{notes.pipeline_marker(origin.sequence)}\n"
        tail = self._pipeline_section(origin, tree, linked) if tree is not None else ""

        def render(budget: int) -> str:
            left = max(0, budget - len(head) - len(tail))
            # Level 2: a note's title should not outshout the merge request's own.
            report = render_markdown(run, budget=left, details_url=origin.url,
                                     heading_level=2, notices=notices)
            return head + report + tail

        return notes.fit(render, notes.NOTE_LIMIT - room)

    def _pipeline_section(
        self, origin: ReportOrigin, tree: PipelineTree, linked: set[str]
    ) -> str:
        """Links a reviewer wants next to the results: the pipeline, failed jobs, artifacts."""
        pipeline = md_link(f"Pipeline #{tree.root.id}", origin.url, limit=None)
        lines = ["", "---", f"{pipeline}: {md_text(origin.run.status or 'unknown')}"]
        failed = [
            (node.job_name(job), job.get("web_url"))
            for node in tree.nodes for job in node.jobs if _job_failed(job)
        ]
        if failed:
            links = [md_link(name, url if isinstance(url, str) else None)
                     for name, url in failed[:MAX_LINKS]]
            more = f" and {len(failed) - MAX_LINKS} more" if len(failed) > MAX_LINKS else ""
            lines.append(f"Failed jobs: {', '.join(links)}{more}")
        archives = [a for a, _parse in self._archives(tree) if a.url not in linked]
        if archives:
            links = [
                f"{md_link(a.name, a.url)} ({format_size(a.size)})" for a in archives[:MAX_LINKS]
            ]
            more = f" and {len(archives) - MAX_LINKS} more" if len(archives) > MAX_LINKS else ""
            lines.append(f"Job artifacts: {', '.join(links)}{more}")
        return "\n".join(lines) + "\n"

    async def _whoami(self) -> int:
        if self._me is None:
            user = await self.api.get("read the token's user", "/user")
            if not isinstance(user, dict) or not isinstance(user.get("id"), int):
                raise PermanentError("read the token's user: GitLab sent no user id")
            self._me = int(user["id"])
        return self._me

    async def _upsert_note(
        self, project: int | str, iid: int, origin: ReportOrigin, body: str,
        plan: sticky.CommentPlan,
    ) -> tuple[str | None, bool]:
        """Edit our report note on the merge request, or create it: never two of them.

        The handler's lock serialises one run's jobs; a per-merge-request lock here covers
        two pipelines reporting to one merge request from the same process, and a second
        look after creating removes a twin another process created at the same moment.
        """
        lock = self._note_locks.setdefault((str(project), iid), asyncio.Lock())
        async with lock:
            thread = _NoteThread(self, project, iid, await self._whoami())
            upserted = await sticky.upsert(
                thread,
                marker=notes.report_marker(origin),
                order=(origin.sequence,),
                order_of=_pipeline_order,
                render=lambda: body,
                start=plan.start,
                result=plan.result,
            )
        return upserted.id, upserted.created

    # ---- Forge: /retest -----------------------------------------------------------------

    @staticmethod
    def _comment_project(repo: str, comment: Comment) -> int | str:
        project_id = comment.extra.get("project_id")
        return project_id if isinstance(project_id, int) else repo

    async def can_retest(self, repo: str, comment: Comment) -> bool:
        """Developer or higher, inherited membership included (`members/all`)."""
        user_id = comment.extra.get("user_id")
        if not isinstance(user_id, int):
            log.warning("retest: the note names no user id; refusing", author=comment.author)
            return False
        project = self._comment_project(repo, comment)
        try:
            member = await self.api.get(
                f"read the membership of {comment.author} in {repo}",
                f"/projects/{encode_id(project)}/members/all/{user_id}",
            )
        except NotFound:
            return False
        if not isinstance(member, dict) or member.get("state") not in (None, "active"):
            return False
        level = member.get("access_level")
        return isinstance(level, int) and level >= DEVELOPER

    async def head_change(self, repo: str, comment: Comment) -> Change | None:
        project = self._comment_project(repo, comment)
        sha = comment.extra.get("last_commit_sha")
        if not isinstance(sha, str) or not sha:
            merge_request = await self.api.get(
                f"read merge request !{comment.change}",
                f"/projects/{encode_id(project)}/merge_requests/{comment.change}",
            )
            sha = merge_request.get("sha") if isinstance(merge_request, dict) else None
        if not isinstance(sha, str) or not sha:
            return None
        return Change(forge=NAME, repo=repo, sha=sha, numbers=(comment.change,),
                      extra={"project_id": project} if isinstance(project, int) else {})

    # ---- CISource: what /retest reruns ---------------------------------------------------

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        """The latest pipeline per ref for the merge request's head commit, if it failed."""
        if change.forge != NAME or not change.numbers:
            return []
        project = change.extra.get("project_id") or change.repo
        iid = change.numbers[0]
        pipelines = await self.api.list(
            f"list the pipelines of !{iid}",
            f"/projects/{encode_id(project)}/merge_requests/{iid}/pipelines",
            limit=200,
        )
        latest = latest_per_key(
            (p for p in pipelines if p.get("sha") == change.sha),
            key=lambda p: str(p.get("ref")),
            order=lambda p: int(p.get("id") or 0),
        )
        return [
            RunRef(
                provider=NAME,
                repo=change.repo,
                run_id=str(p["id"]),
                sha=change.sha,
                branch=p.get("ref") if isinstance(p.get("ref"), str) else None,
                change=iid,
                url=p.get("web_url") if isinstance(p.get("web_url"), str) else None,
                status="failed",
                extra={
                    "project_id": project if isinstance(project, int) else None,
                    "source": p.get("source"),
                    "name": f"pipeline #{p['id']}",
                },
            )
            for p in latest
            if p.get("status") == "failed"
        ]

    async def acknowledge(self, repo: str, comment: Comment) -> None:
        project = self._comment_project(repo, comment)
        path = (
            f"/projects/{encode_id(project)}/merge_requests/{comment.change}"
            f"/notes/{comment.id}/award_emoji"
        )
        try:
            # GitLab keeps one award of a name per user and refuses a second, so sending
            # it again after a lost answer cannot add another.
            await self.api.post(
                f"react to note {comment.id}", path, {"name": ACK_EMOJI}, idempotent=True
            )
        except ClientError as exc:
            # A redelivered comment: the reaction is there already, which is the point.
            # (GitLab says so with a 404 or a 400, in its own words.)
            if "already been taken" not in exc.detail:
                raise

    async def reply(self, repo: str, comment: Comment, body: str) -> None:
        """Answer `comment` once: the reply's hidden first line names the note it answers,
        by which it is found again if the answer to the POST is lost."""
        project = self._comment_project(repo, comment)
        path = f"/projects/{encode_id(project)}/merge_requests/{comment.change}/notes"
        marker = notes.reply_marker(comment.id)
        text = notes.neutralise(f"{marker}\n{body}", allow=(comment.author,))
        if len(text) > notes.NOTE_LIMIT:
            text = text[: notes.NOTE_LIMIT - len(notes.TRUNCATED)] + notes.TRUNCATED
        me = await self._whoami()

        def answers(note: dict[str, Any]) -> bool:
            author = note.get("author")
            return (
                isinstance(author, dict)
                and author.get("id") == me
                and str(note.get("body") or "").startswith(marker)
            )

        await append_once(
            lambda: self.api.post(
                f"reply on merge request !{comment.change}", path, {"body": text}, idempotent=False
            ),
            lambda: self.api.find("look for Herald's reply", path, {"sort": "asc"}, answers),
        )


# ---- construction -------------------------------------------------------------------------


def create_client(
    settings: ProviderSettings, http: httpx.AsyncClient | None = None
) -> GitLabClient:
    """The worker's GitLab client. python-gitlab brings its own `requests` session for the
    API; `http` (the worker's, or one of the client's own when None) carries the downloads.

    Raises `NotConfigured` without a token, `ConfigError` for a malformed setting.
    """
    token = settings.secret("token")
    if token is None or not token.reveal().strip():
        raise NotConfigured(
            "no GitLab token configured: set HERALD_GITLAB_TOKEN "
            "(or HERALD_GITLAB_TOKEN_FILE) to an access token with scope api"
        )
    # bounds (an http(s) URL, a timeout inside the job's) are checked by the schema
    whole = Settings.from_env(settings.environ)
    limits = ArtifactLimits.from_settings(whole)
    config = whole.config.gitlab
    api = GitLabAPI(
        config.url,
        token.reveal().strip(),
        timeout=config.timeout,
        workers=config.workers,
        http=http,
    )
    return GitLabClient(api, max_artifact_bytes=limits.max_download_bytes)


def _pipeline_order(body: str) -> tuple[int, ...] | None:
    pipeline = notes.reported_pipeline(body)
    return None if pipeline is None else (pipeline,)


class _NoteThread:
    """A merge request's notes as `bot.sticky` sees them: ours are the token user's own,
    not system notes, holding the marker."""

    def __init__(self, client: GitLabClient, project: int | str, iid: int, me: int) -> None:
        self._api = client.api
        self._iid = iid
        self._me = me
        self._path = f"/projects/{encode_id(project)}/merge_requests/{iid}/notes"

    def _ours(self, marker: str) -> Callable[[dict[str, Any]], bool]:
        def ours(note: dict[str, Any]) -> bool:
            author = note.get("author")
            return (
                isinstance(author, dict)
                and author.get("id") == self._me
                and not note.get("system")
                and marker in str(note.get("body") or "")
            )

        return ours

    async def ours(self, marker: str, *, first: bool = False) -> list[sticky.Posted]:
        query = {"sort": "asc", "order_by": "created_at"}
        if first:
            found = await self._api.find("look for Herald's note", self._path, query,
                                         self._ours(marker))
            listed = [found] if found else []
        else:
            notes_ = await self._api.list("list Herald's notes", self._path, query, limit=5000)
            listed = [n for n in notes_ if self._ours(marker)(n)]
        return [sticky.Posted(str(n["id"]), str(n.get("body") or "")) for n in listed]

    async def create(self, body: str) -> sticky.Posted:
        marker = body.split("\n", 1)[0]

        async def landed() -> dict[str, Any] | None:
            found = await self._api.find("look for Herald's note", self._path,
                                         {"sort": "asc", "order_by": "created_at"},
                                         self._ours(marker))
            return found if isinstance(found, dict) else None

        # After a lost answer, the note is looked for by its marker before posting.
        created = await append_once(
            lambda: self._api.post(
                f"comment on merge request !{self._iid}", self._path, {"body": body},
                idempotent=False,
            ),
            landed,
        )
        if not isinstance(created, dict) or "id" not in created:
            raise PermanentError(f"comment on merge request !{self._iid}: GitLab sent no note")
        return sticky.Posted(str(created["id"]), str(created.get("body") or ""))

    async def edit(self, comment_id: str, body: str) -> None:
        await self._api.put(f"update note {comment_id} on !{self._iid}",
                            f"{self._path}/{comment_id}", {"body": body})

    async def delete(self, comment_id: str) -> None:
        try:
            await self._api.delete(f"delete duplicate note {comment_id} on !{self._iid}",
                                   f"{self._path}/{comment_id}")
        except NotFound:
            pass  # the other process removed it first
