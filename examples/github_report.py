"""Post a report on a GitHub pull request from any script.

    HERALD_GITHUB_TOKEN=... python examples/github_report.py OWNER/REPO SHA PR 'reports/*.xml'

The check run on SHA and the sticky comment on pull request PR, as the bot posts them; a
second run replaces both instead of adding. `HERALD_GITHUB_API_URL` points it at GitHub
Enterprise, `HERALD_GITHUB_TOKEN_LOGIN` names the account the token posts as.
"""

from __future__ import annotations

import asyncio
import sys

import herald


async def main(repository: str, sha: str, number: str, patterns: list[str]) -> int:
    provider = herald.create_provider("github", {
        "repository": repository, "commit_sha": sha, "pr_number": number})
    run = herald.parse_reports(patterns, run_id=f"script-{sha[:12]}")
    report = await herald.Reporter(provider).report_test_result(run)
    print(report.published.url if report.published else "not published")
    return 1 if run.totals().failures else 0


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])))
