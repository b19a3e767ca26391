"""Output is inert everywhere: no text from a run makes a forge link an issue, a merge
request, a commit range or a URL, or mention anyone, in any Markdown Herald writes (cells,
list items, headings, `<summary>`, check-run summaries, GitLab notes, `/retest` replies),
and the reader still sees exactly the text the run held.

Each case is read back by a CommonMark + GFM-tables parser (markdown-it-py): what is
checked is the text a reader sees outside code, entities decoded and escapes gone, against
the forms GitHub, GitLab, Bitbucket and Azure DevOps link (`tests.reports.checks`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot.events import RunRef
from bot.reports import render_markdown
from bot.reports.markdown import WORD_JOINER, md_cell, md_html_text, md_link, md_text
from bot.results.model import (
    Artifact,
    Attempt,
    Metric,
    Origin,
    ParseError,
    Status,
    Suite,
    TestCase,
    TestRun,
)
from handlers.retest import reply_text, run_label
from providers.gitlab import notes
from tests.reports.checks import live_references
from tests.reports.runs import NOW

PARSER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_TAG = re.compile(r"<[^>]*>")

#: Each form some forge links or acts on, in a sentence as a test name might hold it.
HOSTILE = {
    "issue": "fixes #123",
    "GitHub GH-": "see GH-123 and gh-7",
    "cross-repository issue": "octo/app#9 broke",
    "merge request": "reverts !123",
    "mention": "ping @alice",
    "team mention": "cc @org/reviewers",
    "email": "mail ops@example.com",
    "GitLab label": "tagged ~bug and ~\"needs review\"",
    "GitLab milestone": "due %v1.0",
    "GitLab snippet": "see $42",
    "GitLab epic": "part of &7",
    "GitLab iteration": "in *iteration:3",
    "GitLab vulnerability": "fixes [vulnerability:9]",
    "GitLab quick action": "/close",
    "quick actions on lines": "note\n/approve\n/merge",
    "Azure Boards from GitHub": "AB#123 done",
    "Azure mention": "@<6F9619FF-8B86-D011-B42D-00C04FC964FF> and @{alice}",
    "Bitbucket pull request": "PR #12 and pull request #13",
    "Bitbucket issue": "issue #12",
    "Jira key": "PROJ-42 regressed",
    "bare URL": "see https://evil.example/login",
    "www autolink": "www.evil.example",
}


def shown(text: str) -> str:
    """The text a one-line field shows for `text`: line breaks as spaces, trimmed."""
    return re.sub(r"[\x00-\x1f]", " ", text.replace("\r\n", "\n")).strip()


def _inline_text(token: Token) -> str:
    parts = []
    for child in token.children or []:
        if child.type == "text":
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "html_inline":
            parts.append("\n")  # our own `<br>`; tags from a run never survive escaping
    return "".join(parts)


def visible(markdown: str) -> list[str]:
    """The text a reader sees outside code, one entry per paragraph, cell, heading or
    HTML block; code spans and fences are left out (no forge links inside code)."""
    seen = []
    for token in PARSER.parse(markdown):
        if token.type == "inline":
            seen.append(_inline_text(token))
        elif token.type == "html_block":
            lines = html.unescape(_TAG.sub("", token.content)).split("\n")
            seen.append(" ".join(line.strip() for line in lines if line.strip()))
    return seen


def as_cell(cell: str) -> str:
    return f"| head |\n| --- |\n| {cell} |\n"


def as_summary(text: str) -> str:
    return f"<details>\n<summary>{text}</summary>\n\nbody\n\n</details>\n"


#: Every function that turns untrusted text into Markdown, and how its output is embedded
#: in a document to be read back.
WRITERS: dict[str, Callable[[str], str]] = {
    "md_text": md_text,
    "md_cell": lambda text: as_cell(md_cell(text)),
    "md_cell with line breaks": lambda text: as_cell(md_cell(text, line_breaks=True)),
    "md_html_text in <summary>": lambda text: as_summary(md_html_text(text)),
    "md_link label": lambda text: md_link(text, "https://ci.example.com/job/1"),
    "md_link without a URL": lambda text: md_link(text, None),
    "retest run label": lambda text: run_label(
        RunRef(provider="github", repo="octo/app", run_id="1",
               url="https://github.com/octo/app/actions/runs/1", extra={"name": text})),
}


@pytest.mark.parametrize("writer", list(WRITERS), ids=list(WRITERS))
@pytest.mark.parametrize("form", list(HOSTILE), ids=list(HOSTILE))
def test_no_writer_lets_a_forge_link_or_mention_from_untrusted_text(
    writer: str, form: str
) -> None:
    raw = HOSTILE[form]
    markdown = WRITERS[writer](raw)
    seen = [text for text in visible(markdown) if text not in ("", "head", "body")]
    assert seen, markdown
    for text in seen:
        assert live_references(text) == [], markdown
    # The joiners are invisible: without them, the reader sees the run's text as it was.
    joined = " ".join(seen).replace(WORD_JOINER, "").replace("\n", " ")
    assert joined == shown(raw).replace("\n", " ")
    assert not any(line.startswith("/") for line in markdown.split("\n"))


def test_md_text_stays_inert_however_it_is_cut() -> None:
    raw = "#1 @a !2 ~b %c $3 &4 GH-5 https://x www.y " * 10
    for limit in range(1, 120):
        text = md_text(raw, limit)
        seen = " ".join(visible(text))
        assert live_references(seen) == [], text


def test_removing_the_joiners_gives_back_the_text() -> None:
    for raw in HOSTILE.values():
        assert md_html_text(raw).replace(WORD_JOINER, "") == html.escape(shown(raw))


def hostile_run(form: str) -> TestRun:
    """A run holding `form` in every field a report shows: run id, test names and
    classnames, messages and types, files, suites, CI jobs, metrics, the environment,
    artifacts and the files that could not be read."""
    raw = HOSTILE[form]
    job = Origin(f"job {raw}", "https://ci.example.com/job/1")
    other_job = Origin(f"{raw} leg 2")
    cases = [
        TestCase(name=f"test {raw}", classname=f"{raw}.Class", file=f"{raw}/test_a.py",
                 line=3, status=Status.FAILED, message=f"{raw}\nsecond {raw}",
                 failure_type=f"{raw}Error", stack_trace=f"at {raw}\n{raw}", origin=job),
        TestCase(name=f"{raw} in a suite", suite=f"suite {raw}", status=Status.ERROR,
                 message=raw, origin=other_job),
        TestCase(name=f"{raw} skipped", status=Status.SKIPPED, message=f"because {raw}",
                 origin=job),
        TestCase(name=f"{raw} flaky", file=f"{raw}.py", origin=job, attempts=[
            Attempt(Status.FAILED, message=f"once {raw}"), Attempt(Status.PASSED)]),
        TestCase(name="test_ok", origin=job),
    ]
    return TestRun(
        id=f"run {raw}",
        url="https://ci.example.com/run/1",
        suites=[Suite(f"suite {raw}", cases)],
        metrics=[Metric(f"metric {raw}", 1.5, f"{raw}ms")],
        environment={f"parameter {raw}": f"value {raw}"},
        artifacts=[Artifact(f"artifact {raw}", 10, "https://ci.example.com/a/1")],
        errors=[ParseError(f"{raw}/broken.xml", f"not a test report: {raw}")],
    )


#: Every Markdown document a forge receives from a run, by where it goes.
DOCUMENTS: dict[str, Callable[[TestRun], str]] = {
    "report": lambda run: render_markdown(run, now=NOW),
    "GitHub check-run summary": lambda run: render_markdown(
        run, now=NOW, budget=65_535, heading_level=2),
    "report cut to counts": lambda run: render_markdown(
        run, now=NOW, budget=900, details_url="https://ci.example.com/full"),
    "GitLab note": lambda run: notes.neutralise(render_markdown(
        run, now=NOW, heading_level=2, marker=notes.REPORT_MARKER)),
}


@pytest.mark.parametrize("document", list(DOCUMENTS), ids=list(DOCUMENTS))
@pytest.mark.parametrize("form", list(HOSTILE), ids=list(HOSTILE))
def test_a_rendered_report_is_inert_wherever_a_run_puts_the_text(
    document: str, form: str
) -> None:
    markdown = DOCUMENTS[document](hostile_run(form))
    # No quick action: GitLab reads one only at the very start of a line outside code; the
    # note's last pass (`notes.neutralise`) also covers indented ones.
    lines = markdown.split("\n")
    assert not any(line.startswith("/") for line in lines)
    if document == "GitLab note":
        assert not any(line.lstrip().startswith("/") for line in lines)
    seen = visible(markdown)
    for text in seen:
        assert live_references(text) == [], text
    if document == "report":
        # Every field still shows the run's text, only with invisible joiners in it.
        everything = "\n".join(seen).replace(WORD_JOINER, "")
        for expected in (f"run {shown(HOSTILE[form])}", f"job {shown(HOSTILE[form])}",
                         f"metric {shown(HOSTILE[form])}",
                         f"parameter {shown(HOSTILE[form])}", f"value {shown(HOSTILE[form])}",
                         f"not a test report: {shown(HOSTILE[form])}"):
            assert expected.replace("\n", " ") in everything.replace("\n", " ")


@pytest.mark.parametrize("form", list(HOSTILE), ids=list(HOSTILE))
def test_code_blocks_keep_the_text_to_copy_with_no_joiners(form: str) -> None:
    # A failure's full message and trace are in fences, where no forge links: they keep
    # the run's bytes, so what a reader copies from them is what the test printed.
    markdown = render_markdown(hostile_run(form), now=NOW)
    fences = [t.content for t in PARSER.parse(markdown) if t.type == "fence"]
    assert fences and all(WORD_JOINER not in fence for fence in fences)
    raw = HOSTILE[form]
    assert any(f"second {raw}".replace("\n/", "\n /") in fence for fence in fences)


def test_a_retest_reply_links_only_the_runs_and_addresses_only_the_author() -> None:
    ref = RunRef(provider="github", repo="octo/app", run_id="1",
                 url="https://github.com/octo/app/actions/runs/1",
                 extra={"name": "CI fixes #1 @all"})
    reply = reply_text("alice", [ref], [f"Could not rerun {run_label(ref)}: "
                                        f"{md_text('see !2 and GH-3')}."])
    mentions = [ref for text in visible(reply) for ref in live_references(text)]
    assert mentions == ["@alice"]  # the person who asked, on purpose
    assert "CI fixes #1 @all" in " ".join(visible(reply)).replace(WORD_JOINER, "")
