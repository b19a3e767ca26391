"""The sticky merge request note: its hidden markers, its size budget and a last safety pass.

GitLab runs quick actions found in a note posted through the API, as the token's user:
a line `/approve` or `/merge` would approve or merge as Herald. It also notifies whoever a
note mentions, so a test named `@all` would page the whole project. Test and job names come
from the code under review, so the note is escaped when rendered (`bot.reports.markdown`)
and then, whatever the renderer did, passed through `neutralise` right before it is sent:
a line whose first non-blank character is `/` gets a zero-width space in front of it, and
an `@` before a name character gets a zero-width joiner after it. Both are invisible.

Quick actions: https://docs.gitlab.com/user/project/quick_actions/
Notes API (1,000,000-character limit): https://docs.gitlab.com/api/notes/
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import quote

from bot.ports import ReportOrigin
from bot.reports.budget import fit_comment

#: The commit status a GitLab pipeline's report sets.
STATUS_NAME: Final = "herald"
#: GitLab rejects a note body longer than this many characters.
NOTE_LIMIT: Final = 1_000_000
ZERO_WIDTH_SPACE: Final = "\u200b"
ZERO_WIDTH_JOINER: Final = "\u200d"
#: The hidden first line that makes a note Herald's report; found again by listing notes.
REPORT_MARKER: Final = "<!-- herald:report:gitlab -->"
#: Which pipeline the note reports, so an older pipeline never overwrites a newer one.
PIPELINE_MARKER: Final = "<!-- herald:pipeline:{pipeline_id} -->"
_PIPELINE_MARKER = re.compile(r"<!-- herald:pipeline:(\d+) -->")
TRUNCATED: Final = "\n\n… (report cut to fit GitLab's note size limit)\n"

_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x0b\x0c\x85]")
_LEADING_SLASH = re.compile(r"^([^\S\n]*)/", re.MULTILINE)
# A Markdown link destination is left alone (a URL may hold `@`); any other `@` that
# starts a name is broken up.
_LINK_OR_MENTION = re.compile(r"(\]\([^)\s]*\))|@(?=[A-Za-z0-9_])")
# GitLab's username characters; a mention is the longest such run after `@`.
_USERNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")


def neutralise(text: str, allow: Iterable[str] = ()) -> str:
    """Make `text` safe to post as a GitLab note: no quick action runs, nobody is mentioned
    but the usernames in `allow` (a reply addresses the person who asked, on purpose).

    Idempotent: running it twice changes nothing more.
    """
    allowed = {name.lower() for name in allow if name}
    text = _LINE_BREAKS.sub("\n", text)
    text = _LEADING_SLASH.sub(lambda m: f"{m.group(1)}{ZERO_WIDTH_SPACE}/", text)

    def fix(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1)
        name = _USERNAME.match(text, match.end())
        if name and name.group(0).lower() in allowed:
            return "@"
        return f"@{ZERO_WIDTH_JOINER}"

    return _LINK_OR_MENTION.sub(fix, text)


def report_marker(origin: ReportOrigin) -> str:
    """The hidden first line of the report note of `origin`: one note per merge request
    for GitLab pipelines (`REPORT_MARKER`, as ever), and one per workflow of each other CI
    system. Names are encoded, and the marker ends in ` -->`, so "CI" never finds
    "CI nightly"'s note."""
    if origin.ci == "gitlab":
        return REPORT_MARKER
    key = quote(f"{origin.ci}:{origin.name or 'run'}", safe=":")
    return f"<!-- herald:report:{key} -->"


def status_name(origin: ReportOrigin) -> str:
    """The commit status' name: `herald` for a GitLab pipeline, `herald (<ci>: <name>)`
    for another CI system, so two systems' statuses on one commit stay apart."""
    if origin.ci == "gitlab":
        return STATUS_NAME
    return f"{STATUS_NAME} ({origin.ci}: {origin.name})" if origin.name else \
        f"{STATUS_NAME} ({origin.ci})"


def reply_marker(note_id: str) -> str:
    """The hidden first line of our answer to note `note_id` (a `/retest`)."""
    return f"<!-- herald:reply:{quote(note_id, safe='')} -->"


def pipeline_marker(pipeline_id: int) -> str:
    return PIPELINE_MARKER.format(pipeline_id=pipeline_id)


def is_report(body: str) -> bool:
    return REPORT_MARKER in body


def reported_pipeline(body: str) -> int | None:
    """The pipeline id an existing report note was written for, if it says."""
    match = _PIPELINE_MARKER.search(body)
    return int(match.group(1)) if match else None


def fit(render: Callable[[int], str], limit: int = NOTE_LIMIT) -> str:
    """Render with a budget, neutralise, and shrink the budget until the result fits
    (`bot.reports.budget.fit_comment`: neutralising lengthens the text by one character
    per line or mention it fixes)."""
    return fit_comment(render, limit, TRUNCATED, neutralise)
