"""Files Herald hands out links to, and the signed, expiring URLs of those links.

    url = signed_url(settings, "local/nightly/412/junit.xml")   # None when not set up
    GET /files/local/nightly/412/junit.xml?expires=1796000000&signature=9f2c…

A link is `<HERALD_PUBLIC_URL>/files/<key>?expires=<unix time>&signature=<hex>`, the
signature an HMAC-SHA256 of the key and the expiry with `HERALD_URL_SIGNING_KEY`
(comma-separated to roll a new key out: links are signed with the first, any one
verifies). So a link names one file for a bounded time: a tampered key or expiry, or a
link past its time, is refused (403, 410) before any file is looked at, and even a valid
signature never reaches outside the folder its key's first part names.

Keys: `local/<run>/<path>`, a file of a Local provider run (`HERALD_LOCAL_ROOT`), and
`store/<run>/<name>`, an artifact the library's `Reporter` collected (`HERALD_STORE_DIR`,
`bot.artifact_store`).
Files are served as downloads or as inert text: never as HTML or anything a browser
would run on Herald's own origin.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from bot.settings import Settings

PREFIX: Final = "/files/"
#: Shown inline as plain text: what test reports and logs are. Everything else downloads.
TEXT_SUFFIXES: Final = frozenset({".xml", ".json", ".txt", ".log", ".tap", ".trx", ".md",
                                  ".csv", ".jsonl", ".out"})
#: No script, no plugin, no form, whatever a file says about itself.
SAFE_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, max-age=300",
}


def relative_path(text: str, what: str = "path") -> PurePosixPath:
    """`text` as a relative path of plain names, or `ValueError`: no `..`, no absolute
    path, no backslash, no NUL, no empty or hidden part, nothing a path could escape
    its folder with before links are resolved."""
    parts = text.split("/")
    if (
        not text
        or "\\" in text
        or "\0" in text
        or any(not part or part.startswith(".") for part in parts)
    ):
        raise ValueError(f"{text!r} is not a {what}: a relative path of names that do not "
                         "start with a dot")
    return PurePosixPath(*parts)


def signature(key: str, expires: int, secret: bytes) -> str:
    message = f"{key}\n{expires}".encode("utf-8", "surrogateescape")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signing_keys(settings: Settings) -> list[bytes]:
    """`HERALD_URL_SIGNING_KEY` (or `_FILE`), newest first."""
    return [bytes(s) for s in settings.provider("url").secrets("signing_key")]


def signed_url(settings: Settings, key: str, *, now: float | None = None) -> str | None:
    """A link to `key` valid for `HERALD_URL_TTL_SECONDS`, or None without
    `HERALD_PUBLIC_URL` and `HERALD_URL_SIGNING_KEY` (links are then `file:` URLs)."""
    keys = signing_keys(settings)
    if not keys or not settings.public_url:
        return None
    relative_path(key, "file key")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return None  # a file name that is not UTF-8 (PEP 383): no URL can carry it as is
    expires = int((time.time() if now is None else now) + settings.config.url_ttl_seconds)
    return (f"{settings.public_url}{PREFIX}{quote(key)}?expires={expires}"
            f"&signature={signature(key, expires, keys[0])}")


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def check(key: str, expires_text: str | None, given: str | None, keys: Sequence[bytes],
          now: float) -> None:
    """Raises `Refused` unless `given` signs `key` and `expires_text` with one of `keys`
    and the expiry is still ahead."""
    if not expires_text or not given or not expires_text.isascii() \
            or not expires_text.isdigit() or len(expires_text) > 12:
        raise Refused(403, "this link is not signed by Herald")
    expires = int(expires_text)
    # Every key is tried, whichever matches: the time taken says nothing of which.
    matched = False
    for secret in keys:
        matched |= hmac.compare_digest(signature(key, expires, secret).encode(),
                                       given.encode("ascii", "replace"))
    if not matched:
        raise Refused(403, "this link is not signed by Herald")
    if expires < now:
        raise Refused(410, "this link has expired: open the report again for a fresh one")


def store_dir(settings: Settings) -> Path:
    """`HERALD_STORE_DIR`, or `store` in the state directory."""
    return settings.config.store_dir or settings.state_dir / "store"


def _folder_of(settings: Settings, area: str) -> Path | None:
    if area == "local":
        return settings.config.local.root
    if area == "store":
        return store_dir(settings)
    return None


def resolve(settings: Settings, key: str) -> Path:
    """The regular file `key` names, inside the folder of its first part; `Refused`(404)
    when there is none."""
    try:
        relative = relative_path(key, "file key")
    except ValueError:
        raise Refused(404, "no such file") from None
    area, *rest = relative.parts
    folder = _folder_of(settings, area)
    if folder is None or not rest:
        raise Refused(404, "no such file")
    base = folder.resolve()
    path = (base / PurePosixPath(*rest)).resolve()
    if not path.is_relative_to(base):
        raise Refused(404, "no such file")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        raise Refused(404, "no such file") from None
    if not stat.S_ISREG(mode):
        raise Refused(404, "no such file")
    return path


async def serve_file(request: Request) -> Response:
    """`GET /files/{key}`: the file a signed link names, or 403/404/410 with a reason."""
    settings: Settings = request.app.state.runtime.settings
    key = request.path_params["key"]
    keys = signing_keys(settings)
    try:
        if not keys:
            raise Refused(404, "Herald serves no files: HERALD_URL_SIGNING_KEY is not set")
        check(key, request.query_params.get("expires"), request.query_params.get("signature"),
              keys, time.time())
        path = resolve(settings, key)
    except Refused as refused:
        return JSONResponse({"status": "refused", "reason": str(refused)}, refused.status,
                            headers=SAFE_HEADERS)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return FileResponse(path, media_type="text/plain; charset=utf-8", headers=SAFE_HEADERS)
    return FileResponse(path, media_type="application/octet-stream", headers=SAFE_HEADERS,
                        filename=path.name)
