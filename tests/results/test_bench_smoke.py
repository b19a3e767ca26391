"""The parse benchmark's generator and measurements still run and agree (no timing here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import parse as bench


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "junit-200.xml"
    bench.generate(path, 200)
    return path


def test_generator_writes_about_two_kilobytes_per_case(small_file: Path) -> None:
    assert 1500 * 200 < small_file.stat().st_size < 3000 * 200


@pytest.mark.parametrize("parser", list(bench.PARSERS))
def test_every_parser_counts_every_case(small_file: Path, parser: str) -> None:
    assert bench.PARSERS[parser](small_file) == 200


def test_herald_sees_the_generated_failures_and_skips(small_file: Path) -> None:
    from bot.results.parsers import parse_file

    totals = parse_file(small_file).totals()
    assert totals.failed > 0 and totals.skipped > 0
    assert totals.total == 200


def test_a_measurement_runs_in_a_child_process(small_file: Path) -> None:
    measured = bench.measure("Herald", small_file)
    assert measured.cases == 200 and measured.peak_rss_mb > 0 and measured.seconds > 0
    assert "| Herald | 200 |" in bench.table([
        measured,
        bench.Measurement("bare lxml iterparse", 200, 0.01, 30.0, measured.file_mb),
        bench.Measurement("junitparser", 200, 0.1, 60.0, measured.file_mb),
    ])


def test_rounds_measure_every_parser_and_keep_the_order(small_file: Path) -> None:
    results = bench.best_of(small_file, 1)
    assert [m.parser for m in results] == list(bench.PARSERS)
    assert {m.cases for m in results} == {200}
