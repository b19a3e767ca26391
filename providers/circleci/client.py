"""CircleCI as a CI source: workflows, their jobs, each job's stored test results and
artifacts, and reruns from failed, read with a personal API token (API v2); the report goes
to the forge that holds the pipeline's code.

CircleCI is not a forge. The change a workflow is for comes from its pipeline: `vcs`
(`target_repository_url`, `revision`) for GitHub OAuth and Bitbucket Cloud projects,
`trigger_parameters` (`git.checkout_sha`, the GitHub App's or GitLab's repository URL) for
the others. The repository is the target's, not the origin's: a pull request from a fork
is reviewed, and reported, on the repository it is opened against. CircleCI's webhooks and
pipelines carry no pull request number that holds for every kind of project, so the forge
finds the open pull requests whose head is the commit (`Change.numbers_known=False`).

Every API request goes to `HERALD_CIRCLECI_API_URL`; paths are built from the workflow id
(a UUID), the project slug and job numbers, never taken from a webhook. Artifacts are
served from another host (`output.circle-artifacts.com`), which needs the token for a
private project: downloads start only on the hosts of `HERALD_CIRCLECI_ARTIFACT_HOSTS`,
with the API's scheme, and the shared HTTP layer drops the token on any hop elsewhere.

Results. A job's results are its stored test results (`store_test_results`), read page by
page (`providers.circleci.testmetadata` says what that could hide). A job that stored none
has its artifacts read instead, those whose path matches `HERALD_CIRCLECI_ARTIFACT_PATTERNS`:
never both for one job, which would count every test twice. Artifacts are named
`<job>[<node>]/<path>` (which the report handler matches against the patterns too): the
nodes of a parallel job upload files of the same path, and those are different results,
not attempts of one (`CISource.list_artifacts`). A failed job
whose results hold no failure is one error case in the report, never a green job; for a
job read from its artifacts that is decided after they are read (`account_for_failures`).

Rerun. `/retest` reruns the workflow from failed (`POST /workflow/{id}/rerun`), which
makes a new workflow of the same name in the same pipeline; its report is a new origin of
that name, ordered by the workflow's creation time. A rerun is never sent twice: the
pipeline's workflows are read first (an earlier request's rerun is there), and again after
a lost answer. CircleCI's refusals ("Rerun requests are disabled", "Rerun limit reached")
are the user's answer. Project slugs of GitHub App and GitLab projects
(`circleci/<org-id>/<project-id>`) cannot be derived from the repository, so `/retest`
asks about the workflows Herald recorded reporting on the commit
(`bot.ports.ReportedRunsSource`).

API: https://circleci.com/docs/api/v2/ (workflow, job, pipeline, tests, artifacts).
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

import httpx

from bot.artifacts import ArtifactLimits, artifact_patterns, matches
from bot.config import allowed_hosts
from bot.events import RunRef
from bot.forges import forge_of_url, latest_per_key
from bot.results.compact import CaseList
from bot.results.model import Origin, ParseError, Suite, TestCase, TestRun
from bot.settings import ProviderSettings, Settings
from providers.base import (
    Build,
    Change,
    Job,
    PermanentError,
    RemoteArtifact,
    ReportOrigin,
    Rerun,
    require_settings,
)
from providers.circleci import testmetadata
from providers.http import HttpSession, NotFound, SessionClient, streamed_session
from providers.signatures import dig
from providers.writes import append_once

NAME: Final = "circleci"
LABEL: Final = "CircleCI"
#: The whole token is one scope: CircleCI's rate limits are per token.
SCOPE: Final = "token"
TOKEN_HEADER: Final = "Circle-Token"  # noqa: S105 (a header name, not a secret)
#: Workflow states that mean it failed (`failing`: still running, a job failed).
FAILED_WORKFLOW: Final = frozenset({"failed", "error", "failing", "canceled", "unauthorized"})
#: Workflow states of one still going: nothing to rerun yet.
RUNNING_WORKFLOW: Final = frozenset({"running", "on_hold", "failing", "not_run"})
#: Job states that mean it failed.
FAILED_JOB: Final = frozenset(
    {"failed", "infrastructure_fail", "timedout", "terminated-unknown", "unauthorized",
     "canceled"}
)
#: One JSON page is read up to this size.
MAX_PAGE_BYTES: Final = 16 * 1024 * 1024
#: Pages of one list before Herald stops (a server that never ends a list).
MAX_PAGES: Final = 10_000
WORKFLOWS_CACHED: Final = 64
#: Results read by `list_artifacts` and not yet taken by `native_results` (a job that
#: stopped in between); each may be large, so few are held.
RESULTS_HELD: Final = 4
_VCS_PATHS: Final = {"gh": "github", "bb": "bitbucket"}


def workflow_id(value: str) -> str:
    """A workflow or pipeline id as CircleCI writes it (a UUID), or `PermanentError`: it
    goes into a path, and a webhook's text must not choose another endpoint."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise PermanentError(f"not a CircleCI id: {value!r}") from None


def slug_path(slug: str) -> str:
    """`gh/org/repo` → `gh/org/repo`, each part URL-encoded; anything else is refused."""
    parts = slug.split("/")
    if len(parts) != 3 or any(p in ("", ".", "..") for p in parts):
        raise PermanentError(f"not a CircleCI project slug: {slug!r}")
    return "/".join(quote(part, safe="") for part in parts)


def created(data: Mapping[str, Any]) -> datetime | None:
    value = data.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def checkout(pipeline: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(repository URL, commit) of a pipeline: the target repository's URL, whichever
    kind of project it is (see the module docstring)."""
    vcs = pipeline.get("vcs")
    triggers = pipeline.get("trigger_parameters")
    urls = [
        dig(vcs, "target_repository_url"),
        dig(vcs, "origin_repository_url"),
        dig(triggers, "github_app", "repo_url"),
        dig(triggers, "github_app", "web_url"),
        dig(triggers, "gitlab", "web_url"),
        dig(triggers, "git", "repo_url"),
        dig(triggers, "git", "checkout_url"),
    ]
    shas = [
        dig(vcs, "revision"),
        dig(triggers, "git", "checkout_sha"),
        dig(triggers, "github_app", "checkout_sha"),
        dig(triggers, "gitlab", "checkout_sha"),
    ]
    # The first URL given, never a later one: when the target's host is no configured
    # forge, the fork (origin) must not be reported on instead.
    url = next((u for u in map(_text, urls) if u), None)
    sha = next((s for s in map(_text, shas) if s), None)
    return url, sha


class CircleCIClient(SessionClient):
    """`CISource` (and `ReportedRunsSource`) for CircleCI's API v2."""

    def __init__(
        self,
        session: HttpSession,
        *,
        token: str,
        settings: Settings,
        max_artifact_bytes: int,
        artifact_origins: Sequence[str],
        owns_http: bool = False,
    ) -> None:
        super().__init__(session, settings=settings, max_artifact_bytes=max_artifact_bytes,
                         owns_http=owns_http)
        self.artifact_origins = tuple(artifact_origins)
        self._auth = {TOKEN_HEADER: token, "Accept": "application/json"}
        self._workflows: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._jobs: dict[str, list[dict[str, Any]]] = {}
        #: workflow id -> (results, job numbers that stored no test results, the failure
        #: case of each of those that failed)
        self._results: dict[str, tuple[TestRun, frozenset[int], dict[int, TestCase]]] = {}
        #: workflow id -> jobs whose artifacts `list_artifacts` handed out
        self._listed: OrderedDict[str, frozenset[int]] = OrderedDict()
        #: workflow id -> failure cases of failed jobs whose artifacts are read: added by
        #: `account_for_failures` only if those artifacts hold no failure
        self._deferred: OrderedDict[str, list[TestCase]] = OrderedDict()



    @property
    def app_url(self) -> str:
        """Where people open workflows: app.circleci.com for circleci.com, the server's
        own host for CircleCI server."""
        parts = urlsplit(self.base_url)
        if (parts.hostname or "").lower() == "circleci.com":
            return "https://app.circleci.com"
        return f"{parts.scheme}://{parts.netloc}"

    def workflow_url(self, slug: str, pipeline_number: Any, workflow: str) -> str:
        vcs, _, rest = slug.partition("/")
        project = f"{_VCS_PATHS.get(vcs, vcs)}/{rest}"
        if isinstance(pipeline_number, int) and not isinstance(pipeline_number, bool):
            return f"{self.app_url}/pipelines/{project}/{pipeline_number}/workflows/{workflow}"
        return f"{self.app_url}/pipelines/{project}/workflows/{workflow}"

    # ---- reading ------------------------------------------------------------------------

    async def _json(self, path: str, what: str, query: Mapping[str, str] | None = None
                    ) -> dict[str, Any]:
        url = f"{self.base_url}{path}" + (f"?{urlencode(query)}" if query else "")
        data = await self.session.download_json(
            url, what=what, max_bytes=MAX_PAGE_BYTES, headers=self._auth, scope=SCOPE
        )
        if not isinstance(data, dict):
            raise PermanentError(f"{what}: CircleCI sent no object")
        return data

    async def _pages(self, path: str, what: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The items of a paged list, one page at a time (`next_page_token`)."""
        token: str | None = None
        for _ in range(MAX_PAGES):
            page = await self._json(path, what, {"page-token": token} if token else None)
            items = page.get("items")
            if not isinstance(items, list):
                raise PermanentError(f"{what}: CircleCI sent no items")
            yield [item for item in items if isinstance(item, dict)]
            following = page.get("next_page_token")
            if not isinstance(following, str) or not following or following == token:
                return
            token = following
        raise PermanentError(f"{what}: more than {MAX_PAGES} pages")

    async def _workflow(self, workflow: str, *, fresh: bool = False) -> dict[str, Any]:
        key = workflow_id(workflow)
        cached = self._workflows.get(key)
        if cached is not None and not fresh:
            return cached
        data = await self._json(f"/workflow/{key}", f"read workflow {key}")
        if fresh:
            self._jobs.pop(key, None)  # a workflow read afresh has its jobs read afresh
        self._workflows[key] = data
        self._workflows.move_to_end(key)
        while len(self._workflows) > WORKFLOWS_CACHED:
            dropped, _ = self._workflows.popitem(last=False)
            self._jobs.pop(dropped, None)
        return data

    async def _workflow_jobs(self, workflow: str) -> list[dict[str, Any]]:
        key = workflow_id(workflow)
        if key not in self._jobs:
            jobs: list[dict[str, Any]] = []
            async for page in self._pages(f"/workflow/{key}/job",
                                          f"list the jobs of workflow {key}"):
                jobs.extend(page)
            self._jobs[key] = jobs
        return self._jobs[key]

    def _slug(self, ref: RunRef, workflow: Mapping[str, Any]) -> str:
        slug = workflow.get("project_slug")
        return slug if isinstance(slug, str) else ref.repo

    def _url_of(self, ref: RunRef, workflow: Mapping[str, Any]) -> str:
        number = workflow.get("pipeline_number", ref.extra.get("pipeline_number"))
        return self.workflow_url(self._slug(ref, workflow), number, workflow_id(ref.run_id))

    async def get_build(self, ref: RunRef) -> Build:
        data = await self._workflow(ref.run_id, fresh=True)
        self._results.pop(workflow_id(ref.run_id), None)
        status = str(data.get("status") or ref.status or "unknown")
        page = self._url_of(ref, data)
        jobs = [
            Job(id=str(job.get("job_number") or job.get("id") or ""),
                name=str(job.get("name") or ""),
                status=str(job.get("status") or ""),
                failed=job.get("status") in FAILED_JOB,
                url=f"{page}/jobs/{job['job_number']}" if isinstance(
                    job.get("job_number"), int) else None)
            for job in await self._workflow_jobs(ref.run_id)
        ]
        name = data.get("name")
        return Build(
            ref=ref,
            status=status,
            failed=status in FAILED_WORKFLOW,
            url=page,
            name=name if isinstance(name, str) else ref.extra.get("workflow_name"),
            jobs=jobs,
            sha=ref.sha,
        )

    # ---- results --------------------------------------------------------------------------

    async def _read_results(
        self, ref: RunRef
    ) -> tuple[TestRun, frozenset[int], dict[int, TestCase]]:
        """The workflow's stored test results, job by job, page by page, and which jobs
        stored none; read once between `list_artifacts` and `native_results`."""
        key = workflow_id(ref.run_id)
        held = self._results.get(key)
        if held is not None:
            return held
        workflow = await self._workflow(key)
        slug = slug_path(self._slug(ref, workflow))
        page = self._url_of(ref, workflow)
        run = TestRun(id=key, url=page)
        without: set[int] = set()
        pending: dict[int, TestCase] = {}
        failed_jobs = 0
        for job in await self._workflow_jobs(key):
            number = job.get("job_number")
            name = str(job.get("name") or "job")
            status = str(job.get("status") or "")
            failed = status in FAILED_JOB
            failed_jobs += failed
            if not isinstance(number, int) or isinstance(number, bool):
                continue  # an approval, or a job that never ran
            origin = Origin(name, url=f"{page}/jobs/{number}")
            cases = CaseList()
            failures = 0
            try:
                async for items in self._pages(f"/project/{slug}/{number}/tests",
                                               f"read the test results of job {name}"):
                    for item in items:
                        case = testmetadata.case_from(item, name, origin)
                        failures += case.status.is_failure
                        cases.append(case)
            except NotFound as exc:
                # Gone (CircleCI keeps results for a limited time): none, from the first
                # page; from a later one, the pages read are not the job's whole result.
                if cases:
                    run.errors.append(ParseError(source=f"test results of job {name}",
                                                 reason=f"read in part: {exc}"))
            if not cases:
                without.add(number)
                if failed:
                    # Its artifacts may hold its failures: decided once they are read.
                    pending[number] = testmetadata.job_failure(name, status, origin)
            elif failed and not failures:
                cases.append(testmetadata.job_failure(name, status, origin))
            if cases:
                run.suites.append(Suite(name=name, cases=cases,
                                        source=testmetadata.SOURCE))
        status = str(workflow.get("status") or "")
        if status in FAILED_WORKFLOW and not failed_jobs:
            name = str(workflow.get("name") or "workflow")
            run.suites.append(Suite(name=name, cases=CaseList([
                testmetadata.workflow_failure(name, status, Origin(name, url=page))
            ]), source=testmetadata.SOURCE))
        held = self._results[key] = (run, frozenset(without), pending)
        while len(self._results) > RESULTS_HELD:
            self._results.pop(next(iter(self._results)))
        return held

    async def native_results(self, ref: RunRef) -> TestRun | None:
        key = workflow_id(ref.run_id)
        run, _, pending = await self._read_results(ref)
        listed = self._listed.pop(key, frozenset())
        deferred = []
        for number, case in pending.items():
            if number in listed:
                deferred.append(case)
            else:  # no artifact of it is read: nothing else can show how it failed
                run.suites.append(Suite(name=case.suite, cases=CaseList([case]),
                                        source=testmetadata.SOURCE))
        if deferred:
            _hold(self._deferred, key, deferred)
        # Handed over: large results are not kept beyond the job that reads them.
        self._results.pop(key, None)
        return run if run.suites else None

    def account_for_failures(self, ref: RunRef, build: Build, run: TestRun) -> None:
        """A failed job whose results are its artifacts is named as a failure of its own
        only when no failing test came from those artifacts (`<job>[<node>]/...`): its
        files then do not say how it failed. With one, its files say it."""
        deferred = self._deferred.pop(workflow_id(ref.run_id), [])
        if not deferred:
            return
        explained = {case.origin.name for case in run.failures() if case.origin is not None}
        for case in deferred:
            prefix = f"{case.suite}["
            if not any(name.startswith(prefix) for name in explained):
                run.suites.append(Suite(name=case.suite, cases=CaseList([case]),
                                        source=testmetadata.SOURCE))

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        """The artifacts of the jobs that stored no test results (see the module
        docstring) whose path matches the artifact patterns, each named
        `<job>[<node>]/<path>`."""
        _, without, _ = await self._read_results(ref)
        workflow = await self._workflow(ref.run_id)
        slug = slug_path(self._slug(ref, workflow))
        patterns = artifact_patterns(self.settings, NAME)
        found: list[RemoteArtifact] = []
        listed: set[int] = set()
        for job in await self._workflow_jobs(ref.run_id):
            number = job.get("job_number")
            if number not in without:
                continue
            name = str(job.get("name") or "job")
            pages = 0
            try:
                async for items in self._pages(f"/project/{slug}/{number}/artifacts",
                                               f"list the artifacts of job {name}"):
                    pages += 1
                    for item in items:
                        path, url, node = item.get("path"), item.get("url"), item.get(
                            "node_index", 0)
                        # Matched on the path: a job named `test` must not make its
                        # screenshots and logs read as reports.
                        if not isinstance(path, str) or not isinstance(url, str) or not (
                                matches(path, patterns)):
                            continue
                        found.append(RemoteArtifact(
                            id=f"{number}/{node}/{path}", name=f"{name}[{node}]/{path}",
                            url=url, extra={"job_number": number, "node_index": node},
                        ))
                        listed.add(number)
            except NotFound as exc:
                if pages:
                    # A list cut short could hide the one report that failed.
                    raise PermanentError(
                        f"the artifacts of job {name} could be listed in part only: {exc}"
                    ) from exc
        _hold(self._listed, workflow_id(ref.run_id), frozenset(listed))
        return found

    async def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        url = artifact.url or ""
        if not url.startswith(tuple(f"{o}/" for o in self.artifact_origins)):
            # A URL the API answered with, on no host configured for artifacts: not asked.
            raise PermanentError(
                f"artifact {artifact.name!r} is served from {urlsplit(url).netloc or url!r}, "
                "not a host of HERALD_CIRCLECI_ARTIFACT_HOSTS"
            )
        async for chunk in self.session.download(
            url, what=f"download artifact {artifact.name!r}",
            max_bytes=self.max_artifact_bytes, headers={TOKEN_HEADER: self._auth[TOKEN_HEADER]},
            scope=SCOPE,
        ):
            yield chunk

    # ---- the change and the origin ----------------------------------------------------

    async def _pipeline(self, ref: RunRef) -> dict[str, Any]:
        pipeline = ref.extra.get("pipeline_id")
        if not isinstance(pipeline, str):
            workflow = await self._workflow(ref.run_id)
            pipeline = workflow.get("pipeline_id")
        if not isinstance(pipeline, str):
            raise PermanentError(f"workflow {ref.run_id} names no pipeline")
        key = workflow_id(pipeline)
        return await self._json(f"/pipeline/{key}", f"read pipeline {key}")

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        url = ref.extra.get("target_repository_url") or ref.extra.get("origin_repository_url")
        sha = ref.sha
        if not isinstance(url, str) or not sha:
            # GitHub App and GitLab projects: the webhook names the commit only; the
            # pipeline's trigger parameters name the repository.
            url, sha = checkout(await self._pipeline(ref))
        if not url or not sha:
            raise PermanentError(
                f"workflow {ref.run_id} of {ref.repo}: its pipeline names no repository "
                "and commit"
            )
        repository = forge_of_url(url, self.settings)
        if repository is None:
            raise PermanentError(
                f"workflow {ref.run_id} of {ref.repo} built {url}, on no forge Herald is "
                "configured for"
            )
        return Change(forge=repository.forge, repo=repository.repo, sha=sha,
                      numbers_known=False)

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        workflow = self._workflows.get(workflow_id(ref.run_id), {})
        name = workflow.get("name") or ref.extra.get("workflow_name") or ref.repo
        when = created(workflow)
        number = workflow.get("pipeline_number", ref.extra.get("pipeline_number"))
        return ReportOrigin(
            run=ref,
            name=str(name),
            # A rerun is a new workflow in the same pipeline: only its creation time
            # orders it after the one it reruns.
            sequence=int(when.timestamp() * 1000) if when is not None else 0,
            number=str(number) if number is not None else None,
            url=self._url_of(ref, workflow),
            failed=build.failed if build is not None else (ref.status in FAILED_WORKFLOW),
        )

    # ---- reruns -------------------------------------------------------------------------

    async def _reruns_of(self, workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The workflows of the same name made in the same pipeline after `workflow`:
        its reruns (and theirs), oldest first."""
        pipeline = workflow.get("pipeline_id")
        when = created(workflow)
        if not isinstance(pipeline, str) or when is None:
            return []
        key = workflow_id(pipeline)
        later: list[tuple[datetime, dict[str, Any]]] = []
        async for items in self._pages(f"/pipeline/{key}/workflow",
                                       f"list the workflows of pipeline {key}"):
            for item in items:
                at = created(item)
                if (item.get("name") == workflow.get("name") and item.get("id") != workflow.get(
                        "id") and at is not None and at > when):
                    later.append((at, item))
        return [item for _, item in sorted(later, key=lambda pair: pair[0])]

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        """Rerun the workflow from failed (CircleCI reruns failed jobs and what depends on
        them; `failed_only=False` reruns it whole). Nothing is sent when the workflow has
        a rerun already: an earlier request made it."""
        key = workflow_id(ref.run_id)
        workflow = await self._workflow(key, fresh=True)
        failed = [str(j.get("name")) for j in await self._workflow_jobs(key)
                  if j.get("status") in FAILED_JOB]
        slug = self._slug(ref, workflow)
        number = workflow.get("pipeline_number")

        async def made() -> str | None:
            reruns = await self._reruns_of(workflow)
            new = reruns[0].get("id") if reruns else None
            return new if isinstance(new, str) else None

        async def post() -> str | None:
            body = json.dumps({"from_failed": failed_only}).encode()
            response = await self.session.request(
                "POST", f"{self.base_url}/workflow/{key}/rerun",
                {**self._auth, "Content-Type": "application/json"}, body,
                idempotent=False, scope=SCOPE, what=f"rerun workflow {key}",
            )
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            new = answer.get("workflow_id") if isinstance(answer, dict) else None
            return new if isinstance(new, str) else None

        new = await made() or await append_once(post, made)
        return Rerun(runs=[key], jobs=failed,
                     url=self.workflow_url(slug, number, new) if new else None)

    # ---- what /retest reruns --------------------------------------------------------------

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        """CircleCI cannot list workflows by commit for every kind of project: with no
        workflow Herald recorded reporting on it (`latest_failed_of`), there is none."""
        return await self.latest_failed_of(change, ())

    async def latest_failed_of(self, change: Change, reported: Sequence[RunRef]) -> list[RunRef]:
        """Of the workflows reported on the change's commit, the latest of each name in
        each project, if it failed; a workflow rerun since counts through its rerun (a
        rerun still running is not asked for twice)."""
        mine = [r for r in reported if r.provider == NAME]
        latest = latest_per_key(
            mine,
            key=lambda r: (r.repo, r.extra.get("workflow_name")),
            order=lambda r: (r.extra.get("pipeline_number") or 0, r.run_id),
        )
        found: list[RunRef] = []
        for ref in latest:
            try:
                workflow = await self._workflow(ref.run_id, fresh=True)
                reruns = await self._reruns_of(workflow)
            except NotFound:
                continue  # the project or workflow is gone
            current = reruns[-1] if reruns else workflow
            status = current.get("status")
            if status in RUNNING_WORKFLOW or status not in FAILED_WORKFLOW:
                continue
            found.append(self._retest_ref(change, ref, current))
        return found

    def _retest_ref(self, change: Change, ref: RunRef, workflow: Mapping[str, Any]) -> RunRef:
        key = workflow_id(str(workflow.get("id")))
        name = workflow.get("name") or ref.extra.get("workflow_name") or "workflow"
        number = workflow.get("pipeline_number", ref.extra.get("pipeline_number"))
        return RunRef(
            provider=NAME, repo=self._slug(ref, workflow), run_id=key, sha=change.sha,
            branch=ref.branch, change=change.numbers[0] if change.numbers else None,
            url=self.workflow_url(self._slug(ref, workflow), number, key),
            status=str(workflow.get("status")),
            extra={**ref.extra, "workflow_name": name, "pipeline_id": workflow.get(
                "pipeline_id"), "name": f"{name} (pipeline {number})"},
        )


def artifact_origins(api_url: str, hosts: str) -> list[str]:
    """`scheme://host[:port]` of each artifact host, with the API's scheme (https, or
    http for a plain-http API as in tests)."""
    scheme = urlsplit(api_url).scheme
    found = []
    for host, port in allowed_hosts(hosts):
        shown = f"[{host}]" if ":" in host else host
        found.append(f"{scheme}://{shown}" + (f":{port}" if port else ""))
    return found


def create_client(
    settings: ProviderSettings, http: httpx.AsyncClient | None = None
) -> CircleCIClient:
    """The worker's CircleCI client over its httpx client (or one of its own when None).

    Raises `NotConfigured` without a token, `ConfigError` for a malformed setting.
    """
    whole = Settings.from_env(settings.environ)
    config = whole.config.circleci
    token = settings.secret("token")
    require_settings("CircleCI", "a personal API token of a user who can see the projects; "
                     "one who may trigger workflows for /retest",
                     {"HERALD_CIRCLECI_TOKEN": token.reveal() if token else None})
    assert token is not None
    api_url = str(config.api_url).rstrip("/")
    origins = artifact_origins(api_url, config.artifact_hosts)
    # JSON pages are streamed too (`_json`): one timeout for every read.
    session = streamed_session(http, provider=NAME, label=LABEL, base_url=api_url,
                               seconds=config.timeout, download_origins=origins)
    return CircleCIClient(
        session,
        token=token.reveal().strip(),
        settings=whole,
        max_artifact_bytes=ArtifactLimits.from_settings(whole).max_download_bytes,
        artifact_origins=origins,
        owns_http=http is None,
    )


def _hold(held: OrderedDict[str, Any], key: str, value: Any) -> None:
    """`value` kept under `key`, the oldest let go beyond `RESULTS_HELD` (a job that
    stopped between the calls that set and take it)."""
    held[key] = value
    held.move_to_end(key)
    while len(held) > RESULTS_HELD:
        held.popitem(last=False)
