"""The CTRF benchmark's generator and both measurements still run and agree (no timing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import parse_ctrf as bench


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "ctrf-300.json"
    bench.generate(path, 300)
    return path


@pytest.mark.parametrize("parser", list(bench.PARSERS))
def test_every_parser_counts_every_test(small_file: Path, parser: str) -> None:
    assert bench.PARSERS[parser](small_file) == 300


def test_herald_sees_the_generated_failures_and_skips(small_file: Path) -> None:
    from bot.results.parsers import parse_file

    totals = parse_file(small_file).totals()
    assert totals.total == 300 and totals.failed > 0 and totals.skipped > 0


def test_a_measurement_runs_in_a_child_process(small_file: Path) -> None:
    measured = bench.measure("Herald", small_file)
    assert measured["tests"] == 300 and measured["seconds"] > 0 and measured["peak_rss_mb"] > 0
