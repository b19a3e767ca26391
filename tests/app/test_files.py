"""GET /files/{key}: files behind signed, expiring links (bot.files), never anything else.

The links are the ones the Local provider puts in its reports; a link whose key, expiry or
signature was changed is refused before any file is looked at."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.files import check, relative_path, signature, signed_url
from bot.settings import Settings
from providers.local import LocalRuns, local_run
from tests.app.conftest import AppFactory, RunningApp

KEY, OLD_KEY = "4c1f8e2a-signing-key", "previous-signing-key"
JUNIT = b'<testsuite name="s"><testcase classname="app" name="ok"/></testsuite>'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "runs" / "nightly" / "412"
    folder.mkdir(parents=True)
    (folder / "junit.xml").write_bytes(JUNIT)
    (folder / "page.html").write_bytes(b"<script>alert(document.cookie)</script>")
    (folder / ".secret").write_bytes(b"hidden")
    return tmp_path / "runs"


@pytest.fixture
async def app(start_app: AppFactory, root: Path) -> AsyncIterator[RunningApp]:
    async with start_app(HERALD_LOCAL_ROOT=str(root), HERALD_PUBLIC_URL="https://herald.example",
                         HERALD_URL_SIGNING_KEY=f"{KEY},{OLD_KEY}") as running:
        yield running


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_a_local_run_s_artifact_links_open_its_files(app: RunningApp) -> None:
    runs = LocalRuns(app.settings.config.local.root, Path("unused"), app.settings)  # type: ignore[arg-type]
    [junit] = [a for a in await runs.list_artifacts(local_run("nightly/412"))
               if a.name == "junit.xml"]
    assert junit.url is not None and junit.url.startswith(
        "https://herald.example/files/local/nightly/412/junit.xml?expires=")

    response = await app.client.get(path_of(junit.url))

    assert (response.status_code, response.content) == (200, JUNIT)
    # Shown as inert text: no sniffing, no script, whatever the file says it is.
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]


async def test_a_file_a_browser_could_run_is_only_ever_downloaded(app: RunningApp) -> None:
    url = signed_url(app.settings, "local/nightly/412/page.html")
    assert url is not None

    response = await app.client.get(path_of(url))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment")


def tampered(url: str, path: str | None = None, **query: str) -> str:
    """`url`'s path and query with `path` or query values replaced."""
    parts = urlsplit(url)
    values = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    values |= query
    return f"{path or parts.path}?" + "&".join(f"{k}={v}" for k, v in values.items())


@pytest.mark.parametrize("change", [
    {"path": "/files/local/nightly/412/page.html"},  # another file, the same signature
    {"expires": "9999999999"},  # a longer life
    {"signature": "0" * 64},
    {"signature": ""},
    {"expires": "soon"},
])
async def test_a_tampered_link_is_refused(app: RunningApp, change: dict[str, str]) -> None:
    url = signed_url(app.settings, "local/nightly/412/junit.xml")
    assert url is not None

    response = await app.client.get(tampered(url, **change))

    assert response.status_code == 403
    assert response.json() == {"status": "refused", "reason": "this link is not signed by Herald"}
    assert response.headers["content-type"] == "application/json"


async def test_an_expired_link_is_refused_and_says_how_to_get_a_fresh_one(
    app: RunningApp,
) -> None:
    url = signed_url(app.settings, "local/nightly/412/junit.xml",
                     now=time.time() - 8 * 24 * 3600)
    assert url is not None

    response = await app.client.get(path_of(url))

    assert response.status_code == 410
    assert "expired" in response.json()["reason"]


async def test_a_link_signed_with_the_previous_key_still_opens(app: RunningApp) -> None:
    expires = int(time.time()) + 60
    key = "local/nightly/412/junit.xml"
    given = signature(key, expires, OLD_KEY.encode())

    response = await app.client.get(f"/files/{key}?expires={expires}&signature={given}")

    assert response.status_code == 200


@pytest.mark.parametrize("key", [
    "local/nightly/412/.secret",  # hidden: never handed out, never served
    "local/nightly/../../etc/passwd",
    "local/nightly/412",  # a folder
    "local/nightly/412/missing.xml",
    "elsewhere/junit.xml",  # no such area
])
async def test_even_a_validly_signed_key_never_reaches_outside_its_folder(
    app: RunningApp, key: str
) -> None:
    expires = int(time.time()) + 60
    given = signature(key, expires, KEY.encode())
    # Percent-encoded, `..` reaches the app as it is (a client would resolve it away).
    sent = key.replace("..", "%2E%2E")

    response = await app.client.get(f"/files/{sent}?expires={expires}&signature={given}")

    assert response.status_code == 404


async def test_a_link_into_a_linked_folder_out_of_the_root_is_not_served(
    app: RunningApp, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"root:x:0:0")
    (root / "nightly" / "412" / "escape").symlink_to(outside)
    key = "local/nightly/412/escape/passwd"
    expires = int(time.time()) + 60

    response = await app.client.get(
        f"/files/{key}?expires={expires}&signature={signature(key, expires, KEY.encode())}")

    assert response.status_code == 404


async def test_without_a_signing_key_no_file_is_served_and_links_are_file_urls(
    start_app: AppFactory, root: Path
) -> None:
    async with start_app(HERALD_LOCAL_ROOT=str(root),
                         HERALD_PUBLIC_URL="https://herald.example") as running:
        response = await running.client.get("/files/local/nightly/412/junit.xml")
        runs = LocalRuns(root, Path("unused"), running.settings)
        urls = [a.url for a in await runs.list_artifacts(local_run("nightly/412"))]

    assert response.status_code == 404
    assert "HERALD_URL_SIGNING_KEY is not set" in response.json()["reason"]
    assert urls and all(url is not None and url.startswith("file://") for url in urls)


def test_signatures_are_compared_whole_and_for_every_key() -> None:
    expires = int(time.time()) + 60
    good = signature("k/a", expires, b"one")
    check("k/a", str(expires), good, [b"two", b"one"], time.time())
    with pytest.raises(Exception, match="not signed"):
        check("k/a", str(expires), good[:-1], [b"one"], time.time())
    with pytest.raises(Exception, match="not signed"):
        check("k/b", str(expires), good, [b"one"], time.time())


def test_a_signed_url_needs_the_public_url_too() -> None:
    settings = Settings.from_env({"HERALD_URL_SIGNING_KEY": KEY})
    assert signed_url(settings, "local/a/b.xml") is None


@pytest.mark.parametrize("text", ["", "/abs", "a/../b", "a//b", ".git/x", "a\\b", "a\0b"])
def test_keys_are_plain_relative_paths(text: str) -> None:
    with pytest.raises(ValueError, match="relative path of names"):
        relative_path(text)


async def test_an_artifact_the_reporter_stored_opens_from_its_link(
    start_app: AppFactory, tmp_path: Path
) -> None:
    from bot.reporter import Reporter

    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "app.log").write_bytes(b"started\n")
    async with start_app(HERALD_PUBLIC_URL="https://herald.example",
                         HERALD_URL_SIGNING_KEY=KEY) as running:
        reporter = Reporter(None, artifact_dir=tmp_path / "build", settings=running.settings)
        [stored] = await reporter.collect_and_upload_artifacts("run-9", ["*.log"])
        response = await running.client.get(path_of(stored.url))

    assert (response.status_code, response.content) == (200, b"started\n")
