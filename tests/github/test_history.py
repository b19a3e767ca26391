"""Reports that know the past, on GitHub end to end: a pull request's run compared with the
last run of its workflow on `main` (new vs existing failures, the regression gate, known
flaky tests from history and from a retry, slow-downs), through the real Redis history."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.fakes import zipped
from tests.github.conftest import REPO
from tests.github.test_end_to_end import Herald, run_completed, start
from tests.github.world import PR, RUN, SHA, workflow_run

pytestmark = pytest.mark.e2e

BASE_SHA = RUN["pull_requests"][0]["base"]["sha"]
_ids = itertools.count(8_100_000)


def junit(*cases: tuple[str, str, float]) -> bytes:
    """(name, "passed" | "failed", seconds) per test of the class `shop.Cart`."""
    xml = []
    for name, status, seconds in cases:
        failure = '<failure message="expected 10">AssertionError</failure>' \
            if status == "failed" else ""
        xml.append(f'<testcase classname="shop.Cart" name="{name}" time="{seconds}">'
                   f"{failure}</testcase>")
    return (f'<testsuites><testsuite name="unit" tests="{len(cases)}">{"".join(xml)}'
            "</testsuite></testsuites>").encode()


def a_run(fake: Any, *cases: tuple[str, str, float], on_main: bool = False,
          sha: str | None = None, **changes: Any) -> dict[str, Any]:
    """A `CI` run with `cases`: on `main` (a push of `sha`), else of the pull request."""
    more: dict[str, Any] = {"id": next(_ids), "run_attempt": 1}
    if on_main:
        more.update(head_branch="main", head_sha=sha or BASE_SHA, event="push",
                    pull_requests=[])
    run = workflow_run(**{**more, **changes})
    fake.add_run(REPO, run, artifacts={"test-results": zipped({"junit.xml": junit(*cases)})})
    if not on_main and PR not in fake.repo(REPO).pulls:
        fake.add_pull(REPO, PR, run["head_sha"])
    return run


async def report(herald: Herald, *runs: dict[str, Any]) -> None:
    for run in runs:
        assert (await herald.deliver("workflow_run", run_completed(run))).status_code == 202
        await herald.work()


def the_comment(fake: Any) -> str:
    [comment] = fake.repo(REPO).comments[PR]
    return str(comment["body"])


def the_check(fake: Any) -> dict[str, Any]:
    """The pull request's newest check run (a re-run attempt gets a fresh one)."""
    return dict([c for c in fake.repo(REPO).check_runs if c["head_sha"] == SHA][-1])


PASS, FAIL = "passed", "failed"


async def test_a_pull_request_is_told_which_failures_are_new_and_which_main_has(
    fake, redis_url, tmp_path
) -> None:
    main = a_run(fake, ("adds", FAIL, 0.1), ("removes", PASS, 0.1), ("totals", PASS, 0.1),
                 on_main=True)
    pull = a_run(fake, ("adds", FAIL, 0.1), ("removes", FAIL, 0.1), ("totals", PASS, 0.1))
    async with start(redis_url, tmp_path, fake) as herald:
        await report(herald, main, pull)

    body = the_comment(fake)
    assert "### Compared with main" in body
    assert "1 new failure, 1 failing on main already" in body
    assert body.index("Compared with main") < body.index("Failed Tests")
    assert "New failures (1): shop.Cart.removes" in body
    assert the_check(fake)["conclusion"] == "failure"


async def test_the_regression_gate_is_neutral_on_old_failures_and_fails_on_a_new_one(
    fake, redis_url, tmp_path
) -> None:
    fake.add_file(REPO, SHA, ".herald.yml", b"version: 1\nfail_on: regressions\n")
    main = a_run(fake, ("adds", FAIL, 0.1), ("removes", PASS, 0.1), on_main=True)
    old_only = a_run(fake, ("adds", FAIL, 0.1), ("removes", PASS, 0.1))
    async with start(redis_url, tmp_path, fake) as herald:
        await report(herald, main, old_only)
        assert the_check(fake)["conclusion"] == "neutral"
        assert "failing on main already" in the_comment(fake)

        # The same commit's next run (a re-run attempt) breaks another test: a regression.
        new_one = a_run(fake, ("adds", FAIL, 0.1), ("removes", FAIL, 0.1),
                        id=old_only["id"], run_attempt=2)
        await report(herald, new_one)

    assert the_check(fake)["conclusion"] == "failure"


async def test_a_test_flaky_on_main_is_named_known_flaky_with_advice(
    fake, redis_url, tmp_path
) -> None:
    history = [a_run(fake, ("adds", status, 0.1), ("removes", PASS, 0.1), on_main=True,
                     sha=f"{i:040x}") for i, status in enumerate((FAIL, PASS, FAIL, PASS))]
    pull = a_run(fake, ("adds", FAIL, 0.1), ("removes", FAIL, 0.1))
    async with start(redis_url, tmp_path, fake) as herald:
        await report(herald, *history, pull)

    body = the_comment(fake)
    assert ("1 of 2 failures is known flaky (failed 2 times on main in 1 days): "
            "`/retest` reruns it.") in body
    assert "1 is new: look at it." in body


async def test_a_test_that_passed_on_an_earlier_attempt_of_the_commit_is_known_flaky(
    fake, redis_url, tmp_path
) -> None:
    main = a_run(fake, ("adds", PASS, 0.1), on_main=True)
    first = a_run(fake, ("adds", PASS, 0.1))
    async with start(redis_url, tmp_path, fake) as herald:
        await report(herald, main, first)
        retried = a_run(fake, ("adds", FAIL, 0.1), id=first["id"], run_attempt=2)
        await report(herald, retried)

    assert "passed on another attempt of this commit" in the_comment(fake)


async def test_a_test_much_slower_than_on_main_is_listed(fake, redis_url, tmp_path) -> None:
    history = [a_run(fake, ("checkout", PASS, 0.2), ("adds", FAIL, 0.1), on_main=True,
                     sha=f"{i:040x}") for i in range(3)]
    pull = a_run(fake, ("checkout", PASS, 6.5), ("adds", FAIL, 0.1))
    async with start(redis_url, tmp_path, fake) as herald:
        await report(herald, *history, pull)

    body = the_comment(fake)
    assert "- Slower: shop.Cart.checkout (test-results) (6" in body
    assert "was 0.2s)" in body
    assert "adds" not in body.split("- Slower:")[1].split("\n")[0]  # failing: not timed


async def test_a_commits_one_report_compares_each_run_with_its_own_base(
    fake, redis_url, tmp_path
) -> None:
    fake.add_file(REPO, SHA, ".herald.yml",
                  b"version: 1\nfail_on: regressions\ncoalesce:\n  quiet_seconds: 1\n")
    legs = ("CI (3.11)", "CI (3.12)")
    mains = [a_run(fake, ("adds", FAIL, 0.1), ("removes", PASS, 0.1), on_main=True, name=leg)
             for leg in legs]
    pulls = [a_run(fake, ("adds", FAIL, 0.1), ("removes", PASS, 0.1), name=leg)
             for leg in legs]
    async with start(redis_url, tmp_path, fake) as herald:
        await report(herald, *mains, *pulls)

    check = the_check(fake)
    assert check["name"] == "Herald (commit)"
    assert check["conclusion"] == "neutral"  # both failures were failing on main already
    body = the_comment(fake)
    assert "2 failing on main already" in body
    assert "CI (3.11): shop.Cart.adds" in body
