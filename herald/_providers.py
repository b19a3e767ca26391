"""The provider factory, custom registration and CI detection of the library."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import httpx

import providers
from bot.artifact_store import ArtifactStore, DirectoryStore
from bot.egress import EgressPolicy, guarded_transport
from bot.events import RunRef
from bot.ports import Change, NotConfigured, ReportOrigin
from bot.reporter import PublishedReport
from bot.results.model import TestRun
from bot.settings import ConfigError, Settings, env_name
from providers import push
from providers.base import Provider
from providers.detect import detect
from providers.hosting import HOSTED_STORES, forge_store
from providers.local import LocalRuns, run_path

#: Config keys that name the run rather than a setting: the seed's, as `detect` fills them.
RUN_KEYS = frozenset({"repository", "commit_sha", "branch", "pr_number", "run_id",
                      "run_url", "project_id", "mr_iid", "name"})
#: The CI name of a report a script publishes through a forge named by a config.
LIBRARY: Final = "library"


def register_provider(name: str, cls: type[Provider]) -> None:
    """Add a custom provider's webhook parser under a new name (`ValueError` for a name
    already taken, built-in or registered)."""
    providers.register(name, cls)


def available_providers() -> list[str]:
    """Every name `create_provider` and the web app know: the eight CI systems, `local`
    and the registered ones."""
    return [*providers.names(), "local"]


def detect_ci_environment(
    environ: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]] | None:
    """`(provider, config)` of the CI job this process runs in, or None outside one.

    The config names the run as `create_provider` takes it: `repository`, `commit_sha`,
    `branch`, `pr_number`, `run_id`, `run_url`, and what the system adds (`project_id` on
    GitLab...), each present only when the job's variables say it.
    """
    ref = detect(os.environ if environ is None else environ)
    return None if ref is None else (ref.provider, run_config(ref))


def run_config(ref: RunRef) -> dict[str, str]:
    config = {
        "repository": ref.repo,
        "commit_sha": ref.sha,
        "branch": ref.branch,
        "pr_number": str(ref.change) if ref.change is not None else None,
        "run_id": ref.run_id,
        "run_url": ref.url,
    }
    extra = {key: str(value) for key, value in ref.extra.items()
             if isinstance(value, (str, int)) and not isinstance(value, bool)}
    if ref.provider == "gitlab" and ref.change is not None:
        extra.setdefault("mr_iid", str(ref.change))
    return {key: value for key, value in {**config, **extra}.items() if value}


def settings_of(name: str, config: Mapping[str, Any] | None,
                environ: Mapping[str, str] | None = None) -> tuple[Settings, dict[str, str]]:
    """The settings a provider is made with, and the run keys of `config`: each other key
    is that provider's `HERALD_<NAME>_<KEY>` (`token`, `url`, `root`...), over the
    environment; an unknown key is refused by name, as a misspelt variable would be."""
    base = dict(os.environ if environ is None else environ)
    run: dict[str, str] = {}
    for key, value in (config or {}).items():
        if value is None:
            continue
        if key in RUN_KEYS:
            run[key] = str(value)
            continue
        base[env_name(name, key)] = str(value)
    try:
        settings = Settings.from_env(base)
    except ConfigError as exc:
        raise ValueError(f"create_provider({name!r}): {exc}") from None
    unknown = [w for w in settings.unknown_variables()
               if any(env_name(name, str(key)) in w for key in (config or {}))]
    if unknown:
        raise ValueError(f"create_provider({name!r}): {unknown[0]}")
    return settings, run


class LocalProvider:
    """The Local provider as the library publishes through it: the reports of run
    `<id>` as `report.md`, `report.html` and `report.json` in `<reports_dir>/<id>/`,
    replaced whole when published again."""

    name = "local"

    def __init__(self, runs: LocalRuns) -> None:
        self.runs = runs

    async def publish(self, run: TestRun) -> PublishedReport:
        ref = RunRef(provider="local", repo="local", run_id=run.id)
        origin = ReportOrigin(run=ref, name=run.id, url=run.url)
        change = Change(forge="local", repo="local", sha=run.id)
        await self.runs.publish(change, origin, run)
        folder = self.runs.report_folder(origin).resolve()
        return PublishedReport(where=f"the report folder {folder}",
                               url=(folder / "report.html").as_uri())


class JobProvider:
    """A provider inside its CI job: publishes as `herald report` does (push mode), the
    run, commit, pull request, forge and token read from the job's environment."""

    def __init__(self, name: str, environ: Mapping[str, str]) -> None:
        self.name = name
        self.environ = dict(environ)

    async def publish(self, run: TestRun) -> PublishedReport:
        try:
            report = await push.publish_from_job(self.environ, run, provider=self.name)
        except push.CannotPublish as exc:
            raise NotConfigured(str(exc)) from None
        change = report.change
        return PublishedReport(where=f"{change.forge} {change.repo} at {change.sha[:12]}",
                               url=report.url)


class ForgeProvider:
    """A forge named by a config mapping: the repository, commit and pull request the
    report is for, and the token to publish with."""

    def __init__(self, name: str, settings: Settings, change: Change,
                 report_name: str | None = None) -> None:
        self.name = name
        self.settings = settings
        self.change = change
        self.name_ = report_name

    async def publish(self, run: TestRun) -> PublishedReport:
        change = self.change
        # The run is the script's, not one of the forge's own CI (whose ids it would
        # read as pipeline or run numbers): reported as `Herald (library: <name>)`.
        origin = ReportOrigin(run=RunRef(provider=LIBRARY, repo=change.repo, run_id=run.id,
                                         sha=change.sha), name=self.name_ or run.id,
                              url=run.url)
        async with httpx.AsyncClient(
            transport=guarded_transport(EgressPolicy.from_settings(self.settings)),
            follow_redirects=False,
        ) as http:
            try:
                forge = push.forge_client(change.forge, self.settings, http)
            except push.CannotPublish as exc:
                raise NotConfigured(str(exc)) from None
            try:
                published = await forge.publish(change, origin, run)
            finally:
                closing = getattr(forge, "aclose", None)
                if closing is not None:
                    await closing()
        return PublishedReport(
            where=f"{change.forge} {change.repo} at {change.sha[:12]}",
            url=push.report_url(change, published, self.settings, self.settings.environ))


#: The forges a config mapping can name a change on (Azure DevOps needs its pipeline's
#: coordinates: inside the pipeline, with no config, it publishes in push mode).
CONFIGURABLE_FORGES: Final = ("github", "gitlab", "bitbucket")


def _change_from(name: str, run: Mapping[str, str]) -> Change:
    missing = [key for key in ("repository", "commit_sha") if not run.get(key)]
    if missing:
        raise ValueError(f"create_provider({name!r}): the config needs {' and '.join(missing)}")
    number = run.get("mr_iid") if name == "gitlab" else run.get("pr_number")
    if number is not None and not number.isdigit():
        raise ValueError(f"create_provider({name!r}): {number!r} is no pull request number")
    extra: dict[str, Any] = {}
    if name == "gitlab" and run.get("project_id"):
        if not run["project_id"].isdigit():
            raise ValueError(f"create_provider('gitlab'): project_id {run['project_id']!r} "
                             "is not a number")
        extra["project_id"] = int(run["project_id"])
    numbers = (int(number),) if number else ()
    # Without a number the forge finds the open pull requests whose head is the commit.
    return Change(forge=name, repo=run["repository"], sha=run["commit_sha"], numbers=numbers,
                  numbers_known=bool(numbers), extra=extra)


def create_provider(
    name: str, config: Mapping[str, Any] | None = None
) -> LocalProvider | JobProvider | ForgeProvider:
    """A provider ready to publish, from `config` or, when omitted, the environment.

    - `local`: `reports_dir` (default `HERALD_LOCAL_REPORTS_DIR`, else
      `HERALD_STATE_DIR/reports`) and `root` (the runs' folder, for reading runs).
    - `github`, `gitlab`, `bitbucket` with a config: `token`, `repository` (`owner/name`,
      a GitLab project path), `commit_sha`, and `pr_number` (GitLab: `mr_iid`, and
      `project_id`), `api_url`/`url` for a self-hosted forge, `name` for the report
      (`Herald (library: <name>)`, the run's id by default), `token_login` (GitHub: the
      login the token posts as, to find its own sticky comment); without `pr_number` the
      forge finds the open pull requests of the commit.
    - any of the eight CI systems with no config: inside its job, as `herald report`
      does (the job's variables and the forge's token from the environment).
    """
    if name not in available_providers():
        raise ValueError(f"no provider named {name!r}: choose from "
                         f"{', '.join(available_providers())}")
    if name == "local":
        settings, run = settings_of(name, config)
        local = settings.config.local
        reports = local.reports_dir or settings.state_dir / "reports"
        root = local.root or Path.cwd()
        if run.get("run_id"):
            run_path(run["run_id"])
        return LocalProvider(LocalRuns(root, reports, settings))
    if config is None:
        if name not in providers.BUILTIN:
            raise ValueError(f"{name!r} has no push mode: only the built-in CI systems do")
        return JobProvider(name, os.environ)
    if name not in CONFIGURABLE_FORGES:
        raise ValueError(
            f"create_provider({name!r}, config): a config names a change on a forge "
            f"({', '.join(CONFIGURABLE_FORGES)}); inside a {name} job, omit the config")
    settings, run = settings_of(name, config)
    return ForgeProvider(name, settings, _change_from(name, run), run.get("name"))


def create_artifact_store(
    name: str,
    config: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
) -> ArtifactStore:
    """Where `Reporter` keeps the artifacts of a run on provider `name`: GitLab's generic
    packages, Bitbucket's Downloads, Azure DevOps' test run attachments when that
    provider's token is configured (`config` as `create_provider` takes it, or the
    environment); Herald's own `DirectoryStore` for every other provider, and for these
    three without a token. A token without the place to store in is a `ValueError` naming
    the key: `project_id` or `repository` (`group/app`) for GitLab, `repository`
    (`workspace/repo`) for Bitbucket, `repository` (`organization/project`) for Azure DevOps.
    """
    settings, run = settings_of(name, config, environ)
    keys = HOSTED_STORES.get(name)
    token = settings.provider(name).secret("token") if keys else None
    if keys is None or token is None or not token.reveal().strip():
        return DirectoryStore.from_settings(settings)
    where = next((run[key] for key in keys if run.get(key)), None)
    if where is None:
        raise ValueError(f"create_artifact_store({name!r}) needs {' or '.join(keys)} "
                         "to know where to store")
    try:
        return forge_store(name, settings, where, http)
    except ValueError as exc:
        raise ValueError(f"create_artifact_store({name!r}): {exc}") from None
