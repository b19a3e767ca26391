"""The pure parts of the Bitbucket publisher and reader: test cases read leniently but
never as passes they were not, and what is written kept within Bitbucket's limits."""

from __future__ import annotations

import json

import pytest

from bot.events import RunRef
from bot.ports import ReportOrigin
from bot.results.compact import CaseList
from bot.results.model import ParseError, RunStatus, Status, Suite, TestCase, TestRun
from providers.bitbucket import insights
from providers.bitbucket.testreport import duration_of, status_of, step_run
from providers.bitbucket.webhook import BitbucketProvider
from tests.providers.senders import fixture_json, hex_hmac


@pytest.mark.parametrize(("value", "seconds"), [
    ("PT1.5S", 1.5), ("PT2M3S", 123.0), ("PT1H", 3600.0), ("P1DT1S", 86401.0),
    (0.25, 0.25), ("0.5", 0.5), ("P", 0.0), ("soon", 0.0), (None, 0.0), (-3, 0.0),
])
def test_durations_are_seconds_or_iso_8601(value: object, seconds: float) -> None:
    assert duration_of(value) == seconds


@pytest.mark.parametrize(("word", "status"), [
    ("SUCCESSFUL", Status.PASSED), ("failed", Status.FAILED), ("ERROR", Status.ERROR),
    ("SKIPPED", Status.SKIPPED), ("IGNORED", Status.SKIPPED), ("", Status.ERROR),
    ("FLAKY", Status.ERROR), (None, Status.ERROR),
])
def test_a_case_status_it_does_not_know_is_an_error(word: object, status: Status) -> None:
    assert status_of({"status": word}) is status


def test_a_case_named_only_by_its_qualified_name_keeps_class_and_name() -> None:
    run = step_run("unit", [{"uuid": "{1}", "fully_qualified_name": "a.b.C.test_x",
                             "status": "FAILED"}], {"{1}": [{"message": "boom\nmore"}]},
                   run_id="1")
    [case] = run.failures()
    assert (case.name, case.classname, case.suite, case.message) == (
        "test_x", "", "unit", "boom")
    assert case.stack_trace == "boom\nmore"


def origin(name: str | None = None, sequence: int = 318) -> ReportOrigin:
    ref = RunRef(provider="bitbucket", repo="acme/app", run_id=str(sequence))
    return ReportOrigin(run=ref, name=name, sequence=sequence,
                        url="https://bitbucket.org/acme/app/pipelines/results/318")


def failing(count: int, name: str = "test_x") -> TestRun:
    cases = CaseList(TestCase(name=name, classname="pkg.Mod", status=Status.FAILED,
                              message="m" * 1000) for _ in range(count))
    return TestRun(id="1", suites=[Suite(name="unit", cases=cases)])


def test_keys_are_herald_s_and_apart_per_pipeline_definition_and_ci() -> None:
    keys = {insights.origin_key(o) for o in (
        origin(), origin("custom: nightly"), ReportOrigin(
            run=RunRef(provider="jenkins", repo="acme/app", run_id="7"), name="custom: nightly"))}
    assert len(keys) == 3
    assert all(k.startswith("herald") and len(k) <= 40 for k in keys)
    assert insights.origin_key(origin()) == "herald"


def test_annotations_stop_at_the_report_limit_and_are_counted_in_the_report() -> None:
    run = failing(1_050)
    annotations = insights.annotations_of(run, origin())
    assert len(annotations) == insights.ANNOTATIONS_PER_REPORT
    assert len({a["external_id"] for a in annotations}) == len(annotations)
    assert all(len(a["summary"]) <= insights.SUMMARY_LIMIT for a in annotations)
    assert [len(b) for b in insights.batches(annotations)] == [100] * 10
    details = insights.report_body(run, origin(), len(annotations))["details"]
    assert "50 of the 1,050 failures are not annotated" in details


def test_twins_of_one_name_get_annotations_of_their_own() -> None:
    ids = [a["external_id"] for a in insights.annotations_of(failing(3), origin())]
    assert len(set(ids)) == 3
    assert ids == [a["external_id"] for a in insights.annotations_of(failing(3), origin())]


@pytest.mark.parametrize(("file", "path"), [
    ("/opt/atlassian/pipelines/agent/build/src/pay.py", "src/pay.py"),
    ("./src/pay.py", "src/pay.py"), ("src\\pay.py", "src/pay.py"),
    ("/usr/lib/python3/x.py", None), ("../outside.py", None), (None, None),
])
def test_annotation_paths_are_relative_to_the_repository(file: str | None,
                                                         path: str | None) -> None:
    assert insights.repository_path(file) == path


def test_a_report_with_an_unreadable_input_is_not_a_pass() -> None:
    run = TestRun(id="1", suites=[Suite(name="unit", cases=CaseList(
        [TestCase(name="ok")]))])
    run.errors.append(ParseError(source="step", reason="cut"))
    assert insights.build_state(run, origin()) == "FAILED"
    assert insights.report_body(run, origin(), 0)["result"] == "FAILED"


def test_the_comment_markers_find_their_own_origin_only() -> None:
    plain, nightly = insights.report_marker(origin()), insights.report_marker(origin("CI"))
    assert not insights.report_marker(origin("CI nightly")).startswith(nightly)
    assert plain != nightly
    body = insights.comment_body(failing(1), origin("CI", sequence=12))
    assert body.startswith(nightly)
    assert insights.reported_order(body) == (12,)
    assert "<details>" not in body and "<summary>" not in body


@pytest.mark.parametrize("key", ["herald", "herald-0123456789ab"])
def test_herald_s_own_status_is_ignored_by_the_parser(key: str) -> None:
    payload = fixture_json("bitbucket", "commit_status_updated_failed.json")
    payload["commit_status"]["key"] = key
    body = json.dumps(payload).encode()
    parsed = BitbucketProvider().parse(
        {"x-event-key": "repo:commit_status_updated",
         "x-hub-signature": f"sha256={hex_hmac(b's', body)}", "x-request-uuid": "r"},
        body, [b"s"])
    assert parsed.reason == "the status is Herald's own"  # type: ignore[union-attr]


@pytest.mark.parametrize(("status", "state", "result"), [
    (RunStatus.FAILED, "FAILED", "FAILED"),
    (RunStatus.ERROR, "FAILED", "FAILED"),
    (RunStatus.CANCELLED, "STOPPED", "PASSED"),
    (RunStatus.RUNNING, "INPROGRESS", "PENDING"),
    (RunStatus.PASSED, "SUCCESSFUL", "PASSED"),
])
def test_the_status_and_report_say_what_the_run_says(status: RunStatus, state: str,
                                                     result: str) -> None:
    run = TestRun(id="1", status=status)
    assert insights.build_state(run, origin()) == state
    assert insights.report_body(run, origin(), 0)["result"] == result
