"""One report per commit: the runs of one commit (matrix runs, several workflows, two CI
systems) wait in Redis until none has arrived for `HERALD_COALESCE_SECONDS` (or
`HERALD_COALESCE_EXPECTED_RUNS` are in), then make one report; a run arriving later
updates that report in place.

Key layout (every key with a TTL of `PART_TTL_SECONDS` from the last arrival):

- `herald:commit:{forge}:{repo}:{sha}:meta`: hash, one field per part (`{ci}:{run name}`:
  one workflow, pipeline or build configuration), its `Part` as JSON;
- `herald:commit:...:runs`: hash, the same fields, each part's results as the JSON report
  (`bot.reports.json`, the documented schema, never pickle), zlib-compressed;
- `herald:commit:...:generation`: a counter, one up per arrival.

Each arrival schedules a `commit.report` job for its generation, due after the quiet
period; a job whose generation is no longer the latest does nothing (a later arrival has
its own job), so the report is made once the commit has been quiet for the whole period.
A part is replaced only by a run of the same name at least as new (sequence, then
attempt): a late delivery of an older run never replaces a newer one's results.

What this could hide, and why it does not: a part too large to keep (over
`PART_MAX_BYTES` compressed) is reported on its own at once, and the commit's report names
it among its unusable inputs ("reported on its own: ..."), so the commit's report never
reads complete without it. Each part's jobs stay visible inside the report: every case's
origin is prefixed with its run's name (`CI: test (3.12)`), and failures are grouped by it.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Final

from bot.events import RunRef
from bot.ports import Change, ReportOrigin
from bot.reports.json import from_json, iter_json
from bot.results.compact import CaseList
from bot.results.model import Origin, ParseError, RunStatus, TestRun

PREFIX: Final = "herald:commit:"
PART_TTL_SECONDS: Final = 24 * 3600
#: A part's compressed results; a larger run is reported on its own (see above).
PART_MAX_BYTES: Final = 8 * 1024 * 1024
#: The CI name a commit's report is published under: `Herald (commit)`.
COMMIT: Final = "commit"
#: Verdicts a part may carry into the commit's report, worst first.
WORSE: Final = (RunStatus.FAILED, RunStatus.ERROR, RunStatus.CANCELLED)

ADD_SCRIPT: Final = """
-- KEYS: meta hash, runs hash, generation counter
-- ARGV: part id, part JSON, results (may be empty), sequence, attempt, ttl seconds
-- Returns {generation, parts}, or {-1, parts} when a newer run of this part is in.
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local part = cjson.decode(held)
  local sequence, attempt = tonumber(ARGV[4]), tonumber(ARGV[5])
  if part['sequence'] > sequence or (part['sequence'] == sequence
      and part['attempt'] > attempt) then
    return {-1, redis.call('HLEN', KEYS[1])}
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
local generation = redis.call('INCR', KEYS[3])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
return {generation, redis.call('HLEN', KEYS[1])}
"""


def commit_key(change: Change) -> str:
    return f"{PREFIX}{change.forge}:{change.repo}:{change.sha}"


def part_id(origin: ReportOrigin) -> str:
    return f"{origin.ci}:{origin.name or ''}"


@dataclass(frozen=True, slots=True)
class Arrival:
    """What adding a run did: its generation (None: a newer run of its name is in) and
    how many parts the commit has now."""

    generation: int | None
    parts: int
    #: The run was too large to keep: it is to be reported on its own.
    alone: bool = False


@dataclass(frozen=True, slots=True)
class Part:
    """One run of the commit, as kept."""

    origin: ReportOrigin
    #: Why its results are not kept (reported on its own), else None.
    alone: str | None = None
    #: The branch the run built, and its change's target (`base_branch`, `base_sha`) as
    #: the webhook named them: what the commit's report compares each run with.
    branch: str | None = None
    base: dict[str, str] = field(default_factory=dict)

    def event_ref(self) -> RunRef:
        """The run as its webhook named it, for the comparison with its base."""
        return replace(self.origin.run, branch=self.branch, extra=dict(self.base))

    def to_json(self) -> str:
        run = self.origin.run
        return json.dumps({
            "sequence": self.origin.sequence, "attempt": self.origin.attempt,
            "name": self.origin.name, "number": self.origin.number, "url": self.origin.url,
            "failed": self.origin.failed, "alone": self.alone, "branch": self.branch,
            "base": self.base,
            "run": {"provider": run.provider, "repo": run.repo, "run_id": run.run_id,
                    "sha": run.sha, "branch": run.branch, "change": run.change,
                    "url": run.url, "status": run.status},
        })

    @classmethod
    def from_json(cls, text: str | bytes) -> Part:
        data: dict[str, Any] = json.loads(text)
        origin = ReportOrigin(run=RunRef(**data["run"]), name=data["name"],
                              attempt=data["attempt"], sequence=data["sequence"],
                              number=data["number"], url=data["url"], failed=data["failed"])
        return cls(origin, data["alone"], data.get("branch"), dict(data.get("base") or {}))


def _compressed(run: TestRun, limit: int) -> bytes | None:
    """The run's JSON report, compressed as it is written; None past `limit` bytes."""
    packer = zlib.compressobj(6)
    out: list[bytes] = []
    size = 0
    for piece in iter_json(run):
        chunk = packer.compress(piece.encode("utf-8", "surrogatepass"))
        size += len(chunk)
        if size > limit:
            return None
        out.append(chunk)
    out.append(packer.flush())
    return b"".join(out) if size + len(out[-1]) <= limit else None


def _part(origin: ReportOrigin, alone: str | None, ref: RunRef | None) -> Part:
    if ref is None:
        return Part(origin, alone)
    base = {name: str(ref.extra[name]) for name in ("base_branch", "base_sha")
            if isinstance(ref.extra.get(name), str) and ref.extra[name]}
    return Part(origin, alone, ref.branch, base)


class Commits:
    """The commits waiting for their report, in Redis."""

    def __init__(self, redis: Any, *, part_max_bytes: int = PART_MAX_BYTES) -> None:
        self.redis = redis
        self.part_max_bytes = part_max_bytes

    async def add(self, change: Change, origin: ReportOrigin, run: TestRun,
                  ref: RunRef | None = None) -> Arrival:
        """Keep `run` as its origin's part of the commit (`ref`: the run as its webhook
        named it); see `Arrival`."""
        blob = _compressed(run, self.part_max_bytes)
        alone = None
        if blob is None:
            totals = run.totals()
            alone = (f"reported on its own: its results ({totals.total:,} tests) are too "
                     "large to combine")
        key = commit_key(change)
        generation, parts = await self.redis.eval(
            ADD_SCRIPT, 3, f"{key}:meta", f"{key}:runs", f"{key}:generation",
            part_id(origin), _part(origin, alone, ref).to_json(), blob or b"",
            origin.sequence, origin.attempt, PART_TTL_SECONDS)
        return Arrival(None if int(generation) < 0 else int(generation), int(parts),
                       alone=alone is not None)

    async def generation(self, change: Change) -> int:
        held = await self.redis.get(f"{commit_key(change)}:generation")
        return int(held) if held is not None else 0

    async def parts(self, change: Change) -> Iterator[tuple[Part, TestRun | None]]:
        """Every part, oldest workflow name first, with its results (None: reported on
        its own). The results are decoded one at a time, as they are merged."""
        key = commit_key(change)
        meta: dict[bytes, bytes] = await self.redis.hgetall(f"{key}:meta")
        runs: dict[bytes, bytes] = await self.redis.hgetall(f"{key}:runs")

        def each() -> Iterator[tuple[Part, TestRun | None]]:
            for name in sorted(meta):
                part = Part.from_json(meta[name])
                blob = runs.pop(name, None)
                yield part, from_json(zlib.decompress(blob).decode()) if blob else None

        return each()


def _prefixed(origin: Origin | None, run_name: str, url: str | None) -> Origin:
    if origin is None:
        return Origin(run_name, url)
    return Origin(f"{run_name}: {origin.name}", origin.url or url)


def _rename_origins(run: TestRun, run_name: str, url: str | None) -> None:
    """Every case's origin prefixed with its run's name: which system and workflow ran it
    stays visible, and two runs' jobs of one name never group together."""
    for suite in run.suites:
        found = list(suite.cases.origins())
        if len(found) == 1:
            suite.cases.set_origin(_prefixed(found[0], run_name, url))
            continue
        renamed = {origin: _prefixed(origin, run_name, url) for origin in found}
        cases = CaseList()
        for case in suite.cases:
            case.origin = renamed[case.origin]
            cases.append(case)
        suite.cases = cases


def run_label(part: Part, forge: str) -> str:
    """The run as the commit's report names it: `CI (3.12)`, and the CI system when it is
    not the forge's own (`jenkins: app/main`)."""
    origin = part.origin
    if not origin.name:
        return origin.ci
    return origin.name if origin.ci == forge else f"{origin.ci}: {origin.name}"


def combined(change: Change, parts: Iterator[tuple[Part, TestRun | None]],
             generation: int) -> tuple[ReportOrigin, TestRun, list[Part]]:
    """The commit's one report: every part's results, each case's origin naming its run,
    and the origin it is published under."""
    merged = TestRun(id=change.sha[:12])
    kept: list[Part] = []
    reported: list[RunStatus] = []
    for part, run in parts:
        kept.append(part)
        label = run_label(part, change.forge)
        if run is None:
            merged.errors.append(ParseError(source=label, reason=part.alone or "not kept"))
            continue
        _rename_origins(run, label, part.origin.url)
        for error in run.errors:
            error.source = f"{label}: {error.source}"
        for metric in run.metrics:
            metric.name = f"{label}: {metric.name}"
        for artifact in run.artifacts:
            artifact.name = f"{label}: {artifact.name}"
        merged.merge([run])
        reported.extend([run.status] if run.status is not None else [])
    # A part's own verdict (the CI said it failed, was cancelled) may make the commit's
    # worse than its cases say, never better.
    if merged.overall_status() is not RunStatus.FAILED:
        merged.status = next((s for s in WORSE if s in reported), None)
    ref = RunRef(provider=COMMIT, repo=change.repo, run_id=change.sha[:12], sha=change.sha)
    origin = ReportOrigin(run=ref, name=None, attempt=1, sequence=generation,
                          number=change.sha[:7], url=None,
                          failed=any(p.origin.failed for p in kept))
    return origin, merged, kept


__all__ = ["COMMIT", "Arrival", "Commits", "Part", "combined", "commit_key", "part_id"]
