"""Size budgets: how a report shrinks, tier by tier, to fit where it is posted.

Forges cap what one report may hold. Cutting the text at the limit would leave half a table
or an unclosed code fence, so each renderer instead describes what it shows as a `Plan`, and
`fit` tries plans from the richest to the barest until the rendered text fits:

1. `Tier.FULL`: every failure listed with its details (the whole message, the rest of the
   stack trace), and the skipped and passed tests' listings. When not every failure's
   details fit, the listings go first, then the details of the last failures (the first
   ones keep theirs, in listing order, at least one).
2. `Tier.TABLE`: every failure listed, each on one line (name, message's first line).
3. `Tier.CAPPED`: the first failures that fit, then "… and K more failures: see <link>";
   the other lists (unreadable inputs, flaky tests, metrics, environment, artifacts) are capped at
   `LIST_CAP` entries.
4. `Tier.COUNTS`: the counts and a link to the full report, nothing else.

Should even tier 4 not fit (a budget of a few hundred characters and a long link), whole
lines are dropped from its end, so the result is never longer than the budget.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

T = TypeVar("T")

#: GitHub rejects a check run whose `output.summary` (or `text`) exceeds this many characters.
GITHUB_CHECK_SUMMARY_LIMIT = 65_535
#: GitHub rejects an issue or pull request comment body longer than this.
GITHUB_COMMENT_LIMIT = 65_536
#: GitLab's limit on a note (merge request comment) body.
GITLAB_NOTE_LIMIT = 1_000_000
#: Azure DevOps refuses a pull request comment longer than this ("A discussion comment
#: cannot be longer than 150000 characters"): said by the API, not in its reference.
AZURE_DEVOPS_COMMENT_LIMIT = 150_000

#: In tier 3 the secondary lists (metrics, environment, artifacts, input errors) show this
#: many entries.
LIST_CAP = 10
#: The Environment table shows at most this many rows at any tier: it is context for the
#: results, and a caller's whole `os.environ` would otherwise crowd them out.
ENVIRONMENT_ROWS = 50


class Tier(enum.IntEnum):
    FULL = 1
    TABLE = 2
    CAPPED = 3
    COUNTS = 4


@dataclass(frozen=True, slots=True)
class Plan:
    """What one rendering shows; the renderer lays it out, `fit` picks it.

    `rows` and `details` count failures from the start of the listing order
    (`bot.reports.layout`); `lists` caps unreadable inputs, flaky tests, metrics and
    artifacts (None: all of them); `others` asks for the collapsed listings of the tests
    that did not fail (skipped in Markdown; skipped and passed in HTML).
    """

    tier: Tier
    rows: int
    details: int
    lists: int | None
    others: bool


def everything(failures: int) -> Plan:
    """The plan without a budget: every failure in full, every list whole."""
    return Plan(Tier.FULL, rows=failures, details=failures, lists=None, others=True)


def fit(
    render: Callable[[Plan], str | None],
    failures: int,
    budget: int | None,
    last_resort: Callable[[str, int], str] | None = None,
) -> tuple[str, Plan]:
    """Render the richest plan whose text is at most `budget` characters long.

    `render(plan)` may return None when it can tell, without rendering, that the plan
    cannot fit (its rows alone are longer than the budget): with 10,000 failures most
    plans are rejected that way. `last_resort(text, budget)` shrinks the tier-4 text when
    even that is too long; by default whole lines are dropped from its end (`clip_lines`).
    """
    full = everything(failures)
    if budget is None:
        text = render(full)
        if text is None:
            raise AssertionError("a plan without a budget always renders")
        return text, full
    if budget < 0:
        raise ValueError(f"a report budget cannot be negative: {budget}")
    limit = budget

    def attempt(plan: Plan) -> tuple[str, Plan] | None:
        text = render(plan)
        return (text, plan) if text is not None and len(text) <= limit else None

    def largest(make: Callable[[int], Plan], low: int, high: int) -> tuple[str, Plan] | None:
        """The plan with the largest n in [low, high] that fits; lengths grow with n."""
        best = None
        while low <= high:
            middle = (low + high) // 2
            found = attempt(make(middle))
            if found is not None:
                best, low = found, middle + 1
            else:
                high = middle - 1
        return best

    result = attempt(full) or attempt(replace(full, others=False))
    if result is None and failures > 1:
        result = largest(lambda n: replace(full, details=n, others=False), 1, failures - 1)
    if result is None:
        result = attempt(Plan(Tier.TABLE, failures, 0, None, others=False))
    if result is None:
        capped = Plan(Tier.CAPPED, failures, 0, LIST_CAP, others=False)
        result = largest(lambda n: replace(capped, rows=n), min(1, failures), failures)
    if result is None:
        counts = Plan(Tier.COUNTS, 0, 0, 0, others=False)
        text = render(counts)
        if text is None:
            raise AssertionError("the counts-only plan always renders")
        if len(text) > budget:
            text = (last_resort or clip_lines)(text, budget)
        result = text, counts
    return result


def clip_lines(text: str, budget: int) -> str:
    """Keep the whole lines of `text` that fit in `budget` characters, from the top."""
    if len(text) <= budget:
        return text
    kept = text[:budget]
    cut = kept.rfind("\n")
    if cut < 0:
        return ""
    return kept[:cut].rstrip("\n") + "\n"


def one_line(text: str, limit: int) -> str:
    """`text` on one line (white space folded), cut with an ellipsis to `limit` characters:
    a commit or pull request status' description."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit_comment(
    render: Callable[[int], str],
    limit: int,
    truncated: str,
    finish: Callable[[str], str] = lambda text: text,
) -> str:
    """`finish(render(budget))`, the budget lowered until the result fits in `limit`.

    `finish` is a forge's last pass over the whole comment (GitLab's `neutralise`), which
    may lengthen it: the budget is lowered by the overshoot and tried again, and as a last
    resort whole lines are dropped from the end and `truncated` says so.
    """
    budget = limit
    text = ""
    for _ in range(4):
        text = finish(render(budget))
        overshoot = len(text) - limit
        if overshoot <= 0:
            return text
        budget -= overshoot + 256
        if budget <= 0:
            break
    room = max(0, limit - len(truncated))
    cut = text.rfind("\n", 0, room)
    return text[: cut if cut > 0 else room] + truncated


def cap(items: Sequence[T], limit: int | None, total: int | None = None) -> dict[str, object]:
    """A list as the templates show it: the first `limit` items and how many more there are
    (of `total`, when `items` is already only the first of them)."""
    shown = list(items) if limit is None else list(items[:limit])
    return {"shown": shown, "more": (len(items) if total is None else total) - len(shown)}
