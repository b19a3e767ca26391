"""`CaseList`: cases packed compactly read back exactly, in order, and nothing packing does
can change what the reports count. The risk it carries is a change to a case that is lost
because the case was packed: each way a case changes after it is appended is tested here."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bot.results import compact
from bot.results.compact import BATCH, CaseList
from bot.results.model import Attempt, Origin, Status, Suite, TestCase, TestRun

MANY = 5 * BATCH + 17  # several batches packed, some still in the tail


def case(index: int, status: Status = Status.PASSED, **fields: object) -> TestCase:
    return TestCase(name=f"test_{index}", classname=f"pkg.C{index % 7}", suite="unit",
                    status=status, duration=index / 1000, source="junit.xml",
                    **fields)  # type: ignore[arg-type]


def mixed(count: int = MANY) -> Iterator[TestCase]:
    """Passed, skipped (with a reason), failed, errors and a flaky one, interleaved; made
    one at a time, as a parser makes them (a case someone else holds is never packed)."""
    for index in range(count):
        if index % 97 == 0:
            yield case(index, Status.FAILED, message="boom", stack_trace="trace")
        elif index % 89 == 0:
            yield case(index, Status.ERROR, message="crash")
        elif index % 13 == 0:
            yield case(index, Status.SKIPPED, message="not on this OS")
        elif index % 501 == 0:
            yield case(index, attempts=[Attempt(Status.FAILED, message="first try")])
        else:
            yield case(index, file="tests/test_x.py", line=index, stdout="out")


def test_cases_read_back_equal_and_in_the_order_they_were_appended() -> None:
    expected = list(mixed())
    cases = CaseList(mixed())
    assert len(cases) == len(expected)
    assert list(cases) == expected
    assert cases == expected and cases == CaseList(expected)


def test_passed_and_skipped_cases_are_packed_and_failures_never_are() -> None:
    cases = CaseList(mixed())
    passed, skipped, _time, hashes = cases.packed_summary()
    assert passed + skipped == len(hashes) > 4 * BATCH - 200
    objects = list(cases.objects())
    failing = [c for c in mixed() if c.status.is_failure]
    assert failing
    assert [c for c in objects if c.status.is_failure] == failing
    with_attempts = [c for c in mixed() if c.attempts]
    assert with_attempts and [c for c in objects if c.attempts] == with_attempts


def test_totals_of_a_packed_run_equal_totals_counted_case_by_case() -> None:
    # The same test twice more (a parameterised test, a matrix leg): executions, one test.
    expected = [*mixed(), case(3), case(3)]
    run = TestRun(id="r", suites=[Suite("unit", CaseList([*mixed(), case(3), case(3)]))])
    totals = run.totals()
    assert totals.total == len(expected)
    assert totals.failed == sum(c.status is Status.FAILED for c in expected)
    assert totals.errors == sum(c.status is Status.ERROR for c in expected)
    assert totals.skipped == sum(c.status is Status.SKIPPED for c in expected)
    assert totals.flaky == sum(c.flaky for c in expected)
    assert totals.tests == len({c.identity for c in expected})
    assert abs(totals.duration - sum(c.duration for c in expected)) < 1e-6
    assert run.failures() == [c for c in expected if c.status.is_failure]


def test_a_case_the_parser_still_holds_stays_live_and_its_later_changes_count() -> None:
    # Go's parser keeps a package's cases until the package ends, then marks them; a case
    # packed meanwhile would lose that change and hide a failure.
    cases = CaseList()
    held = case(0)
    cases.append(held)
    for index in range(1, 3 * BATCH):
        cases.append(case(index))
    held.status = Status.FAILED
    held.message = "the package failed after the test passed"
    assert next(iter(cases)).status is Status.FAILED
    assert TestRun(id="r", suites=[Suite("unit", cases)]).totals().failed == 1


def test_a_case_changed_through_live_keeps_the_change() -> None:
    cases = CaseList(case(index) for index in range(3 * BATCH))
    target = cases.live(5)
    target.attempts.append(Attempt(Status.FAILED, message="failed before the rerun"))
    assert cases[5].flaky and cases[5] is target
    run = TestRun(id="r", suites=[Suite("unit", cases)])
    assert run.totals().flaky == 1 and run.totals().total == 3 * BATCH


def test_a_promoted_case_is_counted_as_it_is_now_not_as_it_was_packed() -> None:
    cases = CaseList(case(index) for index in range(3 * BATCH))
    cases.live(7).status = Status.FAILED
    totals = TestRun(id="r", suites=[Suite("unit", cases)]).totals()
    assert (totals.failed, totals.passed, totals.total) == (1, 3 * BATCH - 1, 3 * BATCH)


def test_a_retry_that_passed_marks_the_matching_packed_execution_flaky() -> None:
    origin = Origin("test (3.12)")
    earlier = TestRun(id="1", suites=[Suite("unit", [case(i) for i in range(MANY)])])
    earlier.suites[0].cases.live(1000).status = Status.FAILED
    earlier.set_origin(origin)
    later = TestRun(id="2", suites=[Suite("unit", [case(i) for i in range(MANY)])])
    later.set_origin(origin)
    assert later.absorb_retry(earlier) == 1
    flaky = [c for c in later.cases() if c.flaky]
    assert [c.name for c in flaky] == ["test_1000"]
    assert later.totals().flaky == 1


def test_set_origin_reaches_packed_cases_and_leaves_later_ones_their_own() -> None:
    cases = CaseList(case(index) for index in range(3 * BATCH))
    job = Origin("test (3.11)", "https://ci.example/job/1")
    cases.set_origin(job)
    other = Origin("test (3.12)")
    for index in range(3 * BATCH, 6 * BATCH):
        cases.append(case(index, origin=other))
    origins = [c.origin for c in cases]
    assert origins[: 3 * BATCH] == [job] * (3 * BATCH)
    assert origins[3 * BATCH:] == [other] * (3 * BATCH)


def test_a_pickled_list_reads_back_equal_in_another_process() -> None:
    cases = CaseList(mixed())
    assert len(cases.packed_summary()[3]) > 4 * BATCH - 200
    restored = pickle.loads(pickle.dumps(cases))
    assert restored == cases
    assert restored.packed_summary()[:3] == cases.packed_summary()[:3]
    # String hashes differ between processes: the identity hashes are made again there.
    script = (
        "import pickle, sys\n"
        "from bot.results.model import Suite, TestRun\n"
        "cases = pickle.loads(sys.stdin.buffer.read())\n"
        "print(TestRun(id='r', suites=[Suite('unit', cases)]).totals().tests)\n"
    )
    child = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(cases),
                           capture_output=True, check=False)
    assert child.returncode == 0, child.stderr.decode()
    assert int(child.stdout) == len({c.identity for c in mixed()})


def test_indexing_slicing_and_truth_behave_like_a_list() -> None:
    expected = list(mixed(3 * BATCH))
    cases = CaseList(mixed(3 * BATCH))
    assert cases[0] == expected[0] and cases[-1] == expected[-1]
    assert cases[BATCH + 3] == expected[BATCH + 3]
    assert cases[10:13] == expected[10:13]
    assert not CaseList() and cases
    assigned = Suite("unit")
    assigned.cases = list(mixed(3 * BATCH))  # type: ignore[assignment]  # taken over into a CaseList
    assert isinstance(assigned.cases, CaseList) and assigned.cases == expected


def test_the_spool_is_replaced_when_full_and_old_lists_still_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compact, "SPOOL_ROTATE_BYTES", 1)
    first = CaseList(case(index) for index in range(3 * BATCH))
    second = CaseList(case(index) for index in range(3 * BATCH))
    assert first._spool is not second._spool
    assert list(first) == list(second)


def test_a_large_run_s_json_names_every_origin_of_its_packed_cases() -> None:
    # The JSON report writes its `origins` table before the tests, from what the lists
    # know without unpacking: an origin missing there would leave a test pointing nowhere.
    from bot.reports.json import from_json, render_json

    legs = [Origin(f"test (3.{minor})", f"https://ci.example/job/{minor}") for minor in (11, 12)]
    suites = []
    for leg in legs:
        cases = CaseList(case(index, origin=leg) for index in range(3 * BATCH))
        suites.append(Suite("unit", cases))
    run = TestRun(id="r", suites=suites)
    back = from_json(render_json(run))
    assert [{c.origin for c in s.cases} for s in back.suites] == [{legs[0]}, {legs[1]}]
    assert back.totals() == run.totals()


def test_a_forked_child_packs_into_a_spool_of_its_own() -> None:
    import os

    parent = CaseList(case(index) for index in range(3 * BATCH))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: pack, and say whether its spool is the parent's
        child = CaseList(case(index) for index in range(3 * BATCH))
        os.write(write, b"same" if child._spool is parent._spool else b"own")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 10)
    os.waitpid(pid, 0)
    assert answer == b"own"
    assert list(parent) == [case(index) for index in range(3 * BATCH)]


def test_a_retry_marks_only_the_execution_that_failed_among_packed_twins() -> None:
    # A parameterised test writes one name per execution: the earlier attempt's second
    # execution failed, so only the later attempt's second execution is flaky, however
    # far into a packed list the twins are.
    origin = Origin("test (3.12)")

    def attempt(failing: int | None) -> TestRun:
        cases = CaseList()
        for index in range(3 * BATCH):
            cases.append(case(index))
            if index == BATCH + 5:
                for execution in range(3):
                    status = Status.FAILED if execution == failing else Status.PASSED
                    cases.append(TestCase(name="test_param", classname="pkg.P", suite="unit",
                                          status=status, message=f"execution {execution}"))
        run = TestRun(id="r", suites=[Suite("unit", cases)])
        run.set_origin(origin)
        return run

    earlier, later = attempt(failing=1), attempt(failing=None)
    assert later.absorb_retry(earlier) == 1
    twins = [c for c in later.cases() if c.name == "test_param"]
    assert [c.flaky for c in twins] == [False, True, False]
    assert later.totals().flaky == 1 and later.totals().failures == 0
