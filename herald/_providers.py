"""The provider factory, custom registration and CI detection of the library."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

import providers
from bot.artifact_store import ArtifactStore, DirectoryStore
from bot.events import RunRef
from bot.ports import Change, NotConfigured, ReportOrigin, Unsupported
from bot.reporter import PublishedReport
from bot.results.model import TestRun
from bot.settings import ConfigError, Settings, env_name
from providers.azure_devops.store import create_store as azure_store
from providers.base import Provider
from providers.bitbucket.store import create_store as bitbucket_store
from providers.detect import detect
from providers.gitlab.store import create_store as gitlab_store
from providers.local import LocalRuns, run_path

#: Config keys that name the run rather than a setting: the seed's, as `detect` fills them.
RUN_KEYS = frozenset({"repository", "commit_sha", "branch", "pr_number", "run_id", "url",
                      "project_id", "mr_iid"})


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
    `branch`, `pr_number`, `run_id`, `url`, and what the system adds (`project_id` on
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
        "url": ref.url,
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


def create_provider(name: str, config: Mapping[str, Any] | None = None) -> LocalProvider:
    """A provider ready to publish, from `config` or, when omitted, the environment.

    `local`: `reports_dir` (default `HERALD_LOCAL_REPORTS_DIR`, else
    `HERALD_STATE_DIR/reports`) and `root` (the runs' folder, `HERALD_LOCAL_ROOT`, for
    reading runs). The forges and CI systems publish in push mode (`herald report`),
    which the library reaches through the same call once their job credentials are read.
    """
    if name not in available_providers():
        raise ValueError(f"no provider named {name!r}: choose from "
                         f"{', '.join(available_providers())}")
    if name != "local":
        raise Unsupported(
            f"create_provider({name!r}) is not in this build yet: the library publishes "
            "through the Local provider; use `herald report` in the CI job for the forges")
    settings, run = settings_of(name, config)
    local = settings.config.local
    reports = local.reports_dir or settings.state_dir / "reports"
    root = local.root or Path.cwd()
    if run.get("run_id"):
        run_path(run["run_id"])
    try:
        return LocalProvider(LocalRuns(root, reports, settings))
    except OSError as exc:
        raise NotConfigured(f"the Local provider cannot use {root}: {exc}") from None


#: Providers that host artifacts themselves, and the config key naming where.
HOSTED_STORES: dict[str, tuple[str, ...]] = {
    "gitlab": ("project_id", "repository"),
    "bitbucket": ("repository",),
    "azure-devops": ("repository",),
}


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
    if name == "gitlab":
        project: int | str = int(where) if where.isdigit() else where
        return gitlab_store(settings, project, http)
    owner, _, rest = where.partition("/")
    if not owner or not rest or "/" in rest:
        raise ValueError(f"create_artifact_store({name!r}): repository {where!r} is not "
                         "`owner/name`")
    if name == "bitbucket":
        return bitbucket_store(settings, where, http)
    return azure_store(settings, owner, rest, http)
