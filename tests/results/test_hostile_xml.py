"""Hostile XML (issue 10): files shaped to cost CPU or memory, or to lose a report on one
byte. Each one is read in time linear in its size and memory bounded by the text limit, or
refused by name and reason; a status is never lost to a repair or a cap."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.results.model import TRUNCATION_MARKER, Status, TestCase, TestRun
from bot.results.parsers import Collector, ReportError, _input, parse_stream
from bot.results.parsers._input import TEXT_RUN_LIMIT, cleaned, text_runs_cut

from .conftest import FIXTURES, OneWayStream, parse_bytes

LIMIT = 64 * 1024  # the default text limit
BIG = 20 * 1024 * 1024  # twice libxml2's 10 MB limit on one text node


def streams(data: bytes) -> Iterator[io.BytesIO | OneWayStream]:
    """The same bytes as a seekable file (read raw first, then filtered) and as a one-way
    stream (filtered from the start): both paths must agree."""
    yield io.BytesIO(data)
    yield OneWayStream(data)


def both(data: bytes) -> list[TestRun]:
    return [parse_stream("report.xml", stream) for stream in streams(data)]


def outcomes(run: TestRun) -> list[tuple[str, Status]]:
    return [(case.name, case.status) for case in run.cases()]


def case_named(run: TestRun, name: str) -> TestCase:
    return next(case for case in run.cases() if case.name == name)


# ---- control characters and invalid UTF-8 anywhere -------------------------------------

ESC_IN_CDATA = (b'<testsuite><testcase name="a"><system-out><![CDATA[hello \x1b[31mred\x1b[0m]]>'
                b'</system-out></testcase><testcase name="b"/></testsuite>')


def test_an_escape_inside_cdata_after_other_text_loses_nothing() -> None:
    # libxml2 calls this one "CData section not finished", which named no bad character:
    # the file was refused instead of being read again through the filter.
    for run in both(ESC_IN_CDATA):
        assert outcomes(run) == [("a", Status.PASSED), ("b", Status.PASSED)]


def failing_with_output(output: bytes) -> bytes:
    return (b'<testsuite><testcase name="a"><failure message="m">boom</failure><system-out>'
            + output + b'</system-out></testcase><testcase name="b"/></testsuite>')


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 11, 64])
def test_control_characters_survive_any_chunk_boundary(
    monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    # The filter reads CHUNK_SIZE at a time: a small one puts a boundary at every place in
    # "<![CDATA[", "]]>", the escape sequence and the multi-byte characters.
    monkeypatch.setattr(_input, "CHUNK_SIZE", chunk_size)
    document = failing_with_output(
        b"<![CDATA[hello \x1b[31mred\x1b[0m \xe2\x82\xac]]> and \x1b[1mbold\x1b[0m\x00"
    )
    for run in both(document):
        assert outcomes(run) == [("a", Status.FAILED), ("b", Status.PASSED)]
        assert case_named(run, "a").stdout == "hello red \u20ac and bold"


@pytest.mark.parametrize(
    ("document", "name", "message"),
    [
        (b'<testsuite><testcase name="n\x00u\x01l"><failure message="a\x02b\x1b[0m">x</failure>'
         b"</testcase></testsuite>", "nul", "ab"),
        (b'<testsuite><testcase name="c"><!-- \x00\x1b[31m \x08 --><failure message="m">x'
         b"</failure></testcase></testsuite>", "c", "m"),
        (b'<testsuite><testcase name="c"><?pi \x00\x07 ?><failure message="m">x'
         b"</failure></testcase></testsuite>", "c", "m"),
        (b'<testsuite><testcase name="bad\xff\xfe"><failure message="\xc3(">x</failure>'
         b"</testcase></testsuite>", "bad\ufffd\ufffd", "\ufffd("),
        (b'<testsuite><testcase name="t"><failure message="m"><![CDATA[\xff\xc3 cdata]]>'
         b"</failure></testcase></testsuite>", "t", "m"),
        (b'<testsuite><te\xffstcase name="t"/><testcase name="u"><failure message="m">x'
         b"</failure></testcase></testsuite>", "u", "m"),
    ],
    ids=["c0-in-attributes", "c0-in-comment", "c0-in-pi", "invalid-utf8-in-attributes",
         "invalid-utf8-in-cdata", "invalid-utf8-in-an-element-name"],
)
def test_dirty_bytes_anywhere_are_replaced_and_the_failure_is_read(
    document: bytes, name: str, message: str
) -> None:
    for run in both(document):
        case = case_named(run, name)
        assert (case.status, case.message) == (Status.FAILED, message)


def test_invalid_utf8_in_cdata_becomes_replacement_characters() -> None:
    document = (b'<testsuite><testcase name="t"><failure message="m"><![CDATA[\xff\xc3 cdata]]>'
                b"</failure></testcase></testsuite>")
    for run in both(document):
        assert next(run.cases()).stack_trace == "\ufffd\ufffd cdata"


# ---- attributes: linear in their number ------------------------------------------------


def many_attributes(count: int) -> bytes:
    return b" ".join(b'x%d="1"' % index for index in range(count))


def test_a_testcase_with_200000_attributes_is_refused_and_other_files_still_count() -> None:
    # 2.3 MB that took 383 s of CPU (lxml's items() costs the square of the count) and
    # 87 MB of memory (libxml2 and lxml spend ~400 bytes on each attribute).
    document = (b'<testsuite name="s"><testcase name="first" time="1"/><testcase classname="C" '
                + many_attributes(200_000) + b' name="wide"><failure message="boom"/>'
                b'</testcase><testcase name="next" classname="C" time="0.5"/></testsuite>')
    assert len(document) > 2_000_000
    for stream in streams(document):
        collector = Collector("run")
        collector.add_stream("wide.xml", stream)
        collector.add_stream("good.xml", io.BytesIO(b'<testsuite><testcase name="g"/></testsuite>'))
        run = collector.result()
        [error] = run.errors
        assert error.source == "wide.xml"
        assert re.fullmatch(r"refused: an element with more than 10,000 attributes \(before byte "
                            r"[\d,]+\); kept the 1 test case read before it", error.reason)
        assert [case.name for case in run.cases()] == ["first", "g"]


@pytest.mark.parametrize("chunk_size", [7, 4096, 64 * 1024])
def test_an_element_over_the_attribute_cap_is_refused_wherever_the_chunks_fall(
    chunk_size: int,
) -> None:
    # 10,001 attributes are ~100 KB: they run past the end of a chunk whatever its size.
    def document(attributes: int) -> bytes:
        return (b'<testsuite><testcase name="a"/><testcase ' + many_attributes(attributes - 1)
                + b' name="b"/></testsuite>')

    with pytest.raises(_input.TooManyAttributes, match="more than 10,000 attributes"):
        filtered(document(10_001), chunk_size)
    assert filtered(document(10_000), chunk_size) == document(10_000)


def test_an_element_wholly_inside_one_chunk_is_not_counted() -> None:
    # Its tree is bounded by the chunk; counting every tag would cost more than the parse.
    document = (b'<testsuite><testcase name="a"/><testcase ' + many_attributes(12_000)
                + b' name="b"><failure message="m"/></testcase></testsuite>')
    assert filtered(document, 1024 * 1024) == document


def test_quotes_and_equals_signs_inside_a_value_are_not_counted_as_attributes() -> None:
    pseudo = b" ".join(b'k%d="v"' % index for index in range(20_000))
    document = (b"<testsuite><testcase name='t'><failure message='" + pseudo + b"'>x</failure>"
                b"</testcase></testsuite>")
    for run in both(document):
        case = next(run.cases())
        assert case.status is Status.FAILED and (case.message or "").startswith('k0="v" k1="v"')


def test_a_testcase_with_thousands_of_attributes_is_read_by_name() -> None:
    # Under the cap, lxml's items() would still cost the square of the count: above a few
    # dozen attributes the parser asks for the six it needs, each lookup linear.
    document = (b'<testsuite name="s"><testcase classname="C" ' + many_attributes(9_000)
                + b' name="wide" time="1.5" file="t.py" line="7"><failure message="boom"/>'
                b'</testcase><testcase name="next" classname="C" time="0.5"/></testsuite>')
    for run in both(document):
        wide, after = run.cases()
        assert (wide.name, wide.classname, wide.status, wide.duration, wide.file, wide.line) == (
            "wide", "C", Status.FAILED, 1.5, "t.py", 7)
        assert (after.name, after.status) == ("next", Status.PASSED)


_CASE_TAGS = re.compile(rb"<(testcase|test-case|test|UnitTestResult) ")


@pytest.mark.parametrize(
    "fixture", ["surefire.xml", "nunit3.xml", "nunit2.xml", "xunit2.xml", "dotnet.trx"]
)
def test_thousands_of_extra_attributes_change_nothing_in_any_xml_format(fixture: str) -> None:
    original = (FIXTURES / fixture).read_bytes()
    widened = _CASE_TAGS.sub(lambda m: m.group() + many_attributes(9_000) + b" ", original)
    assert widened.count(b'x8999="1"') >= 2
    expected = [(c.name, c.status, c.duration, c.message) for c in parse_bytes(original).cases()]
    for run in both(widened):
        assert [(c.name, c.status, c.duration, c.message) for c in run.cases()] == expected


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b'<testsuite><testcase name="ok"/><t' + b"x" * 60_000 + b"/></testsuite>",
         "refused: a name, tag or attribute value over libxml2's size limit (line 1, column 34: "
         "Name too long"),
        (b'<testsuite><testcase name="ok"/><testcase name="' + b"x" * (11 * 1024 * 1024)
         + b'"/></testsuite>',
         "refused: a name, tag or attribute value over libxml2's size limit (line 1, column "),
    ],
    ids=["60000-byte-element-name", "11-MB-attribute-value"],
)
def test_names_and_values_past_libxml2s_limits_are_refused_by_name_and_reason(
    document: bytes, reason: str
) -> None:
    for stream in streams(document):
        collector = Collector("run")
        collector.add_stream("hostile.xml", stream)
        collector.add_stream("good.xml", io.BytesIO(b'<testsuite><testcase name="g"/></testsuite>'))
        run = collector.result()
        [error] = run.errors
        assert error.source == "hostile.xml" and error.reason.startswith(reason)
        assert "XML_PARSE_HUGE" not in error.reason
        names = [case.name for case in run.cases()]
        assert names[0] == "ok" and names[-1] == "g"  # the cases before it, and other files


def test_nesting_deeper_than_256_levels_is_refused_on_both_paths() -> None:
    document = b"<testsuites>" + b"<testsuite>" * 300 + b"</testsuite>" * 300 + b"</testsuites>"
    for stream in streams(document):
        with pytest.raises(ReportError, match="elements nested deeper than 256 levels"):
            parse_stream("deep.xml", stream)


# ---- huge texts: memory bounded, statuses kept -----------------------------------------


def big_cdata_file(path: Path, size: int, before: bytes, after: bytes) -> Path:
    """A report with one CDATA section of `size` bytes, written in pieces."""
    line = b"2026-12-03 07:00:00 DEBUG polling the queue once more\n"
    with open(path, "wb") as out:
        out.write(before + b"<![CDATA[")
        for _ in range(size // len(line)):
            out.write(line)
        out.write(b"]]>" + after)
    return path


def test_a_failure_after_a_huge_cdata_section_is_kept(tmp_path: Path) -> None:
    path = big_cdata_file(
        tmp_path / "big.xml", BIG,
        b'<testsuite name="s"><testcase name="loud"><system-out>',
        b'</system-out></testcase><testcase name="after"><failure message="late">t</failure>'
        b"</testcase></testsuite>",
    )
    for stream in (open(path, "rb"), OneWayStream(path.read_bytes())):
        with stream:
            run = parse_stream(str(path), stream)
        assert outcomes(run) == [("loud", Status.PASSED), ("after", Status.FAILED)]
        assert case_named(run, "after").message == "late"


def test_a_failure_in_an_element_after_a_cut_text_is_kept() -> None:
    # The <failure> comes after the cut <system-out> inside the same case.
    document = (b'<testsuite><testcase name="t"><system-out>' + b"o" * BIG + b"</system-out>"
                b'<failure message="after the cut">trace</failure></testcase></testsuite>')
    for run in both(document):
        case = next(run.cases())
        assert (case.status, case.message, case.stack_trace) == (
            Status.FAILED, "after the cut", "trace")
        assert case.stdout == "o" * LIMIT + TRUNCATION_MARKER.format(dropped=BIG - LIMIT)


@pytest.mark.parametrize("wrap", [(b"", b""), (b"<![CDATA[", b"]]>")], ids=["text", "cdata"])
def test_a_cut_text_says_exactly_how_much_was_left_out(wrap: tuple[bytes, bytes]) -> None:
    document = (b'<testsuite><testcase name="t"><failure message="m">' + wrap[0] + b"x" * BIG
                + wrap[1] + b"</failure></testcase></testsuite>")
    for run in both(document):
        trace = next(run.cases()).stack_trace
        assert trace == "x" * LIMIT + TRUNCATION_MARKER.format(dropped=BIG - LIMIT)


def test_text_split_by_comments_and_cdata_is_one_run_and_cut_as_one() -> None:
    # libxml2 joins text around a dropped comment into one node: cutting each part alone
    # would let 10 parts of 1 MiB make a 10 MB node.
    part = b"p" * (3 * 1024 * 1024)
    body = b"<!-- c -->".join([part, b"<![CDATA[" + part + b"]]>", part, part])
    document = (b'<testsuite><testcase name="t"><failure message="m">' + body
                + b"</failure></testcase></testsuite>")
    for run in both(document):
        trace = next(run.cases()).stack_trace
        assert trace == "p" * LIMIT + TRUNCATION_MARKER.format(dropped=4 * len(part) - LIMIT)


def test_a_huge_comment_or_processing_instruction_is_dropped_not_refused() -> None:
    for document in (
        b'<testsuite><testcase name="t"><!--' + b"c" * BIG + b'--><failure message="m"/>'
        b"</testcase></testsuite>",
        b'<testsuite><testcase name="t"><?pi ' + b"c" * BIG + b'?><failure message="m"/>'
        b"</testcase></testsuite>",
    ):
        for run in both(document):
            assert outcomes(run) == [("t", Status.FAILED)]


def test_many_children_with_long_texts_are_not_joined_whole() -> None:
    child = b"<line>" + b"c" * 100_000 + b"</line>"
    document = (b'<testsuite><testcase name="t"><failure message="m">' + child * 50
                + b"</failure></testcase></testsuite>")
    trace = next(parse_bytes(document).cases()).stack_trace
    assert trace == "c" * LIMIT + TRUNCATION_MARKER.format(dropped=50 * 100_000 - LIMIT)


# ---- the filter itself -----------------------------------------------------------------


def filtered(document: bytes, chunk_size: int, limit: int = TEXT_RUN_LIMIT) -> bytes:
    chunks = (document[i : i + chunk_size] for i in range(0, len(document), chunk_size))
    return b"".join(text_runs_cut(cleaned(chunks, "utf-8"), "utf-8", limit))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 128 * 1024])
def test_the_text_cut_changes_no_byte_of_a_report_without_long_texts(chunk_size: int) -> None:
    for path in sorted(FIXTURES.rglob("*.xml")) + sorted(FIXTURES.rglob("*.trx")):
        document = path.read_bytes()
        assert filtered(document, chunk_size) == document, path.name


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 8, 13])
def test_a_cut_never_splits_a_character_or_a_reference(chunk_size: int) -> None:
    text = "é&amp;€&#x263A;" * 40
    document = ('<testsuite><testcase name="t"><failure message="m">' + text
                + "</failure></testcase></testsuite>").encode()
    for limit in range(90, 130):
        cut = filtered(document, chunk_size, limit)
        case = next(parse_bytes(cut).cases())
        assert case.status is Status.FAILED
        kept = (case.stack_trace or "").partition("\n... [truncated by Herald:")[0]
        assert "é&€☺" * 3 in kept and text.replace("&amp;", "&").replace(
            "&#x263A;", "\u263a").startswith(kept)


def test_quoted_angle_brackets_in_attributes_do_not_confuse_the_cut() -> None:
    document = (b'<testsuite><testcase name="a>b" classname=\'c>"d\'><failure message=">">'
                + b"t" * 500 + b"</failure></testcase></testsuite>")
    for chunk_size in (1, 3, 17):
        case = next(parse_bytes(filtered(document, chunk_size, limit=100)).cases())
        assert (case.name, case.classname, case.message) == ("a>b", 'c>"d', ">")
        assert case.stack_trace == "t" * 100 + "\n... [truncated by Herald: 400 more bytes]"
