"""Properties over generated JUnit documents: the counts come from the cases (whatever the
suite totals claim), and any text a test tool may put in a name survives into the model."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from bot.results.model import Status
from bot.results.parsers import ReportError

from .conftest import FIXTURES, parse_bytes

# What names and messages may hold: anything XML 1.0 can carry, plus the characters that
# break naive renderers (pipes for Markdown tables, backticks, markup, newlines).
text = st.lists(
    st.one_of(
        st.characters(blacklist_categories=("Cs", "Cc", "Cn")),
        st.sampled_from(["|", "`", "<", ">", "&", '"', "'", "\n", "\t", "\r", "<script>", "]]>"]),
    ),
    max_size=20,
).map("".join)
message_text = text.filter(lambda s: s.strip() != "")

OUTCOMES = ["passed", "failure", "error", "skipped", "failure+error", "flaky"]
EXPECTED_STATUS = {
    "passed": Status.PASSED,
    "failure": Status.FAILED,
    "error": Status.ERROR,
    "skipped": Status.SKIPPED,
    "failure+error": Status.ERROR,
    "flaky": Status.PASSED,
}


@dataclass
class GenCase:
    name: str
    classname: str
    outcome: str
    message: str


@dataclass
class GenSuite:
    name: str
    cases: list[GenCase]
    children: list[GenSuite]
    claimed_tests: int


cases = st.lists(st.builds(GenCase, text, text, st.sampled_from(OUTCOMES), message_text),
                 max_size=8)
suites = st.recursive(
    st.builds(GenSuite, text, cases, st.just([]), st.integers(0, 10_000)),
    lambda inner: st.builds(GenSuite, text, cases, st.lists(inner, max_size=3),
                            st.integers(0, 10_000)),
    max_leaves=6,
)
documents = st.tuples(st.lists(suites, min_size=1, max_size=3), st.booleans())


def build(element: etree._Element, suite: GenSuite) -> list[tuple[GenSuite, GenCase]]:
    node = etree.SubElement(element, "testsuite", name=suite.name,
                            tests=str(suite.claimed_tests), failures="0", errors="0")
    found = []
    for case in suite.cases:
        found.append((suite, case))
        testcase = etree.SubElement(node, "testcase", name=case.name, classname=case.classname,
                                    time="0.5")
        if case.outcome in ("failure", "failure+error"):
            etree.SubElement(testcase, "failure", message=case.message, type="AssertionError")
        if case.outcome in ("error", "failure+error"):
            etree.SubElement(testcase, "error", message=case.message, type="RuntimeError")
        if case.outcome == "skipped":
            etree.SubElement(testcase, "skipped", message=case.message)
        if case.outcome == "flaky":
            etree.SubElement(testcase, "flakyFailure", message=case.message)
    for child in suite.children:
        found.extend(build(node, child))
    return found


def serialise(
    generated: tuple[list[GenSuite], bool],
) -> tuple[bytes, list[tuple[GenSuite, GenCase]]]:
    top, single_root = generated
    if single_root and len(top) == 1:
        holder = etree.Element("holder")
        found = build(holder, top[0])
        root = holder[0]
    else:
        root = etree.Element("testsuites", tests="999999")
        found = [pair for suite in top for pair in build(root, suite)]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8"), found


@settings(max_examples=100, deadline=None)
@given(documents)
def test_totals_are_the_cases_counted_by_status(generated: tuple[list[GenSuite], bool]) -> None:
    document, found = serialise(generated)
    totals = parse_bytes(document).totals()
    expected = Counter(EXPECTED_STATUS[case.outcome] for _, case in found)
    assert totals.total == len(found)
    assert (totals.passed, totals.failed, totals.errors, totals.skipped) == (
        expected[Status.PASSED], expected[Status.FAILED], expected[Status.ERROR],
        expected[Status.SKIPPED])
    assert totals.flaky == sum(case.outcome == "flaky" for _, case in found)


@settings(max_examples=100, deadline=None)
@given(documents)
def test_names_and_messages_survive_into_the_model(generated: tuple[list[GenSuite], bool]) -> None:
    document, found = serialise(generated)
    run = parse_bytes(document)
    parsed = Counter((c.suite, c.classname, c.name, c.message) for c in run.cases())
    expected = Counter(
        (suite.name, case.classname, case.name,
         None if case.outcome in ("passed", "flaky") else case.message)
        for suite, case in found
    )
    assert parsed == expected


FIXTURE_BYTES = [path.read_bytes() for path in sorted(FIXTURES.iterdir()) if path.is_file()]


@st.composite
def damaged_reports(draw: st.DrawFn) -> bytes:
    """A real report with random bytes overwritten, inserted or cut off."""
    data = bytearray(draw(st.sampled_from(FIXTURE_BYTES)))
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[position] = draw(st.integers(0, 255))
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.one_of(damaged_reports(), st.binary(max_size=512)))
def test_any_bytes_give_a_run_or_a_report_error(data: bytes) -> None:
    try:
        run = parse_bytes(data, "fuzz.xml")
    except ReportError as exc:
        assert exc.source == "fuzz.xml" and exc.reason
        if exc.partial is not None:
            assert exc.partial.totals().total > 0
    else:
        assert run.totals().total == sum(1 for _ in run.cases())
