"""A fake GitLab REST API (v4) on loopback, for python-gitlab to talk to over real HTTP.

It implements every endpoint Herald calls, with answers shaped like GitLab's own (the
examples of https://docs.gitlab.com/api/pipelines/, /api/jobs/, /api/commits/,
/api/notes/, /api/emoji_reactions/, /api/members/, /api/merge_requests/), and GitLab's
manners where they matter to a client:

- `PRIVATE-TOKEN` is required: missing or wrong → 401 `{"message": "401 Unauthorized"}`;
- malformed bodies → 400 `{"error": "... is missing"}` (parameter validation) or
  `{"message": {...}}` (model validation, e.g. a note over 1,000,000 characters);
- lists are paginated with `X-Page`/`X-Next-Page`/`X-Total` and `Link: rel="next"`;
- a commit status already in the posted state → 400 "Cannot transition status via ...";
- the same award emoji twice → 404 "Award Emoji Name has already been taken";
- job artifacts can be redirected to an `ObjectStorage` on another port, as GitLab does
  with object storage; that storage refuses any GitLab token it is sent;
- repository files: `HEAD .../repository/files/:path?ref=` answers with `X-Gitlab-Blob-Id`
  and `X-Gitlab-Size` and no body (`ref` required), the raw blob by its id;
- a note posted with a quick action (`/approve` at a line start) or a mention runs it:
  both are recorded in `quick_actions` and `mentions`, so a test can assert none happened.

Every request is recorded as a `Call` (`"POST /projects/7/statuses/abc"`); `fail_next`
makes the next N requests to a path answer 429 (with `Retry-After` and `RateLimit-*`),
a 5xx, or hang until the client gives up, without doing them. `lose_answer` does the next
N requests and then loses their answers (held until the client gives up, or the
connection reset), as when GitLab acts on a write and the network loses the reply.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from tests.fakes.faults import FakeAPI, serve

__all__ = ["FakeGitLab", "ObjectStorage", "serve"]

TOKEN = "glpat-herald-test-token"
NOTE_LIMIT = 1_000_000
COMMIT_STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
QUICK_ACTION = re.compile(r"^/([a-z_]+)", re.MULTILINE)
# Roughly GitLab's user reference pattern: not after a word character.
MENTION = re.compile(r"(?<![\w])@([A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_.\-]+)*)")


#: https://docs.gitlab.com/user/packages/generic_packages/: a package name and file name of
#: letters, digits, `.`, `_`, `-`, `+` (and `~` in a file name); a version of word
#: characters, `.`, `+` and `-` (`\A(\.?[\w\+-]+\.?)+\z`).
GENERIC_NAME = re.compile(r"[A-Za-z0-9._+-]+")
GENERIC_FILE_NAME = re.compile(r"[A-Za-z0-9._+~-]+")
GENERIC_VERSION = re.compile(r"(\.?[\w+-]+\.?)+", re.ASCII)
GENERIC_FILE = (r"/projects/(?P<p>[^/]+)/packages/generic/(?P<name>[^/]+)/(?P<version>[^/]+)/"
                r"(?P<file>[^/]+)")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # decoded, without /api/v4
    query: dict[str, str]
    body: Any
    token: str | None
    lost: str | None = None  # how the answer of a request that was done got lost

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def not_found(what: str = "Not found") -> HttpError:
    return HttpError(404, {"message": f"404 {what}"})


def missing(name: str) -> HttpError:
    return HttpError(400, {"error": f"{name} is missing"})


class FakeGitLab(FakeAPI):
    """The state of a small GitLab instance and the ASGI app that serves it."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.url = ""  # set when served
        super().__init__()
        self.calls: list[Call] = []
        self.quick_actions: list[str] = []
        self.mentions: list[str] = []
        self.me = {"id": 900, "username": "project_7_bot_herald", "name": "Herald",
                   "bot": True, "state": "active"}
        self.projects: dict[int, dict[str, Any]] = {}
        self.pipelines: dict[int, dict[str, Any]] = {}
        self.jobs: dict[int, list[dict[str, Any]]] = {}
        self.bridges: dict[int, list[dict[str, Any]]] = {}
        self.test_reports: dict[int, dict[str, Any]] = {}
        self.artifacts: dict[int, bytes] = {}
        self.statuses: dict[tuple[int, str], list[dict[str, Any]]] = {}
        self.merge_requests: dict[tuple[int, int], dict[str, Any]] = {}
        self.notes: dict[tuple[int, int], list[dict[str, Any]]] = {}
        self.awards: dict[int, list[dict[str, Any]]] = {}
        self.members: dict[tuple[int, int], dict[str, Any]] = {}
        self.retried: list[int] = []
        #: Repository files: (project id, commit sha) → path → bytes; blobs by id.
        self.files: dict[tuple[int, str], dict[str, bytes]] = {}
        self.blobs: dict[tuple[int, str], bytes] = {}
        self.created_pipelines: list[dict[str, Any]] = []
        self.redirect_artifacts_to: str | None = None
        #: The generic package registry: packages by id, their files (newest last), the
        #: bytes of each file by id; the instance's size limit and the group's setting.
        self.packages: dict[int, dict[str, Any]] = {}
        self.package_files: dict[int, list[dict[str, Any]]] = {}
        self.package_bytes: dict[int, bytes] = {}
        self.generic_max_file_size = 5 * 1024**3
        self.generic_duplicates_allowed = True
        #: Rate-limit headers on every successful answer (tests spend the window with it).
        self.rate_limit: dict[str, str] = {"RateLimit-Limit": "600",
                                           "RateLimit-Remaining": "599"}
        self._ids = itertools.count(5000)
        self._lock = threading.Lock()
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            (m, re.compile(f"^{p}$"), h) for m, p, h in [
                ("GET", r"/user", self.get_user),
                ("GET", r"/projects/(?P<p>[^/]+)/pipelines/(?P<pid>\d+)", self.get_pipeline),
                ("GET", r"/projects/(?P<p>[^/]+)/pipelines/(?P<pid>\d+)/jobs", self.list_jobs),
                ("GET", r"/projects/(?P<p>[^/]+)/pipelines/(?P<pid>\d+)/bridges",
                 self.list_bridges),
                ("GET", r"/projects/(?P<p>[^/]+)/pipelines/(?P<pid>\d+)/test_report",
                 self.get_test_report),
                ("POST", r"/projects/(?P<p>[^/]+)/pipelines/(?P<pid>\d+)/retry",
                 self.retry_pipeline),
                ("POST", r"/projects/(?P<p>[^/]+)/pipeline", self.create_pipeline),
                ("GET", r"/projects/(?P<p>[^/]+)/jobs/(?P<job>\d+)/artifacts",
                 self.get_artifacts),
                ("GET", r"/projects/(?P<p>[^/]+)/repository/commits/(?P<sha>\w+)/statuses",
                 self.list_statuses),
                ("POST", r"/projects/(?P<p>[^/]+)/statuses/(?P<sha>\w+)", self.post_status),
                ("GET", r"/projects/(?P<p>[^/]+)/repository/commits/(?P<sha>\w+)/merge_requests",
                 self.commit_merge_requests),
                ("GET", r"/projects/(?P<p>[^/]+)/merge_requests", self.list_merge_requests),
                ("GET", r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)",
                 self.get_merge_request),
                ("GET", r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)/pipelines",
                 self.list_mr_pipelines),
                ("POST", r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)/pipelines",
                 self.create_mr_pipeline),
                ("GET", r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)/notes",
                 self.list_notes),
                ("POST", r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)/notes",
                 self.create_note),
                ("PUT", r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)/notes/(?P<nid>\d+)",
                 self.update_note),
                ("DELETE",
                 r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)/notes/(?P<nid>\d+)",
                 self.delete_note),
                ("POST", r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)/notes/"
                 r"(?P<nid>\d+)/award_emoji", self.award_emoji),
                ("GET", r"/projects/(?P<p>[^/]+)/members/all/(?P<uid>\d+)", self.get_member),
                ("HEAD", r"/projects/(?P<p>[^/]+)/repository/files/(?P<file>[^/]+)",
                 self.head_file),
                ("GET", r"/projects/(?P<p>[^/]+)/repository/blobs/(?P<blob>[0-9a-f]{40})/raw",
                 self.raw_blob),
                ("PUT", GENERIC_FILE, self.put_generic_file),
                ("GET", GENERIC_FILE, self.get_generic_file),
                ("GET", r"/projects/(?P<p>[^/]+)/packages", self.list_packages),
                ("GET", r"/projects/(?P<p>[^/]+)/packages/(?P<pkg>\d+)/package_files",
                 self.list_package_files),
                ("DELETE",
                 r"/projects/(?P<p>[^/]+)/packages/(?P<pkg>\d+)/package_files/(?P<fid>\d+)",
                 self.delete_package_file),
            ]
        ]

    # ---- building the world -------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def add_project(self, project_id: int, path: str) -> dict[str, Any]:
        project = {"id": project_id, "path_with_namespace": path,
                   "web_url": f"https://gitlab.example.com/{path}"}
        self.projects[project_id] = project
        return project

    def add_file(self, project_id: int, sha: str, path: str, data: bytes) -> str:
        """`path` at commit `sha` of the project; its git blob id."""
        self.files.setdefault((project_id, sha), {})[path] = data
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        self.blobs[(project_id, blob)] = data
        return blob

    def add_pipeline(self, project_id: int, pipeline_id: int, *, sha: str, ref: str = "main",
                     status: str = "failed", source: str = "push",
                     name: str | None = None) -> dict[str, Any]:
        web = self.projects[project_id]["web_url"]
        pipeline = {
            "id": pipeline_id, "iid": pipeline_id % 1000, "project_id": project_id,
            "name": name, "sha": sha, "ref": ref, "status": status, "source": source,
            "created_at": "2026-11-25T09:00:00.000Z", "updated_at": "2026-11-25T09:05:00.000Z",
            "web_url": f"{web}/-/pipelines/{pipeline_id}", "before_sha": "0" * 40,
            "tag": False, "yaml_errors": None,
            "user": {"id": 1, "username": "root", "name": "Administrator", "state": "active"},
            "started_at": "2026-11-25T09:00:05.000Z", "finished_at": "2026-11-25T09:05:00.000Z",
            "committed_at": None, "duration": 295, "queued_duration": 5, "coverage": None,
            "detailed_status": {"icon": f"status_{status}", "text": status, "label": status,
                                "group": status},
        }
        self.pipelines[pipeline_id] = pipeline
        self.jobs.setdefault(pipeline_id, [])
        self.bridges.setdefault(pipeline_id, [])
        return pipeline

    def add_job(self, pipeline_id: int, name: str, *, status: str = "success",
                stage: str = "test", artifact: bytes | None = None, junit: bool = False,
                allow_failure: bool = False, job_id: int | None = None,
                expired: bool = False) -> dict[str, Any]:
        pipeline = self.pipelines[pipeline_id]
        web = self.projects[pipeline["project_id"]]["web_url"]
        job_id = job_id or self.next_id()
        files: list[dict[str, Any]] = []
        if artifact is not None:
            self.artifacts[job_id] = artifact
            files.append({"file_type": "archive", "size": len(artifact),
                          "filename": "artifacts.zip", "file_format": "zip"})
            files.append({"file_type": "metadata", "size": 180,
                          "filename": "metadata.gz", "file_format": "gzip"})
        if junit:
            files.append({"file_type": "junit", "size": 1024, "filename": "junit.xml.gz",
                          "file_format": "gzip"})
        job = {
            "id": job_id, "name": name, "stage": stage, "status": status,
            "ref": pipeline["ref"], "tag": False, "coverage": None,
            "allow_failure": allow_failure, "created_at": "2026-11-25T09:00:00.000Z",
            "started_at": "2026-11-25T09:00:10.000Z", "finished_at": "2026-11-25T09:04:00.000Z",
            "duration": 230.0, "queued_duration": 1.0, "failure_reason":
            "script_failure" if status == "failed" else None,
            "web_url": f"{web}/-/jobs/{job_id}",
            "user": {"id": 1, "username": "root"},
            "commit": {"id": pipeline["sha"], "short_id": pipeline["sha"][:8]},
            "pipeline": {key: pipeline[key] for key in
                         ("id", "project_id", "ref", "sha", "status")},
            "artifacts": files,
            "artifacts_expire_at": "2020-01-01T00:00:00.000Z" if expired
            else "2099-01-01T00:00:00.000Z",
            "runner": None, "tag_list": [], "archived": False,
        }
        self.jobs[pipeline_id].append(job)
        return job

    def add_bridge(self, pipeline_id: int, name: str, child: dict[str, Any], *,
                   status: str | None = None) -> dict[str, Any]:
        pipeline = self.pipelines[pipeline_id]
        web = self.projects[pipeline["project_id"]]["web_url"]
        bridge_id = self.next_id()
        bridge = {
            "id": bridge_id, "name": name, "stage": "test",
            "status": status or child["status"], "ref": pipeline["ref"], "tag": False,
            "allow_failure": False, "web_url": f"{web}/-/jobs/{bridge_id}",
            "pipeline": {key: pipeline[key] for key in
                         ("id", "project_id", "ref", "sha", "status")},
            "downstream_pipeline": {key: child[key] for key in
                                    ("id", "sha", "ref", "status", "web_url", "created_at",
                                     "updated_at", "project_id")},
        }
        self.bridges[pipeline_id].append(bridge)
        return bridge

    def set_test_report(self, pipeline_id: int, suites: list[dict[str, Any]]) -> None:
        counts = {"success": 0, "failed": 0, "skipped": 0, "error": 0}
        out_suites = []
        for suite in suites:
            cases = [{"status": "success", "classname": "", "execution_time": 0.1,
                      "system_output": None, "stack_trace": None, "file": None,
                      "recent_failures": None, **case} for case in suite["test_cases"]]
            suite_counts = {k: sum(1 for c in cases if c["status"] == k) for k in counts}
            for key, value in suite_counts.items():
                counts[key] += value
            out_suites.append({
                "name": suite["name"], "total_time": sum(c["execution_time"] for c in cases),
                "total_count": len(cases), "success_count": suite_counts["success"],
                "failed_count": suite_counts["failed"], "skipped_count": suite_counts["skipped"],
                "error_count": suite_counts["error"], "suite_error": suite.get("suite_error"),
                "test_cases": cases,
            })
        self.test_reports[pipeline_id] = {
            "total_time": sum(s["total_time"] for s in out_suites),
            "total_count": sum(counts.values()), "success_count": counts["success"],
            "failed_count": counts["failed"], "skipped_count": counts["skipped"],
            "error_count": counts["error"], "test_suites": out_suites,
        }

    def add_merge_request(self, project_id: int, iid: int, *, sha: str, source_branch: str,
                          state: str = "opened") -> dict[str, Any]:
        web = self.projects[project_id]["web_url"]
        merge_request = {
            "id": 10_000 + iid, "iid": iid, "project_id": project_id, "title": f"Change {iid}",
            "description": "", "state": state, "target_branch": "main",
            "source_branch": source_branch, "source_project_id": project_id,
            "target_project_id": project_id, "sha": sha, "merge_commit_sha": None,
            "draft": False, "web_url": f"{web}/-/merge_requests/{iid}",
            "author": {"id": 1, "username": "root"},
            "pipelines": [],
        }
        self.merge_requests[(project_id, iid)] = merge_request
        self.notes.setdefault((project_id, iid), [])
        return merge_request

    def link_pipeline(self, project_id: int, iid: int, pipeline_id: int) -> None:
        self.merge_requests[(project_id, iid)]["pipelines"].append(pipeline_id)

    def add_member(self, project_id: int, user_id: int, username: str,
                   access_level: int) -> None:
        self.members[(project_id, user_id)] = {
            "id": user_id, "username": username, "name": username.title(), "state": "active",
            "access_level": access_level, "created_at": "2026-01-01T00:00:00.000Z",
            "expires_at": None, "web_url": f"https://gitlab.example.com/{username}",
        }

    def add_note(self, project_id: int, iid: int, body: str, *, author_id: int = 1,
                 username: str = "root", system: bool = False) -> dict[str, Any]:
        note = self._note(body, {"id": author_id, "username": username}, system)
        self.notes[(project_id, iid)].append(note)
        return note

    def fail_next(self, pattern: str, *, times: int = 1, status: int = 429,
                  hang: bool = False, headers: dict[str, str] | None = None) -> None:
        """The next `times` requests whose `"METHOD /path"` matches `pattern` fail."""
        if status == 429 and headers is None and not hang:
            headers = {"Retry-After": "7", "RateLimit-Limit": "600",
                       "RateLimit-Remaining": "0",
                       "RateLimit-Reset": str(int(time.time()) + 7)}
        self.injected.fail(pattern, times=times, status=status, hang=hang,
                           headers=headers or {})

    # ---- reading what happened ----------------------------------------------------------

    def our_notes(self, project_id: int, iid: int) -> list[dict[str, Any]]:
        return [n for n in self.notes[(project_id, iid)] if n["author"]["id"] == self.me["id"]]

    # ---- the ASGI app -------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = request.scope.get("raw_path") or request.url.path.encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        if not raw_path.startswith("/api/v4/"):
            return JSONResponse({"error": "404 Not Found"}, status_code=404)
        raw_path = raw_path[len("/api/v4"):]
        path = unquote(raw_path)
        method = request.method
        body_bytes = await request.body()
        body: Any = None
        # A generic package file is the raw bytes of the file, whatever they are.
        generic = method == "PUT" and "/packages/generic/" in path
        if generic:
            body = {"size": len(body_bytes)}
        elif body_bytes:
            try:
                body = json.loads(body_bytes)
            except ValueError:
                return JSONResponse({"error": "The provided content-type is not supported"
                                     if "json" not in request.headers.get("content-type", "")
                                     else "body is not valid JSON"}, status_code=400)
        query = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
        token = request.headers.get("private-token")
        fault, lost = self.intercept(request, f"{method} {path}")
        self.calls.append(Call(method, path, query, body, token, lost))
        if fault is not None:
            if fault.hang:
                await self.injected.hold(request)
                return JSONResponse({"message": "504 Gateway Timeout"}, status_code=504)
            return JSONResponse({"message": f"{fault.status} fault injected"},
                                status_code=fault.status, headers=fault.headers)
        if token != self.token:
            return JSONResponse({"message": "401 Unauthorized"}, status_code=401)
        try:
            handler, params = self.route(method, raw_path)
        except LookupError:
            return JSONResponse({"error": "404 Not Found"}, status_code=404)
        try:
            with self._lock:
                result = handler(request, query,
                                 body_bytes if generic else body if body is not None else {},
                                 **params)
        except HttpError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        if isinstance(result, Response):
            return result
        status = 201 if method == "POST" else 200
        return JSONResponse(result, status_code=status, headers=self.rate_limit)

    def _paginate(self, request: Request, query: dict[str, str],
                  items: list[dict[str, Any]]) -> Response:
        per_page = max(1, min(100, int(query.get("per_page", "20"))))
        page = max(1, int(query.get("page", "1")))
        pages = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                   "X-Total-Pages": str(pages),
                   "X-Next-Page": str(page + 1) if page < pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else "", **self.rate_limit}
        base = f"{self.url}{request.url.path}"

        def link(number: int) -> str:
            return f"{base}?{urlencode({**query, 'page': number, 'per_page': per_page})}"

        links = []
        if page < pages:
            links.append(f'<{link(page + 1)}>; rel="next"')
        links.append(f'<{link(1)}>; rel="first"')
        links.append(f'<{link(pages)}>; rel="last"')
        headers["Link"] = ", ".join(links)
        return JSONResponse(chunk, headers=headers)

    # ---- lookups ------------------------------------------------------------------------

    def _project(self, ref: str) -> dict[str, Any]:
        if ref.isdigit() and int(ref) in self.projects:
            return self.projects[int(ref)]
        for project in self.projects.values():
            if project["path_with_namespace"] == ref:
                return project
        raise not_found("Project Not Found")

    def _pipeline(self, project: dict[str, Any], pid: str) -> dict[str, Any]:
        pipeline = self.pipelines.get(int(pid))
        if pipeline is None or pipeline["project_id"] != project["id"]:
            raise not_found()
        return pipeline

    def _merge_request(self, project: dict[str, Any], iid: str) -> dict[str, Any]:
        merge_request = self.merge_requests.get((project["id"], int(iid)))
        if merge_request is None:
            raise not_found()
        return merge_request

    def _note(self, body: str, author: dict[str, Any], system: bool = False) -> dict[str, Any]:
        stamp = now_iso()
        return {"id": self.next_id(), "type": None, "body": body, "attachment": None,
                "author": {**author, "name": author["username"], "state": "active"},
                "created_at": stamp, "updated_at": stamp, "system": system,
                "noteable_type": "MergeRequest", "resolvable": False, "confidential": False,
                "internal": False}

    # ---- handlers -----------------------------------------------------------------------

    def head_file(self, request: Request, query: dict[str, str], body: Any, p: str,
                  file: str) -> Any:
        """https://docs.gitlab.com/api/repository_files/: HEAD answers with the file's
        metadata in `X-Gitlab-*` headers and no body (a missing file: a bare 404)."""
        try:
            project = self._project(p)
        except HttpError:
            return Response(status_code=404)
        ref = query.get("ref")
        if not ref:
            return Response(status_code=400)
        path = file  # decoded by `route`
        data = self.files.get((project["id"], ref), {}).get(path)
        if data is None:
            return Response(status_code=404)
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        return Response(status_code=200, headers={
            "X-Gitlab-Blob-Id": blob, "X-Gitlab-Commit-Id": ref,
            "X-Gitlab-Content-Sha256": hashlib.sha256(data).hexdigest(),
            "X-Gitlab-Encoding": "base64", "X-Gitlab-File-Name": path.rpartition("/")[2],
            "X-Gitlab-File-Path": path, "X-Gitlab-Last-Commit-Id": ref,
            "X-Gitlab-Ref": ref, "X-Gitlab-Size": str(len(data)),
            "X-Gitlab-Execute-Filemode": "false", **self.rate_limit,
        })

    def raw_blob(self, request: Request, query: dict[str, str], body: Any, p: str,
                 blob: str) -> Any:
        project = self._project(p)
        data = self.blobs.get((project["id"], blob))
        if data is None:
            raise not_found("Blob Not Found")
        return Response(data, media_type="text/plain", headers=self.rate_limit)

    def get_user(self, request: Request, query: dict[str, str], body: Any) -> Any:
        return self.me

    def get_pipeline(self, request: Request, query: dict[str, str], body: Any, p: str,
                     pid: str) -> Any:
        return self._pipeline(self._project(p), pid)

    def list_jobs(self, request: Request, query: dict[str, str], body: Any, p: str,
                  pid: str) -> Any:
        self._pipeline(self._project(p), pid)
        jobs = self.jobs[int(pid)]
        if query.get("include_retried") != "true":
            jobs = [j for j in jobs if not j.get("retried")]
        return self._paginate(request, query, sorted(jobs, key=lambda j: -j["id"]))

    def list_bridges(self, request: Request, query: dict[str, str], body: Any, p: str,
                     pid: str) -> Any:
        self._pipeline(self._project(p), pid)
        return self._paginate(request, query, self.bridges[int(pid)])

    def get_test_report(self, request: Request, query: dict[str, str], body: Any, p: str,
                        pid: str) -> Any:
        self._pipeline(self._project(p), pid)
        return self.test_reports.get(int(pid), {
            "total_time": 0, "total_count": 0, "success_count": 0, "failed_count": 0,
            "skipped_count": 0, "error_count": 0, "test_suites": []})

    def retry_pipeline(self, request: Request, query: dict[str, str], body: Any, p: str,
                       pid: str) -> Any:
        pipeline = self._pipeline(self._project(p), pid)
        self.retried.append(pipeline["id"])
        for job in list(self.jobs[pipeline["id"]]):
            if job["status"] in ("failed", "canceled"):
                job["retried"] = True
                retry = {**job, "id": self.next_id(), "status": "pending", "retried": False}
                self.jobs[pipeline["id"]].append(retry)
        pipeline["status"] = "running"
        return pipeline

    def create_pipeline(self, request: Request, query: dict[str, str], body: Any,
                        p: str) -> Any:
        project = self._project(p)
        ref = body.get("ref") or query.get("ref")
        if not ref:
            raise missing("ref")
        pipeline = self.add_pipeline(project["id"], self.next_id(), sha="f" * 40, ref=ref,
                                     status="created", source="api")
        self.created_pipelines.append(pipeline)
        return pipeline

    def create_mr_pipeline(self, request: Request, query: dict[str, str], body: Any, p: str,
                           iid: str) -> Any:
        project = self._project(p)
        merge_request = self._merge_request(project, iid)
        pipeline = self.add_pipeline(project["id"], self.next_id(), sha=merge_request["sha"],
                                     ref=f"refs/merge-requests/{iid}/head", status="created",
                                     source="merge_request_event")
        self.created_pipelines.append(pipeline)
        return pipeline

    def get_artifacts(self, request: Request, query: dict[str, str], body: Any, p: str,
                      job: str) -> Any:
        self._project(p)
        data = self.artifacts.get(int(job))
        if data is None:
            raise not_found()
        if self.redirect_artifacts_to:
            # GitLab with object storage answers with a signed URL on another host.
            return RedirectResponse(
                f"{self.redirect_artifacts_to}/blobs/{job}?X-Amz-Signature=abc123",
                status_code=302)

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(data), 8192):
                yield data[start:start + 8192]

        return StreamingResponse(chunks(), media_type="application/zip", headers={
            "Content-Disposition": 'attachment; filename="artifacts.zip"',
            "Content-Length": str(len(data))})

    def list_statuses(self, request: Request, query: dict[str, str], body: Any, p: str,
                      sha: str) -> Any:
        project = self._project(p)
        statuses = self.statuses.get((project["id"], sha), [])
        if query.get("ref"):
            statuses = [s for s in statuses if s["ref"] == query["ref"]]
        if query.get("name"):
            statuses = [s for s in statuses if s["name"] == query["name"]]
        if query.get("all") != "true":
            latest: dict[str, dict[str, Any]] = {}
            for status in sorted(statuses, key=lambda s: s["id"]):
                latest[status["name"]] = status
            statuses = list(latest.values())
        return self._paginate(request, query, sorted(statuses, key=lambda s: -s["id"]))

    def post_status(self, request: Request, query: dict[str, str], body: Any, p: str,
                    sha: str) -> Any:
        project = self._project(p)
        state = body.get("state")
        if state is None:
            raise missing("state")
        if state not in COMMIT_STATES:
            raise HttpError(400, {"error": "state does not have a valid value"})
        description = body.get("description")
        if description is not None and len(description) > 255:
            raise HttpError(400, {"message": {"description": [
                "is too long (maximum is 255 characters)"]}})
        name = body.get("name") or body.get("context") or "default"
        ref = body.get("ref") or "main"
        pipeline_id = body.get("pipeline_id")
        if pipeline_id is not None and pipeline_id not in self.pipelines:
            raise not_found("Pipeline Not Found")
        existing = [s for s in self.statuses.get((project["id"], sha), [])
                    if s["name"] == name and s["ref"] == ref]
        if existing and existing[-1]["status"] in ("pending", "running") and (
            existing[-1]["status"] == state
        ):
            raise HttpError(400, {"message": f"Cannot transition status via :{state} from "
                                  f":{state} (Reason(s): Status cannot transition via "
                                  f"\"{state}\")"})
        status = {
            "id": self.next_id(), "sha": sha, "ref": ref, "status": state, "name": name,
            "target_url": body.get("target_url"), "description": description,
            "created_at": now_iso(), "started_at": None, "finished_at": now_iso(),
            "allow_failure": False, "coverage": body.get("coverage"),
            "pipeline_id": pipeline_id,
            "author": {"id": self.me["id"], "username": self.me["username"]},
        }
        self.statuses.setdefault((project["id"], sha), []).append(status)
        return status

    def commit_merge_requests(self, request: Request, query: dict[str, str], body: Any, p: str,
                              sha: str) -> Any:
        project = self._project(p)
        found = [mr for (pid, _), mr in self.merge_requests.items()
                 if pid == project["id"] and mr["sha"] == sha]
        return self._paginate(request, query, found)

    def list_merge_requests(self, request: Request, query: dict[str, str], body: Any,
                            p: str) -> Any:
        project = self._project(p)
        found = [mr for (pid, _), mr in self.merge_requests.items() if pid == project["id"]]
        if query.get("source_branch"):
            found = [mr for mr in found if mr["source_branch"] == query["source_branch"]]
        if query.get("state") and query["state"] != "all":
            found = [mr for mr in found if mr["state"] == query["state"]]
        return self._paginate(request, query, found)

    def get_merge_request(self, request: Request, query: dict[str, str], body: Any, p: str,
                          iid: str) -> Any:
        return self._merge_request(self._project(p), iid)

    def list_mr_pipelines(self, request: Request, query: dict[str, str], body: Any, p: str,
                          iid: str) -> Any:
        merge_request = self._merge_request(self._project(p), iid)
        found = [self.pipelines[pid] for pid in merge_request["pipelines"]]
        shaped = [{k: pl[k] for k in ("id", "iid", "project_id", "sha", "ref", "status",
                                      "source", "created_at", "updated_at", "web_url")}
                  for pl in sorted(found, key=lambda pl: -pl["id"])]
        return self._paginate(request, query, shaped)

    def list_notes(self, request: Request, query: dict[str, str], body: Any, p: str,
                   iid: str) -> Any:
        project = self._project(p)
        self._merge_request(project, iid)
        found = list(self.notes[(project["id"], int(iid))])
        found.sort(key=lambda n: n["id"], reverse=query.get("sort", "desc") == "desc")
        return self._paginate(request, query, found)

    def _check_body(self, body: Any) -> str:
        text = body.get("body")
        if text is None:
            raise missing("body")
        if not isinstance(text, str) or not text.strip():
            raise HttpError(400, {"message": {"note": ["can't be blank"]}})
        if len(text) > NOTE_LIMIT:
            raise HttpError(400, {"message": {"note": [
                f"is too long (maximum is {NOTE_LIMIT} characters)"]}})
        return text

    def _run_side_effects(self, text: str) -> None:
        # What GitLab would do with the note: run quick actions, notify mentions.
        self.quick_actions.extend(QUICK_ACTION.findall(text))
        self.mentions.extend(MENTION.findall(text))

    def create_note(self, request: Request, query: dict[str, str], body: Any, p: str,
                    iid: str) -> Any:
        project = self._project(p)
        self._merge_request(project, iid)
        text = self._check_body(body)
        self._run_side_effects(text)
        note = self._note(text, self.me)
        self.notes[(project["id"], int(iid))].append(note)
        return note

    def _find_note(self, p: str, iid: str, nid: str) -> tuple[list[dict[str, Any]],
                                                                dict[str, Any]]:
        project = self._project(p)
        self._merge_request(project, iid)
        found = self.notes[(project["id"], int(iid))]
        for note in found:
            if note["id"] == int(nid):
                return found, note
        raise not_found("Note Not Found")

    def update_note(self, request: Request, query: dict[str, str], body: Any, p: str,
                    iid: str, nid: str) -> Any:
        _, note = self._find_note(p, iid, nid)
        if note["author"]["id"] != self.me["id"]:
            raise HttpError(403, {"message": "403 Forbidden"})
        text = self._check_body(body)
        self._run_side_effects(text)
        note["body"] = text
        note["updated_at"] = now_iso()
        return note

    def delete_note(self, request: Request, query: dict[str, str], body: Any, p: str,
                    iid: str, nid: str) -> Any:
        found, note = self._find_note(p, iid, nid)
        if note["author"]["id"] != self.me["id"]:
            raise HttpError(403, {"message": "403 Forbidden"})
        found.remove(note)
        return Response(status_code=204)

    def award_emoji(self, request: Request, query: dict[str, str], body: Any, p: str,
                    iid: str, nid: str) -> Any:
        _, note = self._find_note(p, iid, nid)
        name = body.get("name")
        if not name:
            raise missing("name")
        awards = self.awards.setdefault(note["id"], [])
        if any(a["name"] == name and a["user"]["id"] == self.me["id"] for a in awards):
            raise not_found("Award Emoji Name has already been taken")
        award = {"id": self.next_id(), "name": name, "user": self.me,
                 "created_at": now_iso(), "updated_at": now_iso(),
                 "awardable_id": note["id"], "awardable_type": "Note"}
        awards.append(award)
        return award

    def get_member(self, request: Request, query: dict[str, str], body: Any, p: str,
                   uid: str) -> Any:
        project = self._project(p)
        member = self.members.get((project["id"], int(uid)))
        if member is None:
            raise not_found()
        return member


    # ---- the generic package registry ---------------------------------------------------

    def generic_files(self, project_id: int, name: str, version: str) -> list[dict[str, Any]]:
        """The files of one generic package, oldest first (empty when there is none)."""
        for package in self.packages.values():
            if (package["project_id"], package["name"], package["version"]) == \
                    (project_id, name, version):
                return self.package_files[package["id"]]
        return []

    def put_generic_file(self, request: Request, query: dict[str, str], body: bytes, p: str,
                         name: str, version: str, file: str) -> Any:
        project = self._project(p)
        if not GENERIC_NAME.fullmatch(name):
            raise HttpError(400, {"error": "package_name is invalid"})
        if not GENERIC_VERSION.fullmatch(version):
            raise HttpError(400, {"error": "package_version is invalid"})
        if not GENERIC_FILE_NAME.fullmatch(file):
            raise HttpError(400, {"error": "file_name is invalid"})
        if len(body) > self.generic_max_file_size:
            raise HttpError(400, {"message": "400 Bad request - File is too large"})
        package = next((k for k in self.packages.values()
                        if (k["project_id"], k["name"], k["version"]) ==
                        (project["id"], name, version)), None)
        if package is None:
            package = {"id": self.next_id(), "project_id": project["id"], "name": name,
                       "version": version, "package_type": "generic", "status": "default",
                       "created_at": now_iso(), "tags": [], "_links": {
                           "web_path": f"/{project['path_with_namespace']}/-/packages/"}}
            package["_links"]["web_path"] += str(package["id"])
            self.packages[package["id"]] = package
            self.package_files[package["id"]] = []
        files = self.package_files[package["id"]]
        if not self.generic_duplicates_allowed and any(f["file_name"] == file for f in files):
            raise HttpError(403, {"message": "403 Forbidden - Duplicate package is not allowed"})
        entry = {"id": self.next_id(), "package_id": package["id"], "created_at": now_iso(),
                 "updated_at": now_iso(), "size": len(body), "file_store": 1,
                 "file_md5": None, "file_sha1": hashlib.sha1(body).hexdigest(),
                 "file_sha256": hashlib.sha256(body).hexdigest(), "file_name": file,
                 "file": {"url": f"/{file}"}, "verification_retry_at": None}
        files.append(entry)
        self.package_bytes[entry["id"]] = body
        if query.get("select") == "package_file":
            return JSONResponse(entry, status_code=201)
        return JSONResponse({"message": "201 Created"}, status_code=201)

    def get_generic_file(self, request: Request, query: dict[str, str], body: Any, p: str,
                         name: str, version: str, file: str) -> Any:
        project = self._project(p)
        # Of several files of one name, GitLab serves the newest.
        found = [f for f in self.generic_files(project["id"], name, version)
                 if f["file_name"] == file]
        if not found:
            raise not_found("404 Package Not Found")
        return Response(self.package_bytes[found[-1]["id"]],
                        media_type="application/octet-stream")

    def list_packages(self, request: Request, query: dict[str, str], body: Any,
                      p: str) -> Any:
        project = self._project(p)
        items = [k for k in self.packages.values() if k["project_id"] == project["id"]
                 and query.get("package_type", k["package_type"]) == k["package_type"]
                 # GitLab's package_name filter is a fuzzy (substring) search.
                 and query.get("package_name", "") in k["name"]
                 and query.get("package_version", k["version"]) == k["version"]]
        return self._paginate(request, query, items)

    def list_package_files(self, request: Request, query: dict[str, str], body: Any, p: str,
                           pkg: str) -> Any:
        project = self._project(p)
        package = self.packages.get(int(pkg))
        if package is None or package["project_id"] != project["id"]:
            raise not_found("404 Package Not Found")
        items = [{k: v for k, v in f.items() if k not in ("file", "file_store")}
                 | {"pipelines": []} for f in self.package_files[package["id"]]]
        return self._paginate(request, query, items)


    def delete_package_file(self, request: Request, query: dict[str, str], body: Any, p: str,
                            pkg: str, fid: str) -> Any:
        project = self._project(p)
        package = self.packages.get(int(pkg))
        if package is None or package["project_id"] != project["id"]:
            raise not_found("404 Package Not Found")
        files = self.package_files[package["id"]]
        if not any(f["id"] == int(fid) for f in files):
            raise not_found("404 Package file Not Found")
        files[:] = [f for f in files if f["id"] != int(fid)]
        self.package_bytes.pop(int(fid), None)
        return Response(status_code=204)


class ObjectStorage:
    """Where GitLab redirects artifact downloads: another origin, which must never be sent
    a GitLab token (it answers 400 and records the header when it is)."""

    def __init__(self, fake: FakeGitLab) -> None:
        self.fake = fake
        self.requests: list[dict[str, str]] = []
        self.leaked: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(headers)
        leaked = [h for h in ("private-token", "job-token", "authorization") if h in headers]
        if leaked:
            self.leaked.extend(leaked)
            response: Response = Response(
                "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed"
                "</Message></Error>", status_code=400, media_type="application/xml")
        else:
            job = request.url.path.rsplit("/", 1)[-1]
            data = self.fake.artifacts.get(int(job)) if job.isdigit() else None
            response = Response(data, media_type="application/zip") if data is not None \
                else Response(status_code=404)
        await response(scope, receive, send)
