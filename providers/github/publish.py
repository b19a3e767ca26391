"""What Herald writes to GitHub, as plain data: check run fields, annotations, markers.

Pure functions of the run and its coordinates; `providers.github.client` sends them.

- One check run per CI run attempt, named after its origin (`bot.ports.ReportOrigin`):
  `Herald (<workflow>)` for GitHub Actions, `Herald (<ci>: <name>)` for another CI system
  (CircleCI, Jenkins...), so several workflows and CI systems reporting on one commit stay
  apart (`Herald` alone when an Actions workflow's name is unknown). The name never depends
  on what else reported, so reprocessing finds the same one.
- `external_id` is `<run id>/<attempt>` for Actions (`<ci>:<run id>/<attempt>` for others):
  a re-run attempt gets a fresh check run (as GitHub's own checks do), because annotations
  can only ever be appended to a check run, so the old attempt's failures would otherwise
  stay on the new one.
- Annotations are one deterministic list per run; GitHub's `annotations_count` on the
  existing check run says how many were sent already, so a retried or repeated publish
  sends exactly the rest (possibly none), 50 per request.
- Each request that appends (creating a check run or a comment, an annotation batch) is
  found again after a lost answer before it is resent: the check run by `external_id`,
  name and head sha, annotations by `annotations_count`, comments by their marker. A
  `/retest` reply's marker names the comment it answers.
- One sticky PR comment per workflow of each CI system (not per run, not one for all):
  a new push updates the same comment instead of piling up new ones, and two workflows
  never race to rewrite one shared comment. Its hidden marker names the origin and the
  run's sequence and attempt, so a late report of an older run never overwrites a newer one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from bot.events import RunRef
from bot.ports import ReportOrigin
from bot.results.model import RunStatus, TestCase, TestRun

CHECK_NAME: Final = "Herald"
#: The CI source that is GitHub itself: its runs keep the names they always had.
ACTIONS: Final = "github"
ANNOTATIONS_PER_REQUEST: Final = 50
#: Annotations per check run: past this the summary lists the rest (GitHub shows only the
#: first thousands anyway, and each batch is a content-creating request).
MAX_ANNOTATIONS: Final = 500
MESSAGE_LIMIT: Final = 4_000
RAW_DETAILS_LIMIT: Final = 8_000
TITLE_LIMIT: Final = 255
RERUN_ACTION: Final = {
    "label": "Re-run failed",
    "identifier": "rerun-failed",
    "description": "Re-run this workflow's failed jobs",
}
ERROR_TITLE: Final = "Herald could not report on this run"
#: Said after the title of a failing run whose check `fail_on: nothing` keeps neutral.
NOT_GATING: Final = " (not gating: fail_on is nothing)"

CONCLUSIONS: Final = {
    RunStatus.PASSED: "success",
    RunStatus.FAILED: "failure",
    RunStatus.CANCELLED: "cancelled",
}

_MARKER = re.compile(r"<!-- herald:report:(?P<key>\S+) run=(?P<run>\d+)\.(?P<attempt>\d+) -->")


def workflow_name(ref: RunRef) -> str | None:
    name = ref.extra.get("workflow_name") or ref.extra.get("name")
    return str(name) if name else None


def attempt_of(ref: RunRef) -> int:
    try:
        return max(1, int(ref.extra.get("run_attempt") or 1))
    except (TypeError, ValueError):
        return 1


def _actions(origin: ReportOrigin) -> bool:
    return origin.ci == ACTIONS


def check_name(origin: ReportOrigin) -> str:
    if _actions(origin):
        return f"{CHECK_NAME} ({origin.name})" if origin.name else CHECK_NAME
    return f"{CHECK_NAME} ({origin.ci}: {origin.name})" if origin.name else \
        f"{CHECK_NAME} ({origin.ci})"


def external_id(origin: ReportOrigin) -> str:
    own = f"{origin.run.run_id}/{origin.attempt}"
    return own if _actions(origin) else f"{origin.ci}:{own}"


_RUN_ID = re.compile(r"^(?P<run>\d{1,20})(?:/(?P<attempt>\d{1,6}))?$")


def parse_run_id(value: str) -> tuple[int, int | None] | None:
    """`"123"` → (123, None); `"123/2"` (our external id) → (123, 2); else None."""
    match = _RUN_ID.match(value)
    if match is None:
        return None
    attempt = match.group("attempt")
    return int(match.group("run")), int(attempt) if attempt else None


def conclusion(run: TestRun) -> str:
    """The check's colour. Passing tests beside an input that could not be read are
    `neutral`, never `success`: the unread file may have held the failure."""
    status = run.overall_status()
    if status is RunStatus.PASSED and run.errors:
        return "neutral"
    return CONCLUSIONS.get(status, "neutral")


def marker_prefix(origin: ReportOrigin) -> str:
    """The start of our comment's hidden marker, up to and including the space after the
    key: "CI" must never find "CI nightly"'s comment, so the key is encoded and ended."""
    name = origin.name or "run"
    key = quote(name if _actions(origin) else f"{origin.ci}:{name}", safe="")
    return f"<!-- herald:report:{key.replace('-', '%2D')} "


def marker(origin: ReportOrigin) -> str:
    return f"{marker_prefix(origin)}run={origin.sequence}.{origin.attempt} -->"


def reply_marker(comment_id: str) -> str:
    """The hidden first line of our answer to comment `comment_id`."""
    return f"<!-- herald:reply:{quote(comment_id, safe='')} -->"


def annotations_count(check: Mapping[str, Any]) -> int:
    """How many annotations GitHub holds for a check run, as it reports them."""
    output = check.get("output") or {}
    try:
        return max(0, int(output.get("annotations_count") or 0))
    except (TypeError, ValueError):
        return 0


def marked_run(body: str) -> tuple[int, int] | None:
    """(run id, attempt) from a comment's marker, to keep a newer report in place."""
    match = _MARKER.search(body[:500])
    return (int(match.group("run")), int(match.group("attempt"))) if match else None


def repo_path(file: str | None, repo: str) -> str | None:
    """A test file as a path in the repository, or None when it cannot be placed.

    Reports hold paths relative to the checkout, or absolute ones from the runner
    (`/home/runner/work/<name>/<name>/src/x.py`, `D:\\a\\<name>\\<name>\\x.cs`).
    """
    if not file:
        return None
    path = file.replace("\\", "/")
    name = repo.rpartition("/")[2]
    absolute = path.startswith("/") or re.match(r"^[A-Za-z]:/", path) is not None
    if absolute:
        for anchor in (f"/{name}/{name}/", f"/{name}/"):
            at = path.rfind(anchor)
            if at >= 0:
                path = path[at + len(anchor) :]
                break
        else:
            return None
    while path.startswith("./"):
        path = path[2:]
    parts = path.split("/")
    if not path or any(part in ("", ".", "..") for part in parts):
        return None
    return path


def _cut(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def annotation(case: TestCase, path: str) -> dict[str, Any]:
    line = case.line if case.line and case.line > 0 else 1
    message = case.message or case.failure_type or f"{case.status.value}"
    item: dict[str, Any] = {
        "path": path,
        "start_line": line,
        "end_line": line,
        "annotation_level": "failure",
        "message": _cut(message, MESSAGE_LIMIT),
        "title": _cut(case.display_name, TITLE_LIMIT),
    }
    details = case.stack_trace if case.stack_trace and case.stack_trace != message else None
    if details:
        item["raw_details"] = _cut(details, RAW_DETAILS_LIMIT)
    return item


def annotations_for(run: TestRun, repo: str) -> list[dict[str, Any]]:
    """Failures with a known file, in the run's order (the same order every time)."""
    found: list[dict[str, Any]] = []
    for case in run.failures():
        path = repo_path(case.file, repo)
        if path is not None:
            found.append(annotation(case, path))
            if len(found) == MAX_ANNOTATIONS:
                break
    return found


@dataclass(frozen=True, slots=True)
class CheckRunFields:
    """The fields of one check run request, without annotations."""

    name: str
    head_sha: str
    external_id: str
    conclusion: str
    title: str
    summary: str
    details_url: str | None
    rerun_action: bool

    def body(self, batch: list[dict[str, Any]] | None, *, create: bool) -> dict[str, Any]:
        output: dict[str, Any] = {"title": self.title, "summary": self.summary}
        if batch:
            output["annotations"] = batch
        body: dict[str, Any] = {
            "name": self.name,
            "status": "completed",
            "conclusion": self.conclusion,
            "external_id": self.external_id,
            "output": output,
            "actions": [RERUN_ACTION] if self.rerun_action else [],
        }
        if create:
            body["head_sha"] = self.head_sha
        if self.details_url:
            body["details_url"] = self.details_url
        return body

    def annotations_only(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return {"output": {"title": self.title, "summary": self.summary, "annotations": batch}}
