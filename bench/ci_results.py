"""CI sources' own test results: memory and time of reading N tests, page by page.

    python -m bench.ci_results [--tests 10000,100000]

CircleCI's stored test results (`/project/{slug}/{job}/tests`, `next_page_token`) and
TeamCity's test occurrences (`/app/rest/testOccurrences`, `nextHref`) are read by the real
clients from the test fakes on loopback (the fakes serve from the same process, as in
the tests), the whole path a report takes: `list_artifacts`, then `native_results` into
the result model. Beside each, the baseline: the same pages fetched with a bare httpx
loop and `json.loads`, each dropped after parsing, which is the floor of reading them at
all. Peak is tracemalloc's, from after the fake was seeded; "held" is what the results
take once read (the model of N cases, which the report needs), with the run still alive.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bot.results.model import TestRun
from bot.settings import ProviderSettings
from providers.circleci.client import create_client as circleci_client
from providers.teamcity.client import create_client as teamcity_client
from tests.circleci.conftest import circleci_env
from tests.circleci.world import ref_of as circleci_ref
from tests.circleci.world import seed as circleci_seed
from tests.circleci.world import webhook
from tests.fakes.circleci import TOKEN as CIRCLE_TOKEN
from tests.fakes.circleci import FakeCircleCI, FakeJob, stored_test
from tests.fakes.github import serve
from tests.fakes.teamcity import TOKEN as TEAMCITY_TOKEN
from tests.fakes.teamcity import FakeTeamCity, occurrence
from tests.teamcity.conftest import INSTANCE, REMOTE, ROOT, teamcity_env
from tests.teamcity.world import notification, seed_build
from tests.teamcity.world import ref_of as teamcity_ref

MiB = 1024 * 1024
#: Tests per page, as both systems serve them at most.
PAGE = 1000


#: (seconds, peak MiB, held MiB, what the work returned)
Figures = tuple[float, float, float, Any]


async def measured(work: Callable[[], Awaitable[Any]]) -> Figures:
    """(seconds, peak MiB, held MiB, result) of `work`."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    result = await work()
    seconds = time.perf_counter() - started
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, (peak - before) / MiB, (now - before) / MiB, result


async def pages(http: httpx.AsyncClient, url: str, headers: dict[str, str],
                next_of: Callable[[dict[str, Any]], str | None]) -> int:
    """The baseline: every page fetched and parsed, nothing kept."""
    count = 0
    while url:
        page = (await http.get(url, headers=headers)).json()
        count += len(page.get("items") or page.get("testOccurrence") or [])
        url = next_of(page) or ""
    return count


async def circleci(n: int) -> tuple[Figures, Figures]:
    api = FakeCircleCI()
    async with serve(api) as url, httpx.AsyncClient() as http:
        api.served = url
        api.page_size = PAGE
        circleci_seed(api, jobs=[FakeJob("test", "failed", 4411, tests=[
            stored_test(f"test_{i}", "failure" if i % 1000 == 0 else "success")
            for i in range(n)])])
        client = circleci_client(ProviderSettings("circleci", circleci_env(api)), http)
        ref = circleci_ref(webhook())

        async def read() -> TestRun:
            await client.get_build(ref)
            await client.list_artifacts(ref)
            run = await client.native_results(ref)
            assert run is not None
            return run

        async def baseline() -> int:
            first = f"{api.url}/project/gh/acme-fin/ledger/4411/tests"
            return await pages(http, first, {"Circle-Token": CIRCLE_TOKEN}, lambda page: (
                f"{first}?page-token={page['next_page_token']}"
                if page.get("next_page_token") else None))

        ours = await measured(read)
        base = await measured(baseline)
        api.release()
    return ours, base


async def teamcity(n: int) -> tuple[Figures, Figures]:
    server = FakeTeamCity()
    async with serve(server) as url, httpx.AsyncClient() as http:
        server.url = url
        server.add_root(INSTANCE, ROOT, REMOTE)
        seed_build(server, tests=[
            occurrence(f"unit: com.acme.T.test{i}", "FAILURE" if i % 1000 == 0 else "SUCCESS",
                       number=i + 1) for i in range(n)])
        client = teamcity_client(ProviderSettings("teamcity", teamcity_env(server)), http)
        ref = teamcity_ref(notification())

        async def read() -> TestRun:
            await client.get_build(ref)
            await client.list_artifacts(ref)
            run = await client.native_results(ref)
            assert run is not None
            return run

        async def baseline() -> int:
            first = (f"{url}/app/rest/testOccurrences?locator=build:(id:{ref.run_id}),"
                     "count:1000")
            return await pages(http, first, {"Authorization": f"Bearer {TEAMCITY_TOKEN}",
                                             "Accept": "application/json"},
                               lambda page: f"{url}{page['nextHref']}"
                               if page.get("nextHref") else None)

        ours = await measured(read)
        base = await measured(baseline)
        server.release()
    return ours, base


async def main(counts: list[int]) -> None:
    print(f"{'source':<10} {'tests':>8} | {'Herald s':>8} {'peak MiB':>9} {'held MiB':>9} | "
          f"{'baseline s':>10} {'peak MiB':>9}")
    for name, bench in (("CircleCI", circleci), ("TeamCity", teamcity)):
        for n in counts:
            (s, peak, held, run), (bs, bpeak, _, btotal) = await bench(n)
            total = run.totals().total
            assert total >= n and btotal == n, (name, n, total, btotal)
            print(f"{name:<10} {n:>8,} | {s:>8.2f} {peak:>9.1f} {held:>9.1f} | "
                  f"{bs:>10.2f} {bpeak:>9.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tests", default="10000,100000")
    args = parser.parse_args()
    asyncio.run(main([int(part) for part in args.tests.split(",")]))
