"""Jenkins as a CI source: builds, test reports, archived artifacts and rebuilds, read
with a user's API token; the report goes to the forge that holds the build's code.

Jenkins is not a forge: the change a build is for is found from what Jenkins knows of its
checkout, and published by the forge target configured for that repository's host
(`bot.forges.forge_of_url`: GitHub, GitLab, Bitbucket). The commit and remote come from
the notification's `scm` block when it has one (the Notification plugin fills it from the
build's checkout), else from the git plugin's `BuildData` actions of the build
(`lastBuiltRevision.SHA1`, `remoteUrls`). A build that checked out several repositories
(a Pipeline loading a shared library adds one `BuildData` each) and names none is refused
rather than guessed at: a report on the library's commit would be in the wrong place.
The pull request comes from multibranch data: `CHANGE_ID` among the parameters, or the
job's own name `PR-<n>`; for any other job the forge finds the open pull requests whose
head is the built commit (`Change.numbers_known`).

Every request goes to `HERALD_JENKINS_URL`: paths are built from the job's full name and
the build number, never taken from a notification (whose URLs are not even on the
configured host when Jenkins' root URL is set differently), and the shared HTTP layer
refuses any other origin. Each request carries HTTP Basic `user:API token`; Jenkins
(2.96 and later) exempts API-token requests from CSRF crumbs, so a crumb is fetched
(`/crumbIssuer/api/json`) only when a POST is refused for the lack of one, as an older
or differently configured Jenkins does.

Results. The JUnit plugin's report (`testReport/api/json`) is the build's results when the
build recorded one (`providers.jenkins.testreport`); the archived files are then not read,
since they are most often the very files the `junit` step parsed, and counting both would
double every test. What that could hide: a report the `junit` step did not record (a
Jest JSON file, an NUnit file) archived beside its files is not read; record it with
`junit` (or leave the build without a JUnit report) to have it counted. Without a JUnit
report, the archived artifacts whose paths match the patterns are read instead.

Own surface. After the forge's report, the build's description says the counts and where
they were reported (`describe`), unless the build has a description of its own.

Rerun. Jenkins has no "rerun the failed stages" API: `/retest` builds the job again with
the parameters of the build that failed (`buildWithParameters`; `build` for a job without
parameters, such as a multibranch pull request job). Jenkins exports no value for password
and file parameters: those get their defaults. It cannot search builds by commit either,
so `/retest` asks about the builds Herald recorded reporting on the commit
(`bot.ports.ReportedRunsSource`).

API: https://www.jenkins.io/doc/book/using/remote-access-api/ (`api/json`, `tree=`,
`build`, `buildWithParameters`), https://www.jenkins.io/doc/book/security/csrf-protection/,
https://plugins.jenkins.io/junit, https://plugins.jenkins.io/git.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlencode

import httpx

from bot.artifacts import ArtifactLimits
from bot.events import RunRef
from bot.forges import forge_of_url, latest_per_key
from bot.results.model import TestRun
from bot.settings import ProviderSettings, Settings
from providers.base import (
    Build,
    Change,
    PermanentError,
    RemoteArtifact,
    ReportOrigin,
    Rerun,
    require_settings,
)
from providers.http import (
    HttpSession,
    NotFound,
    SessionClient,
    error_for_status,
    streamed_session,
)
from providers.jenkins import testreport
from providers.writes import append_once, surface_line

NAME: Final = "jenkins"
#: The whole token is one scope: Jenkins keeps no rate limits of its own (a proxy may).
SCOPE: Final = "token"
#: What `tree=` asks of a build: its state, artifacts, parameters, checkout and whether
#: the JUnit plugin recorded a report.
BUILD_TREE: Final = (
    "number,url,result,building,displayName,description,"
    "artifacts[relativePath],"
    "actions[_class,urlName,failCount,totalCount,"
    "parameters[_class,name,value],"
    "lastBuiltRevision[SHA1],remoteUrls]"
)
JOB_TREE: Final = "inQueue,nextBuildNumber,lastBuild[number]"
#: Jenkins' results that mean the build failed (`UNSTABLE`: tests failed).
FAILED_RESULTS: Final = frozenset({"FAILURE", "UNSTABLE", "ABORTED"})
#: A JSON answer (a test report can be tens of MB) is read up to this size.
MAX_JSON_BYTES: Final = 64 * 1024 * 1024
BUILDS_CACHED: Final = 64
#: Test reports read by `list_artifacts` and not yet taken by `native_results` (a job that
#: stopped in between); each may be large, so few are held.
REPORTS_HELD: Final = 4
GIT_BUILD_DATA: Final = "hudson.plugins.git.util.BuildData"
PARAMETERS: Final = "hudson.model.ParametersAction"
CRUMB_ISSUER: Final = "/crumbIssuer/api/json"
#: Herald's build descriptions start so; any other description is the user's, kept.
DESCRIPTION_PREFIX: Final = "Herald: "


def job_path(full_name: str) -> str:
    """`org/repo/PR-12` → `/job/org/job/repo/job/PR-12`, each name URL-encoded (a
    multibranch job of branch `feature/x` is named `feature%2Fx`, and `%` is encoded too)."""
    names = [name for name in full_name.split("/") if name]
    if not names or any(name in (".", "..") for name in names):
        raise PermanentError(f"not a Jenkins job name: {full_name!r}")
    return "".join(f"/job/{quote(name, safe='')}" for name in names)


def build_number(ref: RunRef) -> int:
    try:
        number = int(ref.run_id)
    except ValueError:
        raise PermanentError(f"not a Jenkins build number: {ref.run_id!r}") from None
    if number < 1:
        raise PermanentError(f"not a Jenkins build number: {ref.run_id!r}")
    return number


def _actions(build: Mapping[str, Any], cls: str) -> list[dict[str, Any]]:
    return [a for a in build.get("actions") or [] if isinstance(a, dict) and a.get("_class") == cls]


def has_test_report(build: Mapping[str, Any]) -> bool:
    """Whether the JUnit plugin (or a plugin serving its report) recorded results."""
    return any(
        isinstance(a, dict) and a.get("urlName") == "testReport"
        for a in build.get("actions") or []
    )


def parameters_of(build: Mapping[str, Any]) -> dict[str, str]:
    """The build's parameters with the values Jenkins exports (none for passwords, files)."""
    found: dict[str, str] = {}
    for action in _actions(build, PARAMETERS):
        for parameter in action.get("parameters") or []:
            if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
                continue
            value = parameter.get("value")
            if isinstance(value, bool):
                found[parameter["name"]] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                found[parameter["name"]] = str(value)
    return found


def checkouts(build: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(remote URL, commit) of each repository the build checked out, in Jenkins' order."""
    found: list[tuple[str, str]] = []
    for action in _actions(build, GIT_BUILD_DATA):
        revision = action.get("lastBuiltRevision")
        sha = revision.get("SHA1") if isinstance(revision, dict) else None
        remotes = [r for r in action.get("remoteUrls") or [] if isinstance(r, str)]
        if isinstance(sha, str) and remotes and (remotes[0], sha) not in found:
            found.append((remotes[0], sha))
    return found


class JenkinsClient(SessionClient):
    """`CISource` (and `ReportedRunsSource`) for one Jenkins controller."""

    def __init__(
        self,
        session: HttpSession,
        *,
        user: str,
        token: str,
        settings: Settings,
        max_artifact_bytes: int,
        owns_http: bool = False,
    ) -> None:
        super().__init__(session, settings=settings, max_artifact_bytes=max_artifact_bytes,
                         owns_http=owns_http)
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        self._auth = {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        self._builds: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._reports: dict[tuple[str, int], TestRun | None] = {}



    def build_url(self, job: str, number: int) -> str:
        """The build's page on the configured Jenkins: what reports link to."""
        return f"{self.base_url}{job_path(job)}/{number}/"

    # ---- reading ----------------------------------------------------------------------

    async def _json(self, path: str, what: str, tree: str | None = None) -> Any:
        url = f"{self.base_url}{path}" + (f"?{urlencode({'tree': tree})}" if tree else "")
        return await self.session.download_json(
            url, what=what, max_bytes=MAX_JSON_BYTES, headers=self._auth, scope=SCOPE
        )

    async def _build(self, ref: RunRef, *, fresh: bool = False) -> dict[str, Any]:
        key = (ref.repo, build_number(ref))
        cached = self._builds.get(key)
        if cached is not None and not fresh:
            return cached
        data = await self._json(
            f"{job_path(ref.repo)}/{key[1]}/api/json",
            f"read build #{key[1]} of {ref.repo}",
            BUILD_TREE,
        )
        if not isinstance(data, dict):
            raise PermanentError(f"read build #{key[1]} of {ref.repo}: Jenkins sent no build")
        self._builds[key] = data
        self._builds.move_to_end(key)
        while len(self._builds) > BUILDS_CACHED:
            self._builds.popitem(last=False)
        return data

    async def get_build(self, ref: RunRef) -> Build:
        data = await self._build(ref, fresh=True)
        number = build_number(ref)
        self._reports.pop((ref.repo, number), None)
        result = data.get("result")
        # A Jenkinsfile's `post` step notifies before the build ends, when the API has no
        # result yet: the notification's (authenticated) status says it then.
        status = result if isinstance(result, str) else (
            ref.status or ("BUILDING" if data.get("building") else "unknown"))
        found = checkouts(data)
        sha = ref.sha or (found[0][1] if len(found) == 1 else None)
        return Build(
            ref=ref,
            status=status,
            failed=status in FAILED_RESULTS,
            url=self.build_url(ref.repo, number),
            name=ref.repo,
            changes=[ref.change] if ref.change else [],
            sha=sha,
        )

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        data = await self._build(ref)
        if await self._test_report(ref) is not None:
            return []  # the JUnit report holds them (see the module docstring)
        page = self.build_url(ref.repo, build_number(ref))
        return [
            RemoteArtifact(
                id=path,
                name=path,
                url=f"{page}artifact/{quote(path)}",
            )
            for path in (
                a.get("relativePath") for a in data.get("artifacts") or [] if isinstance(a, dict)
            )
            if isinstance(path, str) and path and ".." not in path.split("/")
        ]

    async def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        number = build_number(ref)
        # Built from the artifact's relative path on the configured Jenkins, never from a URL.
        url = f"{self.base_url}{job_path(ref.repo)}/{number}/artifact/{quote(artifact.id)}"
        async for chunk in self.session.download(
            url, what=f"download artifact {artifact.name!r} of build #{number}",
            max_bytes=self.max_artifact_bytes, headers=self._auth, scope=SCOPE,
        ):
            yield chunk

    async def native_results(self, ref: RunRef) -> TestRun | None:
        run = await self._test_report(ref)
        # Handed over: a large report is not kept beyond the job that reads it.
        self._reports.pop((ref.repo, build_number(ref)), None)
        return run

    async def _test_report(self, ref: RunRef) -> TestRun | None:
        """The JUnit report, read once between `list_artifacts` and `native_results`; None
        when the build has none, or when Jenkins no longer serves it (then the archived
        files are read instead)."""
        key = (ref.repo, build_number(ref))
        if key in self._reports:
            return self._reports[key]
        run = None
        if has_test_report(await self._build(ref)):
            number = key[1]
            try:
                report = await self._json(
                    f"{job_path(ref.repo)}/{number}/testReport/api/json",
                    f"read the test report of build #{number} of {ref.repo}",
                    testreport.TREE,
                )
            except NotFound:
                report = None
            if report is not None and not isinstance(report, dict):
                raise PermanentError(
                    f"the test report of build #{number}: Jenkins sent no report")
            if report is not None:
                page = f"{self.build_url(ref.repo, number)}testReport/"
                run = testreport.to_test_run(report, run_id=str(number), url=page)
        self._reports[key] = run
        while len(self._reports) > REPORTS_HELD:
            self._reports.pop(next(iter(self._reports)))
        return run

    # ---- the change and the origin ----------------------------------------------------

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        data = self._builds.get((ref.repo, build_number(ref))) if build is not None else None
        remote, sha = self._checkout(ref, data)
        repository = forge_of_url(remote, self.settings)
        if repository is None:
            raise PermanentError(
                f"build #{ref.run_id} of {ref.repo} built {remote}, on no forge Herald is "
                "configured for"
            )
        # A multibranch pull request job names its pull request; any other job (a branch,
        # a plain pipeline) cannot say, and the forge finds the open ones whose head it is.
        numbers = (ref.change,) if ref.change else ()
        return Change(forge=repository.forge, repo=repository.repo, sha=sha, numbers=numbers,
                      numbers_known=bool(numbers))

    @staticmethod
    def _checkout(ref: RunRef, data: Mapping[str, Any] | None) -> tuple[str, str]:
        """(remote URL, commit) the build's report belongs to; see the module docstring."""
        remote = ref.extra.get("scm_url") if isinstance(ref.extra.get("scm_url"), str) else None
        sha = ref.sha
        found = checkouts(data) if data is not None else []
        if remote and not sha:
            sha = next((s for r, s in found if r == remote), None)
        if sha and not remote:
            remote = next((r for r, s in found if s == sha), None)
        if not remote and not sha:
            if len({r for r, _ in found}) > 1:
                raise PermanentError(
                    f"build #{ref.run_id} of {ref.repo} checked out several repositories "
                    f"({', '.join(sorted({r for r, _ in found}))}) and the notification names "
                    "none: send `scm.url` and `scm.commit` with it"
                )
            if found:
                remote, sha = found[0]
        change_url = ref.extra.get("change_url")
        if not remote and isinstance(change_url, str):
            remote = change_url
        if not remote or not sha:
            raise PermanentError(
                f"build #{ref.run_id} of {ref.repo} names no repository and commit (no git "
                "checkout data, no `scm` in the notification)"
            )
        return remote, sha

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        number = build_number(ref)
        return ReportOrigin(
            run=ref,
            name=ref.repo,
            sequence=number,
            number=str(number),
            url=self.build_url(ref.repo, number),
            failed=build.failed if build is not None else (ref.status in FAILED_RESULTS),
        )

    # ---- the build's own surface ----------------------------------------------------------

    async def describe(self, ref: RunRef, run: TestRun, change: Change) -> None:
        """Herald's one line as the build's description, unless the build has one of its
        own (`currentBuild.description` in a Jenkinsfile): that is the user's, never
        replaced. Plain text, so it reads the same under any markup formatter; it names
        no test. Needs Run/Update: without it Jenkins answers 403, and the report on the
        forge stands alone."""
        data = await self._build(ref)
        text = surface_line(data.get("description"), DESCRIPTION_PREFIX, run, change)
        if text is None:
            return
        number = build_number(ref)
        # Setting a description replaces it: sending it again after a lost answer is safe.
        await self._post(f"{job_path(ref.repo)}/{number}/submitDescription",
                         urlencode({"description": text}).encode(),
                         f"describe build #{number} of {ref.repo}", idempotent=True)
        data["description"] = text

    # ---- rebuilds -----------------------------------------------------------------------

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        """Build the job again with the failed build's parameters (Jenkins reruns whole
        builds only, so `failed_only` asks for what it can)."""
        data = await self._build(ref, fresh=True)
        job = job_path(ref.repo)
        parameters = parameters_of(data)
        before = await self._job(ref.repo)
        next_number = before.get("nextBuildNumber")
        if parameters:
            path, body = f"{job}/buildWithParameters", urlencode(parameters).encode()
        else:
            path, body = f"{job}/build", b""

        async def queued() -> str | None:
            state = await self._job(ref.repo)
            last = (state.get("lastBuild") or {}).get("number")
            started = isinstance(last, int) and isinstance(next_number, int) and (
                last >= next_number
            )
            return ref.repo if state.get("inQueue") or started else None

        await append_once(lambda: self._post(path, body, f"build {ref.repo} again"), queued)
        return Rerun(runs=[ref.repo], jobs=[ref.repo])

    async def _job(self, full_name: str) -> dict[str, Any]:
        data = await self._json(f"{job_path(full_name)}/api/json", f"read job {full_name}",
                                JOB_TREE)
        if not isinstance(data, dict):
            raise PermanentError(f"read job {full_name}: Jenkins sent no job")
        return data

    async def _post(self, path: str, body: bytes, what: str, *, idempotent: bool = False
                    ) -> str:
        headers = {**self._auth, "Content-Type": "application/x-www-form-urlencoded"}
        url = f"{self.base_url}{path}"
        response = await self.session.send("POST", url, headers, body, idempotent=idempotent,
                                           scope=SCOPE)
        if response.status_code == 403 and b"crumb" in response.content.lower():
            # Refused before anything was done: safe to send again, with a crumb.
            headers.update(await self._crumb())
            response = await self.session.send("POST", url, headers, body,
                                               idempotent=idempotent, scope=SCOPE)
        # Jenkins answers a form it took with a redirect to the page (302), a build request
        # with 201: both are done.
        if response.status_code >= 400:
            text = response.content[:200].decode("utf-8", "replace").strip()
            raise error_for_status(
                response.status_code,
                f"{what}: Jenkins answered {response.status_code}", detail=text,
            )
        return str(response.headers.get("location", ""))

    async def _crumb(self) -> dict[str, str]:
        issued = await self._json(CRUMB_ISSUER, "ask Jenkins for a CSRF crumb")
        if not isinstance(issued, dict) or not isinstance(issued.get("crumb"), str):
            raise PermanentError("ask Jenkins for a CSRF crumb: Jenkins sent none")
        field = issued.get("crumbRequestField")
        return {field if isinstance(field, str) else "Jenkins-Crumb": issued["crumb"]}

    # ---- what /retest reruns --------------------------------------------------------------

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        """Jenkins cannot list builds by commit: with no build Herald recorded reporting on
        it (`latest_failed_of`), there is none to name."""
        return await self.latest_failed_of(change, ())

    async def latest_failed_of(self, change: Change, reported: Sequence[RunRef]) -> list[RunRef]:
        """Of the builds reported on the change's commit, the latest of each job, if it
        failed and nothing has built that job since (a rebuild queued or running by an
        earlier `/retest` is not asked for twice)."""
        latest = latest_per_key(
            (r for r in reported if r.provider == NAME and r.run_id.isdigit()),
            key=lambda r: r.repo, order=lambda r: int(r.run_id),
        )
        found = []
        for ref in latest:
            refreshed = await self._still_failed(ref)
            if refreshed is not None:
                found.append(self._retest_ref(change, ref, refreshed))
        return found

    async def _still_failed(self, ref: RunRef) -> str | None:
        try:
            job = await self._job(ref.repo)
            build = await self._build(ref, fresh=True)
        except NotFound:
            return None  # the job or build is gone (a closed pull request's job)
        last = (job.get("lastBuild") or {}).get("number")
        if job.get("inQueue") or (isinstance(last, int) and last > build_number(ref)):
            return None
        result = build.get("result")
        return result if isinstance(result, str) and result in FAILED_RESULTS else None

    def _retest_ref(self, change: Change, ref: RunRef, result: str) -> RunRef:
        number = build_number(ref)
        return RunRef(
            provider=NAME, repo=ref.repo, run_id=str(number), sha=change.sha,
            branch=ref.branch, change=change.numbers[0] if change.numbers else ref.change,
            url=self.build_url(ref.repo, number), status=result,
            extra={**ref.extra, "name": f"{ref.repo} #{number}"},
        )


def create_client(
    settings: ProviderSettings, http: httpx.AsyncClient | None = None
) -> JenkinsClient:
    """The worker's Jenkins client over its httpx client (or one of its own when None).

    Raises `NotConfigured` without the URL, user or token, `ConfigError` for a malformed
    setting.
    """
    whole = Settings.from_env(settings.environ)
    config = whole.config.jenkins
    token = settings.secret("token")
    require_settings("Jenkins", "an API token of a user with Overall/Read and Job/Read, "
                     "Job/Build for /retest", {
                         "HERALD_JENKINS_URL": config.url,
                         "HERALD_JENKINS_USER": config.user,
                         "HERALD_JENKINS_TOKEN": token.reveal() if token else None,
                     })
    assert config.url is not None and config.user is not None and token is not None
    session = streamed_session(http, provider=NAME, label="Jenkins", base_url=config.url,
                               seconds=config.timeout)
    return JenkinsClient(
        session,
        user=config.user,
        token=token.reveal().strip(),
        settings=whole,
        max_artifact_bytes=ArtifactLimits.from_settings(whole).max_download_bytes,
        owns_http=http is None,
    )
