"""A case-dense JUnit file (bench.parse_dense's shape) loses, merges and reclassifies nothing."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from bench import parse_dense
from bot.results.model import Status
from bot.results.parsers import parse_file


def test_totals_equal_the_testcase_elements_and_every_failure_keeps_its_message(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dense.xml"
    written = parse_dense.generate_dense(path, 3_000)
    tree = etree.parse(str(path))
    elements = tree.findall(".//testcase")
    failing = [e for e in elements if e.find("failure") is not None]
    skipped = [e for e in elements if e.find("skipped") is not None]

    run = parse_file(path)
    totals = run.totals()

    assert totals.total == len(elements) == written["total"]
    assert totals.failed == len(failing) == written["failed"] > 0
    assert totals.skipped == len(skipped) == written["skipped"] > 0
    assert totals.passed == len(elements) - len(failing) - len(skipped)
    kept = {(c.name, c.message) for c in run.cases() if c.status is Status.FAILED}
    assert kept == {(e.get("name"), e.find("failure").get("message")) for e in failing}
    assert all(
        c.stack_trace and c.stack_trace.startswith("Traceback")
        for c in run.cases()
        if c.status is Status.FAILED
    )


def test_the_bare_loop_counts_every_case(tmp_path: Path) -> None:
    path = tmp_path / "dense.xml"
    parse_dense.generate_dense(path, 500)
    assert parse_dense.measure_bare(path) == parse_dense.measure_herald(path) == 500
