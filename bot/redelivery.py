"""Missed webhooks recovered: a periodic pass that asks the forge to resend failed deliveries.

GitHub never redelivers a webhook by itself: a delivery that found Herald down, behind a
broken proxy or answering 5xx is lost unless someone presses "Redeliver". This pass, an ARQ
cron job of the worker (`bot.worker`), reads the App's recent deliveries from the newest
back to `HERALD_GITHUB_REDELIVER_WINDOW_HOURS`, and asks GitHub to redeliver each one that
failed, at most `HERALD_GITHUB_REDELIVER_MAX_PER_PASS` per pass. GitHub sends the redelivery
with the same `X-GitHub-Delivery` guid, so Herald's own dedupe still runs each event once.

A guid is asked for at most once (`herald:redelivered:{provider}:{guid}`, kept as long as
GitHub keeps deliveries), and never when:
- any attempt of it succeeded (a 2xx: an earlier redelivery, by us or by hand, got through);
- Herald already accepted it (its dedupe record `bot.queue.dedupe_key` exists): Herald took
  the delivery but GitHub saw a failure, say an answer lost to a proxy timeout.

What this can hide: nothing is dropped or reclassified, but a failed delivery is *not*
resent when it is older than the window, beyond `SCAN_LIMIT` deliveries back, or past the
per-pass bound (the next pass takes it up while it is in the window). Each of those is
logged with the count left behind, so a failure that was not recovered is visible. A
delivery Herald refuses every time (a bad signature) is resent once and fails again;
GitHub lists it failed, as it was. The record is written before the request, so a worker
killed between the two leaves that guid un-asked for good (asking at most once wins over
asking at least once: a delivery that keeps failing is not resent every pass); it stays
listed failed on GitHub, where it can be redelivered by hand.

GitLab has no API to resend a project hook's delivery other than the per-event "resend"
of the project hook events API; see docs/gitlab.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, runtime_checkable

from redis.asyncio import Redis

from bot.logging import get_logger
from bot.ports import NotConfigured, ProviderError, TransientError
from bot.queue import DEFAULT_QUEUE_NAME, dedupe_key

log = get_logger("herald.redelivery")

PROVIDER: Final = "github"
RECORD_PREFIX: Final = "herald:redelivered:"
#: GitHub keeps (and can redeliver) deliveries of the past 3 days.
GITHUB_HISTORY_SECONDS: Final = 3 * 24 * 3600
#: Deliveries read per pass at most, however many fall in the window: 50 pages of 100.
SCAN_LIMIT: Final = 5000


@runtime_checkable
class HookDeliveries(Protocol):
    """What the pass needs from a forge client (`providers.github.client.GitHubClient`)."""

    async def hook_deliveries(self, *, since: float, limit: int) -> list[Mapping[str, Any]]:
        """The App's deliveries, newest first, back to `since` (epoch seconds), at most
        `limit` of them."""
        ...

    async def redeliver_hook_delivery(self, delivery_id: int) -> None:
        """Ask for one delivery (by its numeric `id`, not its guid) to be sent again."""
        ...


@dataclass(frozen=True)
class RedeliveryConfig:
    window_seconds: float
    max_per_pass: int
    #: Whose dedupe records tell an accepted delivery (`HERALD_QUEUE_NAME` namespaces them).
    queue_name: str = DEFAULT_QUEUE_NAME


@dataclass(frozen=True)
class Candidate:
    """A failed delivery to ask for again: the latest failed attempt of its guid."""

    id: int
    guid: str
    event: str
    status_code: int


def delivered_at(delivery: Mapping[str, Any]) -> float | None:
    """`delivered_at` as epoch seconds; None when missing or malformed."""
    value = delivery.get("delivered_at")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def succeeded(delivery: Mapping[str, Any]) -> bool:
    code = delivery.get("status_code")
    return isinstance(code, int) and 200 <= code < 300


def select(deliveries: Iterable[Mapping[str, Any]], *, since: float) -> list[Candidate]:
    """The guids to redeliver, newest first: failed, in the window, no attempt succeeded.

    A delivery without a usable `id`, `guid` or `delivered_at` is skipped: asking GitHub to
    resend something we cannot name would fail anyway, and the guid is the idempotency key.
    """
    ok: set[str] = set()
    failed: dict[str, Candidate] = {}
    for delivery in deliveries:
        guid, number, when = delivery.get("guid"), delivery.get("id"), delivered_at(delivery)
        if not isinstance(guid, str) or not guid or when is None or when < since:
            continue
        if succeeded(delivery):
            ok.add(guid)
        elif isinstance(number, int) and guid not in failed:
            code = delivery.get("status_code")
            failed[guid] = Candidate(number, guid, str(delivery.get("event") or "?"),
                                     code if isinstance(code, int) else 0)
    return [candidate for guid, candidate in failed.items() if guid not in ok]


def record_key(provider: str, guid: str) -> str:
    return f"{RECORD_PREFIX}{provider}:{guid}"


async def recover(
    redis: Redis[bytes],
    client: HookDeliveries,
    config: RedeliveryConfig,
    *,
    now: float | None = None,
) -> list[str]:
    """One pass; returns the guids GitHub was asked to redeliver."""
    now = time.time() if now is None else now
    since = now - config.window_seconds
    deliveries = await client.hook_deliveries(since=since, limit=SCAN_LIMIT)
    if len(deliveries) >= SCAN_LIMIT:
        log.warning("more deliveries in the window than one pass reads; older ones not "
                    "checked", read=len(deliveries), window_seconds=config.window_seconds)
    candidates = select(deliveries, since=since)
    # Accepted guids are skipped before the bound applies, so they do not use up a pass.
    accepted = await _existing(redis, [dedupe_key(PROVIDER, c.guid, config.queue_name)
                                       for c in candidates])
    pending = [c for c, known in zip(candidates, accepted, strict=True) if not known]
    asked: list[str] = []
    for index, candidate in enumerate(pending):
        if len(asked) >= config.max_per_pass:
            log.warning("failed deliveries left for the next pass",
                        left=len(pending) - index, max_per_pass=config.max_per_pass)
            break
        key = record_key(PROVIDER, candidate.guid)
        if not await redis.set(key, int(now), nx=True, ex=GITHUB_HISTORY_SECONDS):
            continue  # asked before (this pass on another worker, or an earlier one)
        try:
            await client.redeliver_hook_delivery(candidate.id)
        except TransientError as exc:
            # OutcomeUnknown too: GitHub may have resent it. The record stays (once per
            # guid), and GitHub's listing shows what happened.
            log.warning("redelivery not confirmed", guid=candidate.guid, error=str(exc))
            continue
        except ProviderError as exc:
            # Refused outright (GitHub no longer has it, a permission): nothing was sent,
            # so a later pass may ask again while it is in the window.
            await redis.delete(key)
            log.error("redelivery refused", guid=candidate.guid, error=str(exc))
            continue
        asked.append(candidate.guid)
        log.info("redelivery requested", guid=candidate.guid, _event=candidate.event,
                 status_code=candidate.status_code)
    return asked


async def _existing(redis: Redis[bytes], keys: Sequence[str]) -> list[bool]:
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.exists(key)
        return [bool(n) for n in await pipe.execute()]


async def recover_missed_deliveries(ctx: dict[str, Any]) -> None:
    """The cron job: one pass for the GitHub App, when the worker has its credentials."""
    config: RedeliveryConfig = ctx["redelivery_config"]
    try:
        client = ctx["clients"].source(PROVIDER)
    except (NotConfigured, ProviderError) as exc:
        log.warning("missed deliveries not checked", error=str(exc))
        return
    if not isinstance(client, HookDeliveries):
        log.warning("missed deliveries not checked: the GitHub client cannot list them")
        return
    try:
        asked = await recover(ctx["redis"], client, config)
    except ProviderError as exc:
        # A pass that cannot list deliveries (a token instead of the App, GitHub down)
        # says so each time; the next pass tries again.
        log.error("missed deliveries not checked", error=str(exc))
        return
    log.info("missed deliveries checked", redelivered=len(asked))
