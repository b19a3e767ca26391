"""Push mode: a CI job reports its own results (`herald report --auto-detect`), through the
very forge clients the bot publishes with, without Redis and without the CI system's API.

`publish_from_job(environ, run)` is the whole of it, callable from a library as from the
command: the job's environment says which CI system and run this is (`providers.detect`),
which forge holds the change and where its API is, and which token to use; the run's
results come parsed. Nothing is read from the CI system's API: a job has no credentials for
it, and it knows its own results.

- **Which forge**: GitHub Actions, GitLab CI, Bitbucket Pipelines and Azure Pipelines (an
  Azure Repos repository) report on themselves; Jenkins, CircleCI, Travis CI, TeamCity and
  an Azure pipeline building another forge's repository report where their repository URL
  points (`bot.forges.forge_of_url`): a host no forge is configured for is refused.
- **Which API**: the forge's `HERALD_*` address when set, else the job's own
  (`GITHUB_API_URL`, `CI_SERVER_URL`, `SYSTEM_COLLECTIONURI`). The egress guard trusts
  exactly those hosts (`bot.egress`), as it trusts the configured ones in the worker.
- **Which token**: `HERALD_GITHUB_TOKEN` else the workflow's `GITHUB_TOKEN`;
  `HERALD_GITLAB_TOKEN` (`CI_JOB_TOKEN` can neither post notes nor set statuses);
  `HERALD_BITBUCKET_TOKEN`; `HERALD_AZURE_DEVOPS_TOKEN` else `SYSTEM_ACCESSTOKEN`. Read from
  the environment or `_FILE` only; a missing one is `CannotPublish` naming it, before any
  request.
- **One report per job**: the origin is named after the run as the bot names it plus the
  job (`CI / test`), so two jobs of one workflow never overwrite each other's report, and a
  retried step (same job, same attempt) updates the report it made instead of adding one;
  the forge clients upsert (check run by external id, statuses by key, sticky comments by
  marker).
- **Artifacts** (`--artifacts GLOB`): kept where the forge hosts files (GitLab's generic
  packages, Bitbucket's Downloads; `providers.hosting`), under the run and the report's
  name, and linked from the report. Where the forge hosts none Herald can write (GitHub,
  Azure DevOps from a job), the report says they were not stored and why, unless a Herald
  web app serves the store (`HERALD_PUBLIC_URL`, `HERALD_URL_SIGNING_KEY`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import httpx

import providers
from bot.artifact_store import ArtifactStore, Collected, StoredArtifact, collect
from bot.egress import EgressPolicy, guarded_transport
from bot.events import RunRef
from bot.forges import forge_of_url
from bot.ports import Change, ForgeTarget, NotConfigured, ProviderError, Published, ReportOrigin
from bot.results.model import Artifact, ParseError, TestRun
from bot.settings import ConfigError, Settings
from providers.detect import detect
from providers.hosting import job_store
from providers.stores import flat_name

#: A workflow's event file is read for the pull request's head commit; GitHub caps
#: webhook payloads at 25 MB, and a larger file is not an event.
EVENT_FILE_LIMIT: Final = 25 * 1024 * 1024

#: forge -> what its token needs, for the message when none is set.
TOKENS: Final = {
    "github": ("HERALD_GITHUB_TOKEN (or HERALD_GITHUB_TOKEN_FILE; in GitHub Actions map "
               "`GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` into the step's env) with "
               "checks: write and pull-requests: write"),
    "gitlab": ("HERALD_GITLAB_TOKEN (or HERALD_GITLAB_TOKEN_FILE) to a project access token "
               "with scope api: CI_JOB_TOKEN cannot post notes or commit statuses"),
    "bitbucket": ("HERALD_BITBUCKET_TOKEN (or HERALD_BITBUCKET_TOKEN_FILE) to a repository "
                  "access token with pull request write and repository write"),
    "azure-devops": ("SYSTEM_ACCESSTOKEN (map `SYSTEM_ACCESSTOKEN: $(System.AccessToken)` "
                     "into the step's env) or HERALD_AZURE_DEVOPS_TOKEN to a personal access "
                     "token with Code (read & write) and Build (read)"),
}
_TOKEN_SETTING: Final = {
    "github": "HERALD_GITHUB_TOKEN", "gitlab": "HERALD_GITLAB_TOKEN",
    "bitbucket": "HERALD_BITBUCKET_TOKEN", "azure-devops": "HERALD_AZURE_DEVOPS_TOKEN",
}


class CannotPublish(Exception):
    """Push mode cannot report: no CI job detected, no forge for the repository, a missing
    token, or the forge refused. The message is safe to print (it holds no secret)."""


@dataclass(frozen=True, slots=True)
class JobReport:
    """What one push-mode publish did."""

    ref: RunRef
    change: Change
    origin: ReportOrigin
    published: Published
    #: Where a person reads the report: the sticky comment, else the check run or commit.
    url: str | None
    #: The artifacts stored and linked from the report, those that could not be (named in
    #: the report too), and the patterns that named no file.
    artifacts: tuple[StoredArtifact, ...] = ()
    refused: tuple[ParseError, ...] = ()
    unmatched: tuple[str, ...] = ()


def detect_job(environ: Mapping[str, str], provider: str | None = None) -> RunRef:
    """The job's run: of `provider` when named, else of the first CI system detected."""
    if provider is not None:
        try:
            ref = providers.get(provider).detect(environ)
        except LookupError:
            raise CannotPublish(f"unknown CI system {provider!r}: choose from "
                                f"{', '.join(providers.names())}") from None
    else:
        ref = detect(environ)
    if ref is None:
        where = provider or "a supported CI system (docs/push-mode.md)"
        raise CannotPublish(f"not inside a job of {where}: its variables are not set")
    return ref


def job_environ(environ: Mapping[str, str], ref: RunRef) -> dict[str, str]:
    """`environ` with the forge settings the job's own variables imply, where the
    `HERALD_*` setting is unset: the API address of the system the job runs on, and the
    token CI hands the job."""
    env = dict(environ)

    def default(name: str, value: str | None) -> None:
        if value and not env.get(name) and not env.get(f"{name}_FILE"):
            env[name] = value

    if ref.provider == "github":
        default("HERALD_GITHUB_API_URL", environ.get("GITHUB_API_URL"))
        default("HERALD_GITHUB_TOKEN", environ.get("GITHUB_TOKEN"))
    elif ref.provider == "gitlab":
        default("HERALD_GITLAB_URL", environ.get("CI_SERVER_URL"))
    elif ref.provider == "azure-devops":
        default("HERALD_AZURE_DEVOPS_URL", str(ref.extra.get("collection_url") or "") or None)
        default("HERALD_AZURE_DEVOPS_TOKEN", environ.get("SYSTEM_ACCESSTOKEN"))
    return env


def _event(ref: RunRef) -> Mapping[str, Any]:
    """The workflow's event payload (`GITHUB_EVENT_PATH`), or {} when unreadable."""
    path = ref.extra.get("event_path")
    if not isinstance(path, str) or not path:
        return {}
    try:
        if os.path.getsize(path) > EVENT_FILE_LIMIT:
            return {}
        with open(path, "rb") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: object) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _elsewhere(repository_url: str | None, sha: str | None, number: int | None,
               settings: Settings, what: str) -> Change:
    """The change of a CI system that is not the forge: where its repository URL points."""
    if not repository_url:
        raise CannotPublish(f"the job names no repository URL ({what})")
    found = forge_of_url(repository_url, settings)
    if found is None:
        host = urlsplit(repository_url).hostname or repository_url.partition(":")[0]
        raise CannotPublish(
            f"the repository's host {host!r} is no configured forge: set "
            "HERALD_GITHUB_API_URL, HERALD_GITLAB_URL or HERALD_BITBUCKET_API_URL for it"
        )
    if not sha:
        raise CannotPublish(f"the job names no commit ({what})")
    # Without a number the forge finds the open pull requests whose head the commit is.
    return Change(forge=found.forge, repo=found.repo, sha=sha,
                  numbers=(number,) if number else (), numbers_known=number is not None)


def job_change(ref: RunRef, environ: Mapping[str, str], settings: Settings) -> Change:
    """Where the job's results are reviewed, from its variables alone."""
    numbers = (ref.change,) if ref.change else ()
    if ref.provider == "github":
        pull = _event(ref).get("pull_request") or {}
        # On pull_request events GITHUB_SHA is a merge commit nobody reviews: the head is.
        head = (pull.get("head") or {}).get("sha") if isinstance(pull, dict) else None
        number = _number(pull.get("number")) if isinstance(pull, dict) else None
        sha = str(head) if head else ref.sha
        if not sha:
            raise CannotPublish("GITHUB_SHA is not set")
        return Change(forge="github", repo=ref.repo, sha=sha,
                      numbers=(number,) if number else numbers)
    if ref.provider == "gitlab":
        sha = ref.extra.get("merge_request_source_sha") or ref.sha
        if not sha:
            raise CannotPublish("CI_COMMIT_SHA is not set")
        project = ref.extra.get("project_id")
        return Change(forge="gitlab", repo=ref.repo, sha=str(sha), numbers=numbers,
                      extra={"project_id": project} if isinstance(project, int) else {})
    if ref.provider == "bitbucket":
        if not ref.sha:
            raise CannotPublish("BITBUCKET_COMMIT is not set")
        return Change(forge="bitbucket", repo=ref.repo, sha=ref.sha, numbers=numbers,
                      extra={"refname": ref.branch} if ref.branch else {})
    if ref.provider == "azure-devops":
        kind = ref.extra.get("repository_provider")
        if kind not in (None, "TfsGit"):
            # For a GitHub pull request SYSTEM_PULLREQUEST_PULLREQUESTID is GitHub's
            # internal id, not the number people and the API use.
            number = _number(environ.get("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER"))
            if number is None and environ.get("BUILD_REASON") == "PullRequest":
                number = ref.change
            return _elsewhere(environ.get("BUILD_REPOSITORY_URI"), ref.sha, number,
                              settings, "BUILD_REPOSITORY_URI, BUILD_SOURCEVERSION")
        repository = environ.get("BUILD_REPOSITORY_ID")
        if not ref.sha or not repository:
            raise CannotPublish("BUILD_SOURCEVERSION or BUILD_REPOSITORY_ID is not set")
        return Change(forge="azure-devops", repo=ref.repo, sha=ref.sha, numbers=numbers, extra={
            "organization": ref.extra.get("organization"), "project": ref.extra.get("project"),
            "project_id": environ.get("SYSTEM_TEAMPROJECTID") or None,
            "repository_id": repository,
        })
    if ref.provider == "jenkins":
        return _elsewhere(environ.get("GIT_URL"), ref.sha, ref.change, settings,
                          "GIT_URL, GIT_COMMIT: the Git plugin sets them")
    if ref.provider == "circleci":
        return _elsewhere(environ.get("CIRCLE_REPOSITORY_URL"), ref.sha, ref.change, settings,
                          "CIRCLE_REPOSITORY_URL, CIRCLE_SHA1")
    if ref.provider == "travis":
        # Travis CI names the repository by slug only; its builds are of GitHub
        # repositories unless the operator says otherwise (HERALD_GITHUB_API_URL).
        host = (urlsplit(str(settings.config.github.api_url)).hostname or "").lower()
        host = "github.com" if host in ("api.github.com", "") else host
        change = _elsewhere(f"https://{host}/{ref.repo}", ref.sha, ref.change, settings,
                            "TRAVIS_REPO_SLUG, TRAVIS_COMMIT")
        # TRAVIS_PULL_REQUEST is `false` on a push build: then there is no pull request.
        return Change(forge=change.forge, repo=change.repo, sha=change.sha,
                      numbers=change.numbers, numbers_known=True)
    if ref.provider == "teamcity":
        return _elsewhere(environ.get("TEAMCITY_VCSROOT_URL"), ref.sha, ref.change, settings,
                          "env.TEAMCITY_VCSROOT_URL=%vcsroot.url%, BUILD_VCS_NUMBER")
    raise CannotPublish(f"push mode does not know where {ref.provider}'s changes live")


def _job_of(ref: RunRef, environ: Mapping[str, str]) -> str | None:
    """The job within the run, as its CI names it (a matrix leg included where the CI
    names one): two jobs of one run must not share a report."""
    if ref.provider == "github":
        return environ.get("GITHUB_JOB") or None
    if ref.provider == "gitlab":
        return environ.get("CI_JOB_NAME") or None
    if ref.provider == "bitbucket":
        step = environ.get("BITBUCKET_PARALLEL_STEP")
        return f"step {step}" if step else None
    if ref.provider == "azure-devops":
        return environ.get("SYSTEM_JOBDISPLAYNAME") or environ.get("AGENT_JOBNAME") or None
    if ref.provider == "circleci":
        job = environ.get("CIRCLE_JOB") or None
        node, total = environ.get("CIRCLE_NODE_INDEX"), _number(environ.get("CIRCLE_NODE_TOTAL"))
        return f"{job} [{node}]" if job and node and total and total > 1 else job
    if ref.provider == "travis":
        number = environ.get("TRAVIS_JOB_NUMBER") or ""
        return f"job {number}" if number else None
    return None  # a Jenkins or TeamCity build is one job already


_EVENT_WORDS: Final = {"push": "push", "pull_request": "pull request", "cron": "cron",
                       "api": "api"}


def job_origin(ref: RunRef, environ: Mapping[str, str], name: str | None = None) -> ReportOrigin:
    """The report's origin: the run as the bot names it, then the job (or `name`)."""
    attempt = 1
    number = None
    if ref.provider == "github":
        base = environ.get("GITHUB_WORKFLOW") or None
        attempt = _number(environ.get("GITHUB_RUN_ATTEMPT")) or 1
        number = environ.get("GITHUB_RUN_NUMBER") or None
    elif ref.provider == "azure-devops":
        base = environ.get("BUILD_DEFINITIONNAME") or None
        attempt = _number(environ.get("SYSTEM_JOBATTEMPT")) or 1
        number = environ.get("BUILD_BUILDNUMBER") or None
    elif ref.provider == "travis":
        event = str(ref.extra.get("type") or "build")
        base = f"{ref.repo} ({_EVENT_WORDS.get(event, event)})"
        number = environ.get("TRAVIS_BUILD_NUMBER") or None
    elif ref.provider == "teamcity":
        base = environ.get("TEAMCITY_BUILDCONF_NAME") or ref.repo
        number = environ.get("BUILD_NUMBER") or None
    elif ref.provider in ("jenkins", "circleci"):
        base = ref.repo
    else:
        base = None
    sequence_of = {"circleci": environ.get("CIRCLE_BUILD_NUM"),
                   "azure-devops": ref.run_id}.get(ref.provider, ref.run_id)
    job = name or _job_of(ref, environ)
    if name is not None:
        label: str | None = f"{base} / {name}" if base else name
    else:
        label = f"{base} / {job}" if base and job else base or job
    # The job that reported is where its log is: its page when the CI names one.
    job_url = ref.extra.get("job_url")
    return ReportOrigin(
        run=ref, name=label, attempt=attempt, sequence=_number(sequence_of) or 0,
        number=number or ref.run_id,
        url=job_url if isinstance(job_url, str) and job_url else ref.url,
    )


def report_url(change: Change, published: Published, settings: Settings,
               environ: Mapping[str, str]) -> str | None:
    """Where a person reads the report: the comment on the first pull request, else the
    check run or the commit."""
    number = change.numbers[0] if change.numbers else None
    comment = published.comment_id if number is not None else None
    if change.forge == "github":
        api = str(settings.config.github.api_url).rstrip("/")
        parts = urlsplit(api)
        web = "https://github.com" if parts.hostname == "api.github.com" \
            else f"{parts.scheme}://{parts.netloc}"
        base = f"{web}/{change.repo}"
        if comment:
            return f"{base}/pull/{number}#issuecomment-{comment}"
        if published.check_run_id:
            return f"{base}/runs/{published.check_run_id}"
        return f"{base}/commit/{change.sha}"
    if change.forge == "gitlab":
        base = f"{str(settings.config.gitlab.url).rstrip('/')}/{change.repo}"
        if comment:
            return f"{base}/-/merge_requests/{number}#note_{comment}"
        return f"{base}/-/commit/{change.sha}"
    if change.forge == "bitbucket":
        base = f"https://bitbucket.org/{change.repo}"
        if comment:
            return f"{base}/pull-requests/{number}#comment-{comment}"
        return f"{base}/commits/{change.sha}"
    if change.forge == "azure-devops":
        collection = str(settings.config.azure_devops.url or "").rstrip("/")
        project = quote(str(change.extra.get("project") or ""), safe="")
        repository = quote(environ.get("BUILD_REPOSITORY_NAME") or "", safe="")
        if not collection or not project or not repository:
            return None
        base = f"{collection}/{project}/_git/{repository}"
        if number is not None:
            return f"{base}/pullrequest/{number}"
        return f"{base}/commit/{change.sha}"
    return None


def _settings(env: Mapping[str, str]) -> Settings:
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        raise CannotPublish(f"the settings are wrong: {exc}") from None


def forge_client(forge: str, settings: Settings, http: httpx.AsyncClient) -> ForgeTarget:
    """The forge's client with its token from `settings`; `CannotPublish` naming the
    token's variable when there is none."""
    setting = _TOKEN_SETTING.get(forge)
    provider_settings = settings.provider(forge)
    try:
        token = provider_settings.secret("token")
    except ConfigError as exc:
        raise CannotPublish(str(exc)) from None
    if setting is None or token is None or not token.reveal().strip():
        needs = TOKENS.get(forge, f"{forge}'s token")
        raise CannotPublish(f"no token to publish on {forge}: set {needs}")
    factory: Any = providers.client_factory(forge)
    try:
        client: ForgeTarget = factory(provider_settings, http)
    except (ProviderError, ConfigError) as exc:
        raise CannotPublish(str(exc)) from None
    return client


def store_key(ref: RunRef, origin: ReportOrigin) -> str:
    """The name a job's artifacts are kept under: the run and the report's name, so two
    jobs of one run (matrix legs included) never replace each other's files."""
    return flat_name(ref.run_id, origin.name) if origin.name else flat_name(ref.run_id)


async def store_artifacts(store: ArtifactStore | str, key: str, run: TestRun,
                          patterns: Sequence[str], base: Path) -> Collected:
    """`patterns`' files kept in `store` and linked from `run`; a file that could not be
    kept, or all of them when there is no store (`store` then says why), named among the
    run's unusable inputs, so the report says so rather than leaving them out unseen."""
    if isinstance(store, str):
        done = Collected()
        done.refused.append(ParseError(source=", ".join(patterns), reason=store))
    else:
        try:
            done = await collect(store, key, base, patterns)
        except ValueError as exc:  # a pattern leaving the folder: the user's to fix
            raise CannotPublish(str(exc)) from None
    run.artifacts.extend(Artifact(name=s.name, size=s.size, url=s.url) for s in done.stored)
    run.errors.extend(done.refused)
    return done


async def publish_from_job(
    environ: Mapping[str, str],
    run: TestRun,
    *,
    provider: str | None = None,
    name: str | None = None,
    artifacts: Sequence[str] = (),
    artifact_dir: Path | None = None,
    http: httpx.AsyncClient | None = None,
) -> JobReport:
    """Detect the job in `environ` (of `provider` when named), and publish `run` on the
    forge holding its change; `name` names the report instead of the job (matrix legs
    that share a job name need one each). The files `artifacts` (globs under
    `artifact_dir`, the working directory by default) name are kept where the forge hosts
    files (`providers.hosting.job_store`) and linked from the report. Raises
    `CannotPublish` with a printable reason; nothing is sent before the forge and its
    token are known."""
    ref = detect_job(environ, provider)
    env = job_environ(environ, ref)
    settings = _settings(env)
    change = job_change(ref, env, settings)
    origin = job_origin(ref, env, name)
    run.url = run.url or ref.url
    own = http is None
    client = http or httpx.AsyncClient(
        transport=guarded_transport(EgressPolicy.from_settings(settings)),
        follow_redirects=False,
    )
    done = Collected()
    try:
        forge = forge_client(change.forge, settings, client)
        if artifacts:
            try:
                store = job_store(change, settings, client)
            except (NotConfigured, ValueError) as exc:
                store = f"not stored: {exc}"
            try:
                done = await store_artifacts(store, store_key(ref, origin), run, artifacts,
                                             artifact_dir or Path.cwd())
            finally:
                closing = getattr(store, "aclose", None)
                if closing is not None:
                    await closing()
        try:
            published = await forge.publish(change, origin, run)
        except ProviderError as exc:
            raise CannotPublish(f"{change.forge} refused the report: {exc}") from None
        finally:
            closing = getattr(forge, "aclose", None)
            if closing is not None:
                await closing()
    finally:
        if own:
            await client.aclose()
    return JobReport(ref=ref, change=change, origin=origin, published=published,
                     url=report_url(change, published, settings, env),
                     artifacts=tuple(done.stored), refused=tuple(done.refused),
                     unmatched=tuple(done.unmatched))
