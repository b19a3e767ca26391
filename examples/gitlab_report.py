"""Post a report on a GitLab merge request from any script.

    HERALD_GITLAB_TOKEN=... HERALD_GITLAB_URL=https://gitlab.example \
        python examples/gitlab_report.py PROJECT_ID GROUP/PROJECT SHA MR_IID 'reports/*.xml'

The commit status on SHA and the sticky note on merge request MR_IID, as the bot posts
them; a second run replaces both instead of adding.
"""

from __future__ import annotations

import asyncio
import sys

import herald


async def main(project_id: str, path: str, sha: str, mr_iid: str, patterns: list[str]) -> int:
    provider = herald.create_provider("gitlab", {
        "project_id": project_id, "repository": path, "commit_sha": sha, "mr_iid": mr_iid})
    run = herald.parse_reports(patterns, run_id=f"script-{sha[:12]}")
    report = await herald.Reporter(provider).report_test_result(run)
    print(report.published.url if report.published else "not published")
    return 1 if run.totals().failures else 0


if __name__ == "__main__":
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(*sys.argv[1:5], sys.argv[5:])))
