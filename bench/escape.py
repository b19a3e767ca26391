"""What keeping Markdown inert costs: the report with and without the word-joiner pass.

    python -m bench.escape [--failures N] [--repeat R]

Builds one run of N failures (default 2,000) among 10x as many passed tests, whose names
and messages hold references as real ones do (`fixes #123`, `@user`, `GH-7`, `PROJ-12`,
a URL) in one case in four, and renders it as the GitHub check-run summary (65,535
characters) and as the whole report, best of R rounds (default 5) interleaved:

- baseline: `bot.reports.markdown.defuse` replaced by the identity, i.e. the escaping as
  it was before references were defused;
- Herald: the escaping as shipped.

Prints milliseconds for each and Herald/baseline.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bot.reports import markdown
from bot.results.model import Status, Suite, TestCase, TestRun

BUDGET = 65_535
_REFERENCES = ("fixes #{i}", "ping @user{i}", "see GH-{i}", "PROJ-{i} regressed",
               "see https://ci.example.com/{i}")


def build_run(failures: int) -> TestRun:
    cases = []
    for i in range(failures * 10):
        failed = i % 10 == 0
        said = _REFERENCES[i % 5].format(i=i) if i % 4 == 0 else "expected 200"
        cases.append(TestCase(
            name=f"test_checkout_{i}[variant-{i % 7}] {said if i % 8 == 0 else ''}".strip(),
            classname=f"tests.checkout.test_module_{i % 50}.TestCheckout",
            file=f"tests/checkout/test_module_{i % 50}.py", line=i % 400,
            status=Status.FAILED if failed else Status.PASSED,
            message=f"AssertionError: {said}, got {i}" if failed else None,
            duration=0.01,
        ))
    return TestRun(id="bench #1", suites=[Suite("checkout", cases)])


def best(render: Callable[[], str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        render()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    run = build_run(args.failures)
    shipped = markdown.defuse
    results: dict[tuple[str, str], float] = {}
    shapes: dict[str, Callable[[], str]] = {
        f"check-run summary ({BUDGET:,} chars)":
            lambda: markdown.render_markdown(run, budget=BUDGET, heading_level=2),
        "whole report": lambda: markdown.render_markdown(run),
    }
    for _round in range(args.repeat):
        for contender, defuse in (("baseline", lambda text: text), ("Herald", shipped)):
            markdown.defuse = defuse  # type: ignore[assignment]
            for shape, render in shapes.items():
                took = best(render, 1)
                key = (shape, contender)
                results[key] = min(results.get(key, took), took)
    markdown.defuse = shipped  # type: ignore[assignment]
    print(f"{args.failures:,} failures of {args.failures * 10:,} tests, best of {args.repeat}")
    print(f"{'report':<34} {'baseline ms':>12} {'Herald ms':>10} {'Herald/baseline':>16}")
    for shape in shapes:
        base, ours = results[(shape, "baseline")], results[(shape, "Herald")]
        print(f"{shape:<34} {base * 1000:>12.1f} {ours * 1000:>10.1f} {ours / base:>15.2f}x")


if __name__ == "__main__":
    main()
