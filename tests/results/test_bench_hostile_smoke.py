"""The hostile-XML benchmark's generators and child measurements still run and agree (no
timing here)."""

from __future__ import annotations

from pathlib import Path

from bench import hostile_xml as bench


def test_the_wide_file_is_refused_by_both_paths(tmp_path: Path) -> None:
    path = tmp_path / "wide.xml"
    bench.write_attributes(path, 20_000)
    for how in ("seekable", "one-way"):
        figures = bench.measure(how, path)
        assert "more than 10,000 attributes" in str(figures["error"])
        assert float(figures["peak_mb"]) > 0  # type: ignore[arg-type]


def test_the_cdata_file_keeps_both_failures(tmp_path: Path) -> None:
    path = tmp_path / "cdata.xml"
    bench.write_cdata(path, 12)
    assert path.stat().st_size > 12 * 1024 * 1024
    for how in ("seekable", "one-way"):
        figures = bench.measure(how, path)
        assert (figures["cases"], figures["failed"], figures["error"]) == (2, 2, None)


def test_the_baseline_loop_counts_every_case(tmp_path: Path) -> None:
    path = tmp_path / "many.xml"
    bench.write_attributes(path, 100, cases=5)
    assert bench.measure("lxml", path)["cases"] == 6
