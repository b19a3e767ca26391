"""A fake CircleCI API v2 on loopback, for the real CircleCI client to talk to over HTTP.

It serves what Herald calls, shaped like CircleCI's own answers (the API v2 reference,
https://circleci.com/docs/api/v2/: `Workflow`, `Job`, `Pipeline`, `TestsResponse`,
`ArtifactListResponse`, `rerun`), with CircleCI's manners where they matter to a client:

- `Circle-Token` on every request: none or a wrong one → 401 `{"message": "You must log
  in first."}`, on the artifact host too (a private project's artifacts need it);
- lists are paged: `{items, next_page_token}`, the next page asked with `page-token`; an
  unknown page token or query parameter → 400, as CircleCI refuses them;
- project slugs in paths (`/project/gh/org/repo/123/tests`), each part as sent;
- `POST /workflow/{id}/rerun` takes a JSON object of `enable_ssh`, `from_failed`, `jobs`,
  `sparse_tree` only (`from_failed` with `jobs` is refused); it makes a new workflow of
  the same name in the same pipeline, created later, and answers 202 `{"workflow_id"}`;
  `refuse_reruns` answers 400 with CircleCI's words instead ("Rerun requests are
  disabled for this project"); a running workflow cannot be rerun;
- artifacts are listed with `{path, node_index, url}`, the URL on the artifact host: the
  same server under another name (`localhost` for `127.0.0.1`), so that it is another
  origin, as `output.circle-artifacts.com` is; `redirects` sends a download elsewhere.

Every request is recorded (`calls`, with `host`); the shared `tests.fakes.faults.FakeAPI`
machinery injects faults: `fail(method, pattern, status=, headers=, times=)` and
`lose_answer("^POST .*/rerun$")`.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes.faults import FakeAPI

TOKEN = "CCIPAT_herald_0123456789abcdef0123456789abcdef01234567"
PREFIX = "/api/v2"
RERUN_KEYS = frozenset({"enable_ssh", "from_failed", "jobs", "sparse_tree"})
STARTED = datetime(2026, 11, 25, 8, 58, 11, tzinfo=UTC)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # as sent, still URL-encoded, API prefix included
    query: dict[str, str]
    body: bytes
    headers: dict[str, str]
    host: str
    fault: int | str | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Artifact:
    path: str
    node_index: int
    data: bytes


@dataclass
class FakeJob:
    name: str
    status: str
    number: int | None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    tests: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    type: str = "build"
    #: The job's data expire while being read: pages of its tests and artifacts from this
    #: item on answer 404.
    gone_from: int | None = None


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def stored_test(name: str, result: str = "success", *, classname: str = "ledger.settlement",
              file: str = "tests/test_settlement.py", message: str = "",
              run_time: float = 0.012) -> dict[str, Any]:
    """One item of `GET /project/{slug}/{job}/tests`."""
    return {"message": message, "source": "pytest", "run_time": run_time, "file": file,
            "result": result, "name": name, "classname": classname}


class FakeCircleCI(FakeAPI):
    """The state of a few CircleCI projects and the ASGI app that serves their API."""

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.served = ""  # http://127.0.0.1:<port>, set when served
        self.page_size = 2
        self.workflows: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, list[FakeJob]] = {}
        self.pipelines: dict[str, dict[str, Any]] = {}
        #: (workflow id, body) of each rerun asked for and done.
        self.reruns: list[tuple[str, dict[str, Any]]] = []
        #: CircleCI's words when reruns are refused (disabled, limit reached).
        self.refuse_reruns: str | None = None
        #: Artifact downloads served from elsewhere: artifact path → URL.
        self.redirects: dict[str, str] = {}
        #: What `url` says artifacts are on; None: the artifact host of this fake.
        self.artifact_base: str | None = None
        self._pages: dict[str, int] = {}

    @property
    def url(self) -> str:
        """`HERALD_CIRCLECI_API_URL` for this fake."""
        return f"{self.served}{PREFIX}"

    @property
    def artifact_host(self) -> str:
        """`host:port` of the artifact host (`HERALD_CIRCLECI_ARTIFACT_HOSTS`)."""
        return self.served.removeprefix("http://").replace("127.0.0.1", "localhost")

    # ---- the world ------------------------------------------------------------------------

    def add_pipeline(self, pipeline_id: str, *, number: int, slug: str,
                     vcs: dict[str, Any] | None = None,
                     trigger_parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        pipeline = {
            "id": pipeline_id, "errors": [], "project_slug": slug,
            "updated_at": stamp(STARTED), "number": number,
            "trigger_parameters": trigger_parameters or {}, "state": "created",
            "created_at": stamp(STARTED - timedelta(seconds=2)),
            "trigger": {"received_at": stamp(STARTED - timedelta(seconds=3)),
                        "type": "webhook", "actor": {"login": "ada", "avatar_url": None}},
        }
        if vcs is not None:
            pipeline["vcs"] = vcs
        self.pipelines[pipeline_id] = pipeline
        return pipeline

    def add_workflow(self, workflow_id: str, pipeline_id: str, *, name: str = "build-and-test",
                     status: str = "failed", jobs: list[FakeJob] | None = None,
                     created: datetime = STARTED) -> dict[str, Any]:
        pipeline = self.pipelines[pipeline_id]
        workflow = {
            "pipeline_id": pipeline_id, "id": workflow_id, "name": name,
            "project_slug": pipeline["project_slug"], "status": status,
            "started_by": "8ba7c44a-7b6c-4e70-9cfc-8b0a7e8a7b6c",
            "pipeline_number": pipeline["number"], "created_at": stamp(created),
            "stopped_at": stamp(created + timedelta(minutes=6)),
        }
        self.workflows[workflow_id] = workflow
        self.jobs[workflow_id] = list(jobs or [])
        return workflow

    def fail(self, method: str, pattern: str, *, status: int = 500, times: int = 1,
             headers: dict[str, str] | None = None, hang: bool = False) -> None:
        """Answer the next `times` requests of `method` to a path `pattern` matches whole
        (API prefix left out) with `status`."""
        self.injected.fail(f"^{method} (?:{PREFIX})?(?:{pattern})$", times=times,
                           status=status, hang=hang, headers=dict(headers or {}))

    def api_calls(self, method: str, pattern: str) -> list[Call]:
        """Calls of `method` to the API whose path (prefix left out) `pattern` matches whole."""
        regex = re.compile(f"^{PREFIX}(?:{pattern})$")
        return [c for c in self.calls if c.method == method and regex.match(c.path)]

    # ---- serving --------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        raw = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        path = raw.split("?", 1)[0]
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = dict(request.query_params.items())
        host = headers.get("host", "")
        fault, lost = self.intercept(request, f"{request.method} {path}")
        if fault is not None:
            self.calls.append(Call(request.method, path, query, body, headers, host,
                                   "hang" if fault.hang else fault.status))
            if fault.hang:
                await self.injected.hold(request)
            return JSONResponse({"message": "Internal server error"}
                                if fault.status >= 500 else {"message": "Rate limit exceeded"},
                                status_code=fault.status, headers=fault.headers)
        self.calls.append(Call(request.method, path, query, body, headers, host, lost))
        if headers.get("circle-token") != self.token:
            return _message("You must log in first.", 401)
        if host.startswith("localhost"):
            return self._artifact(request.method, path)
        if not path.startswith(f"{PREFIX}/"):
            return _message("Not found.", 404)
        return self._route(request.method, path.removeprefix(PREFIX), query, body)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Response:
        unknown = set(query) - {"page-token"}
        if unknown:
            return _message(f"Unexpected query parameter: {sorted(unknown)[0]}", 400)
        token = query.get("page-token")
        workflow = re.fullmatch(r"/workflow/([^/]+)(/job|/rerun)?", path)
        if workflow is not None:
            data = self.workflows.get(unquote(workflow.group(1)))
            if data is None:
                return _message("Workflow not found", 404)
            if workflow.group(2) is None and method == "GET":
                return JSONResponse(data)
            if workflow.group(2) == "/job" and method == "GET":
                return self._page(path, [self._job_json(j, data)
                                         for j in self.jobs[data["id"]]], token)
            if workflow.group(2) == "/rerun" and method == "POST":
                return self._rerun(data, body)
            return _message("Method not allowed", 405)
        pipeline = re.fullmatch(r"/pipeline/([^/]+)(/workflow)?", path)
        if pipeline is not None and method == "GET":
            data = self.pipelines.get(unquote(pipeline.group(1)))
            if data is None:
                return _message("Pipeline not found.", 404)
            if pipeline.group(2) is None:
                return JSONResponse(data)
            mine = [w for w in self.workflows.values() if w["pipeline_id"] == data["id"]]
            return self._page(path, sorted(mine, key=lambda w: w["created_at"], reverse=True),
                              token)
        project = re.fullmatch(r"/project/([^/]+/[^/]+/[^/]+)/(\d+)/(tests|artifacts)", path)
        if project is not None and method == "GET":
            slug, number = unquote(project.group(1)), int(project.group(2))
            job = self._job(slug, number)
            if job is None:
                return _message("Job not found", 404)
            gone = job.gone_from
            if gone is not None and token is not None and self._pages.get(token, 0) >= gone:
                return _message("Job not found", 404)
            if project.group(3) == "tests":
                return self._page(path, job.tests, token)
            return self._page(path, [
                {"path": a.path, "node_index": a.node_index,
                 "url": f"{self._artifact_base()}/output/job/{job.id}/artifacts/"
                        f"{a.node_index}/{a.path}"}
                for a in job.artifacts], token)
        return _message("Not found.", 404)

    def _job(self, slug: str, number: int) -> FakeJob | None:
        for workflow_id, jobs in self.jobs.items():
            if self.workflows[workflow_id]["project_slug"] != slug:
                continue
            for job in jobs:
                if job.number == number:
                    return job
        return None

    def _job_json(self, job: FakeJob, workflow: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dependencies": [], "id": job.id, "name": job.name, "status": job.status,
            "type": job.type, "project_slug": workflow["project_slug"],
            "started_at": workflow["created_at"], "stopped_at": workflow["stopped_at"],
        }
        if job.number is not None:
            data["job_number"] = job.number
        return data

    def _page(self, path: str, items: list[dict[str, Any]], token: str | None) -> Response:
        start = 0
        if token is not None:
            if self._pages.get(token) is None:
                return _message("Invalid page-token", 400)
            start = self._pages[token]
        end = start + self.page_size
        following = None
        if end < len(items):
            following = base64.urlsafe_b64encode(f"{path}:{end}".encode()).decode()
            self._pages[following] = end
        return JSONResponse({"items": items[start:end], "next_page_token": following})

    def _rerun(self, workflow: dict[str, Any], body: bytes) -> Response:
        try:
            asked = json.loads(body or b"{}")
        except ValueError:
            return _message("Invalid JSON body.", 400)
        if not isinstance(asked, dict) or set(asked) - RERUN_KEYS:
            return _message("Invalid request body.", 400)
        if "from_failed" in asked and not isinstance(asked["from_failed"], bool):
            return _message("from_failed must be a boolean", 400)
        if asked.get("from_failed") and asked.get("jobs"):
            return _message("from_failed and jobs cannot be used together", 400)
        if self.refuse_reruns is not None:
            return _message(self.refuse_reruns, 400)
        if workflow["status"] in ("running", "on_hold", "failing"):
            return _message("Cannot rerun a workflow that is still running", 400)
        self.reruns.append((workflow["id"], asked))
        later = max(datetime.fromisoformat(w["created_at"]) for w in self.workflows.values()
                    if w["pipeline_id"] == workflow["pipeline_id"]) + timedelta(minutes=10)
        new = str(uuid.uuid4())
        self.add_workflow(new, workflow["pipeline_id"], name=workflow["name"],
                          status="running", created=later)
        return JSONResponse({"workflow_id": new}, status_code=202)

    def _artifact_base(self) -> str:
        return self.artifact_base or f"http://{self.artifact_host}"

    def _artifact(self, method: str, path: str) -> Response:
        match = re.fullmatch(r"/output/job/([^/]+)/artifacts/(\d+)/(.+)", path)
        if match is None or method != "GET":
            return _message("Not found.", 404)
        job_id, node, name = match.group(1), int(match.group(2)), unquote(match.group(3))
        elsewhere = self.redirects.get(name)
        if elsewhere is not None:
            return Response(status_code=302, headers={"Location": elsewhere})
        for jobs in self.jobs.values():
            for job in jobs:
                if job.id != job_id:
                    continue
                for artifact in job.artifacts:
                    if (artifact.node_index, artifact.path) == (node, name):
                        return Response(artifact.data, media_type="application/octet-stream")
        return _message("Not found.", 404)


def _message(text: str, status: int) -> Response:
    return JSONResponse({"message": text}, status_code=status)
