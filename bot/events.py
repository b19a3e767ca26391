"""The canonical event: what a verified webhook means, independent of who sent it.

Every provider's `parse()` turns its native delivery into one `Event` (or an `Ignored`
with the reason). Events cross the queue as JSON, so every field is a plain value.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Final

BUILD_COMPLETED: Final = "build.completed"
COMMENT_CREATED: Final = "comment.created"
CHECK_REREQUESTED: Final = "check.rerequested"
PING: Final = "ping"
#: Herald's own, never a webhook's: a commit's runs are quiet, make their one report
#: (`bot.coalesce`).
COMMIT_REPORT: Final = "commit.report"
CANONICAL_EVENTS: Final = frozenset({BUILD_COMPLETED, COMMENT_CREATED, CHECK_REREQUESTED, PING,
                                     COMMIT_REPORT})


class JsonObject(dict[str, Any]):
    """A webhook payload that remembers the verified text it was parsed from (`source`),
    so the web process can put the body into the job as it came instead of serialising
    the parsed payload again (~5 µs of a 20 kB one). A parser that edits the payload in
    place must drop `source` (set it to None): the text would no longer say the same."""

    __slots__ = ("source",)

    def __init__(self, data: dict[str, Any], source: bytes | str | None = None) -> None:
        super().__init__(data)
        self.source = source


@dataclass(frozen=True, slots=True)
class RunRef:
    """Where a CI run lives: enough to fetch it again and to report on it.

    `repo` is the provider's own name for the project (`owner/name` on GitHub, the
    project path on GitLab, `workspace/repo` on Bitbucket, the job path on Jenkins...).
    `extra` carries provider-specific coordinates (GitHub `installation_id`,
    `run_attempt`; GitLab `project_id`; Azure `organization`/`project`; ...).
    """

    provider: str
    repo: str
    run_id: str
    sha: str | None = None
    branch: str | None = None
    change: int | None = None
    url: str | None = None
    status: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Comment:
    """A new comment on a pull/merge request."""

    id: str
    body: str
    author: str
    change: int
    author_is_bot: bool = False
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """A verified, translated delivery. `payload` keeps the raw body for native details."""

    provider: str
    name: str
    native_name: str
    delivery_id: str
    repo: str | None = None
    run: RunRef | None = None
    comment: Comment | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    received_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.name not in CANONICAL_EVENTS:
            raise ValueError(f"not a canonical event name: {self.name!r}")

    @property
    def job_id(self) -> str:
        return f"{self.provider}:{self.delivery_id}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        values = dict(data)
        run = values.pop("run", None)
        comment = values.pop("comment", None)
        return cls(
            run=RunRef(**run) if run else None,
            comment=Comment(**comment) if comment else None,
            **values,
        )


@dataclass(frozen=True, slots=True)
class Ignored:
    """A genuine delivery Herald does not act on; acknowledged with 2xx and this reason."""

    provider: str
    native_name: str
    reason: str
