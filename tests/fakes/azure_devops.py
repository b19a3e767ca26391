"""A fake Azure DevOps REST API (one organization) on loopback, for the real httpx client.

It serves every endpoint Herald calls, under `/{organization}` as `dev.azure.com` does,
with answers shaped like the examples of https://learn.microsoft.com/rest/api/azure/devops/
(build/builds, timeline, artifacts, stages, test/runs, test/results, git pull request
statuses, threads, comments and likes, ims identities, security access control lists),
and Azure DevOps' manners where they matter to a client:

- a personal access token over Basic with an empty user name; a wrong one → 401, none at
  all → 203 with the HTML sign-in page (as the real service answers an anonymous call);
- `api-version` required on every call (400 without it); the stages API only as a
  `-preview` version;
- bodies checked against the documented shapes: a status needs `context.name` and a
  state of its enum; a thread needs comments; a comment over 150,000 characters → 400
  "A discussion comment cannot be longer than 150000 characters"; results `$top` ≤ 1,000;
- lists as `{"count": n, "value": [...]}`; builds paged with `x-ms-continuationtoken`.

Every request is recorded as a `Call`; `fail_next` makes the next N requests matching a
pattern answer 429 (with `Retry-After`), a 5xx, or hang; `delay_next` answers them after
a "delay" with `Retry-After` on a 200, as the global rate limiter does; `lose_answer` does
them and loses the answer. Injection, lost answers, routing and serving are every fake's
(`tests.fakes.faults`); the answers' words are Azure DevOps'.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes.faults import FakeAPI, Faults

TOKEN = "azdo-pat-for-herald-tests"
ORGANIZATION = "contoso"
COMMENT_LIMIT = 150_000
STATUS_STATES = ("notSet", "pending", "succeeded", "failed", "error", "notApplicable")
BUILD_NAMESPACE = "33344d9c-fc72-4d6f-aba5-fa317101a7e9"
SIGN_IN = "<html><head><title>Azure DevOps Services | Sign In</title></head></html>"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # decoded, after /{organization}
    query: dict[str, str]
    body: Any

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


#: https://learn.microsoft.com/rest/api/azure/devops/test/attachments: the types a test
#: attachment may have; a file name takes no path or reserved characters.
ATTACHMENT_TYPES = ("GeneralAttachment", "AfnStrip", "BugFilingData", "CodeCoverage",
                    "IntermediateCollectorData", "RunConfig", "TestImpactDetails",
                    "TmiTestRunDeploymentFiles", "TmiTestRunReverseDeploymentFiles",
                    "TmiTestResultDetail", "TmiTestRunSummary")
ATTACHMENT_NAME_REFUSED = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


class HttpError(Exception):
    def __init__(self, status: int, message: str, type_key: str = "InvalidArgumentValue") -> None:
        super().__init__(status)
        self.status = status
        self.body = {"$id": "1", "innerException": None, "message": message,
                     "typeName": f"Microsoft.VisualStudio.Services.{type_key}Exception",
                     "typeKey": f"{type_key}Exception", "errorCode": 0, "eventId": 3000}


def not_found(what: str) -> HttpError:
    return HttpError(404, f"{what} does not exist or you do not have permissions", "NotFound")


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class FakeAzureDevOps(FakeAPI):
    """The state of one small organization and the ASGI app that serves it."""

    def __init__(self, token: str = TOKEN, organization: str = ORGANIZATION) -> None:
        super().__init__()
        self.token = token
        self.organization = organization
        self.url = ""  # the organization's URL, set when served
        self.calls: list[Call] = []
        #: Requests answered after a "delay", with `Retry-After` on their 200.
        self.delayed = Faults()
        self.me = {"id": "a1b2c3d4-0000-4000-8000-00000000beef",
                   "descriptor": "Microsoft.TeamFoundation.ServiceIdentity;herald-pat",
                   "providerDisplayName": "Herald Bot"}
        self.projects: dict[str, dict[str, Any]] = {}
        self.builds: dict[int, dict[str, Any]] = {}
        self.timelines: dict[int, list[dict[str, Any]]] = {}
        self.artifacts: dict[int, list[tuple[dict[str, Any], bytes]]] = {}
        self.test_runs: dict[int, dict[str, Any]] = {}
        self.results: dict[int, list[dict[str, Any]]] = {}
        #: Test run attachments (every one posted, twins of a name included) and bytes.
        self.attachments: dict[int, list[dict[str, Any]]] = {}
        self.attachment_bytes: dict[int, bytes] = {}
        #: The largest attachment the fake takes (the service's own is not documented).
        self.attachment_max_bytes = 100 * 1024 * 1024
        self.pulls: dict[int, dict[str, Any]] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}  # "pr:1187" / "commit:<sha>"
        self.threads: dict[int, list[dict[str, Any]]] = {}
        self.likes: list[tuple[int, int, int, str]] = []
        self.identities: dict[str, dict[str, Any]] = {}
        self.aces: dict[str, dict[str, int]] = {}  # descriptor -> {"allow", "deny"} on projects
        self.retried_stages: list[tuple[int, str]] = []
        self.queued: list[dict[str, Any]] = []
        self._ids = itertools.count(7000)
        self._lock = threading.Lock()
        p = r"(?P<project>[^/]+)/_apis"
        repo = rf"{p}/git/repositories/(?P<repo>[^/]+)"
        pull = rf"{repo}/pullRequests/(?P<pr>\d+)"
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            (m, re.compile(f"^/{pattern}$", re.IGNORECASE), handler)
            for m, pattern, handler in [
                ("GET", r"_apis/connectionData", self.connection_data),
                ("GET", r"_apis/identities", self.read_identities),
                ("GET", r"_apis/accesscontrollists/(?P<ns>[^/]+)", self.query_acls),
                ("GET", rf"{p}/build/builds", self.list_builds),
                ("POST", rf"{p}/build/builds", self.queue_build),
                ("GET", rf"{p}/build/builds/(?P<bid>\d+)", self.get_build),
                ("GET", rf"{p}/build/builds/(?P<bid>\d+)/timeline", self.get_timeline),
                ("GET", rf"{p}/build/builds/(?P<bid>\d+)/artifacts", self.get_artifacts),
                ("PATCH", rf"{p}/build/builds/(?P<bid>\d+)/stages/(?P<stage>[^/]+)",
                 self.update_stage),
                ("GET", rf"{p}/test/runs", self.list_test_runs),
                ("GET", rf"{p}/test/runs/(?P<rid>\d+)/results", self.list_results),
                ("POST", rf"{p}/test/runs/(?P<rid>\d+)/attachments", self.create_attachment),
                ("GET", rf"{p}/test/runs/(?P<rid>\d+)/attachments", self.list_attachments),
                ("GET", rf"{p}/test/runs/(?P<rid>\d+)/attachments/(?P<aid>\d+)",
                 self.get_attachment),
                ("GET", rf"{repo}/pullRequests", self.list_pulls),
                ("GET", rf"{pull}", self.get_pull),
                ("GET", rf"{pull}/statuses", self.list_pr_statuses),
                ("POST", rf"{pull}/statuses", self.create_pr_status),
                ("GET", rf"{repo}/commits/(?P<sha>\w+)/statuses", self.list_commit_statuses),
                ("POST", rf"{repo}/commits/(?P<sha>\w+)/statuses", self.create_commit_status),
                ("GET", rf"{pull}/threads", self.list_threads),
                ("POST", rf"{pull}/threads", self.create_thread),
                ("GET", rf"{pull}/threads/(?P<tid>\d+)", self.get_thread),
                ("POST", rf"{pull}/threads/(?P<tid>\d+)/comments", self.create_comment),
                ("PATCH", rf"{pull}/threads/(?P<tid>\d+)/comments/(?P<cid>\d+)",
                 self.update_comment),
                ("DELETE", rf"{pull}/threads/(?P<tid>\d+)/comments/(?P<cid>\d+)",
                 self.delete_comment),
                ("POST", rf"{pull}/threads/(?P<tid>\d+)/comments/(?P<cid>\d+)/likes",
                 self.like_comment),
            ]
        ]

    # ---- building the world -------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def web(self, project_id: str) -> str:
        return f"https://dev.azure.com/{self.organization}/{project_id}"

    def add_project(self, project_id: str, name: str) -> None:
        self.projects[project_id] = {"id": project_id, "name": name, "state": "wellFormed",
                                     "visibility": "private"}

    def _project(self, ref: str) -> dict[str, Any]:
        for project in self.projects.values():
            if ref.lower() in (project["id"].lower(), project["name"].lower()):
                return project
        raise not_found(f"The project {ref}")

    def add_build(self, project_id: str, build_id: int, *, definition: tuple[int, str],
                  sha: str, branch: str, result: str = "failed", pull: int | None = None,
                  repository: tuple[str, str] = ("", "")) -> dict[str, Any]:
        web = self.web(project_id)
        repo_id, repo_name = repository
        build = {
            "_links": {"web": {"href": f"{web}/_build/results?buildId={build_id}"}},
            "id": build_id, "buildNumber": f"20261125.{build_id % 100}", "status": "completed",
            "result": result, "queueTime": "2026-11-25T08:58:12.44Z",
            "startTime": "2026-11-25T08:58:20.11Z", "finishTime": "2026-11-25T09:04:55.90Z",
            "url": f"{web}/_apis/build/Builds/{build_id}",
            "definition": {"id": definition[0], "name": definition[1], "type": "build",
                           "queueStatus": "enabled", "revision": 12},
            "project": self.projects[project_id], "uri": f"vstfs:///Build/Build/{build_id}",
            "sourceBranch": branch, "sourceVersion": sha, "priority": "normal",
            "reason": "pullRequest" if pull else "individualCI",
            "triggerInfo": {"pr.number": str(pull), "pr.isFork": "False"} if pull else {},
            "repository": {"id": repo_id, "type": "TfsGit", "name": repo_name,
                           "url": f"https://dev.azure.com/{self.organization}/_git/{repo_name}"},
            "requestedFor": {"displayName": "Priya Nair", "uniqueName": "priya@contoso.com"},
        }
        self.builds[build_id] = build
        self.timelines.setdefault(build_id, [])
        self.artifacts.setdefault(build_id, [])
        return build

    def add_record(self, build_id: int, kind: str, name: str, *, result: str,
                   identifier: str | None = None, parent: str | None = None) -> dict[str, Any]:
        record_id = f"{self.next_id():08x}-0000-4000-8000-000000000000"
        record = {"id": record_id, "parentId": parent, "type": kind, "name": name,
                  "identifier": identifier, "state": "completed", "result": result,
                  "attempt": 1, "order": len(self.timelines[build_id]) + 1,
                  "log": {"id": len(self.timelines[build_id]) + 3,
                          "url": f"{self.builds[build_id]['url']}/logs/3"}}
        self.timelines[build_id].append(record)
        return record

    def add_artifact(self, build_id: int, name: str, data: bytes) -> None:
        artifact = {"id": self.next_id(), "name": name, "source": "d1c2b3a4",
                    "resource": {"type": "Container", "data": f"#/{self.next_id()}/{name}",
                                 "properties": {"localpath": f"/a/{name}",
                                                "artifactsize": str(len(data))},
                                 "url": f"{self.builds[build_id]['url']}/artifacts?"
                                        f"artifactName={name}",
                                 "downloadUrl": "https://artprodcus3.artifacts.visualstudio"
                                                ".com/blob/never-fetched"}}
        self.artifacts[build_id].append((artifact, data))

    def add_test_run(self, build_id: int, run_id: int, name: str, results: list[dict[str, Any]],
                     *, job: tuple[str, str, str] | None = None, attempt: int = 1) -> None:
        build = self.builds[build_id]
        run: dict[str, Any] = {
            "id": run_id, "name": name, "url": f"{build['url']}/testrun/{run_id}",
            "build": {"id": str(build_id)}, "isAutomated": True, "state": "Completed",
            "totalTests": len(results),
            "passedTests": sum(1 for r in results if r.get("outcome") == "Passed"),
            "webAccessUrl": f"https://dev.azure.com/{self.organization}/Payments/_TestManagement"
                            f"/Runs?runId={run_id}",
            "buildConfiguration": {"id": build_id, "uri": build["uri"]},
        }
        if job is not None:
            stage, phase, job_name = job
            run["pipelineReference"] = {
                "pipelineId": build_id,
                "stageReference": {"stageName": stage, "attempt": attempt},
                "phaseReference": {"phaseName": phase, "attempt": attempt},
                "jobReference": {"jobName": job_name, "attempt": attempt},
            }
        self.test_runs[run_id] = run
        self.results[run_id] = [
            {"id": 100000 + i, "testRun": {"id": str(run_id)}, "priority": 0,
             "state": "Completed", "durationInMs": 12.5, "automatedTestType": "JUnit",
             **result}
            for i, result in enumerate(results)
        ]

    def add_pull(self, pull_id: int, *, project_id: str, repository: tuple[str, str],
                 merge_sha: str, source_sha: str, status: str = "active") -> None:
        repo_id, repo_name = repository
        self.pulls[pull_id] = {
            "pullRequestId": pull_id, "codeReviewId": pull_id, "status": status,
            "repository": {"id": repo_id, "name": repo_name, "project": self.projects[project_id]},
            "sourceRefName": "refs/heads/feature/idempotent-refunds",
            "targetRefName": "refs/heads/main", "mergeStatus": "succeeded",
            "lastMergeSourceCommit": {"commitId": source_sha},
            "lastMergeCommit": {"commitId": merge_sha},
            "title": "Idempotent refunds", "isDraft": False,
        }
        self.threads.setdefault(pull_id, [])

    def add_identity(self, identity_id: str, descriptor: str, groups: list[str]) -> None:
        self.identities[identity_id] = {
            "id": identity_id, "descriptor": descriptor,
            "subjectDescriptor": f"aad.{identity_id[:8]}", "isActive": True,
            "memberOf": [{"identityType": g.split(";")[0], "identifier": g.split(";")[1]}
                         for g in groups],
            "memberIds": [], "members": [],
        }

    def add_comment(self, pull_id: int, content: str, *, author: dict[str, Any],
                    thread_id: int | None = None) -> dict[str, Any]:
        """A person's new thread on the pull request (as when they comment)."""
        thread = self._new_thread(pull_id, content, author)
        if thread_id is not None:
            thread["id"] = thread_id
        return thread

    def fail_next(self, pattern: str, *, times: int = 1, status: int = 429,
                  hang: bool = False, headers: dict[str, str] | None = None) -> None:
        if status == 429 and headers is None and not hang:
            headers = {"Retry-After": "1", "X-RateLimit-Resource": "Core",
                       "X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"}
        self.injected.fail(pattern, times=times, status=status, hang=hang,
                           headers=headers or {})

    def delay_next(self, pattern: str, seconds: int, *, times: int = 1) -> None:
        """Answer as usual, saying the request was delayed and the next should wait."""
        self.delayed.fail(pattern, times=times, status=200, hang=False, headers={
            "Retry-After": str(seconds), "X-RateLimit-Resource": "Core",
            "X-RateLimit-Delay": "0.5", "X-RateLimit-Limit": "200",
            "X-RateLimit-Remaining": "30"})

    # ---- reading what happened ----------------------------------------------------------

    def our_threads(self, pull_id: int) -> list[dict[str, Any]]:
        return [t for t in self.threads[pull_id] if not t["isDeleted"]
                and t["comments"][0]["author"]["id"] == self.me["id"]]

    def herald_statuses(self, key: str) -> list[dict[str, Any]]:
        return [s for s in self.statuses.get(key, []) if s["context"].get("genre") == "herald"]

    # ---- the ASGI app -------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool | None:
        header = request.headers.get("authorization")
        if header is None:
            return None
        if not header.startswith("Basic "):
            return False
        try:
            _user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return password == self.token

    async def _handle(self, request: Request) -> Response:
        raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
        raw_path = raw.split("?", 1)[0]
        prefix = f"/{self.organization}"
        if not raw_path.lower().startswith(prefix.lower() + "/"):
            return JSONResponse({"message": "organization not found"}, status_code=404)
        path = unquote(raw_path[len(prefix):])
        method = request.method
        body_bytes = await request.body()
        body: Any = None
        if body_bytes:
            try:
                body = json.loads(body_bytes)
            except ValueError:
                return JSONResponse(HttpError(400, "The request body is not JSON").body, 400)
        query = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
        target = f"{method} {path}"
        fault, _lost = self.intercept(request, target)
        delay = self.delayed.take_fault(target) if fault is None else None
        self.calls.append(Call(method, path, query, body))
        if fault is not None:
            if fault.hang:
                await self.injected.hold(request)
                return JSONResponse({"message": "gateway timeout"}, status_code=504)
            message = "TF400733: The request has been canceled: Request was blocked due to " \
                "exceeding usage of resource 'Core'" if fault.status == 429 else "fault injected"
            return JSONResponse({"message": message}, status_code=fault.status,
                                headers=fault.headers)
        authorized = self._authorized(request)
        if authorized is None:
            return Response(SIGN_IN, status_code=203, media_type="text/html")
        if not authorized:
            return Response("Access Denied: The Personal Access Token used has expired.",
                            status_code=401, media_type="text/plain")
        version = query.get("api-version")
        if not version:
            return JSONResponse(HttpError(400, "No api-version was supplied for the "
                                          f"\"{method}\" request.", "VssVersionNotSpecified").body,
                                400)
        try:
            handler, params = self.route(method, raw_path[len(prefix):])
        except LookupError:
            return JSONResponse(HttpError(404, f"no route for {target}", "RouteNotFound").body,
                                404)
        try:
            with self._lock:
                result = handler(query, body if body is not None else {}, **params)
        except HttpError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        if isinstance(result, Response):
            return result
        headers: dict[str, str] = {}
        if isinstance(result, tuple):
            result, headers = result
        if delay is not None:
            headers = {**headers, **delay.headers}
        return JSONResponse(result, headers=headers)

    @staticmethod
    def _values(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"count": len(items), "value": items}

    # ---- identity and security ----------------------------------------------------------

    def connection_data(self, query: dict[str, str], body: Any) -> Any:
        return {"authenticatedUser": {**self.me, "isActive": True},
                "authorizedUser": {**self.me, "isActive": True},
                "instanceId": "f844ec47-a9db-4511-8281-8b63f4eaf94e",
                "locationServiceData": {"serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7"}}

    def read_identities(self, query: dict[str, str], body: Any) -> Any:
        ids = [i for i in query.get("identityIds", "").split(",") if i]
        if not ids:
            raise HttpError(400, "identityIds or descriptors or subjectDescriptors is required")
        expanded = query.get("queryMembership", "none").lower() == "expanded"
        found = []
        for identity_id in ids:
            identity = self.identities.get(identity_id)
            if identity is None:
                found.append(None)
                continue
            found.append(identity if expanded else {**identity, "memberOf": []})
        return self._values(found)  # type: ignore[arg-type]

    def query_acls(self, query: dict[str, str], body: Any, ns: str) -> Any:
        if ns != BUILD_NAMESPACE:
            raise not_found(f"Security namespace {ns}")
        token = query.get("token", "")
        if token not in self.projects:
            return self._values([])
        wanted = [d for d in query.get("descriptors", "").split(",") if d]
        extended = query.get("includeExtendedInfo") == "true"
        aces = {}
        for descriptor in wanted:
            ace = self.aces.get(descriptor)
            if ace is None:
                continue
            entry: dict[str, Any] = {"descriptor": descriptor, "allow": ace["allow"],
                                     "deny": ace["deny"]}
            if extended:
                entry["extendedInfo"] = {"effectiveAllow": ace["allow"],
                                         "effectiveDeny": ace["deny"],
                                         "inheritedAllow": 0, "inheritedDeny": 0}
            aces[descriptor] = entry
        return self._values([{"inheritPermissions": True, "token": token,
                              "acesDictionary": aces}])

    # ---- builds -------------------------------------------------------------------------

    def _build(self, project: str, bid: str) -> dict[str, Any]:
        found = self._project(project)
        build = self.builds.get(int(bid))
        if build is None or build["project"]["id"] != found["id"]:
            raise not_found(f"Build {bid}")
        return build

    def get_build(self, query: dict[str, str], body: Any, project: str, bid: str) -> Any:
        return self._build(project, bid)

    def get_timeline(self, query: dict[str, str], body: Any, project: str, bid: str) -> Any:
        build = self._build(project, bid)
        return {"records": self.timelines[build["id"]], "lastChangedBy": "00000002",
                "id": "d1c2b3a4", "changeId": 42, "url": f"{build['url']}/Timeline"}

    def get_artifacts(self, query: dict[str, str], body: Any, project: str, bid: str) -> Any:
        build = self._build(project, bid)
        name = query.get("artifactName")
        if name is None:
            return self._values([a for a, _ in self.artifacts[build["id"]]])
        for artifact, data in self.artifacts[build["id"]]:
            if artifact["name"] == name:
                if query.get("$format") == "zip":
                    return Response(data, media_type="application/zip",
                                    headers={"Content-Length": str(len(data))})
                return artifact
        raise not_found(f"Artifact {name}")

    def list_builds(self, query: dict[str, str], body: Any, project: str) -> Any:
        found = self._project(project)
        builds = [b for b in self.builds.values() if b["project"]["id"] == found["id"]]
        if query.get("branchName"):
            builds = [b for b in builds if b["sourceBranch"] == query["branchName"]]
        if query.get("repositoryId"):
            if query.get("repositoryType") is None:
                raise HttpError(400, "repositoryType is required with repositoryId")
            builds = [b for b in builds if b["repository"]["id"] == query["repositoryId"]]
        builds.sort(key=lambda b: -b["id"])
        top = int(query.get("$top", "1000"))
        start = int(query.get("continuationToken", "0"))
        page = builds[start:start + min(top, 2)]  # small pages: the client must follow them
        headers = {}
        if start + len(page) < min(len(builds), top):
            headers["x-ms-continuationtoken"] = str(start + len(page))
        return self._values(page), headers

    def queue_build(self, query: dict[str, str], body: Any, project: str) -> Any:
        found = self._project(project)
        definition = body.get("definition")
        if not isinstance(definition, dict) or not isinstance(definition.get("id"), int):
            raise HttpError(400, "Value cannot be null.\r\nParameter name: build.Definition")
        queued = {"id": self.next_id(), "status": "notStarted", "definition": definition,
                  "sourceBranch": body.get("sourceBranch"),
                  "sourceVersion": body.get("sourceVersion"), "project": found,
                  "_links": {"web": {"href": f"{self.web(found['id'])}/_build/results"}}}
        self.queued.append(queued)
        return queued

    def update_stage(self, query: dict[str, str], body: Any, project: str, bid: str,
                     stage: str) -> Any:
        if "-preview" not in query.get("api-version", ""):
            raise HttpError(400, "The requested version \"7.1\" of the resource is under "
                            "preview. The -preview flag must be supplied in the api-version "
                            "for such requests.", "VssInvalidPreviewVersion")
        build = self._build(project, bid)
        if body.get("state") not in ("retry", "cancel"):
            raise HttpError(400, "state must be retry or cancel")
        records = [r for r in self.timelines[build["id"]]
                   if r["type"] == "Stage" and r["identifier"] == stage]
        if not records:
            raise not_found(f"Stage {stage}")
        self.retried_stages.append((build["id"], stage))
        build["status"] = "inProgress"
        return Response(status_code=204)

    # ---- tests --------------------------------------------------------------------------

    def _attachment_run(self, project: str, rid: str) -> tuple[dict[str, Any], int]:
        found = self._project(project)
        if int(rid) not in self.test_runs:
            raise not_found(f"Test run {rid}")
        return found, int(rid)

    def create_attachment(self, query: dict[str, str], body: Any, project: str,
                          rid: str) -> Any:
        found, run = self._attachment_run(project, rid)
        name, stream = body.get("fileName"), body.get("stream")
        if not isinstance(name, str) or not name or ATTACHMENT_NAME_REFUSED.search(name):
            raise HttpError(400, "The file name is not valid.")
        if not isinstance(stream, str) or not stream:
            raise HttpError(400, "Value cannot be null. Parameter name: stream")
        if body.get("attachmentType", "GeneralAttachment") not in ATTACHMENT_TYPES:
            raise HttpError(400, "The attachment type is not valid.")
        try:
            data = base64.b64decode(stream, validate=True)
        except ValueError:
            raise HttpError(400, "The stream is not valid base64.") from None
        if len(data) > self.attachment_max_bytes:
            raise HttpError(400, "The attachment is too large.")
        aid = self.next_id()
        url = f"{self.url}/{found['id']}/_apis/test/Runs/{run}/Attachments/{aid}"
        self.attachments.setdefault(run, []).append({
            "id": aid, "url": url, "fileName": name, "comment": body.get("comment", ""),
            "createdDate": now_iso(), "size": len(data),
            "attachmentType": body.get("attachmentType", "GeneralAttachment")})
        self.attachment_bytes[aid] = data
        return {"id": aid, "url": url}

    def list_attachments(self, query: dict[str, str], body: Any, project: str, rid: str) -> Any:
        _, run = self._attachment_run(project, rid)
        return self._values(list(self.attachments.get(run, [])))

    def get_attachment(self, query: dict[str, str], body: Any, project: str, rid: str,
                       aid: str) -> Any:
        _, run = self._attachment_run(project, rid)
        if not any(a["id"] == int(aid) for a in self.attachments.get(run, [])):
            raise not_found(f"Attachment {aid}")
        return Response(self.attachment_bytes[int(aid)], media_type="application/octet-stream")

    def list_test_runs(self, query: dict[str, str], body: Any, project: str) -> Any:
        self._project(project)
        uri = query.get("buildUri")
        runs = [r for r in self.test_runs.values()
                if uri is None or r["buildConfiguration"]["uri"] == uri]
        if query.get("includeRunDetails") != "true":
            runs = [{k: v for k, v in r.items() if k != "pipelineReference"} for r in runs]
        return self._values(runs)

    def list_results(self, query: dict[str, str], body: Any, project: str, rid: str) -> Any:
        self._project(project)
        if int(rid) not in self.test_runs:
            raise not_found(f"Test run {rid}")
        top = int(query.get("$top", "100"))
        if top > 1000:
            raise HttpError(400, "The value of $top must be at most 1000")
        skip = int(query.get("$skip", "0"))
        return self._values(self.results[int(rid)][skip:skip + top])

    # ---- pull requests ------------------------------------------------------------------

    def _pull(self, project: str, repo: str, pr: str) -> dict[str, Any]:
        self._project(project)
        pull = self.pulls.get(int(pr))
        if pull is None or pull["repository"]["id"] != repo:
            raise not_found(f"Pull request {pr}")
        return pull

    def list_pulls(self, query: dict[str, str], body: Any, project: str, repo: str) -> Any:
        self._project(project)
        status = query.get("searchCriteria.status", "active")
        return self._values([p for p in self.pulls.values() if p["repository"]["id"] == repo
                             and status in ("all", p["status"])])

    def get_pull(self, query: dict[str, str], body: Any, project: str, repo: str,
                 pr: str) -> Any:
        return self._pull(project, repo, pr)

    def _check_status(self, body: Any) -> dict[str, Any]:
        context = body.get("context")
        if not isinstance(context, dict) or not context.get("name"):
            raise HttpError(400, "The status context name is required")
        if body.get("state") not in STATUS_STATES:
            raise HttpError(400, f"Invalid state {body.get('state')!r}")
        status = {"id": self.next_id(), "state": body["state"],
                  "description": body.get("description"), "context": dict(context),
                  "targetUrl": body.get("targetUrl"), "creationDate": now_iso(),
                  "updatedDate": now_iso(), "createdBy": dict(self.me)}
        return status

    def list_pr_statuses(self, query: dict[str, str], body: Any, project: str, repo: str,
                         pr: str) -> Any:
        self._pull(project, repo, pr)
        return self._values(self.statuses.get(f"pr:{pr}", []))

    def create_pr_status(self, query: dict[str, str], body: Any, project: str, repo: str,
                         pr: str) -> Any:
        self._pull(project, repo, pr)
        status = self._check_status(body)
        self.statuses.setdefault(f"pr:{pr}", []).append(status)
        return status

    def list_commit_statuses(self, query: dict[str, str], body: Any, project: str, repo: str,
                             sha: str) -> Any:
        self._project(project)
        return self._values(self.statuses.get(f"commit:{sha}", []))

    def create_commit_status(self, query: dict[str, str], body: Any, project: str, repo: str,
                             sha: str) -> Any:
        self._project(project)
        status = self._check_status(body)
        self.statuses.setdefault(f"commit:{sha}", []).append(status)
        return status

    def _check_content(self, content: Any) -> str:
        if not isinstance(content, str) or not content.strip():
            raise HttpError(400, "The comment content is required.\r\nParameter name: "
                            "comment.Content")
        if len(content) > COMMENT_LIMIT:
            raise HttpError(400, f"A discussion comment cannot be longer than {COMMENT_LIMIT} "
                            "characters.\r\nParameter name: comment.Content")
        return content

    def _comment(self, comment_id: int, content: str, author: dict[str, Any],
                 parent: int = 0) -> dict[str, Any]:
        return {"id": comment_id, "parentCommentId": parent, "author": dict(author),
                "content": content, "publishedDate": now_iso(), "lastUpdatedDate": now_iso(),
                "lastContentUpdatedDate": now_iso(), "commentType": "text", "usersLiked": [],
                "isDeleted": False}

    def _new_thread(self, pr: int, content: str, author: dict[str, Any],
                    status: Any = None) -> dict[str, Any]:
        thread = {"id": self.next_id(), "publishedDate": now_iso(),
                  "lastUpdatedDate": now_iso(), "comments": [self._comment(1, content, author)],
                  "status": status or "unknown", "threadContext": None, "properties": {},
                  "identities": None, "isDeleted": False}
        self.threads[pr].append(thread)
        return thread

    def list_threads(self, query: dict[str, str], body: Any, project: str, repo: str,
                     pr: str) -> Any:
        self._pull(project, repo, pr)
        return self._values(self.threads[int(pr)])

    def create_thread(self, query: dict[str, str], body: Any, project: str, repo: str,
                      pr: str) -> Any:
        self._pull(project, repo, pr)
        comments = body.get("comments")
        if not isinstance(comments, list) or not comments or not isinstance(comments[0], dict):
            raise HttpError(400, "A thread must have at least one comment")
        content = self._check_content(comments[0].get("content"))
        return self._new_thread(int(pr), content, self.me, body.get("status"))

    def _thread(self, pr: str, tid: str) -> dict[str, Any]:
        for thread in self.threads.get(int(pr), []):
            if thread["id"] == int(tid):
                return thread
        raise not_found(f"Thread {tid}")

    def get_thread(self, query: dict[str, str], body: Any, project: str, repo: str, pr: str,
                   tid: str) -> Any:
        self._pull(project, repo, pr)
        return self._thread(pr, tid)

    def create_comment(self, query: dict[str, str], body: Any, project: str, repo: str,
                       pr: str, tid: str) -> Any:
        self._pull(project, repo, pr)
        thread = self._thread(pr, tid)
        content = self._check_content(body.get("content"))
        comment = self._comment(len(thread["comments"]) + 1, content, self.me,
                                int(body.get("parentCommentId") or 0))
        thread["comments"].append(comment)
        return comment

    def _find_comment(self, pr: str, tid: str, cid: str) -> dict[str, Any]:
        for comment in self._thread(pr, tid)["comments"]:
            if comment["id"] == int(cid) and not comment["isDeleted"]:
                return comment
        raise not_found(f"Comment {cid}")

    def update_comment(self, query: dict[str, str], body: Any, project: str, repo: str,
                       pr: str, tid: str, cid: str) -> Any:
        self._pull(project, repo, pr)
        comment = self._find_comment(pr, tid, cid)
        if comment["author"]["id"] != self.me["id"]:
            raise HttpError(403, "You can only edit your own comments", "Unauthorized")
        comment["content"] = self._check_content(body.get("content"))
        comment["lastContentUpdatedDate"] = now_iso()
        return comment

    def delete_comment(self, query: dict[str, str], body: Any, project: str, repo: str,
                       pr: str, tid: str, cid: str) -> Any:
        self._pull(project, repo, pr)
        comment = self._find_comment(pr, tid, cid)
        if comment["author"]["id"] != self.me["id"]:
            raise HttpError(403, "You can only delete your own comments", "Unauthorized")
        comment["isDeleted"] = True
        thread = self._thread(pr, tid)
        if all(c["isDeleted"] for c in thread["comments"]):
            thread["isDeleted"] = True
        return Response(status_code=200)

    def like_comment(self, query: dict[str, str], body: Any, project: str, repo: str,
                     pr: str, tid: str, cid: str) -> Any:
        self._pull(project, repo, pr)
        comment = self._find_comment(pr, tid, cid)
        like = (int(pr), int(tid), int(cid), self.me["id"])
        if like not in self.likes:  # one like per user, however often it is sent
            self.likes.append(like)
            comment["usersLiked"].append(dict(self.me))
        return Response(status_code=204)
