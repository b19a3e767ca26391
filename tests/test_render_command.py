"""`herald render`: files, directories and globs in; report files, a summary and an exit
status out (0 nothing failed, 1 tests failed, 2 unusable input)."""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import pytest

from bot.cli import main
from bot.commands.render import Progress, metric
from bot.results.model import Metric

PASSING = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="cart" tests="2" failures="0" errors="0" time="1.0">
    <testcase classname="tests.test_cart" name="test_add" time="0.4"/>
    <testcase classname="tests.test_cart" name="test_remove" time="0.6"/>
  </testsuite>
</testsuites>
"""

FAILING = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="checkout" tests="3" failures="1" errors="0" skipped="1" time="125.7">
  <testcase classname="tests.test_checkout" name="test_total" time="1.25">
    <failure message="assert 100 == 107" type="AssertionError">
tests/test_checkout.py:42: AssertionError</failure>
  </testcase>
  <testcase classname="tests.test_checkout" name="test_refund" time="0.75"/>
  <testcase classname="tests.test_checkout" name="test_slow" time="0">
    <skipped message="slow"/>
  </testcase>
</testsuite>
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every command runs in its own directory, where the default --out lands."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_passing_reports_exit_0_and_write_three_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "junit.xml", PASSING)
    assert main(["render", "junit.xml", "--run-id", "build-7"]) == 0
    out, err = capsys.readouterr()
    assert out == "herald: 2 tests, 0 failed in 1.00s (1 file)\n"
    assert err == ""
    written = sorted(p.name for p in (tmp_path / "herald-report").iterdir())
    assert written == ["report.html", "report.json", "report.md"]
    markdown = (tmp_path / "herald-report" / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Test Report: build-7\n\nStatus: PASSED")
    document = json.loads((tmp_path / "herald-report" / "report.json").read_text("utf-8"))
    assert document["test_run_id"] == "build-7"
    assert document["summary"]["passed"] == 2


def test_failed_tests_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "results" / "checkout.xml", FAILING)
    assert main(["render", "results/checkout.xml", "--out", "out", "--format", "md"]) == 1
    out, _ = capsys.readouterr()
    assert out == "herald: 3 tests, 1 failed, 1 skipped in 2m 5.70s (1 file)\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.md"]
    markdown = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Status: FAILED — 1 failed of 3 tests\n" in markdown
    assert "- **tests.test\\_checkout.test\\_total** — failed: AssertionError (1.25s)\n\n" \
        "  ```\n  assert 100 == 107\n  ```\n" in markdown


@pytest.mark.parametrize(
    ("paths", "reason"),
    [
        (["missing.xml"], "missing.xml: no such file or directory"),
        (["nowhere/**/*.xml"], "nowhere/**/*.xml: no files match"),
        (["empty-dir"], "empty-dir: no report files in directory"),
        (["notes.xml"], "notes.xml: not a test report"),
    ],
)
def test_unusable_input_exits_2_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], paths: list[str], reason: str
) -> None:
    (tmp_path / "empty-dir").mkdir()
    write(tmp_path / "notes.xml", "these are notes, not a report\n")
    assert main(["render", *paths]) == 2
    out, _ = capsys.readouterr()
    assert out.startswith("herald: 0 tests, 0 failed in 0.00s (")
    assert f"1 unusable: {reason}" in out
    # The reports are still written, with the reason in them.
    markdown = (tmp_path / "herald-report" / "report.md").read_text(encoding="utf-8")
    assert "1 file could not be read: " in markdown


def test_one_bad_file_among_good_ones_still_counts_the_good_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run with an unreadable report is never a plain success: what the bad file held
    # may have been the failure.
    write(tmp_path / "reports" / "good.xml", PASSING)
    write(tmp_path / "reports" / "bad.xml", "<testsuite><testcase name='cut")
    assert main(["render", "reports/good.xml", "reports/bad.xml", "--format", "md"]) == 2
    out, _ = capsys.readouterr()
    assert out.startswith("herald: 2 tests, 0 failed in 1.00s (2 files, 1 unusable: "
                          "reports/bad.xml: ")
    markdown = (tmp_path / "herald-report" / "report.md").read_text(encoding="utf-8")
    assert "Status: INCOMPLETE — All 2 tests passed" in markdown
    assert "1 file could not be read: reports/bad.xml (truncated" in markdown


def test_json_alone_goes_to_stdout_and_nothing_else_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "checkout.xml", FAILING)
    assert main(["render", "checkout.xml", "--format", "json", "--run-id", "r1"]) == 1
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["test_run_id"] == "r1" and document["status"] == "failed"
    assert err == "herald: 3 tests, 1 failed, 1 skipped in 2m 5.70s (1 file)\n"
    assert not (tmp_path / "herald-report").exists()


def test_json_with_out_goes_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "junit.xml", PASSING)
    assert main(["render", "junit.xml", "--format", "json", "--out", "json-out"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("herald: 2 tests")
    assert json.loads((tmp_path / "json-out" / "report.json").read_text("utf-8"))


def test_failures_outrank_unusable_inputs_in_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "failing.xml", FAILING)
    write(tmp_path / "bad.xml", "<testsuite><testcase name='cut")
    assert main(["render", "failing.xml", "bad.xml", "--format", "md"]) == 1


def test_directories_and_globs_find_reports_and_name_other_xml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "build" / "a" / "TEST-cart.xml", PASSING)
    write(tmp_path / "build" / "b" / "TEST-checkout.xml", FAILING)
    write(tmp_path / "build" / "pom.xml", "<project><modelVersion>4.0.0</modelVersion></project>")
    write(tmp_path / "build" / "notes.txt", "not a report")
    assert main(["render", "build", "--format", "json", "--out", "dir"]) == 1
    by_dir, _ = capsys.readouterr()
    # notes.txt is no input by its ending; pom.xml is, and is named as not a report.
    assert by_dir == ("herald: 5 tests, 1 failed, 1 skipped in 2m 6.70s (3 files, 1 unusable: "
                      "build/pom.xml: not a test report: root element <project>)\n")
    assert main(["render", "build/**/*.xml", "build/a", "--format", "json", "--out", "glob"]) == 1
    by_glob, _ = capsys.readouterr()
    assert by_glob == by_dir  # the file both name is read once, not merged as a retry


def test_metrics_reach_the_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "junit.xml", PASSING)
    assert main(["render", "junit.xml", "--format", "md", "--metric", "p95=12.5ms",
                 "--metric", "build=fast"]) == 0
    markdown = (tmp_path / "herald-report" / "report.md").read_text(encoding="utf-8")
    assert "| p95 | 12.5 | ms |" in markdown
    assert "| build | fast |  |" in markdown


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("p95=12.5ms", Metric("p95", 12.5, "ms")),
        ("rps=1200", Metric("rps", 1200.0, "")),
        ("memory=-3.5e2 MB", Metric("memory", -350.0, "MB")),
        ("latency p99 = 0.25 s", Metric("latency p99", 0.25, "s")),
        ("build=fast", Metric("build", "fast", "")),
        ("ratio=.5", Metric("ratio", 0.5, "")),
        ("build=1m30s", Metric("build", "1m30s", "")),
        ("version=12.5.3", Metric("version", "12.5.3", "")),
    ],
)
def test_metric_argument(text: str, parsed: Metric) -> None:
    assert metric(text) == parsed


@pytest.mark.parametrize("text", ["p95", "=12ms", "p95="])
def test_a_malformed_metric_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        metric(text)


@pytest.mark.parametrize("argv", [["--format", "pdf"], ["--format", ","], ["--metric", "x"]])
def test_bad_arguments_exit_2(tmp_path: Path, argv: list[str]) -> None:
    write(tmp_path / "junit.xml", PASSING)
    with pytest.raises(SystemExit) as exit_info:
        main(["render", "junit.xml", *argv])
    assert exit_info.value.code == 2


def test_the_default_run_id_is_the_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "junit.xml", PASSING)
    main(["render", "junit.xml", "--format", "json"])
    run_id = json.loads(capsys.readouterr().out)["test_run_id"]
    assert run_id.startswith("local-20") and run_id.endswith("Z")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_only_on_a_terminal_and_for_large_input() -> None:
    terminal = Terminal()
    progress = Progress(4 * 1024 * 1024, terminal, threshold=1024)
    progress.advance(2 * 1024 * 1024)
    assert terminal.getvalue() == "\rherald: reading [###############...............] 2.0/4.0 MB"
    progress.advance(2 * 1024 * 1024)
    assert terminal.getvalue().endswith("[##############################] 4.0/4.0 MB")
    progress.close()
    assert terminal.getvalue().endswith("\r")

    for stream, total in ((io.StringIO(), 4 * 1024 * 1024), (Terminal(), 100)):
        quiet = Progress(total, stream, threshold=1024 * 1024)
        quiet.advance(total)
        quiet.close()
        assert stream.getvalue() == ""


def test_progress_counts_every_byte_of_the_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Driven through the command: a terminal stderr and a threshold of one byte."""
    write(tmp_path / "a.xml", PASSING)
    write(tmp_path / "b.xml", FAILING)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr("bot.commands.render.PROGRESS_THRESHOLD", 1)
    assert main(["render", "a.xml", "b.xml", "--format", "md"]) == 1
    drawn = terminal.getvalue()
    assert "[##############################]" in drawn
    assert drawn.endswith("\r")


def test_file_names_that_are_not_utf8_show_as_question_marks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Such names reach Python as lone surrogates, which writing a report used to choke on.
    name = os.fsdecode(b"broken-\xff.xml")
    write(tmp_path / name, "no XML here")
    write(tmp_path / os.fsdecode(b"junit-\xfe.xml"), FAILING)
    assert main(["render", name, os.fsdecode(b"junit-\xfe.xml"), "--out", "out"]) == 1
    out, _ = capsys.readouterr()
    assert "1 unusable: broken-?.xml: not a test report" in out
    for report in ("report.md", "report.html", "report.json"):
        assert "broken-?.xml" in (tmp_path / "out" / report).read_text(encoding="utf-8")
    document = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert document["errors"][0]["source"] == "broken-?.xml"
    assert {suite["source"] for suite in document["suites"]} == {"junit-?.xml"}
    assert {test["source"] for test in document["tests"] if "source" in test} == {"junit-?.xml"}


def test_a_downloaded_artifact_renders_with_the_worker_s_archive_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip
    import zipfile

    with zipfile.ZipFile(tmp_path / "test-results.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("reports/failing.xml", FAILING)
        archive.writestr("reports/huge.xml", PASSING + " " * 300_000)
    (tmp_path / "junit.xml.gz").write_bytes(gzip.compress(PASSING.encode()))
    assert main(["render", "test-results.zip", "junit.xml.gz", "--format", "md"]) == 1
    out, _ = capsys.readouterr()
    assert out.startswith("herald: 7 tests, 1 failed, 1 skipped")
    # The same limit the worker reads refuses the member that inflates past it, by name.
    monkeypatch.setenv("HERALD_ARTIFACT_MAX_TOTAL_BYTES", "100000")
    assert main(["render", "test-results.zip", "--format", "md"]) == 1
    out, _ = capsys.readouterr()
    assert ("test-results.zip/reports/huge.xml: refused: over the budget of 100,000 inflated "
            "bytes") in out


def test_file_names_holding_terminal_escapes_print_escaped_and_still_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Printed raw, the first would retitle the user's terminal and the second recolour it.
    retitle = write(tmp_path / "title-\x1b]0;pwned\x07-\x1b[31m.xml", "no XML here")
    recolour = write(tmp_path / "red-\x1b[31m-\u202egpj.xml", FAILING)
    assert main(["render", retitle.name, recolour.name, "--out", "out"]) == 1
    out, err = capsys.readouterr()
    assert out == ("herald: 3 tests, 1 failed, 1 skipped in 2m 5.70s (2 files, 1 unusable: "
                   "title-\\x1b]0;pwned\\x07-\\x1b[31m.xml: not a test report: "
                   "starts with 'no XML here')\n")
    assert "\x1b" not in out + err and "\x07" not in out + err
    # The reports still name the file (escaped for their own format, not for a terminal).
    document = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert document["errors"][0]["source"] == retitle.name
    assert {suite["source"] for suite in document["suites"]} == {recolour.name}


def test_a_report_that_cannot_be_written_is_named_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "junit.xml", PASSING)
    blocker = write(tmp_path / "out-\x1b[2J", "a file where the directory should be")
    assert main(["render", "junit.xml", "--out", str(blocker / "sub")]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("herald: cannot write the reports to ")
    assert "out-\\x1b[2J/sub" in err and "\x1b" not in err
