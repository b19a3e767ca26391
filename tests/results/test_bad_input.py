"""Hostile and broken inputs: each gives a `ReportError` that names the file and says why,
fast and with no side effect (no entity expanded, no file read, no connection made)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.results.parsers import ReportError, looks_like_report, parse_file

from .conftest import OneWayStream, parse_bytes

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuite name="s"><testcase name="t"><failure message="&lol9;">&lol9;</failure></testcase>
</testsuite>
"""

QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE testsuite [<!ENTITY a "' + b"x" * 50_000 + b'">]>'
    b'<testsuite><testcase name="t"><failure>' + b"&a;" * 50_000 + b"</failure></testcase>"
    b"</testsuite>"
)


def external_entity(url: str) -> bytes:
    return (
        f'<?xml version="1.0"?><!DOCTYPE testsuite [<!ENTITY xxe SYSTEM "{url}">]>'
        f'<testsuite name="s"><testcase name="t"><failure message="m">&xxe;</failure>'
        f"</testcase></testsuite>"
    ).encode()


def reason(data: bytes, source: str = "reports/a.xml") -> str:
    with pytest.raises(ReportError) as caught:
        parse_bytes(data, source)
    assert caught.value.source == source
    assert str(caught.value) == f"{source}: {caught.value.reason}"
    return caught.value.reason


@pytest.mark.parametrize("document", [BILLION_LAUGHS, QUADRATIC], ids=["billion-laughs",
                                                                         "quadratic-blowup"])
def test_entity_bombs_are_refused_without_expanding(document: bytes) -> None:
    started = time.perf_counter()
    assert reason(document).startswith("refused: the document declares XML entities")
    assert time.perf_counter() - started < 1.0


def test_external_file_entity_never_reads_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN")
    with pytest.raises(ReportError) as caught:
        parse_bytes(external_entity(secret.as_uri()))
    assert "refused" in caught.value.reason
    assert "TOP-SECRET-TOKEN" not in str(caught.value)
    assert caught.value.partial is None


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every request it gets."""
    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"LEAKED")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/entity", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_external_http_entity_makes_no_request(http_server: tuple[str, list[str]]) -> None:
    url, requests = http_server
    with pytest.raises(ReportError) as caught:
        parse_bytes(external_entity(url))
    assert "refused" in caught.value.reason
    assert requests == []


def test_external_dtd_is_not_fetched(http_server: tuple[str, list[str]]) -> None:
    url, requests = http_server
    document = (
        f'<?xml version="1.0"?><!DOCTYPE testsuite SYSTEM "{url}">'
        '<testsuite name="s"><testcase name="t"/></testsuite>'
    ).encode()
    assert parse_bytes(document).totals().total == 1
    assert requests == []


def test_deep_nesting_is_a_clear_error_not_a_crash() -> None:
    depth = 100_000
    document = b"<testsuites>" + b"<testsuite>" * depth + b"</testsuite>" * depth + b"</testsuites>"
    assert reason(document).startswith("elements nested deeper than 256 levels (line 1,")


def test_nesting_within_the_limit_parses() -> None:
    depth = 200  # PHPUnit data providers nest a few levels; this is far beyond
    document = (b'<testsuite name="s">' * depth + b'<testcase name="t"/>'
                + b"</testsuite>" * depth)
    assert parse_bytes(document).totals().total == 1


TRUNCATED = (
    b'<?xml version="1.0"?>\n<testsuites>\n<testsuite name="s">\n'
    b'<testcase name="one" time="1"/>\n<testcase name="two"><failure message="x">boom</failure>'
    b'</testcase>\n<testcase name="three"><system-out>half'
)


def test_truncated_file_keeps_the_cases_read_and_says_so() -> None:
    with pytest.raises(ReportError) as caught:
        parse_bytes(TRUNCATED, "shard-2/junit.xml")
    assert caught.value.reason.startswith("truncated: the file ends inside an element (line 6,")
    assert caught.value.reason.endswith("kept the 2 test cases read before it")
    assert caught.value.partial is not None
    assert [c.name for c in caught.value.partial.cases()] == ["one", "two"]


@pytest.mark.parametrize(
    "tail",
    [
        b'<testcase name="cut"><system-out>half',  # cut inside its output
        b'<testcase name="cut">',  # cut right after its start tag
        b'<testcase name="cut"><system-out>o</system-out>',  # its <failure> may follow
        b'<testcase name="cut"><failure message="x">boom</failure></testcase',  # end tag cut
    ],
)
def test_a_case_the_file_ends_inside_is_never_counted(tail: bytes) -> None:
    # The parser closes what a truncated file left open (libxml2 2.14 does so with end
    # events): taking them as the file's own would report the cut case as passed.
    document = b'<testsuite name="s"><testcase name="whole"/>' + tail
    with pytest.raises(ReportError) as caught:
        parse_bytes(document)
    assert caught.value.partial is not None
    assert [c.name for c in caught.value.partial.cases()] == ["whole"]
    assert caught.value.reason.endswith("kept the 1 test case read before it")


def test_corrupt_middle_keeps_the_cases_before_it() -> None:
    document = (b'<testsuite name="s"><testcase name="one"/>\n<testcase name="two"/>\n'
                b"<testcase name=three/></testsuite>")
    with pytest.raises(ReportError) as caught:
        parse_bytes(document)
    assert caught.value.reason.startswith("invalid XML (line 3, column ")
    assert caught.value.partial is not None
    assert caught.value.partial.totals().total == 2


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "empty file"),
        (b"  \n\t\n", "empty file"),
        (b"PASS src/app.test.js\nTests: 3 passed\n",
         "not a test report: starts with 'PASS src/app.tes'"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a test report: binary data (starts with "
                                                   "b'\\x89PNG\\r\\n\\x1a\\n\\x00\\x00\\x00\\rIHDR')"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "not a test report: binary data (starts with "
                                                  "b'PK\\x03\\x04\\x14\\x00\\x00\\x00\\x08\\x00')"),
        (b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>",
         "not a test report: root element <html>"),
        (b'<?xml version="1.0"?><project><modelVersion>4.0.0</modelVersion></project>',
         "not a test report: root element <project>"),
        (b"<testsuite><testcase name='a'>", "truncated: the file ends inside an element"),
        (b"<testsuite name='x' <testcase/>", "not XML (line 1, column "),
        (b'<?xml version="1.0" encoding="UTF-16"?><testsuite/>',
         "wrong encoding: declared 'utf-16', but the bytes are 8-bit text"),
        (b'<?xml version="1.0" encoding="klingon-8"?><testsuite/>',
         "wrong or unsupported encoding (line 1, column "),
    ],
    ids=["empty", "whitespace", "log", "png", "zip", "html", "pom", "cut-short", "malformed",
         "utf16-declared-8bit", "unknown-encoding"],
)
def test_unusable_files_say_why(data: bytes, expected: str) -> None:
    assert reason(data).startswith(expected)


def test_binary_garbage_is_not_xml() -> None:
    garbage = bytes(range(256)) * 64
    assert reason(garbage).startswith("not a test report: binary data")


def test_garbage_after_a_valid_start_is_reported_with_its_position() -> None:
    document = b'<testsuite name="s"><testcase name="ok"/>' + bytes(range(128, 256)) * 8
    found = reason(document)
    assert found.startswith(("invalid XML (line 1", "truncated"))
    assert "kept the 1 test case read before it" in found


def test_a_missing_file_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as caught:
        parse_file(tmp_path / "nope.xml")
    assert caught.value.reason == "cannot open: No such file or directory"


def test_a_one_way_stream_with_a_broken_document_still_errors_cleanly() -> None:
    from bot.results.parsers import parse_stream

    with pytest.raises(ReportError) as caught:
        parse_stream("pipe", OneWayStream(TRUNCATED))
    assert caught.value.partial is not None and caught.value.partial.totals().total == 2


@pytest.mark.parametrize(
    ("first_bytes", "expected"),
    [
        (b'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>', True),
        (b"<testsuite name='x'>", True),
        (b'\xef\xbb\xbf<?xml version="1.0"?><test-run id="2">', True),
        (b'<?xml version="1.0"?><assemblies timestamp="x">', True),
        (b'<TestRun id="1" xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010">', True),
        ("<?xml version='1.0' encoding='utf-16'?><testsuites>".encode("utf-16"), True),
        (b'<?xml version="1.0"?>\n<!-- a long licence header that goes on', True),  # can't tell
        (b"<testsu", True),  # the root name may go on
        (b'<?xml version="1.0"?><project xmlns="http://maven.apache.org/POM/4.0.0">', False),
        (b'<?xml version="1.0"?><failsafe-summary result="255">', False),
        (b"<html><head><title>Report</title>", False),
        (b"2026-11-25 09:00:01 INFO starting", False),
        (b"\x89PNG\r\n\x1a\n", False),
        (b"", False),
    ],
)
def test_looks_like_report_from_the_first_bytes(first_bytes: bytes, expected: bool) -> None:
    assert looks_like_report(first_bytes) is expected


def test_an_undeclared_entity_is_named_not_mistaken_for_truncation() -> None:
    document = b'<testsuite><testcase name="t"><failure>a&nbsp;b</failure></testcase></testsuite>'
    assert reason(document) == "not XML (line 1, column 47: Entity 'nbsp' not defined)"


def test_leading_whitespace_longer_than_one_read_is_not_an_empty_file() -> None:
    document = b" " * (200 * 1024) + b'<testsuite><testcase name="t"/></testsuite>'
    assert parse_bytes(document).totals().total == 1


def test_a_log_starting_with_a_tab_is_text_not_binary() -> None:
    assert reason(b"\tat com.acme.Foo.bar(Foo.java:12)\n") == (
        "not a test report: starts with 'at com.acme.Foo.'")
