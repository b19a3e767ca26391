"""Fixtures: each forge that hosts artifacts, as its fake on loopback and the store Herald's
selection (`herald.create_artifact_store`) makes for it, with what a test asks of both."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import herald
from bot.artifact_store import ArtifactStore
from bot.settings import Settings
from tests.azure_devops.world import ORG
from tests.azure_devops.world import PROJECT as AZURE_PROJECT
from tests.azure_devops.world import build_world as azure_world
from tests.bitbucket.world import REPO as BITBUCKET_REPO
from tests.bitbucket.world import build_world as bitbucket_world
from tests.fakes import azure_devops, bitbucket, gitlab
from tests.fakes.faults import FakeAPI, serve
from tests.gitlab.world import PATH as GITLAB_PATH
from tests.gitlab.world import PROJECT as GITLAB_PROJECT

#: A test run of the Azure DevOps world: attachments belong to one.
RUN = "301"


@dataclass
class Hosted:
    """One forge's fake and how to read what it holds."""

    name: str
    fake: FakeAPI
    env: dict[str, str]
    config: dict[str, str]
    #: "METHOD /path" of an upload, and of a link lookup (as sent, or as the fake records
    #: it without the API's prefix).
    upload: str
    lookup: str
    #: (stored name, bytes) of every file the fake holds for run `RUN`.
    held: Callable[[], list[tuple[str, bytes]]]
    #: The headers a reader's browser stands for, when the store's links open on the fake
    #: (the API's own download address); None when they open on the forge's web host.
    reader: dict[str, str] | None
    #: The stores a test made, closed after it.
    made: list[Any] = field(default_factory=list)

    def settings(self, **env: str) -> Settings:
        return Settings.from_env({**self.env, **env})

    def store(self, http: httpx.AsyncClient, **env: str) -> ArtifactStore:
        made = herald.create_artifact_store(self.name, self.config,
                                            environ={**self.env, **env}, http=http)
        self.made.append(made)
        return made

    def calls(self, pattern: str) -> list[Any]:
        regex = re.compile(pattern)
        return [c for c in self.fake.calls if regex.search(f"{c.method} {c.path}")]


def _gitlab() -> Iterator[Hosted]:
    fake = gitlab.FakeGitLab()
    with serve(fake) as url:
        fake.url = url
        fake.add_project(GITLAB_PROJECT, GITLAB_PATH)

        def held() -> list[tuple[str, bytes]]:
            return [(f["file_name"], fake.package_bytes[f["id"]])
                    for f in fake.generic_files(GITLAB_PROJECT, "herald", RUN)]

        yield Hosted(
            "gitlab", fake,
            {"HERALD_GITLAB_URL": url, "HERALD_GITLAB_TOKEN": gitlab.TOKEN,
             "HERALD_GITLAB_TIMEOUT": "2"},
            {"project_id": str(GITLAB_PROJECT)},
            upload=r"^PUT .*/projects/\d+/packages/generic/",
            lookup=r"^GET .*/projects/\d+/packages",
            held=held, reader={"PRIVATE-TOKEN": gitlab.TOKEN})


def _bitbucket() -> Iterator[Hosted]:
    fake = bitbucket.FakeBitbucket()
    with serve(fake) as url:
        fake.url = url
        bitbucket_world(fake)

        def held() -> list[tuple[str, bytes]]:
            repo = fake.repos[BITBUCKET_REPO]
            return [(name, repo.download_bytes[name]) for name in repo.downloads
                    if name.startswith(f"{RUN}__")]

        yield Hosted(
            "bitbucket", fake,
            {"HERALD_BITBUCKET_API_URL": f"{url}/2.0", "HERALD_BITBUCKET_TOKEN": bitbucket.TOKEN,
             "HERALD_BITBUCKET_TIMEOUT": "2"},
            {"repository": BITBUCKET_REPO},
            upload=r"^POST .*/repositories/.*/downloads",
            lookup=r"^GET .*/repositories/.*/downloads",
            held=held, reader=None)


def _azure() -> Iterator[Hosted]:
    fake = azure_devops.FakeAzureDevOps()
    with serve(fake) as url:
        fake.url = f"{url}/{ORG}"
        azure_world(fake)

        def held() -> list[tuple[str, bytes]]:
            return [(a["fileName"], fake.attachment_bytes[a["id"]])
                    for a in fake.attachments.get(int(RUN), [])]

        yield Hosted(
            "azure-devops", fake,
            {"HERALD_AZURE_DEVOPS_URL": fake.url, "HERALD_AZURE_DEVOPS_TOKEN": azure_devops.TOKEN,
             "HERALD_AZURE_DEVOPS_TIMEOUT": "2"},
            {"repository": f"{ORG}/{AZURE_PROJECT}"},
            upload=r"^POST /.*/_apis/test/Runs/\d+/attachments",
            lookup=r"^GET /.*/_apis/test/Runs/\d+/attachments",
            held=held, reader={"Authorization": "Basic " + base64.b64encode(
                f":{azure_devops.TOKEN}".encode()).decode()})


MAKERS = {"gitlab": _gitlab, "bitbucket": _bitbucket, "azure-devops": _azure}


async def closing(made: Iterator[Hosted]) -> AsyncIterator[Hosted]:
    for hosted in made:
        yield hosted
        for store in hosted.made:
            await store.aclose()


@pytest.fixture(params=list(MAKERS))
async def hosted(request: pytest.FixtureRequest) -> AsyncIterator[Hosted]:
    async for each in closing(MAKERS[request.param]()):
        yield each


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield client
