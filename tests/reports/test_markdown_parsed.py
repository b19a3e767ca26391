"""The Markdown report read back by a CommonMark parser with GFM tables (markdown-it-py):
what a reviewer sees as a failure's name, a job's name or an unread file is exactly that
text, whatever it holds, and the structure (headings, one list item per failure, fences)
is the one the template wrote."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot.reports import render_markdown
from bot.reports.markdown import defuse
from bot.results.model import (
    Artifact,
    Origin,
    ParseError,
    Status,
    Suite,
    TestCase,
    TestRun,
)
from tests.reports.runs import NOW

PARSER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
#: What our own template writes as raw HTML; anything else would have come from the run.
OWN_HTML = ("<details>", "</details>", "<summary>", "<!-- herald:report")


def failures(tokens: list[Token]) -> list[tuple[str, str]]:
    """Each failure's list item as a reader sees it: (the name in bold, the rest of its
    first line), through the first bullet list after the "Failed Tests" heading."""
    items: list[tuple[str, str]] = []
    inside = False
    depth = 0
    for index, token in enumerate(tokens):
        if token.type == "inline" and token.content == "Failed Tests":
            inside = True
        elif inside and token.type == "list_item_open":
            depth += 1
            paragraph = tokens[index + 2]
            assert paragraph.type == "inline"
            items.append(split_bold(paragraph))
        elif inside and token.type == "list_item_close":
            depth -= 1
    return items


def split_bold(inline: Token) -> tuple[str, str]:
    # markdown-it starts with an empty text token before a leading delimiter.
    children = [c for c in inline.children or [] if c.type != "text" or c.content]
    assert children[0].type == "strong_open", [c.type for c in children]
    close = next(i for i, c in enumerate(children) if c.type == "strong_close")
    return seen(children[1:close]), seen(children[close + 1:])


def seen(children: list[Token]) -> str:
    parts = []
    for child in children:
        assert child.type in ("text", "softbreak"), f"markup from the run: {child.type}"
        parts.append(child.content if child.type == "text" else "\n")
    return "".join(parts)


def seen_text(inline: Token) -> str:
    return seen(inline.children or [])


def as_shown(text: str) -> str:
    """The run's text as a cell shows it: one line, trimmed, references defused."""
    line = text.replace("\r\n", "\n")
    for separator in [*map(chr, range(0x20)), "\x7f", "\x85", "\u2028", "\u2029"]:
        line = line.replace(separator, " ")
    return defuse(line.strip())


names = st.text(
    alphabet=st.sampled_from(list("|`\\<>&*_[]@/#-+=!~$:()\n ab1.")) | st.characters(
        blacklist_categories=("Cs",)),
    min_size=1, max_size=60,
).filter(lambda name: name.strip() != "")


@settings(max_examples=150, deadline=None)
@example(name="a|b `c` <script>x</script> **d** _e_ [f](g) ~~h~~ $i$ @team \\| &amp;")
@example(name="```\n/approve\n@all")
@example(name="\\")
@example(name="**")
@example(name="\x00\x01")
@given(name=names)
def test_a_failure_shows_exactly_its_name(name: str) -> None:
    failing = [TestCase(name=name, status=Status.FAILED, message="boom", stack_trace=name,
                        origin=Origin(name, "https://ci.example.com/job")),
               TestCase(name="other", status=Status.FAILED, message="boom",
                        origin=Origin("job 2"))]
    report = render_markdown(TestRun(id="r", suites=[Suite("s", failing)]), now=NOW)
    tokens = PARSER.parse(report)
    shown = failures(tokens)
    assert [item[0] for item in shown] == [as_shown(name) or "(unnamed test)", "other"]
    assert shown[0][1] == " — failed (0.00s)"
    # The job heading shows the origin's name as it is, then what failed in it.
    headings = [seen_heading(tokens, i) for i, t in enumerate(tokens)
                if t.type == "heading_open" and t.tag == "h3"]
    assert headings[0] == f"{as_shown(name) or '(unnamed job)'}: 1 failed · job log"
    # The stack trace comes back whole from its fence, `/` lines indented by one space
    # (and NUL as U+FFFD, as CommonMark and every forge show it).
    fences = [t.content for t in tokens if t.type == "fence"]
    expected = "\n".join(" " + line if line.startswith("/") else line
                         for line in name.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    if name.strip() != "boom":
        assert fences[1] == expected.replace("\x00", "\ufffd") + "\n"
    for token in tokens:
        if token.type == "html_block":
            assert token.content.startswith(OWN_HTML), token.content


def seen_heading(tokens: list[Token], index: int) -> str:
    parts = []
    for child in tokens[index + 1].children or []:
        if child.type in ("link_open", "link_close"):
            continue
        assert child.type == "text", f"markup from the run: {child.type}"
        parts.append(child.content)
    return "".join(parts)


@settings(max_examples=100, deadline=None)
@given(source=names, reason=names, artifact=names)
def test_unread_files_and_artifacts_show_exactly_their_text(
    source: str, reason: str, artifact: str
) -> None:
    run = TestRun(id="r", errors=[ParseError(source, reason)],
                  artifacts=[Artifact(artifact, 10, "https://ci.example.com/a")],
                  suites=[Suite("s", [TestCase(name="t")])])
    tokens = PARSER.parse(render_markdown(run, now=NOW))
    paragraphs = [seen_inline(t) for t in tokens if t.type == "inline"]
    # Right under the headline: which file, and why.
    assert paragraphs[2] == f"1 file could not be read: {as_shown(source)} ({as_shown(reason)})."
    label = as_shown(artifact) or defuse("https://ci.example.com/a")
    assert f"{label} (10 B)" in paragraphs


def seen_inline(inline: Token) -> str:
    """The text of a paragraph, following our own links (only http(s) ones exist)."""
    parts = []
    for child in inline.children or []:
        if child.type in ("link_open", "link_close"):
            continue
        assert child.type in ("text", "softbreak"), f"markup from the run: {child.type}"
        parts.append(child.content if child.type == "text" else "\n")
    return "".join(parts)
