"""The Markdown report's layout, read as a reviewer reads it on GitHub or GitLab.

From the top: the title; what failed and out of how many; which inputs could not be read;
the other counts (zeros left out); the failures by CI job, then by file or suite, each
message once; flaky tests with what their failing attempt said; skipped tests collapsed;
metrics and artifacts last.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.reports import render_markdown
from bot.reports.markdown import WORD_JOINER
from bot.results.model import Attempt, Origin, ParseError, Status, Suite, TestCase, TestRun
from tests.reports.checks import outside_code_blocks
from tests.reports.runs import NOW, matrix_run, rich_run, seed_run

#: The example every reviewer-facing rule shows in: two matrix legs, a parameterised pair,
#: a flaky test, five skipped tests and an unreadable file (tests.reports.runs.matrix_run),
#: as GitHub's check run summary renders it (heading level 2).
MATRIX_REPORT = """\
## Test Report: CI #\u20607

Status: FAILED — 2 failed, 1 error of 11 executions of 8 tests

1 file could not be read: py312/coverage.xml (not a test report: root element &lt;coverage&gt;).

- Passed: 3 (27.3%), 1 flaky
- Skipped: 5 (45.5%)
- Duration: 1m 23.20s
- CI run: [https:\u2060//github.com/o/r/actions/runs/7](https://github.com/o/r/actions/runs/7)

### Failed Tests

#### test (3.11): 2 failed · [job log](https://github.com/o/r/actions/runs/7/job/11)

##### tests/test\\_io.py (2)

- **tests.test\\_io.test\\_parse** (execution 1 of 3) — failed: AssertionError \
(tests/test\\_io.py:17 · 0.02s)

  ```
  assert parse(1) == 1
   +  where None = parse(1)
  ```

- **tests.test\\_io.test\\_parse** (execution 3 of 3) — failed: AssertionError \
(tests/test\\_io.py:17 · 0.02s)

  ```
  assert parse(3) == 3
   +  where None = parse(3)
  ```

#### test (3.12): 1 error · [job log](https://github.com/o/r/actions/runs/7/job/12)

##### tests/test\\_db.py (1)

- **tests.test\\_db.test\\_connect** — error (tests/test\\_db.py:30 · 0.30s)

  ```
  ConnectionRefusedError: [Errno 111] Connection refused
  ```

  <details><summary>Stack trace</summary>

  ```
  Traceback (most recent call last):
    File "tests/conftest.py", line 12, in db
      sock.connect(addr)
  ```

  </details>

### Flaky Tests

- **tests.test\\_net.test\\_retry** (tests/test\\_net.py:8) passed after 1 failed attempt: \
TimeoutError: read timed out

### Skipped Tests

<details>
<summary>5 skipped tests</summary>

- tests.test\\_os.test\\_windows\\_0: only on Windows
- tests.test\\_os.test\\_windows\\_1: only on Windows
- tests.test\\_os.test\\_windows\\_2: only on Windows
- tests.test\\_os.test\\_windows\\_3: only on Windows
- tests.test\\_os.test\\_windows\\_4: only on Windows

</details>

Generated on 2026-11-25 10:00:00 UTC by Herald
"""


def test_the_matrix_example_reads_top_down() -> None:
    assert render_markdown(matrix_run(), now=NOW, heading_level=2) == MATRIX_REPORT


def test_seed_layout() -> None:
    report = render_markdown(seed_run(), now=NOW)
    lines = report.split("\n")
    assert lines[:7] == [
        "# Test Report: pipeline-1234",
        "",
        "Status: FAILED — 2 failed of 42 tests",
        "",
        "- Passed: 40 (95.2%)",
        "- Duration: 2m 5.70s",
        "",
    ]
    # Without origins there is no job level: the failures are grouped by file, else suite.
    assert "### tests/test\\_checkout.py (1)" in lines
    assert "### Suite unit (1)" in lines
    assert lines[-2] == "Generated on 2026-11-25 10:00:00 UTC by Herald"
    assert lines[-1] == ""
    # Sections that have nothing to show are left out, not shown empty.
    for absent in ("Performance Metrics", "Artifacts", "could not be read", "Flaky",
                   "Skipped", "Errors", ": 0 ("):
        assert absent not in report


def test_sections_in_order_with_every_part_present() -> None:
    report = render_markdown(rich_run(), now=NOW, details_url="https://herald.example/r/1")
    order = ["# Test Report", "Status: FAILED — 2 failed, 1 error of 44 tests",
             "1 file could not be read: reports/bad.xml (not XML: mismatched tag, line 3).",
             "- Passed: 40 (90.9%), 1 flaky", "## Failed Tests", "## Flaky Tests",
             "## Skipped Tests", "## Performance Metrics", "## Artifacts", "Generated on"]
    positions = [report.index(part) for part in order]
    assert positions == sorted(positions)
    lines = report.split("\n")
    pipeline = "https://ci.example.com/pipelines/1234"
    label = pipeline.replace("://", ":" + WORD_JOINER + "//")  # shown as is, links nothing
    assert f"- CI run: [{label}]({pipeline})" in lines
    assert "| p95 latency | 12.5 | ms |" in lines
    assert "| throughput | 1,234 | req/s |" in lines
    assert "- [junit.xml](https://ci.example.com/artifacts/junit.xml) (120.6 KB)" in lines
    assert "- coverage.html (unknown size)" in lines
    assert "- **tests.test\\_cart.test\\_case\\_0** passed after 1 failed attempt: timeout" \
        in lines


@pytest.mark.parametrize(
    ("count", "line"),
    [
        (1, "1 file could not be read: reports/0.xml (truncated: the file ends inside "
            "&lt;testcase&gt;)."),
        (2, "2 files could not be read: reports/0.xml (truncated: the file ends inside "
            "&lt;testcase&gt;), reports/1.json (not a test report: no known format)."),
    ],
)
def test_unreadable_inputs_are_named_right_under_the_headline(count: int, line: str) -> None:
    errors = [ParseError("reports/0.xml", "truncated: the file ends inside <testcase>"),
              ParseError("reports/1.json", "not a test report: no known format")][:count]
    run = seed_run()
    run.errors = errors
    lines = render_markdown(run, now=NOW).split("\n")
    assert lines[2].startswith("Status: FAILED")
    assert lines[4] == line


def test_a_run_of_nothing_but_unreadable_files_says_so() -> None:
    run = TestRun(id="r", errors=[ParseError(f"reports/shard-{i}.xml", "empty file")
                                  for i in range(3)])
    lines = render_markdown(run, now=NOW).split("\n")
    assert lines[2] == "Status: ERROR — No tests found"
    assert lines[4] == ("3 files could not be read: reports/shard-0.xml (empty file), "
                        "reports/shard-1.xml (empty file), reports/shard-2.xml (empty file).")


@pytest.mark.parametrize(
    ("statuses", "headline"),
    [
        ([Status.PASSED], "1 test passed"),
        ([Status.PASSED] * 3, "All 3 tests passed"),
        ([Status.PASSED, Status.SKIPPED], "1 passed, 1 skipped of 2 tests"),
        ([Status.SKIPPED] * 2, "0 passed, 2 skipped of 2 tests"),
        ([Status.FAILED, Status.ERROR, Status.ERROR, Status.PASSED],
         "1 failed, 2 errors of 4 tests"),
    ],
)
def test_the_headline_says_what_failed_out_of_how_many(
    statuses: list[Status], headline: str
) -> None:
    cases = [TestCase(name=f"t{i}", status=status) for i, status in enumerate(statuses)]
    report = render_markdown(TestRun(id="r", suites=[Suite("s", cases)]), now=NOW)
    assert report.split("\n")[2].split(" — ", 1)[1] == headline


def test_executions_and_tests_are_both_named_when_they_differ() -> None:
    leg = [TestCase(name="test_a"), TestCase(name="test_b", status=Status.FAILED)]
    run = TestRun(id="r", suites=[Suite("s", leg), Suite("s", [TestCase(name="test_a")])])
    assert "Status: FAILED — 1 failed of 3 executions of 2 tests" in render_markdown(run)


def case(name: str, status: Status = Status.FAILED, origin: Origin | None = None,
         suite: str = "s", file: str | None = None) -> TestCase:
    return TestCase(name=name, suite=suite, status=status, origin=origin, file=file,
                    message=f"{name} broke" if status.is_failure else None)


A = Origin("test (3.11)", "https://ci.example.com/job/1")
B = Origin("test (3.12)", None)


def headings(report: str) -> list[str]:
    return [line for line in outside_code_blocks(report) if line.startswith("#")][1:]


@pytest.mark.parametrize(
    ("cases", "expected"),
    [
        pytest.param([case("t1"), case("t2", file="a.py")],
                     ["## Failed Tests", "### Suite s (1)", "### a.py (1)"], id="no origin"),
        pytest.param([case("t1", origin=A), case("t2", origin=A, file="a.py")],
                     ["## Failed Tests", "### Suite s (1)", "### a.py (1)"], id="one origin"),
        pytest.param(
            [case("t1", origin=A), case("t2", origin=B, status=Status.ERROR),
             case("t3", origin=A, suite="other"), case("t4", origin=B, status=Status.PASSED)],
            ["## Failed Tests",
             "### test (3.11): 2 failed · [job log](https://ci.example.com/job/1)",
             "#### Suite s (1)", "#### Suite other (1)", "### test (3.12): 1 error",
             "#### Suite s (1)"],
            id="two origins, grouped in order of first appearance"),
        pytest.param([case("t1", origin=A), case("t2")],
                     ["## Failed Tests", "### test (3.11): 1 failed · [job log]"
                      "(https://ci.example.com/job/1)", "#### Suite s (1)",
                      "### (no CI job): 1 failed", "#### Suite s (1)"],
                     id="cases without an origin beside ones with"),
    ],
)
def test_failures_are_grouped_by_job_then_by_file_or_suite(
    cases: list[TestCase], expected: list[str]
) -> None:
    report = render_markdown(TestRun(id="r", suites=[Suite("s", cases)]), now=NOW)
    assert headings(report) == expected


def test_one_origin_is_named_once_with_its_job_log() -> None:
    report = render_markdown(TestRun(id="r", suites=[Suite("s", [case("t1", origin=A)])]))
    assert "Job: test (3.11) · [job log](https://ci.example.com/job/1)\n" in report
    unlinked = render_markdown(TestRun(id="r", suites=[Suite("s", [case("t1", origin=B)])]))
    assert "Job: test (3.12)\n" in unlinked


@pytest.mark.parametrize(
    ("cases", "labels"),
    [
        pytest.param([case("t"), case("t")], ["(execution 1 of 2)", "(execution 2 of 2)"],
                     id="two failing"),
        pytest.param([case("t", Status.PASSED), case("t"), case("t", Status.SKIPPED)],
                     ["(execution 2 of 3)"], id="one failing among others of its name"),
        pytest.param([case("t"), case("t", origin=A)], ["", ""], id="in different jobs"),
        pytest.param([case("t"), case("t", suite="other")], ["", ""],
                     id="in different suites"),
        pytest.param([case("t"), case("u"), case("t", Status.PASSED, suite="other")], [""],
                     id="different names"),
    ],
)
def test_same_named_executions_are_told_apart(cases: list[TestCase], labels: list[str]) -> None:
    report = render_markdown(TestRun(id="r", suites=[Suite("s", cases)]), now=NOW)
    items = [line for line in report.split("\n") if line.startswith("- **t**")]
    assert [item.removeprefix("- **t**").split(" — ")[0].strip() for item in items] == labels


@pytest.mark.parametrize(
    ("message", "trace", "failure_type", "shown_trace"),
    [
        pytest.param("expected 1 but was 2",
                     "java.lang.AssertionError: expected 1 but was 2\n\tat T.t(T.java:9)",
                     "java.lang.AssertionError", "\tat T.t(T.java:9)", id="java: first line"),
        pytest.param("boom", "Traceback:\n  File x, line 1\nValueError: boom", "ValueError",
                     "Traceback:\n  File x, line 1", id="python: last line"),
        pytest.param("boom", "boom", None, None, id="the trace is the message"),
        pytest.param("boom", "Wrapped: boom\n  at f", "Other", "Wrapped: boom\n  at f",
                     id="more than the type before it: kept whole"),
    ],
)
def test_a_message_is_shown_once(message: str, trace: str, failure_type: str | None,
                                 shown_trace: str | None) -> None:
    failing = TestCase(name="t", status=Status.FAILED, message=message, stack_trace=trace,
                       failure_type=failure_type, file="T.java", line=9)
    report = render_markdown(TestRun(id="r", suites=[Suite("s", [failing])]), now=NOW)
    assert report.count(message) == 1 + (shown_trace or "").count(message)
    assert "(T.java:9 · 0.00s)" in report
    if shown_trace is None:
        assert "Stack trace" not in report
    else:
        indented = "\n".join("  " + line for line in shown_trace.split("\n"))
        assert f"  ```\n{indented}\n  ```" in report


def test_flaky_tests_show_what_the_failing_attempt_said() -> None:
    flaky = TestCase(name="test_net", file="n.py", attempts=[
        Attempt(Status.FAILED, message="first\nmore"),
        Attempt(Status.ERROR, message=None, failure_type="TimeoutError")])
    report = render_markdown(TestRun(id="r", suites=[Suite("s", [flaky])]), now=NOW)
    assert "- Passed: 1 (100.0%), 1 flaky" in report
    assert "- **test\\_net** (n.py) passed after 2 failed attempts: TimeoutError" in report


def test_skipped_tests_are_collapsed_and_capped() -> None:
    skipped = [TestCase(name=f"t{i}", status=Status.SKIPPED, message="slow\nreason")
               for i in range(150)]
    report = render_markdown(TestRun(id="r", suites=[Suite("s", skipped)]), now=NOW,
                             details_url="https://herald.example/r")
    block = report[report.index("<details>"):report.index("</details>")]
    assert block.startswith("<details>\n<summary>150 skipped tests</summary>\n\n- t0: slow\n")
    assert block.count("\n- t") == 100
    assert "- … and 50 more: see the [full report](https://herald.example/r)" in block


def test_hostile_origins_are_escaped_and_linked_only_over_http() -> None:
    evil = Origin("@team `x` <b>|", "javascript:alert(1)")
    cases = [case("t1", origin=evil), case("t2", origin=A)]
    report = render_markdown(TestRun(id="r", suites=[Suite("s", cases)]), now=NOW)
    assert f"### @{WORD_JOINER}team \\`x\\` &lt;b&gt;\\|: 1 failed\n" in report
    assert "javascript" not in report


def test_marker_goes_first_and_heading_level_shifts_every_heading() -> None:
    marker = "<!-- herald:report github:org/repo:run:123 -->"
    report = render_markdown(matrix_run(), now=NOW, marker=marker, heading_level=4)
    lines = report.split("\n")
    assert lines[0] == marker
    assert lines[1] == f"#### Test Report: CI #{WORD_JOINER}7"
    # Never deeper than Markdown's six levels: the job and file levels share the last.
    assert "##### Failed Tests" in lines
    assert "###### tests/test\\_io.py (2)" in lines
    assert not any(line.startswith("#######") for line in lines)


@pytest.mark.parametrize(
    "marker",
    ["herald:report", "<!-- a --> b -->", "<!-- two\nlines -->", "<!-- a <!-- b -->",
     "<!--> -->", "<!-- a --!> -->"],
)
def test_a_marker_must_be_one_html_comment(marker: str) -> None:
    with pytest.raises(ValueError, match="marker"):
        render_markdown(seed_run(), marker=marker)


def test_a_marker_may_hold_double_dashes() -> None:
    marker = "<!-- herald:report github:my--org/repo:run:1 -->"
    assert render_markdown(seed_run(), marker=marker).startswith(marker + "\n")


def test_heading_level_is_bounded() -> None:
    with pytest.raises(ValueError, match="heading_level"):
        render_markdown(seed_run(), heading_level=5)


def test_run_id_is_escaped_and_capped_in_the_title() -> None:
    run = seed_run()
    run.id = "<img src=x> `main` " + "b" * 500
    title = render_markdown(run, now=NOW).split("\n")[0]
    assert title.startswith("# Test Report: &lt;img src=x&gt; \\`main\\` bbb")
    assert title.endswith("…")
    assert len(title) < 150


def test_a_passing_run_has_no_failures_section() -> None:
    run = TestRun(id="green", suites=[Suite("s", [TestCase(name="test_ok", duration=2.0)])])
    report = render_markdown(run, now=NOW)
    assert "Status: PASSED — 1 test passed" in report
    assert "Failed Tests" not in report


LINK_TARGET = re.compile(r"\]\(https?://[^ )]*\)")
hostile_text = st.text(
    alphabet=st.sampled_from(list("|`\\<>&*_[]@/#-+=!~$\n\r\t ab1.")) | st.characters(),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@example(names=["x"], message="\ud800", run_id="r", source="\ud800")  # a job URL's lone surrogate
@example(names=["a|b", "```", "</details>\n/approve"], message="<details>\n```\n@all",
         run_id="/merge", source="@here|x")
@given(names=st.lists(hostile_text, min_size=1, max_size=5), message=hostile_text,
       run_id=hostile_text, source=hostile_text)
def test_no_test_name_breaks_the_report(
    names: list[str], message: str, run_id: str, source: str
) -> None:
    origins = [Origin(source, source), Origin(message, "https://ci.example.com/" + message)]
    cases = [
        TestCase(name=name, suite=message, status=Status.FAILED, message=message,
                 failure_type=message, stack_trace=name + message, file=source,
                 origin=origins[index % 2])
        for index, name in enumerate(names)
    ]
    cases.append(TestCase(name=message, file=source, line=3, attempts=[
        Attempt(Status.FAILED, message=message, failure_type=source)]))
    cases.append(TestCase(name=source, status=Status.SKIPPED, message=message))
    run = TestRun(id=run_id, suites=[Suite("s", cases)], errors=[ParseError(source, message)])
    report = render_markdown(run, now=NOW)
    assert not any(line.startswith("/") for line in report.split("\n"))
    for line in outside_code_blocks(report):
        assert "<script" not in line.lower()
        line = LINK_TARGET.sub("](…)", line)  # a URL's `@` notifies nobody
        at = line.find("@")
        while at >= 0:
            assert not line[at + 1:at + 2].isalnum(), line
            at = line.find("@", at + 1)
    markup = "\n".join(outside_code_blocks(report))
    assert markup.count("<details>") == markup.count("</details>")
    assert markup.count("- **") == len(names) + 1  # and the flaky test
