"""A fake Bitbucket Cloud REST API (2.0) on loopback, for Herald's httpx client to talk to
over real HTTP.

It serves every endpoint Herald calls, with answers shaped like Bitbucket's own (the
examples of https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pipelines/,
/api-group-commit-statuses/, /api-group-reports/, /api-group-pullrequests/,
/api-group-commits/, /api-group-workspaces/, /api-group-repositories/), and Bitbucket's
manners where they matter to a client:

- a credential is required: `Authorization: Bearer <access token>` or HTTP Basic with the
  account's email and an API token; missing or wrong → 401 with Bitbucket's error body
  (`{"type": "error", "error": {"message": ...}}`);
- lists are pages `{"values", "page", "pagelen", "size", "next"}`; a `pagelen` over 100 is
  refused; `next` is an absolute URL;
- writes need `Content-Type: application/json`; bodies are checked against the documented
  shapes: a build status needs `key`, `state` (SUCCESSFUL, FAILED, INPROGRESS, STOPPED) and
  `url`, and one per key is kept (a POST with the key overwrites); a report needs `title`,
  a `report_type` and `result` of the documented words, at most 10 `data` fields of the
  documented types; annotations come at most 100 per request, 1,000 per report, each with
  an `external_id` (a POST with a known one updates it) and a `summary` of at most 450
  characters; a comment needs `content.raw`, a `parent` that exists; a new pipeline needs a
  `target` of a known type naming a commit of the repository;
- the effective permissions of a workspace are answered only to a token with workspace
  admin rights (403 otherwise); explicit repository grants to repository admins;
- a comment's `@{account id}` (or `@nickname`) outside code is a mention: recorded in
  `mentions`, so a test can assert nobody but the asker was notified.

Every request is recorded as a `Call`; `fail_next` makes the next N matching requests
answer 429 (Bitbucket's words, with `Retry-After` when asked), a 5xx, or hang;
`lose_answer` does them and loses the answer (`tests.fakes.lost`).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import uuid as uuids
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes.faults import FakeAPI, serve

__all__ = ["FakeBitbucket", "serve"]

TOKEN = "ATCTT3xFfGN0-herald-test-access-token"
EMAIL, API_TOKEN = "herald@acme.example", "ATATT3xFfGF0-herald-api-token"
BUILD_STATES = ("SUCCESSFUL", "FAILED", "INPROGRESS", "STOPPED")
REPORT_TYPES = ("SECURITY", "COVERAGE", "TEST", "BUG")
REPORT_RESULTS = ("PASSED", "FAILED", "PENDING")
DATA_TYPES = ("BOOLEAN", "DATE", "DURATION", "LINK", "NUMBER", "PERCENTAGE", "TEXT")
ANNOTATION_TYPES = ("VULNERABILITY", "CODE_SMELL", "BUG")
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
ANNOTATION_RESULTS = ("PASSED", "FAILED", "SKIPPED", "IGNORED")
TARGET_TYPES = ("pipeline_ref_target", "pipeline_commit_target", "pipeline_pullrequest_target")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+).*?\1")
_MENTION = re.compile(r"(?<![\w])@(\{[^}\s]+\}|[A-Za-z0-9_][A-Za-z0-9_.\-]*)")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def braced() -> str:
    return "{" + str(uuids.uuid4()) + "}"


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # decoded, without /2.0
    query: dict[str, str]
    body: Any
    auth: str | None
    lost: str | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class HttpError(Exception):
    def __init__(self, status: int, message: str, detail: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        error: dict[str, Any] = {"message": message}
        if detail:
            error["detail"] = detail
        self.body = {"type": "error", "error": error}


def bad(message: str) -> HttpError:
    return HttpError(400, message)


def report_refusal(message: str) -> HttpError:
    """Code Insights answers in its own shape (`{"key", "message", "arguments"}`)."""
    error = HttpError(400, message)
    error.body = {"key": "report-service.general.bad-request", "message": message,
                  "arguments": {}}
    return error


def mentions_in(raw: str) -> list[str]:
    """Who a comment's Markdown mentions: outside fenced and inline code only (U: that
    Bitbucket links no mention inside code, as GitHub and GitLab do not)."""
    found: list[str] = []
    fence: str | None = None
    for line in raw.splitlines():
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0]:
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        if line.startswith(("    ", "\t")):
            continue
        found.extend(m.group(1).strip("{}") for m in _MENTION.finditer(_INLINE_CODE.sub("", line)))
    return found


def form_files(content_type: str, body: bytes) -> list[tuple[str, str, bytes]] | None:
    """(field, file name, bytes) of each part of a `multipart/form-data` body (RFC 7578),
    or None when it is not one."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        return None
    delimiter = b"--" + found.group(1).encode()
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        return None
    parts = []
    for piece in pieces[1:-1]:
        head, sep, data = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep or not data.endswith(b"\r\n"):
            return None
        disposition = head.decode("latin-1")
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name is None:
            return None
        parts.append((name.group(1), filename.group(1) if filename else "", data[:-2]))
    return parts


@dataclass
class Repo:
    full_name: str
    uuid: str = field(default_factory=braced)
    commits: list[str] = field(default_factory=list)
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    test_cases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # step uuid
    reasons: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # case uuid
    statuses: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reports: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    annotations: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    pullrequests: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    grants: dict[str, str] = field(default_factory=dict)  # account id → explicit permission
    downloads: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → entry
    download_bytes: dict[str, bytes] = field(default_factory=dict)


class FakeBitbucket(FakeAPI):
    """The state of a small Bitbucket Cloud and the ASGI app that serves it."""

    def __init__(self) -> None:
        self.url = ""  # set when served
        super().__init__()
        self.calls: list[Call] = []
        self.mentions: list[str] = []
        self.repos: dict[str, Repo] = {}
        #: account id → effective repository permission (groups and projects included).
        self.effective: dict[tuple[str, str], str] = {}
        self.workspace_admin = True
        #: Whether the token may read its own account (`GET /user`).
        self.user_readable = True
        #: Bitbucket answers 404 for a commit's pull requests until it has indexed them.
        self.commit_links_indexed = True
        self.me = {"type": "user", "uuid": "{0d6c1f5e-8a1b-4c2d-9e3f-4a5b6c7d8e9f}",
                   "account_id": "712020:herald-bot", "display_name": "Herald",
                   "nickname": "herald-bot"}
        self.users: dict[str, dict[str, Any]] = {}
        self.created_pipelines: list[dict[str, Any]] = []
        #: Where a download's file is served from (a signed object-store URL, elsewhere).
        self.downloads_storage = "https://bbuseruploads.s3.amazonaws.com"
        self._ids = itertools.count(512_900_000)
        self._lock = threading.Lock()
        repo = r"/repositories/(?P<ws>[^/]+)/(?P<slug>[^/]+)"
        pipeline = repo + r"/pipelines/(?P<pid>[^/]+)"
        step = pipeline + r"/steps/(?P<sid>[^/]+)"
        commit = repo + r"/commit/(?P<sha>[0-9a-f]+)"
        report = commit + r"/reports/(?P<rid>[^/]+)"
        pull = repo + r"/pullrequests/(?P<pr>\d+)"
        self.routes = [(m, re.compile(f"^{p}$"), h) for m, p, h in [
            ("GET", r"/user", self.get_user),
            ("GET", repo + r"/pipelines/?", self.list_pipelines),
            ("POST", repo + r"/pipelines/?", self.create_pipeline),
            ("GET", pipeline, self.get_pipeline),
            ("GET", pipeline + r"/steps/?", self.list_steps),
            ("GET", step + r"/test_reports/test_cases", self.list_test_cases),
            ("GET", step + r"/test_reports/test_cases/(?P<cid>[^/]+)/test_case_reasons",
             self.list_reasons),
            ("GET", commit, self.get_commit),
            ("POST", commit + r"/statuses/build/?", self.post_status),
            ("GET", commit + r"/pullrequests", self.commit_pullrequests),
            ("GET", report, self.get_report),
            ("PUT", report, self.put_report),
            ("GET", report + r"/annotations", self.list_annotations),
            ("POST", report + r"/annotations", self.post_annotations),
            ("DELETE", report + r"/annotations/(?P<aid>[^/]+)", self.delete_annotation),
            ("GET", repo + r"/pullrequests", self.list_pullrequests),
            ("GET", pull, self.get_pullrequest),
            ("GET", pull + r"/comments", self.list_comments),
            ("POST", pull + r"/comments", self.create_comment),
            ("PUT", pull + r"/comments/(?P<cid>\d+)", self.update_comment),
            ("DELETE", pull + r"/comments/(?P<cid>\d+)", self.delete_comment),
            ("GET", r"/workspaces/(?P<ws>[^/]+)/permissions/repositories/(?P<slug>[^/]+)",
             self.workspace_permissions),
            ("GET", repo + r"/permissions-config/users/(?P<uid>[^/]+)", self.explicit_grant),
            ("POST", repo + r"/downloads/?", self.upload_downloads),
            ("GET", repo + r"/downloads/?", self.list_downloads),
            ("GET", repo + r"/downloads/(?P<name>[^/]+)", self.get_download),
            ("DELETE", repo + r"/downloads/(?P<name>[^/]+)", self.delete_download),
        ]]

    # ---- building the world -------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def add_repo(self, full_name: str, commits: list[str]) -> Repo:
        repo = self.repos[full_name] = Repo(full_name, commits=list(commits))
        return repo

    def add_user(self, account_id: str, nickname: str, display_name: str) -> dict[str, Any]:
        user = {"type": "user", "account_id": account_id, "nickname": nickname,
                "display_name": display_name, "uuid": braced()}
        self.users[account_id] = user
        return user

    def add_pipeline(self, repo: str, number: int, *, sha: str, branch: str,
                     result: str = "FAILED", uuid: str | None = None,
                     selector: dict[str, Any] | None = None) -> dict[str, Any]:
        target: dict[str, Any] = {
            "type": "pipeline_ref_target", "ref_type": "branch", "ref_name": branch,
            "commit": {"type": "commit", "hash": sha,
                       "links": {"html": {"href": f"https://bitbucket.org/{repo}/commits/{sha}"}}},
            "selector": selector or {"type": "branches", "pattern": branch},
        }
        pipeline = {
            "type": "pipeline", "uuid": uuid or braced(), "build_number": number,
            "creator": self.me, "repository": {"type": "repository", "full_name": repo},
            "target": target, "trigger": {"type": "pipeline_trigger_push"},
            "state": {"type": "pipeline_state_completed", "name": "COMPLETED",
                      "result": {"type": f"pipeline_state_completed_{result.lower()}",
                                 "name": result}},
            "created_on": now_iso(), "completed_on": now_iso(),
            "build_seconds_used": 238,
        }
        self.repos[repo].pipelines.append(pipeline)
        self.repos[repo].steps[pipeline["uuid"]] = []
        return pipeline

    def add_step(self, repo: str, pipeline: dict[str, Any], name: str, *,
                 result: str = "SUCCESSFUL", cases: list[dict[str, Any]] | None = None
                 ) -> dict[str, Any]:
        step = {
            "type": "pipeline_step", "uuid": braced(), "name": name,
            "pipeline": {"type": "pipeline", "uuid": pipeline["uuid"]},
            "state": {"type": "pipeline_step_state_completed", "name": "COMPLETED",
                      "result": {"type": f"pipeline_step_state_completed_{result.lower()}",
                                 "name": result}},
            "started_on": now_iso(), "completed_on": now_iso(), "duration_in_seconds": 61,
            "run_number": 1,
        }
        state = self.repos[repo]
        state.steps[pipeline["uuid"]].append(step)
        if cases is not None:
            listed = []
            for case in cases:
                reasons = case.pop("reasons", None)
                entry = {"type": "test_case", "uuid": braced(), "duration": "PT0.12S",
                         "status": "SUCCESSFUL", **case}
                listed.append(entry)
                if reasons is not None:
                    state.reasons[entry["uuid"]] = [
                        {"type": "test_case_reason", **reason} for reason in reasons]
            state.test_cases[step["uuid"]] = listed
        return step

    def add_pullrequest(self, repo: str, number: int, *, sha: str, branch: str,
                        state: str = "OPEN") -> dict[str, Any]:
        pull = {
            "type": "pullrequest", "id": number, "title": f"Change {number}", "state": state,
            "source": {"branch": {"name": branch},
                       "commit": {"type": "commit", "hash": sha[:12]},
                       "repository": {"type": "repository", "full_name": repo}},
            "destination": {"branch": {"name": "main"},
                            "commit": {"type": "commit", "hash": "a1b2c3d4e5f6"},
                            "repository": {"type": "repository", "full_name": repo}},
            "links": {"html": {"href": f"https://bitbucket.org/{repo}/pull-requests/{number}"}},
        }
        self.repos[repo].pullrequests[number] = pull
        self.repos[repo].comments.setdefault(number, [])
        return pull

    def add_comment(self, repo: str, number: int, raw: str,
                    user: dict[str, Any]) -> dict[str, Any]:
        comment = self._comment(repo, number, raw, user, None)
        self.repos[repo].comments[number].append(comment)
        return comment

    def fail_next(self, pattern: str, *, times: int = 1, status: int = 429,
                  hang: bool = False, retry_after: str | None = None) -> None:
        """The next `times` requests whose `"METHOD /path"` matches `pattern` fail."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.injected.fail(pattern, times=times, status=status, hang=hang, headers=headers)

    # ---- reading what happened ----------------------------------------------------------

    def our_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        return [c for c in self.repos[repo].comments[number]
                if c["user"]["uuid"] == self.me["uuid"] and not c["deleted"]]

    # ---- the ASGI app -------------------------------------------------------------------

    def _authorised(self, header: str | None) -> bool:
        if header == f"Bearer {TOKEN}":
            return True
        if header and header.startswith("Basic "):
            try:
                pair = base64.b64decode(header[6:]).decode()
            except ValueError:
                return False
            return pair == f"{EMAIL}:{API_TOKEN}"
        return False

    async def _handle(self, request: Request) -> Response:
        raw = request.scope.get("raw_path") or request.url.path.encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        if not raw_path.startswith("/2.0/"):
            return JSONResponse(HttpError(404, "Resource not found").body, status_code=404)
        raw_path = raw_path[len("/2.0"):]
        path = unquote(raw_path)
        method = request.method
        body_bytes = await request.body()
        query = {k: v[-1] for k, v in parse_qs(request.url.query).items()}
        auth = request.headers.get("authorization")
        fault, lost = self.intercept(request, f"{method} {path}")
        body: Any = None
        if body_bytes:
            try:
                body = json.loads(body_bytes)
            except ValueError:
                body = None
        self.calls.append(Call(method, path, query, body, auth, lost))
        if fault is not None:
            if fault.hang:
                await self.injected.hold(request)
                return JSONResponse(HttpError(504, "Gateway Timeout").body, status_code=504)
            message = ("Rate limit for this resource has been exceeded" if fault.status == 429
                       else "Something went wrong")
            return JSONResponse(HttpError(fault.status, message).body,
                                status_code=fault.status, headers=fault.headers)
        if not self._authorised(auth):
            return JSONResponse(HttpError(401, "Unauthorized").body, status_code=401)
        content_type = request.headers.get("content-type", "")
        form = method == "POST" and re.search(r"/downloads/?$", path) is not None
        if form:
            # Downloads are uploaded as a form, whose files `upload_downloads` reads.
            if not content_type.startswith("multipart/form-data"):
                return JSONResponse(bad("Unsupported Media Type").body, status_code=415)
            body = form_files(content_type, body_bytes)
            if body is None:
                return JSONResponse(bad("Bad request", "malformed multipart body").body,
                                    status_code=400)
        elif body_bytes and "application/json" not in content_type:
            return JSONResponse(bad("Unsupported Media Type").body, status_code=415)
        if body_bytes and body is None:
            return JSONResponse(bad("Bad request", "the body is not valid JSON").body,
                                status_code=400)
        try:
            handler, params = self.route(method, raw_path)
        except LookupError:
            return JSONResponse(HttpError(404, "Resource not found").body, status_code=404)
        try:
            with self._lock:
                result = handler(request, query, body, **params)
        except HttpError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result, status_code=201 if method == "POST" else 200)

    # ---- Downloads ----------------------------------------------------------------------

    def upload_downloads(self, request: Request, query: dict[str, str], body: Any, ws: str,
                         slug: str) -> Any:
        repo = self._repo(ws, slug)
        files = [part for part in body if part[0] == "files"]
        if not files or any(not filename for _, filename, _ in files):
            raise bad("Bad request", "no file sent in the `files` field")
        for _, filename, data in files:
            # One name is one download: sending it again replaces it.
            repo.downloads[filename] = {
                "type": "download", "name": filename, "size": len(data), "downloads": 0,
                "created_on": now_iso(), "user": self.me,
                "links": {"self": {"href": f"{self.url}/2.0/repositories/{repo.full_name}"
                                           f"/downloads/{filename}"}}}
            repo.download_bytes[filename] = data
        return Response(status_code=201)

    def list_downloads(self, request: Request, query: dict[str, str], body: Any, ws: str,
                       slug: str) -> Any:
        return self._page(request, query, list(self._repo(ws, slug).downloads.values()))

    def get_download(self, request: Request, query: dict[str, str], body: Any, ws: str,
                     slug: str, name: str) -> Any:
        repo = self._repo(ws, slug)
        if name not in repo.downloads:
            raise HttpError(404, f"No such file: {name}")
        return Response(status_code=302, headers={
            "Location": f"{self.downloads_storage}/{repo.uuid.strip('{}')}/{name}"
                        "?Signature=abc&Expires=1"})

    def delete_download(self, request: Request, query: dict[str, str], body: Any, ws: str,
                        slug: str, name: str) -> Any:
        repo = self._repo(ws, slug)
        if repo.downloads.pop(name, None) is None:
            raise HttpError(404, f"No such file: {name}")
        repo.download_bytes.pop(name, None)
        return Response(status_code=204)

    # ---- lookups ------------------------------------------------------------------------

    def _repo(self, ws: str, slug: str) -> Repo:
        repo = self.repos.get(f"{ws}/{slug}")
        if repo is None:
            raise HttpError(404, f"Repository {ws}/{slug} not found")
        return repo

    def _page(self, request: Request, query: dict[str, str],
              items: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            pagelen = int(query.get("pagelen", "10"))
            page = int(query.get("page", "1"))
        except ValueError:
            raise bad("Invalid page or pagelen") from None
        if not 1 <= pagelen <= 100 or page < 1:
            raise bad("Invalid pagelen", "pagelen must be between 1 and 100")
        chunk = items[(page - 1) * pagelen: page * pagelen]
        answer: dict[str, Any] = {"pagelen": pagelen, "page": page, "size": len(items),
                                  "values": chunk}
        if page * pagelen < len(items):
            path = request.scope["raw_path"].decode("latin-1")
            answer["next"] = f"{self.url}{path}?{urlencode({**query, 'page': page + 1})}"
        return answer

    def _pipeline(self, repo: Repo, pid: str) -> dict[str, Any]:
        for pipeline in repo.pipelines:
            if pipeline["uuid"] == pid:
                return pipeline
        raise HttpError(404, f"Pipeline {pid} not found")

    def _full(self, repo: Repo, sha: str) -> str:
        found = [c for c in repo.commits if c.startswith(sha)]
        if len(sha) < 7 or len(found) != 1:
            raise HttpError(404, f"Commit not found: {sha}")
        return found[0]

    def _pull(self, repo: Repo, pr: str) -> dict[str, Any]:
        pull = repo.pullrequests.get(int(pr))
        if pull is None:
            raise HttpError(404, f"Pull request {pr} not found")
        return pull

    def _comment(self, repo: str, number: int, raw: str, user: dict[str, Any],
                 parent: int | None) -> dict[str, Any]:
        comment_id = self.next_id()
        comment: dict[str, Any] = {
            "type": "pullrequest_comment", "id": comment_id, "created_on": now_iso(),
            "updated_on": now_iso(), "deleted": False, "pending": False, "inline": None,
            "content": {"type": "rendered", "raw": raw, "markup": "markdown", "html": ""},
            "user": user, "pullrequest": {"type": "pullrequest", "id": number},
            "links": {"html": {"href": f"https://bitbucket.org/{repo}/pull-requests/{number}"
                                       f"/_/diff#comment-{comment_id}"}},
        }
        if parent is not None:
            comment["parent"] = {"id": parent}
        return comment

    # ---- handlers -----------------------------------------------------------------------

    def get_user(self, request: Request, query: dict[str, str], body: Any) -> Any:
        if not self.user_readable:
            raise HttpError(403, "This API is not available to this credential")
        return self.me

    def list_pipelines(self, request: Request, query: dict[str, str], body: Any, ws: str,
                       slug: str) -> Any:
        repo = self._repo(ws, slug)
        pipelines = list(repo.pipelines)
        if query.get("sort") == "-created_on":
            pipelines.reverse()
        return self._page(request, query, pipelines)

    def get_pipeline(self, request: Request, query: dict[str, str], body: Any, ws: str,
                     slug: str, pid: str) -> Any:
        return self._pipeline(self._repo(ws, slug), pid)

    def list_steps(self, request: Request, query: dict[str, str], body: Any, ws: str,
                   slug: str, pid: str) -> Any:
        repo = self._repo(ws, slug)
        return self._page(request, query, repo.steps[self._pipeline(repo, pid)["uuid"]])

    def list_test_cases(self, request: Request, query: dict[str, str], body: Any, ws: str,
                        slug: str, pid: str, sid: str) -> Any:
        repo = self._repo(ws, slug)
        self._pipeline(repo, pid)
        cases = repo.test_cases.get(sid)
        if cases is None:
            raise HttpError(404, "No test reports found for this step")
        return self._page(request, query, cases)

    def list_reasons(self, request: Request, query: dict[str, str], body: Any, ws: str,
                     slug: str, pid: str, sid: str, cid: str) -> Any:
        repo = self._repo(ws, slug)
        self._pipeline(repo, pid)
        return self._page(request, query, repo.reasons.get(cid, []))

    def create_pipeline(self, request: Request, query: dict[str, str], body: Any, ws: str,
                        slug: str) -> Any:
        repo = self._repo(ws, slug)
        target = body.get("target") if isinstance(body, dict) else None
        if not isinstance(target, dict) or target.get("type") not in TARGET_TYPES:
            raise bad("Bad request", "target.type must be one of " + ", ".join(TARGET_TYPES))
        commit = target.get("commit")
        sha = commit.get("hash") if isinstance(commit, dict) else None
        if not isinstance(sha, str):
            raise bad("Bad request", "target.commit.hash is required")
        self._full(repo, sha)
        if target["type"] == "pipeline_ref_target" and not (
                target.get("ref_type") in ("branch", "tag") and target.get("ref_name")):
            raise bad("Bad request", "a ref target needs ref_type and ref_name")
        number = max((p["build_number"] for p in repo.pipelines), default=0) + 1
        selector = target.get("selector") if isinstance(target.get("selector"), dict) else None
        created = self.add_pipeline(repo.full_name, number, sha=sha,
                                    branch=str(target.get("ref_name")), result="PENDING",
                                    selector=selector)
        created["target"] = {**target, "commit": {"type": "commit", "hash": sha}}
        created["state"] = {"type": "pipeline_state_pending", "name": "PENDING"}
        self.created_pipelines.append(created)
        return created

    def get_commit(self, request: Request, query: dict[str, str], body: Any, ws: str,
                   slug: str, sha: str) -> Any:
        repo = self._repo(ws, slug)
        full = self._full(repo, sha)
        return {"type": "commit", "hash": full, "message": "Retry payment capture\n",
                "date": now_iso()}

    def post_status(self, request: Request, query: dict[str, str], body: Any, ws: str,
                    slug: str, sha: str) -> Any:
        repo = self._repo(ws, slug)
        full = self._full(repo, sha)
        if not isinstance(body, dict):
            raise bad("Bad request", "a build status object is required")
        for name in ("key", "state", "url"):
            if not body.get(name):
                raise bad("Bad request", f"{name}: This field is required.")
        if body["state"] not in BUILD_STATES:
            raise bad("Bad request", f"state: {body['state']!r} is not a valid choice.")
        for name in ("name", "description"):
            if len(str(body.get(name) or "")) > 255:
                raise bad("Bad request", f"{name}: at most 255 characters")
        if len(str(body["key"])) > 40:
            raise bad("Bad request", "key: at most 40 characters")
        status = {"type": "build", "uuid": braced(), "created_on": now_iso(),
                  "updated_on": now_iso(), "refname": None, "name": None, "description": "",
                  **body, "commit": {"type": "commit", "hash": full},
                  "repository": {"type": "repository", "full_name": repo.full_name}}
        previous = repo.statuses.get((full, body["key"]))
        if previous is not None:
            status["uuid"], status["created_on"] = previous["uuid"], previous["created_on"]
        repo.statuses[(full, body["key"])] = status
        return status

    def commit_pullrequests(self, request: Request, query: dict[str, str], body: Any,
                            ws: str, slug: str, sha: str) -> Any:
        repo = self._repo(ws, slug)
        full = self._full(repo, sha)
        if not self.commit_links_indexed:
            raise HttpError(404, "Pull request commit links are not indexed yet")
        pulls = [p for p in repo.pullrequests.values()
                 if full.startswith(p["source"]["commit"]["hash"])]
        return self._page(request, query, pulls)

    def _report_of(self, repo: Repo, sha: str, rid: str) -> dict[str, Any]:
        report = repo.reports.get((self._full(repo, sha), rid))
        if report is None:
            raise HttpError(404, f"Report {rid} not found")
        return report

    def get_report(self, request: Request, query: dict[str, str], body: Any, ws: str,
                   slug: str, sha: str, rid: str) -> Any:
        return self._report_of(self._repo(ws, slug), sha, rid)

    def put_report(self, request: Request, query: dict[str, str], body: Any, ws: str,
                   slug: str, sha: str, rid: str) -> Any:
        repo = self._repo(ws, slug)
        full = self._full(repo, sha)
        if not isinstance(body, dict) or not body.get("title"):
            raise report_refusal("title: This field is required.")
        if body.get("report_type") not in REPORT_TYPES:
            raise report_refusal("report_type must be one of " + ", ".join(REPORT_TYPES))
        if body.get("result") not in (None, *REPORT_RESULTS):
            raise report_refusal("result must be one of " + ", ".join(REPORT_RESULTS))
        if len(str(body.get("details") or "")) > 2000:
            raise report_refusal("details: at most 2000 characters")
        data = body.get("data") or []
        if not isinstance(data, list) or len(data) > 10:
            raise report_refusal("data: at most 10 elements")
        for item in data:
            if not isinstance(item, dict) or item.get("type") not in DATA_TYPES or \
                    not item.get("title") or "value" not in item:
                raise report_refusal(f"data: not a valid data element: {item!r}")
        previous = repo.reports.get((full, rid))
        report = {"type": "report", "uuid": previous["uuid"] if previous else braced(),
                  "external_id": rid, "created_on": now_iso(), "updated_on": now_iso(),
                  **body}
        repo.reports[(full, rid)] = report
        repo.annotations.setdefault((full, rid), [])
        return report

    def list_annotations(self, request: Request, query: dict[str, str], body: Any, ws: str,
                         slug: str, sha: str, rid: str) -> Any:
        repo = self._repo(ws, slug)
        self._report_of(repo, sha, rid)
        return self._page(request, query, repo.annotations[(self._full(repo, sha), rid)])

    def post_annotations(self, request: Request, query: dict[str, str], body: Any, ws: str,
                         slug: str, sha: str, rid: str) -> Any:
        repo = self._repo(ws, slug)
        self._report_of(repo, sha, rid)
        posted = repo.annotations[(self._full(repo, sha), rid)]
        if not isinstance(body, list) or not body:
            raise report_refusal("a non-empty array of annotations is required")
        if len(body) > 100:
            raise report_refusal("at most 100 annotations per request")
        ids = [a.get("external_id") if isinstance(a, dict) else None for a in body]
        if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            raise report_refusal("each annotation needs a unique external_id")
        for annotation in body:
            summary = annotation.get("summary")
            if not isinstance(summary, str) or not summary:
                raise report_refusal("summary: This field is required.")
            if len(summary) > 450:
                raise report_refusal("The summary field cannot contain more than 450 "
                          "characters.")
            if annotation.get("annotation_type") not in ANNOTATION_TYPES:
                raise report_refusal("annotation_type is not valid")
            if annotation.get("severity") not in (None, *SEVERITIES):
                raise report_refusal("severity is not valid")
            if annotation.get("result") not in (None, *ANNOTATION_RESULTS):
                raise report_refusal("result is not valid")
        known = {a["external_id"]: a for a in posted}
        new = [i for i in ids if i not in known]
        if len(posted) + len(new) > 1000:
            raise report_refusal("A report cannot have more than 1000 annotations")
        answer = []
        for annotation in body:
            entry = known.get(annotation["external_id"])
            if entry is None:
                entry = {"type": "report_annotation", "uuid": braced(),
                         "created_on": now_iso()}
                posted.append(entry)
            entry.update(annotation, updated_on=now_iso())
            answer.append(entry)
        return answer

    def delete_annotation(self, request: Request, query: dict[str, str], body: Any, ws: str,
                          slug: str, sha: str, rid: str, aid: str) -> Any:
        repo = self._repo(ws, slug)
        self._report_of(repo, sha, rid)
        posted = repo.annotations[(self._full(repo, sha), rid)]
        for annotation in list(posted):
            if aid in (annotation["external_id"], annotation["uuid"]):
                posted.remove(annotation)
                return None
        raise HttpError(404, f"Annotation {aid} not found")

    def list_pullrequests(self, request: Request, query: dict[str, str], body: Any, ws: str,
                          slug: str) -> Any:
        repo = self._repo(ws, slug)
        pulls = list(repo.pullrequests.values())
        if query.get("state"):
            pulls = [p for p in pulls if p["state"] == query["state"]]
        match = re.fullmatch(r'source\.branch\.name="([^"]*)"', query.get("q", ""))
        if query.get("q") and match is None:
            raise bad("Invalid query")
        if match:
            pulls = [p for p in pulls if p["source"]["branch"]["name"] == match.group(1)]
        return self._page(request, query, pulls)

    def get_pullrequest(self, request: Request, query: dict[str, str], body: Any, ws: str,
                        slug: str, pr: str) -> Any:
        return self._pull(self._repo(ws, slug), pr)

    def list_comments(self, request: Request, query: dict[str, str], body: Any, ws: str,
                      slug: str, pr: str) -> Any:
        repo = self._repo(ws, slug)
        self._pull(repo, pr)
        return self._page(request, query, repo.comments[int(pr)])

    def _raw_of(self, body: Any) -> str:
        raw = body.get("content", {}).get("raw") if isinstance(body, dict) else None
        if not isinstance(raw, str) or not raw.strip():
            raise bad("Bad request", "content.raw: This field is required.")
        return raw

    def create_comment(self, request: Request, query: dict[str, str], body: Any, ws: str,
                       slug: str, pr: str) -> Any:
        repo = self._repo(ws, slug)
        self._pull(repo, pr)
        raw = self._raw_of(body)
        parent = body.get("parent", {}).get("id") if isinstance(body.get("parent"), dict) \
            else None
        if parent is not None and not any(c["id"] == parent for c in repo.comments[int(pr)]):
            raise bad("Bad request", f"parent: comment {parent} does not exist")
        comment = self._comment(repo.full_name, int(pr), raw, self.me, parent)
        repo.comments[int(pr)].append(comment)
        self.mentions.extend(mentions_in(raw))
        return comment

    def _own_comment(self, repo: Repo, pr: str, cid: str) -> dict[str, Any]:
        self._pull(repo, pr)
        for comment in repo.comments[int(pr)]:
            if comment["id"] == int(cid) and not comment["deleted"]:
                if comment["user"]["uuid"] != self.me["uuid"]:
                    raise HttpError(403, "You may only edit your own comments")
                return comment
        raise HttpError(404, f"Comment {cid} not found")

    def update_comment(self, request: Request, query: dict[str, str], body: Any, ws: str,
                       slug: str, pr: str, cid: str) -> Any:
        repo = self._repo(ws, slug)
        comment = self._own_comment(repo, pr, cid)
        raw = self._raw_of(body)
        comment["content"]["raw"] = raw
        comment["updated_on"] = now_iso()
        self.mentions.extend(mentions_in(raw))
        return comment

    def delete_comment(self, request: Request, query: dict[str, str], body: Any, ws: str,
                       slug: str, pr: str, cid: str) -> Any:
        comment = self._own_comment(self._repo(ws, slug), pr, cid)
        comment["deleted"] = True
        return None

    def workspace_permissions(self, request: Request, query: dict[str, str], body: Any,
                              ws: str, slug: str) -> Any:
        repo = self._repo(ws, slug)
        if not self.workspace_admin:
            raise HttpError(403, "You must be an administrator of this workspace")
        match = re.fullmatch(r'user\.account_id="([^"]+)"', query.get("q", ""))
        if query.get("q") and match is None:
            raise bad("Invalid query")
        found = [
            {"type": "repository_permission", "permission": permission,
             "user": self.users[account],
             "repository": {"type": "repository", "full_name": repo.full_name}}
            for (name, account), permission in self.effective.items()
            if name == repo.full_name and (match is None or match.group(1) == account)
        ]
        return self._page(request, query, found)

    def explicit_grant(self, request: Request, query: dict[str, str], body: Any, ws: str,
                       slug: str, uid: str) -> Any:
        repo = self._repo(ws, slug)
        permission = repo.grants.get(uid)
        if permission is None:
            raise HttpError(404, "No explicit permission for this user")
        return {"type": "repository_user_permission", "permission": permission,
                "user": self.users.get(uid, {"account_id": uid})}
