"""The comparison with the base branch as the reports show it, ahead of the failures:
what is new first, then what was failing on the base already, then the rest.

The words are built here once; Markdown (`markdown_lines`) escapes each name as it goes
in, the HTML template gets the same words as plain text and autoescapes them, and JSON
(`as_json`) gets the numbers. Every list is capped by the report's plan (`Plan.lists`)
and says how many more there are: the counts are always whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.compare import Comparison, Named
from bot.reports import summary as words


def heading(found: Comparison) -> str:
    assert found.base is not None
    return f"Compared with {found.base.branch}"


def sentence(found: Comparison) -> str:
    """One line of counts, new things first; "nothing changed" when there is nothing."""
    assert found.base is not None
    parts = []
    if found.new_failures.count:
        parts.append(words.plural(found.new_failures.count, "new failure", "new failures"))
    if found.still_failing.count:
        parts.append(f"{found.still_failing.count:,} failing on {found.base.branch} already")
    for named, one, many in (
        (found.fixed, "fixed", "fixed"),
        (found.new_tests, "new test", "new tests"),
        (found.removed, "removed test", "removed tests"),
        (found.newly_skipped, "newly skipped", "newly skipped"),
    ):
        if named.count:
            parts.append(words.plural(named.count, one, many))
    if found.slower:
        parts.append(words.plural(len(found.slower), "slower test", "slower tests"))
    if found.worse_metrics:
        parts.append(words.plural(len(found.worse_metrics), "worse metric", "worse metrics"))
    return ", ".join(parts) + "." if parts else "nothing changed."


def base_words(found: Comparison) -> tuple[str, str | None]:
    """("run 4711 at 1a2b3c4d5e6f", its URL)."""
    assert found.base is not None
    base = found.base
    at = f" at {base.sha[:12]}" if base.sha else ""
    return f"run {base.run_id}{at}", words.safe_url(base.url)


def lists(found: Comparison) -> list[tuple[str, Named]]:
    """The named lists, in the order the report gives them."""
    assert found.base is not None
    branch = found.base.branch
    return [(title, named) for title, named in (
        ("New failures", found.new_failures),
        (f"Failing on {branch} already", found.still_failing),
        ("Fixed", found.fixed),
        ("Removed tests", found.removed),
        ("Newly skipped", found.newly_skipped),
        ("New tests", found.new_tests),
    ) if named.count]


def slower_words(found: Comparison) -> list[tuple[str, str]]:
    """(test, "4.0 s, was 2.0 s")."""
    return [(s.name, f"{words.short_duration(s.now)}, was {words.short_duration(s.before)}")
            for s in found.slower]


def metric_words(found: Comparison) -> list[tuple[str, str]]:
    """(metric, "90, was 100 (-10.0%), higher is better")."""
    return [(m.name, f"{words.metric_value(m.now)}, was {words.metric_value(m.before)} "
                     f"({m.percent:+.1f}%), {m.better.value} is better")
            for m in found.worse_metrics]


def markdown_lines(found: Comparison, heading_level: str, limit: int | None,
                   text: Callable[[str, int | None], str], link: Callable[[str, str], str],
                   cell: int) -> list[str]:
    """The section as Markdown lines: `text` escapes, `link` makes a link."""
    run, url = base_words(found)
    against = link(run, url) if url else text(run, None)
    lines = [f"{heading_level} {text(heading(found), None)}", "",
             f"Against {against}: {text(sentence(found), None)}"]
    advice = found.advice()
    if advice:
        # The command is shown as code, the rest as escaped text.
        said = text(advice, None).replace(text("`/retest`", None), "`/retest`")
        lines += ["", f"**{said}**"]
    shown: list[str] = []
    for title, named in lists(found):
        shown.append(f"- {title} ({named.count:,}): "
                     + _joined([text(n, cell) for n in named.names], named.count, limit))
    for title, pairs in (("Slower", slower_words(found)), ("Worse metrics", metric_words(found))):
        if pairs:
            shown.append(f"- {title}: " + _joined(
                [f"{text(name, cell)} ({text(said, None)})" for name, said in pairs],
                len(pairs), limit))
    if shown:
        lines += ["", *shown]
    return lines


def _joined(items: Sequence[str], count: int, limit: int | None) -> str:
    kept = list(items if limit is None else items[:limit])
    more = count - len(kept)
    return ", ".join(kept) + (f", and {more:,} more" if more else "")


def html_context(found: Comparison, limit: int | None) -> dict[str, Any]:
    """What report.html.j2 shows, plain text (the template escapes)."""
    run, url = base_words(found)

    def capped(names: Sequence[str], count: int) -> dict[str, Any]:
        kept = list(names if limit is None else names[:limit])
        return {"shown": kept, "more": count - len(kept)}

    return {
        "heading": heading(found), "run": run, "url": url, "sentence": sentence(found),
        "advice": found.advice(),
        "lists": [(title, capped(named.names, named.count), named.count)
                  for title, named in lists(found)],
        "slower": capped([f"{n} ({said})" for n, said in slower_words(found)],
                         len(found.slower)),
        "metrics": capped([f"{n} ({said})" for n, said in metric_words(found)],
                          len(found.worse_metrics)),
    }


def as_json(found: Comparison) -> dict[str, Any]:
    """The comparison in the JSON report: counts whole, names as listed."""
    assert found.base is not None
    base = found.base

    def named(value: Named) -> dict[str, Any]:
        return {"count": value.count, "names": list(value.names)}

    return {
        "base": {"branch": base.branch, "run_id": base.run_id, "sha": base.sha,
                 "url": base.url},
        "new_failures": named(found.new_failures),
        "still_failing": named(found.still_failing),
        "fixed": named(found.fixed),
        "new_tests": named(found.new_tests),
        "removed": named(found.removed),
        "newly_skipped": named(found.newly_skipped),
        "known_flaky": {"count": found.known_flaky_count,
                        "names": [f.name for f in found.known_flaky]},
        "slower": [{"name": s.name, "now": s.now, "before": s.before} for s in found.slower],
        "worse_metrics": [{"name": m.name, "now": m.now, "before": m.before,
                           "better": m.better.value} for m in found.worse_metrics],
        "advice": found.advice(),
    }


__all__ = ["as_json", "html_context", "markdown_lines", "sentence"]
