"""Travis CI as a CI source: builds and their jobs read with an API token, test results
from the report files the user publishes or from the job logs, and the failed jobs
restarted; the report goes to the forge that holds the repository.

API v3 (https://developer.travis-ci.com/): every request goes to `HERALD_TRAVIS_API_URL`
with `Travis-API-Version: 3` and `Authorization: token <HERALD_TRAVIS_TOKEN>`:
`GET /build/{id}`, `GET /build/{id}/jobs` (paginated: `limit`, `offset`, `@pagination`),
`GET /job/{id}`, `GET /job/{id}/log` (`Accept: text/plain`: the raw log, streamed and
size-capped), `GET /repo/{id}` (`vcs_type`: which forge), `POST /job/{id}/restart`.
Nothing is taken from a payload's URLs: paths are built from the build and job ids.

Travis keeps no test results and has no artifacts API: results come from what the user
configures.

- `HERALD_TRAVIS_REPORT_URL`: a URL template naming the report file (JUnit XML, or an
  archive of them) each job publishes, with the artifacts add-on to S3 or to a host of
  their own. Its host is the configured one, never a build's: the placeholders are filled
  in the path only, each value percent-encoded. The files are fetched without the Travis
  token, through their own `HttpSession`, size-capped and sniffed like every artifact.
- else `HERALD_TRAVIS_LOG_SUMMARY`: each job's log, streamed through the summary parser
  (`providers.travis.logsummary`: pytest, go test), never held whole.

Each job (matrix leg) is its own origin of results, named by its number and config
(`job 12.3 (python: 3.11)`): two legs' failures never fold into one, and no job stands in
for an attempt of another. A job that failed (or errored) and whose results show no
failing test (no report file, a log without a summary, a lint step that failed after the
tests passed) is added to the report as a failure of its own, named after the job
(`account_for_failures`): a failed build is never reported green. Jobs allowed to fail
(`allow_failure`) keep their own results but add no such entry, as Travis does not fail
the build for them.

The change: the repository's `vcs_type` says the forge (github.com, gitlab.com,
bitbucket.org; Assembla is refused), `bot.forges` maps it to the configured forge. A pull
request build names its pull request (and is reported on the head commit the
notification names); for any other build (push, cron, API) the forge finds the open pull
requests whose head is the built commit.

`/retest` restarts each failed job of the latest build Herald reported per event type on
the commit (Travis cannot list builds by commit: `bot.ports.ReportedRunsSource`), with
`POST /job/{id}/restart`; `build/restart` would rerun the passed jobs too. A restart whose
answer was lost is looked for first (the job's `restarted_at` changed, or it left
`failed`/`errored`), and only then sent again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

import httpx

from bot.artifacts import ArtifactLimits
from bot.events import RunRef
from bot.forges import forge_of_url, latest_per_key
from bot.results.compact import CaseList
from bot.results.model import Origin, ParseError, Status, Suite, TestCase, TestRun
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
from providers.http import HttpSession, NotFound, SessionClient, TooLarge, streamed_session
from providers.travis.logsummary import LogSummary
from providers.writes import append_once

NAME: Final = "travis"
SCOPE: Final = "token"
REPORTS_SCOPE: Final = "reports"
#: Job states of a job that failed; `canceled` is not a failure.
FAILED_STATES: Final = frozenset({"failed", "errored"})
FINISHED_STATES: Final = FAILED_STATES | {"passed", "canceled"}
#: Jobs asked for per page (Travis' maximum), and pages read at most (a build of more
#: than a thousand jobs is cut there).
JOBS_PER_PAGE: Final = 100
MAX_JOB_PAGES: Final = 10
BUILDS_CACHED: Final = 32
#: `vcs_type` of a repository → the public host of its forge.
FORGE_HOSTS: Final = {
    "GithubRepository": "github.com",
    "GitlabRepository": "gitlab.com",
    "BitbucketRepository": "bitbucket.org",
}
#: Config keys that tell matrix legs apart, in the order a job's name shows them.
CONFIG_KEYS: Final = ("name", "os", "dist", "arch", "language", "python", "node_js", "go",
                      "ruby", "jdk", "php", "rust", "env")
MAX_LABEL: Final = 80
JOBS_SUITE: Final = "Travis CI jobs"
EVENT_WORDS: Final = {"pull_request": "pull request", "push": "push", "cron": "cron",
                      "api": "API"}


def numeric_id(value: str, what: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise PermanentError(f"not a Travis CI {what} id: {value!r}")
    return int(value)


def job_label(job: Mapping[str, Any]) -> str:
    """`job 12.3 (python: 3.11, env: DB=pg)`: the leg's number and what sets it apart."""
    config = _object(job, "config")
    parts = []
    for key in CONFIG_KEYS:
        value = config.get(key)
        if isinstance(value, list):
            value = " ".join(str(v) for v in value if isinstance(v, str | int | float))
        if isinstance(value, str | int | float) and str(value).strip():
            parts.append(str(value) if key == "name" else f"{key}: {value}")
    label = f"job {job.get('number') or job.get('id')}"
    if parts:
        described = ", ".join(parts)
        if len(described) > MAX_LABEL:
            described = described[: MAX_LABEL - 1] + "…"
        label += f" ({described})"
    return label


def report_name(label: str, url: str) -> str:
    # The word "report" keeps the name among the artifact patterns the report handler
    # reads by default: the user named this file as a report by configuring its URL.
    return f"{label} — report {urlsplit(url).path.rsplit('/', 1)[-1] or 'file'}"


def log_name(label: str) -> str:
    return f"{label} — log"


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """The template with each placeholder's value percent-encoded (a repository slug keeps
    its one `/`), so that no value can add a path segment, a query or another host."""
    encoded = {
        name: "/".join(quote(part, safe="") for part in value.split("/", 1))
        if name == "repo" else quote(value, safe="")
        for name, value in values.items()
    }
    return template.format_map(encoded)


@dataclass(slots=True)
class _BuildData:
    build: dict[str, Any]
    jobs: list[dict[str, Any]]


class TravisClient(SessionClient):
    """`CISource` (and `ReportedRunsSource`) for Travis CI's API."""

    def __init__(
        self,
        session: HttpSession,
        *,
        token: str,
        settings: Settings,
        max_artifact_bytes: int,
        report_url: str | None = None,
        reports: HttpSession | None = None,
        log_formats: frozenset[str] = frozenset(),
        owns_http: bool = False,
    ) -> None:
        super().__init__(session, settings=settings, max_artifact_bytes=max_artifact_bytes,
                         owns_http=owns_http)
        self.report_url = report_url
        # The report host's session carries no credential at all: the Travis token is
        # for Travis' API only, whichever host the template names.
        self.reports = reports
        self.log_formats = log_formats
        self._headers = {
            "Authorization": f"token {token}",
            "Travis-API-Version": "3",
            "Accept": "application/json",
        }
        self._builds: OrderedDict[int, _BuildData] = OrderedDict()
        self._forges: dict[int, str] = {}



    # ---- reading ----------------------------------------------------------------------

    async def _json(self, path: str, what: str) -> dict[str, Any]:
        response = await self.session.request(
            "GET", f"{self.base_url}{path}", self._headers, idempotent=True, scope=SCOPE,
            what=what,
        )
        try:
            data = response.json()
        except ValueError:
            raise PermanentError(f"{what}: Travis CI sent no JSON") from None
        if not isinstance(data, dict):
            raise PermanentError(f"{what}: Travis CI sent no object")
        return data

    async def _build(self, ref: RunRef, *, fresh: bool = False) -> _BuildData:
        build_id = numeric_id(ref.run_id, "build")
        cached = self._builds.get(build_id)
        if cached is not None and not fresh:
            return cached
        what = f"read Travis CI build {build_id} of {ref.repo}"
        build = await self._json(f"/build/{build_id}", what)
        jobs: list[dict[str, Any]] = []
        for page in range(MAX_JOB_PAGES):
            query = urlencode({"limit": JOBS_PER_PAGE, "offset": page * JOBS_PER_PAGE,
                               "include": "job.config"})
            listed = await self._json(f"/build/{build_id}/jobs?{query}", f"{what}: its jobs")
            found = [j for j in listed.get("jobs") or [] if isinstance(j, dict)]
            jobs.extend(found)
            pagination = listed.get("@pagination")
            if not isinstance(pagination, dict) or pagination.get("is_last", True) or not found:
                break
        data = self._builds[build_id] = _BuildData(build, jobs)
        self._builds.move_to_end(build_id)
        while len(self._builds) > BUILDS_CACHED:
            self._builds.popitem(last=False)
        return data

    def build_page(self, ref: RunRef, build: Mapping[str, Any] | None = None) -> str:
        """The build's page: the URL the signed notification names, else derived from the
        API's address (`api.travis-ci.com` → `app.travis-ci.com`)."""
        if ref.url and urlsplit(ref.url).scheme == "https":
            return ref.url
        return f"{self._web_root()}/{ref.repo}/builds/{ref.run_id}"

    def job_page(self, ref: RunRef, job_id: object) -> str:
        """The job's page, beside the build's (`…/github/o/r/builds/1` → `…/jobs/7`)."""
        page = self.build_page(ref)
        suffix = f"/builds/{ref.run_id}"
        if page.endswith(suffix):
            return f"{page.removesuffix(suffix)}/jobs/{job_id}"
        return f"{self._web_root()}/{ref.repo}/jobs/{job_id}"

    def _web_root(self) -> str:
        """The web app's root: `api.travis-ci.com` serves `app.travis-ci.com`; an
        Enterprise API lives under `/api` of the web host itself."""
        parts = urlsplit(self.base_url)
        host = parts.netloc
        if host.startswith("api."):
            host = "app." + host.removeprefix("api.")
        return f"{parts.scheme}://{host}"

    async def get_build(self, ref: RunRef) -> Build:
        data = await self._build(ref, fresh=True)
        state = data.build.get("state")
        status = state if isinstance(state, str) else (ref.status or "unknown")
        commit = _object(data.build, "commit")
        sha = commit.get("sha") if isinstance(commit.get("sha"), str) else None
        number = data.build.get("pull_request_number")
        return Build(
            ref=ref,
            status=status,
            failed=status in FAILED_STATES,
            url=self.build_page(ref),
            name=ref.repo,
            jobs=[self._job(ref, job) for job in data.jobs],
            changes=[number] if isinstance(number, int) and _is_pull(data.build, ref) else [],
            sha=ref.sha or sha,
        )

    def _job(self, ref: RunRef, job: Mapping[str, Any]) -> Job:
        state = job.get("state") if isinstance(job.get("state"), str) else "unknown"
        return Job(
            id=str(job.get("id")),
            name=job_label(job),
            status=str(state),
            failed=state in FAILED_STATES and not job.get("allow_failure"),
            url=self.job_page(ref, job.get("id")),
        )

    # ---- results ----------------------------------------------------------------------

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        """Each finished job's report file, when `HERALD_TRAVIS_REPORT_URL` names one."""
        if self.report_url is None:
            return []
        data = await self._build(ref)
        commit = _object(data.build, "commit")
        found = []
        for job in data.jobs:
            if job.get("state") not in FINISHED_STATES or job.get("state") == "canceled":
                continue
            url = fill_template(self.report_url, {
                "repo": ref.repo,
                "build_id": str(data.build.get("id") or ref.run_id),
                "build_number": str(data.build.get("number") or ""),
                "job_id": str(job.get("id")),
                "job_number": str(job.get("number") or ""),
                "commit": str(commit.get("sha") or ref.sha or ""),
            })
            found.append(RemoteArtifact(id=url, name=report_name(job_label(job), url), url=url,
                                        extra={"job_id": str(job.get("id"))}))
        return found

    async def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        if self.reports is None:
            raise PermanentError("no HERALD_TRAVIS_REPORT_URL: Travis CI has no artifacts")
        async for chunk in self.reports.download(
            artifact.id, what=f"download {artifact.name!r}", max_bytes=self.max_artifact_bytes,
            scope=REPORTS_SCOPE,
        ):
            yield chunk

    async def native_results(self, ref: RunRef) -> TestRun | None:
        """What the job logs' summaries say (when logs are read), and for a failed build at
        least an empty run, so that its failed jobs are reported (`account_for_failures`)."""
        data = await self._build(ref)
        failed = data.build.get("state") in FAILED_STATES
        run = TestRun(id=ref.run_id)
        if self.log_formats and self.report_url is None:
            for job in data.jobs:
                if job.get("state") in FINISHED_STATES and job.get("state") != "canceled":
                    run.merge([await self._log_results(ref, job)])
        if run.suites or run.metrics or run.errors or failed:
            return run
        return None

    async def _log_results(self, ref: RunRef, job: Mapping[str, Any]) -> TestRun:
        label = job_label(job)
        origin = Origin(log_name(label), url=self.job_page(ref, job.get("id")))
        summary = LogSummary(self.log_formats, origin, label)
        job_id = numeric_id(str(job.get("id")), "job")
        what = f"read the log of Travis CI {label}"
        headers = {**self._headers, "Accept": "text/plain"}
        try:
            async for chunk in self.session.download(
                f"{self.base_url}/job/{job_id}/log", what=what,
                max_bytes=self.max_artifact_bytes, headers=headers, scope=SCOPE,
            ):
                summary.feed(chunk)
        except (TooLarge, NotFound) as exc:
            # What was read stands; the summary is at the end of a log, so say what is
            # missing rather than let a partial count pass for the whole.
            run = summary.result()
            run.errors.append(ParseError(source=origin.name, reason=str(exc)))
            return run
        return summary.result()

    def account_for_failures(self, ref: RunRef, build: Build, run: TestRun) -> None:
        """Each job Travis says failed whose results show no failing test becomes a failure
        of its own, named after the job: see the module docstring."""
        explained: set[str] = set()
        for case in run.failures():
            if case.origin is not None:
                explained.add(case.origin.name)
        unexplained = []
        for job in build.jobs:
            if not job.failed:
                continue
            names = {log_name(job.name)} | {
                a.name for a in run.artifacts if a.name.startswith(f"{job.name} — ")
            }
            if names & explained:
                continue
            read = any(e.source in names for e in run.errors)
            why = ("its results could not all be read, and what was read shows no failing test"
                   if read else "no test result of it shows a failing test")
            unexplained.append(TestCase(
                name=job.name, suite=JOBS_SUITE, status=Status.ERROR,
                message=f"Travis CI says the job {job.status}; {why}. Its log says why.",
                origin=Origin(job.name, url=job.url), source=job.name,
            ))
        if unexplained:
            run.suites.append(Suite(name=JOBS_SUITE, cases=CaseList(unexplained)))

    # ---- the change and the origin ----------------------------------------------------

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        data = self._builds.get(numeric_id(ref.run_id, "build"))
        if data is None and build is None:
            raise PermanentError(f"Travis CI build {ref.run_id} of {ref.repo} could not be read")
        if data is None:
            data = await self._build(ref)
        host = await self._forge_host(ref, data.build)
        repository = forge_of_url(f"https://{host}/{ref.repo}", self.settings)
        if repository is None:
            raise PermanentError(
                f"{ref.repo} is on {host}, where Herald has no forge configured")
        commit = _object(data.build, "commit")
        sha = ref.sha or (commit.get("sha") if isinstance(commit.get("sha"), str) else None)
        if not sha:
            raise PermanentError(f"Travis CI build {ref.run_id} of {ref.repo} names no commit")
        if _is_pull(data.build, ref):
            number = ref.change or data.build.get("pull_request_number")
            if isinstance(number, int):
                return Change(forge=repository.forge, repo=repository.repo, sha=sha,
                              numbers=(number,))
        # A push, cron or API build: the forge finds the open pull requests of the commit.
        return Change(forge=repository.forge, repo=repository.repo, sha=sha,
                      numbers_known=False)

    async def _forge_host(self, ref: RunRef, build: Mapping[str, Any]) -> str:
        repository = _object(build, "repository")
        repo_id = repository.get("id") or ref.extra.get("repository_id")
        if not isinstance(repo_id, int):
            raise PermanentError(f"Travis CI build {ref.run_id} names no repository")
        vcs = self._forges.get(repo_id)
        if vcs is None:
            found = await self._json(f"/repo/{repo_id}", f"read Travis CI repository {ref.repo}")
            vcs = str(found.get("vcs_type") or "GithubRepository")
            self._forges[repo_id] = vcs
        host = FORGE_HOSTS.get(vcs)
        if host is None:
            raise PermanentError(f"{ref.repo} is a {vcs}, on no forge Herald reports to")
        return host

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        data = self._builds.get(numeric_id(ref.run_id, "build"))
        event = (data.build.get("event_type") if data else None) or ref.extra.get("type")
        word = EVENT_WORDS.get(str(event), str(event or "build"))
        number = (data.build.get("number") if data else None) or ref.extra.get("number")
        return ReportOrigin(
            run=ref,
            name=f"{ref.repo} ({word})",
            sequence=numeric_id(ref.run_id, "build"),
            number=str(number) if number else None,
            url=self.build_page(ref),
            failed=build.failed if build is not None else ref.status in FAILED_STATES,
        )

    # ---- restarts -----------------------------------------------------------------------

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        """Restart each failed job of the build (never the passed ones: Travis' build
        restart would rerun those too, so `failed_only` is always what happens)."""
        data = await self._build(ref, fresh=True)
        failed = [j for j in data.jobs if _needs_restart(j)]
        restarted = []
        for job in failed:
            await self._restart(ref, job)
            restarted.append(str(job.get("id")))
        return Rerun(runs=[ref.run_id] if restarted else [], jobs=restarted)

    async def _restart(self, ref: RunRef, job: Mapping[str, Any]) -> None:
        job_id = numeric_id(str(job.get("id")), "job")
        label = job_label(job)
        before = job.get("restarted_at")
        what = f"restart Travis CI {label} of build {ref.run_id}"

        async def post() -> str:
            await self.session.request(
                "POST", f"{self.base_url}/job/{job_id}/restart", self._headers,
                idempotent=False, scope=SCOPE, what=what,
            )
            return str(job_id)

        async def restarted() -> str | None:
            now = await self._json(f"/job/{job_id}", f"read Travis CI {label}")
            moved = now.get("state") not in FAILED_STATES or now.get("restarted_at") != before
            return str(job_id) if moved else None

        await append_once(post, restarted)

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        """Travis cannot list builds by commit: only the builds Herald reported count."""
        return await self.latest_failed_of(change, ())

    async def latest_failed_of(self, change: Change, reported: Sequence[RunRef]) -> list[RunRef]:
        """Of the builds reported on the commit, the latest per repository and event type
        (a push build and a pull request build of one commit are two), if a job of it
        failed and has not been restarted since."""
        latest = latest_per_key(
            (r for r in reported if r.provider == NAME and r.run_id.isdigit()),
            key=lambda r: (r.repo, r.extra.get("type")), order=lambda r: int(r.run_id),
        )
        found = []
        for ref in latest:
            try:
                data = await self._build(ref, fresh=True)
            except NotFound:
                continue
            if any(_needs_restart(j) for j in data.jobs):
                number = data.build.get("number") or ref.extra.get("number")
                found.append(RunRef(
                    provider=NAME, repo=ref.repo, run_id=ref.run_id, sha=change.sha,
                    branch=ref.branch, change=ref.change, url=self.build_page(ref),
                    status=str(data.build.get("state")),
                    extra={**ref.extra, "name": f"Travis CI build #{number} of {ref.repo}"},
                ))
        return found


def _object(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _needs_restart(job: Mapping[str, Any]) -> bool:
    return job.get("state") in FAILED_STATES and not job.get("allow_failure")


def _is_pull(build: Mapping[str, Any], ref: RunRef) -> bool:
    return (build.get("event_type") or ref.extra.get("type")) == "pull_request"


def create_client(
    settings: ProviderSettings, http: httpx.AsyncClient | None = None
) -> TravisClient:
    """The worker's Travis CI client over its httpx client (or one of its own when None).

    Raises `NotConfigured` without a token.
    """
    whole = Settings.from_env(settings.environ)
    config = whole.config.travis
    token = settings.secret("token")
    require_settings("Travis CI", "an API token of a user who can read the repositories' "
                     "builds, and restart their jobs for /retest",
                     {"HERALD_TRAVIS_TOKEN": token.reveal() if token else None})
    assert token is not None
    client = http if http is not None else httpx.AsyncClient(follow_redirects=False)
    session = streamed_session(client, provider=NAME, label="Travis CI",
                               base_url=str(config.api_url), seconds=config.timeout)
    reports = None
    if config.report_url is not None:
        parts = urlsplit(config.report_url)
        reports = streamed_session(client, provider=NAME, label="the Travis CI report host",
                                   base_url=f"{parts.scheme}://{parts.netloc}",
                                   seconds=config.timeout)
    formats = frozenset(p.strip() for p in (config.log_summary or "").split(",") if p.strip())
    return TravisClient(
        session,
        token=token.reveal().strip(),
        settings=whole,
        max_artifact_bytes=ArtifactLimits.from_settings(whole).max_download_bytes,
        report_url=config.report_url,
        reports=reports,
        log_formats=formats,
        owns_http=http is None,
    )
