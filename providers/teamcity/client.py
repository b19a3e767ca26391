"""TeamCity as a CI source: builds, test occurrences, build problems, artifacts and
re-queued builds, read with an access token; the report goes to the forge that holds the
build's code.

TeamCity is not a forge: the change a build is for is found from its `revisions` (the
commit of each VCS root the build checked out) and the `url` property of each VCS root
instance (`/app/rest/vcs-root-instances/id:N`), whose host names the configured forge
(`bot.forges.forge_of_url`). A build of several repositories on configured forges (a
second VCS root with a shared library) is refused rather than guessed at, unless the
webhook's first revision names one of them. The pull request comes from the branch name
(`pull/12`, `refs/pull/12/head`, `merge-requests/7`) or the Pull Requests build
feature's `teamcity.pullRequest.number` parameter; without either the forge finds the
open pull requests whose head is the built commit (`Change.numbers_known`).

Every request goes to `HERALD_TEAMCITY_URL`: paths are built from the build id and the
build configuration id (checked to be a TeamCity id, so no locator can be smuggled in),
never taken from a webhook; pagination links (`nextHref`) must stay on the configured
server and under the REST path asked for, and the shared HTTP layer refuses any other
origin. Each request carries `Authorization: Bearer <token>`; token-authenticated
requests need no CSRF header.

Results. TeamCity's own test occurrences are the build's results when it recorded any
(`providers.teamcity.results`); the artifacts are then not read, since they are most
often the very files TeamCity's XML report processing imported, and counting both would
count every test twice. What that could hide: a report file TeamCity did not import, in a
build that has other tests; docs/teamcity.md says to import it. A build without any test
occurrence has its artifacts whose paths match the patterns read instead. Build problems
(compilation errors, exit codes, failure conditions) are always read: a build that failed
with no failing test shows as failed, the problem named.

Composite builds and build chains: every build of a chain sends its own webhook and is
its own report, named after its build configuration; two configurations never fold.

Own surface. After the forge's report, the build's comment says the counts and where they
were reported (`describe`), unless the build has a comment of its own.

Rerun. TeamCity has no "rerun" API: `/retest` queues the same build configuration again
on the same branch and the same revisions (`POST /app/rest/buildQueue`), with a comment
naming who asked and a unique marker. A queue request whose answer was lost is looked for
by that marker (in the queue, then among the builds since) before it is sent again.
`/retest` is asked about the builds Herald recorded reporting on the commit
(`bot.ports.ReportedRunsSource`): TeamCity could search builds by revision, but the
records already name exactly the configurations that reported on this change.

API: https://www.jetbrains.com/help/teamcity/rest/teamcity-rest-api-documentation.html
(`testOccurrences`, `problemOccurrences`, `builds`, `buildQueue`, artifacts), the
server's own description at `/app/rest/swagger.json`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httpx

from bot.artifacts import ArtifactLimits
from bot.events import RunRef
from bot.forges import Repository, forge_of_url, latest_per_key
from bot.results.model import Origin, TestRun
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
from providers.http import HttpSession, NotFound, SessionClient, streamed_session
from providers.teamcity import results
from providers.teamcity.webhook import change_from_branch
from providers.writes import append_once, surface_line

NAME: Final = "teamcity"
SCOPE: Final = "token"
REST: Final = "/app/rest"
BUILD_FIELDS: Final = (
    "id,number,status,state,statusText,branchName,defaultBranch,buildTypeId,"
    "buildType(id,name,projectName),"
    "revisions(revision(version,vcsBranchName,vcs-root-instance(id,vcs-root-id))),"
    "testOccurrences(count),comment(text),canceledInfo(text)"
)
#: A later build of a configuration, queued or since: it supersedes the failed one.
LATER_FIELDS: Final = "build(id,branchName,comment(text))"
#: Occurrences per page: a page of them is a few hundred kB of JSON.
PAGE_SIZE: Final = 1000
MAX_JSON_BYTES: Final = 64 * 1024 * 1024
BUILDS_CACHED: Final = 64
#: TeamCity's ids (build configurations, projects, VCS roots): letters, digits, `_`.
_ID: Final = re.compile(r"^[A-Za-z0-9_]{1,225}$")
#: Herald's build comments start so; any other comment is the user's, kept.
COMMENT_PREFIX: Final = "Herald: "
PULL_REQUEST_NUMBER: Final = "teamcity.pullRequest.number"


def build_id(ref: RunRef) -> int:
    try:
        number = int(ref.run_id)
    except ValueError:
        raise PermanentError(f"not a TeamCity build id: {ref.run_id!r}") from None
    if number < 1:
        raise PermanentError(f"not a TeamCity build id: {ref.run_id!r}")
    return number


def checked_id(value: str, what: str) -> str:
    """A TeamCity id as it may go into a locator: anything else could change its meaning."""
    if not _ID.match(value):
        raise PermanentError(f"not a TeamCity {what} id: {value!r}")
    return value


def revisions_of(build: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = (build.get("revisions") or {}).get("revision")
    return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []


def label_of(build: Mapping[str, Any] | None, ref: RunRef) -> str:
    """`Storefront / Build`: the build configuration as TeamCity shows it (names are unique
    within a project), else its id."""
    kind = (build or {}).get("buildType") or {}
    name = kind.get("name") or ref.extra.get("build_type_name")
    project = kind.get("projectName") or ref.extra.get("project_name")
    if isinstance(name, str) and name:
        return f"{project} / {name}" if isinstance(project, str) and project else name
    return ref.repo


class TeamCityClient(SessionClient):
    """`CISource` (and `ReportedRunsSource`, `RunSurface`) for one TeamCity server."""

    def __init__(
        self,
        session: HttpSession,
        *,
        token: str,
        settings: Settings,
        max_artifact_bytes: int,
        owns_http: bool = False,
    ) -> None:
        super().__init__(session, settings=settings, max_artifact_bytes=max_artifact_bytes,
                         owns_http=owns_http)
        self._auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._builds: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._roots: dict[str, str | None] = {}



    def build_url(self, build_type: str, number: int) -> str:
        """The build's page on the configured TeamCity: what reports link to."""
        return f"{self.base_url}/buildConfiguration/{quote(build_type, safe='')}/{number}"

    # ---- reading ----------------------------------------------------------------------

    def _rest(self, path: str, **query: str) -> str:
        return f"{self.base_url}{REST}{path}" + (f"?{urlencode(query)}" if query else "")

    async def _json(self, url: str, what: str) -> Any:
        return await self.session.download_json(url, what=what, max_bytes=MAX_JSON_BYTES,
                                                headers=self._auth, scope=SCOPE)

    async def _build(self, ref: RunRef, *, fresh: bool = False) -> dict[str, Any]:
        number = build_id(ref)
        cached = self._builds.get(number)
        if cached is not None and not fresh:
            return cached
        data = await self._json(self._rest(f"/builds/id:{number}", fields=BUILD_FIELDS),
                                f"read TeamCity build {number}")
        if not isinstance(data, dict):
            raise PermanentError(f"read TeamCity build {number}: TeamCity sent no build")
        self._builds[number] = data
        self._builds.move_to_end(number)
        while len(self._builds) > BUILDS_CACHED:
            self._builds.popitem(last=False)
        return data

    def _build_type(self, ref: RunRef, data: Mapping[str, Any]) -> str:
        value = data.get("buildTypeId") or ref.repo
        return checked_id(str(value), "build configuration")

    async def get_build(self, ref: RunRef) -> Build:
        data = await self._build(ref, fresh=True)
        status = str(data.get("status") or ref.status or "UNKNOWN")
        revisions = revisions_of(data)
        sha = ref.sha or (str(revisions[0].get("version")) if len(revisions) == 1 else None)
        change = ref.change or change_from_branch(data.get("branchName"))
        return Build(
            ref=ref,
            status=status,
            failed=self._failed(data, status),
            url=self.build_url(self._build_type(ref, data), build_id(ref)),
            name=label_of(data, ref),
            changes=[change] if change else [],
            sha=sha,
        )

    @staticmethod
    def _failed(data: Mapping[str, Any] | None, status: str | None) -> bool:
        # A canceled build (UNKNOWN) did not pass either: /retest may queue it again.
        return (status or "").upper() in ("FAILURE", "UNKNOWN") or bool(
            (data or {}).get("canceledInfo"))

    @staticmethod
    def _test_count(data: Mapping[str, Any]) -> int:
        # TeamCity leaves `testOccurrences` out of a build that recorded no test.
        count = (data.get("testOccurrences") or {}).get("count")
        return count if isinstance(count, int) and not isinstance(count, bool) else 0

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        data = await self._build(ref)
        if self._test_count(data):
            return []  # TeamCity's test occurrences hold them (see the module docstring)
        number = build_id(ref)
        listing = await self._json(
            self._rest(f"/builds/id:{number}/artifacts/children/",
                       locator="recursive:true", fields="file(name,fullName,size,children)"),
            f"list the artifacts of TeamCity build {number}",
        )
        files = listing.get("file") if isinstance(listing, dict) else None
        build_type = self._build_type(ref, data)
        found = []
        for entry in files if isinstance(files, list) else []:
            if not isinstance(entry, dict) or entry.get("children") is not None:
                continue  # a directory: its files are listed on their own
            path = entry.get("fullName")
            if not isinstance(path, str) or not path or ".." in path.split("/"):
                continue
            size = entry.get("size")
            found.append(RemoteArtifact(
                id=path, name=path,
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                url=f"{self.base_url}/repository/download/{quote(build_type, safe='')}/"
                f"{number}:id/{quote(path)}",
            ))
        return found

    async def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        number = build_id(ref)
        # Built from the artifact's path on the configured TeamCity, never from a URL.
        url = self._rest(f"/builds/id:{number}/artifacts/files/{quote(artifact.id)}")
        async for chunk in self.session.download(
            url, what=f"download artifact {artifact.name!r} of TeamCity build {number}",
            max_bytes=self.max_artifact_bytes, headers=self._auth, scope=SCOPE,
        ):
            yield chunk

    async def _pages(self, url: str, key: str, what: str) -> AsyncIterator[list[Any]]:
        """Each page's items under `key`, following `nextHref` on the configured server
        and the same REST collection only; one page is held at a time."""
        allowed = urlsplit(url).path
        page_url: str | None = url
        while page_url is not None:
            page = await self._json(page_url, what)
            if not isinstance(page, dict):
                raise PermanentError(f"{what}: TeamCity sent no list")
            items = page.get(key)
            yield items if isinstance(items, list) else []
            following = page.get("nextHref")
            if not isinstance(following, str) or not following:
                return
            page_url = urljoin(f"{self.base_url}/", following)
            if (urlsplit(page_url).path != allowed
                    or not page_url.startswith(f"{self.base_url}/")):
                raise PermanentError(f"{what}: TeamCity's next page is not {allowed}")

    async def native_results(self, ref: RunRef) -> TestRun | None:
        data = await self._build(ref)
        number = build_id(ref)
        build_type = self._build_type(ref, data)
        origin = Origin(label_of(data, ref),
                        url=f"{self.build_url(build_type, number)}?buildTab=tests")
        tests = results.Occurrences(str(number), origin)
        expected = self._test_count(data)
        if expected:
            url = self._rest("/testOccurrences", locator=(
                f"build:(id:{number}),count:{PAGE_SIZE},start:0"),
                fields=results.OCCURRENCE_FIELDS)
            async for page in self._pages(url, "testOccurrence",
                                          f"read the tests of TeamCity build {number}"):
                tests.add_page(page)
            tests.check_count(expected)
        run = tests.run
        problems = 0
        url = self._rest("/problemOccurrences", locator=f"build:(id:{number}),count:100",
                         fields=results.PROBLEM_FIELDS)
        async for page in self._pages(url, "problemOccurrence",
                                      f"read the problems of TeamCity build {number}"):
            problems += results.add_problems(run, page, Origin(origin.name, url=(
                f"{self.build_url(build_type, number)}?buildTab=buildLog")))
        results.add_build_verdict(run, data, origin)
        if not expected and not problems and not run.suites and not run.errors:
            return None  # nothing TeamCity recorded: the artifacts, if any, say it
        return run

    # ---- the change and the origin ----------------------------------------------------

    async def _root_url(self, instance: str) -> str | None:
        if instance not in self._roots:
            checked_id(instance, "VCS root instance")
            data = await self._json(
                self._rest(f"/vcs-root-instances/id:{instance}",
                           fields="id,properties(property(name,value))"),
                f"read TeamCity VCS root instance {instance}",
            )
            found = ((data or {}).get("properties") or {}).get("property") if isinstance(
                data, dict) else None
            url = next((p.get("value") for p in found or [] if isinstance(p, dict)
                        and p.get("name") == "url" and isinstance(p.get("value"), str)), None)
            self._roots[instance] = url
        return self._roots[instance]

    async def _checkouts(self, data: Mapping[str, Any]) -> list[tuple[Repository, str, str]]:
        """(forge repository, commit, remote) of each revision on a configured forge."""
        found: list[tuple[Repository, str, str]] = []
        for revision in revisions_of(data):
            instance = (revision.get("vcs-root-instance") or {}).get("id")
            sha = revision.get("version")
            if not isinstance(sha, str) or not isinstance(instance, str | int):
                continue
            remote = await self._root_url(str(instance))
            repository = forge_of_url(remote, self.settings) if remote else None
            if repository is not None and all(
                (repository, sha) != (r, s) for r, s, _ in found
            ):
                found.append((repository, sha, remote or ""))
        return found

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        try:
            data: Mapping[str, Any] = await self._build(ref)
        except NotFound:
            # A build TeamCity no longer has (cleaned up): the webhook's revision still
            # says where its report would have gone, so the give-up answer lands there.
            data = self._webhook_build(ref)
        found = await self._checkouts(data)
        if not found:
            raise PermanentError(
                f"TeamCity build {ref.run_id} of {ref.repo} built no repository on a forge "
                "Herald is configured for"
            )
        # Several: only the webhook's own revision may say which one the report is on.
        picked = [c for c in found if c[1] == ref.sha] if len(found) > 1 else found
        if len(picked) != 1:
            raise PermanentError(
                f"TeamCity build {ref.run_id} of {ref.repo} checked out several "
                f"repositories ({', '.join(sorted({c[2] for c in found}))}); Herald does "
                "not guess which one it reports on"
            )
        repository, sha, _ = picked[0]
        number = ref.change or change_from_branch(data.get("branchName"))
        if number is None:
            number = await self._pull_request_parameter(ref)
        numbers = (number,) if number else ()
        return Change(forge=repository.forge, repo=repository.repo, sha=sha, numbers=numbers,
                      numbers_known=bool(numbers))

    @staticmethod
    def _webhook_build(ref: RunRef) -> Mapping[str, Any]:
        instance = ref.extra.get("vcs_root_instance_id")
        if not ref.sha or not isinstance(instance, str):
            raise PermanentError(f"TeamCity has no build {ref.run_id} of {ref.repo}")
        revision = {"version": ref.sha, "vcs-root-instance": {"id": instance}}
        return {"revisions": {"revision": [revision]}}

    async def _pull_request_parameter(self, ref: RunRef) -> int | None:
        """The Pull Requests build feature's number, when the branch name does not say."""
        number = build_id(ref)
        url = self._rest(f"/builds/id:{number}/resulting-properties/{PULL_REQUEST_NUMBER}")
        try:
            response = await self.session.request(
                "GET", url, {**self._auth, "Accept": "text/plain"}, idempotent=True,
                scope=SCOPE, what=f"read the pull request of TeamCity build {number}")
        except NotFound:
            return None
        text = response.text.strip()
        return int(text) if text.isdigit() and 0 < int(text) < 2**31 else None

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        number = build_id(ref)
        data = self._builds.get(number)
        build_type = checked_id(str((data or {}).get("buildTypeId") or ref.repo),
                                "build configuration")
        shown = (data or {}).get("number") or ref.extra.get("number")
        return ReportOrigin(
            run=ref,
            name=label_of(data, ref),
            sequence=number,
            number=str(shown) if shown else str(number),
            url=self.build_url(build_type, number),
            failed=build.failed if build is not None else self._failed(data, ref.status),
        )

    # ---- the build's own surface ----------------------------------------------------------

    async def describe(self, ref: RunRef, run: TestRun, change: Change) -> None:
        """Herald's one line as the build's comment, unless the build has one of its own
        (someone's note in TeamCity): that is the user's, never replaced. Plain text; it
        names no test. Needs the Edit build comment permission: without it TeamCity
        answers 403, and the report on the forge stands alone."""
        data = await self._build(ref)
        text = surface_line((data.get("comment") or {}).get("text"), COMMENT_PREFIX, run,
                            change)
        if text is None:
            return
        number = build_id(ref)
        # Setting a comment replaces it: sending it again after a lost answer is safe.
        await self.session.request(
            "PUT", self._rest(f"/builds/id:{number}/comment"),
            {**self._auth, "Content-Type": "text/plain"}, text.encode(), idempotent=True,
            scope=SCOPE, what=f"comment on TeamCity build {number}")
        data["comment"] = {"text": text}

    # ---- queued again -------------------------------------------------------------------

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        """Queue the build configuration again on the failed build's branch and revisions
        (TeamCity reruns whole builds only, so `failed_only` asks for what it can)."""
        data = await self._build(ref, fresh=True)
        build_type = self._build_type(ref, data)
        marker = f"herald-retest:{secrets.token_hex(8)}"
        asker = ref.extra.get("requested_by")
        where = ref.extra.get("requested_on") or "the forge"
        who = f"/retest by @{asker} on {where}" if asker else f"a rerun asked for on {where}"
        body: dict[str, Any] = {
            "buildType": {"id": build_type},
            "comment": {"text": f"{COMMENT_PREFIX}{who} [{marker}]"},
        }
        if isinstance(data.get("branchName"), str):
            body["branchName"] = data["branchName"]
        revisions = [self._revision(r) for r in revisions_of(data)]
        if revisions:
            # The same commit or nothing: without the flag a revision TeamCity no longer
            # knows would quietly build the latest changes instead.
            body["revisions"] = {"revision": revisions, "failOnMissingRevisions": True}
        number = build_id(ref)

        async def queue() -> str:
            response = await self.session.request(
                "POST", self._rest("/buildQueue"),
                {**self._auth, "Content-Type": "application/json"},
                json.dumps(body).encode(), idempotent=False, scope=SCOPE,
                what=f"queue {build_type} again")
            queued = response.json() if response.content else {}
            return str(queued.get("id", "")) if isinstance(queued, dict) else ""

        async def landed() -> str | None:
            for later in await self._later_builds(build_type, number):
                text = (later.get("comment") or {}).get("text")
                if isinstance(text, str) and marker in text:
                    return str(later.get("id", ""))
            return None

        await append_once(queue, landed)
        return Rerun(runs=[build_type], jobs=[build_type])

    @staticmethod
    def _revision(revision: Mapping[str, Any]) -> dict[str, Any]:
        """The same commit of the same VCS root, in the shape the build queue takes."""
        instance = revision.get("vcs-root-instance") or {}
        pinned: dict[str, Any] = {"version": revision.get("version")}
        if isinstance(revision.get("vcsBranchName"), str):
            pinned["vcsBranchName"] = revision["vcsBranchName"]
        pinned["vcs-root-instance"] = {
            k: str(instance[k]) for k in ("id", "vcs-root-id") if instance.get(k) is not None
        }
        return pinned

    async def _later_builds(self, build_type: str, since: int) -> list[dict[str, Any]]:
        """The builds of `build_type` queued, running or finished after build `since`."""
        queued = await self._json(
            self._rest("/buildQueue", locator=f"buildType:(id:{build_type})",
                       fields=LATER_FIELDS),
            f"read the queue of {build_type}")
        started = await self._json(
            self._rest("/builds", locator=(
                f"buildType:(id:{build_type}),branch:default:any,running:any,"
                f"sinceBuild:(id:{since}),count:100"), fields=LATER_FIELDS),
            f"read the builds of {build_type} since {since}")
        found: list[dict[str, Any]] = []
        for listing in (queued, started):
            builds = listing.get("build") if isinstance(listing, dict) else None
            found += [b for b in builds or [] if isinstance(b, dict)]
        return found

    # ---- what /retest reruns --------------------------------------------------------------

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        """Without a build Herald recorded reporting on the commit (`latest_failed_of`),
        there is none to name."""
        return await self.latest_failed_of(change, ())

    async def latest_failed_of(self, change: Change, reported: Sequence[RunRef]) -> list[RunRef]:
        """Of the builds reported on the change's commit, the latest of each build
        configuration, if it failed and nothing has built that configuration on its branch
        since (a build queued by an earlier `/retest` is not asked for twice)."""
        latest = latest_per_key(
            (r for r in reported if r.provider == NAME and r.run_id.isdigit()),
            key=lambda r: r.repo, order=lambda r: int(r.run_id),
        )
        found = []
        for ref in latest:
            if await self._still_failed(ref):
                found.append(self._retest_ref(change, ref))
        return found

    async def _still_failed(self, ref: RunRef) -> bool:
        try:
            data = await self._build(ref, fresh=True)
        except NotFound:
            return False  # the build is gone (cleaned up)
        if not self._failed(data, str(data.get("status") or "")):
            return False
        branch = data.get("branchName")
        later = await self._later_builds(self._build_type(ref, data), build_id(ref))
        return not any(b.get("branchName") == branch for b in later)

    def _retest_ref(self, change: Change, ref: RunRef) -> RunRef:
        data = self._builds.get(build_id(ref))
        build_type = self._build_type(ref, data or {})
        label = label_of(data, ref)
        shown = (data or {}).get("number") or ref.extra.get("number") or ref.run_id
        return RunRef(
            provider=NAME, repo=build_type, run_id=ref.run_id, sha=change.sha,
            branch=ref.branch, change=change.numbers[0] if change.numbers else ref.change,
            url=self.build_url(build_type, build_id(ref)),
            status=str((data or {}).get("status") or ref.status or ""),
            extra={**ref.extra, "name": f"{label} #{shown}"},
        )


def create_client(
    settings: ProviderSettings, http: httpx.AsyncClient | None = None
) -> TeamCityClient:
    """The worker's TeamCity client over its httpx client (or one of its own when None).

    Raises `NotConfigured` without the URL or token, `ConfigError` for a malformed
    setting.
    """
    whole = Settings.from_env(settings.environ)
    config = whole.config.teamcity
    token = settings.secret("token")
    require_settings("TeamCity", "an access token of a user who may view the builds and "
                     "build configuration settings, run builds for /retest", {
                         "HERALD_TEAMCITY_URL": config.url,
                         "HERALD_TEAMCITY_TOKEN": token.reveal() if token else None,
                     })
    assert config.url is not None and token is not None
    session = streamed_session(http, provider=NAME, label="TeamCity", base_url=str(config.url),
                               seconds=config.timeout)
    return TeamCityClient(
        session,
        token=token.reveal().strip(),
        settings=whole,
        max_artifact_bytes=ArtifactLimits.from_settings(whole).max_download_bytes,
        owns_http=http is None,
    )
