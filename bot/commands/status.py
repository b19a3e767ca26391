"""`herald status`: live workers, queue depth, the oldest waiting job and recent failures.

Reads the Redis in `HERALD_REDIS_URL` directly (`bot.status.collect`), so it works where
no web process runs and needs no `HERALD_STATUS_TOKEN`; `--json` prints what `GET
/status` answers. Exit status 0, 1 when Redis cannot be reached, 2 for a bad setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from redis.exceptions import RedisError

from bot.app import redis_client
from bot.commands.serve import refuse
from bot.console import printable
from bot.settings import ConfigError, Settings
from bot.status import collect, render_table


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON, as GET /status does")


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        if not settings.redis_url:
            raise ConfigError("HERALD_REDIS_URL (or REDIS_URL) is required: the status is kept "
                              "in the Redis the workers share")
    except ConfigError as exc:
        return refuse("status", exc)
    try:
        status = asyncio.run(_collect(settings.redis_url, settings.queue_name))
    except (RedisError, OSError) as exc:
        print(printable(f"herald status: cannot reach Redis: {exc}"), file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else render_table(status))
    return 0


async def _collect(url: str, queue_name: str) -> dict[str, object]:
    redis = redis_client(url)
    try:
        return await collect(redis, queue_name)
    finally:
        await redis.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5
