"""Many inputs into one run: every execution stays its own record, whatever the order of the
inputs; bad inputs are named with their reason and the rest still count."""

from __future__ import annotations

import io
import itertools
import shutil
import zipfile
from pathlib import Path

from bot.results.model import Origin, ParseError, RunStatus, TestRun
from bot.results.parsers import Collector, collect, looks_like_report

from .conftest import FIXTURES


def shard(*cases: str) -> bytes:
    """A JUnit shard; each case is "name" (passes) or "name:fail"."""
    body = []
    for spec in cases:
        name, _, outcome = spec.partition(":")
        inner = '<failure message="boom">trace</failure>' if outcome == "fail" else ""
        body.append(f'<testcase classname="app.Test" name="{name}" time="1">{inner}</testcase>')
    return f'<testsuite name="app">{"".join(body)}</testsuite>'.encode()


def test_the_same_test_in_two_shards_is_two_executions_and_neither_hides_the_failure() -> None:
    # What folding used to hide: `b` failed in one shard and passed in the other, and was
    # reported as one flaky pass. Shards are not retries; nothing says `b` was rerun.
    collector = Collector("run-7")
    collector.add_stream("shard-1/junit.xml", io.BytesIO(shard("a", "b:fail")))
    collector.add_stream("shard-2/junit.xml", io.BytesIO(shard("b", "c")))
    run = collector.result()
    assert run.id == "run-7"
    totals = run.totals()
    assert (totals.total, totals.tests, totals.passed, totals.failed, totals.flaky) == (
        4, 3, 3, 1, 0)
    assert run.overall_status() is RunStatus.FAILED
    failed = run.failures()
    assert [(c.name, c.source, c.message) for c in failed] == [
        ("b", "shard-1/junit.xml", "boom")]


def test_same_named_executions_in_one_file_are_each_counted() -> None:
    # A data-provider test writes one <testcase> per iteration, all with one name; four
    # nameless cases are four cases.
    run = collect_bytes(shard("row", "row:fail", "row"), shard("", "", "", ""))
    totals = run.totals()
    assert (totals.total, totals.tests, totals.failed, totals.flaky) == (7, 2, 1, 0)
    assert run.overall_status() is RunStatus.FAILED


def collect_bytes(*files: bytes) -> TestRun:
    collector = Collector("r")
    for index, data in enumerate(files):
        collector.add_stream(f"{index}.xml", io.BytesIO(data))
    return collector.result()


def test_a_matrix_leg_that_fails_is_reported_whatever_the_order_of_the_files() -> None:
    legs = {
        "test (3.11)": shard("test_ok", "test_timeout:fail"),
        "test (3.12)": shard("test_ok", "test_timeout"),
        "test (3.13)": shard("test_ok", "test_timeout"),
    }
    seen = set()
    for order in itertools.permutations(legs):
        collector = Collector("r")
        for leg in order:
            collector.add_stream("junit.xml", io.BytesIO(legs[leg]), origin=Origin(leg))
        run = collector.result()
        totals = run.totals()
        seen.add((totals.total, totals.tests, totals.failed, totals.flaky))
        failed = run.failures()
        assert [(c.name, c.origin) for c in failed] == [("test_timeout", Origin("test (3.11)"))]
        assert run.overall_status() is RunStatus.FAILED
    assert seen == {(6, 2, 1, 0)}


def test_only_a_producer_marked_rerun_is_flaky() -> None:
    rerun = (b'<testsuite name="s"><testcase classname="C" name="t" time="1">'
             b'<flakyFailure message="first try" type="E"><stackTrace>at C.t</stackTrace>'
             b'</flakyFailure></testcase></testsuite>')
    run = collect_bytes(rerun, shard("t"))
    totals = run.totals()
    assert (totals.total, totals.failed, totals.flaky) == (2, 0, 1)
    flaky = next(c for c in run.cases() if c.flaky)
    assert [a.message for a in flaky.attempts] == ["first try"]


def test_a_bad_input_is_recorded_and_the_others_still_count() -> None:
    collector = Collector("r")
    collector.add_stream("good.xml", io.BytesIO(shard("a", "b")))
    collector.add_stream("empty.xml", io.BytesIO(b""))
    collector.add_stream("page.xml", io.BytesIO(b"<html><body>oops</body></html>"))
    run = collector.result()
    assert run.totals().total == 2
    assert collector.errors == [
        ParseError("empty.xml", "empty file"),
        ParseError("page.xml", "not a test report: root element <html>"),
    ]
    assert run.errors == collector.errors
    assert run.overall_status() is RunStatus.PASSED


def test_a_truncated_shard_keeps_its_complete_cases_and_records_the_error() -> None:
    collector = Collector("r")
    cut = shard("a", "b", "c")[:-40]
    collector.add_stream("cut.xml", io.BytesIO(cut))
    run = collector.result()
    assert [c.name for c in run.cases()] == ["a", "b"]
    assert len(run.errors) == 1
    assert run.errors[0].source == "cut.xml"
    assert run.errors[0].reason.startswith("truncated:")


def test_only_bad_inputs_make_an_error_run() -> None:
    collector = Collector("r")
    collector.add_stream("x.xml", io.BytesIO(b"not xml"))
    assert collector.result().overall_status() is RunStatus.ERROR


def test_artifact_zip_members_stream_in_and_non_reports_are_skipped_by_their_bytes() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("surefire-reports/TEST-a.xml", shard("a"))
        zf.writestr("surefire-reports/TEST-b.xml", shard("b:fail"))
        zf.writestr("surefire-reports/a.txt", "Tests run: 1, Failures: 0")
        zf.writestr("screenshots/fail.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
        zf.writestr("surefire-reports/failsafe-summary.xml",
                    '<?xml version="1.0"?><failsafe-summary result="255"/>')
    collector = Collector("r")
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            with zf.open(info) as member:
                if not looks_like_report(member.read(4096)):
                    continue
            with zf.open(info) as member:
                collector.add_stream(info.filename, member)
    run = collector.result()
    assert (run.totals().total, run.totals().failed, run.errors) == (2, 1, [])


def copy_fixtures(root: Path) -> None:
    (root / "java" / "target" / "surefire-reports").mkdir(parents=True)
    (root / "dotnet").mkdir()
    shutil.copy(FIXTURES / "surefire.xml", root / "java/target/surefire-reports/TEST-a.xml")
    shutil.copy(FIXTURES / "gradle.xml", root / "java/target/surefire-reports/TEST-b.xml")
    (root / "java/target/surefire-reports/failsafe-summary.xml").write_text(
        '<?xml version="1.0"?><failsafe-summary result="0"/>')
    (root / "java/pom.xml").write_text("<project/>")
    (root / "java/target/build.log").write_text("BUILD FAILURE")
    shutil.copy(FIXTURES / "dotnet.trx", root / "dotnet" / "results.trx")


def test_directories_are_searched_recursively_and_every_non_report_is_named(
    tmp_path: Path,
) -> None:
    copy_fixtures(tmp_path)
    run = collect([str(tmp_path)], "r")
    assert run.totals().total == 5 + 3 + 4
    # Nothing is dropped without a word: the XML files that are not test reports are named
    # with the reason. build.log is not a report file by its ending, so it is no input.
    assert run.errors == [
        ParseError(str(tmp_path / "java/pom.xml"), "not a test report: root element <project>"),
        ParseError(str(tmp_path / "java/target/surefire-reports/failsafe-summary.xml"),
                   "not a test report: root element <failsafe-summary>"),
    ]
    assert {c.source for c in run.cases()} == {
        str(tmp_path / "java/target/surefire-reports/TEST-a.xml"),
        str(tmp_path / "java/target/surefire-reports/TEST-b.xml"),
        str(tmp_path / "dotnet/results.trx"),
    }


def test_recursive_globs_and_files_named_outright(tmp_path: Path) -> None:
    copy_fixtures(tmp_path)
    run = collect([f"{tmp_path}/**/TEST-*.xml", str(tmp_path / "dotnet/results.trx"),
                   str(tmp_path / "java/pom.xml")], "r")
    assert run.totals().total == 5 + 3 + 4
    # A file named outright is expected to be a report, so it is an error when it is not.
    assert run.errors == [ParseError(str(tmp_path / "java/pom.xml"),
                                     "not a test report: root element <project>")]


def test_a_file_reached_twice_is_read_once(tmp_path: Path) -> None:
    copy_fixtures(tmp_path)
    run = collect([str(tmp_path / "dotnet"), f"{tmp_path}/dotnet/*.trx"], "r")
    assert run.totals().total == 4
    assert run.totals().flaky == 0


def test_patterns_that_find_nothing_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty-dir").mkdir()
    run = collect([f"{tmp_path}/*.xml", str(tmp_path / "missing.xml"),
                   str(tmp_path / "empty-dir")], "r")
    assert run.errors == [
        ParseError(f"{tmp_path}/*.xml", "no files match"),
        ParseError(str(tmp_path / "missing.xml"), "no such file or directory"),
        ParseError(str(tmp_path / "empty-dir"), "no report files in directory"),
    ]


def test_add_file_records_an_unreadable_path(tmp_path: Path) -> None:
    collector = Collector("r")
    collector.add_file(tmp_path / "gone.xml")
    assert collector.errors == [ParseError(str(tmp_path / "gone.xml"),
                                           "cannot open: No such file or directory")]


def test_text_limit_applies_to_every_input() -> None:
    collector = Collector("r", text_limit=10)
    collector.add_stream("a.xml", io.BytesIO(
        b'<testsuite><testcase name="t"><failure>' + b"y" * 100 + b"</failure></testcase>"
        b"</testsuite>"))
    trace = next(collector.result().cases()).stack_trace
    assert trace is not None and trace.startswith("y" * 10 + "\n… [truncated by Herald: 90")
