"""The Markdown report (GitHub and GitLab flavoured) and the escaping every forge reuses.

Everything in a report that came from a test run is untrusted text: a test name can hold
`|` (splits a table cell), backticks (closes a code span or fence), `<script>`, `@team`
(notifies people), or a line starting with `/approve` (a GitLab quick action, run with the
bot's permissions). The functions here turn such text into Markdown that shows it literally:

- `md_text`: inline text on one line (paragraphs, list items, headings);
- `md_cell`: a table cell, capped at `CELL_LIMIT` characters with an ellipsis;
- `md_html_text`: text inside raw HTML in Markdown (`<summary>`), where Markdown is inert;
- `md_code_block`: a fenced block whose fence is longer than any backtick run inside;
- `md_link`: a link, only for http(s) URLs.

Invariants the tests hold these to: no output line starts with `/`; `@` is always followed
by a zero-width joiner (U+200D), so nobody is notified; a table row has exactly as many
unescaped `|` as its header.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from bot.reports import summary as words
from bot.reports.budget import Plan, Tier, cap, fit
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
#: A message or stack trace in a failure's details is cut here; the full text is in the
#: HTML and JSON reports.
DETAIL_LIMIT = 8_000
ELLIPSIS = "…"
ZERO_WIDTH_JOINER = "\u200d"

# Backslash-escaping works for any ASCII punctuation in CommonMark; these are the ones that
# start emphasis, code, links, tables, strikethrough or (GitHub) math. `<`, `>` and `&`
# become entities, which every forge's renderer understands, also inside table cells.
_BACKSLASHED = "\\`*_[]|~$"
_INLINE: dict[int, str] = {ord(c): "\\" + c for c in _BACKSLASHED}
_INLINE.update({ord("<"): "&lt;", ord(">"): "&gt;", ord("&"): "&amp;"})
_INLINE[ord("@")] = "@" + ZERO_WIDTH_JOINER
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
    ord("@"): "@" + ZERO_WIDTH_JOINER,
}

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
    text = text.replace("\r\n", "\n").translate(spaces).strip()
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
    # Percent-encode what could end the link destination or the line it is on.
    target = quote(checked, safe="/:?#[]@!$&'*+,;=%~-._")
    return f"[{label}]({target})"


class _Failures:
    """The failures' table rows and detail blocks, escaped once and only when asked for:
    a run with 10,000 failures is rendered many times while its budget is fitted."""

    def __init__(self, cases: Sequence[TestCase]) -> None:
        self.cases = cases
        self._rows: list[str] = []
        self._details: list[str] = []

    def rows(self, count: int) -> list[str]:
        self._fill_rows(count)
        return self._rows[:count]

    def details(self, count: int) -> list[str]:
        self._fill_details(count)
        return self._details[:count]

    def _fill_rows(self, count: int) -> None:
        while len(self._rows) < count:
            case = self.cases[len(self._rows)]
            error = words.failure_summary(
                case.message, case.failure_type, error=case.status is Status.ERROR
            )
            self._rows.append(
                f"| {md_cell(case.display_name)} | {md_cell(error)}"
                f" | {format_duration(case.duration)} |"
            )

    def _fill_details(self, count: int) -> None:
        if len(self._details) >= count:
            return
        template = environment(html=False).get_template("failure.md.j2")
        while len(self._details) < count:
            case = self.cases[len(self._details)]
            message = truncate(case.message, DETAIL_LIMIT)
            trace = truncate(case.stack_trace, DETAIL_LIMIT)
            location = None
            if case.file:
                location = case.file + (f":{case.line}" if case.line is not None else "")
            self._details.append(
                template.render(
                    name=md_html_text(case.display_name, CELL_LIMIT),
                    status=case.status.value,
                    failure_type=md_text(case.failure_type, CELL_LIMIT)
                    if case.failure_type else None,
                    location=md_text(location, CELL_LIMIT) if location else None,
                    message=md_code_block(message) if message else None,
                    trace=md_code_block(trace) if trace and trace != message else None,
                ).strip("\n")
            )

    def longer_than(self, plan: Plan, budget: int) -> bool:
        """True when the plan's rows and details alone exceed `budget`, found without
        escaping more than that many characters' worth of them."""
        # Item by item, never through rows()/details(), whose copies would make each call
        # quadratic in the number of failures.
        total = 0
        for index in range(plan.rows):
            self._fill_rows(index + 1)
            total += len(self._rows[index]) + 1
            if total > budget:
                return True
        for index in range(plan.details):
            self._fill_details(index + 1)
            total += len(self._details[index]) + 1
            if total > budget:
                return True
        return False


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
) -> str:
    """The report as Markdown, at most `budget` characters (see `bot.reports.budget`).

    `heading_level` is the title's level (sections are one deeper), for embedding the
    report under a forge's own heading; `marker`, an HTML comment, goes first so the
    publisher can find and update its comment; `details_url` links the full report when
    the budget leaves things out.
    """
    if not 1 <= heading_level <= 4:
        raise ValueError(f"heading_level must be 1 to 4, not {heading_level}")
    if marker is not None:
        validate_marker(marker)
    totals = run.totals()
    failing = run.failures()
    table = _Failures(failing)
    link = md_link("full report", details_url, limit=None) if details_url else None
    template = environment(html=False).get_template("report.md.j2")
    base = {
        "marker": marker,
        "h1": "#" * heading_level,
        "h2": "#" * (heading_level + 1),
        "h3": "#" * (heading_level + 2),
        "run_id": md_text(run.id, TITLE_LIMIT) or md_text("(unnamed run)"),
        "status": words.status_word(run.overall_status()),
        "title": words.title(totals),
        "run_link": md_link(run.url, run.url) if run.url else None,
        "counts": words.count_lines(totals),
        "failure_count": len(failing),
        "link": link,
        "generated": f"Generated on {words.generated_at(now)} by {words.BRAND}",
    }
    metrics = [
        f"| {md_cell(m.name)} | {md_cell(words.metric_value(m.value))} | {md_cell(m.unit)} |"
        for m in run.metrics
    ]
    artifacts = [
        f"- {md_link(a.name, a.url)} ({format_size(a.size)})" for a in run.artifacts
    ]
    errors = [f"- {md_text(e.source, CELL_LIMIT)}: {md_text(e.reason, CELL_LIMIT)}"
              for e in run.errors]

    def render(plan: Plan) -> str | None:
        if budget is not None and table.longer_than(plan, budget):
            return None
        return template.render(
            **base,
            tier=int(plan.tier),
            counts_only=plan.tier is Tier.COUNTS,
            rows=table.rows(plan.rows),
            more_rows=len(failing) - plan.rows,
            details=table.details(plan.details),
            # Tier 3 says how many rows are left out; details go unmentioned there.
            more_details=len(failing) - plan.details if plan.tier <= Tier.TABLE else 0,
            metrics=cap(metrics, plan.lists),
            artifacts=cap(artifacts, plan.lists),
            errors=cap(errors, plan.lists),
            error_count=len(run.errors),
        )

    text, _plan = fit(render, len(failing), budget)
    return text
