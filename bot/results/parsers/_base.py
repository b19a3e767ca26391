"""The part every format parser shares: the streaming contract and the bounded-text rules.

A format parser receives lxml (event, element) pairs for the tags it asked for, turns each
finished test element into a `TestCase` at its end event, then clears the element and
deletes the siblings before it, so the tree never holds more than the current case.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, ClassVar, Protocol

from lxml import etree

from bot.results.model import Suite, TestRun

from . import _values

#: Captured output of passed and skipped cases is dropped: a report shows output only for
#: failures, and keeping ~2 KB for each of 100,000 passing cases would hold 200 MB.
KEEP_OUTPUT_FOR_PASSED = False


class ReportError(Exception):
    """A report that could not be read (whole or in part), by file name and why."""

    def __init__(self, source: str, reason: str, partial: TestRun | None = None) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        #: The cases fully read before the problem, when there were any.
        self.partial = partial


class StreamFormat(Protocol):
    """A format read from its bytes rather than from lxml's events: JSON documents, JSON
    lines, TAP. Listed in `parsers.STREAM_FORMATS`; the first whose `detect` accepts a file's
    first bytes reads it. Parsing streams with bounded memory like the XML parsers: one test
    (or one test file's object) at a time, kept text cut to `text_limit`, captured output
    only for failures. A broken file raises `ReportError` with the cases read before the
    break as its `partial`."""

    #: What the format is called in messages and in the docs ("Go test2json").
    name: ClassVar[str]

    @staticmethod
    def detect(first: bytes) -> bool:
        """Whether a file whose first bytes (up to 1 MB, maybe fewer) are `first` is ours."""
        ...

    @staticmethod
    def parse(source: str, stream: BinaryIO, text_limit: int) -> TestRun:
        """Read the whole report; `stream` starts at the file's first byte."""
        ...


class FormatParser:
    """One report format. Subclasses set TAGS/EVENTS and implement `handle`."""

    #: Element names lxml reports to `handle` ("{*}name" matches any namespace).
    TAGS: ClassVar[tuple[str, ...]]
    EVENTS: ClassVar[tuple[str, ...]] = ("end",)

    def __init__(self, source: str, text_limit: int) -> None:
        self.source = source
        self.text_limit = text_limit
        self.suites: list[Suite] = []
        #: The file's own total run time where the format states one (the root element's);
        #: None lets the run count it from its cases.
        self.duration: float | None = None
        self._strings: dict[str, str] = {}
        self._suites_by_name: dict[str, Suite] = {}

    def handle(self, event: str, element: etree._Element) -> None:
        raise NotImplementedError

    def handle_events(self, events: Iterator[tuple[str, etree._Element]]) -> None:
        """Take one batch of parser events (a format may override this as its hot loop)."""
        handle = self.handle
        for event, element in events:
            handle(event, element)

    @property
    def cases_read(self) -> int:
        return sum(len(suite.cases) for suite in self.suites)

    def finish(self) -> None:
        """Called once after the last event, also after a broken file's last good event."""

    def run(self) -> TestRun:
        return TestRun(
            id=self.source, suites=[s for s in self.suites if s.cases], duration=self.duration
        )

    def shared(self, value: str) -> str:
        """One string object for repeated values (class names, suite names, files)."""
        return self._strings.setdefault(value, value)

    def suite_named(self, name: str) -> Suite:
        """The suite of that name, opened at its first case, for formats whose cases are
        grouped by a name (fixture, collection, assembly) rather than by their element."""
        suite = self._suites_by_name.get(name)
        if suite is None:
            suite = self._suites_by_name[name] = Suite(name=self.shared(name), source=self.source)
            self.suites.append(suite)
        return suite

    def text(self, element: etree._Element | None) -> str | None:
        """All text of `element`, cut to the text limit, ANSI escapes removed."""
        if element is None:
            return None
        value = element.text
        if len(element):
            value = self._joined(element)
        return _values.clean(value, self.text_limit)

    def _joined(self, element: etree._Element) -> str:
        """The texts of `element` and its children, joined only as far as the text limit
        needs: a thousand children of 1 MiB each must not become one 1 GB string. What
        is not joined is still counted, for the truncation marker."""
        parts: list[str] = []
        kept = unread = 0
        for piece in element.itertext():
            if kept <= self.text_limit:
                parts.append(piece)
                kept += len(piece)
            else:
                unread += len(piece)
        if unread:
            parts.append(_values.CUT_MARKER.format(dropped=unread))
        return "".join(parts)

    def attribute(self, value: str | None) -> str | None:
        return _values.clean(value, self.text_limit)


def discard(element: etree._Element) -> None:
    """Free a finished element and everything before it at its level."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def local_name(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""
