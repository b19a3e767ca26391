"""The Markdown report (GitHub and GitLab flavoured) and the escaping every forge reuses.

The report reads top-down as a reviewer scans it: the title; "Status: FAILED — 3 failed,
1 error of 1,204 tests"; the files that could not be read, by name and reason; the other
counts (zeros left out); the failures under their CI job (when the run has several) and
file or suite (`bot.reports.layout`), one list item each with its message shown once;
flaky tests with what their failing attempt said; skipped tests collapsed; metrics, the
environment the tests ran in and artifacts last.

Everything in a report that came from a test run is untrusted text: a test name can hold
`|` (splits a table cell), backticks (closes a code span or fence), `<script>`, `@team`
(notifies people), `fixes #123` (links issue 123 and puts "mentioned this" on its timeline),
or a line starting with `/approve` (a GitLab quick action, run with the bot's permissions).
The functions here turn such text into Markdown that shows it literally and links nothing:

- `md_text`: inline text on one line (paragraphs, list items, headings);
- `md_cell`: a table cell, capped at `CELL_LIMIT` characters with an ellipsis;
- `md_html_text`: text inside raw HTML in Markdown (`<summary>`), where Markdown is inert;
- `md_code_block`: a fenced block whose fence is longer than any backtick run inside;
- `md_link`: a link, only for http(s) URLs.

References and mentions. Each forge links its own forms in the text of a comment, after
Markdown is rendered (so a backslash or an HTML entity does not stop them: the forge reads
the decoded text):

- GitHub: `#123`, `GH-123`, `owner/repo#123`, `@user`, `@org/team`, commit SHAs and
  `user@sha`, bare URLs, and per-repository custom autolinks such as `JIRA-123`
  (https://docs.github.com/en/get-started/writing-on-github/working-with-advanced-formatting/autolinked-references-and-urls);
- GitLab: `@user`, `#123`, `!123` (merge requests), `~label`, `%milestone`, `$snippet`,
  `&epic`, `*iteration:1`, `[vulnerability:1]`, each also in `~"two words"` and
  `group/project!1` forms, and commit SHAs (https://docs.gitlab.com/user/markdown/#gitlab-specific-references);
- Bitbucket: `@user`, `#123` in `issue #123` and `PR #12` / `pull request #12`, Jira keys
  `ABC-123`, commit SHAs;
- Azure DevOps: `#123` (work items), `!123` (pull requests), `@user` and `@<guid>`; and
  `AB#123`, which the Azure Boards app links from GitHub.

Every one of these starts at a sigil (`@ # ! ~ % $ &`) followed by a name character, a
quote or a bracket, at `PREFIX-` followed by a digit, or at `://` and `www.`. Inline text
gets a WORD JOINER (U+2060) right after each such sigil, hyphen, scheme colon and `www`,
so no forge's pattern matches, while the text reads and wraps exactly as before. Why this
character: it is invisible and zero-width on all four forges (a Unicode "default
ignorable" character, which browsers do not draw); unlike a zero-width space (U+200B,
Renovate's choice for the same job) it gives the browser no place to wrap `#` away from
`123`; unlike a zero-width joiner (U+200D) it has no meaning in emoji sequences (`#` is an
emoji base); and written as the character, not `&#8288;`, it costs one character of a
budget and means the same wherever the text ends up, entities decoded or not. The cost:
copying such text from a rendered comment copies the joiners. That is why code spans and
fenced blocks (`md_code_block`, where a failure's full message and stack trace are shown
to be copied) get none: GitHub and GitLab never link inside code (GitLab's reference
filters skip `pre`, `code` and `a`); for Bitbucket and Azure DevOps, whose publishers are
not built yet, check the same before their reports put untrusted text in code. Commit SHAs
are left alone: a forge links one only when it names a commit of that very repository,
which neither notifies anyone nor marks another page, while breaking every 7-to-40-digit
hexadecimal word would spoil the hashes and numbers in messages.

Invariants the tests hold these to (`tests/reports/test_inert.py`): no output line starts
with `/`; every sigil before a name character, every `PREFIX-` before a digit, every `://`
and `www.` is broken by a word joiner outside code; removing the joiners gives back the
text as it was; a table row has exactly as many unescaped `|` as its header.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from bot.reports import summary as words
from bot.reports.budget import ENVIRONMENT_ROWS, Plan, Tier, cap, fit
from bot.reports.comparison import markdown_lines
from bot.reports.layout import Layout, Listed, arrange
from bot.reports.templating import environment
from bot.results.model import (
    Status,
    TestCase,
    TestRun,
    format_duration,
    format_size,
    truncate,
)

#: A table cell never shows more than this many characters (the ellipsis included).
CELL_LIMIT = 200
#: The run id in the title is cut here: ids derived from long branch names get silly.
TITLE_LIMIT = 120
#: A notice (`.herald.yml line 3: ...`) in output characters, and how many are shown: a
#: budget of a few thousand characters always has room for them.
NOTICE_LIMIT = 700
MAX_NOTICES = 5
#: A message or stack trace in a failure's details is cut here; the full text is in the
#: HTML and JSON reports.
DETAIL_LIMIT = 8_000
#: The Markdown report lists at most this many skipped tests (in a collapsed block).
SKIPPED_LIST_LIMIT = 100
ELLIPSIS = "…"
#: Invisible and zero-width; put where a forge would otherwise start a link or mention.
WORD_JOINER = "\u2060"

# Backslash-escaping works for any ASCII punctuation in CommonMark; these are the ones that
# start emphasis, code, links, tables, strikethrough or (GitHub) math. `<`, `>` and `&`
# become entities, which every forge's renderer understands, also inside table cells.
_BACKSLASHED = "\\`*_[]|~$"
_INLINE: dict[int, str] = {ord(c): "\\" + c for c in _BACKSLASHED}
_INLINE.update({ord("<"): "&lt;", ord(">"): "&gt;", ord("&"): "&amp;"})
# Control characters and Unicode line separators would start a new line somewhere (a
# forge's quick-action scanner, a terminal); inline text is one line, so they become spaces
# (before trimming, so a name of only control characters trims to nothing, as it shows).
_SPACES: dict[int, str] = {code: " " for code in [*range(0x20), 0x7F, 0x85, 0x2028, 0x2029]}
_SPACES_BUT_NEWLINE = {code: text for code, text in _SPACES.items() if code != ord("\n")}
_CELL_BREAKS = {**_INLINE, ord("\n"): "<br>"}

_HTML_TEXT: dict[int, str] = {
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord("&"): "&amp;",
    ord('"'): "&quot;",
    ord("'"): "&#x27;",
}

# Where a forge's reference, mention or autolink would start (see the module docstring):
# a sigil before a name character, a quote or a bracket (`~"a label"`, Azure's `@<guid>`);
# `GH-` or a Jira-style key before its number; a URL's `://` and a bare `www.`; GitLab's
# `*iteration:` and `[vulnerability:`. The joiner goes right after what matched.
_REFERENCE = re.compile(
    r"""
    (?=[@#!~%$&:*\[A-ZgWw])               # a cheap first look: most positions fail here
    (?:
        [@#!~%$&](?=[\w"<{\[])            # @user ~label #1 !1 %milestone $1 &1 ~"a b" @<guid>
      | (?<!\w)(?:[Gg][Hh]|[A-Z][A-Z0-9_]+)-(?=\d)    # GH-1, and Jira or custom keys: ABC-1
      | (?<=[A-Za-z]):(?=//)                # https://
      | (?<!\w)[Ww]{3}(?=\.)                # www.
      | \*(?=iteration:) | \[(?=vulnerability:)
    )
    """,
    re.VERBOSE,
)


_JOINED = "\\g<0>" + WORD_JOINER


def defuse(text: str) -> str:
    """`text` with a word joiner wherever a forge would link or mention from it; the same
    text to read. Idempotent, and undone by removing every `WORD_JOINER`."""
    return _REFERENCE.sub(_JOINED, text)


# At the start of a line these begin a heading, list, setext underline or a quick action.
_LINE_START = "#-+=/"
_ORDERED_ITEM = re.compile(r"\d{1,9}[.)]")
_BACKTICK_RUN = re.compile(r"`+")
_SAFE_LANGUAGE = re.compile(r"[^A-Za-z0-9_+-]")


def _lead(text: str) -> tuple[str, str]:
    """Split off and escape what would read as block syntax at the start of a line."""
    if not text:
        return "", text
    if text[0] in _LINE_START:
        return "\\" + text[0], text[1:]
    item = _ORDERED_ITEM.match(text)
    if item:
        end = item.end()
        return text[: end - 1] + "\\" + text[end - 1], text[end:]
    return "", text


def _escape(text: str, table: dict[int, str], limit: int | None, *, block: bool = True) -> str:
    spaces = _SPACES_BUT_NEWLINE if table is _CELL_BREAKS else _SPACES
    text = defuse(text.replace("\r\n", "\n").translate(spaces).strip())
    head = text if limit is None else text[:limit]
    lead, rest = _lead(head) if block else ("", head)
    escaped = lead + rest.translate(table)
    if limit is None or (len(head) == len(text) and len(escaped) <= limit):
        return escaped
    # Cut whole escapes only (never half of `&amp;` or `\|`): find the longest prefix of
    # the raw text whose escaped form leaves room for the ellipsis.
    room = limit - len(ELLIPSIS) - len(lead)
    if room < 0:
        return ELLIPSIS if limit >= len(ELLIPSIS) else ""
    low, high = 0, min(len(rest), room)
    while low < high:
        middle = (low + high + 1) // 2
        if len(rest[:middle].translate(table)) <= room:
            low = middle
        else:
            high = middle - 1
    return lead + rest[:low].translate(table).rstrip() + ELLIPSIS


def md_text(text: str, limit: int | None = None) -> str:
    """Untrusted text as inline Markdown on one line, shown literally; cut at `limit`
    characters of output (ellipsis included) when given."""
    return _escape(text, _INLINE, limit)


def md_cell(text: str, limit: int = CELL_LIMIT, *, line_breaks: bool = False) -> str:
    """Untrusted text as one table cell: newlines become spaces (or `<br>`), `|` is escaped,
    and the cell is at most `limit` characters long."""
    # A cell never starts a line of the source, so block syntax needs no escaping there.
    return _escape(text, _CELL_BREAKS if line_breaks else _INLINE, limit, block=False)


def md_html_text(text: str, limit: int | None = None) -> str:
    """Untrusted text inside raw HTML in Markdown (a `<summary>`): entity-escaped, on one
    line, mentions defused. Markdown syntax is inert there, so nothing is backslashed."""
    return _escape(text, _HTML_TEXT, limit, block=False)


def md_code_block(text: str, language: str = "") -> str:
    """Untrusted text as a fenced code block that nothing inside can close.

    The fence is one backtick longer than the longest run of backticks in the text. Lines
    starting with `/` are indented by one space so GitLab never reads them as quick actions.
    """
    longest = max((len(run) for run in _BACKTICK_RUN.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    body = "\n".join(" " + line if line.startswith("/") else line for line in lines)
    return f"{fence}{_SAFE_LANGUAGE.sub('', language)}\n{body}\n{fence}"


def md_link(text: str, url: str | None, limit: int | None = CELL_LIMIT) -> str:
    """`[text](url)` for http(s) URLs; anything else (javascript:, relative, None) shows
    the text alone, because a report must not link where its inputs say."""
    label = md_text(text, limit)
    if not url:
        return label
    label = label or md_text(url, limit)  # an empty label would make an invisible link
    checked = words.safe_url(url)
    if checked is None:
        return label
    # Percent-encode what could end the link destination or the line it is on; a lone
    # surrogate (a CI payload's "\ud800") cannot be UTF-8 and becomes `?`.
    target = quote(checked, safe="/:?#[]@!$&'*+,;=%~-._", errors="replace")
    return f"[{label}]({target})"


def _location(case: TestCase) -> str | None:
    """`file:line`, or None when the line is unknown (the file heads the group already)."""
    if case.file and case.line is not None:
        return f"{case.file}:{case.line}"
    return None


def _counted(failed: int, errors: int) -> str:
    parts = [f"{failed:,} failed"] if failed else []
    if errors:
        parts.append(f"{errors:,} error" + ("" if errors == 1 else "s"))
    return ", ".join(parts)


def _indented(block: str, indent: str = "  ") -> str:
    """A block inside a list item: every non-empty line indented to the item's content."""
    return "\n".join(indent + line if line else line for line in block.split("\n"))


class _Failures:
    """Each failure's list item, escaped once and only when asked for, in its brief form
    (one line: name and the message's first line) or its detailed form (the whole message
    in a fence, the rest of the stack trace collapsed): a run with 10,000 failures is
    rendered many times while its budget is fitted. The message is shown once either way."""

    def __init__(self, listed: Sequence[Listed]) -> None:
        self.listed = listed
        self._items: dict[bool, list[str]] = {True: [], False: []}

    def item(self, index: int, detailed: bool) -> str:
        items = self._items[detailed]
        while len(items) <= index:
            entry = self.listed[len(items)]
            items.append(self._detailed(entry) if detailed else self._brief(entry))
        return items[index]

    @staticmethod
    def _name(entry: Listed) -> str:
        name = md_text(entry.case.display_name, CELL_LIMIT) or md_text("(unnamed test)")
        if entry.execution is None:
            return f"**{name}**"
        return f"**{name}** {words.execution_label(*entry.execution)}"

    @staticmethod
    def _where(case: TestCase) -> str:
        location = _location(case)
        place = f"{md_text(location, CELL_LIMIT)} · " if location else ""
        return f"{place}{format_duration(case.duration)}"

    def _brief(self, entry: Listed) -> str:
        case = entry.case
        error = case.status is Status.ERROR
        said = words.failure_summary(case.message, case.failure_type, error=error)
        kind = "error: " if error and case.message else ""
        return (f"- {self._name(entry)} — {kind}{md_text(said, CELL_LIMIT)}"
                f" ({self._where(case)})")

    def _detailed(self, entry: Listed) -> str:
        case = entry.case
        message = case.message if case.message and case.message.strip() else None
        trace = words.trace_beyond_message(message, case.stack_trace, case.failure_type)
        if message is None and trace is None:
            return self._brief(entry)
        head = f"- {self._name(entry)} — {case.status.value}"
        if case.failure_type and case.failure_type not in words.first_line(message):
            head += f": {md_text(case.failure_type, CELL_LIMIT)}"
        parts = [f"{head} ({self._where(case)})"]
        if message is not None:
            parts.append(_indented(md_code_block(truncate(message, DETAIL_LIMIT) or "")))
        if trace is not None:
            parts.append(_indented("<details><summary>Stack trace</summary>"))
            parts.append(_indented(md_code_block(truncate(trace, DETAIL_LIMIT) or "")))
            parts.append(_indented("</details>"))
        return "\n\n".join(parts)

    def longer_than(self, plan: Plan, budget: int) -> bool:
        """True when the plan's items alone exceed `budget`, found without escaping more
        than that many characters' worth of them."""
        total = 0
        for index in range(plan.rows):
            total += len(self.item(index, index < plan.details)) + 1
            if total > budget:
                return True
        return False


def _listing(layout: Layout, failures: _Failures, plan: Plan, levels: tuple[str, str]) -> str:
    """The first `plan.rows` failures under their job and file headings, as Markdown."""
    job_level, place_level = levels
    out: list[str] = []
    index = 0
    shown = min(plan.rows, len(layout.ordered))
    for job in layout.jobs:
        if index >= shown:
            break
        if layout.by_origin:
            name = md_text(job.origin.name, CELL_LIMIT) if job.origin else "(no CI job)"
            heading = f"{job_level} {name or '(unnamed job)'}: {_counted(job.failed, job.errors)}"
            url = words.safe_url(job.origin.url) if job.origin else None
            if url:
                heading += f" · {md_link('job log', url)}"
            out.append(heading)
        for place in job.places:
            if index >= shown:
                break
            label = md_text(place.label, CELL_LIMIT)
            if not label:
                label = "(no file or suite)"
            elif not place.is_file:
                label = f"Suite {label}"
            out.append(f"{place_level} {label} ({len(place.failures):,})")
            previous_brief = False
            items: list[str] = []
            for _entry in place.failures:
                if index >= shown:
                    break
                detailed = index < plan.details
                item = failures.item(index, detailed)
                brief = "\n" not in item
                if items:
                    items.append("\n" if brief and previous_brief else "\n\n")
                items.append(item)
                previous_brief = brief
                index += 1
            out.append("".join(items))
    return "\n\n".join(out)


def validate_marker(marker: str) -> str:
    """A sticky-comment marker must be one HTML comment on one line: it starts the report,
    and anything after its first `-->` would show as text."""
    inner = marker[4:-3] if marker.startswith("<!--") and marker.endswith("-->") else None
    if (
        inner is None
        or any(bad in inner for bad in ("-->", "--!>", "<!--"))
        or inner.startswith((">", "->"))
        or any(char in marker for char in "\r\n")
    ):
        raise ValueError(f"a marker must be one HTML comment on one line: {marker[:80]!r}")
    return marker


def render_markdown(
    run: TestRun,
    *,
    budget: int | None = None,
    details_url: str | None = None,
    now: datetime | None = None,
    heading_level: int = 1,
    marker: str | None = None,
    notices: Sequence[str] = (),
) -> str:
    """The report as Markdown, at most `budget` characters (see `bot.reports.budget`).

    `heading_level` is the title's level (sections are one deeper), for embedding the
    report under a forge's own heading; `marker`, an HTML comment, goes first so the
    publisher can find and update its comment; `details_url` links the full report when
    the budget leaves things out; `notices`, plain sentences the report must carry (a
    broken `.herald.yml`), stand under the status line in every tier.
    """
    if not 1 <= heading_level <= 4:
        raise ValueError(f"heading_level must be 1 to 4, not {heading_level}")
    if marker is not None:
        validate_marker(marker)
    totals = run.totals()
    layout = arrange(run)
    failing = layout.ordered
    failures = _Failures(failing)
    link = md_link("full report", details_url, limit=None) if details_url else None
    template = environment(html=False).get_template("report.md.j2")
    level = [min(6, heading_level + depth) for depth in range(4)]
    h1, h2, h3, h4 = ("#" * n for n in level)
    levels = (h3, h4) if layout.by_origin else (h3, h3)
    only = layout.only_origin
    job_line = None
    if only is not None and failing:
        job_url = words.safe_url(only.url)
        job_line = "Job: " + (md_text(only.name, CELL_LIMIT) or "(unnamed job)")
        if job_url:
            job_line += f" · {md_link('job log', job_url)}"
    counts = words.count_lines(totals)
    if run.url:
        counts.append(f"CI run: {md_link(run.url, run.url)}")
    base = {
        "marker": marker,
        "h1": h1,
        "h2": h2,
        "run_id": md_text(run.id, TITLE_LIMIT) or md_text("(unnamed run)"),
        "status": words.run_status_word(run),
        "headline": words.headline(totals),
        "counts": counts,
        "failure_count": len(failing),
        "job_line": job_line,
        "link": link,
        "generated": f"Generated on {words.generated_at(now)} by {words.BRAND}",
        "unread": words.files_unread(len(run.errors)) if run.errors else None,
        "error_count": len(run.errors),
        "flaky_count": len(layout.flaky),
        "skipped_count": len(layout.skipped),
        "notices": [md_text(notice, NOTICE_LIMIT) for notice in notices[:MAX_NOTICES]],
    }
    metrics = [
        f"| {md_cell(m.name)} | {md_cell(words.metric_value(m.value))} | {md_cell(m.unit)} |"
        for m in run.metrics
    ]
    ran_in = [
        f"| {md_cell(name)} | {md_cell(value)} |"
        for name, value in itertools.islice(run.environment.items(), ENVIRONMENT_ROWS)
    ]
    artifacts = [
        f"- {md_link(a.name, a.url)} ({format_size(a.size)})" for a in run.artifacts
    ]
    errors = [f"{md_text(e.source, CELL_LIMIT)} ({md_text(e.reason, CELL_LIMIT)})"
              for e in run.errors]
    flaky = [_flaky_line(case) for case in layout.flaky]
    skipped = [_skipped_line(case) for case in layout.skipped[:SKIPPED_LIST_LIMIT]]

    def render(plan: Plan) -> str | None:
        if budget is not None and failures.longer_than(plan, budget):
            return None
        return template.render(
            **base,
            counts_only=plan.tier is Tier.COUNTS,
            listing=_listing(layout, failures, plan, levels) if plan.rows else "",
            more_rows=len(failing) - plan.rows,
            # Tier 3 says how many rows are left out; details go unmentioned there.
            more_details=len(failing) - min(plan.details, plan.rows)
            if plan.tier <= Tier.TABLE else 0,
            detailed=min(plan.details, plan.rows),
            metrics=cap(metrics, plan.lists),
            environment=cap(ran_in, plan.lists, len(run.environment)),
            artifacts=cap(artifacts, plan.lists),
            errors=cap(errors, plan.lists),
            flaky=cap(flaky, plan.lists),
            skipped=skipped if plan.others else [],
            more_skipped=len(layout.skipped) - len(skipped),
            comparison=markdown_lines(run.comparison, h2, plan.lists, md_text, md_link,
                                      CELL_LIMIT) if run.comparison is not None
            and run.comparison.base is not None else [],
        )

    text, _plan = fit(render, len(failing), budget)
    return text


def _flaky_line(case: TestCase) -> str:
    """A flaky test and what its failing attempt said: the failure it may hide next time."""
    failed = [a for a in case.attempts if a.status.is_failure]
    last = failed[-1]
    said = words.failure_summary(last.message, last.failure_type,
                                 error=last.status is Status.ERROR)
    name = md_text(case.display_name, CELL_LIMIT) or md_text("(unnamed test)")
    location = _location(case) or case.file
    where = f" ({md_text(location, CELL_LIMIT)})" if location else ""
    tries = f"{len(failed):,} failed attempt" + ("" if len(failed) == 1 else "s")
    return f"- **{name}**{where} passed after {tries}: {md_text(said, CELL_LIMIT)}"


def _skipped_line(case: TestCase) -> str:
    name = md_text(case.display_name, CELL_LIMIT) or md_text("(unnamed test)")
    reason = words.first_line(case.message)
    return f"- {name}: {md_text(reason, CELL_LIMIT)}" if reason else f"- {name}"
