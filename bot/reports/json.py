"""The JSON report: a versioned document that round-trips the result model.

The schema is documented in `bot/reports/SCHEMA.md`. A test that passed is written briefly
by default (its identity, status, duration and origin: what a reader of a million-test run
needs), so the document stays smaller than the report files it came from; with
`passed_detail=True` every test is written in full and `from_json(render_json(run,
passed_detail=True)) == run` for every run whose numbers are finite. Counts in `summary`
(and `title`, `flaky`, `display_name`) are derived for readers and ignored on the way back.

`iter_json` yields the document in pieces, one test at a time, so that writing it costs
memory for one test, not for the document (`herald render` writes it so).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from bot.reports.comparison import as_json as comparison_json
from bot.reports.summary import title
from bot.results.model import (
    Artifact,
    Attempt,
    Metric,
    Origin,
    ParseError,
    RunStatus,
    Status,
    Suite,
    TestCase,
    TestRun,
)

SCHEMA_VERSION = 2
#: Versions `from_json` reads: 1 wrote each test's origin as an object, 2 as an index into
#: `origins`, and may write passed tests briefly.
READABLE_VERSIONS = (1, 2)

#: Fields a budget drops first, in this order, before it drops whole tests.
OUTPUT_FIELDS = ("stdout", "stderr")
TRACE_FIELDS = ("stack_trace",)


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity; a non-finite figure (a broken report) becomes null."""
    if value is None or not math.isfinite(value):
        return None
    return value


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _attempt(attempt: Attempt, dropped: frozenset[str]) -> dict[str, Any]:
    return {
        "status": attempt.status.value,
        "duration_seconds": _number(attempt.duration),
        "message": attempt.message,
        "failure_type": attempt.failure_type,
        "stack_trace": None if "stack_trace" in dropped else attempt.stack_trace,
    }


class _Origins:
    """The document's `origins` table: each distinct origin once, tests refer by index."""

    def __init__(self) -> None:
        self.index: dict[Origin, int] = {}

    def __call__(self, origin: Origin | None) -> int | None:
        if origin is None:
            return None
        found = self.index.get(origin)
        if found is None:
            found = self.index[origin] = len(self.index)
        return found

    def table(self) -> list[dict[str, Any]]:
        return [{"name": o.name, "url": o.url} for o in self.index]


def _test(case: TestCase, suite_index: int, dropped: frozenset[str],
          origins: _Origins) -> dict[str, Any]:
    return {
        "suite": case.suite,
        "suite_index": suite_index,
        "classname": case.classname,
        "name": case.name,
        "display_name": case.display_name,
        "status": case.status.value,
        "duration_seconds": _number(case.duration),
        "file": case.file,
        "line": case.line,
        "message": case.message,
        "failure_type": case.failure_type,
        "stack_trace": None if "stack_trace" in dropped else case.stack_trace,
        "stdout": None if "stdout" in dropped else case.stdout,
        "stderr": None if "stderr" in dropped else case.stderr,
        "attempts": [_attempt(a, dropped) for a in case.attempts],
        "flaky": case.flaky,
        "source": case.source,
        "origin": origins(case.origin),
    }


def _brief(case: TestCase, suite_index: int, suite_name: str,
           origins: _Origins) -> dict[str, Any]:
    """A passed test without attempts: identity, status, duration and origin. `origin` only
    when there is one, `suite` only when it is not its suite's own name (a reader takes
    that name otherwise)."""
    entry: dict[str, Any] = {
        "suite_index": suite_index,
        "classname": case.classname,
        "name": case.name,
        "status": case.status.value,
        "duration_seconds": _number(case.duration),
    }
    if case.origin is not None:
        entry["origin"] = origins(case.origin)
    if case.suite != suite_name:
        entry["suite"] = case.suite
    return entry


def _metric_value(value: float | str) -> float | str:
    if isinstance(value, str):
        return value
    return value if math.isfinite(value) else str(value)


def _document(run: TestRun) -> dict[str, Any]:
    """Everything but the origins and the tests, which `iter_json` adds (and may thin out)."""
    totals = run.totals()
    return {
        "schema_version": SCHEMA_VERSION,
        "test_run_id": run.id,
        "status": run.overall_status().value,
        "status_reported": run.status is not None,
        "title": title(totals),
        "summary": {
            "total": totals.total,
            "tests": totals.tests,
            "passed": totals.passed,
            "failed": totals.failed,
            "errors": totals.errors,
            "skipped": totals.skipped,
            "flaky": totals.flaky,
            "duration_seconds": _number(totals.duration),
        },
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "duration_seconds": _number(run.duration),
        "url": run.url,
        "metadata": dict(run.metadata),
        "environment": dict(run.environment),
        **({"comparison": comparison_json(run.comparison)}
           if run.comparison is not None and run.comparison.base is not None else {}),
        "suites": [
            {
                "name": suite.name,
                "duration_seconds": _number(suite.duration),
                "timestamp": _time(suite.timestamp),
                "hostname": suite.hostname,
                "properties": dict(suite.properties),
                "source": suite.source,
                "tests": len(suite.cases),
            }
            for suite in run.suites
        ],
        "metrics": [
            {"name": m.name, "value": _metric_value(m.value), "unit": m.unit}
            for m in run.metrics
        ],
        "artifacts": [
            {"name": a.name, "size_bytes": a.size, "url": a.url} for a in run.artifacts
        ],
        "errors": [{"source": e.source, "reason": e.reason} for e in run.errors],
        "truncated": None,
    }  # "origins" and "tests" are appended last by iter_json


def _dump(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _origins_of(run: TestRun) -> _Origins:
    """Every origin of the run, each once, known before any test is written."""
    origins = _Origins()
    for suite in run.suites:
        for origin in suite.cases.origins():
            origins(origin)
    return origins


def iter_json(run: TestRun, *, passed_detail: bool = False) -> Iterator[str]:
    """The whole document (no budget) in pieces: the head, then one test at a time."""
    document = _document(run)
    origins = _origins_of(run)
    document["origins"] = origins.table()
    head = _dump(document)
    yield head[:-1] + ',"tests":['
    separator = ""
    nothing: frozenset[str] = frozenset()
    for index, suite in enumerate(run.suites):
        name = suite.name
        for case in suite.cases:
            if not passed_detail and case.status is Status.PASSED and not case.attempts:
                entry = _brief(case, index, name, origins)
            else:
                entry = _test(case, index, nothing, origins)
            yield separator + _dump(entry)
            separator = ","
    yield "]}"


def render_json(run: TestRun, *, budget: int | None = None,
                passed_detail: bool = False) -> str:
    """The run as one compact JSON document of at most `budget` characters.

    Over budget, the document sheds, in order: every test's stdout and stderr; stack
    traces; the tests that did not fail; the failing tests beyond the first that fit.
    `truncated` then says what went (see SCHEMA.md). Raises ValueError when not even the
    document without tests fits: a JSON document cannot be cut.
    """
    if budget is None:
        return "".join(iter_json(run, passed_detail=passed_detail))
    if budget < 0:
        raise ValueError(f"a report budget cannot be negative: {budget}")
    document = _document(run)
    origins = _origins_of(run)
    document["origins"] = origins.table()
    total = sum(len(suite.cases) for suite in run.suites)

    def assemble(entries: list[str], dropped: frozenset[str], tier: int) -> str:
        # `tests` goes last and is joined from entries serialised once each, so trying
        # many cut-off points costs string joins, not repeated serialisation.
        document["truncated"] = None if tier == 1 else {
            "tier": tier,
            "dropped_fields": sorted(dropped),
            "omitted_tests": total - len(entries),
        }
        head = _dump(document)
        return head[:-1] + ',"tests":[' + ",".join(entries) + "]}"

    def entries(dropped: frozenset[str], only_failures: bool = False,
                room: int | None = None) -> list[str]:
        """Serialised tests, only as many as fit in `room` characters (a run with 10,000
        failures would otherwise be serialised whole for each try)."""
        chosen: list[str] = []
        used = 0
        for index, suite in enumerate(run.suites):
            cases = (c for c in suite.cases.objects() if c.status.is_failure) \
                if only_failures else iter(suite.cases)
            for case in cases:
                if not passed_detail and case.status is Status.PASSED and not case.attempts:
                    entry = _dump(_brief(case, index, suite.name, origins))
                else:
                    entry = _dump(_test(case, index, dropped, origins))
                used += len(entry) + (1 if chosen else 0)
                if room is not None and used > room:
                    return chosen
                chosen.append(entry)
        return chosen

    for tier, dropped in ((1, frozenset()), (2, frozenset(OUTPUT_FIELDS)),
                          (2, frozenset(OUTPUT_FIELDS + TRACE_FIELDS))):
        room = budget - len(assemble([], dropped, tier))
        kept = entries(dropped, room=room)
        if len(kept) == total:
            return assemble(kept, dropped, tier)
    bare = frozenset(OUTPUT_FIELDS + TRACE_FIELDS)
    # The `truncated` object's own length depends on the count it reports; measure with
    # the widest count so that the assembled text cannot outgrow the room.
    room = budget - len(assemble([], bare, 3))
    failing = entries(bare, only_failures=True, room=room)
    text = assemble(failing, bare, 3 if failing else 4)
    if len(text) > budget:
        raise ValueError(f"a JSON report of run {run.id!r} needs more than {budget:,} characters")
    return text


class SchemaError(ValueError):
    """The text is not a Herald JSON report this version can read."""


def _datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _duration(value: Any) -> float:
    return float(value) if value is not None else 0.0


def from_json(text: str) -> TestRun:
    """The `TestRun` a JSON report describes; raises SchemaError when it isn't one."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SchemaError("not a Herald report: the document is not an object")
    version = document.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise SchemaError(f"unsupported schema_version {version!r} "
                          f"(this Herald reads {', '.join(map(str, READABLE_VERSIONS))})")
    try:
        return _run(document)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SchemaError(f"malformed Herald report: {type(exc).__name__}: {exc}") from exc


def _read_origin(value: Any, shared: dict[tuple[str, str | None], Origin]) -> Origin | None:
    """An origin object (`origins[]`, or a version 1 test's own); one object per distinct
    origin, as the parsers share them. Version 1 documents written before `origin` existed
    have no such field: None."""
    if value is None:
        return None
    name, url = value["name"], value["url"]
    if not isinstance(name, str) or not (url is None or isinstance(url, str)):
        raise ValueError(f"an origin is a name and a url or null, not {value!r}")
    key = (name, url)
    found = shared.get(key)
    if found is None:
        found = shared[key] = Origin(name=name, url=url)
    return found


def _origin_reader(document: dict[str, Any]) -> Callable[[Any], Origin | None]:
    shared: dict[tuple[str, str | None], Origin] = {}
    if document["schema_version"] == 1:
        return lambda value: _read_origin(value, shared)
    table = [_read_origin(entry, shared) for entry in document["origins"]]

    def by_index(value: Any) -> Origin | None:
        if value is None:
            return None
        # A bool is an int to Python; `true` must not read as origin 1.
        if type(value) is not int or not 0 <= value < len(table):
            raise ValueError(f"origin must be an index into origins or null, not {value!r}")
        return table[value]

    return by_index


def _strings(value: Any, field: str) -> dict[str, str]:
    """An object of strings. Documents written before the field existed have none: empty."""
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(text, str) for key, text in value.items()
    ):
        raise ValueError(f"{field} must be an object of strings")
    return dict(value)


def _run(document: dict[str, Any]) -> TestRun:
    suites = [
        Suite(
            name=s["name"],
            duration=s["duration_seconds"],
            timestamp=_datetime(s["timestamp"]),
            hostname=s["hostname"],
            properties=dict(s["properties"]),
            source=s["source"],
        )
        for s in document["suites"]
    ]
    origin = _origin_reader(document)
    for t in document["tests"]:
        index = t["suite_index"]
        # A negative index would pass Python's indexing and file the test in another suite.
        if type(index) is not int or index < 0:
            raise ValueError(f"suite_index must be a non-negative integer, not {index!r}")
        suite = suites[index]
        get = t.get
        # A brief entry (a passed test) has no location, texts or attempts: they are null.
        suite.cases.append(
            TestCase(
                name=t["name"],
                classname=t["classname"],
                suite=get("suite", suite.name),
                status=Status(t["status"]),
                duration=_duration(t["duration_seconds"]),
                file=get("file"),
                line=get("line"),
                message=get("message"),
                failure_type=get("failure_type"),
                stack_trace=get("stack_trace"),
                stdout=get("stdout"),
                stderr=get("stderr"),
                attempts=[
                    Attempt(
                        status=Status(a["status"]),
                        duration=_duration(a["duration_seconds"]),
                        message=a["message"],
                        failure_type=a["failure_type"],
                        stack_trace=a["stack_trace"],
                    )
                    for a in get("attempts", ())
                ],
                source=get("source", suite.source),
                origin=origin(get("origin")),
            )
        )
    return TestRun(
        id=document["test_run_id"],
        suites=suites,
        status=RunStatus(document["status"]) if document["status_reported"] else None,
        started_at=_datetime(document["started_at"]),
        finished_at=_datetime(document["finished_at"]),
        duration=document["duration_seconds"],
        metadata=dict(document["metadata"]),
        environment=_strings(document.get("environment", {}), "environment"),
        metrics=[
            Metric(name=m["name"], value=m["value"], unit=m["unit"])
            for m in document["metrics"]
        ],
        artifacts=[
            Artifact(name=a["name"], size=a["size_bytes"], url=a["url"])
            for a in document["artifacts"]
        ],
        errors=[ParseError(source=e["source"], reason=e["reason"]) for e in document["errors"]],
        url=document["url"],
    )
