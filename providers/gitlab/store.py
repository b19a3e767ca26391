"""Artifacts kept in a GitLab project's package registry: one generic package per run.

    store = create_store(settings, project="group/app")
    await store.put("4711", "logs/app.log", Path("build/logs/app.log"))
    # -> {gitlab}/api/v4/projects/group%2Fapp/packages/generic/herald/4711/logs_2fapp.log

Why generic packages rather than job artifacts: job artifacts are written only by the
runner inside the job (there is no API to add a file to a finished job), while a generic
package file is a plain `PUT` from anywhere with the same token the client already uses,
and has a stable download address per name
(https://docs.gitlab.com/user/packages/generic_packages/).

- package `herald`, version the run id, file the artifact's name, both made flat with
  `providers.stores.flat_name` (GitLab takes letters, digits, `.`, `-` and `_` in a
  file name, and a version of word characters, `.`, `+` and `-`);
- size: GitLab refuses a file over the instance's "maximum generic package file size"
  (5 GiB unless an administrator changed it); Herald refuses over the smaller of that
  and `HERALD_ARTIFACT_MAX_BYTES` before sending, and names GitLab's own refusal too;
- GitLab keeps every upload of one file name and a download gets the newest, unless the
  group forbids duplicates (then a second upload is refused, and the older file is
  deleted first so that storing a name again replaces it): the upload is sent once, read
  back after a lost answer (`ListedStore`), by name, size and SHA-256 (the package files
  list gives it);
- links: the API's download address, which opens in a browser for anyone signed in to
  GitLab who may read the project's packages (the API takes the session cookie on GET).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import httpx

from bot.artifact_store import TooLargeToStore
from bot.ports import NotConfigured
from bot.settings import Settings
from providers.gitlab.api import GitLabAPI, encode_id
from providers.http import ClientError, Forbidden, NotFound
from providers.stores import LISTING_TTL_SECONDS, Listed, ListedStore, file_chunks, flat_name

PACKAGE: Final = "herald"
#: GitLab's default "maximum generic package file size" (an instance setting).
GENERIC_MAX_BYTES: Final = 5 * 1024**3


class GitLabStore(ListedStore):
    label = "GitLab's generic packages"
    api_max_bytes = GENERIC_MAX_BYTES

    def __init__(self, api: GitLabAPI, project: int | str, *, max_bytes: int,
                 listing_ttl: float = LISTING_TTL_SECONDS) -> None:
        super().__init__(max_bytes, listing_ttl=listing_ttl)
        self.api = api
        self.project = encode_id(project)

    async def aclose(self) -> None:
        """python-gitlab's pool and session, and an HTTP client the API made itself."""
        await self.api.aclose()

    def stored_name(self, run_id: str, name: str) -> str:
        return flat_name(name)

    def _package_path(self, run_id: str) -> str:
        return f"/projects/{self.project}/packages/generic/{PACKAGE}/{flat_name(run_id)}"

    def _link(self, run_id: str, stored: str) -> str:
        return f"{self.api.gl.api_url}{self._package_path(run_id)}/{stored}"

    def _listed(self, run_id: str, item: dict[str, Any]) -> Listed:
        sha = item.get("file_sha256")
        return Listed(name=str(item["file_name"]), size=int(item.get("size") or 0),
                      url=self._link(run_id, str(item["file_name"])),
                      sha256=sha if isinstance(sha, str) and sha else None)

    async def _upload(self, run_id: str, stored: str, source: Path, size: int) -> Listed:
        what = f"storing {stored} in GitLab package {PACKAGE}/{flat_name(run_id)}"
        try:
            answer = await self._send(what, run_id, stored, source, size)
        except Forbidden as exc:
            if "duplicate" not in exc.detail.lower():
                raise
            # The group keeps one file per name ("Do not allow duplicates"): storing a
            # name again replaces it, so the older file goes first.
            await self._remove(run_id, stored)
            answer = await self._send(what, run_id, stored, source, size)
        if not isinstance(answer, dict) or "file_name" not in answer:
            return Listed(name=stored, size=size, url=self._link(run_id, stored))
        return self._listed(run_id, answer)

    async def _send(self, what: str, run_id: str, stored: str, source: Path,
                    size: int) -> Any:
        try:
            return await self.api.upload(what, f"{self._package_path(run_id)}/{stored}",
                                         file_chunks(source, size), size,
                                         {"select": "package_file"})
        except ClientError as exc:
            if exc.status == 413 or "too large" in exc.detail.lower():
                raise TooLargeToStore(f"{what}: GitLab refused its size ({exc.detail})") from exc
            raise

    async def _files(self, run_id: str) -> tuple[int | None, list[dict[str, Any]]]:
        """The run's package id and its files, oldest first (None, [] before the first)."""
        version = flat_name(run_id)
        what = f"listing GitLab package {PACKAGE}/{version}"
        base = f"/projects/{self.project}/packages"
        package = await self.api.find(
            what, base,
            {"package_type": "generic", "package_name": PACKAGE, "package_version": version},
            lambda p: p.get("name") == PACKAGE and p.get("version") == version,
        )
        if package is None:
            return None, []
        files = await self.api.list(what, f"{base}/{package['id']}/package_files")
        ordered = sorted((f for f in files if isinstance(f.get("file_name"), str)),
                         key=lambda f: int(f.get("id") or 0))
        return int(package["id"]), ordered

    async def _remove(self, run_id: str, stored: str) -> None:
        package, files = await self._files(run_id)
        for item in files:
            if item["file_name"] == stored:
                path = f"/projects/{self.project}/packages/{package}/package_files/{item['id']}"
                try:
                    await self.api.delete(f"replacing {stored} in GitLab package {PACKAGE}", path)
                except NotFound:
                    pass  # gone already: what was wanted

    async def _list(self, run_id: str) -> dict[str, Listed]:
        found: dict[str, Listed] = {}
        # Of several files of one name a download gets the newest: the one kept here.
        for item in (await self._files(run_id))[1]:
            listed = self._listed(run_id, item)
            found[listed.name] = listed
        return found


def create_store(settings: Settings, project: int | str,
                 http: httpx.AsyncClient | None = None) -> GitLabStore:
    """The store over `HERALD_GITLAB_URL` with `HERALD_GITLAB_TOKEN`; `NotConfigured`
    without a token."""
    config = settings.config.gitlab
    token = settings.provider("gitlab").secret("token")
    if token is None or not token.reveal().strip():
        raise NotConfigured("no GitLab token configured: set HERALD_GITLAB_TOKEN (or "
                            "HERALD_GITLAB_TOKEN_FILE) to a token with scope api")
    api = GitLabAPI(config.url, token.reveal().strip(), timeout=config.timeout,
                    workers=config.workers, http=http)
    return GitLabStore(api, project, max_bytes=settings.config.artifact_max_bytes)


__all__ = ["GitLabStore", "create_store"]
