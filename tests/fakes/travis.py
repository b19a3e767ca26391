"""A fake Travis CI API v3 on loopback, for the real Travis client to talk to over HTTP.

It serves what Herald calls, shaped like Travis' own answers (https://developer.travis-ci.com/,
the resource renderers of travis-ci/travis-api): `@type`, `@href`, `@representation` on
every resource, minimal nested resources, `@pagination` on collections. Its manners:

- `Travis-API-Version: 3` on every request, else 400 (the v2 API would answer something
  else entirely); `Authorization: token <token>`: none → 403 `login_required`, a wrong
  one → 403 `access_denied`, as Travis answers;
- `GET /config` (no token needed) publishes the webhook public key;
- `GET /build/{id}`, `GET /build/{id}/jobs` with `limit` (at most 100) and `offset`, the
  jobs' `config` only with `include=job.config` (the standard representation has none),
  `GET /job/{id}`, `GET /repo/{id}` (with `vcs_type`);
- `GET /job/{id}/log`: the raw log only with `Accept: text/plain` (JSON otherwise), or a
  redirect to where the archived log lives (`log_redirects`);
- `POST /job/{id}/restart`: 202 `pending`, the job back to `created` with a new
  `restarted_at`; recorded in `restarts`. Without restart access (`may_restart = False`)
  403 `insufficient_access`.

Faults come from `tests.fakes.faults.FakeAPI`: `fail(method, pattern, status=, times=)`
answers without doing, `lose_answer(pattern)` does and then loses the answer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes.faults import FakeAPI

TOKEN = "tR4v1s-t0k3n-5f3c9e"
MAX_LIMIT = 100


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    fault: int | str | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class TravisJob:
    id: int
    number: str
    state: str
    config: dict[str, Any] = field(default_factory=dict)
    allow_failure: bool = False
    log: bytes = b""
    restarted_at: str | None = None


@dataclass
class TravisBuild:
    id: int
    number: str
    state: str
    repo_id: int
    slug: str
    sha: str
    event_type: str = "push"
    pull_request_number: int | None = None
    branch: str = "main"
    jobs: list[TravisJob] = field(default_factory=list)


class FakeTravis(FakeAPI):
    """The state of a small Travis CI and the ASGI app that serves its API."""

    def __init__(self, token: str = TOKEN, public_key: bytes = b"") -> None:
        super().__init__()
        self.token = token
        self.public_key = public_key
        self.url = ""
        self.builds: dict[int, TravisBuild] = {}
        self.repos: dict[int, dict[str, Any]] = {}
        self.restarts: list[int] = []
        self.may_restart = True
        #: job id → URL the archived log is served from instead.
        self.log_redirects: dict[int, str] = {}
        self._clock = itertools.count(1)
        self.routes = [
            ("GET", re.compile(r"^/build/(?P<build>\d+)$"), self._get_build),
            ("GET", re.compile(r"^/build/(?P<build>\d+)/jobs$"), self._get_jobs),
            ("GET", re.compile(r"^/job/(?P<job>\d+)$"), self._get_job),
            ("GET", re.compile(r"^/job/(?P<job>\d+)/log$"), self._get_log),
            ("POST", re.compile(r"^/job/(?P<job>\d+)/restart$"), self._restart),
            ("GET", re.compile(r"^/repo/(?P<repo>\d+)$"), self._get_repo),
        ]

    # ---- the world --------------------------------------------------------------------

    def add_repo(self, repo_id: int, slug: str, vcs_type: str = "GithubRepository") -> None:
        owner, name = slug.split("/", 1)
        self.repos[repo_id] = {
            "@type": "repository", "@href": f"/repo/{repo_id}", "@representation": "standard",
            "id": repo_id, "name": name, "slug": slug, "description": None,
            "github_id": 88000 + repo_id % 1000, "vcs_id": str(88000 + repo_id % 1000),
            "vcs_type": vcs_type, "github_language": "Python", "active": True,
            "private": False, "owner": {"@type": "organization", "id": 4411, "login": owner},
            "owner_name": owner, "vcs_name": name, "default_branch": {
                "@type": "branch", "@href": f"/repo/{repo_id}/branch/main",
                "@representation": "minimal", "name": "main"},
            "starred": False, "managed_by_installation": True, "active_on_org": None,
            "migration_status": None, "history_migration_status": None, "shared": False,
            "config_validation": True, "server_type": "git", "scan_failed_at": None,
        }

    def add_build(self, build: TravisBuild) -> TravisBuild:
        self.builds[build.id] = build
        return build

    def job(self, job_id: int) -> TravisJob:
        for build in self.builds.values():
            for job in build.jobs:
                if job.id == job_id:
                    return job
        raise KeyError(job_id)

    def fail(self, method: str, pattern: str, *, status: int = 500, times: int = 1,
             headers: dict[str, str] | None = None, hang: bool = False) -> None:
        self.injected.fail(f"^{method} (?:{pattern})$", times=times, status=status,
                           hang=hang, headers=dict(headers or {}))

    # ---- serving ----------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
        fault, lost = self.intercept(request, f"{request.method} {path}")
        if fault is not None:
            self.calls.append(Call(request.method, path, query, headers,
                                   "hang" if fault.hang else fault.status))
            if fault.hang:
                await self.injected.hold(request)
            return Response("<html><body>Error</body></html>", status_code=fault.status,
                            headers=fault.headers, media_type="text/html")
        self.calls.append(Call(request.method, path, query, headers, lost))
        if path == "/config" and request.method == "GET":
            return JSONResponse({"config": {"host": "travis-ci.com", "notifications": {
                "webhook": {"public_key": self.public_key.decode()}}}})
        if headers.get("travis-api-version") != "3":
            return JSONResponse({"error": "this fake serves API v3 only"}, status_code=400)
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if not token:
            return _error(403, "login_required", "login required")
        if scheme != "token" or token != self.token:
            return _error(403, "access_denied", "access denied")
        try:
            handler, params = self.route(request.method, path)
        except LookupError:
            return _error(404, "not_found", "resource not found (or insufficient access)")
        result: Response = handler(params, query, headers)
        return result

    def _find_build(self, params: dict[str, str]) -> TravisBuild | None:
        return self.builds.get(int(params["build"]))

    def _get_build(self, params: dict[str, str], query: dict[str, str],
                   headers: dict[str, str]) -> Response:
        build = self._find_build(params)
        if build is None:
            return _error(404, "not_found", "build not found (or insufficient access)")
        return JSONResponse(self._build_json(build))

    def _get_jobs(self, params: dict[str, str], query: dict[str, str],
                  headers: dict[str, str]) -> Response:
        build = self._find_build(params)
        if build is None:
            return _error(404, "not_found", "build not found (or insufficient access)")
        limit, offset = int(query.get("limit", "25")), int(query.get("offset", "0"))
        if limit > MAX_LIMIT or limit < 0:
            return _error(400, "wrong_params", f"limit must be at most {MAX_LIMIT}")
        config = "job.config" in query.get("include", "").split(",")
        page = build.jobs[offset: offset + limit]
        count = len(build.jobs)
        return JSONResponse({
            "@type": "jobs", "@href": f"/build/{build.id}/jobs",
            "@representation": "standard",
            "@pagination": {
                "limit": limit, "offset": offset, "count": count,
                "is_first": offset == 0, "is_last": offset + limit >= count,
                "next": None if offset + limit >= count else {
                    "@href": f"/build/{build.id}/jobs?limit={limit}&offset={offset + limit}",
                    "offset": offset + limit, "limit": limit},
                "prev": None, "first": {"@href": f"/build/{build.id}/jobs?limit={limit}",
                                        "offset": 0, "limit": limit},
                "last": None,
            },
            "jobs": [self._job_json(build, job, config) for job in page],
        })

    def _get_job(self, params: dict[str, str], query: dict[str, str],
                 headers: dict[str, str]) -> Response:
        found = self._find_job(params)
        if found is None:
            return _error(404, "not_found", "job not found (or insufficient access)")
        return JSONResponse(self._job_json(*found, "job.config" in query.get("include", "")))

    def _get_log(self, params: dict[str, str], query: dict[str, str],
                 headers: dict[str, str]) -> Response:
        found = self._find_job(params)
        if found is None:
            return _error(404, "not_found", "log not found (or insufficient access)")
        _, job = found
        elsewhere = self.log_redirects.get(job.id)
        if elsewhere is not None:
            return Response(status_code=307, headers={"Location": elsewhere})
        if "text/plain" in headers.get("accept", ""):
            return Response(job.log, media_type="text/plain")
        return JSONResponse({"@type": "log", "@href": f"/job/{job.id}/log",
                             "@representation": "standard", "id": job.id + 7_000_000,
                             "content": job.log.decode(), "log_parts": [],
                             "@raw_log_href": f"/v3/job/{job.id}/log.txt"})

    def _restart(self, params: dict[str, str], query: dict[str, str],
                 headers: dict[str, str]) -> Response:
        found = self._find_job(params)
        if found is None:
            return _error(404, "not_found", "job not found (or insufficient access)")
        _, job = found
        if not self.may_restart:
            return JSONResponse({"@type": "error", "error_type": "insufficient_access",
                                 "error_message": "operation requires restart access to job",
                                 "resource_type": "job", "permission": "restart",
                                 "job": {"@type": "job", "@href": f"/job/{job.id}",
                                         "@representation": "minimal", "id": job.id}},
                                status_code=403)
        self.restarts.append(job.id)
        job.state = "created"
        job.restarted_at = f"2026-12-04T01:{next(self._clock) % 60:02d}:00Z"
        return JSONResponse({"@type": "pending",
                             "job": {"@type": "job", "@href": f"/job/{job.id}",
                                     "@representation": "minimal", "id": job.id},
                             "state_change": "restart", "resource_type": "job"},
                            status_code=202)

    def _get_repo(self, params: dict[str, str], query: dict[str, str],
                  headers: dict[str, str]) -> Response:
        repo = self.repos.get(int(params["repo"]))
        if repo is None:
            return _error(404, "not_found", "repository not found (or insufficient access)")
        return JSONResponse(repo)

    def _find_job(self, params: dict[str, str]) -> tuple[TravisBuild, TravisJob] | None:
        for build in self.builds.values():
            for job in build.jobs:
                if job.id == int(params["job"]):
                    return build, job
        return None

    # ---- shapes -------------------------------------------------------------------------

    def _build_json(self, build: TravisBuild) -> dict[str, Any]:
        owner, name = build.slug.split("/", 1)
        return {
            "@type": "build", "@href": f"/build/{build.id}", "@representation": "standard",
            "@permissions": {"read": True, "cancel": True, "restart": self.may_restart},
            "id": build.id, "number": build.number, "state": build.state, "duration": 262,
            "event_type": build.event_type, "previous_state": "passed",
            "pull_request_title": "Batch uploads when offline"
            if build.pull_request_number else None,
            "pull_request_number": build.pull_request_number,
            "started_at": "2026-11-25T08:58:40Z", "finished_at": "2026-11-25T09:03:02Z",
            "private": False, "priority": False,
            "repository": {"@type": "repository", "@href": f"/repo/{build.repo_id}",
                           "@representation": "minimal", "id": build.repo_id, "name": name,
                           "slug": build.slug},
            "branch": {"@type": "branch", "@href": f"/repo/{build.repo_id}/branch/{build.branch}",
                       "@representation": "minimal", "name": build.branch},
            "tag": None,
            "commit": {"@type": "commit", "@representation": "minimal", "id": 88123001,
                       "sha": build.sha, "ref": f"refs/pull/{build.pull_request_number}/merge"
                       if build.pull_request_number else f"refs/heads/{build.branch}",
                       "message": "Batch uploads when offline",
                       "compare_url": f"https://github.com/{owner}/{name}/compare/a...b",
                       "committed_at": "2026-11-25T08:58:21Z"},
            "jobs": [{"@type": "job", "@href": f"/job/{job.id}", "@representation": "minimal",
                      "id": job.id} for job in build.jobs],
            "stages": [], "created_by": {"@type": "user", "@href": "/user/5521",
                                         "@representation": "minimal", "id": 5521,
                                         "login": "rtanaka"},
            "updated_at": "2026-11-25T09:03:02.114Z",
        }

    def _job_json(self, build: TravisBuild, job: TravisJob, config: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "@type": "job", "@href": f"/job/{job.id}", "@representation": "standard",
            "@permissions": {"read": True, "restart": self.may_restart},
            "id": job.id, "allow_failure": job.allow_failure, "number": job.number,
            "state": job.state, "started_at": "2026-11-25T08:58:40Z",
            "finished_at": None if job.state == "created" else "2026-11-25T09:03:02Z",
            "build": {"@type": "build", "@href": f"/build/{build.id}",
                      "@representation": "minimal", "id": build.id, "number": build.number,
                      "state": build.state},
            "queue": "builds.gce-oss",
            "repository": {"@type": "repository", "@href": f"/repo/{build.repo_id}",
                           "@representation": "minimal", "id": build.repo_id,
                           "slug": build.slug},
            "commit": {"@type": "commit", "@representation": "minimal", "id": 88123001,
                       "sha": build.sha},
            "owner": {"@type": "organization", "id": 4411},
            "stage": None, "created_at": "2026-11-25T08:58:30Z",
            "updated_at": "2026-11-25T09:03:02.114Z", "private": False,
            "restarted_at": job.restarted_at, "restarted_by": None, "vm_size": None,
        }
        if config:
            data["config"] = job.config
        return data


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"@type": "error", "error_type": kind, "error_message": message},
                        status_code=status)


def matrix(build_id: int, number: str, legs: Sequence[tuple[str, dict[str, Any], bytes]],
           ) -> list[TravisJob]:
    """Jobs `number.1`, `number.2`... of (state, config, log) each."""
    return [TravisJob(id=build_id * 10 + i, number=f"{number}.{i}", state=state,
                      config=config, log=log)
            for i, (state, config, log) in enumerate(legs, start=1)]


class ReportHost:
    """Where a build publishes its report files (an S3 bucket, the user's own host):
    serves `files` by path, `redirects` by path, and records each request's headers so a
    test can see that no Travis token ever arrived."""

    def __init__(self) -> None:
        self.url = ""
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] or scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["method"], raw, headers))
        if raw in self.redirects:
            response: Response = Response(status_code=302,
                                          headers={"Location": self.redirects[raw]})
        elif raw in self.files:
            response = Response(self.files[raw], media_type="application/xml")
        else:
            response = Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404,
                                media_type="application/xml")
        await response(scope, receive, send)
