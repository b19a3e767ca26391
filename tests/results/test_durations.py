"""A run's duration is the file's own total, never the sum over nested suites."""

from __future__ import annotations

import io

import pytest

from bot.results.parsers import Collector, parse_stream


def case(time: str) -> str:
    return f'<testcase classname="C" name="t{time}" time="{time}"/>'


@pytest.mark.parametrize(
    ("document", "seconds"),
    [
        # The root says its total: that is the run's, whatever its suites add up to.
        (f'<testsuites time="5"><testsuite time="3">{case("1")}</testsuite>'
         f'<testsuite time="1">{case("1")}</testsuite></testsuites>', 5.0),
        # No total on the root: its top-level suites' times, once each.
        (f'<testsuites><testsuite time="3">{case("1")}</testsuite>'
         f'<testsuite time="2">{case("1")}</testsuite></testsuites>', 5.0),
        # PHPUnit nests suites in suites, every level with its own time: the outer one is
        # the total, and the inner ones (2 + 4) are already inside it.
        (f'<testsuites><testsuite name="all" time="6">'
         f'<testsuite name="A" time="2">{case("2")}</testsuite>'
         f'<testsuite name="B" time="4">{case("4")}</testsuite></testsuite></testsuites>', 6.0),
        (f'<testsuite name="all" time="6"><testsuite name="A" time="2">{case("2")}</testsuite>'
         f'<testsuite name="B" time="4">{case("4")}</testsuite></testsuite>', 6.0),
        # A top-level suite without a time: the cases tell.
        (f'<testsuites><testsuite time="3">{case("1")}</testsuite>'
         f'<testsuite>{case("0.5")}</testsuite></testsuites>', 1.5),
        (f'<testsuite>{case("0.25")}{case("0.5")}</testsuite>', 0.75),
    ],
    ids=["root-total", "top-level-sum", "phpunit-nested", "nested-root-suite",
         "top-level-untimed", "no-times"],
)
def test_the_run_takes_the_file_s_own_total(document: str, seconds: float) -> None:
    run = parse_stream("junit.xml", io.BytesIO(document.encode()))
    assert run.totals().duration == pytest.approx(seconds)


def test_files_of_one_run_add_their_own_totals() -> None:
    collector = Collector("r")
    collector.add_stream("a.xml", io.BytesIO(
        f'<testsuite name="all" time="6"><testsuite time="6">{case("6")}</testsuite>'
        f'</testsuite>'.encode()))
    collector.add_stream("b.xml", io.BytesIO(f'<testsuite>{case("1.5")}</testsuite>'.encode()))
    assert collector.result().totals().duration == pytest.approx(7.5)
