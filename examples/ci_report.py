"""Report from inside any CI job, the system found from its environment.

    python examples/ci_report.py 'reports/**/*.xml'

Which of the eight CI systems runs this, and the run, commit and pull request, come from
the job's variables (`herald.detect_ci_environment`); the report goes where the change is
reviewed, with the forge's token from the environment, as `herald report --auto-detect`
does. Exits 1 when a test failed, 2 when an input could not be read, 3 when nothing
could be published.
"""

from __future__ import annotations

import asyncio
import sys

import herald


async def main(patterns: list[str]) -> int:
    found = herald.detect_ci_environment()
    if found is None:
        print("not inside a CI job Herald knows", file=sys.stderr)
        return 3
    name, job = found
    run = herald.parse_reports(patterns, run_id=job.get("run_id", "run"))
    try:
        report = await herald.Reporter(herald.create_provider(name)).report_test_result(run)
    except herald.NotConfigured as exc:
        print(f"cannot publish: {exc}", file=sys.stderr)
        return 3
    totals = run.totals()
    where = report.published.url or report.published.where if report.published else "-"
    print(f"{name}: {totals.total} tests, {totals.failures} failed; {where}")
    return 1 if totals.failures else 2 if run.errors else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(sys.argv[1:])))
