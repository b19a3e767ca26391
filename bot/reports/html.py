"""The HTML report: one self-contained page (inline CSS, no scripts, no external assets).

Every value goes through jinja2's autoescaping, forced on for these templates; links are
made only for http(s) URLs, since escaping alone does not stop a `javascript:` href.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup

from bot.reports import summary as words
from bot.reports.budget import Plan, Tier, cap, fit
from bot.reports.templating import environment
from bot.results.model import (
    Status,
    TestCase,
    TestRun,
    format_duration,
    format_size,
)


class _Failures:
    """Each failure's block, rendered once: with details (message, trace, output) or
    without, because budget fitting renders the page many times."""

    def __init__(self, cases: Sequence[TestCase]) -> None:
        self.cases = cases
        self._blocks: dict[bool, list[Markup]] = {True: [], False: []}

    def block(self, index: int, detailed: bool) -> Markup:
        blocks = self._blocks[detailed]
        template = environment(html=True).get_template("failure.html.j2")
        while len(blocks) <= index:
            case = self.cases[len(blocks)]
            blocks.append(Markup(template.render(  # noqa: S704 (autoescaped template output)
                case=case,
                detailed=detailed,
                duration=format_duration(case.duration),
                summary=words.failure_summary(
                    case.message, case.failure_type, error=case.status is Status.ERROR
                ),
                flaky_attempts=[
                    (a.status.value, format_duration(a.duration), a.message)
                    for a in case.attempts
                ],
            )))
        return blocks[index]

    def blocks(self, plan: Plan) -> list[Markup]:
        return [self.block(i, i < plan.details) for i in range(plan.rows)]

    def longer_than(self, plan: Plan, budget: int) -> bool:
        total = 0
        for index in range(plan.rows):
            total += len(self.block(index, index < plan.details))
            if total > budget:
                return True
        return False


def render_html(run: TestRun, *, budget: int | None = None, now: datetime | None = None,
                details_url: str | None = None) -> str:
    """The report as one HTML page of at most `budget` characters.

    Tiers as in `bot.reports.budget`; in tier 1 every failure shows its stack trace and
    output, and the tests that did not fail are listed, collapsed. Raises ValueError for a
    budget too small for even the counts-only page (its stylesheet alone is ~3,000
    characters): an HTML page cannot be cut like text.
    """
    totals = run.totals()
    failing = run.failures()
    failures = _Failures(failing)
    others = [case for case in run.cases() if not case.status.is_failure]
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
    status = run.overall_status()
    template = environment(html=True).get_template("report.html.j2")
    base = {
        "run_id": run.id or "(unnamed run)",
        "status": words.status_word(status),
        "status_class": status.value,
        "title": words.title(totals),
        "run_url": words.safe_url(run.url),
        "details_url": words.safe_url(details_url),
        "totals": totals,
        "duration": format_duration(totals.duration),
        "bar": bar,
        "failure_count": len(failing),
        "others_count": len(others),
        "generated": f"Generated on {words.generated_at(now)} by {words.BRAND}",
    }
    metrics = [(m.name, words.metric_value(m.value), m.unit) for m in run.metrics]
    artifacts = [(a.name, words.safe_url(a.url), format_size(a.size)) for a in run.artifacts]
    errors = [(e.source, e.reason) for e in run.errors]

    def render(plan: Plan) -> str | None:
        if budget is not None and failures.longer_than(plan, budget):
            return None
        return template.render(
            **base,
            counts_only=plan.tier is Tier.COUNTS,
            failures=failures.blocks(plan),
            detailed=min(plan.details, plan.rows),
            more_failures=len(failing) - plan.rows,
            others=[
                (case, case.status.value, format_duration(case.duration), case.flaky)
                for case in others
            ] if plan.others else [],
            metrics=cap(metrics, plan.lists),
            artifacts=cap(artifacts, plan.lists),
            errors=cap(errors, plan.lists),
        )

    def too_small(text: str, limit: int) -> str:
        raise ValueError(f"an HTML report needs at least {len(text):,} characters, "
                         f"not {limit:,}")

    text, _plan = fit(render, len(failing), budget, last_resort=too_small)
    return text
