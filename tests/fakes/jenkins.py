"""A fake Jenkins controller on loopback, for the real Jenkins client to talk to over HTTP.

It serves what Herald calls, shaped like Jenkins' own answers (the remote access API at
https://www.jenkins.io/doc/book/using/remote-access-api/, the JUnit plugin's
`testReport/api/json`, the git plugin's `BuildData` action), with Jenkins' manners where
they matter to a client:

- HTTP Basic `user:API token` on every request: none → 403 (anonymous has no Overall/Read),
  a wrong token → 401 "Invalid password/token";
- `tree=` is applied as Jenkins applies it: only the fields asked for come back, nested
  `a[b,c]` and ranges `{0,10}` included, so a client that forgets a field does not see it;
- a context path (`context = "/jenkins"`, as `--prefix` sets): everything else is 404;
- nested folders and multibranch jobs: `/job/a/job/b/job/PR-12/17/api/json`, each name
  URL-encoded in the path (the raw path is read, so `feature%252Fx` stays `feature%2Fx`);
- triggering: `POST .../build` (a job without parameters) and `.../buildWithParameters`
  (form-encoded values; a parameterised job refuses `build` without them), answered 201
  with `Location: {root}/queue/item/{id}/`; a GET there is 405. Each is recorded in
  `rebuilds` and puts the job in the queue (`inQueue`);
- CSRF crumbs: API-token requests need none (Jenkins 2.96+); `crumbs_for_tokens` models an
  older controller that refuses a POST without `Jenkins-Crumb` (403 "No valid crumb was
  included in the request"), served at `/crumbIssuer/api/json`;
- build descriptions: `POST .../{n}/submitDescription` (form `description`) answers 302 to
  the build's page, or 403 without Run/Update (`may_describe`).

Every request is recorded (`calls`); the shared `tests.fakes.faults.FakeAPI` machinery
injects faults: `fail(method, pattern, status=, headers=, times=)` answers the next N
matching requests with that status (a 429 with `Retry-After`, a 5xx) without doing them,
`hang=True` holds them until the client gives up first; `lose_answer("^POST .*/build$")`
does the next N and then loses their answers, as when Jenkins acted and the network
dropped the reply.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes.faults import FakeAPI

USER = "herald-bot"
TOKEN = "11f2c9f9ac5ffcb954158447874613629d"
CRUMB_FIELD = "Jenkins-Crumb"


@dataclass
class Job:
    full_name: str
    #: Parameter definitions (name → default); a job without any is built with `build`.
    parameters: dict[str, str] = field(default_factory=dict)
    builds: dict[int, dict[str, Any]] = field(default_factory=dict)
    in_queue: bool = False

    @property
    def next_build_number(self) -> int:
        return max(self.builds, default=0) + 1


# ---- tree= --------------------------------------------------------------------------------


def parse_tree(spec: str) -> dict[str, Any]:
    """`a,b[c,d]{0,2}` → {"a": None, "b": ({"c": None, "d": None}, (0, 2))}."""
    fields, rest = _fields(spec, 0)
    if rest != len(spec):
        raise ValueError(f"bad tree at {rest}: {spec!r}")
    return fields


def _fields(spec: str, at: int) -> tuple[dict[str, Any], int]:
    fields: dict[str, Any] = {}
    while at < len(spec):
        match = re.compile(r"[A-Za-z0-9_$]+").match(spec, at)
        if match is None:
            raise ValueError(f"bad tree at {at}: {spec!r}")
        name, at = match.group(), match.end()
        children: dict[str, Any] | None = None
        window: tuple[int, int | None] | None = None
        if at < len(spec) and spec[at] == "[":
            children, at = _fields(spec, at + 1)
            if at >= len(spec) or spec[at] != "]":
                raise ValueError(f"unclosed [ in tree: {spec!r}")
            at += 1
        if at < len(spec) and spec[at] == "{":
            end = spec.index("}", at)
            low, _, high = spec[at + 1 : end].partition(",")
            window = (int(low or 0), int(high) if high else None)
            at = end + 1
        fields[name] = (children, window)
        if at < len(spec) and spec[at] == ",":
            at += 1
        elif at < len(spec) and spec[at] == "]":
            return fields, at
    return fields, at


def apply_tree(value: Any, tree: dict[str, Any] | None) -> Any:
    if tree is None:
        return value
    if isinstance(value, list):
        return [apply_tree(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    # Jenkins always keeps `_class`, as it does.
    kept: dict[str, Any] = {"_class": value["_class"]} if "_class" in value else {}
    for name, (children, window) in tree.items():
        if name not in value:
            continue
        item = value[name]
        if window is not None and isinstance(item, list):
            item = item[window[0] : window[1]]
        kept[name] = apply_tree(item, children) if children is not None else (
            item if not isinstance(item, dict | list) else _shallow(item)
        )
    return kept


def _shallow(item: Any) -> Any:
    """A nested object asked for without a sub-tree: Jenkins gives its `_class` only."""
    if isinstance(item, list):
        return [_shallow(i) for i in item]
    if isinstance(item, dict):
        return {"_class": item["_class"]} if "_class" in item else {}
    return item


# ---- payload builders ---------------------------------------------------------------------


def case(name: str, status: str = "PASSED", *, classname: str = "com.acme.StockLedgerTest",
         details: str | None = None) -> dict[str, Any]:
    failed = status in ("FAILED", "REGRESSION")
    return {
        "testActions": [], "age": 1 if failed else 0, "className": classname,
        "duration": 0.012, "errorDetails": details if failed else None,
        "errorStackTrace": f"java.lang.AssertionError: {details}\n\tat {classname}.{name}"
        if failed else None,
        "failedSince": 17 if failed else 0, "name": name, "skipped": status == "SKIPPED",
        "skippedMessage": "disabled" if status == "SKIPPED" else None, "status": status,
        "stderr": None, "stdout": "ledger opened\n" if failed else None,
    }


def suite(name: str, cases: list[dict[str, Any]], *, stages: list[str] | None = None
          ) -> dict[str, Any]:
    return {"cases": cases, "duration": 0.4, "enclosingBlockNames": stages or [],
            "enclosingBlocks": [str(i) for i, _ in enumerate(stages or [])], "id": None,
            "name": name, "nodeId": "12", "stderr": None, "stdout": None,
            "timestamp": "2026-12-03T12:00:00"}


def junit_report(suites: list[dict[str, Any]]) -> dict[str, Any]:
    cases = [c for s in suites for c in s["cases"]]
    return {
        "_class": "hudson.tasks.junit.TestResult", "testActions": [], "duration": 1.2,
        "empty": not cases,
        "failCount": sum(c["status"] in ("FAILED", "REGRESSION") for c in cases),
        "passCount": sum(c["status"] in ("PASSED", "FIXED") for c in cases),
        "skipCount": sum(c["status"] == "SKIPPED" for c in cases),
        "suites": suites,
    }


class FakeJenkins(FakeAPI):
    """The state of a small Jenkins controller and the ASGI app that serves it."""

    def __init__(self, user: str = USER, token: str = TOKEN) -> None:
        super().__init__()
        self.user, self.token = user, token
        self.url = ""  # set when served
        #: What Jenkins believes its root URL is (Manage Jenkins » System): the `url` of
        #: builds and jobs. None: the address it is served at.
        self.root_url: str | None = None
        #: The context path Jenkins is served under (`--prefix=/jenkins`), or "".
        self.context = ""
        self.jobs: dict[str, Job] = {}
        self.reports: dict[tuple[str, int], dict[str, Any]] = {}
        self.files: dict[tuple[str, int, str], bytes] = {}
        #: Archived files served from elsewhere (job, build, path) → URL, as artifact
        #: storage plugins (S3, Azure) redirect downloads.
        self.redirects: dict[tuple[str, int, str], str] = {}
        self.rebuilds: list[tuple[str, dict[str, str]]] = []
        self.crumbs_for_tokens = False
        #: Whether the token's user has Run/Update (may set build descriptions).
        self.may_describe = True
        self.descriptions: list[tuple[str, int, str]] = []
        self.crumb = secrets.token_hex(16)
        self._queue_ids = itertools.count(88300)

    # ---- the world ------------------------------------------------------------------------

    def job(self, full_name: str, parameters: dict[str, str] | None = None) -> Job:
        job = self.jobs.get(full_name)
        if job is None:
            job = self.jobs[full_name] = Job(full_name, dict(parameters or {}))
        return job

    def add_build(
        self,
        job: str,
        number: int,
        *,
        result: str | None = "UNSTABLE",
        checkouts: Sequence[tuple[str, str]] = (),
        parameters: dict[str, Any] | None = None,
        report: dict[str, Any] | None = None,
        artifacts: dict[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """A finished build (`result` None: still running) with its git checkouts
        (remote, commit), parameters, JUnit report and archived files."""
        actions: list[dict[str, Any]] = [
            {"_class": "hudson.model.CauseAction",
             "causes": [{"_class": "jenkins.branch.BranchEventCause"}]},
            {},  # Jenkins lists actions without an exported class as empty objects
        ]
        if parameters:
            actions.append({"_class": "hudson.model.ParametersAction", "parameters": [
                _parameter(name, value) for name, value in parameters.items()]})
        for remote, sha in checkouts:
            actions.append({
                "_class": "hudson.plugins.git.util.BuildData",
                "buildsByBranchName": {"PR-64": {"buildNumber": number}},
                "lastBuiltRevision": {"SHA1": sha, "branch": [{"SHA1": sha, "name": "PR-64"}]},
                "remoteUrls": [remote], "scmName": "",
            })
        if report is not None:
            self.reports[(job, number)] = report
            actions.append({"_class": "hudson.tasks.junit.TestResultAction",
                            "failCount": report.get("failCount", 0),
                            "skipCount": report.get("skipCount", 0),
                            "totalCount": len([c for s in report.get("suites", [])
                                               for c in s["cases"]]),
                            "urlName": "testReport"})
        for path, data in (artifacts or {}).items():
            self.files[(job, number, path)] = data
        build = {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
            "actions": actions,
            "artifacts": [{"displayPath": path.rsplit("/", 1)[-1],
                           "fileName": path.rsplit("/", 1)[-1], "relativePath": path}
                          for path in artifacts or {}],
            "building": result is None, "description": None, "displayName": f"#{number}",
            "duration": 284113, "fullDisplayName": f"{job.replace('/', ' » ')} #{number}",
            "id": str(number), "number": number, "queueId": 88213, "result": result,
            "timestamp": 1795683481000, "inProgress": result is None,
        }
        self.job(job).builds[number] = build
        return build

    def fail(self, method: str, pattern: str, *, status: int = 500, times: int = 1,
             headers: dict[str, str] | None = None, hang: bool = False) -> None:
        """Answer the next `times` requests of `method` to a path `pattern` matches whole
        with `status` (after holding them until the client gives up, with `hang`)."""
        self.injected.fail(f"^{method} (?:{pattern})$", times=times, status=status,
                           hang=hang, headers=dict(headers or {}))

    def _root(self) -> str:
        return (self.root_url or self.url).rstrip("/") + self.context

    # ---- serving --------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        call, fault = await self.received(request)
        path, query, body, headers = call.path, call.query, call.body, call.headers
        if fault is not None:
            return Response(f"<html><body>Error {fault.status}</body></html>",
                            status_code=fault.status, headers=fault.headers,
                            media_type="text/html")
        refused = self._authenticate(headers)
        if refused is not None:
            return refused
        if not path.startswith(f"{self.context}/"):
            return _not_found()
        try:
            return self._route(request.method, path.removeprefix(self.context), query, body,
                               headers)
        except ValueError as exc:
            return Response(f"<html><body>{exc}</body></html>", status_code=400,
                            media_type="text/html")

    def _authenticate(self, headers: dict[str, str]) -> Response | None:
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return Response("<html><body>Authentication required</body></html>",
                            status_code=403, media_type="text/html",
                            headers={"X-You-Are-In-Group-Disabled": "JENKINS-39402"})
        user, _, token = base64.b64decode(encoded).decode().partition(":")
        if (user, token) != (self.user, self.token):
            return Response("<html><body>Invalid password/token for user: "
                            f"{user}</body></html>", status_code=401, media_type="text/html",
                            headers={"WWW-Authenticate": 'Basic realm="Jenkins"'})
        return None

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes,
               headers: dict[str, str]) -> Response:
        if path == "/crumbIssuer/api/json" and method == "GET":
            return self._json({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                               "crumb": self.crumb, "crumbRequestField": CRUMB_FIELD}, query)
        match = re.fullmatch(r"((?:/job/[^/]+)+)(?:/(.*))?", path)
        if match is None:
            return _not_found()
        full_name = "/".join(unquote(part) for part in match.group(1).split("/job/")[1:])
        job = self.jobs.get(full_name)
        if job is None:
            return _not_found()
        rest = match.group(2) or ""
        if rest in ("build", "buildWithParameters"):
            if method != "POST":
                return Response("<html><body>Method Not Allowed</body></html>", 405,
                                media_type="text/html")
            return self._trigger(job, rest, body, headers)
        if rest == "api/json" and method == "GET":
            return self._json(self._job_json(job), query)
        described = re.fullmatch(r"(\d+)/submitDescription", rest)
        if described is not None and method == "POST":
            return self._describe(job, int(described.group(1)), body, headers)
        build_match = re.fullmatch(r"(\d+)/(api/json|testReport/api/json|artifact/(.+))", rest)
        if build_match is None or method != "GET":
            return _not_found()
        build = job.builds.get(int(build_match.group(1)))
        if build is None:
            return _not_found()
        number = build["number"]
        what = build_match.group(2)
        if what == "api/json":
            page = f"{self._root()}{_job_path(full_name)}/{number}/"
            return self._json({**build, "url": page}, query)
        if what == "testReport/api/json":
            report = self.reports.get((full_name, number))
            return _not_found() if report is None else self._json(report, query)
        path = unquote(build_match.group(3))
        elsewhere = self.redirects.get((full_name, number, path))
        if elsewhere is not None:
            # As an artifact storage plugin does: the file is served from another host.
            return Response(status_code=302, headers={"Location": elsewhere})
        data = self.files.get((full_name, number, path))
        if data is None:
            return _not_found()
        return Response(data, media_type="application/octet-stream")

    def _job_json(self, job: Job) -> dict[str, Any]:
        last = max(job.builds, default=None)
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
            "name": job.full_name.rsplit("/", 1)[-1], "fullName": job.full_name,
            "url": f"{self._root()}{_job_path(job.full_name)}/",
            "buildable": True, "inQueue": job.in_queue,
            "nextBuildNumber": job.next_build_number,
            "lastBuild": None if last is None else {
                "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": last,
                "url": f"{self._root()}{_job_path(job.full_name)}/{last}/"},
            "builds": [{"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                        "number": n} for n in sorted(job.builds, reverse=True)],
        }

    def _trigger(self, job: Job, endpoint: str, body: bytes, headers: dict[str, str]
                 ) -> Response:
        if self.crumbs_for_tokens and headers.get(CRUMB_FIELD.lower()) != self.crumb:
            return Response("<html><body>HTTP ERROR 403 No valid crumb was included in the "
                            "request</body></html>", 403, media_type="text/html")
        if endpoint == "build" and job.parameters:
            return Response("<html><body>Nothing is submitted</body></html>", 400,
                            media_type="text/html")
        if endpoint == "buildWithParameters" and not job.parameters:
            return Response("<html><body>java.lang.IllegalStateException: This build is not "
                            "parameterized!</body></html>", 500, media_type="text/html")
        given = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        # Jenkins ignores values of parameters the job does not define, and takes the
        # defaults of those not sent.
        values = {name: given.get(name, default) for name, default in job.parameters.items()}
        self.rebuilds.append((job.full_name, values))
        job.in_queue = True
        return Response(status_code=201,
                        headers={"Location": f"{self._root()}/queue/item/{next(self._queue_ids)}/"})

    def _describe(self, job: Job, number: int, body: bytes, headers: dict[str, str]
                  ) -> Response:
        if self.crumbs_for_tokens and headers.get(CRUMB_FIELD.lower()) != self.crumb:
            return Response("<html><body>HTTP ERROR 403 No valid crumb was included in the "
                            "request</body></html>", 403, media_type="text/html")
        if not self.may_describe:
            return Response(f"<html><body>{self.user} is missing the Run/Update permission"
                            "</body></html>", 403, media_type="text/html")
        build = job.builds.get(number)
        if build is None:
            return _not_found()
        form = parse_qs(body.decode(), keep_blank_values=True)
        if "description" not in form:
            return Response("<html><body>description is missing</body></html>", 400,
                            media_type="text/html")
        build["description"] = form["description"][-1]
        self.descriptions.append((job.full_name, number, build["description"]))
        # As Jenkins does: back to the build's page.
        return Response(status_code=302, headers={
            "Location": f"{self._root()}{_job_path(job.full_name)}/{number}/"})

    @staticmethod
    def _json(data: dict[str, Any], query: dict[str, str]) -> Response:
        tree = query.get("tree")
        shaped = apply_tree(data, parse_tree(tree)) if tree else data
        return JSONResponse(shaped)


def _parameter(name: str, value: Any) -> dict[str, Any]:
    if value is None:  # a password or file parameter: Jenkins exports no value
        return {"_class": "hudson.model.PasswordParameterValue", "name": name}
    kind = "BooleanParameterValue" if isinstance(value, bool) else "StringParameterValue"
    return {"_class": f"hudson.model.{kind}", "name": name, "value": value}


def _job_path(full_name: str) -> str:
    return "".join(f"/job/{quote(name, safe='')}" for name in full_name.split("/"))


def _not_found() -> Response:
    return Response("<html><body>HTTP ERROR 404 Not Found</body></html>", 404,
                    media_type="text/html")


class CaptureServer:
    """Any other host: records every request it gets, so a test can assert it got none."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests.append((scope["method"], scope["path"],
                              {k.decode(): v.decode() for k, v in scope["headers"]}))
        await JSONResponse({"captured": True})(scope, receive, send)
