"""What a reader of the rendered Markdown would trip over, as checks the tests share."""

from __future__ import annotations

import re

#: What GitHub, GitLab, Bitbucket and Azure DevOps link, mention or reference from the text
#: of a comment, written as their documentation gives the forms (sources in the docstring of
#: `bot.reports.markdown`). Matched against text as a reader sees it: entities decoded,
#: backslash escapes gone.
FORGE_REFERENCE = re.compile(
    r"""
      @[\w"<{\[]                    # @user, @org/team, GitLab @"name", Azure @<guid> / @{...}
    | \#\w                           # #123, owner/repo#1, AB#123, PR #12, issue #12
    | ![\w"]                         # GitLab and Azure merge/pull requests: !123
    | [~%][\w"]                      # GitLab labels and milestones: ~bug ~"a b" %v1
    | [$&]\w                         # GitLab snippets and epics: $1 &7
    | \*iteration: | \[vulnerability:   # GitLab iterations and vulnerabilities
    | \b(?:[Gg][Hh]|[A-Z][A-Z0-9_]+)-\d  # GitHub GH-1; Jira keys and custom autolinks
    | \b[A-Za-z][A-Za-z0-9+.-]*://   # bare URLs (GFM autolinks)
    | \b[Ww]{3}\.                     # www.example.com (GFM autolinks)
    """,
    re.VERBOSE,
)


def live_references(seen: str) -> list[str]:
    """Every reference, mention or autolink a forge would make from `seen`, a text as
    shown (entities decoded); empty when the text is inert."""
    return [seen[match.start():match.end() + len(_NAME.match(seen, match.end())[0])]
            for match in FORGE_REFERENCE.finditer(seen)]


_NAME = re.compile(r"[\w./-]*")


def unescaped_pipes(line: str) -> int:
    """How many `|` in a table line separate cells: those not preceded by an odd number
    of backslashes (`\\|` is a literal pipe, `\\\\|` a literal backslash then a separator)."""
    count = 0
    backslashes = 0
    for char in line:
        if char == "\\":
            backslashes += 1
            continue
        if char == "|" and backslashes % 2 == 0:
            count += 1
        backslashes = 0
    return count


def table_lines(markdown: str, header: str) -> list[str]:
    """The lines of the table whose header row is `header`, header and delimiter included."""
    lines = markdown.split("\n")
    start = lines.index(header)
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table


def outside_code_blocks(markdown: str) -> list[str]:
    """The lines of `markdown` that are not inside a fenced code block."""
    kept: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        stripped = line.lstrip(" ")
        if fence is None and stripped.startswith("```"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
            continue
        if fence is not None:
            if stripped.rstrip() == fence:
                fence = None
            continue
        kept.append(line)
    return kept


def failure_items(markdown: str) -> list[str]:
    """The first line of each failure's list item (`- **name** — …`), in order."""
    lines = outside_code_blocks(markdown)
    start = next((i for i, line in enumerate(lines) if line.endswith(" Failed Tests")), None)
    if start is None:
        return []
    items = []
    for line in lines[start + 1:]:
        if line.endswith((" Flaky Tests", " Skipped Tests")) and line.startswith("#"):
            break
        if line.startswith("- **"):
            items.append(line)
    return items
