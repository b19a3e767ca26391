"""A fake GitHub REST API on loopback: every endpoint Herald calls, strict where GitHub is.

`FakeGitHub` is a Starlette app served by uvicorn on a free 127.0.0.1 port (the
`fake_github` fixture in tests/github/conftest.py), plus a second server standing in for
the artifact storage host GitHub redirects downloads to. That storage server refuses any
request that carries `Authorization`, as a reminder that tokens must not leak there.

What it checks like GitHub does:
- the App JWT on `POST /app/installations/{id}/access_tokens` (RS256 against the test
  App's public key, `iat`/`exp` sane, `iss` the App id or client id); installation tokens
  on everything else (401 `Bad credentials` otherwise, also for expired tokens);
- check runs: `name`/`head_sha` required, `output.title`/`output.summary` required when
  `output` is sent, summary ≤ 65,535 characters, ≤ 50 annotations per request, each with
  path/start_line/end_line/annotation_level/message (422 otherwise); annotations append;
- comments ≤ 65,536 characters; reactions from the documented set.
- git trees and blobs (`.herald.yml`): a tree is a commit sha, blob ids are git's own
  (`git_blob_id`), blob content base64 in lines of 60 as GitHub sends it; a root file's
  contents, at the default branch (`HEAD` in `add_file`) when no `ref` is given.

Every request is recorded as a `Call(method, path, query, json)` for assertions. Faults can
be scheduled: `fake.fail("POST", "/repos/o/r/check-runs", status=429, headers={...})` for
the next N matching requests, or `hang=` seconds; these answer without doing anything.
`fake.lose_answer("PATCH", ..., how="timeout" | "reset")` is the other kind: the request is
done, then its answer never arrives (held until the client gives up, or the connection
reset), as when GitHub acts on a write and the network loses the reply.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.lost import drop_answer

SUMMARY_LIMIT = 65_535
COMMENT_LIMIT = 65_536
ANNOTATIONS_PER_REQUEST = 50
REACTIONS = {"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"}
ANNOTATION_FIELDS = ("path", "start_line", "end_line", "annotation_level", "message")


#: The github-actions App, which a workflow's GITHUB_TOKEN belongs to.
ACTIONS_APP_ID = 15368


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    #: The status (or "hang") a scheduled fault answered, or how the answer of a request
    #: that was done got lost ("timeout", "reset").
    fault: int | str | None = None


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    times: int
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    hang: float | None = None


@dataclass
class LostAnswer:
    method: str
    path: re.Pattern[str]
    times: int
    how: str  # "timeout": never answered, until the client gives up; "reset": RST


#: How long a lost answer is held at most, waiting for the client to give up.


@dataclass
class Run:
    data: dict[str, Any]
    jobs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Repo:
    full_name: str
    runs: dict[int, Run] = field(default_factory=dict)
    check_runs: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    reactions: list[dict[str, Any]] = field(default_factory=list)
    permissions: dict[str, tuple[str, str]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: sha → PR numbers `/commits/{sha}/pulls` lists (fork PRs are often missing there).
    commit_pulls: dict[str, list[int]] = field(default_factory=dict)
    reruns: list[tuple[int, str]] = field(default_factory=list)
    #: The root tree of each commit (or `HEAD`, the default branch): path → bytes.
    trees: dict[str, dict[str, bytes]] = field(default_factory=dict)
    #: Git blobs by their id (`git_blob_id`), as `/git/blobs/{sha}` serves them.
    git_blobs: dict[str, bytes] = field(default_factory=dict)


def git_blob_id(data: bytes) -> str:
    """The blob id git gives these bytes: the same bytes have it at every commit."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def generate_app_key() -> tuple[str, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, public


class FakeGitHub:
    def __init__(self, *, app_id: int = 4242, private_key: str, public_key: bytes,
                 installation_id: int = 52817364, token_lifetime: float = 3600.0) -> None:
        self.app_id = app_id
        self.client_id = "Iv1.herald-test"
        self.private_key = private_key
        self.public_key = public_key
        self.installation_id = installation_id
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, float] = {}  # token → expiry
        #: A workflow's GITHUB_TOKEN: GitHub credits what it writes to github-actions[bot].
        self.actions_tokens: set[str] = set()
        self.repos: dict[str, Repo] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.lost_answers: list[LostAnswer] = []
        self.blobs: dict[str, bytes] = {}
        self.blob_requests: list[dict[str, str]] = []
        self.base_url = ""  # set once served
        self.blob_url = ""
        self.delays: list[tuple[str, re.Pattern[str], float]] = []
        self.writes_in_flight = 0
        self.most_writes_in_flight = 0
        self._ids = itertools.count(1000)
        #: The App's webhook deliveries, newest first, as `GET /app/hook/deliveries` lists.
        self.deliveries: list[dict[str, Any]] = []
        #: The status the next redeliveries are listed with (GitHub tries at once).
        self.redelivery_status = 202
        self.app = Starlette(routes=self._routes())
        self.blob_app = Starlette(routes=[Route("/blob/{key}", self._blob)])

    # ---- test-facing helpers -----------------------------------------------------------

    def repo(self, full_name: str) -> Repo:
        return self.repos.setdefault(full_name, Repo(full_name))

    def add_run(self, repo: str, run: dict[str, Any], *, artifacts: dict[str, bytes] | None = None,
                jobs: list[dict[str, Any]] | None = None) -> Run:
        state = Run(dict(run), jobs or [
            {"id": next(self._ids), "name": "test", "status": "completed",
             "conclusion": run.get("conclusion"), "html_url": f"{run.get('html_url')}/job/1"}
        ])
        for name, data in (artifacts or {}).items():
            artifact_id = next(self._ids)
            key = secrets.token_urlsafe(8)
            self.blobs[key] = data
            state.artifacts.append({
                "id": artifact_id, "name": name, "size_in_bytes": len(data), "expired": False,
                "archive_download_url": f"{self.base_url}/repos/{repo}/actions/artifacts/"
                                        f"{artifact_id}/zip",
                "_blob": key,
            })
        self.repo(repo).runs[int(run["id"])] = state
        return state

    def add_pull(self, repo: str, number: int, sha: str, *, listed_for_commit: bool = True,
                 state: str = "open", base: str = "main", base_sha: str | None = None) -> None:
        target = self.repo(repo)
        target.pulls[number] = {"number": number, "state": state, "head": {"sha": sha},
                                "base": {"ref": base, "sha": base_sha or "0" * 40}}
        if listed_for_commit:
            target.commit_pulls.setdefault(sha, []).append(number)

    def add_file(self, repo: str, ref: str, path: str, data: bytes) -> str:
        """Put `path` in the root tree of commit `ref` (`HEAD`: the default branch) of
        `repo`; its blob id."""
        target = self.repo(repo)
        target.trees.setdefault(ref, {})[path] = data
        blob = git_blob_id(data)
        target.git_blobs[blob] = data
        return blob

    def add_delivery(self, guid: str, status_code: int, *, event: str = "workflow_run",
                     action: str | None = "completed", age: float = 60.0,
                     redelivery: bool = False) -> int:
        """A delivery `age` seconds ago, listed before every older one; its numeric id."""
        number = next(self._ids)
        when = time.gmtime(time.time() - age)
        status = "OK" if 200 <= status_code < 300 else f"Invalid HTTP Response: {status_code}"
        self.deliveries.insert(0, {
            "id": number, "guid": guid, "delivered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", when),
            "redelivery": redelivery, "duration": 0.27, "status": status,
            "status_code": status_code, "event": event, "action": action,
            "installation_id": self.installation_id, "repository_id": 1296269,
            "throttled_at": None,
        })
        self.deliveries.sort(key=lambda d: d["delivered_at"], reverse=True)
        return number

    def grant(self, repo: str, login: str, permission: str, role: str | None = None) -> None:
        self.repo(repo).permissions[login.lower()] = (permission, role or permission)

    def fail(self, method: str, path: str, *, times: int = 1, status: int = 500,
             headers: dict[str, str] | None = None, body: Any = None,
             hang: float | None = None) -> None:
        """Answer the next `times` requests matching `method` and `path` (a regex) badly."""
        self.faults.append(Fault(method, re.compile(path), times, status, headers or {},
                                 body, hang))

    def lose_answer(self, method: str, path: str, *, how: str = "timeout",
                    times: int = 1) -> None:
        """Do the next `times` requests matching `method` and `path` (a regex), then lose
        their answers: `how="timeout"` sends nothing until the client hangs up, `"reset"`
        resets the connection at once."""
        if how not in ("timeout", "reset"):
            raise ValueError(f"a lost answer times out or resets, not {how!r}")
        self.lost_answers.append(LostAnswer(method, re.compile(path), times, how))

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        regex = re.compile(pattern)
        return [c for c in self.calls if c.method == method and regex.fullmatch(c.path)]

    def issue_token(self) -> str:
        token = "ghs_" + secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.token_lifetime
        return token

    def issue_actions_token(self) -> str:
        """A workflow job's GITHUB_TOKEN (an installation token of the github-actions App)."""
        token = self.issue_token()
        self.actions_tokens.add(token)
        return token

    # ---- plumbing ----------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        r = "/repos/{owner}/{repo}"
        return [
            Route("/app/installations/{installation_id:int}/access_tokens", self._token,
                  methods=["POST"]),
            Route(r + "/installation", self._installation, methods=["GET"]),
            Route("/app/hook/deliveries", self._deliveries, methods=["GET"]),
            Route("/app/hook/deliveries/{delivery_id:int}/attempts", self._redeliver,
                  methods=["POST"]),
            Route(r + "/actions/runs", self._runs_for_sha, methods=["GET"]),
            Route(r + "/actions/runs/{run_id:int}", self._run, methods=["GET"]),
            Route(r + "/actions/runs/{run_id:int}/attempts/{attempt:int}/jobs", self._jobs,
                  methods=["GET"]),
            Route(r + "/actions/runs/{run_id:int}/jobs", self._jobs, methods=["GET"]),
            Route(r + "/actions/runs/{run_id:int}/artifacts", self._artifacts, methods=["GET"]),
            Route(r + "/actions/artifacts/{artifact_id:int}/zip", self._artifact_zip,
                  methods=["GET"]),
            Route(r + "/actions/runs/{run_id:int}/rerun-failed-jobs", self._rerun,
                  methods=["POST"]),
            Route(r + "/actions/runs/{run_id:int}/rerun", self._rerun, methods=["POST"]),
            Route(r + "/commits/{sha}/check-runs", self._list_checks, methods=["GET"]),
            Route(r + "/check-suites/{suite_id:int}/check-runs", self._suite_checks,
                  methods=["GET"]),
            Route(r + "/check-runs", self._create_check, methods=["POST"]),
            Route(r + "/check-runs/{check_id:int}", self._check, methods=["GET", "PATCH"]),
            Route(r + "/issues/{number:int}/comments", self._comments, methods=["GET", "POST"]),
            Route(r + "/issues/comments/{comment_id:int}", self._update_comment,
                  methods=["PATCH", "DELETE"]),
            Route(r + "/issues/comments/{comment_id:int}/reactions", self._react,
                  methods=["POST"]),
            Route(r + "/collaborators/{username}/permission", self._permission, methods=["GET"]),
            Route(r + "/commits/{sha}/pulls", self._commit_pulls, methods=["GET"]),
            Route(r + "/pulls", self._list_pulls, methods=["GET"]),
            Route(r + "/pulls/{number:int}", self._pull, methods=["GET"]),
            Route(r + "/git/trees/{tree_sha}", self._tree, methods=["GET"]),
            Route(r + "/git/blobs/{file_sha}", self._git_blob, methods=["GET"]),
            Route(r + "/contents/{path:path}", self._contents, methods=["GET"]),
        ]

    def slow(self, method: str, path: str, seconds: float) -> None:
        """Answer requests matching `method` and `path` normally, but only after `seconds`."""
        self.delays.append((method, re.compile(path), seconds))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The served app: counts concurrent content-creating requests, applies delays."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        write = method in ("POST", "PATCH", "PUT", "DELETE")
        if write:
            self.writes_in_flight += 1
            self.most_writes_in_flight = max(self.most_writes_in_flight, self.writes_in_flight)
        try:
            for delayed_method, pattern, seconds in self.delays:
                if delayed_method == method and pattern.fullmatch(path):
                    await asyncio.sleep(seconds)
            lost = self._lost_answer(method, path)
            if lost is None:
                await self.app(scope, receive, send)
            else:
                await self._do_then_lose_answer(lost, scope, receive, send)
        finally:
            if write:
                self.writes_in_flight -= 1

    def _lost_answer(self, method: str, path: str) -> LostAnswer | None:
        for lost in self.lost_answers:
            if lost.times > 0 and lost.method == method and lost.path.fullmatch(path):
                lost.times -= 1
                return lost
        return None

    async def _do_then_lose_answer(self, lost: LostAnswer, scope: Any, receive: Any,
                                   send: Any) -> None:
        async def nowhere(message: Any) -> None:
            pass

        await self.app({**scope, "herald.lost": lost.how}, receive, nowhere)
        await drop_answer(lost.how, receive, send)

    async def _record(self, request: Request) -> tuple[Call, Response | None]:
        body = await request.body()
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = body.decode(errors="replace")
        path = request.url.path
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and fault.path.fullmatch(path):
                fault.times -= 1
                call = Call(request.method, path, dict(request.query_params), payload,
                            "hang" if fault.hang else fault.status)
                self.calls.append(call)
                if fault.hang:
                    await asyncio.sleep(fault.hang)
                return call, JSONResponse(
                    fault.body if fault.body is not None else {"message": "fault injected"},
                    status_code=fault.status, headers=fault.headers,
                )
        call = Call(request.method, path, dict(request.query_params), payload,
                    request.scope.get("herald.lost"))
        self.calls.append(call)
        return call, None

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("token", "bearer"):
            return False
        expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.time()

    def _repo_of(self, request: Request) -> Repo | None:
        name = f"{request.path_params['owner']}/{request.path_params['repo']}"
        return self.repos.get(name)

    async def _guard(self, request: Request) -> tuple[Call, Repo | Response]:
        call, fault = await self._record(request)
        if fault is not None:
            return call, fault
        if not self._authorized(request):
            return call, _error(401, "Bad credentials")
        repo = self._repo_of(request)
        if repo is None:
            return call, _error(404, "Not Found")
        return call, repo

    def _page(self, request: Request, items: list[Any], key: str | None,
              extra: dict[str, Any] | None = None) -> Response:
        per_page = min(100, int(request.query_params.get("per_page", 30)))
        page = int(request.query_params.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            query = dict(request.query_params)
            query["page"] = str(page + 1)
            link = request.url.replace_query_params(**query)
            headers["link"] = f'<{link}>; rel="next"'
        body: Any = chunk if key is None else {"total_count": len(items), key: chunk,
                                               **(extra or {})}
        return JSONResponse(body, headers=headers)

    # ---- endpoints ---------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        _, fault = await self._record(request)
        if fault is not None:
            return fault
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return _error(401, "A JSON web token could not be decoded")
        try:
            claims = pyjwt.decode(token, self.public_key, algorithms=["RS256"],
                                  options={"require": ["iat", "exp", "iss"]})
        except pyjwt.PyJWTError as exc:
            return _error(401, f"A JSON web token could not be decoded: {exc}")
        now = time.time()
        if not (claims["iat"] <= now and claims["exp"] - claims["iat"] <= 600 + 60):
            return _error(401, "'Expiration time' claim ('exp') is too far in the future")
        if str(claims["iss"]) not in (str(self.app_id), self.client_id):
            return _error(401, "Integration not found")
        if request.path_params["installation_id"] != self.installation_id:
            return _error(404, "Not Found")
        expiry = time.gmtime(time.time() + self.token_lifetime)
        return JSONResponse(
            {"token": self.issue_token(), "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", expiry),
             "permissions": {"checks": "write"}, "repository_selection": "all"},
            status_code=201,
        )

    async def _installation(self, request: Request) -> Response:
        _, fault = await self._record(request)
        if fault is not None:
            return fault
        token = request.headers.get("authorization", "").partition(" ")[2]
        try:
            pyjwt.decode(token, self.public_key, algorithms=["RS256"])
        except pyjwt.PyJWTError:
            return _error(401, "A JSON web token could not be decoded")
        if self._repo_of(request) is None:
            return _error(404, "Not Found")
        return JSONResponse({"id": self.installation_id, "app_id": self.app_id})

    async def _as_app(self, request: Request) -> Response | None:
        """Record an App-level request; the answer when a fault or a bad JWT refuses it."""
        _, fault = await self._record(request)
        if fault is not None:
            return fault
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise pyjwt.InvalidTokenError("not a bearer token")
            pyjwt.decode(token, self.public_key, algorithms=["RS256"])
        except pyjwt.PyJWTError:
            return _error(401, "A JSON web token could not be decoded")
        return None

    async def _deliveries(self, request: Request) -> Response:
        """Cursor-paged as GitHub pages them: `per_page` ≤ 100, the next page's cursor in
        the Link header (here `v1_{id}` of its first delivery), no Link on the last page."""
        refused = await self._as_app(request)
        if refused is not None:
            return refused
        per_page = min(100, int(request.query_params.get("per_page", 30)))
        cursor = request.query_params.get("cursor")
        start = 0
        if cursor is not None:
            ids = [f"v1_{d['id']}" for d in self.deliveries]
            if cursor not in ids:
                return _error(422, "Validation Failed: cursor")
            start = ids.index(cursor)
        chunk = self.deliveries[start : start + per_page]
        headers = {}
        if start + per_page < len(self.deliveries):
            following = self.deliveries[start + per_page]["id"]
            link = request.url.include_query_params(cursor=f"v1_{following}")
            headers["link"] = f'<{link}>; rel="next"'
        return JSONResponse(chunk, headers=headers)

    async def _redeliver(self, request: Request) -> Response:
        refused = await self._as_app(request)
        if refused is not None:
            return refused
        number = request.path_params["delivery_id"]
        original = next((d for d in self.deliveries if d["id"] == number), None)
        if original is None:
            return _error(404, "Not Found")
        self.add_delivery(original["guid"], self.redelivery_status, event=original["event"],
                          action=original["action"], age=0.0, redelivery=True)
        return JSONResponse({}, status_code=202)

    async def _run(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        run = repo.runs.get(request.path_params["run_id"])
        return JSONResponse(run.data) if run else _error(404, "Not Found")

    async def _jobs(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        run = repo.runs.get(request.path_params["run_id"])
        return self._page(request, run.jobs, "jobs") if run else _error(404, "Not Found")

    async def _artifacts(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        run = repo.runs.get(request.path_params["run_id"])
        if run is None:
            return _error(404, "Not Found")
        shown = [{k: v for k, v in a.items() if not k.startswith("_")} for a in run.artifacts]
        return self._page(request, shown, "artifacts")

    async def _artifact_zip(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        wanted = request.path_params["artifact_id"]
        for run in repo.runs.values():
            for artifact in run.artifacts:
                if artifact["id"] == wanted:
                    if artifact["expired"]:
                        return _error(410, "Artifact has expired")
                    location = f"{self.blob_url}/blob/{artifact['_blob']}?sig=short-lived"
                    return Response(status_code=302, headers={"location": location})
        return _error(404, "Not Found")

    async def _blob(self, request: Request) -> Response:
        self.blob_requests.append({k.lower(): v for k, v in request.headers.items()})
        if "authorization" in request.headers:
            # Azure blob storage rejects the GitHub token; we make it loud.
            return Response("Authorization header is not allowed here", status_code=400)
        data = self.blobs.get(request.path_params["key"])
        if data is None:
            return Response(status_code=404)
        return Response(data, media_type="application/zip")

    async def _rerun(self, request: Request) -> Response:
        call, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        run_id = request.path_params["run_id"]
        if run_id not in repo.runs:
            return _error(404, "Not Found")
        repo.reruns.append((run_id, call.path.rsplit("/", 1)[1]))
        # GitHub queues the new attempt at once.
        run = repo.runs[run_id].data
        run.update(status="queued", conclusion=None,
                   run_attempt=int(run.get("run_attempt") or 1) + 1)
        return JSONResponse({}, status_code=201)

    async def _list_checks(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        sha = request.path_params["sha"]
        name = request.query_params.get("check_name")
        found = [_public_check(c) for c in repo.check_runs
                 if c["head_sha"] == sha and (name is None or c["name"] == name)]
        return self._page(request, found, "check_runs")

    async def _suite_checks(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        suite = request.path_params["suite_id"]
        found = [_public_check(c) for c in repo.check_runs if c["check_suite"]["id"] == suite]
        return self._page(request, found, "check_runs")

    async def _create_check(self, request: Request) -> Response:
        call, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        body = call.json if isinstance(call.json, dict) else {}
        missing = [f for f in ("name", "head_sha") if not body.get(f)]
        if missing:
            return _invalid(missing)
        problem = _check_output(body.get("output"))
        if problem is not None:
            return problem
        check_id = next(self._ids)
        check = {
            "id": check_id,
            "name": body["name"],
            "head_sha": body["head_sha"],
            "external_id": body.get("external_id", ""),
            "status": body.get("status", "queued"),
            "conclusion": body.get("conclusion"),
            "details_url": body.get("details_url"),
            "html_url": f"https://github.com/{repo.full_name}/runs/{check_id}",
            "check_suite": {"id": 900_000 + len(repo.check_runs)},
            "app": {"id": self.app_id, "slug": "herald"},
            "actions": body.get("actions", []),
            "output": {k: v for k, v in (body.get("output") or {}).items()
                       if k != "annotations"},
            "annotations": list((body.get("output") or {}).get("annotations") or []),
        }
        repo.check_runs.append(check)
        return JSONResponse(_public_check(check), status_code=201)

    async def _check(self, request: Request) -> Response:
        call, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        check = next((c for c in repo.check_runs if c["id"] == request.path_params["check_id"]),
                     None)
        if check is None:
            return _error(404, "Not Found")
        if request.method == "GET":
            return JSONResponse(_public_check(check))
        body = call.json if isinstance(call.json, dict) else {}
        problem = _check_output(body.get("output"))
        if problem is not None:
            return problem
        for key in ("name", "status", "conclusion", "details_url", "external_id", "actions"):
            if key in body:
                check[key] = body[key]
        if "output" in body:
            output = body["output"]
            check["output"] = {k: v for k, v in output.items() if k != "annotations"}
            check["annotations"].extend(output.get("annotations") or [])
        return JSONResponse(_public_check(check))

    async def _comments(self, request: Request) -> Response:
        call, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        number = request.path_params["number"]
        if number not in repo.pulls:
            return _error(404, "Not Found")
        comments = repo.comments.setdefault(number, [])
        if request.method == "GET":
            return self._page(request, comments, None)
        body = call.json if isinstance(call.json, dict) else {}
        problem = _comment_body(body)
        if problem is not None:
            return problem
        comment_id = next(self._ids)
        actions = request.headers.get("authorization", "").partition(" ")[2] \
            in self.actions_tokens
        comment = {
            "id": comment_id,
            "body": body["body"],
            "user": {"login": "github-actions[bot]" if actions else "herald[bot]",
                     "type": "Bot"},
            "performed_via_github_app": {"id": ACTIONS_APP_ID, "slug": "github-actions"}
            if actions else {"id": self.app_id, "slug": "herald"},
            "html_url": f"https://github.com/{repo.full_name}/pull/{number}#issuecomment-"
                        f"{comment_id}",
        }
        comments.append(comment)
        return JSONResponse(comment, status_code=201)

    def add_human_comment(self, repo: str, number: int, body: str, login: str) -> None:
        self.repo(repo).comments.setdefault(number, []).append({
            "id": next(self._ids), "body": body, "user": {"login": login, "type": "User"},
            "performed_via_github_app": None,
        })

    async def _update_comment(self, request: Request) -> Response:
        call, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        if request.method == "DELETE":
            # rest/issues/comments#delete-an-issue-comment: 204, or 404 when gone
            for comments in repo.comments.values():
                for comment in comments:
                    if comment["id"] == request.path_params["comment_id"]:
                        comments.remove(comment)
                        return Response(status_code=204)
            return _error(404, "Not Found")
        body = call.json if isinstance(call.json, dict) else {}
        problem = _comment_body(body)
        if problem is not None:
            return problem
        for comments in repo.comments.values():
            for comment in comments:
                if comment["id"] == request.path_params["comment_id"]:
                    comment["body"] = body["body"]
                    return JSONResponse(comment)
        return _error(404, "Not Found")

    async def _react(self, request: Request) -> Response:
        call, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        content = (call.json or {}).get("content")
        if content not in REACTIONS:
            return _invalid(["content"])
        reaction = {"comment_id": request.path_params["comment_id"], "content": content}
        if reaction in repo.reactions:
            return JSONResponse({"id": 1, "content": content}, status_code=200)
        repo.reactions.append(reaction)
        return JSONResponse({"id": 1, "content": content}, status_code=201)

    async def _permission(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        login = request.path_params["username"]
        permission, role = repo.permissions.get(login.lower(), ("read", "read"))
        return JSONResponse({"permission": permission, "role_name": role,
                             "user": {"login": login}})

    async def _commit_pulls(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        numbers = repo.commit_pulls.get(request.path_params["sha"], [])
        return self._page(request, [repo.pulls[n] for n in numbers], None)

    async def _list_pulls(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        state = request.query_params.get("state", "open")
        pulls = [p for p in repo.pulls.values() if state == "all" or p["state"] == state]
        return self._page(request, pulls, None)

    async def _pull(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        pull = repo.pulls.get(request.path_params["number"])
        return JSONResponse(pull) if pull else _error(404, "Not Found")

    async def _tree(self, request: Request) -> Response:
        """https://docs.github.com/en/rest/git/trees#get-a-tree, not recursive: every
        commit's root holds a README besides the files a test added."""
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        tree_sha = request.path_params["tree_sha"]
        if not re.fullmatch(r"[0-9a-f]{40}", tree_sha):
            return _error(404, "Not Found")
        files = {"README.md": b"# a repository\n", **repo.trees.get(tree_sha, {})}
        api = f"{self.base_url}/repos/{repo.full_name}/git"
        entries = []
        for path, data in sorted(files.items()):
            blob = git_blob_id(data)
            repo.git_blobs.setdefault(blob, data)
            entries.append({"path": path, "mode": "100644", "type": "blob", "sha": blob,
                            "size": len(data), "url": f"{api}/blobs/{blob}"})
        entries.append({"path": "src", "mode": "040000", "type": "tree", "sha": "e" * 40,
                        "url": f"{api}/trees/{'e' * 40}"})
        own = hashlib.sha1(tree_sha.encode()).hexdigest()
        return JSONResponse({"sha": own, "url": f"{api}/trees/{own}", "tree": entries,
                             "truncated": False})

    async def _contents(self, request: Request) -> Response:
        """https://docs.github.com/en/rest/repos/contents#get-repository-content, for a
        file in the root: without `ref`, the default branch (the `HEAD` tree here)."""
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        path = request.path_params["path"]
        ref = request.query_params.get("ref") or "HEAD"
        data = repo.trees.get(ref, {}).get(path)
        if data is None:
            return _error(404, "Not Found")
        blob = git_blob_id(data)
        encoded = base64.b64encode(data).decode()
        api = f"{self.base_url}/repos/{repo.full_name}"
        return JSONResponse({
            "type": "file", "encoding": "base64", "size": len(data), "name": path,
            "path": path, "sha": blob, "content": encoded,
            "url": f"{api}/contents/{path}", "git_url": f"{api}/git/blobs/{blob}",
        })

    async def _git_blob(self, request: Request) -> Response:
        """https://docs.github.com/en/rest/git/blobs#get-a-blob: base64, lines of 60."""
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        blob = request.path_params["file_sha"]
        data = repo.git_blobs.get(blob)
        if data is None:
            return _error(404, "Not Found")
        encoded = base64.b64encode(data).decode()
        content = "\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)) + "\n"
        return JSONResponse({
            "sha": blob, "node_id": "B_" + blob[:12], "size": len(data),
            "url": f"{self.base_url}/repos/{repo.full_name}/git/blobs/{blob}",
            "content": content, "encoding": "base64",
        })

    async def _runs_for_sha(self, request: Request) -> Response:
        _, repo = await self._guard(request)
        if isinstance(repo, Response):
            return repo
        sha = request.query_params.get("head_sha")
        runs = [r.data for r in repo.runs.values() if sha is None or r.data["head_sha"] == sha]
        return self._page(request, runs, "workflow_runs")


def _public_check(check: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in check.items() if k != "annotations"}
    shown["output"] = {**check["output"], "annotations_count": len(check["annotations"])}
    return shown


def _error(status: int, message: str) -> Response:
    return JSONResponse({"message": message, "documentation_url": "https://docs.github.com"},
                        status_code=status)


def _invalid(fields: list[str]) -> Response:
    return JSONResponse(
        {"message": "Invalid request.",
         "errors": [{"resource": "CheckRun", "field": f, "code": "missing_field"}
                    for f in fields]},
        status_code=422,
    )


def _check_output(output: Any) -> Response | None:
    if output is None:
        return None
    missing = [f for f in ("title", "summary") if not output.get(f)]
    if missing:
        return _invalid([f"output.{f}" for f in missing])
    if len(output["summary"]) > SUMMARY_LIMIT:
        return JSONResponse({"message": "Invalid request.\n\nOnly 65535 characters are allowed;"
                             f" {len(output['summary'])} were supplied."}, status_code=422)
    annotations = output.get("annotations") or []
    if len(annotations) > ANNOTATIONS_PER_REQUEST:
        return JSONResponse({"message": "Invalid request.\n\nOnly 50 annotations are allowed "
                             "per request."}, status_code=422)
    for annotation in annotations:
        missing = [f for f in ANNOTATION_FIELDS if annotation.get(f) in (None, "")]
        if missing:
            return _invalid([f"output.annotations.{f}" for f in missing])
    return None


def _comment_body(body: dict[str, Any]) -> Response | None:
    if not body.get("body"):
        return _invalid(["body"])
    if len(body["body"]) > COMMENT_LIMIT:
        return JSONResponse({"message": "Validation Failed", "errors": [
            {"resource": "IssueComment", "code": "custom", "field": "body",
             "message": "body is too long (maximum is 65536 characters)"}]}, status_code=422)
    return None


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port in this event loop; yields its URL."""
    sock = _listening_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        sock.close()


@contextlib.asynccontextmanager
async def running_fake(fake: FakeGitHub) -> AsyncIterator[FakeGitHub]:
    async with serve(fake) as api, serve(fake.blob_app) as blob:
        fake.base_url, fake.blob_url = api, blob
        yield fake
