"""Per-repository configuration, `.herald.yml` at the repository's root: the schema, the
hostile-input-proof YAML reading, and what a report does with it.

One schema, declared once with pydantic (`RepoConfig`): types, bounds and allowed words,
unknown keys refused (a typo such as `coment:` must not be ignored silently). Every default
is today's behaviour, so a repository without the file sees no change.

The file is read through the forge at the head commit (`bot.ports.RepoFiles`, see
`read_repo_config`), cached by blob id, and parsed here with PyYAML's safe loader, after a
size cap, with a bound on aliases and on the document's expanded size (a "billion laughs"
file is a few hundred bytes). Every error names the line (`.herald.yml line 4: ...`):
pydantic's error location is walked back down the YAML node tree to the node's mark.

A file that cannot be used never costs the report: the report goes out with the defaults
and says, in the check or status and in the comment, why the file was not applied
(`Outcome.notices`). That covers a broken file, a file too large, and a forge error while
reading it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.compare import Comparison
from bot.logging import get_logger

FILE_NAME: Final = ".herald.yml"
#: Larger than any configuration needs by two orders of magnitude, and small enough that a
#: hostile one costs nothing to read, cache and parse.
MAX_FILE_BYTES: Final = 64 * 1024
#: Aliases a file may use: anchors keep a real file short; hundreds of them do not.
MAX_ALIASES: Final = 50
#: Nodes of the document once every alias is expanded: what validation walks through.
MAX_EXPANDED_NODES: Final = 10_000
#: One reason in the report: a pydantic message quoting a huge value is cut here.
MAX_REASON_CHARS: Final = 300
#: Errors listed per file; the rest are counted.
MAX_ERRORS_SHOWN: Final = 5

log = get_logger("herald.repo_config")


class CommentMode(StrEnum):
    ALWAYS = "always"
    ON_FAILURE = "on_failure"
    ON_CHANGE = "on_change"
    OFF = "off"


class FailOn(StrEnum):
    FAILURES = "failures"
    REGRESSIONS = "regressions"
    NOTHING = "nothing"


class Target(StrEnum):
    CHECK = "check"
    COMMENT = "comment"
    ANNOTATIONS = "annotations"


class RetestWho(StrEnum):
    TRUSTED = "trusted"
    NOBODY = "nobody"


class _Strict(BaseModel):
    """Every section: unknown keys are errors. Numbers are `Int` and `Number`, never
    coerced from text or booleans (a `"5"` is a mistake to name, not to guess at); words
    are the enums' values."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Int = Annotated[int, Strict()]
#: Strict, but an integer is a number too (`seconds: 2`).
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Pattern = Annotated[str, Strict(), Field(min_length=1, max_length=200)]


class Report(_Strict):
    """Where the report goes and when the sticky comment is written."""

    targets: tuple[Target, ...] = Field(
        default=(Target.CHECK, Target.COMMENT, Target.ANNOTATIONS),
        min_length=1,
        description="The surfaces written: `check` (GitHub check run, GitLab commit "
        "status), `comment` (the sticky PR comment / MR note), `annotations` (GitHub "
        "check annotations on the failing lines).",
    )
    comment: CommentMode | None = Field(
        default=None,
        description="When the sticky comment is written: `always`, `on_failure` (started "
        "only by a failing run, then kept up to date), `on_change` (written only when the "
        "set of failures or the status differs from what the comment says now), `off`. "
        "Unset: the forge's habit today (GitHub: `on_failure`, GitLab: `always`).",
    )

    @field_validator("targets", mode="before")
    @classmethod
    def _unique_targets(cls, value: Any) -> Any:
        if isinstance(value, list) and len(set(map(str, value))) != len(value):
            raise ValueError("a target is named twice")
        return tuple(value) if isinstance(value, list) else value

    @field_validator("comment", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false: that is what the author wrote.
        if value is False:
            return CommentMode.OFF.value
        if value is True:
            raise ValueError("write a mode: always, on_failure, on_change or off")
        return value


class Flaky(_Strict):
    """When a failure counts as known flaky (docs/history.md): it failed at least this
    often on the base branch within the history kept, and passed there too."""

    min_failures: Int = Field(default=2, ge=1, le=1_000,
                              description="Failed runs on the base branch within the window.")
    window_days: Int = Field(default=14, ge=1, le=365,
                             description="Not applied yet: failures are counted over the "
                             "history kept (`HERALD_HISTORY_MAX_DAYS`).")


class Slow(_Strict):
    """When a test is listed as slowed down: both thresholds must be passed."""

    percent: Number = Field(default=50.0, gt=0, le=100_000,
                           description="At least this many percent slower than the base "
                           "branch's recent median.")
    seconds: Number = Field(default=1.0, ge=0, le=86_400,
                           description="And at least this many seconds slower.")


class Coalesce(_Strict):
    """One report per commit (docs/coalescing.md); unset: the server's
    `HERALD_COALESCE_SECONDS` and `HERALD_COALESCE_EXPECTED_RUNS`."""

    quiet_seconds: Number | None = Field(
        default=None, ge=0, le=3_600,
        description="The runs of a commit make one report once none has arrived for this "
        "long; 0: each run is reported on its own.")
    expected_runs: Int | None = Field(
        default=None, ge=0, le=1_000,
        description="Or as soon as this many runs of the commit are in; 0: always wait "
        "out the quiet period.")


class Metrics(_Strict):
    """The run's performance metrics against the base branch's last run: which way each
    is better. A metric named in neither list is shown, never judged."""

    higher: tuple[Pattern, ...] = Field(
        default=(), max_length=100,
        description="Metrics for which more is better (`throughput`): listed when they fall.")
    lower: tuple[Pattern, ...] = Field(
        default=(), max_length=100,
        description="Metrics for which less is better (`p95_ms`): listed when they rise.")
    percent: Number = Field(default=5.0, gt=0, le=100_000,
                            description="Listed when worse by at least this many percent.")

    @field_validator("higher", "lower", mode="before")
    @classmethod
    def _names_to_tuple(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("write a list of metric names, such as [throughput]")
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _one_direction_each(self) -> Metrics:
        both = sorted(set(self.higher) & set(self.lower))
        if both:
            raise ValueError(f"`{both[0]}` is both higher and lower is better")
        return self


class Retest(_Strict):
    """Who may comment `/retest`."""

    who: RetestWho = Field(default=RetestWho.TRUSTED,
                           description="`trusted`: the forge's rule (write access, "
                           "Developer role); `nobody`: a `/retest` comment is answered "
                           "that it is turned off (GitHub's Re-run button on the check "
                           "stays the forge's).")


class RepoConfig(_Strict):
    """`.herald.yml`. Every default is what Herald does without the file."""

    version: Literal[1] = Field(default=1, description="The schema's version: 1.")
    artifacts: tuple[Pattern, ...] | None = Field(
        default=None,
        max_length=50,
        description="Artifact name patterns (shell globs) holding test reports, instead "
        "of the provider's configured ones. Unset: the configured ones.",
    )
    report: Report = Field(default_factory=Report, description="See `report.*`.")
    fail_on: FailOn = Field(
        default=FailOn.FAILURES,
        description="What fails the check: `failures` (any), `regressions` (only failures "
        "new since the base branch's last run; with no base run to compare with, every "
        "failure), `nothing` (the report is shown, the check does not fail).",
    )
    flaky: Flaky = Field(default_factory=Flaky, description="See `flaky.*`.")
    slow: Slow = Field(default_factory=Slow, description="See `slow.*`.")
    coalesce: Coalesce = Field(default_factory=Coalesce, description="See `coalesce.*`.")
    metrics: Metrics = Field(default_factory=Metrics, description="See `metrics.*`.")
    retest: Retest = Field(default_factory=Retest, description="See `retest.*`.")

    @field_validator("artifacts", mode="before")
    @classmethod
    def _list_to_tuple(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("write a list of patterns, such as [junit-*]")
        return tuple(value) if isinstance(value, list) else value


DEFAULTS: Final = RepoConfig()

#: Sections accepted and validated now, applied by work still to land: a file that sets
#: them is told so in the report rather than left believing they took effect.
NOT_YET_APPLIED: Final[tuple[str, ...]] = ()


class ConfigError(ValueError):
    """The file cannot be used; `str()` is what the report says (lines and reasons)."""


# ---- YAML, read defensively -------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """The safe loader (no arbitrary tags), counting the aliases it meets."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigError(
                    f"{FILE_NAME} line {mark.line + 1}: more than {MAX_ALIASES} aliases"
                )
        return super().compose_node(parent, index)  # type: ignore[no-untyped-call, no-any-return]


def _expanded_size(node: Node, seen: dict[int, int], budget: int) -> int:
    """Nodes under `node` with aliases expanded, stopping once past `budget`."""
    known = seen.get(id(node))
    if known is not None:
        return known
    size = 1
    children: Iterator[Node]
    if isinstance(node, MappingNode):
        children = (part for pair in node.value for part in pair)
    elif isinstance(node, SequenceNode):
        children = iter(node.value)
    else:
        children = iter(())
    for child in children:
        size += _expanded_size(child, seen, budget)
        if size > budget:
            break
    seen[id(node)] = size
    return size


def _duplicate_key(node: Node) -> tuple[Node, str] | None:
    """The first key written twice in one mapping: PyYAML would keep the last silently."""
    stack = [node]
    visited: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, MappingNode):
            keys: set[str] = set()
            for key, value in current.value:
                if isinstance(key, ScalarNode):
                    if key.value in keys:
                        return key, str(key.value)
                    keys.add(key.value)
                stack.extend((key, value))
        elif isinstance(current, SequenceNode):
            stack.extend(current.value)
    return None


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def _compose(text: str) -> Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()  # type: ignore[no-untyped-call, no-any-return]
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def _construct(node: Node) -> Any:
    loader = _Loader("")
    try:
        return loader.construct_document(node)  # type: ignore[no-untyped-call]
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def parse(data: bytes) -> RepoConfig:
    """The configuration a file holds; raises `ConfigError` naming the line and reason."""
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{FILE_NAME} is {len(data):,} bytes; at most {MAX_FILE_BYTES:,} are read"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{FILE_NAME} is not UTF-8 text (byte {exc.start})") from None
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        reason = exc.problem or exc.context or "not YAML"
        raise ConfigError(_clip(f"{FILE_NAME}{where}: {reason}")) from None
    except yaml.YAMLError as exc:
        raise ConfigError(_clip(f"{FILE_NAME}: not YAML ({exc})")) from None
    if node is None:
        return DEFAULTS  # an empty file (or only comments) asks for nothing
    if _expanded_size(node, {}, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
        raise ConfigError(
            f"{FILE_NAME}: more than {MAX_EXPANDED_NODES:,} values once aliases are expanded"
        )
    duplicate = _duplicate_key(node)
    if duplicate is not None:
        key_node, name = duplicate
        raise ConfigError(_clip(f"{FILE_NAME} line {_line(key_node)}: `{name}` is set twice"))
    if not isinstance(node, MappingNode):
        raise ConfigError(
            f"{FILE_NAME} line {_line(node)}: the file must be a mapping of keys to values"
        )
    try:
        document = _construct(node)
    except yaml.MarkedYAMLError as exc:
        # An unknown tag (`!!python/object`): the safe loader refuses to build it.
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(_clip(f"{FILE_NAME}{where}: {exc.problem or 'cannot be read'}")) \
            from None
    try:
        return RepoConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(_errors(exc, node)) from None


def _node_at(root: Node, loc: Sequence[int | str], *, key: bool) -> Node:
    """The YAML node pydantic's location `loc` names (its key's node when `key`), or the
    deepest one that exists on the way there."""
    node = root
    for part in loc:
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == str(part):
                    node = key_node if key and part == loc[-1] else value_node
                    break
            else:
                return node
        elif isinstance(node, SequenceNode) and isinstance(part, int) \
                and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _errors(exc: ValidationError, root: Node) -> str:
    lines: list[tuple[int, str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        unknown = error["type"] == "extra_forbidden"
        node = _node_at(root, loc, key=unknown)
        path = ".".join(str(part) for part in loc) or "(top level)"
        if unknown:
            reason = f"unknown key `{path}`"
        else:
            reason = f"`{path}`: {error['msg']}"
        lines.append((_line(node), _clip(f"{FILE_NAME} line {_line(node)}: {reason}")))
    # In the file's order, as its author reads it (pydantic's is the schema's).
    lines.sort(key=lambda item: item[0])
    shown = [text for _line_number, text in lines[:MAX_ERRORS_SHOWN]]
    if len(lines) > MAX_ERRORS_SHOWN:
        shown.append(f"and {len(lines) - MAX_ERRORS_SHOWN} more errors")
    return "; ".join(shown)


# ---- what a report does with it ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """The configuration a report uses, and what the report must say about it: why the
    file was not applied, or which of its settings are not applied yet."""

    config: RepoConfig = DEFAULTS
    notices: tuple[str, ...] = ()
    #: Where the configuration came from: `repository`, `organisation`, or None (defaults).
    source: str | None = None


def outcome_of(data: bytes, *, source: str) -> Outcome:
    """A file's bytes as the report applies them: a broken one gives the defaults and says
    why, never silently."""
    try:
        config = parse(data)
    except ConfigError as exc:
        return Outcome(notices=(f"{exc}; the defaults were used",), source=None)
    notices = []
    where = "" if source == "repository" else " (the organisation's default)"
    for name in NOT_YET_APPLIED:
        if getattr(config, name) != getattr(DEFAULTS, name):
            notices.append(f"{FILE_NAME}{where}: `{name}` is not applied yet")
    if config.flaky.window_days != DEFAULTS.flaky.window_days:
        notices.append(f"{FILE_NAME}{where}: `flaky.window_days` is not applied yet: "
                       "failures are counted over the history kept (HERALD_HISTORY_MAX_DAYS)")
    return Outcome(config=config, notices=tuple(notices), source=source)


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """What a forge target publishes, as the repository's configuration decides it.
    The defaults are today's behaviour on every forge."""

    check: bool = True
    annotations: bool = True
    comment_enabled: bool = True
    #: None: the forge's habit (see `Report.comment`).
    comment: CommentMode | None = None
    #: `fail_on: nothing`: failures are shown but do not fail the check or status.
    gate: bool = True
    #: Sentences the report must carry (a broken `.herald.yml`, a setting not applied).
    notices: tuple[str, ...] = field(default=())


DEFAULT_OPTIONS: Final = PublishOptions()


def publish_options(outcome: Outcome, comparison: Comparison | None = None) -> PublishOptions:
    """What the forge publishes; `comparison` (the run against its base) decides the gate
    of `fail_on: regressions`."""
    config = outcome.config
    targets = set(config.report.targets)
    comment = config.report.comment
    options = PublishOptions(
        check=Target.CHECK in targets,
        annotations=Target.ANNOTATIONS in targets,
        comment_enabled=Target.COMMENT in targets and comment is not CommentMode.OFF,
        comment=comment,
        gate=config.fail_on is not FailOn.NOTHING,
        notices=outcome.notices,
    )
    if config.fail_on is FailOn.REGRESSIONS:
        return _regressions(options, comparison)
    return options


def _regressions(options: PublishOptions, found: Comparison | None) -> PublishOptions:
    """`fail_on: regressions`: only failures new since the base fail the check. Without a
    base to compare with, every failure is new: the strict reading hides nothing."""
    if found is None or found.base is None:
        return dataclasses.replace(options, notices=(*options.notices, (
            "`fail_on: regressions`: no earlier run of this workflow on the base branch to "
            "compare with, so every failure fails the check")))
    if found.failures and not found.regressions:
        return dataclasses.replace(options, gate=False, notices=(*options.notices, (
            f"`fail_on: regressions`: every failure was failing on {found.base.branch} "
            "already, so the check does not fail on them")))
    return options


# ---- the schema as documentation (docs/repo-config.md) ----------------------------------

DOC_PATH: Final = "docs/repo-config.md"
DOC_BEGIN: Final = "<!-- repo-config schema -->\n"
DOC_END: Final = "<!-- end of schema: written by `python -m bot.repo_config --write` -->"


def _bounds(info: FieldInfo) -> str:
    words = []
    for item in info.metadata:
        for name, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"),
                           ("min_length", "at least"), ("max_length", "at most")):
            value = getattr(item, name, None)
            if value is not None:
                words.append(f"{sign} {value:,}" if isinstance(value, int | float)
                             else f"{sign} {value}")
    return ", ".join(words)


def _kind(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = [a for a in get_args(annotation) if a is not type(None)]
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in get_args(annotation))
    if origin is Annotated:
        inner = get_args(annotation)[0]
        bounds = [b for b in (_bounds(FieldInfo.from_annotation(annotation)),) if b]
        return _kind(inner) + (f" ({bounds[0]} chars)" if bounds and inner is str else "")
    if origin is tuple:
        return f"list of {_kind(args[0])}"
    if origin in (Union, UnionType) and len(args) == 1:
        return _kind(args[0])
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return ", ".join(f"`{member.value}`" for member in annotation)
    return {int: "integer", float: "number", str: "text"}.get(annotation, str(annotation))


def _default(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rows(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _rows(annotation, f"{prefix}{name}.")
            continue
        bounds = _bounds(info)
        kind = _kind(annotation) + (f", {bounds}" if bounds else "")
        text = (info.description or "").replace("|", "\\|")
        yield f"| `{prefix}{name}` | {kind} | `{_default(info)}` | {text} |"


def schema_table() -> str:
    """The table of every key of `.herald.yml`, written into docs/repo-config.md."""
    head = ["| key | value | default | meaning |", "|---|---|---|---|"]
    return "\n".join([*head, *_rows(RepoConfig, "")]) + "\n"


def _with_table(text: str) -> str:
    start = text.index(DOC_BEGIN) + len(DOC_BEGIN)
    end = text.index(DOC_END, start)
    return text[:start] + schema_table() + text[end:]


def main(argv: Sequence[str]) -> int:
    """`--write` rewrites the table in docs/repo-config.md; `--check` fails when it is out
    of date."""
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / DOC_PATH
    text = path.read_text(encoding="utf-8")
    if list(argv) == ["--write"]:
        path.write_text(_with_table(text), encoding="utf-8")
        return 0
    if list(argv) == ["--check"]:
        if _with_table(text) != text:
            print(f"{DOC_PATH}: schema table out of date; "
                  "run `python -m bot.repo_config --write`", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m bot.repo_config --write | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
