"""Artifacts kept in a Bitbucket Cloud repository's Downloads.

    store = create_store(settings, repository="team/app")
    await store.put("812", "logs/app.log", Path("build/logs/app.log"))
    # -> https://bitbucket.org/team/app/downloads/812__logs_2fapp.log

Downloads (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-downloads/) are
one flat list of names per repository, so a stored name carries the run:
`providers.stores.flat_name(run_id, name)` (`812__logs_2fapp.log`), which no other run's
file or name can share.

- upload: `POST /2.0/repositories/{workspace}/{repo}/downloads`, `multipart/form-data`
  with the file in the `files` field, streamed from disk (the multipart frame is written
  around the file's chunks, its length declared); a name stored before (a retried step)
  is deleted first (`DELETE .../downloads/{name}`): Bitbucket has been seen to list two
  downloads of one name, one of them then unreachable, so one name is one file only when
  Herald makes it so. A retried upload (a lost answer, a 5xx) is sent again as is;
- size: Bitbucket documents no limit for one download; `HERALD_ARTIFACT_MAX_BYTES` is
  refused by name before sending;
- links: `https://bitbucket.org/{workspace}/{repo}/downloads/{name}`, the page's own
  link, which opens for anyone who may read the repository (signed in, for a private
  one). `url` asks for each name alone (`GET .../downloads/{name}`, a redirect when it is
  there, not followed), one request per name, all of a run's names at once: listing
  would read every run's downloads of the repository.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import httpx

from bot.ports import NotConfigured
from bot.settings import Settings
from providers.bitbucket.api import BitbucketAPI, segment
from providers.bitbucket.client import PUBLIC_WEB, BitbucketClient
from providers.stores import HostedStore, Listed, file_chunks, flat_name

#: Bitbucket states no limit on one download: Herald's own cap is the one that applies.
DOWNLOADS_MAX_BYTES: Final = sys.maxsize


class BitbucketStore(HostedStore):
    label = "Bitbucket Downloads"
    api_max_bytes = DOWNLOADS_MAX_BYTES

    def __init__(self, api: BitbucketAPI, repository: str, *, max_bytes: int,
                 web_url: str = PUBLIC_WEB, owned: httpx.AsyncClient | None = None) -> None:
        super().__init__(max_bytes, owned=owned)
        self.api = api
        self.repository = repository
        self.path = f"{BitbucketClient._repo(repository)}/downloads"
        self.web_url = web_url.rstrip("/")

    def stored_name(self, run_id: str, name: str) -> str:
        return flat_name(run_id, name)

    def _link(self, stored: str) -> str:
        return f"{self.web_url}/{self.repository}/downloads/{stored}"

    async def _upload(self, run_id: str, stored: str, source: Path, size: int) -> Listed:
        boundary = f"herald-{secrets.token_hex(16)}"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                f"filename=\"{stored}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        chunks = file_chunks(source, size)

        async def body() -> AsyncIterator[bytes]:
            yield head
            async for chunk in chunks():
                yield chunk
            yield tail

        await self.api.upload(f"storing {stored} in {self.repository}'s Downloads", self.path,
                              f"multipart/form-data; boundary={boundary}", body,
                              len(head) + size + len(tail), idempotent=True)
        return Listed(name=stored, size=size, url=self._link(stored))

    async def _put_once(self, run_id: str, stored: str, source: Path, size: int) -> Listed:
        if await self._lookup(run_id, stored) is not None:
            await self.api.delete(f"replacing {stored} in {self.repository}'s Downloads",
                                  f"{self.path}/{segment(stored)}")
        return await self._upload(run_id, stored, source, size)

    async def _lookup(self, run_id: str, stored: str) -> Listed | None:
        there = await self.api.exists(f"looking up {stored} in {self.repository}'s Downloads",
                                      f"{self.path}/{segment(stored)}")
        return Listed(name=stored, size=0, url=self._link(stored)) if there else None


def create_store(settings: Settings, repository: str,
                 http: httpx.AsyncClient | None = None) -> BitbucketStore:
    """The store over `HERALD_BITBUCKET_API_URL` with `HERALD_BITBUCKET_TOKEN` (and
    `HERALD_BITBUCKET_USERNAME` for an API token); `NotConfigured` without a token."""
    config = settings.config.bitbucket
    token = settings.provider("bitbucket").secret("token")
    if token is None or not token.reveal().strip():
        raise NotConfigured("no Bitbucket token configured: set HERALD_BITBUCKET_TOKEN (or "
                            "HERALD_BITBUCKET_TOKEN_FILE)")
    client = http if http is not None else httpx.AsyncClient()
    api = BitbucketAPI(client, base_url=config.api_url,
                       token=token.reveal().strip(), username=config.username or None,
                       timeout=config.timeout)
    return BitbucketStore(api, repository, max_bytes=settings.config.artifact_max_bytes,
                          owned=None if client is http else client)


__all__ = ["BitbucketStore", "create_store"]
