"""Lenient readers for the odd values real report files carry: times, numbers, dirty text.

Every function here returns a usable value or None/0 for one bad attribute; a single odd
value never fails a whole file.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from bot.results.model import TRUNCATION_MARKER, truncate

#: ANSI/VT100 escape sequences (CSI, OSC, two-byte). The input filter turns ESC (0x1b), which
#: XML 1.0 forbids, into DEL (0x7f), which it allows, so both introduce a sequence here.
_ANSI = re.compile(
    r"[\x1b\x7f](?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\x7f]*(?:\x07|[\x1b\x7f]\\)?|[@-Z\\-_])?"
)
#: Put at the end of a text that was cut before it reached `clean` (by the byte filter, in
#: bytes; or when joining many children's texts, in characters). ASCII only, so it reads
#: the same in every 8-bit charset. `clean` folds it into the model's one marker.
CUT_MARKER = "\n... [truncated by Herald: {dropped:,} more bytes]"
_CUT = re.compile(r"\n\.\.\. \[truncated by Herald: ([\d,]+) more bytes\]\Z")
_NUMBER_PREFIX = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)")
#: .NET stack frames name their source: "in /src/CalcTests.cs:line 21" (Linux, Windows
#: paths alike) or, in xUnit's console output, "C:\src\CalcTests.cs(29,0): at ...".
_DOTNET_FRAME = re.compile(r" in (?P<file>[^\r\n]+?):line (?P<line>\d+)")


def seconds(raw: str | None) -> float:
    """A duration in seconds from `time`/`duration` attributes as tools really write them.

    Accepts "1.5", "2,120.532" (thousands separators), "0,123" (decimal comma), "1.5s";
    "", "NaN", "inf", negatives and garbage give 0.0.
    """
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = _lenient_float(raw)
    if not math.isfinite(value) or value < 0:
        return 0.0
    return value


def _lenient_float(raw: str) -> float:
    text = raw.strip().replace("\u00a0", "").replace(" ", "").replace("_", "")
    if "," in text:
        if "." in text or text.count(",") > 1:
            # "2,120.532" or "1,234,567": commas group thousands.
            text = text.replace(",", "")
        else:
            # "0,123": a decimal comma from a localised formatter.
            text = text.replace(",", ".")
    match = _NUMBER_PREFIX.match(text)
    if match is None:
        return 0.0
    try:
        return float(match.group())
    except ValueError:
        return 0.0


def optional_seconds(raw: str | None) -> float | None:
    """Like `seconds`, but None when the file said nothing usable (for suite durations)."""
    if raw is None or not raw.strip():
        return None
    value = seconds(raw)
    if value == 0.0 and not _looks_like_zero(raw):
        return None
    return value


def _looks_like_zero(raw: str) -> bool:
    return raw.strip().lstrip("+-").replace("0", "").replace(".", "").replace(",", "") in ("", "s")


def timespan(raw: str | None) -> float:
    """A .NET TimeSpan ("00:00:01.2345678", "1.02:03:04.5") in seconds; 0.0 when unusable."""
    if not raw:
        return 0.0
    match = _TIMESPAN.fullmatch(raw.strip())
    if match is None:
        return seconds(raw)
    days, hours, minutes, secs = match.groups()
    return (int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60) + float(secs)


def integer(raw: str | None) -> int | None:
    """A line number or count; None for "", "abc", negatives."""
    if not raw:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def timestamp(raw: str | None) -> datetime | None:
    """An ISO 8601 timestamp ("2024-03-21T13:00:15", "2024-03-21 13:00:15Z"); None otherwise."""
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.strip())
    except ValueError:
        return None


def strip_ansi(text: str) -> str:
    if "\x1b" not in text and "\x7f" not in text:
        return text
    return _ANSI.sub("", text)


def clean(text: str | None, limit: int) -> str | None:
    """Text for the model: cut to `limit` first (a 60 MB log is never scanned whole), then
    ANSI escapes removed. Empty and whitespace-only text reads as absent."""
    if text is None:
        return None
    cut = truncate(text, limit)
    if cut is not text:
        # The byte filter cut this text before the parser saw it (it keeps far more than
        # `limit`), so the model's one marker counts what it left out too.
        filtered = _CUT.search(text, max(0, len(text) - 80))
        if filtered is not None:
            unread = int(filtered.group(1).replace(",", ""))
            dropped = filtered.start() - limit + unread
            cut = text[:limit] + TRUNCATION_MARKER.format(dropped=dropped)
    # isspace() stops at the first visible character; strip() would copy the whole text.
    if not cut or cut.isspace():
        return None
    return strip_ansi(cut)


def first_line(text: str | None, limit: int = 500) -> str | None:
    """A message for a failure that has only a body: its first non-blank line."""
    if not text:
        return None
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[:limit] + "…"
    return None


def dotnet_location(stack_trace: str | None) -> tuple[str | None, int | None]:
    """File and line of the first .NET stack frame that names its source."""
    if not stack_trace:
        return None, None
    match = _DOTNET_FRAME.search(stack_trace)
    if match is None:
        return None, None
    return match.group("file").strip(), int(match.group("line"))


def basename(path: str) -> str:
    """The file name of a Windows or POSIX path (.NET reports hold either)."""
    return path.replace("\\", "/").rpartition("/")[2]
