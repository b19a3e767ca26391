"""Text for a terminal: what herald commands print, with nothing in it a terminal obeys.

File names, test names and error messages come from the files being read. Printed raw, an
ESC sequence in one (`\\x1b]0;pwned\\x07` retitles the window, `\\x1b[31m` recolours what
follows, others move the cursor or, on some terminals, write to the clipboard) acts on the
user's terminal, and a bidi override (U+202E) makes a name read as another. `printable`
shows each such character as a Python-style escape (`\\x1b`, `\\x9b`, `\\u202e`), so the
line reads the same everywhere and still names the file. Every line a herald command
prints to a terminal passes through it.
"""

from __future__ import annotations

from typing import Final

# C0 controls, DEL and C1 controls (U+0080-U+009F: U+009B is a one-byte CSI to many
# terminals); line and paragraph separators; the bidi embeddings, overrides and isolates
# and the marks that steer them (Trojan Source, CVE-2021-42574).
_UNSAFE: Final = [
    *range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029,
    *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C,
]
_NAMED: Final = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def _escape(code: int) -> str:
    if code in _NAMED:
        return _NAMED[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_ESCAPES: Final = {code: _escape(code) for code in _UNSAFE}
# A name that is not valid UTF-8 reaches Python as lone surrogates (PEP 383), which no
# encoder writes; it shows as `?`, as the reports show it.
_ESCAPES.update({code: "?" for code in range(0xD800, 0xE000)})
_MULTILINE: Final = {code: text for code, text in _ESCAPES.items() if code != ord("\n")}


def printable(text: str, *, multiline: bool = False) -> str:
    """`text` safe to write to a terminal: every control character, bidi control and lone
    surrogate shown as an escape. With `multiline`, newlines are kept (a response body)."""
    return text.translate(_MULTILINE if multiline else _ESCAPES)
