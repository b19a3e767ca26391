"""Reports: a `TestRun` as Markdown, HTML or JSON, each fitted to a size budget.

    render_markdown(run, budget=GITHUB_CHECK_SUMMARY_LIMIT, details_url=..., marker=...)
    render_html(run); iter_html(run)  # the page in pieces, for a file
    render_json(run); iter_json(run); from_json(text) -> TestRun
    title(run.totals())  # "3 failed, 1,204 passed in 2m 5s"
    run_title(run)  # the same, plus "; 2 inputs could not be read" when some could not

Escaping for forges that write their own Markdown lives in `bot.reports.markdown`.
"""

from bot.reports.budget import (
    GITHUB_CHECK_SUMMARY_LIMIT,
    GITHUB_COMMENT_LIMIT,
    GITLAB_NOTE_LIMIT,
    Plan,
    Tier,
)
from bot.reports.html import iter_html, render_html
from bot.reports.json import SCHEMA_VERSION, from_json, iter_json, render_json
from bot.reports.markdown import render_markdown
from bot.reports.summary import run_title, status_word, title

__all__ = [
    "GITHUB_CHECK_SUMMARY_LIMIT",
    "GITHUB_COMMENT_LIMIT",
    "GITLAB_NOTE_LIMIT",
    "SCHEMA_VERSION",
    "Plan",
    "Tier",
    "from_json",
    "iter_html",
    "iter_json",
    "render_html",
    "render_json",
    "render_markdown",
    "run_title",
    "status_word",
    "title",
]
