"""Forge logic every provider shares, written once: which run of each workflow counts, and
which configured forge a repository URL names.

A CI system that is not a forge (Jenkins, CircleCI, Travis CI, TeamCity) builds code that
lives on GitHub, GitLab or Bitbucket; its run says where only as a repository URL and a
commit. `forge_of_url` maps the URL's host to the forge configured for it: github.com and
the host of `HERALD_GITHUB_API_URL` (GitHub Enterprise), gitlab.com and the host of
`HERALD_GITLAB_URL`, bitbucket.org and the host of `HERALD_BITBUCKET_API_URL`. A host no
forge is configured for is not guessed at: reporting to the wrong place, or to an attacker's
look-alike host, is worse than not reporting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bot.settings import Settings

T = TypeVar("T")

#: The public host of each forge.
PUBLIC_HOSTS = {"github": "github.com", "gitlab": "gitlab.com", "bitbucket": "bitbucket.org"}

# `git@host:owner/name.git` (scp-like syntax, as SCM plugins report remotes)
_SCP = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*)$")


def latest_per_key(
    items: Iterable[T], *, key: Callable[[T], Any], order: Callable[[T], Any]
) -> list[T]:
    """The latest item (by `order`) of each `key`, oldest key first: the run of each
    workflow or pipeline definition that counts for a commit, whatever ran before it."""
    latest: dict[Any, T] = {}
    for item in items:
        name = key(item)
        if name not in latest or order(item) > order(latest[name]):
            latest[name] = item
    return sorted(latest.values(), key=order)


@dataclass(frozen=True, slots=True)
class Repository:
    """A repository on a configured forge, as a repository URL names it."""

    forge: str
    #: The forge's own name for it: `owner/name` (GitHub, Bitbucket), the project path
    #: (GitLab, groups included).
    repo: str


def _hosts(settings: Settings) -> dict[str, str]:
    hosts = {public: forge for forge, public in PUBLIC_HOSTS.items()}
    config = settings.config
    # The validated settings (bot.config): the API address of a self-hosted forge.
    configured = {
        "github": config.github.api_url,
        "gitlab": config.gitlab.url,
        "bitbucket": config.bitbucket.api_url,
    }
    for forge, url in configured.items():
        if url is not None:
            host = (urlsplit(str(url)).hostname or "").lower()
            # GitHub Enterprise's API is https://ghe.example/api/v3 (same host); GitHub's
            # own API host names github.com's repositories.
            host = "github.com" if host == "api.github.com" else host
            if host:
                hosts.setdefault(host, forge)
    hosts.setdefault("api.bitbucket.org", "bitbucket")
    return hosts


def forge_of_url(url: str, settings: Settings) -> Repository | None:
    """The configured forge and repository `url` names (https, ssh or scp-like), or None."""
    url = url.strip()
    scp = _SCP.match(url) if "://" not in url else None
    if scp is not None:
        host, path = scp.group("host"), scp.group("path")
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http", "ssh", "git"):
            return None
        host, path = parts.hostname or "", parts.path
    forge = _hosts(settings).get(host.lower())
    if forge is None:
        return None
    path = path.strip("/")
    path = path.removesuffix(".git")
    if forge == "gitlab":
        path = path.split("/-/", 1)[0]  # a web URL: project path, then /-/tree/...
    segments = [s for s in path.split("/") if s]
    if len(segments) < 2 or any(s in (".", "..") for s in segments):
        return None
    if forge in ("github", "bitbucket"):
        segments = segments[:2]
    return Repository(forge=forge, repo="/".join(segments))
