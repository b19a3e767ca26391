"""A test run built by hand from counts, as the seed's `TestRunResult(total_tests=42, ...)`
was: `from_counts(id="nightly", passed=38, failed=2, failed_tests=[...])`.

Herald counts a run from its cases (`TestRun.totals`), so the counts become cases: each
named test one case, and each counted test that nobody named one case too, named so that
a reader sees it was counted but not named (`unnamed failure 1 of 2`). The result is an
ordinary `TestRun`: every report lays it out as it does a parsed one.

The rules, and what each could hide:

- Counts are the truth. Fewer named tests than the count: the rest are still in the run
  (a failure counted but not named is still a failure in the report, never dropped). More
  named than counted: ValueError, since one of the two is wrong and guessing which could
  hide a failure. A count left out is the number named.
- A status can make the run worse, never better. `success`/`passed` with failures or errors
  is ignored and the failures win: a report must never read green with failures, and
  refusing the run instead would lose the whole report over the field the seed always set
  to "success" (its own example did, with 2 failed). Given without failures it is
  ignored too, so the status is derived from the cases as for a parsed run (and so is
  `no_tests`: with tests counted, the counts say otherwise). `failed`, `error`,
  `cancelled` and `running` (`pending` reads as running) are kept as the run's reported
  status whatever the counts say; the failures are listed and counted all the same.
- Counts are whole numbers, not negative, and at most `MAX_TESTS` together: an absurd
  count is a ValueError, not a run that fills the disk. Memory stays flat in the count:
  unnamed passed and skipped tests are packed by `CaseList` (about 8 bytes of memory each).
- Names and messages are kept as given (messages and traces cut at the model's text limit)
  and escaped by the renderers like any parsed text.

The seed passed its details in `metadata` (`performance_metrics`, `environment`,
`failed_tests`, `passed_tests`); those keys are read the same as the arguments. Metrics:
the names are kept as given, since the seed's carry their unit (`average_latency_ms`); a
number has no unit, and a string is read as `herald render --metric` reads one (`120ms`
is 120 in `ms`, `fast` stays text).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.results.model import (
    DEFAULT_TEXT_LIMIT,
    Artifact,
    Metric,
    RunStatus,
    Status,
    Suite,
    TestCase,
    TestRun,
    truncate,
)

#: The most tests one hand-built run may count (named and unnamed together): a million
#: render in under 100 MB (bench/README.md); more from a typo'd count is not a run.
MAX_TESTS = 1_000_000
#: A test's name (and classname, file) is cut here; a message or trace at the model's limit.
NAME_LIMIT = 1_000
#: At most this many metrics, environment entries or metadata entries each.
MAX_ENTRIES = 1_000

_STATUSES: dict[str, RunStatus | None] = {
    # None: derived from the cases, so a green word can never outvote a failure.
    "success": None, "succeeded": None, "passed": None, "pass": None, "ok": None,
    "no_tests": None,
    "failure": RunStatus.FAILED, "failed": RunStatus.FAILED, "fail": RunStatus.FAILED,
    "error": RunStatus.ERROR, "errored": RunStatus.ERROR,
    "cancelled": RunStatus.CANCELLED, "canceled": RunStatus.CANCELLED,
    "running": RunStatus.RUNNING, "pending": RunStatus.RUNNING,
}

#: Per outcome: the count's name, the list's name, how an unnamed one is named.
_KINDS = (
    (Status.FAILED, "failed", "failed_tests", "unnamed failure"),
    (Status.ERROR, "errors", "error_tests", "unnamed error"),
    (Status.SKIPPED, "skipped", "skipped_tests", "unnamed skipped test"),
    (Status.PASSED, "passed", "passed_tests", "unnamed passed test"),
)
#: The order an error message says the counts in: the seed's.
_SAID = ("passed", "failed", "skipped", "errors")
_DETAIL_KEYS = ("performance_metrics", "environment", *(kind[2] for kind in _KINDS))
_TEST_KEYS = frozenset({
    "name", "classname", "file", "line", "error", "message", "duration_seconds", "duration",
    "failure_type", "stack_trace", "traceback",
})


def from_counts(
    id: str | None = None,
    *,
    test_run_id: str | None = None,
    passed: int | None = None,
    failed: int | None = None,
    skipped: int | None = None,
    errors: int | None = None,
    total: int | None = None,
    total_tests: int | None = None,
    duration: float | None = None,
    duration_seconds: float | None = None,
    status: str | RunStatus | None = None,
    passed_tests: int | Sequence[Mapping[str, Any]] | None = None,
    failed_tests: int | Sequence[Mapping[str, Any]] | None = None,
    skipped_tests: int | Sequence[Mapping[str, Any]] | None = None,
    error_tests: int | Sequence[Mapping[str, Any]] | None = None,
    performance_metrics: Mapping[str, Any] | Iterable[Metric] | None = None,
    environment: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    artifacts: Iterable[Artifact] = (),
    suite: str | None = None,
) -> TestRun:
    """A `TestRun` from counts and the tests that were named (module docstring: the rules).

    The seed's names are accepted beside Herald's: `test_run_id` for `id`, `total_tests`
    for `total`, `duration_seconds` for `duration`, and `passed_tests` (`failed_tests`,
    `skipped_tests`, `error_tests`) either as the count or as the list of named tests.
    Each named test is a mapping with `name` and optionally `error` or `message`,
    `duration_seconds`, `classname`, `file`, `line`, `failure_type`, `stack_trace`.
    Their suite is `suite`, else the run's id. Raises ValueError naming what is wrong.
    """
    run_id = _one("id", id, "test_run_id", test_run_id)
    if run_id is None or not isinstance(run_id, str):
        raise ValueError(f"a run needs an id (a string), not {run_id!r}")
    details, rest = _split_metadata(metadata)
    counts: dict[str, Any] = {"passed": passed, "failed": failed, "skipped": skipped,
                              "errors": errors}
    named: dict[Status, list[Mapping[str, Any]]] = {}
    for status_of, count_name, list_name, _label in _KINDS:
        lists_given = 0
        named[status_of] = []
        argument = {"passed_tests": passed_tests, "failed_tests": failed_tests,
                    "skipped_tests": skipped_tests, "error_tests": error_tests}[list_name]
        # The seed gave `failed_tests=2` as the count and `metadata["failed_tests"]` as
        # the list: each place may hold either, but one of each at most.
        for value in (argument, details.get(list_name)):
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                counts[count_name] = _one(count_name, counts[count_name], list_name, value)
            elif lists_given:
                raise ValueError(f"{list_name} is given both as an argument and in metadata")
            else:
                lists_given += 1
                named[status_of] = _tests(list_name, value)
    extras: dict[str, Any] = {"performance_metrics": performance_metrics,
                              "environment": environment}
    for key in extras:
        if key in details:
            if extras[key] is not None:
                raise ValueError(f"{key} is given both as an argument and in metadata")
            extras[key] = details[key]

    wanted: dict[Status, int] = {}
    for status_of, count_name, list_name, _label in _KINDS:
        count = counts[count_name]
        listed = len(named[status_of])
        if count is None:
            count = listed
        _check_count(count_name, count)
        if listed > count:
            raise ValueError(f"{listed:,} tests are named in {list_name} but {count_name} is "
                             f"{count:,}: the count and the names disagree")
        wanted[status_of] = count
    whole = sum(wanted.values())
    stated = _one("total", total, "total_tests", total_tests)
    if stated is not None:
        _check_count("total", stated)
        if stated != whole:
            parts = " + ".join(f"{name} {wanted[of]:,}" for of, name, _l, _u in
                               sorted(_KINDS, key=lambda kind: _SAID.index(kind[1])))
            raise ValueError(f"total is {stated:,} but {parts} make {whole:,}")
    if whole > MAX_TESTS:
        raise ValueError(f"{whole:,} tests is more than a hand-built run may count "
                         f"({MAX_TESTS:,})")

    suite_name = _text("suite", run_id if suite is None else suite, NAME_LIMIT)
    built = Suite(name=suite_name)
    for status_of, _count_name, list_name, unnamed_label in _KINDS:
        for position, entry in enumerate(named[status_of]):
            built.cases.append(_case(entry, status_of, suite_name, f"{list_name}[{position}]"))
        missing = wanted[status_of] - len(named[status_of])
        _add_unnamed(built, status_of, unnamed_label, missing)

    failures = wanted[Status.FAILED] + wanted[Status.ERROR]
    reported = _status(status, failures)
    seconds = _one("duration", duration, "duration_seconds", duration_seconds)
    return TestRun(
        id=run_id,
        suites=[built] if built.cases else [],
        status=reported,
        duration=None if seconds is None else _seconds("duration", seconds),
        metadata=rest,
        environment=_environment(extras["environment"]),
        metrics=_metrics(extras["performance_metrics"]),
        artifacts=_artifacts(artifacts),
    )


def _artifacts(artifacts: Iterable[Artifact]) -> list[Artifact]:
    found = list(artifacts)
    wrong = [type(item).__name__ for item in found if not isinstance(item, Artifact)]
    if wrong:
        raise ValueError(f"artifacts must be Artifact objects, not {wrong[0]}")
    return found


def _one(name: str, value: Any, alias: str, other: Any) -> Any:
    if value is not None and other is not None and value != other:
        raise ValueError(f"{name} is {value!r} but {alias} is {other!r}: give one")
    return value if value is not None else other


def _check_count(name: str, count: Any) -> None:
    # A bool is an int to Python; `failed=True` is a mistake, not one failure.
    if type(count) is not int:
        raise ValueError(f"{name} must be a whole number, not {count!r}")
    if count < 0:
        raise ValueError(f"{name} cannot be negative: {count:,}")
    if count > MAX_TESTS:
        raise ValueError(f"{name} is {count:,}, more than a hand-built run may count "
                         f"({MAX_TESTS:,})")


def _status(status: str | RunStatus | None, failures: int) -> RunStatus | None:
    if status is None:
        return None
    key = status.value if isinstance(status, RunStatus) else status
    if not isinstance(key, str) or key.strip().lower() not in _STATUSES:
        raise ValueError(f"unknown status {status!r}: choose from {', '.join(_STATUSES)}")
    reported = _STATUSES[key.strip().lower()]
    if reported is None and failures:
        logging.getLogger(__name__).warning(
            "status %r ignored: the run counts %d failed tests or errors", key[:40], failures)
    return reported


def _split_metadata(metadata: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The seed's detail keys of the caller's metadata, and the rest as strings."""
    if metadata is None:
        return {}, {}
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a mapping, not {type(metadata).__name__}")
    if len(metadata) > MAX_ENTRIES + len(_DETAIL_KEYS):
        raise ValueError(f"metadata has {len(metadata):,} entries, more than {MAX_ENTRIES:,}")
    details: dict[str, Any] = {}
    rest: dict[str, str] = {}
    for key, value in metadata.items():
        if key in _DETAIL_KEYS:
            details[key] = value
        else:
            rest[_text("a metadata key", key, NAME_LIMIT)] = _scalar(f"metadata[{key!r}]", value)
    return details, rest


def _tests(list_name: str, value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{list_name} must be a count or a list of tests, "
                         f"not {type(value).__name__}")
    if len(value) > MAX_TESTS:
        raise ValueError(f"{list_name} names {len(value):,} tests, more than a hand-built run "
                         f"may count ({MAX_TESTS:,})")
    for position, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise ValueError(f"{list_name}[{position}] must be a mapping with a name, "
                             f"not {type(entry).__name__}")
    return list(value)


def _text(what: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    return value if len(value) <= limit else value[:limit] + "…"


def _optional_text(what: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    return truncate(value, limit)


def _seconds(what: str, value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number of seconds, not negative: {value!r}")
    return float(value)


def _case(entry: Mapping[str, Any], status: Status, suite: str, where: str) -> TestCase:
    unknown = sorted(map(str, set(entry) - _TEST_KEYS))
    if unknown:
        raise ValueError(f"{where} has unknown keys {', '.join(unknown)} "
                         f"(a test has {', '.join(sorted(_TEST_KEYS))})")
    name = _text(f"{where}.name", entry.get("name"), NAME_LIMIT)
    texts: dict[str, str | None] = {}
    for field, aliases in (("message", ("error", "message")),
                           ("stack_trace", ("stack_trace", "traceback"))):
        present = [key for key in aliases if entry.get(key) is not None]
        if len(present) > 1:
            raise ValueError(f"{where} has both {present[0]} and {present[1]}: give one")
        texts[field] = _optional_text(f"{where}.{present[0]}", entry[present[0]],
                                      DEFAULT_TEXT_LIMIT) if present else None
    seconds = _one(f"{where}.duration_seconds", entry.get("duration_seconds"),
                   f"{where}.duration", entry.get("duration"))
    line = entry.get("line")
    if line is not None and (type(line) is not int or line < 1):
        raise ValueError(f"{where}.line must be a line number from 1, not {line!r}")
    return TestCase(
        name=name,
        classname=_text(f"{where}.classname", entry.get("classname", ""), NAME_LIMIT),
        suite=suite,
        status=status,
        duration=0.0 if seconds is None else _seconds(f"{where}.duration_seconds", seconds),
        file=_optional_text(f"{where}.file", entry.get("file"), NAME_LIMIT),
        line=line,
        message=texts["message"],
        failure_type=_optional_text(f"{where}.failure_type", entry.get("failure_type"),
                                    NAME_LIMIT),
        stack_trace=texts["stack_trace"],
    )


def _add_unnamed(suite: Suite, status: Status, label: str, missing: int) -> None:
    """`missing` cases named `label i of missing`: up to a million, so the loop does no
    more than make each case (its name's tail is formatted once)."""
    message = None
    if status.is_failure:
        # Said in the message too, so a reader of one line knows Herald was given only a count.
        message = f"counted as {status.value} but not named: Herald was given only the count"
    tail = f" of {missing:,}"
    name, append = suite.name, suite.cases.append
    for number in range(1, missing + 1):
        append(TestCase(f"{label} {number:,}{tail}", "", name, status, message=message))


def _scalar(what: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise ValueError(f"{what} must be a string or a number, not {type(value).__name__}")


def _environment(environment: Any) -> dict[str, str]:
    if environment is None:
        return {}
    if not isinstance(environment, Mapping):
        raise ValueError(f"environment must be a mapping of names to values, "
                         f"not {type(environment).__name__}")
    if len(environment) > MAX_ENTRIES:
        raise ValueError(f"environment has {len(environment):,} entries, "
                         f"more than {MAX_ENTRIES:,}")
    return {
        _text("an environment name", name, NAME_LIMIT):
            truncate(_scalar(f"environment[{name!r}]", value), NAME_LIMIT) or ""
        for name, value in environment.items()
    }


def _metrics(metrics: Any) -> list[Metric]:
    if metrics is None:
        return []
    if isinstance(metrics, Mapping):
        items = list(metrics.items())
    elif isinstance(metrics, str | bytes) or not isinstance(metrics, Iterable):
        raise ValueError(f"performance_metrics must be a mapping of names to values, "
                         f"not {type(metrics).__name__}")
    else:
        items = [(None, item) for item in metrics]
    if len(items) > MAX_ENTRIES:
        raise ValueError(f"performance_metrics has {len(items):,} entries, "
                         f"more than {MAX_ENTRIES:,}")
    found: list[Metric] = []
    for key, value in items:
        if key is None:
            if not isinstance(value, Metric):
                raise ValueError(f"performance_metrics must hold Metric objects, "
                                 f"not {type(value).__name__}")
            found.append(value)
            continue
        name = _text("a metric name", key, NAME_LIMIT)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"metric {name!r} must be a number or a string, "
                             f"not {type(value).__name__}")
        if isinstance(value, str):
            text = truncate(value.strip(), NAME_LIMIT) or ""
            if not text:
                raise ValueError(f"metric {name!r} has no value")
            found.append(Metric.read(name, text))
        elif not math.isfinite(value):
            raise ValueError(f"metric {name!r} must be a finite number, not {value!r}")
        else:
            found.append(Metric(name, float(value) if isinstance(value, int) else value))
    return found
