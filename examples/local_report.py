"""Report a folder of test results with the Local provider.

    python examples/local_report.py RESULTS_DIR [RUN_ID]

Parses every report under RESULTS_DIR, writes herald-report/report.{md,html,json} and
publishes the same three into herald-reports/RUN_ID/. Exits 1 when a test failed, 2
when an input could not be read, as `herald render` does.
"""

from __future__ import annotations

import asyncio
import sys

import herald


async def main(results: str, run_id: str) -> int:
    run = herald.parse_reports([results], run_id=run_id)
    provider = herald.create_provider("local", {"reports_dir": "herald-reports"})
    report = await herald.Reporter(provider, report_dir="herald-report").report_test_result(run)
    totals = run.totals()
    print(f"{totals.total} tests, {totals.failures} failed; published to "
          f"{report.published.where if report.published else 'nowhere'}")
    for error in run.errors:
        print(f"unreadable: {error.source}: {error.reason}", file=sys.stderr)
    return 1 if totals.failures else 2 if run.errors else 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "local")))
