"""What one forge's store does that the others do not: GitLab's own size limit and its
"no duplicates" setting, Bitbucket's one flat list (a name sent again replaces the file,
a lookup never follows the file's redirect), Azure DevOps' test run numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bot.artifact_store import TooLargeToStore
from providers.http import NotFound
from tests.fakes.bitbucket import FakeBitbucket
from tests.fakes.faults import serve
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.jenkins import CaptureServer
from tests.stores.conftest import MAKERS, RUN, Hosted, closing
from tests.stores.test_hosted_stores import a_file


@pytest.fixture
async def gitlab() -> AsyncIterator[Hosted]:
    async for each in closing(MAKERS["gitlab"]()):
        yield each


@pytest.fixture
async def bitbucket() -> AsyncIterator[Hosted]:
    async for each in closing(MAKERS["bitbucket"]()):
        yield each


@pytest.fixture
async def azure() -> AsyncIterator[Hosted]:
    async for each in closing(MAKERS["azure-devops"]()):
        yield each


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer()
    with serve(server) as url:
        server.url = url.replace("127.0.0.1", "localhost")
        yield server


async def test_gitlab_refusing_a_file_over_its_own_limit_names_the_file_as_too_large(
        gitlab: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    assert isinstance(gitlab.fake, FakeGitLab)
    gitlab.fake.generic_max_file_size = 100  # the instance's limit, below Herald's cap

    with pytest.raises(TooLargeToStore, match=r"big\.bin.*File is too large"):
        await gitlab.store(http).put(RUN, "big.bin", a_file(tmp_path, "big.bin", 101))

    assert gitlab.held() == []


async def test_gitlab_storing_a_name_again_serves_the_new_file(
        gitlab: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    store = gitlab.store(http)
    await store.put(RUN, "app.log", a_file(tmp_path, "old", 10))
    kept = await store.put(RUN, "app.log", a_file(tmp_path, "new", 20))

    response = await http.get(kept.url, headers=gitlab.reader or {})
    assert len(response.content) == 20


async def test_gitlab_without_duplicates_storing_a_name_again_replaces_it(
        gitlab: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    assert isinstance(gitlab.fake, FakeGitLab)
    gitlab.fake.generic_duplicates_allowed = False
    store = gitlab.store(http)
    await store.put(RUN, "app.log", a_file(tmp_path, "old", 10))

    await store.put(RUN, "app.log", a_file(tmp_path, "new", 20))

    assert [len(data) for _, data in gitlab.held()] == [20]


async def test_bitbucket_names_carry_the_run_and_a_name_sent_again_replaces_the_file(
        bitbucket: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    store = bitbucket.store(http)
    await store.put(RUN, "logs/app.log", a_file(tmp_path, "old", 10))
    kept = await store.put(RUN, "logs/app.log", a_file(tmp_path, "new", 20))
    other = await store.put("302", "logs/app.log", a_file(tmp_path, "other", 30))

    assert [(name, len(data)) for name, data in bitbucket.held()] == [
        (f"{RUN}__logs_2fapp.log", 20)]
    assert kept.url == ("https://bitbucket.org/acme-eng/checkout-service/downloads/"
                        f"{RUN}__logs_2fapp.log")
    assert other.url != kept.url


async def test_bitbucket_lookups_never_follow_the_file_to_its_storage_host(
        bitbucket: Hosted, http: httpx.AsyncClient, tmp_path: Path,
        capture: CaptureServer) -> None:
    assert isinstance(bitbucket.fake, FakeBitbucket)
    bitbucket.fake.downloads_storage = capture.url
    store = bitbucket.store(http)
    kept = await store.put(RUN, "app.log", a_file(tmp_path, size=10))

    assert await store.url(RUN, "app.log") == kept.url
    assert capture.requests == []


async def test_azure_attachments_belong_to_a_test_run_named_by_its_number(
        azure: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    store = azure.store(http)

    with pytest.raises(ValueError, match="no Azure DevOps test run number"):
        await store.put("nightly-412", "app.log", a_file(tmp_path, size=10))

    assert azure.calls(azure.upload) == []


async def test_azure_names_a_test_run_it_does_not_know(
        azure: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    store = azure.store(http)

    with pytest.raises(NotFound, match="Test run 999"):
        await store.put("999", "app.log", a_file(tmp_path, size=10))
