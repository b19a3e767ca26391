"""The Local provider: a run is a folder of result files, its report a folder of files.

These go through the report handler and the worker's own client directory, as a run
reported by the worker is, with no forge and no network involved.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

import providers
from bot.context import Context
from bot.events import BUILD_COMPLETED, Event
from bot.ports import NotConfigured, PermanentError, Unsupported
from bot.settings import Settings
from bot.worker import Clients
from handlers.report import report
from providers.local import LocalRuns, local_run, run_path
from tests.fakes import RecordingLog, zipped

EXECUTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "executions"
MATRIX = EXECUTIONS / "pytest" / "matrix"
PASSING = b'<testsuite name="s"><testcase classname="app" name="ok"/></testsuite>'
FAILING = (b'<testsuite name="s"><testcase classname="app" name="bad">'
           b'<failure message="boom"/></testcase></testsuite>')


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


class World:
    """A root of runs, a reports folder, and the worker's clients over them."""

    def __init__(self, tmp_path: Path, redis: aioredis.Redis) -> None:
        self.root = tmp_path / "runs"
        self.reports = tmp_path / "reports"
        self.root.mkdir()
        self.redis = redis
        self.environ = {"HERALD_LOCAL_ROOT": str(self.root),
                        "HERALD_LOCAL_REPORTS_DIR": str(self.reports)}

    def run(self, run_id: str, files: dict[str, bytes]) -> Path:
        folder = self.root / run_id
        for name, data in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def clients(self, **environ: str) -> Clients:
        settings = Settings.from_env({**self.environ, **environ})
        return Clients(settings, http=None, directory=providers.DIRECTORY)  # type: ignore[arg-type]

    async def report(self, run_id: str, *, delivery: str = "d-1", job_try: int = 1,
                     **environ: str) -> Context:
        ref = local_run(run_id)
        event = Event(provider="local", name=BUILD_COMPLETED, native_name="local",
                      delivery_id=delivery, repo=ref.repo, run=ref)
        clients = self.clients(**environ)
        ctx = Context(event=event, settings=clients.settings, redis=self.redis, http=None,
                      log=RecordingLog(), clients=clients, job_try=job_try)
        await report(ctx)
        return ctx

    def document(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.reports / run_id / "report.json").read_text())
        return data


@pytest.fixture
def world(tmp_path: Path, redis: aioredis.Redis) -> World:
    return World(tmp_path, redis)


# ---- what a run's folder reports ------------------------------------------------------


async def test_matrix_legs_in_subfolders_are_each_counted_and_the_failing_leg_shows(
    world: World,
) -> None:
    folder = world.root / "ci" / "7"
    shutil.copytree(MATRIX, folder)

    await world.report("ci/7")

    document = world.document("ci/7")
    summary = document["summary"]
    # The same test failing on 3.11 and passing on 3.12 is a failure, never "flaky".
    counts = (summary["total"], summary["failed"], summary["passed"], summary["flaky"])
    assert counts == (8, 1, 7, 0)
    assert document["status"] == "failed"
    failed = [t for t in document["tests"] if t["status"] == "failed"]
    assert [t["source"] for t in failed] == ["py3.11/junit.xml"]
    markdown = (world.reports / "ci/7" / "report.md").read_text()
    assert "test_timeout" in markdown
    assert (world.reports / "ci/7" / "report.html").read_text().startswith("<!DOCTYPE html>")


async def test_a_file_that_is_no_report_and_a_corrupt_one_are_named_and_the_rest_counts(
    world: World,
) -> None:
    world.run("ci/1", {
        "unit.xml": FAILING,
        "notes.txt": b"remember to water the plants\n",
        "broken.xml": b'<testsuite name="s"><testcase classname="app" name="cut"',
    })

    await world.report("ci/1")

    document = world.document("ci/1")
    assert document["summary"]["failed"] == 1
    named = {error["source"] for error in document["errors"]}
    assert {"notes.txt", "broken.xml"} <= named
    # A run with an unreadable input is never a plain success, and here a test failed.
    assert document["status"] == "failed"


async def test_every_file_is_read_unless_the_patterns_narrow_it(world: World) -> None:
    world.run("ci/2", {"out/a.xml": PASSING, "logs/build.log": b"compiling...\n"})

    await world.report("ci/2")
    assert {e["source"] for e in world.document("ci/2")["errors"]} == {"logs/build.log"}

    await world.report("ci/2", delivery="d-2", HERALD_LOCAL_ARTIFACT_PATTERNS="*.xml")
    document = world.document("ci/2")
    assert document["errors"] == []
    assert document["summary"]["passed"] == 1


async def test_hidden_files_and_the_manifest_are_never_read_as_results(world: World) -> None:
    world.run("ci/3", {
        "junit.xml": PASSING,
        ".git/objects/junit.xml": FAILING,
        ".coverage.xml": FAILING,
        "herald-run.json": b'{"name": "nightly"}',
    })

    await world.report("ci/3")

    document = world.document("ci/3")
    assert (document["summary"]["total"], document["errors"]) == (1, [])


async def test_archives_in_the_folder_are_read_with_the_artifact_limits(world: World) -> None:
    world.run("ci/4", {
        "shard-1.zip": zipped({"TEST-a.xml": FAILING}),
        "shard-2.xml.gz": gzip.compress(PASSING),
    })

    await world.report("ci/4")

    summary = world.document("ci/4")["summary"]
    assert (summary["failed"], summary["passed"]) == (1, 1)


async def test_a_file_over_the_download_cap_is_named_and_the_others_still_count(
    world: World,
) -> None:
    world.run("ci/5", {"big.xml": PASSING + b" " * 4096, "small.xml": FAILING})

    await world.report("ci/5", HERALD_ARTIFACT_MAX_BYTES="1024")

    document = world.document("ci/5")
    assert document["summary"]["failed"] == 1
    [error] = document["errors"]
    assert error["source"] == "big.xml"
    assert "larger than 1,024 bytes" in error["reason"]


# ---- nothing outside the run's folder is read -----------------------------------------


async def test_a_link_out_of_the_run_folder_is_named_and_never_read(
    world: World, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere.xml"
    secret.write_bytes(FAILING)
    folder = world.run("ci/6", {"junit.xml": PASSING})
    (folder / "stolen.xml").symlink_to(secret)

    await world.report("ci/6")

    document = world.document("ci/6")
    assert document["summary"]["total"] == 1  # the linked file's failure was not read
    [error] = document["errors"]
    assert (error["source"], "links out of the run's folder" in error["reason"]) == (
        "stolen.xml", True)


@pytest.mark.parametrize(
    "run_id",
    ["../outside", "/etc", "ci/../../outside", ".hidden", "ci//7", "ci\\7", "", "ci/./7"],
)
def test_a_run_name_that_could_leave_the_root_is_refused(run_id: str) -> None:
    with pytest.raises(PermanentError, match="is not a run: a relative path"):
        run_path(run_id)


async def test_a_run_folder_linked_out_of_the_root_is_refused_and_says_why(
    world: World, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "junit.xml").write_bytes(FAILING)
    (world.root / "ci").mkdir()
    (world.root / "ci" / "8").symlink_to(outside)

    await world.report("ci/8")

    out = world.reports / "ci" / "8"
    assert [p.name for p in out.iterdir()] == ["error.md"]
    assert "leads out of HERALD_LOCAL_ROOT" in (out / "error.md").read_text()
    assert sorted(p.name for p in outside.iterdir()) == ["junit.xml"]


async def test_a_link_to_a_folder_is_named_and_not_walked_into(world: World) -> None:
    folder = world.run("ci/18", {"unit/junit.xml": PASSING})
    (folder / "again").symlink_to(folder / "unit")
    (folder / "loop").symlink_to(folder)

    await world.report("ci/18")

    document = world.document("ci/18")
    assert document["summary"]["total"] == 1
    assert sorted(error["source"] for error in document["errors"]) == ["again", "loop"]


async def test_a_named_pipe_is_named_and_never_waited_on(world: World) -> None:
    folder = world.run("ci/17", {"junit.xml": PASSING})
    os.mkfifo(folder / "results.xml")

    await world.report("ci/17")

    document = world.document("ci/17")
    assert document["summary"]["passed"] == 1
    [error] = document["errors"]
    assert (error["source"], error["reason"]) == (
        "results.xml", "results.xml is not a regular file: not read")


async def test_more_files_than_an_archive_may_hold_is_refused_by_name(world: World) -> None:
    world.run("ci/9", {f"r{i}.xml": PASSING for i in range(4)})
    runs = world.clients(HERALD_ARTIFACT_MAX_ENTRIES="3").source("local")

    with pytest.raises(PermanentError, match="more than 3 files"):
        await runs.list_artifacts(local_run("ci/9"))


# ---- the report folder ----------------------------------------------------------------


async def test_a_redelivered_run_replaces_its_report_and_leaves_no_second_one(
    world: World,
) -> None:
    folder = world.run("ci/10", {"junit.xml": FAILING})
    await world.report("ci/10")
    (folder / "junit.xml").write_bytes(PASSING)

    await world.report("ci/10", delivery="d-2")

    out = world.reports / "ci" / "10"
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    assert world.document("ci/10")["summary"]["failed"] == 0


async def test_a_run_that_cannot_be_read_leaves_an_error_file_that_a_later_report_removes(
    world: World,
) -> None:
    folder = world.run("ci/11", {"junit.xml": PASSING, "herald-run.json": b'{"nmae": "x"}'})

    await world.report("ci/11")

    error = (world.reports / "ci/11" / "error.md").read_text()
    assert "unknown field 'nmae'" in error and "Re-run" in error
    (folder / "herald-run.json").write_bytes(b'{"name": "nightly"}')

    await world.report("ci/11", delivery="d-2")

    assert not (world.reports / "ci/11" / "error.md").exists()
    assert world.document("ci/11")["summary"]["passed"] == 1


# ---- the manifest ---------------------------------------------------------------------


async def test_a_manifest_naming_a_repository_sends_the_report_to_that_forge(
    world: World,
) -> None:
    world.run("ci/12", {"herald-run.json": json.dumps({
        "repository": "git@github.com:octo/app.git", "sha": "4f2a" * 10,
        "pull_requests": [12], "name": "nightly", "number": 412, "sequence": 412,
    }).encode()})
    runs = world.clients().source("local")
    ref = local_run("ci/12")

    build = await runs.get_build(ref)
    change = await runs.change_of(ref, build)
    origin = runs.origin_of(ref, build)

    assert (change.forge, change.repo, change.sha, change.numbers, change.numbers_known) == (
        "github", "octo/app", "4f2a" * 10, (12,), True)
    assert (origin.name, origin.number, origin.sequence) == ("nightly", "412", 412)


async def test_without_pull_requests_the_forge_finds_them_from_the_commit(world: World) -> None:
    world.run("ci/13", {"herald-run.json": json.dumps({
        "repository": "https://gitlab.com/group/sub/app.git", "sha": "ab" * 20}).encode()})
    runs = world.clients().source("local")

    change = await runs.change_of(local_run("ci/13"), None)

    assert (change.forge, change.repo, change.numbers, change.numbers_known) == (
        "gitlab", "group/sub/app", (), False)


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "a JSON object"),
        (b'{"repository": "https://github.com/octo/app"}', "but no 'sha'"),
        (b'{"repository": "https://code.example/octo/app", "sha": "ab"}', "on no forge"),
        (b'{"pull_requests": ["12"]}', "'pull_requests' must be a list of numbers"),
        (b'{"failed": "yes"}', "'failed' must be true or false"),
        (b'{"sha": ""}', "'sha' must be a non-empty string"),
        (b'{"sequence": -1}', "'sequence' must be a whole number"),
        (b'{"repo": "octo/app"}', "unknown field 'repo'"),
        (b'{"name": "' + b"x" * 70_000 + b'"}', "larger than 65,536 bytes"),
    ],
)
async def test_a_manifest_that_is_not_one_is_refused_by_name(
    world: World, manifest: bytes, reason: str
) -> None:
    world.run("ci/14", {"herald-run.json": manifest})
    runs = world.clients().source("local")
    ref = local_run("ci/14")

    with pytest.raises(PermanentError, match="ci/14") as caught:
        build = await runs.get_build(ref)
        await runs.change_of(ref, build)
    assert reason in str(caught.value)


@pytest.mark.parametrize(("manifest", "failed"), [
    ({}, False), ({"status": "FAILED"}, True), ({"status": "failed", "failed": False}, False),
    ({"status": "passed"}, False), ({"failed": True}, True),
])
async def test_the_run_failed_when_the_manifest_says_so(
    world: World, manifest: dict[str, Any], failed: bool
) -> None:
    world.run("ci/15", {"herald-run.json": json.dumps(manifest).encode()})
    runs = world.clients().source("local")

    assert (await runs.get_build(local_run("ci/15"))).failed is failed


# ---- what a folder cannot do ----------------------------------------------------------


async def test_a_folder_cannot_be_rerun_and_has_no_failed_runs_to_offer(world: World) -> None:
    world.run("ci/16", {"junit.xml": FAILING})
    runs = world.clients().source("local")
    change = await runs.change_of(local_run("ci/16"), None)

    with pytest.raises(Unsupported, match="rerun the build that wrote it"):
        await runs.rerun(local_run("ci/16"))
    assert await runs.latest_failed_runs(change) == []


def test_without_a_root_the_local_provider_is_not_configured(world: World) -> None:
    clients = Clients(Settings.from_env({}), http=None,  # type: ignore[arg-type]
                      directory=providers.DIRECTORY)

    with pytest.raises(NotConfigured, match="HERALD_LOCAL_ROOT"):
        clients.source("local")


def test_the_local_client_plays_both_roles(world: World) -> None:
    clients = world.clients()

    assert isinstance(clients.source("local"), LocalRuns)
    assert clients.forge("local") is clients.source("local")
