"""The artifact stores GitLab, Bitbucket and Azure DevOps host, through the real clients over
HTTP against their fakes: what is stored is what was sent, once, under a name no other
name shares, with a link that opens it; refused files are refused by name before upload;
links for many names cost one round trip, and a second ask costs none."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.artifact_store import TooLargeToStore
from bot.reporter import Reporter
from bot.results.model import TestRun
from providers.http import Unauthorized
from providers.stores import CHUNK_BYTES
from tests.stores.conftest import RUN, Hosted

#: Over one read chunk and not a multiple of 3: every chunk and base64 boundary is crossed.
SIZE = CHUNK_BYTES + 1001


def a_file(tmp_path: Path, name: str = "app.log", size: int = SIZE) -> Path:
    path = tmp_path / name
    path.write_bytes(bytes((i * 7 + 3) % 251 for i in range(size)))
    return path


async def test_a_stored_file_is_held_whole_and_its_link_is_the_one_url_finds(
        hosted: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    source = a_file(tmp_path)
    store = hosted.store(http)

    kept = await store.put(RUN, "logs/app.log", source)

    assert kept.name == "logs/app.log" and kept.size == SIZE
    assert [data for _, data in hosted.held()] == [source.read_bytes()]
    assert await store.url(RUN, "logs/app.log") == kept.url
    if hosted.reader is not None:  # the link downloads the file for a reader of the project
        response = await http.get(kept.url, headers=hosted.reader)
        assert response.status_code == 200 and response.content == source.read_bytes()


async def test_a_name_never_stored_has_no_link(hosted: Hosted, http: httpx.AsyncClient,
                                               tmp_path: Path) -> None:
    store = hosted.store(http)
    await store.put(RUN, "kept.txt", a_file(tmp_path, size=10))

    assert await store.url(RUN, "never-stored.txt") is None


async def test_names_that_flatten_alike_stay_two_files(hosted: Hosted, http: httpx.AsyncClient,
                                                       tmp_path: Path) -> None:
    store = hosted.store(http)
    first, second = a_file(tmp_path, "one", 11), a_file(tmp_path, "two", 12)

    a = await store.put(RUN, "a/b.txt", first)
    b = await store.put(RUN, "a_2fb.txt", second)

    assert a.url != b.url
    assert sorted(len(data) for _, data in hosted.held()) == [11, 12]
    assert await store.url(RUN, "a/b.txt") == a.url
    assert await store.url(RUN, "a_2fb.txt") == b.url


async def test_a_wrong_token_is_refused_and_nothing_is_stored(
        hosted: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    variable = {"gitlab": "HERALD_GITLAB_TOKEN", "bitbucket": "HERALD_BITBUCKET_TOKEN",
                "azure-devops": "HERALD_AZURE_DEVOPS_TOKEN"}[hosted.name]
    store = hosted.store(http, **{variable: "not-the-token"})

    with pytest.raises(Unauthorized):
        await store.put(RUN, "app.log", a_file(tmp_path))

    assert hosted.held() == []


async def test_a_file_over_the_cap_is_refused_by_name_before_any_upload(
        hosted: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    store = hosted.store(http, HERALD_ARTIFACT_MAX_BYTES="1024")

    with pytest.raises(TooLargeToStore, match=r"huge\.bin is 2,048 bytes"):
        await store.put(RUN, "huge.bin", a_file(tmp_path, "huge.bin", 2048))

    assert hosted.calls(hosted.upload) == [] and hosted.held() == []


@pytest.mark.parametrize("how", ["reset", "timeout"])
async def test_an_upload_whose_answer_was_lost_is_held_once(
        hosted: Hosted, http: httpx.AsyncClient, tmp_path: Path, how: str) -> None:
    source = a_file(tmp_path)
    store = hosted.store(http)
    hosted.fake.lose_answer(hosted.upload, how=how)

    kept = await store.put(RUN, "logs/app.log", source)

    assert [data for _, data in hosted.held()] == [source.read_bytes()]
    assert await store.url(RUN, "logs/app.log") == kept.url


async def test_links_for_a_hundred_names_cost_one_round_trip_and_then_none(
        hosted: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    store = hosted.store(http)
    names = [f"shots/case-{i}.png" for i in range(100)]
    source = a_file(tmp_path, size=16)
    for name in names:
        await store.put(RUN, name, source)
    reporter = Reporter(store=store, settings=hosted.settings())
    hosted.fake.delay(hosted.lookup, 0.3)
    hosted.fake.max_in_flight = 0
    before = len(hosted.fake.calls)

    urls = await reporter.get_artifact_urls(RUN, names)

    assert all(urls[name] for name in names) and len(set(urls.values())) == 100
    lookups = hosted.fake.calls[before:]
    if hosted.name == "bitbucket":
        # One request per name, every one in flight together: one round trip's time
        # (up to the HTTP client's pool, httpx's 100 connections).
        assert len(lookups) == 100 and hosted.fake.max_in_flight == 100
    else:
        # One listing of the run served every name (GitLab: find the package, list it).
        assert len(lookups) == (2 if hosted.name == "gitlab" else 1)
    again = len(hosted.fake.calls)
    assert await reporter.get_artifact_urls(RUN, names) == {n: urls[n] for n in names}
    assert len(hosted.fake.calls) == again


async def test_a_failed_lookup_is_none_and_the_next_call_asks_again(
        hosted: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    store = hosted.store(http)
    kept = await store.put(RUN, "app.log", a_file(tmp_path, size=10))
    reporter = Reporter(store=store, settings=hosted.settings())
    hosted.fake.fail_next(hosted.lookup, times=20, status=500)  # type: ignore[attr-defined]

    assert await reporter.get_artifact_urls(RUN, ["app.log"]) == {"app.log": None}
    hosted.fake.injected.faults.clear()

    assert await reporter.get_artifact_urls(RUN, ["app.log"]) == {"app.log": kept.url}


async def test_the_reporter_collects_into_the_forge_and_names_what_it_refused(
        hosted: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    build = tmp_path / "build"
    (build / "logs").mkdir(parents=True)
    a_file(build / "logs", "app.log", 100)
    a_file(build / "logs", "core.dump", 5000)
    store = hosted.store(http, HERALD_ARTIFACT_MAX_BYTES="4096")
    reporter = Reporter(store=store, settings=hosted.settings(), artifact_dir=build)

    stored = await reporter.collect_and_upload_artifacts(RUN, ["logs/*"])

    assert [(s.name, s.size) for s in stored] == [("logs/app.log", 100)]
    assert await reporter.get_artifact_urls(RUN, ["logs/app.log", "logs/core.dump"]) == {
        "logs/app.log": stored[0].url, "logs/core.dump": None}
    assert [len(data) for _, data in hosted.held()] == [100]


async def test_a_stored_name_with_a_mention_and_an_issue_reference_stays_inert_in_the_report(
        hosted: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    a_file(build, "@admin #123.log", 10)
    reporter = Reporter(store=hosted.store(http), settings=hosted.settings(),
                        artifact_dir=build, report_dir=tmp_path / "report")
    [stored] = await reporter.collect_and_upload_artifacts(RUN, ["*.log"])

    report = await reporter.report_test_result(TestRun(id=RUN), formats=["markdown"])

    text = report.files["md"].read_text()
    assert stored.url in text
    assert "@admin" not in text and "#123" not in text


async def test_a_file_the_forge_refuses_costs_that_file_only_and_is_named_in_the_report(
        hosted: Hosted, http: httpx.AsyncClient, tmp_path: Path) -> None:
    build = tmp_path / "build"
    build.mkdir()
    a_file(build, "a-refused.log", 10)
    a_file(build, "b-kept.log", 20)
    reporter = Reporter(store=hosted.store(http), settings=hosted.settings(),
                        artifact_dir=build, report_dir=tmp_path / "report")
    hosted.fake.fail_next(hosted.upload, times=1, status=400)  # type: ignore[attr-defined]

    stored = await reporter.collect_and_upload_artifacts(RUN, ["*.log"])
    run = TestRun(id=RUN)
    await reporter.report_test_result(run, formats=["json"])

    assert [s.name for s in stored] == ["b-kept.log"]
    assert [e.source for e in run.errors] == ["a-refused.log"]
    assert "not stored" in run.errors[0].reason
