"""The GitHub App client: Actions as the CI source, checks and PR comments as the forge.

One object implements `providers.base.CIClient` and `Forge`; the worker makes it once per
process with `create_client(settings, http)`. Requests go through gidgethub over the shared
httpx client (`providers.github.api` adds timeouts, retries and rate limits), authenticated
as the installation named by the event (or looked up for the repository).

REST endpoints used (docs.github.com/en/rest/…, API version 2022-11-28):
actions/workflow-runs (get, list by head_sha, rerun-failed-jobs, rerun),
actions/workflow-jobs (list for an attempt), actions/artifacts (list, download),
checks/runs (list for a ref, create, update), checks/suites (list runs in a suite),
issues/comments (list, create, update), reactions (create for an issue comment),
collaborators (permission), pulls (get, list), commits (pulls for a commit),
apps (repository installation, installation access token; the App's webhook deliveries,
list and redeliver, for `bot.redelivery`), git/trees and git/blobs
(`.herald.yml` at a commit), contents (the organisation default in the owner's `.github`).

Settings (`HERALD_GITHUB_*`): `APP_ID`, `CLIENT_ID` (optional JWT issuer), `PRIVATE_KEY` /
`PRIVATE_KEY_FILE`, `API_URL` (GitHub Enterprise Server: `https://<host>/api/v3`),
`RETEST_ALLOWLIST` (logins allowed to `/retest` without write access), `REQUEST_TIMEOUT`
(seconds per request). Without the App, `TOKEN` / `TOKEN_FILE` and `TOKEN_LOGIN`: a plain
token (a workflow's `GITHUB_TOKEN` in push mode) whose own comments are Herald's.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import gidgethub
import httpx
from cryptography.hazmat.primitives import serialization
from gidgethub import sansio

from bot import sticky
from bot.artifacts import ArtifactLimits
from bot.events import Comment, RunRef
from bot.forges import latest_per_key
from bot.redelivery import delivered_at
from bot.repo_config import DEFAULT_OPTIONS, CommentMode, PublishOptions
from bot.reports import (
    GITHUB_CHECK_SUMMARY_LIMIT,
    GITHUB_COMMENT_LIMIT,
    render_markdown,
    run_title,
)
from bot.reports.markdown import md_text
from bot.results.model import TestRun
from bot.settings import ProviderSettings, Secret, Settings
from providers.base import (
    Build,
    Change,
    Job,
    NotConfigured,
    OutcomeUnknown,
    PermanentError,
    ProviderError,
    Published,
    RemoteArtifact,
    RepoFile,
    ReportOrigin,
    Rerun,
)
from providers.github import publish as checks
from providers.github.api import DEFAULT_TIMEOUT, GitHubAPI, Throttle, retry_policy
from providers.github.auth import (
    AppCredentials,
    AppJWT,
    FixedToken,
    InstallationToken,
    InstallationTokens,
    TokenCredentials,
)
from providers.http import Forbidden, NotFound, Unauthorized, error_for_status
from providers.writes import RESENDS, append_once, pause

NAME: Final = "github"
DEFAULT_API_URL: Final = "https://api.github.com"
#: The API scope of a plain token (`TokenCredentials`): it needs no installation.
TOKEN_SCOPE: Final = "token"  # noqa: S105 (a scope name, not a secret)
API_VERSION: Final = "2022-11-28"
FAILED_CONCLUSIONS: Final = frozenset({"failure", "timed_out", "startup_failure"})
RERUNNABLE_CONCLUSIONS: Final = frozenset({"failure", "timed_out", "cancelled"})
WRITE_PERMISSIONS: Final = frozenset({"admin", "maintain", "write"})
#: Bounds on paginated reads: a PR with more comments, or a commit with more runs, than
#: this is read only this far.
MAX_ITEMS: Final = 1000
MAX_OPEN_PULLS_SCANNED: Final = 500
#: GitHub answers an artifact download with one redirect to short-lived storage.
ARTIFACT_REDIRECTS: Final = 1
RETEST_POLICY: Final = (
    "Only people with write access to this repository can ask for a retest; "
    "a maintainer can comment `/retest` for you."
)

RUN: Final = "/repos/{owner}/{repo}/actions/runs/{run_id}"
CHECK_RUN: Final = "/repos/{owner}/{repo}/check-runs/{check_run_id}"

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?$")


def split_repo(repo: str) -> dict[str, str]:
    """`owner/name` as URL variables, refusing anything else (no path tricks)."""
    owner, _, name = repo.partition("/")
    if not (_NAME.match(owner) and _NAME.match(name)) or name in (".", ".."):
        raise PermanentError(f"not a GitHub repository name: {repo!r}")
    return {"owner": owner, "repo": name}


def _describe(exc: gidgethub.HTTPException, method: str, path: str) -> str:
    message = str(exc) or exc.status_code.phrase
    return f"GitHub answered {int(exc.status_code)} to {method} {path}: {message}"


def _typed(exc: gidgethub.HTTPException, message: str) -> ProviderError:
    """gidgethub's exception as the typed error of its status (`providers.http`)."""
    return error_for_status(int(exc.status_code), message, detail=str(exc))


def read_private_key(value: Secret) -> Secret:
    """The PEM as given, with `\\n` escapes turned into newlines (env files often hold one
    line), checked to load so a bad key fails at start, not on the first report."""
    text = value.reveal()
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    try:
        serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise NotConfigured("HERALD_GITHUB_PRIVATE_KEY is not a PEM private key") from exc
    return Secret(text)


#: The repository of an owner whose files are the defaults of its other repositories.
ORG_DEFAULTS_REPO: Final = ".github"


class GitHubClient:
    """CI client and forge for one GitHub App (see the module docstring)."""

    retest_policy: str = RETEST_POLICY

    def __init__(
        self,
        credentials: AppCredentials | TokenCredentials,
        http: httpx.AsyncClient,
        *,
        api_url: str = DEFAULT_API_URL,
        retest_allowlist: frozenset[str] = frozenset(),
        max_artifact_bytes: int = ArtifactLimits().max_download_bytes,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        throttle: Throttle | None = None,
    ) -> None:
        self.credentials = credentials
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.retest_allowlist = frozenset(login.lower() for login in retest_allowlist)
        self.max_artifact_bytes = max_artifact_bytes
        self.timeout = timeout
        self.throttle = throttle or Throttle()
        self.tokens: InstallationTokens | FixedToken
        if isinstance(credentials, TokenCredentials):
            self.tokens = FixedToken(credentials.token)
        else:
            self.jwt = AppJWT(credentials)
            self.tokens = InstallationTokens(self._new_token)
        self._apis: dict[str, GitHubAPI] = {}
        self._installations: dict[str, str] = {}

    # ---- plumbing ------------------------------------------------------------------------

    def _api(self, scope: str) -> GitHubAPI:
        api = self._apis.get(scope)
        if api is None:
            api = self._apis[scope] = GitHubAPI(
                self.http,
                scope=scope,
                throttle=self.throttle,
                base_url=self.api_url,
                timeout=self.timeout,
            )
        return api

    async def _new_token(self, installation_id: str) -> InstallationToken:
        api = self._api("app")
        path = "/app/installations/{installation_id}/access_tokens"
        try:
            # Minting a token twice only leaves one unused to expire: safe to resend.
            with retry_policy(idempotent=True):
                data = await api.post(
                    path, {"installation_id": installation_id}, data=b"", jwt=self.jwt.token()
                )
        except gidgethub.HTTPException as exc:
            raise _typed(
                exc,
                f"no access token for installation {installation_id}: "
                + _describe(exc, "POST", path),
            ) from exc
        return InstallationToken.from_response(data)

    async def hook_deliveries(self, *, since: float, limit: int) -> list[Mapping[str, Any]]:
        """The App's webhook deliveries, newest first, back to `since` (epoch seconds), at
        most `limit` (`bot.redelivery`). GitHub pages them by a cursor in the Link header,
        which gidgethub follows. Docs: rest/apps/webhooks#list-deliveries-for-an-app-webhook.
        """
        if not isinstance(self.credentials, AppCredentials):
            raise NotConfigured("listing webhook deliveries needs the GitHub App "
                                "(HERALD_GITHUB_APP_ID and its private key), not a token")
        path = "/app/hook/deliveries?per_page=100"
        items: list[Mapping[str, Any]] = []
        try:
            with retry_policy(idempotent=True):
                async for item in self._api("app").getiter(path, jwt=self.jwt.token()):
                    if not isinstance(item, Mapping):
                        continue
                    when = delivered_at(item)
                    if when is not None and when < since:
                        break  # newest first: the rest is older still
                    items.append(item)
                    if len(items) >= limit:
                        break
        except gidgethub.HTTPException as exc:
            raise _typed(exc, _describe(exc, "GET", "/app/hook/deliveries")) from exc
        return items

    async def redeliver_hook_delivery(self, delivery_id: int) -> None:
        """Ask GitHub to send one delivery again (202). Not resent after a lost answer: a
        second request would make a second delivery. Docs: rest/apps/webhooks#
        redeliver-a-delivery-for-an-app-webhook."""
        if not isinstance(self.credentials, AppCredentials):
            raise NotConfigured("redelivering a webhook needs the GitHub App, not a token")
        path = "/app/hook/deliveries/{delivery_id}/attempts"
        try:
            with retry_policy(idempotent=False):
                await self._api("app").post(
                    path, {"delivery_id": delivery_id}, data=b"", jwt=self.jwt.token()
                )
        except gidgethub.HTTPException as exc:
            raise _typed(exc, _describe(exc, "POST", path)) from exc

    async def _installation(self, repo: str, extra: Mapping[str, Any]) -> str:
        if isinstance(self.credentials, TokenCredentials):
            return TOKEN_SCOPE  # one token for every repository it may reach
        given = extra.get("installation_id")
        if given:
            return str(int(given))
        cached = self._installations.get(repo)
        if cached is not None:
            return cached
        path = "/repos/{owner}/{repo}/installation"
        try:
            with retry_policy(idempotent=True):
                data = await self._api("app").getitem(path, split_repo(repo), jwt=self.jwt.token())
        except gidgethub.HTTPException as exc:
            described = _describe(exc, "GET", path)
            message = f"Herald's GitHub App is not installed on {repo}: {described}"
            raise _typed(exc, message) from exc
        self._installations[repo] = str(data["id"])
        return self._installations[repo]

    async def _read(
        self,
        installation: str,
        path: str,
        url_vars: Mapping[str, Any],
        *,
        iterable_key: str | None = None,
        limit: int = MAX_ITEMS,
    ) -> Any:
        """A GET as the installation: one object, or the items of a paginated list up to
        `limit`. Reads are resent after a fault (see `providers.github.api`)."""
        return await self._call(
            installation,
            "GET",
            path,
            url_vars,
            iterable_key=iterable_key,
            limit=limit,
            idempotent=True,
        )

    async def _write(
        self,
        installation: str,
        method: str,
        path: str,
        url_vars: Mapping[str, Any],
        data: Any,
        *,
        idempotent: bool,
    ) -> Any:
        """A POST or PATCH as the installation. `idempotent` is the caller's promise that
        sending it twice leaves GitHub as sending it once does (a PATCH that sets whole
        fields); without it a lost answer raises `OutcomeUnknown` instead of a resend."""
        return await self._call(
            installation, method, path, url_vars, data=data, idempotent=idempotent
        )

    async def _call(
        self,
        installation: str,
        method: str,
        path: str,
        url_vars: Mapping[str, Any],
        *,
        idempotent: bool,
        data: Any = None,
        iterable_key: str | None = None,
        limit: int = MAX_ITEMS,
    ) -> Any:
        """One API call as the installation; a 401 refreshes the token once (GitHub
        refused it, so nothing was done and the call may be sent again)."""
        api = self._api(installation)
        for attempt in (1, 2):
            token = await self.tokens.get(installation)
            secret = token.reveal()
            try:
                with retry_policy(idempotent=idempotent):
                    if method == "GET" and iterable_key is None:
                        return await api.getitem(path, url_vars, oauth_token=secret)
                    if method == "GET":
                        items: list[Any] = []
                        async for item in api.getiter(
                            path, url_vars, oauth_token=secret, iterable_key=iterable_key
                        ):
                            items.append(item)
                            if len(items) >= limit:
                                break
                        return items
                    if method == "POST":
                        return await api.post(path, url_vars, data=data, oauth_token=secret)
                    if method == "PATCH":
                        return await api.patch(path, url_vars, data=data, oauth_token=secret)
                    if method == "DELETE":
                        return await api.delete(path, url_vars, oauth_token=secret)
                raise ValueError(f"unsupported method {method}")
            except gidgethub.BadRequest as exc:
                if exc.status_code == 401 and attempt == 1:
                    self.tokens.invalidate(installation, token)
                    continue
                if exc.status_code == 404 and method == "DELETE":
                    return None  # already gone: what a DELETE wants
                raise _typed(exc, _describe(exc, method, path)) from exc
            except gidgethub.HTTPException as exc:
                raise _typed(exc, _describe(exc, method, path)) from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _run_id(ref: RunRef) -> tuple[int, int]:
        parsed = checks.parse_run_id(ref.run_id)
        if parsed is None:
            raise PermanentError(f"not a GitHub Actions run id: {ref.run_id!r}")
        run_id, attempt = parsed
        return run_id, attempt or checks.attempt_of(ref)

    # ---- CIClient ------------------------------------------------------------------------

    @staticmethod
    def _other_apps_suite(ref: RunRef) -> bool:
        """A check suite another app completed (the `check_suite` webhook): its results
        live in that app, and its id is no Actions run id to ask GitHub about."""
        return "app_slug" in ref.extra

    async def get_build(self, ref: RunRef) -> Build:
        if self._other_apps_suite(ref):
            # Everything there is to know came with the webhook: no request, no 404.
            status = ref.status or "unknown"
            return Build(
                ref=ref,
                status=status,
                failed=status in FAILED_CONCLUSIONS,
                url=ref.url,
                name=ref.extra.get("app_slug"),
                changes=[ref.change] if ref.change else [],
                sha=ref.sha,
            )
        installation = await self._installation(ref.repo, ref.extra)
        run_id, attempt = self._run_id(ref)
        coordinates = {**split_repo(ref.repo), "run_id": run_id}
        run = await self._read(installation, RUN, coordinates)
        jobs = await self._read(
            installation,
            "/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt}/jobs{?per_page}",
            {**coordinates, "attempt": attempt, "per_page": 100},
            iterable_key="jobs",
        )
        conclusion = str(run.get("conclusion") or run.get("status") or "unknown")
        sha = str(run.get("head_sha") or ref.sha or "")
        changes = self._pull_numbers(ref.repo, run.get("pull_requests") or [])
        if not changes and ref.change:
            changes = [ref.change]
        if not changes and sha and str(run.get("event", "")).startswith("pull_request"):
            # A PR from a fork: `pull_requests` is empty in the run; find it by head sha.
            changes = await self._pulls_for_sha(installation, ref.repo, sha)
        return Build(
            ref=ref,
            status=conclusion,
            failed=conclusion in FAILED_CONCLUSIONS,
            url=run.get("html_url") or ref.url,
            name=run.get("name"),
            jobs=[
                Job(
                    id=str(job["id"]),
                    name=str(job.get("name") or job["id"]),
                    status=str(job.get("conclusion") or job.get("status") or "unknown"),
                    failed=job.get("conclusion") in FAILED_CONCLUSIONS,
                    url=job.get("html_url"),
                )
                for job in jobs
            ],
            changes=changes,
            sha=sha or None,
        )

    @staticmethod
    def _pull_numbers(repo: str, pulls: list[Any]) -> list[int]:
        """PR numbers of this repository (a run's list may name PRs of other repos)."""
        numbers = []
        for pull in pulls:
            base = (pull.get("base") or {}).get("repo") or {}
            url = str(base.get("url") or "")
            if url and not url.lower().endswith(f"/repos/{repo.lower()}"):
                continue
            numbers.append(int(pull["number"]))
        return numbers

    async def _pulls_for_sha(self, installation: str, repo: str, sha: str) -> list[int]:
        coordinates = {**split_repo(repo), "sha": sha}
        listed = await self._read(
            installation, "/repos/{owner}/{repo}/commits/{sha}/pulls", coordinates
        )
        numbers = [
            int(p["number"])
            for p in listed
            if p.get("state") == "open" and (p.get("head") or {}).get("sha") == sha
        ]
        if numbers:
            return numbers
        # Fork commits are often not listed there; the open PRs' heads always are.
        open_pulls = await self._read(
            installation,
            "/repos/{owner}/{repo}/pulls{?state,per_page}",
            {**split_repo(repo), "state": "open", "per_page": 100},
            iterable_key="items",
            limit=MAX_OPEN_PULLS_SCANNED,
        )
        return [int(p["number"]) for p in open_pulls if (p.get("head") or {}).get("sha") == sha]

    async def list_artifacts(self, ref: RunRef) -> list[RemoteArtifact]:
        if self._other_apps_suite(ref):
            return []  # artifacts belong to Actions runs only
        installation = await self._installation(ref.repo, ref.extra)
        run_id, _ = self._run_id(ref)
        listed = await self._read(
            installation,
            "/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts{?per_page}",
            {**split_repo(ref.repo), "run_id": run_id, "per_page": 100},
            iterable_key="artifacts",
        )
        run_page = ref.url if ref.url and ref.url.startswith("https://") else None
        # GitHub lists the newest first; a re-run's same-named artifact must come after the
        # attempt it retries, and ids grow with each upload.
        listed = sorted(listed, key=lambda item: int(item["id"]))
        return [
            RemoteArtifact(
                id=str(item["id"]),
                name=str(item["name"]),
                size=item.get("size_in_bytes"),
                url=f"{run_page}/artifacts/{item['id']}" if run_page else None,
            )
            for item in listed
            if not item.get("expired")
        ]

    async def open_artifact(self, ref: RunRef, artifact: RemoteArtifact) -> AsyncIterator[bytes]:
        """The artifact's zip: GitHub answers 302 to short-lived storage on another host,
        which is fetched with no credential of ours (and only that one redirect)."""
        what = f"artifact {artifact.name!r} of run {ref.run_id} in {ref.repo}"
        if artifact.size is not None and artifact.size > self.max_artifact_bytes:
            raise PermanentError(
                f"{what} is {artifact.size:,} bytes, more than {self.max_artifact_bytes:,}"
            )
        if not artifact.id.isdigit():
            raise PermanentError(f"{what} has no GitHub artifact id")
        installation = await self._installation(ref.repo, ref.extra)
        path = "/repos/{owner}/{repo}/actions/artifacts/{artifact_id}/zip"
        url = sansio.format_url(
            path, {**split_repo(ref.repo), "artifact_id": artifact.id}, base_url=self.api_url
        )
        session = self._api(installation).session
        for attempt in (1, 2):
            token = await self.tokens.get(installation)
            headers = sansio.create_headers(
                "herald", accept=sansio.accept_format(), oauth_token=token.reveal()
            )
            headers["x-github-api-version"] = API_VERSION
            chunks = session.download(
                url,
                what=what,
                max_bytes=self.max_artifact_bytes,
                headers=headers,
                scope=installation,
                max_redirects=ARTIFACT_REDIRECTS,
            )
            try:
                first = await anext(chunks, None)
            except Unauthorized:
                await chunks.aclose()
                if attempt == 2:
                    raise
                # GitHub refused the token before doing anything: a fresh one may pass.
                self.tokens.invalidate(installation, token)
                continue
            except NotFound as exc:
                raise NotFound(
                    f"{what} is gone (expired or deleted): {exc.status}", status=exc.status
                ) from exc
            try:
                if first is not None:
                    yield first
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()
            return

    async def native_results(self, ref: RunRef) -> TestRun | None:
        return None  # GitHub Actions does not parse test reports itself

    async def rerun(self, ref: RunRef, failed_only: bool = True) -> Rerun:
        installation = await self._installation(ref.repo, ref.extra)
        run_ids = await self._runs_to_rerun(installation, ref)
        suffix = "rerun-failed-jobs" if failed_only else "rerun"
        for run_id in run_ids:
            await self._rerun_once(installation, {**split_repo(ref.repo), "run_id": run_id}, suffix)
        return Rerun(runs=[str(r) for r in run_ids])

    async def _rerun_once(
        self, installation: str, coordinates: Mapping[str, Any], suffix: str
    ) -> None:
        """Ask for a rerun; after a lost answer, only if the run has not started again."""
        await append_once(
            lambda: self._write(
                installation, "POST", f"{RUN}/{suffix}", coordinates, {}, idempotent=False
            ),
            lambda: self._rerun_started(installation, coordinates),
        )

    async def _rerun_started(
        self, installation: str, coordinates: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The run, if it is queued or running again: GitHub queues a rerun at once, so a
        run still `completed` did not get the request that was lost."""
        run: dict[str, Any] = await self._read(installation, RUN, coordinates)
        return run if run.get("status") != "completed" else None

    async def _runs_to_rerun(self, installation: str, ref: RunRef) -> list[int]:
        extra = ref.extra
        if "check_run_id" in extra and not extra.get("external_id"):
            raise PermanentError("this check run was not created by Herald")
        suite = extra.get("check_suite_id")
        if extra.get("action") == "rerequested" and suite and "check_run_id" not in extra:
            # The whole Herald suite was re-requested: rerun every run it reported.
            in_suite = await self._read(
                installation,
                "/repos/{owner}/{repo}/check-suites/{suite}/check-runs{?per_page}",
                {**split_repo(ref.repo), "suite": int(suite), "per_page": 100},
                iterable_key="check_runs",
            )
            found = [checks.parse_run_id(str(c.get("external_id") or "")) for c in in_suite]
            return sorted({parsed[0] for parsed in found if parsed is not None})
        return [self._run_id(ref)[0]]

    # ---- Forge: publishing ---------------------------------------------------------------

    # ---- the change and the origin of a run ---------------------------------------------

    async def change_of(self, ref: RunRef, build: Build | None) -> Change:
        sha = (build.sha if build is not None else None) or ref.sha
        if not sha:
            raise PermanentError(f"run {ref.run_id} in {ref.repo} has no head commit")
        numbers = build.changes if build is not None else []
        if not numbers and ref.change:
            numbers = [ref.change]
        extra = {"installation_id": ref.extra["installation_id"]} \
            if ref.extra.get("installation_id") else {}
        return Change(forge=NAME, repo=ref.repo, sha=sha,
                      numbers=tuple(dict.fromkeys(numbers)), extra=extra)

    def origin_of(self, ref: RunRef, build: Build | None) -> ReportOrigin:
        parsed = checks.parse_run_id(ref.run_id)
        run_id, attempt = parsed if parsed is not None else (0, None)
        number = ref.extra.get("run_number")
        return ReportOrigin(
            run=ref,
            name=checks.workflow_name(ref) or (build.name if build is not None else None),
            attempt=attempt or checks.attempt_of(ref),
            sequence=run_id,
            number=str(number) if number else None,
            url=(build.url if build is not None else None) or ref.url,
            failed=build.failed if build is not None else False,
        )

    # ---- ForgeTarget: reports ------------------------------------------------------------

    async def publish(
        self, change: Change, origin: ReportOrigin, run: TestRun,
        options: PublishOptions = DEFAULT_OPTIONS,
    ) -> Published:
        installation = await self._installation(change.repo, change.extra)
        display = dataclasses.replace(
            run,
            id=f"{origin.name} #{origin.number}" if origin.name and origin.number
            else origin.name or run.id,
        )
        conclusion = checks.conclusion(run)
        title = run_title(run)
        if not options.gate and conclusion == "failure":
            # `fail_on: nothing`: neutral, not success. Branch protection counts a neutral
            # required check as passing, and it still reads grey with the failures in its
            # summary; a green tick would say the tests passed.
            conclusion = "neutral"
            title += checks.NOT_GATING
        check: Mapping[str, Any] = {}
        created = False
        if options.check:
            fields = checks.CheckRunFields(
                name=checks.check_name(origin),
                head_sha=change.sha,
                external_id=checks.external_id(origin),
                conclusion=conclusion,
                title=title,
                summary=render_markdown(display, budget=GITHUB_CHECK_SUMMARY_LIMIT,
                                        heading_level=2, notices=options.notices),
                details_url=origin.url,
                # GitHub's button reruns through our `check_run.requested_action` webhook,
                # which knows how to rerun Actions runs only.
                rerun_action=origin.failed and origin.ci == checks.ACTIONS,
            )
            annotations = checks.annotations_for(run, change.repo) if options.annotations \
                else []
            check, created = await self._upsert_check_run(
                installation, change.repo, fields, annotations
            )
        plan = sticky.comment_plan(options, display, habit=CommentMode.ON_FAILURE)
        comment_id = None
        if plan is not None:
            numbers = change.numbers
            if not change.numbers_known:
                numbers = tuple(
                    await self._pulls_for_sha(installation, change.repo, change.sha)
                )
            for number in numbers:
                comment_id = await self._upsert_comment(
                    installation, change.repo, origin, number, display,
                    check.get("html_url"), plan, options.notices,
                )
        check_id = check.get("id")
        return Published(check_run_id=str(check_id) if check_id is not None else None,
                         comment_id=comment_id, created=created)

    # ---- RepoFiles: `.herald.yml` ---------------------------------------------------------

    async def _root_entry(
        self, installation: str, repo: str, tree: str, path: str
    ) -> RepoFile | None:
        """`path` in the root tree of commit (or ref) `tree`, by the git trees API: the
        blob id and size without the content, so an unchanged file is not read again.
        https://docs.github.com/en/rest/git/trees#get-a-tree"""
        try:
            listed = await self._read(
                installation, "/repos/{owner}/{repo}/git/trees/{tree_sha}",
                {**split_repo(repo), "tree_sha": tree},
            )
        except NotFound:
            return None
        for entry in listed.get("tree") or ():
            if entry.get("path") == path and entry.get("type") == "blob" and entry.get("sha"):
                size = entry.get("size")
                return RepoFile(repo=repo, blob=str(entry["sha"]),
                                size=size if isinstance(size, int) else None)
        return None

    async def find_file(self, change: Change, path: str) -> RepoFile | None:
        installation = await self._installation(change.repo, change.extra)
        return await self._root_entry(installation, change.repo, change.sha, path)

    async def find_default_file(self, change: Change, path: str) -> RepoFile | None:
        """The owner's `.github` repository, at its default branch: GitHub's own place
        for an organisation's defaults, read with the contents API (which, without `ref`,
        is documented to read the default branch; the trees API is documented for a sha
        or a named branch only). An installation that cannot see it (not installed there)
        is told 404 or 403, which means no default.
        https://docs.github.com/en/rest/repos/contents#get-repository-content"""
        owner = change.repo.partition("/")[0]
        defaults = f"{owner}/{ORG_DEFAULTS_REPO}"
        if change.repo.lower() == defaults.lower():
            return None
        installation = await self._installation(change.repo, change.extra)
        try:
            found = await self._read(
                installation, "/repos/{owner}/{repo}/contents/{path}",
                {**split_repo(defaults), "path": path},
            )
        except (NotFound, Forbidden):
            return None
        if not isinstance(found, dict) or found.get("type") != "file" or not found.get("sha"):
            return None  # a directory of that name, a symlink, a submodule: no file
        size = found.get("size")
        return RepoFile(repo=defaults, blob=str(found["sha"]),
                        size=size if isinstance(size, int) else None)

    async def read_file(self, change: Change, file: RepoFile, *, max_bytes: int) -> bytes:
        """https://docs.github.com/en/rest/git/blobs#get-a-blob (base64 content)."""
        installation = await self._installation(change.repo, change.extra)
        blob = await self._read(
            installation, "/repos/{owner}/{repo}/git/blobs/{file_sha}",
            {**split_repo(file.repo), "file_sha": file.blob},
        )
        content = blob.get("content")
        if blob.get("encoding") != "base64" or not isinstance(content, str):
            raise PermanentError(f"GitHub sent blob {file.blob[:12]} of {file.repo} "
                                 "without base64 content")
        if len(content) > 2 * max_bytes + 64:
            # Base64 with GitHub's line breaks is about 1.37 times the bytes: surely over.
            raise PermanentError(f"blob {file.blob[:12]} of {file.repo} is larger than "
                                 f"{max_bytes:,} bytes")
        try:
            data = base64.b64decode(content)
        except ValueError as exc:
            raise PermanentError(f"GitHub sent blob {file.blob[:12]} of {file.repo} "
                                 "with malformed base64") from exc
        if len(data) > max_bytes:
            raise PermanentError(f"blob {file.blob[:12]} of {file.repo} is larger than "
                                 f"{max_bytes:,} bytes")
        return data

    async def publish_error(self, change: Change, origin: ReportOrigin, message: str) -> None:
        installation = await self._installation(change.repo, change.extra)
        url = origin.url
        fields = checks.CheckRunFields(
            name=checks.check_name(origin),
            head_sha=change.sha,
            external_id=checks.external_id(origin),
            conclusion="neutral",
            title=checks.ERROR_TITLE,
            summary=md_text(message),
            details_url=url if url and url.startswith("https://") else None,
            rerun_action=False,
        )
        await self._upsert_check_run(installation, change.repo, fields, [])

    async def _find_check_run(
        self, installation: str, repo: str, fields: checks.CheckRunFields
    ) -> dict[str, Any] | None:
        listed = await self._read(
            installation,
            "/repos/{owner}/{repo}/commits/{sha}/check-runs{?check_name,filter,per_page}",
            {
                **split_repo(repo),
                "sha": fields.head_sha,
                "check_name": fields.name,
                "filter": "all",
                "per_page": 100,
            },
            iterable_key="check_runs",
        )
        for check in listed:
            if check.get("external_id") == fields.external_id:
                found: dict[str, Any] = check
                return found
        return None

    async def _upsert_check_run(
        self,
        installation: str,
        repo: str,
        fields: checks.CheckRunFields,
        annotations: list[dict[str, Any]],
    ) -> tuple[dict[str, Any], bool]:
        """Create or update our check run; send only the annotations it lacks."""
        existing = await self._find_check_run(installation, repo, fields)
        coordinates = split_repo(repo)
        if existing is not None:
            sent = checks.annotations_count(existing)
            await self._update_check_run(
                installation, coordinates, existing, fields, annotations, sent, fields_sent=False
            )
            return existing, False
        first = annotations[: checks.ANNOTATIONS_PER_REQUEST]
        posted = False

        async def create() -> dict[str, Any]:
            nonlocal posted
            check: dict[str, Any] = await self._write(
                installation,
                "POST",
                "/repos/{owner}/{repo}/check-runs",
                coordinates,
                fields.body(first or None, create=True),
                idempotent=False,
            )
            posted = True
            return check

        # A lost answer to the POST: look for the check run by its external id (and name
        # and head sha) before creating it again.
        check = await append_once(create, lambda: self._find_check_run(installation, repo, fields))
        sent = len(first) if posted else checks.annotations_count(check)
        await self._update_check_run(
            installation, coordinates, check, fields, annotations, sent, fields_sent=True
        )
        return check, True

    async def _update_check_run(
        self,
        installation: str,
        coordinates: Mapping[str, Any],
        check: Mapping[str, Any],
        fields: checks.CheckRunFields,
        annotations: list[dict[str, Any]],
        sent: int,
        *,
        fields_sent: bool,
    ) -> None:
        """PATCH the fields (unless sent already) and the annotations from `sent` on.

        A PATCH that sets fields only may be resent freely. One that carries annotations
        appends them, so after a lost answer the check run is read back and its
        `output.annotations_count` says where to go on: the list is the same every time,
        so the count is exactly how much of it GitHub holds.
        """
        url_vars = {**coordinates, "check_run_id": check["id"]}
        resends = 0
        while not fields_sent or sent < len(annotations):
            batch = annotations[sent : sent + checks.ANNOTATIONS_PER_REQUEST]
            body = (
                fields.annotations_only(batch)
                if fields_sent
                else fields.body(batch or None, create=False)
            )
            try:
                await self._write(
                    installation, "PATCH", CHECK_RUN, url_vars, body, idempotent=not batch
                )
            except OutcomeUnknown:
                if resends == RESENDS:
                    raise
                await asyncio.sleep(pause(resends))
                resends += 1
                held = checks.annotations_count(await self._read(installation, CHECK_RUN, url_vars))
                # GitHub applies a request whole: annotations of it there, fields too.
                fields_sent = fields_sent or held > sent
                sent = held
                continue
            fields_sent = True
            sent += len(batch)

    def _is_ours(self, comment: Mapping[str, Any]) -> bool:
        if isinstance(self.credentials, TokenCredentials):
            login = str((comment.get("user") or {}).get("login") or "")
            return login.lower() == self.credentials.login.lower()
        app = comment.get("performed_via_github_app") or {}
        if app.get("id") is not None:
            return str(app["id"]) == self.credentials.app_id
        return (comment.get("user") or {}).get("type") == "Bot"

    async def _find_comment(
        self, installation: str, coordinates: Mapping[str, Any], marker: str
    ) -> dict[str, Any] | None:
        """Our first comment on the pull request whose body starts with `marker`."""
        comments = await self._read(
            installation,
            "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}",
            {**coordinates, "per_page": 100},
            iterable_key="items",
        )
        for comment in comments:
            if str(comment.get("body", "")).startswith(marker) and self._is_ours(comment):
                found: dict[str, Any] = comment
                return found
        return None

    async def _create_comment(
        self, installation: str, coordinates: Mapping[str, Any], body: str, marker: str
    ) -> dict[str, Any]:
        """POST a comment that starts with `marker`; after a lost answer, the comment is
        looked for by that marker before it is posted again."""
        created: dict[str, Any] = await append_once(
            lambda: self._write(
                installation,
                "POST",
                "/repos/{owner}/{repo}/issues/{number}/comments",
                coordinates,
                {"body": body},
                idempotent=False,
            ),
            lambda: self._find_comment(installation, coordinates, marker),
        )
        return created

    async def _edit_comment(
        self, installation: str, coordinates: Mapping[str, Any], comment_id: Any, body: str
    ) -> None:
        # Setting the whole body: sending it twice leaves the same comment.
        await self._write(
            installation,
            "PATCH",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
            {**coordinates, "comment_id": comment_id},
            {"body": body},
            idempotent=True,
        )

    async def _upsert_comment(
        self,
        installation: str,
        repo: str,
        origin: ReportOrigin,
        change: int,
        display: TestRun,
        check_url: str | None,
        plan: sticky.CommentPlan,
        notices: tuple[str, ...],
    ) -> str | None:
        coordinates = {**split_repo(repo), "number": change}
        room = sticky.RESULT_MARK_ROOM if plan.result is not None else 0
        upserted = await sticky.upsert(
            _PullThread(self, installation, coordinates),
            marker=checks.marker_prefix(origin),
            order=(origin.sequence, origin.attempt),
            order_of=checks.marked_run,
            render=lambda: render_markdown(
                display,
                budget=GITHUB_COMMENT_LIMIT - room,
                details_url=check_url,
                marker=checks.marker(origin),
                heading_level=2,
                notices=notices,
            ),
            # By default a green run does not start a conversation (`sticky.comment_plan`).
            start=plan.start,
            result=plan.result,
        )
        return upserted.id

    # ---- Forge: /retest -----------------------------------------------------------------

    async def can_retest(self, repo: str, comment: Comment) -> bool:
        login = comment.author
        if login.lower() in self.retest_allowlist:
            return True
        if not _LOGIN.match(login):
            return False
        installation = await self._installation(repo, comment.extra)
        try:
            data = await self._read(
                installation,
                "/repos/{owner}/{repo}/collaborators/{username}/permission",
                {**split_repo(repo), "username": login},
            )
        except NotFound:
            return False  # not a collaborator at all
        permission = str(data.get("permission") or "")
        role = str(data.get("role_name") or "")
        return permission in WRITE_PERMISSIONS or role in WRITE_PERMISSIONS

    async def base_of(self, change: Change) -> tuple[str, str | None] | None:
        if not change.numbers and change.numbers_known:
            return None  # a push to a branch: no pull request, no call
        installation = await self._installation(change.repo, change.extra)
        numbers = list(change.numbers) or await self._pulls_for_sha(
            installation, change.repo, change.sha)
        if not numbers:
            return None
        pull = await self._read(installation, "/repos/{owner}/{repo}/pulls/{number}",
                                {**split_repo(change.repo), "number": numbers[0]})
        base = pull.get("base") or {}
        branch, sha = base.get("ref"), base.get("sha")
        if not isinstance(branch, str) or not branch:
            return None
        return branch, sha if isinstance(sha, str) and sha else None

    async def head_change(self, repo: str, comment: Comment) -> Change | None:
        installation = await self._installation(repo, comment.extra)
        pull = await self._read(
            installation,
            "/repos/{owner}/{repo}/pulls/{number}",
            {**split_repo(repo), "number": comment.change},
        )
        sha = str((pull.get("head") or {}).get("sha") or "")
        if not sha:
            return None
        return Change(forge=NAME, repo=repo, sha=sha, numbers=(comment.change,),
                      extra={"installation_id": int(installation)})

    # ---- CISource: what /retest reruns ---------------------------------------------------

    async def latest_failed_runs(self, change: Change) -> list[RunRef]:
        if change.forge != NAME:
            return []  # Actions runs only build code on GitHub
        installation = await self._installation(change.repo, change.extra)
        runs = await self._read(
            installation,
            "/repos/{owner}/{repo}/actions/runs{?head_sha,per_page}",
            {**split_repo(change.repo), "head_sha": change.sha, "per_page": 100},
            iterable_key="workflow_runs",
        )
        latest = latest_per_key(runs, key=lambda run: run.get("workflow_id") or run.get("name"),
                                order=lambda run: int(run["id"]))
        return [
            RunRef(
                provider=NAME,
                repo=change.repo,
                run_id=str(run["id"]),
                sha=change.sha,
                branch=run.get("head_branch"),
                change=change.numbers[0] if change.numbers else None,
                url=run.get("html_url"),
                status=run.get("conclusion"),
                extra={
                    "installation_id": int(installation),
                    "name": run.get("name"),
                    "workflow_name": run.get("name"),
                    "run_attempt": run.get("run_attempt"),
                },
            )
            for run in latest
            if run.get("status") == "completed" and run.get("conclusion") in RERUNNABLE_CONCLUSIONS
        ]

    async def acknowledge(self, repo: str, comment: Comment) -> None:
        installation = await self._installation(repo, comment.extra)
        # GitHub keeps one reaction of a kind per user: a repeat answers 200 with the one
        # already there (rest/reactions/reactions#create-reaction-for-an-issue-comment).
        await self._write(
            installation,
            "POST",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
            {**split_repo(repo), "comment_id": int(comment.id)},
            {"content": "eyes"},
            idempotent=True,
        )

    async def reply(self, repo: str, comment: Comment, body: str) -> None:
        """Answer `comment` once: the reply carries a hidden marker naming the comment it
        answers, by which it is found again if the answer to the POST is lost."""
        installation = await self._installation(repo, comment.extra)
        marker = checks.reply_marker(comment.id)
        await self._create_comment(
            installation,
            {**split_repo(repo), "number": comment.change},
            f"{marker}\n{body}",
            marker,
        )

    async def aclose(self) -> None:
        """Nothing of its own to close: the httpx client belongs to the worker."""


def create_client(settings: ProviderSettings, http: httpx.AsyncClient) -> GitHubClient:
    """The worker's factory (`providers.CLIENTS`): the App when its credentials are set,
    else a plain token (`HERALD_GITHUB_TOKEN`, push mode's credential); `NotConfigured`
    without either."""
    app_id = settings.get("app_id")
    key = settings.secret("private_key")
    token = settings.secret("token")
    credentials: AppCredentials | TokenCredentials
    # bounds (a numeric id, a timeout inside the job's) are checked by the schema
    whole = Settings.from_env(settings.environ)
    config = whole.config.github
    if app_id and key is not None:
        credentials = AppCredentials(app_id, read_private_key(key), config.client_id)
    elif token is not None and token.reveal().strip():
        credentials = TokenCredentials(Secret(token.reveal().strip()), config.token_login)
    else:
        raise NotConfigured(
            "the GitHub App is not configured: set HERALD_GITHUB_APP_ID and "
            "HERALD_GITHUB_PRIVATE_KEY (or HERALD_GITHUB_PRIVATE_KEY_FILE), or "
            "HERALD_GITHUB_TOKEN (or HERALD_GITHUB_TOKEN_FILE) to a token with checks: "
            "write and pull-requests: write"
        )
    seconds = config.request_timeout
    allowlist = config.retest_allowlist or ""
    return GitHubClient(
        credentials,
        http,
        api_url=config.api_url,
        retest_allowlist=frozenset(u.strip() for u in allowlist.split(",") if u.strip()),
        max_artifact_bytes=ArtifactLimits.from_settings(whole).max_download_bytes,
        timeout=httpx.Timeout(seconds, connect=min(5.0, seconds)),
    )


class _PullThread:
    """A pull request's comments as `bot.sticky` sees them: ours are the App's comments
    whose body starts with the marker."""

    def __init__(
        self, client: GitHubClient, installation: str, coordinates: Mapping[str, Any]
    ) -> None:
        self._client = client
        self._installation = installation
        self._coordinates = coordinates

    async def ours(self, marker: str, *, first: bool = False) -> list[sticky.Posted]:
        comments = await self._client._read(
            self._installation,
            "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}",
            {**self._coordinates, "per_page": 100},
            iterable_key="items",
        )
        return [
            sticky.Posted(str(c["id"]), str(c.get("body", "")))
            for c in comments
            if str(c.get("body", "")).startswith(marker) and self._client._is_ours(c)
        ]

    async def create(self, body: str) -> sticky.Posted:
        marker = body.split("\n", 1)[0]
        created = await self._client._create_comment(
            self._installation, self._coordinates, body, marker
        )
        return sticky.Posted(str(created["id"]), str(created.get("body", "")))

    async def edit(self, comment_id: str, body: str) -> None:
        await self._client._edit_comment(
            self._installation, self._coordinates, int(comment_id), body
        )

    async def delete(self, comment_id: str) -> None:
        # A twin another process already removed answers 404, which `_call` takes as done.
        await self._client._write(
            self._installation,
            "DELETE",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
            {**self._coordinates, "comment_id": int(comment_id)},
            None,
            idempotent=True,
        )
