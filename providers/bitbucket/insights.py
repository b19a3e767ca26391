"""What Herald writes to Bitbucket, as pure functions of a run: the build status, the Code
Insights report and its annotations, the sticky comment's body and its hidden markers.

Limits (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-reports/,
/api-group-commit-statuses/): an annotation `summary` holds at most 450 characters, a
report at most 1,000 annotations, sent at most 100 per request, each with an
`external_id` unique in its report; a report has at most 10 data fields. The build status
and report text limits are not documented for Bitbucket Cloud; Herald keeps to those of
Bitbucket Data Center (a status name and description 255 characters, a report's details
2,000), which Cloud accepts.

Names of statuses, reports and markers come from the `ReportOrigin`: a Bitbucket pipeline
of one selector (`default`, `custom: nightly`) and a run of another CI system each get
their own, so they never overwrite each other. The order of runs is written into the
report (`Run` data field) and the comment (a hidden line), so a late report of an older
run never replaces a newer one.

Hidden markers: Bitbucket shows an HTML comment as text, so a marker is a Markdown link
reference definition (`[//]: # (herald:...)`), which the renderer keeps out of the page.
Bitbucket's Markdown shows raw HTML as text too: the report's `<details>` blocks are
turned into plain paragraphs (`bitbucket_markdown`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from typing import Any, Final
from urllib.parse import quote

from bot.ports import ReportOrigin
from bot.reports import render_markdown, run_title
from bot.reports.summary import safe_url
from bot.results.model import RunStatus, TestCase, TestRun
from providers.bitbucket.webhook import OWN_STATUS_KEY as KEY_PREFIX

NAME: Final = "bitbucket"
STATUS_NAME_LIMIT: Final = 255
DESCRIPTION_LIMIT: Final = 255
REPORT_TITLE: Final = "Herald test report"
DETAILS_LIMIT: Final = 2_000
SUMMARY_LIMIT: Final = 450
ANNOTATION_DETAILS_LIMIT: Final = 2_000
ANNOTATIONS_PER_REQUEST: Final = 100
ANNOTATIONS_PER_REPORT: Final = 1_000
DATA_FIELDS: Final = 10
#: Bitbucket does not document a comment size limit; a report comment stays under this.
COMMENT_BUDGET: Final = 30_000
RUN_FIELD: Final = "Run"
#: Where Pipelines clones the repository (`BITBUCKET_CLONE_DIR`).
CLONE_DIR: Final = "/opt/atlassian/pipelines/agent/build/"
TRUNCATED: Final = "\n\n… (report cut to fit)\n"

_MARKER_LINE = "[//]: # ({text})"
_RUN_MARKER = re.compile(r"^\[//\]: # \(herald:run:(\d+)\)$", re.MULTILINE)
_DETAILS_OPEN = re.compile(r"^\s*<details>\s*$", re.MULTILINE)
_DETAILS_CLOSE = re.compile(r"^\s*</details>\s*$", re.MULTILINE)
_SUMMARY = re.compile(r"^(\s*)(?:<details>)?<summary>(.*?)</summary>\s*$", re.MULTILINE)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def origin_key(origin: ReportOrigin) -> str:
    """The build status key and report id of `origin`: `herald` for an unnamed Bitbucket
    pipeline, else `herald-<hash of CI and name>` (short, one path segment)."""
    if origin.ci == NAME and not origin.name:
        return KEY_PREFIX
    digest = hashlib.sha256(f"{origin.ci}\x1f{origin.name or ''}".encode()).hexdigest()
    return f"{KEY_PREFIX}-{digest[:12]}"


def status_name(origin: ReportOrigin) -> str:
    ci = "Pipelines" if origin.ci == NAME else origin.ci
    label = f"Herald ({ci}: {origin.name})" if origin.name else f"Herald ({ci})"
    return _clip(label, STATUS_NAME_LIMIT)


def build_state(run: TestRun, origin: ReportOrigin) -> str:
    """The build status: what the tests say; the run's own fate when none ran. Passing
    tests beside an unreadable report are not a success."""
    status = run.overall_status()
    if status in (RunStatus.FAILED, RunStatus.ERROR) or run.errors:
        return "FAILED"
    if status is RunStatus.CANCELLED:
        return "STOPPED"
    if status is RunStatus.RUNNING:
        return "INPROGRESS"
    if status is RunStatus.NO_TESTS and origin.failed:
        return "FAILED"
    return "SUCCESSFUL"


def status_body(
    origin: ReportOrigin, state: str, description: str, url: str, refname: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": origin_key(origin),
        "state": state,
        "name": status_name(origin),
        "url": url,
        "description": _clip(description, DESCRIPTION_LIMIT),
    }
    if refname:
        body["refname"] = refname
    return body


def report_body(run: TestRun, origin: ReportOrigin, annotated: int) -> dict[str, Any]:
    totals = run.totals()
    details = run_title(run)
    failures = totals.failures
    if failures > annotated:
        details += (f". {failures - annotated:,} of the {failures:,} failures are not "
                    f"annotated (Bitbucket keeps {ANNOTATIONS_PER_REPORT:,} per report)")
    data: list[dict[str, Any]] = [
        {"title": "Failed", "type": "NUMBER", "value": totals.failed},
        {"title": "Errors", "type": "NUMBER", "value": totals.errors},
        {"title": "Passed", "type": "NUMBER", "value": totals.passed},
        {"title": "Skipped", "type": "NUMBER", "value": totals.skipped},
        {"title": "Duration", "type": "DURATION",
         "value": round(run.effective_duration() * 1000)},
        {"title": RUN_FIELD, "type": "NUMBER", "value": origin.sequence},
    ]
    if totals.flaky:
        data.append({"title": "Flaky", "type": "NUMBER", "value": totals.flaky})
    if run.errors:
        data.append({"title": "Unreadable inputs", "type": "NUMBER", "value": len(run.errors)})
    body: dict[str, Any] = {
        "title": REPORT_TITLE,
        "details": _clip(details, DETAILS_LIMIT),
        "report_type": "TEST",
        "reporter": "Herald",
        "result": {"FAILED": "FAILED", "INPROGRESS": "PENDING"}.get(
            build_state(run, origin), "PASSED"),
        "data": data[:DATA_FIELDS],
    }
    link = safe_url(origin.url)
    if link:
        body["link"] = link
    return body


def reported_run(report: dict[str, Any] | None) -> int | None:
    """The run order a posted report records (its `Run` data field)."""
    if not isinstance(report, dict):
        return None
    for field in report.get("data") or []:
        if isinstance(field, dict) and field.get("title") == RUN_FIELD:
            value = field.get("value")
            return value if isinstance(value, int) else None
    return None


def _annotation_id(key: str, case: TestCase, occurrence: int) -> str:
    digest = hashlib.sha256(f"{case.identity}\x1f{occurrence}".encode()).hexdigest()
    return f"{key}-{digest[:24]}"


def repository_path(file: str | None) -> str | None:
    """A report's file as Code Insights takes it, relative to the repository: Pipelines
    clones into `CLONE_DIR`, so absolute paths under it are cut; other absolute paths name
    no file of the repository and are left out."""
    if not file:
        return None
    path = file.replace("\\", "/")
    if path.startswith(CLONE_DIR):
        path = path[len(CLONE_DIR):]
    path = path.removeprefix("./")
    if not path or path.startswith("/") or ".." in path.split("/"):
        return None
    return path


def annotations_of(run: TestRun, origin: ReportOrigin) -> list[dict[str, Any]]:
    """One annotation per failing execution, at most `ANNOTATIONS_PER_REPORT`. Twins of
    one name (parameterised tests, shards) get ids of their own by their order, so none
    replaces another."""
    key = origin_key(origin)
    seen: dict[str, int] = {}
    found: list[dict[str, Any]] = []
    link = safe_url(origin.url)
    for case in run.failures():
        occurrence = seen.get(case.identity, 0)
        seen[case.identity] = occurrence + 1
        word = "ERROR" if case.status.value == "error" else "FAILED"
        where = f" [{case.origin.name}]" if case.origin is not None and case.origin.name else ""
        message = f": {case.message}" if case.message else ""
        annotation: dict[str, Any] = {
            "external_id": _annotation_id(key, case, occurrence),
            "annotation_type": "BUG",
            "result": "FAILED",
            "severity": "HIGH",
            "summary": _clip(f"{word} {case.display_name}{where}{message}", SUMMARY_LIMIT),
        }
        if case.stack_trace:
            annotation["details"] = case.stack_trace[:ANNOTATION_DETAILS_LIMIT]
        path = repository_path(case.file)
        if path:
            annotation["path"] = path
            if case.line is not None and case.line > 0:
                annotation["line"] = case.line
        if link:
            annotation["link"] = link
        found.append(annotation)
        if len(found) >= ANNOTATIONS_PER_REPORT:
            break
    return found


def batches(items: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), ANNOTATIONS_PER_REQUEST):
        yield items[start : start + ANNOTATIONS_PER_REQUEST]


# ---- the sticky comment -------------------------------------------------------------------


def marker_line(text: str) -> str:
    return _MARKER_LINE.format(text=text)


def report_marker(origin: ReportOrigin) -> str:
    """The hidden first line of `origin`'s comment; names are encoded and the line is
    closed, so "CI" never finds "CI nightly"'s comment."""
    key = quote(f"{origin.ci}:{origin.name or 'run'}", safe=":")
    return marker_line(f"herald:report:{key}")


def run_marker(sequence: int) -> str:
    return marker_line(f"herald:run:{sequence}")


def reply_marker(comment_id: str) -> str:
    return marker_line(f"herald:reply:{quote(comment_id, safe='')}")


def reported_order(body: str) -> tuple[int, ...] | None:
    match = _RUN_MARKER.search(body)
    return (int(match.group(1)),) if match else None


def bitbucket_markdown(text: str) -> str:
    """The shared report's Markdown as Bitbucket shows it: no raw HTML blocks (Bitbucket
    would print the tags), a `<summary>` line becoming a bold paragraph. The summary's
    text is entity-escaped already, which Bitbucket's Markdown decodes as text."""
    text = _SUMMARY.sub(lambda m: f"{m.group(1)}**{m.group(2)}**", text)
    text = _DETAILS_OPEN.sub("", text)
    return _DETAILS_CLOSE.sub("", text)


def comment_body(run: TestRun, origin: ReportOrigin, tail: str = "") -> str:
    head = f"{report_marker(origin)}\n{run_marker(origin.sequence)}\n\n"

    def render(budget: int) -> str:
        room = max(0, budget - len(head) - len(tail))
        report = render_markdown(run, budget=room, details_url=origin.url, heading_level=2)
        return head + bitbucket_markdown(report) + tail

    return fit(render)


def fit(render: Callable[[int], str], limit: int = COMMENT_BUDGET) -> str:
    """Render under `limit`; the HTML removal only shortens, so one shrink suffices, and
    as a last resort the end is cut on a line break."""
    text = render(limit)
    if len(text) <= limit:
        return text
    text = render(limit - (len(text) - limit) - 256)
    if len(text) <= limit:
        return text
    room = limit - len(TRUNCATED)
    cut = text.rfind("\n", 0, room)
    return text[: cut if cut > 0 else room] + TRUNCATED
