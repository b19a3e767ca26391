"""Artifacts kept as attachments of an Azure DevOps test run.

    store = create_store(settings, organization="contoso", project="web")
    await store.put("49", "logs/app.log", Path("build/logs/app.log"))   # run id: a test run
    # -> https://dev.azure.com/contoso/web/_apis/test/Runs/49/Attachments/3

Why test run attachments rather than build artifacts: a pipeline artifact is published
only by the agent inside the job (`##vso[artifact.upload]`), and build attachments need
the job's timeline record; a test run's attachment is one REST call from anywhere with
the token the client already uses, and the reviewer finds it where the test results
are, on the run's Tests tab, beside the failures the report names
(https://learn.microsoft.com/rest/api/azure/devops/test/attachments).

- the run id is the test run's number (the one `PublishTestResults` made, which the
  report's run names); the file name is `providers.stores.flat_name(name)`;
- upload: `POST {org}/{project}/_apis/test/Runs/{run}/attachments?api-version=7.1`, a JSON
  body whose `stream` is the file in base64, as the API requires: the JSON is written
  around the base64 of the file's chunks as they are read, its length declared, so the
  file is never held whole (its base64 is 4/3 of it on the wire);
- size: the API states no limit; Herald caps one attachment at `ATTACHMENT_MAX_BYTES`
  (and `HERALD_ARTIFACT_MAX_BYTES`), refused by name before sending;
- Azure DevOps keeps every attachment posted, twins of one name included: the upload is
  sent once, read back after a lost answer (`ListedStore`) by file name and size;
- links: the attachment's `url` from the answer (with `api-version`, which the API asks
  of every call), which downloads the file for anyone signed in to the organization who
  may read the project's test runs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx

from bot.ports import NotConfigured
from bot.settings import Settings
from providers.azure_devops.api import API_VERSION, AzureDevOpsAPI
from providers.stores import LISTING_TTL_SECONDS, Listed, ListedStore, file_chunks, flat_name

#: Herald's bound on one attachment: the REST API names none, its JSON body is 4/3 of it.
ATTACHMENT_MAX_BYTES: Final = 100 * 1024 * 1024
ATTACHMENT_TYPE: Final = "GeneralAttachment"


def _base64_length(size: int) -> int:
    return 4 * -(-size // 3)


class AzureDevOpsStore(ListedStore):
    label = "Azure DevOps test run attachments"
    api_max_bytes = ATTACHMENT_MAX_BYTES

    def __init__(self, api: AzureDevOpsAPI, project: str, *, max_bytes: int,
                 listing_ttl: float = LISTING_TTL_SECONDS,
                 owned: httpx.AsyncClient | None = None) -> None:
        super().__init__(max_bytes, listing_ttl=listing_ttl, owned=owned)
        self.api = api
        self.project = project

    def stored_name(self, run_id: str, name: str) -> str:
        if not run_id.isascii() or not run_id.isdigit():
            raise ValueError(f"run id {run_id!r} is no Azure DevOps test run number: "
                             "attachments belong to a test run")
        return flat_name(name)

    def _path(self, run_id: str) -> str:
        return f"/{quote(self.project, safe='')}/_apis/test/Runs/{run_id}/attachments"

    async def _upload(self, run_id: str, stored: str, source: Path, size: int) -> Listed:
        what = f"attaching {stored} to Azure DevOps test run {run_id}"
        head = (json.dumps({"attachmentType": ATTACHMENT_TYPE, "fileName": stored,
                            "comment": "stored by Herald"})[:-1] + ', "stream": "').encode()
        tail = b'"}'
        chunks = file_chunks(source, size)

        async def body() -> AsyncIterator[bytes]:
            yield head
            pending = b""  # under 3 bytes: base64 of whole 3-byte groups has no padding
            async for chunk in chunks():
                pending += chunk
                whole = len(pending) - len(pending) % 3
                if whole:
                    yield base64.b64encode(pending[:whole])
                    pending = pending[whole:]
            yield base64.b64encode(pending) + tail

        headers = {**self.api.headers, "Content-Type": "application/json",
                   "Content-Length": str(len(head) + _base64_length(size) + len(tail))}
        response = await self.api.session.request(
            "POST", self.api.address(self._path(run_id)), headers, body,
            idempotent=False, scope=self.api.scope, what=what,
        )
        answer = _json(response)
        url = answer.get("url") if isinstance(answer, dict) else None
        if not isinstance(url, str) or not url:
            raise ValueError(f"{what}: Azure DevOps named no link to the attachment")
        return Listed(name=stored, size=size, url=_versioned(url))

    async def _list(self, run_id: str) -> dict[str, Listed]:
        items = await self.api.list(f"listing the attachments of test run {run_id}",
                                    self._path(run_id))
        found: dict[str, Listed] = {}
        for item in sorted(items, key=lambda i: int(i.get("id") or 0)):
            name, url = item.get("fileName"), item.get("url")
            if isinstance(name, str) and isinstance(url, str):
                found[name] = Listed(name=name, size=int(item.get("size") or 0),
                                     url=_versioned(url))
        return found


def _versioned(url: str) -> str:
    """The attachment's link with the `api-version` every call to the API names."""
    return url if "api-version=" in url else \
        f"{url}{'&' if '?' in url else '?'}api-version={API_VERSION}"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def create_store(settings: Settings, organization: str, project: str,
                 http: httpx.AsyncClient | None = None) -> AzureDevOpsStore:
    """The store of `project` over `HERALD_AZURE_DEVOPS_URL` (else
    `https://dev.azure.com/<organization>`) with `HERALD_AZURE_DEVOPS_TOKEN`;
    `NotConfigured` without a token."""
    config = settings.config.azure_devops
    token = settings.provider("azure-devops").secret("token")
    if token is None or not token.reveal().strip():
        raise NotConfigured("no Azure DevOps token configured: set HERALD_AZURE_DEVOPS_TOKEN "
                            "(or HERALD_AZURE_DEVOPS_TOKEN_FILE)")
    url = str(config.url) if config.url else f"https://dev.azure.com/{quote(organization)}"
    client = http if http is not None else httpx.AsyncClient()
    api = AzureDevOpsAPI(client, url, token.reveal().strip(),
                         timeout=config.timeout)
    return AzureDevOpsStore(api, project, max_bytes=settings.config.artifact_max_bytes,
                            owned=None if client is http else client)


__all__ = ["AzureDevOpsStore", "create_store"]
