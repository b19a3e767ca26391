"""<testcase> attributes in every order and combination writers use.

The JUnit hot loop reads the common three-attribute layouts by unpacking and builds cases
slot by slot; these cases pin that every layout yields the same, complete TestCase the
dataclass constructor would."""

from __future__ import annotations

import dataclasses

import pytest

from bot.results.model import Status, TestCase

from .conftest import parse_bytes

SOURCE = "report.xml"


def case(**fields: object) -> TestCase:
    return TestCase(**{"suite": "S", "source": SOURCE, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        # Surefire, Gradle
        ('name="t" classname="a.B" time="1.5"', case(name="t", classname="a.B", duration=1.5)),
        # pytest, jest-junit
        ('classname="a.B" name="t" time="0.25"', case(name="t", classname="a.B", duration=0.25)),
        # three attributes, but not the usual three
        ('name="t" classname="a.B" file="b.py"', case(name="t", classname="a.B", file="b.py")),
        ('name="t" time="2" classname="a.B"', case(name="t", classname="a.B", duration=2.0)),
        ('time="2" name="t" classname="a.B"', case(name="t", classname="a.B", duration=2.0)),
        ('name="t" classname="a.B" status="skipped"',
         case(name="t", classname="a.B", status=Status.SKIPPED)),
        # pytest with file and line
        ('classname="tests.test_b" name="t" file="tests/test_b.py" line="7" time="0.1"',
         case(name="t", classname="tests.test_b", file="tests/test_b.py", line=7, duration=0.1)),
        # PHPUnit writes class and classname; classname wins
        ('name="t" class="A\\B" classname="A.B" file="/s/BTest.php" line="3" time="0.5"',
         case(name="t", classname="A.B", file="/s/BTest.php", line=3, duration=0.5)),
        ('name="t" class="A\\B" time="0.5"', case(name="t", classname="A\\B", duration=0.5)),
        # fewer attributes than usual
        ('name="t"', case(name="t")),
        ('name="t" time="NaN"', case(name="t")),
        ("", case(name="")),
        # a bad time in the usual layout
        ('name="t" classname="a.B" time="2,120.5"',
         case(name="t", classname="a.B", duration=2120.5)),
        ('name="t" classname="a.B" time="-1"', case(name="t", classname="a.B")),
    ],
)
def test_every_attribute_layout_reads_the_same_case(attributes: str, expected: TestCase) -> None:
    document = f'<testsuite name="S"><testcase {attributes}/></testsuite>'.encode()
    (only,) = parse_bytes(document, SOURCE).cases()
    assert only == expected
    # Every slot is set (a slot never assigned would raise AttributeError here).
    assert dataclasses.asdict(only) == dataclasses.asdict(expected)


def test_cases_share_their_class_name_and_keep_their_own_attempts() -> None:
    document = b"""<testsuite name="S">
        <testcase name="a" classname="x.Y" time="1"/>
        <testcase name="b" classname="x.Y" time="1"/>
        <testcase name="c" classname="x.Z" time="1"/>
        <testcase name="d" classname="x.Y" time="1"/>
    </testsuite>"""
    a, b, c, d = parse_bytes(document).cases()
    assert a.classname is b.classname is d.classname
    assert c.classname == "x.Z"
    assert len({id(x.attempts) for x in (a, b, c, d)}) == 4


CASES = "".join(f'<testcase name="t{i}" classname="a.B" time="0.1"/>' for i in range(300))


@pytest.mark.parametrize(
    ("suite_body", "expected"),
    [
        # Surefire: before the cases
        ('<properties><property name="java.version" value="21"/></properties>' + CASES,
         {"java.version": "21"}),
        # some writers: after the cases (here more cases than one purge batch)
        (CASES + '<properties><property name="go.version" value="go1.22"/></properties>',
         {"go.version": "go1.22"}),
        # the value as the element's text; other elements inside <properties> ignored
        ('<properties><property name="a">text value</property><comment name="x" value="y"/>'
         '<property value="no name"/></properties>' + CASES,
         {"a": "text value"}),
        ('<properties><property name="long" value="' + "v" * 5000 + '"/></properties>' + CASES,
         {"long": "v" * 2048}),
        (CASES, {}),
    ],
)
def test_suite_properties_are_read_wherever_the_writer_puts_them(
    suite_body: str, expected: dict[str, str]
) -> None:
    document = f'<testsuites><testsuite name="S">{suite_body}</testsuite></testsuites>'.encode()
    run = parse_bytes(document)
    assert run.suites[0].properties == expected
    assert len(run.suites[0].cases) == 300
