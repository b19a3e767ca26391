"""`bot.console.printable`: what herald prints to a terminal holds nothing a terminal
obeys, and still reads as the name it was."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.console import printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("report.xml", "report.xml"),
        ("\x1b]0;pwned\x07.xml", "\\x1b]0;pwned\\x07.xml"),  # retitles the window (OSC)
        ("\x1b[31mred.xml", "\\x1b[31mred.xml"),  # recolours what follows (CSI)
        ("\x9b31mred", "\\x9b31mred"),  # the one-byte C1 CSI
        ("a\x7fb\x00c", "a\\x7fb\\x00c"),
        ("line\nbreak\r\ttab", "line\\nbreak\\r\\ttab"),
        ("\x85next line", "\\x85next line"),
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
        ("gpj.\u202eexe", "gpj.\\u202eexe"),  # a bidi override: reads as "exe.jpg"
        ("\u2066x\u2069 \u200e\u200f\u061c", "\\u2066x\\u2069 \\u200e\\u200f\\u061c"),
        ("unicodé 名前 ✓", "unicodé 名前 ✓"),
        ("C:\\path\\x1b", "C:\\path\\x1b"),  # a backslash is left as it is
        ("broken-\udcff.xml", "broken-?.xml"),  # invalid UTF-8 in a name, as reports show it
    ],
)
def test_printable_escapes_what_a_terminal_would_obey(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_multiline_keeps_newlines_and_escapes_the_rest() -> None:
    assert printable("one\n\x1b[2Jtwo\r\n", multiline=True) == "one\n\\x1b[2Jtwo\\r\n"


BIDI_CONTROLS = {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C}


@given(st.text())
def test_no_text_reaches_the_terminal_with_a_control_or_bidi_character(raw: str) -> None:
    text = printable(raw)
    assert not [char for char in text
                if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp")
                or ord(char) in BIDI_CONTROLS]
    text.encode("utf-8")  # what is left, any terminal encoding UTF-8 can write
