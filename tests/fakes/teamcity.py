"""A fake TeamCity server on loopback, for the real TeamCity client to talk to over HTTP.

It serves what Herald calls, shaped like TeamCity's REST API (`/app/rest`, JSON, the
models of the server's `swagger.json`: `build`, `testOccurrences`, `problemOccurrences`,
`vcs-root-instance`, `files`, `buildQueue`), with TeamCity's manners where they matter to
a client:

- `Authorization: Bearer <token>` on every request: none or a wrong one → 401
  "Authentication required" (TeamCity's text/plain error);
- `fields=` is applied as TeamCity applies it: only the fields asked for come back,
  nested `a(b,c(d))` included, so a client that forgets a field does not see it;
- locators are parsed and checked: an unknown dimension, or an id where a locator
  expects a build id, is refused with 400, as TeamCity refuses them; `count`/`start`
  page `testOccurrences` and `problemOccurrences`, with `nextHref` while more remain;
- artifacts: `artifacts/children/?locator=recursive:true` lists files (directories
  with `children`), `artifacts/files/<path>` serves one, or redirects it elsewhere
  (`redirects`), as an external artifact storage does;
- `PUT builds/id:N/comment` (text/plain) sets the build's comment, or 403 without the
  permission (`may_comment`);
- `POST /app/rest/buildQueue` takes `{buildType: {id}, branchName, revisions: {revision:
  [{version, vcsBranchName, vcs-root-instance: {id | vcs-root-id}}]}, comment: {text}}`,
  checks the build configuration exists and each revision names a VCS root of it, records
  it in `queued` and answers the queued build; `GET /app/rest/buildQueue?locator=
  buildType:(id:X)` lists what is queued.

Every request is recorded (`calls`); the shared `tests.fakes.faults.FakeAPI` machinery
injects faults (`fail`) and lost answers (`lose_answer`).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from tests.fakes.faults import FakeAPI

TOKEN = "eyJ0eXAiOiAiVENWMiJ9.herald-teamcity-token"
REST = "/app/rest"


class Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


# ---- fields= and locators ---------------------------------------------------------------


def parse_fields(spec: str) -> dict[str, Any]:
    """`a,b(c,d(e))` → {"a": None, "b": {"c": None, "d": {"e": None}}}."""
    fields, at = _fields(spec, 0)
    if at != len(spec):
        raise Refused(400, f"bad fields at {at}: {spec!r}")
    return fields


def _fields(spec: str, at: int) -> tuple[dict[str, Any], int]:
    fields: dict[str, Any] = {}
    name = re.compile(r"[A-Za-z0-9_$-]+")
    while at < len(spec):
        match = name.match(spec, at)
        if match is None:
            raise Refused(400, f"bad fields at {at}: {spec!r}")
        at = match.end()
        children = None
        if at < len(spec) and spec[at] == "(":
            children, at = _fields(spec, at + 1)
            if at >= len(spec) or spec[at] != ")":
                raise Refused(400, f"unclosed ( in fields: {spec!r}")
            at += 1
        fields[match.group()] = children
        if at < len(spec) and spec[at] == ",":
            at += 1
        elif at < len(spec) and spec[at] == ")":
            return fields, at
    return fields, at


def apply_fields(value: Any, fields: dict[str, Any] | None) -> Any:
    if fields is None:
        return value
    if isinstance(value, list):
        return [apply_fields(item, fields) for item in value]
    if not isinstance(value, dict):
        return value
    return {k: apply_fields(value[k], sub) for k, sub in fields.items() if k in value}


def parse_locator(text: str) -> dict[str, str]:
    """`build:(id:5),count:10` → {"build": "id:5", "count": "10"} (one level)."""
    found: dict[str, str] = {}
    at = 0
    while at < len(text):
        colon = text.find(":", at)
        if colon < 0:
            raise Refused(400, f"Invalid locator {text!r}: a dimension without a value")
        name = text[at:colon]
        at = colon + 1
        if text.startswith("(", at):
            depth, end = 0, at
            while end < len(text):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
                end += 1
            if depth:
                raise Refused(400, f"Invalid locator {text!r}: unclosed (")
            found[name] = text[at + 1:end]
            at = end + 1
        else:
            comma = text.find(",", at)
            end = len(text) if comma < 0 else comma
            found[name] = text[at:end]
            at = end
        if text.startswith(",", at):
            at += 1
    return found


def _only(locator: dict[str, str], allowed: set[str]) -> None:
    unknown = set(locator) - allowed
    if unknown:
        raise Refused(400, f"Locator dimension(s) {sorted(unknown)} are unknown here")


def _number(text: str, what: str) -> int:
    if not text.isdigit():
        raise Refused(400, f"Invalid {what}: {text!r}")
    return int(text)


# ---- payload builders ---------------------------------------------------------------------


def occurrence(name: str, status: str = "SUCCESS", *, details: str | None = None,
               ignored: bool = False, muted: bool = False, investigated: bool = False,
               duration: int = 12, invocations: list[dict[str, Any]] | None = None,
               number: int = 0) -> dict[str, Any]:
    """A test occurrence as TeamCity serves it (`name` is TeamCity's full test name)."""
    found: dict[str, Any] = {
        "id": f"build:(id:0),id:{2000 + number}", "name": name, "status": status,
        "duration": duration, "runOrder": str(number), "href": "/app/rest/testOccurrences/x",
        "test": {"id": str(9000 + number), "name": name},
    }
    if ignored:
        found["ignored"] = True
        found["ignoreDetails"] = details or "@Disabled"
    elif details is not None:
        found["details"] = details
    if muted:
        found["muted"] = True
    if investigated:
        found["currentlyInvestigated"] = True
    if status == "FAILURE":
        found["newFailure"] = True
    if invocations is not None:
        found["invocations"] = {"count": len(invocations), "testOccurrence": invocations}
    return found


def problem(kind: str, identity: str, details: str) -> dict[str, Any]:
    return {"id": f"problem:(id:{abs(hash(identity)) % 9999})", "type": kind,
            "identity": identity, "details": details, "href": "/app/rest/problemOccurrences/x"}


@dataclass
class Server:
    """What the fake TeamCity holds."""

    builds: dict[int, dict[str, Any]] = field(default_factory=dict)
    tests: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    problems: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: VCS root instance id → its properties (`url` among them).
    roots: dict[str, dict[str, str]] = field(default_factory=dict)
    files: dict[tuple[int, str], bytes] = field(default_factory=dict)
    redirects: dict[tuple[int, str], str] = field(default_factory=dict)
    properties: dict[tuple[int, str], str] = field(default_factory=dict)


class FakeTeamCity(FakeAPI):
    """The state of a small TeamCity server and the ASGI app that serves it."""

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.url = ""  # set when served
        self.server = Server()
        self.queue: list[dict[str, Any]] = []
        #: Every build queued by a POST (the request bodies), in order.
        self.queued: list[dict[str, Any]] = []
        self.may_comment = True
        self.comments: list[tuple[int, str]] = []
        #: A `nextHref` to serve instead of TeamCity's own (a hostile or broken proxy).
        self.next_href: str | None = None
        self._queue_ids = itertools.count(204500)

    # ---- the world ------------------------------------------------------------------------

    def add_root(self, instance: str, root: str, url: str) -> None:
        self.server.roots[instance] = {"vcs-root-id": root, "url": url, "branch": "main"}

    def add_build(
        self,
        build_id: int,
        build_type: str,
        *,
        status: str = "FAILURE",
        name: str = "Build",
        project: str = "Storefront",
        number: str = "512",
        branch: str | None = "pull/118",
        revisions: list[tuple[str, str]] = (),  # type: ignore[assignment]
        tests: list[dict[str, Any]] | None = None,
        problems: list[dict[str, Any]] | None = None,
        artifacts: dict[str, bytes] | None = None,
        status_text: str = "Tests failed: 2, passed: 3",
        canceled: bool = False,
    ) -> dict[str, Any]:
        """A finished build with its revisions (VCS root instance id, commit), tests,
        problems and artifacts."""
        build: dict[str, Any] = {
            "id": build_id, "buildTypeId": build_type, "number": number, "status": status,
            "state": "finished", "statusText": status_text,
            "href": f"{REST}/builds/id:{build_id}",
            "webUrl": f"{self.url}/buildConfiguration/{build_type}/{build_id}",
            "buildType": {"id": build_type, "name": name, "projectName": project,
                          "projectId": project},
            "revisions": {"count": len(revisions), "revision": [
                {"version": sha, "vcsBranchName": f"refs/{branch or 'heads/main'}",
                 "vcs-root-instance": {"id": instance,
                                       "vcs-root-id": self.server.roots[instance]["vcs-root-id"],
                                       "name": self.server.roots[instance]["url"],
                                       "href": f"{REST}/vcs-root-instances/id:{instance}"}}
                for instance, sha in revisions]},
        }
        if tests:  # TeamCity leaves the summary out of a build without tests
            build["testOccurrences"] = {"count": len(tests), "passed": sum(
                t["status"] == "SUCCESS" for t in tests), "href": f"{REST}/testOccurrences"}
        if branch is not None:
            build["branchName"] = branch
        build["defaultBranch"] = branch in (None, "main")
        if canceled:
            build["canceledInfo"] = {"text": "Canceled by lena"}
        self.server.builds[build_id] = build
        self.server.tests[build_id] = list(tests or [])
        self.server.problems[build_id] = list(problems or [])
        for path, data in (artifacts or {}).items():
            self.server.files[(build_id, path)] = data
        return build

    def fail(self, method: str, pattern: str, *, status: int = 500, times: int = 1,
             headers: dict[str, str] | None = None, hang: bool = False) -> None:
        """Answer the next `times` requests of `method` to a path `pattern` matches whole
        with `status` (after holding them until the client gives up, with `hang`)."""
        self.injected.fail(f"^{method} (?:{pattern})$", times=times, status=status,
                           hang=hang, headers=dict(headers or {}))

    # ---- serving --------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        call, fault = await self.received(request)
        path, query, body, headers = call.path, call.query, call.body, call.headers
        if fault is not None:
            return PlainTextResponse(f"Error {fault.status}", status_code=fault.status,
                                     headers=fault.headers)
        if headers.get("authorization") != f"Bearer {self.token}":
            return PlainTextResponse("Authentication required\nTo login manually go to "
                                     '"/login.html" page', status_code=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="TeamCity"'})
        try:
            if not path.startswith(f"{REST}/"):
                raise Refused(404, "Not found")
            answer = self._route(request.method, path.removeprefix(REST), query, body,
                                 headers)
        except Refused as exc:
            return PlainTextResponse(
                f"Responding with error, status code: {exc.status}.\nDetails: {exc}",
                status_code=exc.status)
        if isinstance(answer, Response):
            return answer
        fields = query.get("fields")
        return JSONResponse(apply_fields(answer, parse_fields(fields)) if fields else answer)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes,
               headers: dict[str, str]) -> Any:
        routes: list[tuple[str, str, Any]] = [
            ("GET", r"/builds/id:(\d+)", self._get_build),
            ("GET", r"/builds", self._list_builds),
            ("GET", r"/testOccurrences", self._tests),
            ("GET", r"/problemOccurrences", self._problems),
            ("GET", r"/vcs-root-instances/id:([A-Za-z0-9_]+)", self._root),
            ("GET", r"/builds/id:(\d+)/resulting-properties/([A-Za-z0-9_.]+)", self._property),
            ("GET", r"/builds/id:(\d+)/artifacts/children/?", self._children),
            ("GET", r"/builds/id:(\d+)/artifacts/files/(.+)", self._file),
            ("PUT", r"/builds/id:(\d+)/comment", self._comment),
            ("POST", r"/buildQueue", self._enqueue),
            ("GET", r"/buildQueue", self._list_queue),
        ]
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                return handler(*match.groups(), query=query, body=body, headers=headers)
        if any(re.fullmatch(p, path) for _, p, _ in routes):
            raise Refused(405, f"{method} is not allowed here")
        raise Refused(404, f"no such resource: {path}")

    def _build(self, text: str | int) -> dict[str, Any]:
        build = self.server.builds.get(int(text))
        if build is None:
            raise Refused(404, f"NotFoundException: No build found by locator 'id:{text}'")
        return build

    def _get_build(self, build_id: str, **_: Any) -> Any:
        return self._build(build_id)

    def _paged(self, items: list[dict[str, Any]], locator: dict[str, str], key: str,
               path: str, query: dict[str, str]) -> dict[str, Any]:
        count = _number(locator.get("count", "100"), "count")
        start = _number(locator.get("start", "0"), "start")
        page = items[start:start + count]
        answer: dict[str, Any] = {"count": len(page), key: page,
                                  "href": f"{REST}{path}?locator=x"}
        if start + count < len(items) and self.next_href is not None:
            answer["nextHref"] = self.next_href
        elif start + count < len(items):
            rest = {k: v for k, v in locator.items() if k not in ("count", "start")}
            build = rest.pop("build")
            following = f"build:({build}),count:{count},start:{start + count}"
            extra = "".join(f",{k}:{v}" for k, v in rest.items())
            answer["nextHref"] = f"{REST}{path}?locator={quote(following + extra, safe=':(),')}" + (
                f"&fields={quote(query['fields'], safe='(),')}" if "fields" in query else "")
        return answer

    def _build_of(self, locator: dict[str, str]) -> int:
        inner = parse_locator(locator.get("build", ""))
        if set(inner) != {"id"}:
            raise Refused(400, "expected build:(id:<build id>)")
        build_id = _number(inner["id"], "build id")
        self._build(build_id)
        return build_id

    def _tests(self, *, query: dict[str, str], **_: Any) -> Any:
        locator = parse_locator(query.get("locator", ""))
        _only(locator, {"build", "count", "start"})
        build_id = self._build_of(locator)
        return self._paged(self.server.tests[build_id], locator, "testOccurrence",
                           "/testOccurrences", query)

    def _problems(self, *, query: dict[str, str], **_: Any) -> Any:
        locator = parse_locator(query.get("locator", ""))
        _only(locator, {"build", "count", "start"})
        build_id = self._build_of(locator)
        return self._paged(self.server.problems[build_id], locator, "problemOccurrence",
                           "/problemOccurrences", query)

    def _root(self, instance: str, **_: Any) -> Any:
        root = self.server.roots.get(instance)
        if root is None:
            raise Refused(404, f"No VCS root instance found by locator 'id:{instance}'")
        return {"id": instance, "vcs-root-id": root["vcs-root-id"], "name": root["url"],
                "properties": {"count": len(root), "property": [
                    {"name": k, "value": v} for k, v in root.items() if k != "vcs-root-id"]}}

    def _property(self, build_id: str, name: str, **_: Any) -> Any:
        self._build(build_id)
        value = self.server.properties.get((int(build_id), name))
        if value is None:
            raise Refused(404, f"No property with name '{name}' found")
        return PlainTextResponse(value)

    def _children(self, build_id: str, *, query: dict[str, str], **_: Any) -> Any:
        self._build(build_id)
        locator = parse_locator(query.get("locator", ""))
        _only(locator, {"recursive"})
        entries: list[dict[str, Any]] = []
        directories: set[str] = set()
        for (owner, path), data in sorted(self.server.files.items()):
            if owner != int(build_id):
                continue
            parts = path.split("/")
            for depth in range(1, len(parts)):
                directories.add("/".join(parts[:depth]))
            entries.append({"name": parts[-1], "fullName": path, "size": len(data),
                            "href": f"{REST}/builds/id:{build_id}/artifacts/metadata/{path}",
                            "content": {"href": f"{REST}/builds/id:{build_id}/artifacts/"
                                                f"content/{path}"}})
        if locator.get("recursive") != "true":
            entries = [e for e in entries if "/" not in e["fullName"]]
        for directory in sorted(directories):
            entries.insert(0, {"name": directory.rsplit("/", 1)[-1], "fullName": directory,
                               "children": {"href": f"{REST}/builds/id:{build_id}/artifacts/"
                                                    f"children/{directory}"}})
        return {"count": len(entries), "file": entries}

    def _file(self, build_id: str, path: str, **_: Any) -> Any:
        key = (int(build_id), unquote(path))
        if key in self.server.redirects:
            return RedirectResponse(self.server.redirects[key], status_code=302)
        data = self.server.files.get(key)
        if data is None:
            raise Refused(404, f"No artifact found: {key[1]}")
        return Response(data, media_type="application/octet-stream")

    def _comment(self, build_id: str, *, body: bytes, headers: dict[str, str], **_: Any) -> Any:
        build = self._build(build_id)
        if not self.may_comment:
            raise Refused(403, "You do not have enough permissions to edit the build comment")
        if not headers.get("content-type", "").startswith("text/plain"):
            raise Refused(415, "Unsupported Media Type: the comment is text/plain")
        text = body.decode()
        build["comment"] = {"text": text, "user": {"username": "herald"}}
        self.comments.append((int(build_id), text))
        return Response(status_code=204)

    def _enqueue(self, *, body: bytes, headers: dict[str, str], **_: Any) -> Any:
        if not headers.get("content-type", "").startswith("application/json"):
            raise Refused(415, "Unsupported Media Type")
        try:
            asked = json.loads(body)
        except ValueError:
            raise Refused(400, "Error parsing the build: not JSON") from None
        build_type = (asked.get("buildType") or {}).get("id")
        known = {b["buildTypeId"]: b for b in self.server.builds.values()}
        if build_type not in known:
            raise Refused(404, f"No build type found by locator 'id:{build_type}'")
        text = (asked.get("comment") or {}).get("text")
        if text is not None and not isinstance(text, str):
            raise Refused(400, "comment.text must be a string")
        if "branchName" in asked and not isinstance(asked["branchName"], str):
            raise Refused(400, "branchName must be a string")
        roots = {r["vcs-root-instance"]["id"]: r["vcs-root-instance"]["vcs-root-id"]
                 for b in self.server.builds.values() if b["buildTypeId"] == build_type
                 for r in b["revisions"]["revision"]}
        pinned = asked.get("revisions") or {}
        if not isinstance(pinned.get("failOnMissingRevisions", False), bool):
            raise Refused(400, "failOnMissingRevisions must be a boolean")
        for revision in pinned.get("revision", []):
            instance = revision.get("vcs-root-instance") or {}
            if not isinstance(revision.get("version"), str) or not (
                instance.get("id") in roots or instance.get("vcs-root-id") in roots.values()
            ):
                raise Refused(400, "each revision needs a version and a VCS root instance "
                                   f"of {build_type}")
        queued_id = next(self._queue_ids)
        entry = {"id": queued_id, "buildTypeId": build_type, "state": "queued",
                 "branchName": asked.get("branchName"), "href": f"{REST}/buildQueue/id:"
                 f"{queued_id}", "webUrl": f"{self.url}/viewQueued.html?itemId={queued_id}",
                 "comment": {"text": text} if text else None}
        self.queue.append(entry)
        self.queued.append(asked)
        return entry

    def _list_queue(self, *, query: dict[str, str], **_: Any) -> Any:
        locator = parse_locator(query.get("locator", ""))
        _only(locator, {"buildType"})
        build_type = parse_locator(locator.get("buildType", "")).get("id")
        found = [b for b in self.queue if b["buildTypeId"] == build_type]
        return {"count": len(found), "build": found}

    def _list_builds(self, *, query: dict[str, str], **_: Any) -> Any:
        locator = parse_locator(query.get("locator", ""))
        _only(locator, {"buildType", "branch", "running", "sinceBuild", "count"})
        build_type = parse_locator(locator.get("buildType", "")).get("id")
        since = _number(parse_locator(locator.get("sinceBuild", "id:0")).get("id", ""), "id")
        if locator.get("branch") != "default:any":
            raise Refused(400, "the fake serves branch:default:any only")
        # TeamCity's default filter leaves canceled builds out unless asked for.
        found = [b for i, b in sorted(self.server.builds.items())
                 if b["buildTypeId"] == build_type and i > since and "canceledInfo" not in b]
        return {"count": len(found), "build": found}
