"""`herald check`: the configuration per provider (secrets masked), whether Redis and each
configured API answer, and what each provider can do; exit 1 when anything would stop
Herald from working (`bot.startup`)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from bot.commands.serve import refuse
from bot.composition import directory
from bot.console import printable
from bot.settings import ConfigError, Settings
from bot.startup import Inspection, ProviderCheck, inspect, masked_url


def configure(parser: argparse.ArgumentParser) -> None:
    """No options: it reads the same environment `herald serve` would."""


def _table(title: str, rows: Sequence[tuple[str, str]]) -> list[str]:
    width = max((len(key) for key, _ in rows), default=0)
    lines = [title]
    for key, value in rows:
        lines.append(f"  {key.ljust(width)}  {value}")
    return lines


def _provider_rows(check: ProviderCheck) -> list[tuple[str, str]]:
    rows = [("configured", "yes" if check.client is not None
             else f"no: {check.not_configured}")]
    webhooks = ("accepted (verified with the sender's own key)" if check.always_on
                else "accepted (a secret is set)" if check.receives
                else f"refused ({check.secret_error})" if check.secret_error
                else "refused (no secret)")
    rows.append(("webhooks", webhooks))
    if check.api_url is not None:
        rows.append(("API", f"{check.api_url}: {check.reachable or 'not probed (no client)'}"))
    rows.append(("can do", ", ".join(check.abilities()) or "nothing"))
    for index, (name, value) in enumerate(check.settings):
        rows.append(("settings" if index == 0 else "", f"{name} = {value}"))
    return rows


def render(settings: Settings, found: Inspection) -> str:
    lines = _table("herald", [
        ("redis", f"{masked_url(settings.redis_url) if settings.redis_url else '-'}: "
                  f"{found.redis}"),
        ("queue", settings.queue_name),
        ("state", str(settings.state_dir)),
    ])
    for check in found.providers:
        lines.append("")
        lines += _table(check.name, _provider_rows(check))
    lines.append("")
    if found.problems:
        lines.append("problems (herald serve, web and worker refuse to start):")
        lines += [f"  {problem}" for problem in found.problems]
    else:
        lines.append("no configuration problems")
    return "\n".join(printable(line) for line in lines)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return refuse("check", exc)
    found = asyncio.run(inspect(settings, directory()))
    print(render(settings, found))
    return 0 if found.ok else 1
