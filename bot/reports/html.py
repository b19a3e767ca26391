"""The HTML report: one self-contained page (inline CSS, no scripts, no external assets).

Every value goes through jinja2's autoescaping, forced on for these templates; links are
made only for http(s) URLs, since escaping alone does not stop a `javascript:` href.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup

from bot.reports import summary as words
from bot.reports.budget import ENVIRONMENT_ROWS, Plan, Tier, cap, everything, fit
from bot.reports.comparison import html_context
from bot.reports.layout import Layout, Listed, arrange
from bot.reports.templating import environment
from bot.results.model import (
    Status,
    TestCase,
    TestRun,
    format_duration,
    format_size,
    truncate,
)

#: The first this many failures show open; the rest are collapsed to one line each.
OPEN_FAILURES = 10
#: An Environment table's value is cut here (the JSON report has it whole).
ENVIRONMENT_VALUE_LIMIT = 1_000


@dataclass(slots=True)
class _Place:
    label: str
    is_file: bool
    count: int
    blocks: list[Markup]


@dataclass(slots=True)
class _Job:
    name: str | None
    url: str | None
    counts: str
    places: list[_Place]


def _counted(failed: int, errors: int) -> str:
    parts = [f"{failed:,} failed"] if failed else []
    if errors:
        parts.append(f"{errors:,} error" + ("" if errors == 1 else "s"))
    return ", ".join(parts)


class _Failures:
    """Each failure's block, rendered once: with details (message, trace, output) or
    without, because budget fitting renders the page many times. Failures past
    `OPEN_FAILURES` are collapsed into a disclosure."""

    def __init__(self, listed: Sequence[Listed]) -> None:
        self.listed = listed
        self._blocks: dict[bool, list[Markup]] = {True: [], False: []}

    def block(self, index: int, detailed: bool) -> Markup:
        blocks = self._blocks[detailed]
        template = environment(html=True).get_template("failure.html.j2")
        while len(blocks) <= index:
            entry = self.listed[len(blocks)]
            case = entry.case
            message = case.message if case.message and case.message.strip() else None
            blocks.append(Markup(template.render(  # noqa: S704 (autoescaped template output)
                case=case,
                name=case.display_name or "(unnamed test)",
                execution=words.execution_label(*entry.execution) if entry.execution else None,
                collapsed=len(blocks) >= OPEN_FAILURES,
                detailed=detailed,
                duration=format_duration(case.duration),
                location=f"{case.file}:{case.line}" if case.file and case.line is not None
                else case.file,
                show_type=case.failure_type is not None
                and case.failure_type not in words.first_line(message),
                message=message,
                # The type is in the meta line already, so the summary is the message's.
                summary=words.first_line(message) or words.failure_summary(
                    None, case.failure_type, error=case.status is Status.ERROR
                ),
                trace=words.trace_beyond_message(message, case.stack_trace, case.failure_type),
                flaky_attempts=[
                    (a.status.value, format_duration(a.duration), a.message)
                    for a in case.attempts
                ],
            )))
        return blocks[index]

    def longer_than(self, plan: Plan, budget: int) -> bool:
        total = 0
        for index in range(plan.rows):
            total += len(self.block(index, index < plan.details))
            if total > budget:
                return True
        return False


def _grouped(layout: Layout, failures: _Failures, plan: Plan) -> list[_Job]:
    """The first `plan.rows` failures under their job and place."""
    jobs: list[_Job] = []
    index = 0
    shown = min(plan.rows, len(layout.ordered))
    for job in layout.jobs:
        if index >= shown:
            break
        places: list[_Place] = []
        for place in job.places:
            if index >= shown:
                break
            blocks = []
            for _entry in place.failures[: shown - index]:
                blocks.append(failures.block(index, index < plan.details))
                index += 1
            places.append(_Place(place.label, place.is_file, len(place.failures), blocks))
        origin = job.origin
        jobs.append(_Job(
            name=origin.name if origin else None,
            url=words.safe_url(origin.url) if origin else None,
            counts=_counted(job.failed, job.errors),
            places=places,
        ))
    return jobs


def _flaky(case: TestCase) -> tuple[TestCase, int, str]:
    failed = [a for a in case.attempts if a.status.is_failure]
    last = failed[-1]
    said = last.message if last.message and last.message.strip() else words.failure_summary(
        None, last.failure_type, error=last.status is Status.ERROR)
    return case, len(failed), said


class _Passed:
    """The passed tests as the template lists them, read lazily: a million-test page is
    written while the cases are read, never held (truthy when there is any)."""

    def __init__(self, run: TestRun, count: int) -> None:
        self._run, self._count = run, count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[tuple[TestCase, str, bool]]:
        passed = Status.PASSED
        for case in self._run.cases():
            if case.status is passed:
                yield case, format_duration(case.duration), case.flaky


def render_html(run: TestRun, *, budget: int | None = None, now: datetime | None = None,
                details_url: str | None = None) -> str:
    """The report as one HTML page of at most `budget` characters.

    Tiers as in `bot.reports.budget`; in tier 1 every failure shows its stack trace and
    output, and the tests that passed or were skipped are listed, collapsed. Raises
    ValueError for a budget too small for even the counts-only page (its stylesheet alone
    is ~3,000 characters): an HTML page cannot be cut like text.
    """
    if budget is None:
        return "".join(iter_html(run, now=now, details_url=details_url))
    return _render(run, budget, now, details_url, stream=False)[0]


def iter_html(run: TestRun, *, now: datetime | None = None,
              details_url: str | None = None) -> Iterator[str]:
    """The whole page (no budget) in pieces, the passed tests read as they are written."""
    return _render(run, None, now, details_url, stream=True)[1]


def _render(run: TestRun, budget: int | None, now: datetime | None, details_url: str | None,
            *, stream: bool) -> tuple[str, Iterator[str]]:
    totals = run.totals()
    layout = arrange(run)
    failing = layout.ordered
    failures = _Failures(failing)
    total = totals.total or 1
    bar = [
        (name, 100.0 * count / total, count)
        for name, count in (
            ("passed", totals.passed),
            ("failed", totals.failed),
            ("error", totals.errors),
            ("skipped", totals.skipped),
        )
        if count
    ]
    counts = [
        (label, count, tone)
        for label, count, tone in (
            ("Failed", totals.failed, "failed"),
            ("Errors", totals.errors, "error"),
            ("Passed", totals.passed, "passed"),
            ("Skipped", totals.skipped, ""),
            ("Flaky", totals.flaky, ""),
        )
        if count
    ]
    status = run.overall_status()
    only = layout.only_origin if failing else None
    template = environment(html=True).get_template("report.html.j2")
    base = {
        "run_id": run.id or "(unnamed run)",
        "status": words.run_status_word(run),
        "status_class": status.value,
        "headline": words.headline(totals),
        "title": words.title(totals),
        "run_url": words.safe_url(run.url),
        "details_url": words.safe_url(details_url),
        "totals": totals,
        "executions": words.scope(totals) if totals.tests != totals.total else None,
        "counts": counts,
        "duration": format_duration(totals.duration),
        "bar": bar,
        "failure_count": len(failing),
        "by_origin": layout.by_origin,
        "only_origin": (only.name, words.safe_url(only.url)) if only else None,
        "unread": words.files_unread(len(run.errors)) if run.errors else None,
        "skipped_count": len(layout.skipped),
        "passed_count": totals.passed,
        "generated": f"Generated on {words.generated_at(now)} by {words.BRAND}",
    }
    metrics = [(m.name, words.metric_value(m.value), m.unit) for m in run.metrics]
    ran_in = [(name, truncate(value, ENVIRONMENT_VALUE_LIMIT) or "") for name, value
              in itertools.islice(run.environment.items(), ENVIRONMENT_ROWS)]
    artifacts = [(a.name, words.safe_url(a.url), format_size(a.size)) for a in run.artifacts]
    errors = [(e.source, e.reason) for e in run.errors]
    flaky = [_flaky(case) for case in layout.flaky]

    def context(plan: Plan) -> dict[str, Any]:
        return dict(
            **base,
            counts_only=plan.tier is Tier.COUNTS,
            jobs=_grouped(layout, failures, plan),
            shown=plan.rows,
            detailed=min(plan.details, plan.rows),
            more_failures=len(failing) - plan.rows,
            others=plan.others,
            skipped=[(case, format_duration(case.duration)) for case in layout.skipped]
            if plan.others else [],
            passed=_Passed(run, totals.passed) if plan.others else [],
            metrics=cap(metrics, plan.lists),
            environment=cap(ran_in, plan.lists, len(run.environment)),
            artifacts=cap(artifacts, plan.lists),
            errors=cap(errors, plan.lists),
            flaky=cap(flaky, plan.lists),
            comparison=html_context(run.comparison, plan.lists)
            if run.comparison is not None and run.comparison.base is not None else None,
        )

    def render(plan: Plan) -> str | None:
        if budget is not None and failures.longer_than(plan, budget):
            return None
        return template.render(**context(plan))

    def too_small(text: str, limit: int) -> str:
        raise ValueError(f"an HTML report needs at least {len(text):,} characters, "
                         f"not {limit:,}")

    if stream:
        return "", template.generate(**context(everything(len(failing))))
    text, _plan = fit(render, len(failing), budget, last_resort=too_small)
    return text, iter(())
