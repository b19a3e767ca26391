"""How a report arranges a run for a reviewer: failures by CI job, then by file or suite.

Both the Markdown and the HTML report list what `arrange` returns, so they always agree:

- failures are grouped by their case's `origin` (CI job, matrix leg or artifact), then by
  the test's file, else its suite; groups keep the order in which the run first shows them.
  The origin level is left out when the run has one origin or none (it would say nothing).
- same-named executions of one test (a parameterised test, a data provider, a name that
  repeats) in the same origin and suite are told apart as "execution 2 of 3" when at least
  one of them failed, counting the passing ones too, so that a failing iteration is never
  mistaken for a passing one of the same name;
- flaky and skipped tests are collected for their own (shorter) sections.

Nothing is merged or dropped here: every failing case appears exactly once in `ordered`.
The cost stays linear: the names of failing cases are collected first, and the one pass
over all cases that numbers executions only looks closer at cases bearing those names.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from bot.results.model import Origin, Status, TestCase, TestRun


@dataclass(slots=True)
class Listed:
    """One failing case as listed, with its place among same-named executions."""

    case: TestCase
    #: (n, of) when other executions share its name in its origin and suite, else None.
    execution: tuple[int, int] | None = None


@dataclass(slots=True)
class Place:
    """The failures of one file (or, for cases without a file, one suite)."""

    label: str
    is_file: bool
    failures: list[Listed] = field(default_factory=list)


@dataclass(slots=True)
class Job:
    """The failures of one origin (None: cases that came with no origin)."""

    origin: Origin | None
    places: list[Place] = field(default_factory=list)
    failed: int = 0
    errors: int = 0


@dataclass(slots=True)
class Layout:
    jobs: list[Job]
    #: Whether to show the origin level: the run's cases come from more than one origin.
    by_origin: bool
    #: Every failure once, in listing order; a budget keeps the first n of these.
    ordered: list[Listed]
    flaky: list[TestCase]
    skipped: list[TestCase]
    #: The one origin of every case, when there is exactly one (its log is linked once).
    only_origin: Origin | None


def _origin_name(case: TestCase) -> str | None:
    return case.origin.name if case.origin is not None else None


def arrange(run: TestRun) -> Layout:
    failing: list[TestCase] = []
    flaky: list[TestCase] = []
    skipped: list[TestCase] = []
    origins: dict[str | None, Origin | None] = {}
    for suite in run.suites:
        cases = suite.cases
        for origin in cases.origins():
            origins.setdefault(origin.name if origin is not None else None, origin)
        # Failures and cases with attempts are never packed; only skipped ones may be, and
        # only then is every case read (a million passed ones are not unpacked for this).
        if cases.packed_summary()[1]:
            found: Iterable[TestCase] = cases
        else:
            found = itertools.chain(cases.objects(), cases.promoted())
        for case in found:
            status = case.status
            if status is Status.PASSED:
                if case.attempts and case.flaky:
                    flaky.append(case)
            elif status is Status.SKIPPED:
                skipped.append(case)
            else:
                failing.append(case)
    numbers = _executions(run, failing)

    jobs: dict[str | None, Job] = {}
    places: dict[tuple[str | None, bool, str], Place] = {}
    for case in failing:
        name = _origin_name(case)
        job = jobs.get(name)
        if job is None:
            job = jobs[name] = Job(origin=case.origin)
        if case.status is Status.ERROR:
            job.errors += 1
        else:
            job.failed += 1
        is_file = bool(case.file)
        label = case.file if case.file else case.suite
        key = (name, is_file, label or "")
        place = places.get(key)
        if place is None:
            place = places[key] = Place(label=label or "", is_file=is_file)
            job.places.append(place)
        place.failures.append(Listed(case, numbers.get(id(case))))
    ordered = [listed for job in jobs.values() for place in job.places
               for listed in place.failures]
    only = next(iter(origins.values())) if len(origins) == 1 else None
    return Layout(
        jobs=list(jobs.values()),
        by_origin=len(origins) > 1,
        ordered=ordered,
        flaky=flaky,
        skipped=skipped,
        only_origin=only,
    )


def _executions(run: TestRun, failing: list[TestCase]) -> dict[int, tuple[int, int]]:
    """(n, of) for each failing case (by id) whose name other executions share."""
    if not failing:
        return {}
    names = {case.name for case in failing}
    keys = {(_origin_name(c), c.suite, c.display_name) for c in failing}
    seen: dict[tuple[str | None, str, str], int] = {}
    place: dict[int, tuple[tuple[str | None, str, str], int]] = {}
    for case in run.cases():
        if case.name not in names:  # the cheap test first: most cases stop here
            continue
        key = (_origin_name(case), case.suite, case.display_name)
        if key not in keys:
            continue
        seen[key] = seen.get(key, 0) + 1
        if case.status.is_failure:
            place[id(case)] = (key, seen[key])
    return {ident: (index, seen[key]) for ident, (key, index) in place.items()
            if seen[key] > 1}
