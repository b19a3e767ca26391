"""Where a change's artifacts are kept: the forge's own file hosting when Herald can write
there, Herald's directory store when a Herald web app serves it, else nowhere (said why).

    store = forge_store("gitlab", settings, "48213")     # GitLab's generic packages
    found = job_store(change, settings, http)             # push mode: a store, or why not

The library (`herald.create_artifact_store`) and push mode (`herald report --artifacts`)
choose here, so both keep a run's files in the same place:

- GitLab: the project's generic packages; Bitbucket: the repository's Downloads; Azure
  DevOps: the attachments of a test run (the library names the run; a job does not know
  the test run `PublishTestResults` made, so push mode does not store there);
- everywhere else (GitHub, whose Actions artifacts only an action's own runtime token may
  write, and the Local provider): `bot.artifact_store.DirectoryStore`. Inside a job that
  store is the runner's disk, gone with the runner: push mode uses it only when its links
  are served by a Herald web app (`HERALD_PUBLIC_URL` and `HERALD_URL_SIGNING_KEY` set, the
  store directory shared with it), and otherwise says why nothing was stored.
"""

from __future__ import annotations

from typing import Final

import httpx

from bot.artifact_store import ArtifactStore, DirectoryStore
from bot.files import signing_keys
from bot.ports import Change
from bot.settings import Settings
from providers.azure_devops.store import create_store as azure_store
from providers.bitbucket.store import create_store as bitbucket_store
from providers.gitlab.store import create_store as gitlab_store

#: Forges that host artifacts themselves, and the config keys naming where, in order.
HOSTED_STORES: Final[dict[str, tuple[str, ...]]] = {
    "gitlab": ("project_id", "repository"),
    "bitbucket": ("repository",),
    "azure-devops": ("repository",),
}

#: Why a job's artifacts were not stored, by forge, when no Herald web app serves them.
_NOWHERE: Final = {
    "github": ("GitHub takes files only from an action's own runtime (upload them with "
               "actions/upload-artifact)"),
    "azure-devops": ("Azure DevOps keeps Herald's files as test run attachments, and the job "
                     "does not know its test run (publish them with PublishPipelineArtifact)"),
}


def forge_store(forge: str, settings: Settings, where: str,
                http: httpx.AsyncClient | None = None) -> ArtifactStore:
    """The store of `forge` at `where`: a GitLab project (id or path), a Bitbucket
    repository (`workspace/repo`), an Azure DevOps project (`organization/project`).
    `ValueError` for a `where` of the wrong shape; `NotConfigured` without a token."""
    if forge == "gitlab":
        project: int | str = int(where) if where.isdigit() else where
        return gitlab_store(settings, project, http)
    owner, _, rest = where.partition("/")
    if not owner or not rest or "/" in rest:
        raise ValueError(f"repository {where!r} is not `owner/name`")
    if forge == "bitbucket":
        return bitbucket_store(settings, where, http)
    if forge == "azure-devops":
        return azure_store(settings, owner, rest, http)
    raise ValueError(f"{forge} hosts no artifacts Herald can write")


def served_directory(settings: Settings) -> DirectoryStore | None:
    """Herald's directory store when a Herald web app serves its links, else None."""
    if settings.public_url and signing_keys(settings):
        return DirectoryStore.from_settings(settings)
    return None


def job_store(change: Change, settings: Settings,
              http: httpx.AsyncClient) -> ArtifactStore | str:
    """Where a CI job's artifacts for `change` go, or a sentence saying why nowhere."""
    if change.forge == "gitlab":
        project = change.extra.get("project_id")
        return forge_store("gitlab", settings, str(project or change.repo), http)
    if change.forge == "bitbucket":
        return forge_store("bitbucket", settings, change.repo, http)
    served = served_directory(settings)
    if served is not None:
        return served
    why = _NOWHERE.get(change.forge, f"{change.forge} hosts no files for Herald")
    return (f"not stored: {why}; or set HERALD_PUBLIC_URL and HERALD_URL_SIGNING_KEY to a "
            "Herald web app sharing HERALD_STORE_DIR")


__all__ = ["HOSTED_STORES", "forge_store", "job_store", "served_directory"]
