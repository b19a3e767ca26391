"""`/retest`: rerun what failed for a change, on a trusted reviewer's request.

Provider-neutral: it uses only the roles of `bot.ports`. On `comment.created`: ignore bots,
find a `/retest` command outside code and quotes (`parse_command`, a pure function), check
the author may ask (`forge.can_retest`, cached for a minute), react at once, then find the
change's head commit (`forge.head_change`) and rerun the failed work of every CI system
that ran for it: the forge's own CI, and every CI source Herald recorded reporting on that
commit (`Store.reported_runs`: a CircleCI or Jenkins run on a GitHub pull request). Each
source names its latest failed runs (`CISource.latest_failed_runs`); the reply says what
was rerun. Untrusted authors get one short, polite reply naming who may retest. A
repository whose `.herald.yml` at the head commit says `retest: {who: nobody}` (GitHub,
GitLab) gets a reply saying `/retest` is turned off there, and nothing is rerun.

On `check.rerequested` (someone pressed "Re-run" or "Re-run failed" on Herald's own check)
the run behind that check is rerun the same way; the forge only shows those buttons to
people with write access.

A retried job never reruns a run twice nor replies twice: what was done is recorded per
comment in Redis (`bot.store`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

from bot.coalesce import COMMIT
from bot.context import Context
from bot.events import CHECK_REREQUESTED, COMMENT_CREATED, Comment, RunRef
from bot.ports import (
    Change,
    CISource,
    ForgeTarget,
    NotConfigured,
    PermanentError,
    ReportedRunsSource,
    TransientError,
    Unsupported,
)
from bot.repo_config import RetestWho
from bot.repo_config_read import read_repo_config
from bot.reports.markdown import md_link, md_text
from bot.routing import Router
from bot.store import PERMISSION_TTL_SECONDS, LockBusy, Store, lock_ttl

router = Router()

COMMAND: Final = "retest"
RERUNNING: Final = "@{author} re-running the failed jobs of {runs}."
NOTHING_FAILED: Final = (
    "@{author} nothing to retest: no run for this pull request's latest commit has failed."
)
NOT_ALLOWED: Final = "@{author} sorry, I can't retest on your request. {policy}"
COULD_NOT: Final = "Could not rerun {run}: {error}."
TURNED_OFF: Final = (
    "@{author} `/retest` is turned off for this repository (`.herald.yml`: "
    "`retest: {{who: nobody}}`)."
)

LOCK_WAIT_SECONDS: Final = 10.0

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_COMMAND_LINE = re.compile(r"^ {0,3}/(?P<name>[a-z][a-z-]*)(?:[ \t]+(?P<args>.*))?$", re.I)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: tuple[str, ...] = ()


def parse_command(body: str) -> Command | None:
    """The first `/retest` that starts a line of prose, or None.

    Lines inside fenced code blocks, indented code (four spaces or a tab), block quotes
    (`>`) and inline code are not commands: quoting someone's `/retest` must not run it.
    """
    fence: str | None = None
    for line in body.splitlines():
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(
                fence
            ) and not line.strip().lstrip(fence[0]):
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        if line.startswith(("    ", "\t")) or line.lstrip(" ").startswith(">"):
            continue
        match = _COMMAND_LINE.match(line.rstrip())
        if match and match.group("name").lower() == COMMAND:
            return Command(COMMAND, tuple((match.group("args") or "").split()))
    return None


#: The CI system behind each provider name, as people call it: a reply on the forge says
#: where a rerun runs when that is not the forge's own CI.
CI_NAMES: Final = {
    "github": "GitHub Actions", "gitlab": "GitLab CI/CD", "bitbucket": "Bitbucket Pipelines",
    "azure-devops": "Azure Pipelines", "jenkins": "Jenkins", "circleci": "CircleCI",
    "travis": "Travis CI", "teamcity": "TeamCity",
}


def ci_name(provider: str) -> str:
    return md_text(CI_NAMES.get(provider, provider))


def run_label(ref: RunRef, forge: str | None = None) -> str:
    """The run as a link; `on <CI>` after it when `forge` (where the reply goes) is another
    system than the run's."""
    # Workflow and pipeline names come from the repository under review: escaped, they
    # can neither forge a link nor mention anyone.
    name = ref.extra.get("name") or ref.extra.get("workflow_name") or f"run {ref.run_id}"
    label = md_link(str(name), ref.url)
    where = CI_NAMES.get(ref.provider, ref.provider)
    # Not twice: a run's own name may say it already ("Travis CI build #1042 of ...").
    if forge is not None and ref.provider != forge and where.lower() not in str(name).lower():
        label += f" on {md_text(where)}"
    return label


def done_name(provider: str, repo: str, comment: Comment) -> str:
    return f"retest:{provider}:{repo}:{comment.id}"


@router.register(COMMENT_CREATED)
async def retest(ctx: Context) -> None:
    comment, repo, provider = ctx.event.comment, ctx.event.repo, ctx.event.provider
    if comment is None or repo is None or comment.author_is_bot:
        return
    if parse_command(comment.body) is None:
        return
    forge: ForgeTarget = ctx.clients.forge(provider)
    store = Store(ctx.redis)
    done = done_name(provider, repo, comment)
    # Two deliveries of one comment (a project hook and a group hook, a resend) may run at
    # once on two workers: the lock makes the second see what the first did.
    try:
        async with store.lock(done, ttl=lock_ttl(ctx.settings), wait=LOCK_WAIT_SECONDS):
            await _retest(ctx, forge, store, done, provider, repo, comment)
    except LockBusy as busy:
        raise TransientError(str(busy), retry_after=busy.retry_after) from None


async def _retest(
    ctx: Context, forge: ForgeTarget, store: Store, done: str, provider: str, repo: str,
    comment: Comment,
) -> None:
    if await store.done(done, "replied"):
        return
    if not await _trusted(store, forge, provider, repo, comment):
        ctx.log.info("retest refused", author=comment.author)
        await forge.reply(
            repo, comment, NOT_ALLOWED.format(author=comment.author, policy=forge.retest_policy)
        )
        await store.mark_done(done, "replied")
        return
    await forge.acknowledge(repo, comment)
    change = await forge.head_change(repo, comment)
    if change is not None and await _turned_off(ctx, forge, change):
        ctx.log.info("retest turned off by the repository's configuration")
        await forge.reply(repo, comment, TURNED_OFF.format(author=comment.author))
        await store.mark_done(done, "replied")
        return
    problems: list[str] = []
    failed = await _failed_runs(ctx, store, provider, change, problems) if change else []
    rerun: list[RunRef] = []
    started: dict[str, str] = {}
    for ref in failed:
        item = f"run:{ref.provider}:{ref.run_id}"
        if not await store.done(done, item):
            ci: CISource = ctx.clients.source(ref.provider)
            # Who asked, where: a CI that keeps a note with the rerun (TeamCity's queue
            # comment) names them; the forge's own login, never a mention on the forge.
            asked = replace(ref, extra={**ref.extra, "requested_by": comment.author,
                                        "requested_on": provider})
            try:
                result = await ci.rerun(asked, failed_only=True)
            except (PermanentError, Unsupported) as exc:
                problems.append(COULD_NOT.format(run=run_label(ref, provider),
                                                 error=md_text(str(exc).rstrip("."))))
                continue
            await store.mark_done(done, item)
            if result.url:
                started[ref.run_id] = result.url
        rerun.append(ref)
    await forge.reply(repo, comment, reply_text(comment.author, rerun, problems, started,
                                                    forge=provider))
    await store.mark_done(done, "replied")
    ctx.log.info("retest", author=comment.author, rerun=[r.run_id for r in rerun],
                 problems=len(problems))


async def _failed_runs(
    ctx: Context, store: Store, forge_name: str, change: Change, problems: list[str]
) -> list[RunRef]:
    """The latest failed runs for `change` in every CI system that ran for it: the forge's
    own CI first, then each one recorded reporting on the commit."""
    recorded = await store.reported_runs(change)
    names = dict.fromkeys([forge_name, *sorted(r.provider for r in recorded)])
    found: list[RunRef] = []
    for name in names:
        try:
            source = ctx.clients.source(name)
        except (NotConfigured, Unsupported) as exc:
            if name != forge_name:  # a forge without a CI of its own is no problem
                problems.append(f"Could not ask {ci_name(name)}: {md_text(str(exc))}.")
            continue
        if not isinstance(source, CISource):
            continue
        try:
            if isinstance(source, ReportedRunsSource):
                mine = [r for r in recorded if r.provider == name]
                found.extend(await source.latest_failed_of(change, mine))
            else:
                found.extend(await source.latest_failed_runs(change))
        except PermanentError as exc:
            problems.append(f"Could not ask {ci_name(name)}: {md_text(str(exc))}.")
    return found


def reply_text(
    author: str, rerun: list[RunRef], problems: list[str], started: dict[str, str] | None = None,
    forge: str | None = None,
) -> str:
    """The answer to `/retest` on `forge`; `started` maps a rerun's run id to the new run it
    started (a CI that reruns by starting a new run, as Bitbucket Pipelines does)."""
    if rerun:
        labels = []
        for ref in rerun:
            url = (started or {}).get(ref.run_id)
            labels.append(run_label(ref, forge)
                          + (f" ({md_link('new run', url)})" if url else ""))
        lines = [RERUNNING.format(author=author, runs=", ".join(labels))]
    elif problems:
        lines = [f"@{author}"]
    else:
        lines = [NOTHING_FAILED.format(author=author)]
    return "\n\n".join([*lines, *problems])


async def _turned_off(ctx: Context, forge: ForgeTarget, change: Change) -> bool:
    """Whether `.herald.yml` at the head commit says `retest: {who: nobody}`. A file that
    cannot be used counts as the default (`trusted`): refusing a trusted reviewer over a
    typo would be the worse surprise, and the file's reports already say it is broken."""
    outcome = await read_repo_config(ctx.redis, forge, change)
    return outcome.config.retest.who is RetestWho.NOBODY


async def _trusted(
    store: Store, forge: ForgeTarget, provider: str, repo: str, comment: Comment
) -> bool:
    name = f"permission:{provider}:{repo}:{comment.author.lower()}"
    cached = await store.cached_flag(name)
    if cached is not None:
        return cached
    trusted = await forge.can_retest(repo, comment)
    await store.cache_flag(name, trusted, PERMISSION_TTL_SECONDS)
    return trusted


async def _rerun_commit(ctx: Context, ref: RunRef) -> None:
    """"Re-run" on a commit's one report (`Herald (commit)`, `bot.coalesce`): what failed in
    every CI system that ran for the commit, as `/retest` finds it; each run once however
    often the job is retried."""
    store = Store(ctx.redis)
    change = Change(forge=ref.provider, repo=ref.repo, sha=ref.sha or "")
    problems: list[str] = []
    done = f"rerequested:{ctx.event.provider}:{ctx.event.delivery_id}"
    for failed in await _failed_runs(ctx, store, ref.provider, change, problems):
        item = f"run:{failed.provider}:{failed.run_id}"
        if await store.done(done, item):
            continue
        try:
            await ctx.clients.source(failed.provider).rerun(failed, failed_only=True)
        except (PermanentError, Unsupported) as exc:
            problems.append(str(exc))
            continue
        await store.mark_done(done, item)
        ctx.log.info("rerun requested on the commit's check", ci=failed.provider,
                     run=failed.run_id)
    for problem in problems:
        ctx.log.warning("could not rerun for the commit's check", error=problem)


@router.register(CHECK_REREQUESTED)
async def rerequested(ctx: Context) -> None:
    """GitHub's "Re-run" on one of Herald's check runs (only people with write access see
    it). A check run of another CI system (external id `<ci>:<run>/<attempt>`) reruns in
    that system: the run is the one Herald recorded reporting on that commit, never one
    the external id alone names."""
    ref = ctx.event.run
    if ref is None:
        return
    external = str(ref.extra.get("external_id") or "")
    ci_name, foreign, own = external.partition(":")
    if ci_name == COMMIT and foreign:
        await _rerun_commit(ctx, ref)
        return
    if foreign:
        run_id = own.rpartition("/")[0] or own
        recorded = await Store(ctx.redis).reported_runs(
            Change(forge=ref.provider, repo=ref.repo, sha=ref.sha or "")
        )
        matching = [r for r in recorded if r.provider == ci_name and r.run_id == run_id]
        if not matching:
            ctx.log.info("rerun requested on a check run Herald has no record of",
                         ci=ci_name, run=run_id)
            return
        ref = matching[0]
    ci: CISource = ctx.clients.source(ref.provider)
    rerun = await ci.rerun(ref, failed_only=True)
    ctx.log.info("rerun requested on our check", ci=ref.provider, runs=rerun.runs,
                 jobs=rerun.jobs)
