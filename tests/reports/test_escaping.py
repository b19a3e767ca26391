"""The escaping every Markdown surface relies on: untrusted text shown literally."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.reports.markdown import (
    CELL_LIMIT,
    WORD_JOINER,
    md_cell,
    md_code_block,
    md_html_text,
    md_link,
    md_text,
)
from tests.reports.checks import unescaped_pipes

WJ = WORD_JOINER


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ("test_a|b", "test\\_a\\|b"),
        ("uses `code`", "uses \\`code\\`"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("a & b", "a &amp; b"),
        ("*bold* and _it_", "\\*bold\\* and \\_it\\_"),
        ("[link](https://x)", f"\\[link\\](https:{WJ}//x)"),
        ("line one\nline two", "line one line two"),
        ("line one\r\nline two", "line one line two"),
        ("tab\there", "tab here"),
        ("@group/team please", f"@{WJ}group/team please"),
        ("/approve", "/approve"),
        ("~~strike~~", f"\\~\\~{WJ}strike\\~\\~"),
        ("costs $5 and $6", f"costs \\${WJ}5 and \\${WJ}6"),
        ("C:\\path\\|", "C:\\\\path\\\\\\|"),
        ("  padded  ", "padded"),
        ("", ""),
    ],
)
def test_md_cell_shows_text_literally(raw: str, cell: str) -> None:
    assert md_cell(raw) == cell


def test_md_cell_caps_a_10kb_name_with_an_ellipsis() -> None:
    cell = md_cell("test_" + "x" * 10_000)
    assert len(cell) == CELL_LIMIT
    assert cell.endswith("…")
    assert cell.startswith("test\\_xxx")


def test_md_cell_never_cuts_an_escape_in_half() -> None:
    # 199 characters of `&` would be 995 escaped: the cut falls between whole `&amp;`s.
    cell = md_cell("&" * 10_000)
    assert len(cell) <= CELL_LIMIT
    assert cell == "&amp;" * ((CELL_LIMIT - 1) // 5) + "…"
    piped = md_cell("|" * 10_000)
    assert unescaped_pipes(piped) == 0


def test_md_cell_line_breaks_become_br_when_asked() -> None:
    assert md_cell("first\nsecond", line_breaks=True) == "first<br>second"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("/approve", "\\/approve"),
        ("  /merge now", "\\/merge now"),
        ("note\n/approve", "note /approve"),
        ("# not a heading", "\\# not a heading"),
        ("- not a list", "\\- not a list"),
        ("+ not a list", "\\+ not a list"),
        ("=== not an underline", "\\=== not an underline"),
        ("1. not a list", "1\\. not a list"),
        ("12) not a list", "12\\) not a list"),
        ("> not a quote", "&gt; not a quote"),
        ("version 1.2", "version 1.2"),
        ("ping @org/reviewers", f"ping @{WJ}org/reviewers"),
        ("a\u2028b\x85c\x00d", "a b c d"),
    ],
)
def test_md_text_never_starts_a_block_or_a_quick_action(raw: str, text: str) -> None:
    assert md_text(raw) == text


@pytest.mark.parametrize(
    ("raw", "fence"),
    [
        ("plain", "```"),
        ("has ``` inside", "````"),
        ("`````", "``````"),
        ("~~~\ntilde fence", "```"),
    ],
)
def test_md_code_block_fence_is_longer_than_any_backtick_run(raw: str, fence: str) -> None:
    block = md_code_block(raw)
    assert block == f"{fence}\n{raw}\n{fence}"


def test_md_code_block_indents_lines_that_start_with_a_slash() -> None:
    block = md_code_block("/usr/lib/python3.11/site.py:1: in <module>\n/approve\n  /keep")
    assert block.split("\n") == [
        "```",
        " /usr/lib/python3.11/site.py:1: in <module>",
        " /approve",
        "  /keep",
        "```",
    ]


def test_md_code_block_language_cannot_inject() -> None:
    assert md_code_block("x", "py`thon\nevil").startswith("```pythonevil\n")


def test_md_html_text_escapes_for_raw_html() -> None:
    assert md_html_text('<b class="x">@me & you</b>') == (
        f"&lt;b class=&quot;x&quot;&gt;@{WJ}me &amp; you&lt;/b&gt;"
    )
    assert len(md_html_text("&" * 1000, 50)) <= 50


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://ci.example.com/run/1", "[junit\\_xml](https://ci.example.com/run/1)"),
        ("http://ci.example.com/a b)c", "[junit\\_xml](http://ci.example.com/a%20b%29c)"),
        ("javascript:alert(1)", "junit\\_xml"),
        ("/relative/path", "junit\\_xml"),
        ("https://", "junit\\_xml"),
        (None, "junit\\_xml"),
    ],
)
def test_md_link_links_only_http_urls(url: str | None, link: str) -> None:
    assert md_link("junit_xml", url) == link


@given(st.text())
def test_any_text_stays_inside_its_cell(raw: str) -> None:
    cell = md_cell(raw)
    assert unescaped_pipes(cell) == 0
    assert "\n" not in cell and "\r" not in cell
    assert "<" not in cell and ">" not in cell.replace("&gt;", "")
    assert len(cell) <= CELL_LIMIT
    assert all(cell[i + 1] in (WJ, " ", "&", "\\") or not cell[i + 1].isalnum()
               for i, char in enumerate(cell[:-1]) if char == "@")


@given(st.text())
def test_any_text_is_one_harmless_line(raw: str) -> None:
    text = md_text(raw)
    assert "\n" not in text
    assert not text.startswith("/")
    assert not text.startswith(("#", "-", "+", "=", ">"))


@given(st.text())
def test_no_text_closes_its_code_block(raw: str) -> None:
    block = md_code_block(raw)
    lines = block.split("\n")
    fence = lines[0]
    body = lines[1:-1]
    assert lines[-1] == fence
    assert all(fence not in line for line in body)
    assert not any(line.startswith("/") for line in body)
