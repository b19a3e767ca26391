"""Keep a build's logs beside its report and print a link to each.

    HERALD_PUBLIC_URL=https://herald.example HERALD_URL_SIGNING_KEY=... \
        python examples/artifact_urls.py BUILD_DIR RUN_ID 'logs/*.log' ...

Stores every file the patterns name under BUILD_DIR in HERALD_STORE_DIR, then asks for
all their links at once (a link that cannot be had prints as `-`). With the two
variables set the links are Herald's signed, expiring `/files/store/...` URLs.
"""

from __future__ import annotations

import asyncio
import sys

import herald


async def main(build: str, run_id: str, patterns: list[str]) -> int:
    reporter = herald.Reporter(None, artifact_dir=build)
    stored = await reporter.collect_and_upload_artifacts(run_id, patterns)
    urls = await reporter.get_artifact_urls(run_id, [s.name for s in stored])
    for item in stored:
        print(f"{item.name}\t{item.size}\t{urls[item.name] or '-'}")
    return 0 if stored else 2


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:])))
