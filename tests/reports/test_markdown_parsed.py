"""The Markdown report read back by a CommonMark parser with GFM tables (markdown-it-py):
what a reviewer sees in each cell is exactly the test's name, whatever the name holds."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot.reports import render_markdown
from bot.reports.markdown import ZERO_WIDTH_JOINER
from bot.results.model import Artifact, ParseError, Status, Suite, TestCase, TestRun
from tests.reports.runs import NOW

PARSER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
#: What our own template writes as raw HTML; anything else would have come from the run.
OWN_HTML = ("<details>", "</details>", "<summary>", "<!-- herald:report")


def cells(tokens: list[Token]) -> list[list[str]]:
    """The text of each cell of the first table, row by row, as a reader sees it."""
    rows: list[list[str]] = []
    inside = False
    for token in tokens:
        if token.type == "table_open":
            inside = True
        elif token.type == "table_close":
            break
        elif inside and token.type == "tr_open":
            rows.append([])
        elif inside and token.type == "inline":
            rows[-1].append(seen_text(token))
    return rows


def seen_text(inline: Token) -> str:
    parts = []
    for child in inline.children or []:
        assert child.type in ("text", "softbreak"), f"markup from the run: {child.type}"
        parts.append(child.content if child.type == "text" else "\n")
    return "".join(parts)


def as_shown(text: str) -> str:
    """The run's text as a cell shows it: one line, trimmed, mentions defused."""
    line = text.replace("\r\n", "\n")
    for separator in [*map(chr, range(0x20)), "\x7f", "\x85", "\u2028", "\u2029"]:
        line = line.replace(separator, " ")
    return line.strip().replace("@", "@" + ZERO_WIDTH_JOINER)


names = st.text(
    alphabet=st.sampled_from(list("|`\\<>&*_[]@/#-+=!~$:()\n ab1.")) | st.characters(
        blacklist_categories=("Cs",)),
    min_size=1, max_size=60,
).filter(lambda name: name.strip() != "")


@settings(max_examples=150, deadline=None)
@example(name="a|b `c` <script>x</script> **d** _e_ [f](g) ~~h~~ $i$ @team \\| &amp;")
@example(name="```\n/approve\n@all")
@example(name="\\")
@given(name=names)
def test_a_cell_shows_exactly_the_name(name: str) -> None:
    case = TestCase(name=name, status=Status.FAILED, message="boom", stack_trace=name)
    report = render_markdown(TestRun(id="r", suites=[Suite("s", [case])]), now=NOW)
    tokens = PARSER.parse(report)
    table = cells(tokens)
    assert table[0] == ["Test", "Error", "Duration"]
    assert len(table) == 2 and len(table[1]) == 3
    assert table[1][0] == as_shown(name)
    # The stack trace comes back whole from its fence, `/` lines indented by one space
    # (and NUL as U+FFFD, as CommonMark and every forge show it).
    fences = [t.content for t in tokens if t.type == "fence"]
    expected = "\n".join(" " + line if line.startswith("/") else line
                         for line in name.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    if name != "boom":
        assert fences[-1] == expected.replace("\x00", "\ufffd") + "\n"
    for token in tokens:
        if token.type == "html_block":
            assert token.content.startswith(OWN_HTML), token.content


@settings(max_examples=100, deadline=None)
@given(source=names, reason=names, artifact=names)
def test_list_items_show_exactly_their_text(source: str, reason: str, artifact: str) -> None:
    run = TestRun(id="r", errors=[ParseError(source, reason)],
                  artifacts=[Artifact(artifact, 10, "https://ci.example.com/a")],
                  suites=[Suite("s", [TestCase(name="t")])])
    tokens = PARSER.parse(render_markdown(run, now=NOW))
    items = [seen_inline(t) for t in tokens if t.type == "inline"]
    assert f"{as_shown(source)}: {as_shown(reason)}".strip() in items
    label = as_shown(artifact) or "https://ci.example.com/a"
    assert f"{label} (10 B)" in items


def seen_inline(inline: Token) -> str:
    """The text of a paragraph, following our own links (only http(s) ones exist)."""
    parts = []
    for child in inline.children or []:
        if child.type in ("link_open", "link_close"):
            continue
        assert child.type in ("text", "softbreak"), f"markup from the run: {child.type}"
        parts.append(child.content if child.type == "text" else "\n")
    return "".join(parts)
