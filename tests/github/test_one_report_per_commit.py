"""One report per commit on GitHub (`HERALD_COALESCE_SECONDS`): three matrix runs of one
commit make one check run and one sticky comment, each run's jobs named inside it; a run
arriving later updates that report in place."""

from __future__ import annotations

from typing import Any

import pytest

from tests.github.conftest import REPO
from tests.github.test_end_to_end import run_completed, start
from tests.github.world import PR, SHA, seed_run

pytestmark = pytest.mark.e2e

LEGS = ("CI (3.11)", "CI (3.12)", "CI (3.13)")


def _legs(fake: Any, failing: str = "CI (3.12)") -> list[dict[str, Any]]:
    """A workflow run per Python version on one commit; `failing`'s has a failure."""
    return [seed_run(fake, id=7_000_000 + i, name=leg, failures=int(leg == failing),
                     passes=3, head_sha=SHA) for i, leg in enumerate(LEGS)]


async def test_three_matrix_runs_of_one_commit_make_one_report(fake, redis_url, tmp_path):
    async with start(redis_url, tmp_path, fake, HERALD_COALESCE_SECONDS="1") as herald:
        for run in _legs(fake):
            assert (await herald.deliver("workflow_run", run_completed(run))).status_code == 202
        await herald.work()

    [check] = fake.repo(REPO).check_runs
    assert check["name"] == "Herald (commit)"
    assert check["head_sha"] == SHA
    assert check["conclusion"] == "failure"  # one leg's failure fails the commit's report
    [comment] = fake.repo(REPO).comments[PR]
    body = comment["body"]
    assert "1 failed of 10 executions" in body
    assert "CI (3.12)" in body  # the failure is named with the run it came from


async def test_the_expected_number_of_runs_reports_without_waiting(fake, redis_url, tmp_path):
    env = {"HERALD_COALESCE_SECONDS": "3600", "HERALD_COALESCE_EXPECTED_RUNS": "3"}
    async with start(redis_url, tmp_path, fake, **env) as herald:
        for run in _legs(fake):
            await herald.deliver("workflow_run", run_completed(run))
        await herald.work(jobs=3)  # the three runs; the quiet-period jobs stay due later

    [check] = fake.repo(REPO).check_runs
    assert check["name"] == "Herald (commit)"


async def test_a_run_arriving_later_updates_the_one_report_in_place(fake, redis_url, tmp_path):
    first, second, third = _legs(fake, failing="CI (3.13)")
    async with start(redis_url, tmp_path, fake, HERALD_COALESCE_SECONDS="1") as herald:
        for run in (first, second):
            await herald.deliver("workflow_run", run_completed(run))
        await herald.work()
        [check] = fake.repo(REPO).check_runs
        assert check["conclusion"] == "success"

        await herald.deliver("workflow_run", run_completed(third))
        await herald.work()

    [check] = fake.repo(REPO).check_runs
    assert check["conclusion"] == "failure"
    [comment] = fake.repo(REPO).comments[PR]
    assert "CI (3.13)" in comment["body"]


async def test_without_coalescing_each_run_has_its_own_report(fake, redis_url, tmp_path):
    async with start(redis_url, tmp_path, fake) as herald:
        for run in _legs(fake):
            await herald.deliver("workflow_run", run_completed(run))
        await herald.work()

    assert sorted(c["name"] for c in fake.repo(REPO).check_runs) == [
        f"Herald ({leg})" for leg in LEGS]


async def test_a_repositorys_herald_yml_turns_coalescing_on_for_it(fake, redis_url, tmp_path):
    fake.add_file(REPO, SHA, ".herald.yml", b"version: 1\ncoalesce:\n  quiet_seconds: 1\n")
    async with start(redis_url, tmp_path, fake) as herald:  # the server's default: off
        for run in _legs(fake):
            await herald.deliver("workflow_run", run_completed(run))
        await herald.work()

    [check] = fake.repo(REPO).check_runs
    assert check["name"] == "Herald (commit)"
