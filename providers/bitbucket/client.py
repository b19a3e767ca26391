"""Bitbucket Cloud's API client: one object that is both Herald's `CISource` (Pipelines)
and its `ForgeTarget` (build statuses, Code Insights, pull request comments).

Pipelines sends no pipeline webhook, and Bitbucket drops any delivery over 256 KB, so
nothing is taken from the payload but coordinates: the pipeline (found by the commit
status' key, which Pipelines sets to the pipeline's UUID, else by its build number), its
steps and each step's test report (cases, and the reasons of those that failed) are
read from the API. Pipelines has no public API for a step's artifacts, so the test
report Pipelines parsed is the one source of results.

On the commit Herald sets one build status and one Code Insights report (`TEST`, with
an annotation per failure) per origin, and on each open pull request whose head it is
one sticky comment, edited in place. `/retest` starts a new pipeline for the same commit
and ref (Pipelines cannot rerun only the failed steps through its API) and answers with
its link.

API: https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pipelines/,
/api-group-commit-statuses/, /api-group-reports/, /api-group-pullrequests/,
/api-group-commits/, /api-group-repositories/ (permissions), /api-group-workspaces/.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx
import structlog

from bot import sticky
from bot.events import Comment, RunRef
from bot.forges import latest_per_key
from bot.reports import run_title
from bot.reports.markdown import WORD_JOINER, md_link, md_text
from bot.reports.summary import safe_url
from bot.results.model import ParseError, TestRun
from bot.settings import ProviderSettings, Settings
from providers.base import (
    Build,
    Change,
    Job,
    NotConfigured,
    PermanentError,
    Published,
    RemoteArtifact,
    ReportOrigin,
    Rerun,
)
from providers.bitbucket import insights
from providers.bitbucket.api import BitbucketAPI, ClientError, Forbidden, NotFound, segment
from providers.bitbucket.testreport import failed, step_run
from providers.writes import append_once

log = structlog.get_logger(__name__)

NAME: Final = "bitbucket"
PUBLIC_WEB: Final = "https://bitbucket.org"
RETEST_POLICY: Final = "Only people with write access to this repository can ask for a retest."
WRITERS: Final = frozenset({"write", "admin"})
#: A pipeline fetched by `get_build` is reused by the calls of the same job.
PIPELINE_TTL_SECONDS: Final = 120.0
PIPELINE_CACHE_SIZE: Final = 64
#: Pipelines looked through for a build number, or for a commit's latest runs.
PIPELINES_SCANNED: Final = 300
#: Test cases read per step; a step with more says the report is incomplete.
MAX_CASES_PER_STEP: Final = 20_000
#: Failed cases whose reasons (output) are read per run; the rest show without a message.
MAX_REASONS: Final = 200
MAX_PULL_REQUESTS: Final = 5
MAX_LINKS: Final = 50
_UUID = re.compile(r"^\{[0-9a-fA-F-]{36}\}$")


@dataclass(slots=True)
class Pipeline:
    repo: str
    data: dict[str, Any]
    steps: list[dict[str, Any]]
    fetched_at: float

    @property
    def uuid(self) -> str:
        return str(self.data.get("uuid") or "")

    @property
    def number(self) -> int:
        value = self.data.get("build_number")
        return value if isinstance(value, int) else 0

    @property
    def target(self) -> dict[str, Any]:
        target = self.data.get("target")
        return target if isinstance(target, dict) else {}

    @property
    def sha(self) -> str | None:
        commit = self.target.get("commit")
        value = commit.get("hash") if isinstance(commit, dict) else None
        return value if isinstance(value, str) and value else None

    @property
    def ref_name(self) -> str | None:
        value = self.target.get("ref_name") or _dig(self.target, "source")
        return value if isinstance(value, str) and value else None

    @property
    def pull_request(self) -> int | None:
        value = _dig(self.target, "pull_request", "id")
        return value if isinstance(value, int) else None

    @property
    def selector(self) -> str | None:
        """`custom: nightly`, `branches: main`, `pull-requests: **`; None for `default`."""
        selector = self.target.get("selector")
        if not isinstance(selector, dict):
            return None
        kind, pattern = selector.get("type"), selector.get("pattern")
        if kind in (None, "default") or not isinstance(kind, str):
            return None
        return f"{kind}: {pattern}" if isinstance(pattern, str) and pattern else kind

    @property
    def result(self) -> str:
        """`SUCCESSFUL`, `FAILED`, `ERROR`, `STOPPED`, ... or the state while unfinished."""
        state = self.data.get("state")
        result = _dig(state, "result", "name") or _dig(state, "stage", "name")
        name = _dig(state, "name")
        return str(result or name or "UNKNOWN")

    @property
    def failed(self) -> bool:
        return self.result in ("FAILED", "ERROR")


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _step_result(step: dict[str, Any]) -> str:
    state = step.get("state")
    return str(_dig(state, "result", "name") or _dig(state, "name") or "UNKNOWN")


def step_groups(steps: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The pipeline's steps as (label, attempts oldest first).

    Steps of one name with distinct `run_number`s are attempts of one step ("Rerun failed
    steps" runs a step again inside the same pipeline): the last is its result, the
    earlier ones its retries. Any other repeated name (parallel steps may share one) is
    numbered, `shard (1)`, `shard (2)`, so their results never stand in for each other.

    What this could hide: were two parallel steps of one name ever given distinct
    `run_number`s, the first one's failures would read as the second's retries. They are
    still shown, as earlier attempts of flaky tests, never dropped.
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for index, step in enumerate(steps):
        by_name.setdefault(str(step.get("name") or f"step {index + 1}"), []).append(step)
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    for name, members in by_name.items():
        runs = [step.get("run_number") for step in members]
        attempts = all(isinstance(r, int) for r in runs) and len(set(runs)) == len(runs)
        if len(members) == 1 or attempts:
            groups.append((name, sorted(members, key=lambda s: int(s.get("run_number") or 0))))
        else:
            groups.extend((f"{name} ({i + 1})", [step]) for i, step in enumerate(members))
    return groups


def latest_steps(steps: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(label, the step's latest attempt) of each step."""
    return [(label, attempts[-1]) for label, attempts in step_groups(steps)]


class BitbucketClient:
    """`CISource` and `ForgeTarget` for Bitbucket Cloud."""

    retest_policy: str = RETEST_POLICY

    def __init__(self, api: BitbucketAPI, *, web_url: str = PUBLIC_WEB) -> None:
        self.api = api
        self.web_url = web_url.rstrip("/")
        self._pipelines: OrderedDict[tuple[str, str], Pipeline] = OrderedDict()
        self._me: str | None = None
        self._me_known = False
        self._comment_locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def aclose(self) -> None:
        """The worker owns the httpx client; nothing of ours to close."""

    # ---- coordinates --------------------------------------------------------------------

    @staticmethod
    def _repo(repo: str) -> str:
        workspace, _, slug = repo.partition("/")
        if not workspace or not slug or "/" in slug:
            raise PermanentError(f"not a Bitbucket repository name: {repo!r}")
        return f"/repositories/{segment(workspace)}/{segment(slug)}"

    def result_url(self, repo: str, number: int) -> str:
        return f"{self.web_url}/{repo}/pipelines/results/{number}"

    # ---- pipelines ------------------------------------------------------------------------

    async def _pipeline(self, ref: RunRef, *, fresh: bool = False) -> Pipeline | None:
        """The pipeline `ref` names, or None when it is no Bitbucket pipeline (a status
        another CI system set on the commit)."""
        number = ref.extra.get("pipeline_build_number")
        if not isinstance(number, int):
            number = None
        # Pipelines keys its status by the pipeline's UUID and links its result page (the
        # build number); a status with a UUID key but no such link is another CI's.
        uuid = ref.extra.get("pipeline_uuid") or (
            ref.extra.get("status_key") if number is not None else None)
        if not (isinstance(uuid, str) and _UUID.match(uuid)):
            uuid = None
        if uuid is None and number is None:
            return None
        key = (ref.repo, uuid or f"#{number}")
        cached = self._pipelines.get(key)
        if cached and not fresh and time.monotonic() - cached.fetched_at < PIPELINE_TTL_SECONDS:
            return cached
        base = f"{self._repo(ref.repo)}/pipelines"
        if uuid is not None:
            try:
                data = await self.api.get(f"read pipeline {uuid} of {ref.repo}",
                                          f"{base}/{segment(uuid)}")
            except NotFound:
                raise PermanentError(f"pipeline {uuid} of {ref.repo} was not found") from None
        else:
            found, _more = await self.api.list(
                f"look for pipeline #{number} of {ref.repo}", f"{base}",
                {"sort": "-created_on"}, limit=PIPELINES_SCANNED,
                stop=lambda p: p.get("build_number") == number,
            )
            matches = [p for p in found if p.get("build_number") == number]
            if not matches:
                raise PermanentError(f"pipeline #{number} of {ref.repo} was not found "
                                     f"among its latest {PIPELINES_SCANNED}")
            data = matches[0]
        if not isinstance(data, dict) or not isinstance(data.get("uuid"), str):
            raise PermanentError(f"read the pipeline of {ref.repo}: Bitbucket sent none")
        steps, _more = await self.api.list(
            f"list the steps of pipeline #{data.get('build_number')}",
            f"{base}/{segment(data['uuid'])}/steps",
        )
        pipeline = Pipeline(ref.repo, data, steps, time.monotonic())
        # Under both names, so a pipeline found by its number is found again by its UUID.
        for name in (key, (ref.repo, pipeline.uuid), (ref.repo, f"#{pipeline.number}")):
            self._pipelines[name] = pipeline
            self._pipelines.move_to_end(name)
        while len(self._pipelines) > PIPELINE_CACHE_SIZE:
            self._pipelines.popitem(last=False)
        return pipeline

    # ---- CISource -----------------------------------------------------------------------

    async def get_build(self, ref: RunRef) -> Build:
        pipeline = await self._pipeline(ref, fresh=True)
        if pipeline is None:
            # Another CI's status on the commit: that CI reports through its own webhook.
            status = ref.status or "UNKNOWN"
            return Build(ref=ref, status=status, failed=status == "FAILED", url=ref.url,
                         sha=ref.sha)
        sha = pipeline.sha or ref.sha
        changes = await self._changes(ref.repo, pipeline, sha)
        url = self.result_url(ref.repo, pipeline.number)
        jobs = [
            Job(id=str(step.get("uuid")), name=name, status=_step_result(step),
                failed=_step_result(step) in ("FAILED", "ERROR"),
                url=f"{url}/steps/{step.get('uuid')}")
            for name, step in latest_steps(pipeline.steps)
        ]
        target = RunRef(
            provider=NAME, repo=ref.repo, run_id=str(pipeline.number), sha=sha,
            branch=pipeline.ref_name or ref.branch, change=changes[0] if changes else None,
            url=url, status=pipeline.result,
            extra={**ref.extra, "pipeline_uuid": pipeline.uuid,
                   "pipeline_build_number": pipeline.number, "name": pipeline.selector},
        )
        return Build(ref=target, status=pipeline.result, failed=pipeline.failed, url=url,
                     name=pipeline.selector, jobs=jobs, changes=changes, sha=sha)

    async def _changes(self, repo: str, pipeline: Pipeline, sha: str | None) -> list[int]:
        """The open pull requests this pipeline's results belong on: the one a pull
        request pipeline ran for, else those whose head is this commit."""
        if pipeline.pull_request is not None:
            return [pipeline.pull_request]
        if not sha:
            return []
        return await self._pulls_for_commit(repo, sha, pipeline.ref_name)

    async def _pulls_for_commit(self, repo: str, sha: str, branch: str | None) -> list[int]:
        """The open pull requests whose head is this commit."""
        base = self._repo(repo)
        try:
            found, _more = await self.api.list(
                f"list the pull requests of commit {sha[:12]}",
                f"{base}/commit/{segment(sha)}/pullrequests", limit=100)
        except NotFound:
            # Bitbucket answers 404 until the repository's pull request commit links are
            # indexed; the open pull requests of the branch say the same.
            found = []
            # A branch name may hold a quote, which would end BBQL's string early.
            if branch and not {'"', "\\"} & set(branch):
                found, _more = await self.api.list(
                    f"list the open pull requests of {branch}",
                    f"{base}/pullrequests",
                    {"state": "OPEN", "q": f'source.branch.name="{branch}"'},
                    limit=100)
        # Only where this commit is still the head (Bitbucket gives the head's hash short).
        ids = [
            pr["id"] for pr in found
            if pr.get("state") == "OPEN" and isinstance(pr.get("id"), int)
            and _same_commit(_dig(pr, "source", "commit", "hash"), sha)
        ]
        return sorted(set(ids))[:MAX_PULL_REQUESTS]

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        target = build.ref if build is not None else ref
        sha = (build.sha if build is not None else None) or target.sha or ref.sha
        if not sha:
            raise PermanentError(f"pipeline {target.run_id} of {ref.repo} names no commit")
        numbers = list(build.changes) if build is not None else []
        if not numbers and target.change:
            numbers = [target.change]
        return Change(forge=NAME, repo=ref.repo, sha=sha, numbers=tuple(dict.fromkeys(numbers)),
                      extra={"refname": target.branch} if target.branch else {})

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        target = build.ref if build is not None else ref
        number = target.extra.get("pipeline_build_number")
        sequence = number if isinstance(number, int) else 0
        name = build.name if build is not None else ref.extra.get("name")
        return ReportOrigin(
            run=target,
            name=name if isinstance(name, str) else None,
            sequence=sequence,
            number=str(sequence) if sequence else target.run_id,
            url=(build.url if build is not None else None) or target.url,
            failed=build.failed if build is not None else target.status == "FAILED",
        )

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        """None: Pipelines' API serves no step artifacts; its test report is the source."""
        return []

    def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        raise PermanentError("Bitbucket Pipelines serves no artifacts through its API")

    async def native_results(self, ref: RunRef) -> TestRun | None:
        pipeline = await self._pipeline(ref)
        if pipeline is None:
            return None
        base = f"{self._repo(ref.repo)}/pipelines/{segment(pipeline.uuid)}/steps"
        url = self.result_url(ref.repo, pipeline.number)
        merged = TestRun(id=str(pipeline.number), url=url)
        budget = [MAX_REASONS]
        for name, attempts in step_groups(pipeline.steps):
            latest: TestRun | None = None
            for step in attempts:
                this = await self._step_results(base, url, pipeline.number, name, step, budget)
                if this is None:
                    continue
                if latest is not None:
                    # An earlier attempt's failures become retries of this one's cases:
                    # a test that failed, then passed on the rerun, reads as flaky.
                    this.absorb_retry(latest)
                latest = this
            if latest is not None:
                merged.suites.extend(latest.suites)
                merged.errors.extend(latest.errors)
        if not merged.suites and not merged.errors:
            return None
        return merged

    async def _step_results(
        self, base: str, url: str, number: int, name: str, step: dict[str, Any],
        budget: list[int],
    ) -> TestRun | None:
        """One step attempt's test report; None when it wrote none."""
        uuid = str(step.get("uuid") or "")
        if not uuid:
            return None
        path = f"{base}/{segment(uuid)}/test_reports/test_cases"
        source = f"Bitbucket test report of step {name}"
        try:
            cases, more = await self.api.list(
                f"read the test cases of step {name!r}", path, limit=MAX_CASES_PER_STEP)
        except NotFound:
            return None  # the step wrote no test report
        except ClientError as exc:
            # One step's report refused must not hide the others': the report says it is
            # incomplete instead.
            return TestRun(id=str(number), errors=[ParseError(source=source, reason=str(exc))])
        reasons = await self._reasons(path, name, cases, budget)
        run = step_run(name, cases, reasons, run_id=str(number), step_url=f"{url}/steps/{uuid}")
        if more:
            reason = f"only its first {MAX_CASES_PER_STEP:,} test cases were read"
            run.errors.append(ParseError(source=source, reason=reason))
        return run

    async def _reasons(
        self, path: str, step: str, cases: list[dict[str, Any]], budget: list[int]
    ) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for case in cases:
            uuid = case.get("uuid")
            if not failed(case) or not isinstance(uuid, str) or budget[0] <= 0:
                continue
            budget[0] -= 1
            try:
                reasons, _more = await self.api.list(
                    f"read why {case.get('name')!r} of step {step!r} failed",
                    f"{path}/{segment(uuid)}/test_case_reasons", limit=20)
            except ClientError as exc:
                # The case still counts as failed; only its message is missing.
                log.info("bitbucket: a failed test's reasons could not be read",
                         step=step, error=str(exc))
                reasons = []
            found[uuid] = reasons
        return found

    # ---- CISource: /retest -------------------------------------------------------------

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        """The latest pipeline of each ref and selector on the change's commit, if failed."""
        if change.forge != NAME:
            return []
        found, _more = await self.api.list(
            f"list the pipelines of {change.repo}", f"{self._repo(change.repo)}/pipelines",
            {"sort": "-created_on"}, limit=PIPELINES_SCANNED)
        on_commit = [Pipeline(change.repo, p, [], 0.0) for p in found]
        on_commit = [p for p in on_commit if p.sha and _same_commit(p.sha, change.sha)]
        latest = latest_per_key(
            on_commit,
            key=lambda p: (p.target.get("type"), p.ref_name, p.selector, p.pull_request),
            order=lambda p: p.number,
        )
        return [
            RunRef(
                provider=NAME, repo=change.repo, run_id=str(p.number), sha=change.sha,
                branch=p.ref_name, change=change.numbers[0] if change.numbers else None,
                url=self.result_url(change.repo, p.number), status=p.result,
                extra={"pipeline_uuid": p.uuid, "pipeline_build_number": p.number,
                       "name": f"pipeline #{p.number}"},
            )
            for p in latest
            if p.failed
        ]

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        """A new pipeline for the same commit, ref and selector: Pipelines' API cannot rerun
        only the failed steps. After a lost answer, a newer pipeline of the same commit and
        ref found on Bitbucket counts as started (by us, or by someone as eager)."""
        pipeline = await self._pipeline(ref, fresh=True)
        if pipeline is None:
            raise PermanentError(f"run {ref.run_id} is not a Bitbucket pipeline")
        target = _new_target(pipeline.target)
        path = f"{self._repo(ref.repo)}/pipelines"

        async def started() -> dict[str, Any] | None:
            found, _more = await self.api.list(
                f"look for the new pipeline of {ref.repo}", path, {"sort": "-created_on"},
                limit=50)
            for data in found:
                other = Pipeline(ref.repo, data, [], 0.0)
                if (other.number > pipeline.number and other.sha == pipeline.sha
                        and other.ref_name == pipeline.ref_name
                        and other.selector == pipeline.selector):
                    return data
            return None

        created = await append_once(
            lambda: self.api.post(f"start a pipeline again for #{pipeline.number}", path,
                                  {"target": target}, idempotent=False),
            started,
        )
        number = created.get("build_number") if isinstance(created, dict) else None
        failed_steps = [
            name for name, step in latest_steps(pipeline.steps)
            if _step_result(step) in ("FAILED", "ERROR")
        ]
        for name in ((ref.repo, pipeline.uuid), (ref.repo, f"#{pipeline.number}")):
            self._pipelines.pop(name, None)
        return Rerun(
            runs=[str(number)] if isinstance(number, int) else [],
            jobs=failed_steps,
            url=self.result_url(ref.repo, number) if isinstance(number, int) else None,
        )

    # ---- ForgeTarget: reports ------------------------------------------------------------

    async def publish(self, change: Change, origin: ReportOrigin, run: TestRun) -> Published:
        base = f"{self._repo(change.repo)}/commit/{segment(change.sha)}"
        key = insights.origin_key(origin)
        existing = await self._report(base, key)
        shown = insights.reported_run(existing)
        newer_shown = shown is not None and shown > origin.sequence
        if not newer_shown:
            await self._set_status(change, origin, insights.build_state(run, origin),
                                   run_title(run))
            await self._insights(base, key, run, origin)
        comment_id: str | None = None
        created = False
        numbers = change.numbers
        if not change.numbers_known:
            numbers = tuple(await self._pulls_for_commit(change.repo, change.sha,
                                                         origin.run.branch))
        for number in numbers:
            upserted = await self._upsert_comment(change.repo, number, origin, run)
            comment_id = comment_id or upserted.id
            created = created or upserted.created
        return Published(status_id=key, comment_id=comment_id, created=created)

    async def publish_error(self, change: Change, origin: ReportOrigin, message: str) -> None:
        """A failed build status saying what went wrong, on the run's commit."""
        await self._set_status(change, origin, "FAILED", message)

    async def _set_status(
        self, change: Change, origin: ReportOrigin, state: str, description: str
    ) -> None:
        """Bitbucket keeps one status per key and overwrites it: a resend changes nothing."""
        url = safe_url(origin.url) or f"{self.web_url}/{change.repo}/commits/{change.sha}"
        refname = change.extra.get("refname")
        body = insights.status_body(origin, state, description, url,
                                    refname if isinstance(refname, str) else None)
        await self.api.post(
            f"set the {body['key']} status on {change.sha[:12]}",
            f"{self._repo(change.repo)}/commit/{segment(change.sha)}/statuses/build",
            body, idempotent=True,
        )

    async def _report(self, base: str, key: str) -> dict[str, Any] | None:
        try:
            report = await self.api.get(f"read the {key} report", f"{base}/reports/{key}")
        except NotFound:
            return None
        return report if isinstance(report, dict) else None

    async def _insights(self, base: str, key: str, run: TestRun, origin: ReportOrigin) -> None:
        """The report, then its annotations (created or updated by `external_id`, so a
        resend changes nothing), then the removal of those a previous report of this key
        had that this one has not (a failure since fixed)."""
        annotations = insights.annotations_of(run, origin)
        report_path = f"{base}/reports/{key}"
        await self.api.put(f"write the {key} report", report_path,
                           insights.report_body(run, origin, len(annotations)))
        for batch in insights.batches(annotations):
            await self.api.post(f"annotate the {key} report ({len(batch)})",
                                f"{report_path}/annotations", batch, idempotent=True)
        wanted = {a["external_id"] for a in annotations}
        posted, _more = await self.api.list(f"list the annotations of the {key} report",
                                            f"{report_path}/annotations")
        for annotation in posted:
            external = annotation.get("external_id")
            if isinstance(external, str) and external not in wanted:
                await self.api.delete(f"remove a fixed failure's annotation {external}",
                                      f"{report_path}/annotations/{segment(external)}")

    # ---- ForgeTarget: the sticky comment ---------------------------------------------------

    async def _whoami(self) -> str | None:
        """The token's account (`uuid`): an access token's bot user, an API token's user."""
        if not self._me_known:
            try:
                user = await self.api.get("read the token's user", "/user")
            except ClientError as exc:
                log.warning("bitbucket: the token cannot read its own user; Herald's comments "
                            "are found by their marker alone", error=str(exc))
                user = None
            uuid = user.get("uuid") if isinstance(user, dict) else None
            self._me = uuid if isinstance(uuid, str) else None
            self._me_known = True
        return self._me

    async def _upsert_comment(
        self, repo: str, number: int, origin: ReportOrigin, run: TestRun
    ) -> sticky.Upserted:
        lock = self._comment_locks.setdefault((repo, number), asyncio.Lock())
        async with lock:
            thread = _CommentThread(self, self._repo(repo), number, await self._whoami())
            return await sticky.upsert(
                thread,
                marker=insights.report_marker(origin),
                order=(origin.sequence,),
                order_of=insights.reported_order,
                render=lambda: insights.comment_body(run, origin, self._links(origin)),
                start=bool(run.errors) or run.totals().failures > 0 or origin.failed,
            )

    def _links(self, origin: ReportOrigin) -> str:
        """The pipeline and its failed steps, under the report."""
        build = self._pipelines.get((origin.run.repo, str(origin.run.extra.get("pipeline_uuid"))))
        if origin.ci != NAME or build is None:
            return ""
        url = self.result_url(origin.run.repo, build.number)
        lines = ["", "---", f"{md_link(f'Pipeline #{build.number}', url, limit=None)}: "
                 f"{md_text(build.result)}"]
        failed_steps = [
            md_link(name, f"{url}/steps/{step.get('uuid')}")
            for name, step in latest_steps(build.steps)
            if _step_result(step) in ("FAILED", "ERROR")
        ]
        if failed_steps:
            more = len(failed_steps) - MAX_LINKS
            lines.append("Failed steps: " + ", ".join(failed_steps[:MAX_LINKS])
                         + (f" and {more} more" if more > 0 else ""))
        return "\n".join(lines) + "\n"

    # ---- ForgeTarget: /retest -------------------------------------------------------------

    async def can_retest(self, repo: str, comment: Comment) -> bool:
        """Write or admin on the repository. First the workspace's effective permissions
        (groups and projects included; a token with workspace admin rights may read them),
        else the repository's explicit grant to the user (an admin token of the
        repository may read those; a permission held only through a group is not seen)."""
        account = comment.extra.get("account_id")
        if not isinstance(account, str) or not account:
            log.warning("retest: the comment names no account id; refusing",
                        author=comment.author)
            return False
        workspace, _, slug = repo.partition("/")
        try:
            found, _more = await self.api.list(
                f"read the permission of {comment.author} on {repo}",
                f"/workspaces/{segment(workspace)}/permissions/repositories/{segment(slug)}",
                {"q": f'user.account_id="{account}"'}, limit=10)
            return any(p.get("permission") in WRITERS and
                       _dig(p, "user", "account_id") == account for p in found)
        except (Forbidden, NotFound):
            pass
        try:
            grant = await self.api.get(
                f"read the explicit permission of {comment.author} on {repo}",
                f"{self._repo(repo)}/permissions-config/users/{segment(account)}")
        except NotFound:
            return False
        except Forbidden as exc:
            log.warning("retest: the token may not read permissions; refusing",
                        author=comment.author, error=str(exc))
            return False
        return isinstance(grant, dict) and grant.get("permission") in WRITERS

    async def head_change(self, repo: str, comment: Comment) -> Change | None:
        pull = await self.api.get(f"read pull request #{comment.change}",
                                  f"{self._repo(repo)}/pullrequests/{comment.change}")
        if not isinstance(pull, dict) or pull.get("state") != "OPEN":
            return None
        short = _dig(pull, "source", "commit", "hash")
        if not isinstance(short, str) or not short:
            return None
        commit = await self.api.get(f"read commit {short}",
                                    f"{self._repo(repo)}/commit/{segment(short)}")
        sha = commit.get("hash") if isinstance(commit, dict) else None
        if not isinstance(sha, str) or not sha:
            return None
        branch = _dig(pull, "source", "branch", "name")
        return Change(forge=NAME, repo=repo, sha=sha, numbers=(comment.change,),
                      extra={"refname": branch} if isinstance(branch, str) else {})

    async def acknowledge(self, repo: str, comment: Comment) -> None:
        """Nothing: Bitbucket's API has no reactions; the reply is the acknowledgement."""

    async def reply(self, repo: str, comment: Comment, body: str) -> None:
        """Answer `comment` in its thread, once: the reply's hidden first line names the
        comment it answers, by which it is found again if the answer to the POST is lost.
        The asker is mentioned by account id (Bitbucket's mention form), nobody else."""
        path = f"{self._repo(repo)}/pullrequests/{comment.change}/comments"
        marker = insights.reply_marker(comment.id)
        text = f"{marker}\n\n{_address(body, comment)}"
        me = await self._whoami()

        def answers(item: dict[str, Any]) -> bool:
            return _by(item, me) and _raw(item).startswith(marker)

        async def landed() -> dict[str, Any] | None:
            found, _more = await self.api.list("look for Herald's reply", path,
                                               stop=answers)
            return next((c for c in found if answers(c)), None)

        payload: dict[str, Any] = {"content": {"raw": text}}
        if comment.id.isdigit():
            payload["parent"] = {"id": int(comment.id)}
        await append_once(
            lambda: self.api.post(f"reply on pull request #{comment.change}", path, payload,
                                  idempotent=False),
            landed,
        )


def _same_commit(short: Any, sha: str | None) -> bool:
    """Bitbucket gives pull requests' head commits as 12-character prefixes."""
    if not isinstance(short, str) or not short or not sha:
        return False
    return sha.startswith(short) or short.startswith(sha)


def _new_target(target: dict[str, Any]) -> dict[str, Any]:
    """The target of a pipeline to run again: its type, ref, commit and selector, without
    what Bitbucket fills in itself."""
    kind = target.get("type") or "pipeline_ref_target"
    keep = {
        "pipeline_ref_target": ("ref_type", "ref_name", "commit", "selector"),
        "pipeline_pullrequest_target": ("source", "destination", "destination_commit",
                                        "commit", "pull_request", "selector"),
        "pipeline_commit_target": ("commit", "selector"),
    }.get(str(kind), ("ref_type", "ref_name", "commit", "selector"))
    fresh: dict[str, Any] = {"type": kind}
    for name in keep:
        value = target.get(name)
        if value is None:
            continue
        if name in ("commit", "destination_commit") and isinstance(value, dict):
            value = {"type": "commit", "hash": value.get("hash")}
        elif name == "pull_request" and isinstance(value, dict):
            value = {"id": value.get("id")}
        elif name == "selector" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in ("type", "pattern")}
        fresh[name] = value
    return fresh


def _raw(comment: dict[str, Any]) -> str:
    raw = _dig(comment, "content", "raw")
    return raw if isinstance(raw, str) else ""


def _by(comment: dict[str, Any], me: str | None) -> bool:
    """Written by the token's account (any author when the token cannot say who it is)."""
    if comment.get("deleted"):
        return False
    return me is None or _dig(comment, "user", "uuid") == me


def _address(body: str, comment: Comment) -> str:
    """`@author` at the start of Herald's answer as a real mention of the asker (by
    account id), every other `@` defused."""
    account = comment.extra.get("account_id")
    lead = f"@{comment.author}"
    rest = body
    mention = ""
    if comment.author and body.startswith(lead):
        rest = body[len(lead):]
        mention = f"@{{{account}}}" if isinstance(account, str) and account else \
            f"@{WORD_JOINER}{comment.author}"
    rest = rest.replace("@", f"@{WORD_JOINER}").replace(f"@{WORD_JOINER}{WORD_JOINER}",
                                                       f"@{WORD_JOINER}")
    return mention + rest


class _CommentThread:
    """A pull request's comments as `bot.sticky` sees them: ours are the token account's
    own, not deleted, holding the marker."""

    def __init__(self, client: BitbucketClient, repo_path: str, number: int,
                 me: str | None) -> None:
        self._client = client
        self._api = client.api
        self._number = number
        self._me = me
        self._path = f"{repo_path}/pullrequests/{number}/comments"

    def _ours(self, marker: str) -> Callable[[dict[str, Any]], bool]:
        return lambda c: _by(c, self._me) and _raw(c).startswith(marker)

    def _learn_author(self, created: dict[str, Any]) -> None:
        """A token that cannot read its own user still learns who it is from what it
        posts, so that from then on only its own comments are taken for Herald's."""
        author = _dig(created, "user", "uuid")
        if self._me is None and isinstance(author, str):
            self._me = self._client._me = author

    async def ours(self, marker: str, *, first: bool = False) -> list[sticky.Posted]:
        match = self._ours(marker)
        found, _more = await self._api.list(
            "list Herald's comments", self._path, {"sort": "created_on"},
            limit=5000, stop=match if first else None)
        return [sticky.Posted(str(c["id"]), _raw(c)) for c in found if match(c) and "id" in c]

    async def create(self, body: str) -> sticky.Posted:
        marker = body.split("\n", 1)[0]

        async def landed() -> dict[str, Any] | None:
            found = await self.ours(marker, first=True)
            return {"id": found[0].id, "content": {"raw": found[0].body}} if found else None

        created = await append_once(
            lambda: self._api.post(f"comment on pull request #{self._number}", self._path,
                                   {"content": {"raw": body}}, idempotent=False),
            landed,
        )
        if not isinstance(created, dict) or "id" not in created:
            raise PermanentError(f"comment on pull request #{self._number}: Bitbucket sent "
                                 "no comment")
        self._learn_author(created)
        return sticky.Posted(str(created["id"]), _raw(created))

    async def edit(self, comment_id: str, body: str) -> None:
        await self._api.put(f"update comment {comment_id} on #{self._number}",
                            f"{self._path}/{segment(comment_id)}", {"content": {"raw": body}})

    async def delete(self, comment_id: str) -> None:
        await self._api.delete(f"delete duplicate comment {comment_id} on #{self._number}",
                               f"{self._path}/{segment(comment_id)}")


# ---- construction -------------------------------------------------------------------------


def create_client(settings: ProviderSettings, http: httpx.AsyncClient) -> BitbucketClient:
    """The worker's factory (`providers.CLIENTS`); `NotConfigured` without a token."""
    token = settings.secret("token")
    if token is None or not token.reveal().strip():
        raise NotConfigured(
            "no Bitbucket token configured: set HERALD_BITBUCKET_TOKEN (or "
            "HERALD_BITBUCKET_TOKEN_FILE) to an access token, or to an API token with "
            "HERALD_BITBUCKET_USERNAME"
        )
    # bounds (an http(s) URL, a timeout inside the job's) are checked by the schema
    config = Settings.from_env(settings.environ).config.bitbucket
    api = BitbucketAPI(http, base_url=config.api_url, token=token.reveal().strip(),
                       username=config.username or None, timeout=config.timeout)
    # Bitbucket Cloud is browsed on bitbucket.org whatever API address (a proxy) is used.
    return BitbucketClient(api)


__all__ = ["RETEST_POLICY", "BitbucketClient", "create_client"]
