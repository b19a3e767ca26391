"""bot.repo_config: `.herald.yml`'s schema (every key, unknown keys, types, bounds), the
YAML read defensively (size, tags, aliases), every error with its line, and what a report
does with a file: the defaults when it is broken, and saying so."""

from __future__ import annotations

import pytest

from bot.repo_config import (
    DEFAULT_OPTIONS,
    DEFAULTS,
    MAX_ALIASES,
    MAX_FILE_BYTES,
    CommentMode,
    ConfigError,
    FailOn,
    Outcome,
    PublishOptions,
    RetestWho,
    Target,
    outcome_of,
    parse,
    publish_options,
)
from bot.reports.markdown import render_markdown
from bot.results.model import TestRun

EVERY_KEY = b"""\
version: 1
artifacts: [junit-*, "test-results/**"]
report:
  targets: [check, comment]
  comment: on_change
fail_on: regressions
flaky:
  min_failures: 3
  window_days: 30
slow:
  percent: 25
  seconds: 0.5
coalesce:
  quiet_seconds: 45
  expected_runs: 3
retest:
  who: nobody
"""


def error_of(text: bytes) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


# ---- the schema ---------------------------------------------------------------------------


def test_every_key_is_read() -> None:
    config = parse(EVERY_KEY)
    assert config.version == 1
    assert config.artifacts == ("junit-*", "test-results/**")
    assert config.report.targets == (Target.CHECK, Target.COMMENT)
    assert config.report.comment is CommentMode.ON_CHANGE
    assert config.fail_on is FailOn.REGRESSIONS
    assert (config.flaky.min_failures, config.flaky.window_days) == (3, 30)
    assert (config.slow.percent, config.slow.seconds) == (25.0, 0.5)
    assert (config.coalesce.quiet_seconds, config.coalesce.expected_runs) == (45.0, 3)
    assert config.retest.who is RetestWho.NOBODY


@pytest.mark.parametrize("text", [b"", b"# only a comment\n", b"version: 1\n", b"{}\n"])
def test_an_empty_file_is_the_defaults(text: bytes) -> None:
    assert parse(text) == DEFAULTS


def test_the_defaults_publish_as_herald_does_without_a_file() -> None:
    assert publish_options(Outcome()) == DEFAULT_OPTIONS == PublishOptions()
    assert DEFAULTS.artifacts is None  # the provider's configured patterns
    assert DEFAULTS.report.comment is None  # the forge's habit
    assert DEFAULTS.fail_on is FailOn.FAILURES


@pytest.mark.parametrize(
    ("word", "mode"),
    [("always", CommentMode.ALWAYS), ("on_failure", CommentMode.ON_FAILURE),
     ("on_change", CommentMode.ON_CHANGE), ("off", CommentMode.OFF), ('"off"', CommentMode.OFF)],
)
def test_every_comment_mode_including_a_bare_off(word: str, mode: CommentMode) -> None:
    # YAML 1.1 reads a bare `off` as false; the author meant the mode.
    assert parse(f"report:\n  comment: {word}\n".encode()).report.comment is mode


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"version: 1\nreport:\n  coment: off\n",
         ".herald.yml line 3: unknown key `report.coment`"),
        (b"fail-on: nothing\n", ".herald.yml line 1: unknown key `fail-on`"),
        (b"slow:\n  percent: 5\n  secs: 2\n", ".herald.yml line 3: unknown key `slow.secs`"),
        (b"retest:\n  who: nobody\n  users: [a]\n",
         ".herald.yml line 3: unknown key `retest.users`"),
    ],
)
def test_an_unknown_key_is_an_error_naming_its_line(text: bytes, expected: str) -> None:
    assert error_of(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"version: 2\n", "line 1: `version`: Input should be 1"),
        (b"version: '1'\n", "line 1: `version`: Input should be 1"),
        (b"fail_on: sometimes\n",
         "line 1: `fail_on`: Input should be 'failures', 'regressions' or 'nothing'"),
        (b"report:\n  comment: yes\n", "line 2: `report.comment`: Value error, write a mode"),
        (b"report:\n  targets: [check, status]\n",
         "line 2: `report.targets.1`: Input should be 'check', 'comment' or 'annotations'"),
        (b"report:\n  targets: []\n", "line 2: `report.targets`: Tuple should have at least 1"),
        (b"report:\n  targets: [check, check]\n",
         "line 2: `report.targets`: Value error, a target is named twice"),
        (b"artifacts: junit-*\n", "line 1: `artifacts`: Value error, write a list of patterns"),
        (b"artifacts: [5]\n", "line 1: `artifacts.0`: Input should be a valid string"),
        (b"artifacts: ['']\n", "line 1: `artifacts.0`: String should have at least 1"),
        (b"flaky:\n  min_failures: '3'\n",
         "line 2: `flaky.min_failures`: Input should be a valid integer"),
        (b"flaky:\n  min_failures: true\n",
         "line 2: `flaky.min_failures`: Input should be a valid integer"),
        (b"flaky:\n  window_days: 2.5\n",
         "line 2: `flaky.window_days`: Input should be a valid integer"),
        (b"slow:\n  seconds: .nan\n", "line 2: `slow.seconds`: Input should be a finite number"),
        (b"slow: fast\n", "line 1: `slow`: Input should be a valid dictionary"),
        (b"retest:\n  who: everyone\n",
         "line 2: `retest.who`: Input should be 'trusted' or 'nobody'"),
    ],
)
def test_a_wrong_type_or_word_is_an_error_naming_its_line(text: bytes, expected: str) -> None:
    assert error_of(text).startswith(f".herald.yml {expected}")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("flaky:\n  min_failures", "0", "greater than or equal to 1"),
        ("flaky:\n  min_failures", "1001", "less than or equal to 1000"),
        ("flaky:\n  window_days", "0", "greater than or equal to 1"),
        ("flaky:\n  window_days", "366", "less than or equal to 365"),
        ("slow:\n  percent", "0", "greater than 0"),
        ("slow:\n  percent", "100001", "less than or equal to 100000"),
        ("slow:\n  seconds", "-1", "greater than or equal to 0"),
        ("slow:\n  seconds", "86401", "less than or equal to 86400"),
        ("coalesce:\n  quiet_seconds", "-0.5", "greater than or equal to 0"),
        ("coalesce:\n  quiet_seconds", "3601", "less than or equal to 3600"),
        ("coalesce:\n  expected_runs", "-1", "greater than or equal to 0"),
        ("coalesce:\n  expected_runs", "1001", "less than or equal to 1000"),
    ],
)
def test_numbers_are_bounded(key: str, value: str, expected: str) -> None:
    message = error_of(f"{key}: {value}\n".encode())
    assert message.startswith(".herald.yml line 2: ")
    assert expected in message


def test_artifact_patterns_are_bounded_in_length_and_number() -> None:
    assert "at most 200" in error_of(b"artifacts: [" + b"x" * 201 + b"]\n")
    many = ", ".join(f"p{i}" for i in range(51)).encode()
    assert "at most 50" in error_of(b"artifacts: [" + many + b"]\n")


def test_several_errors_are_listed_each_with_its_line() -> None:
    message = error_of(b"fail_on: x\nreport:\n  comment: loud\nextra: 1\n")
    assert message.split("; ") == [
        ".herald.yml line 1: `fail_on`: Input should be 'failures', 'regressions' or 'nothing'",
        ".herald.yml line 3: `report.comment`: Input should be 'always', 'on_failure', "
        "'on_change' or 'off'",
        ".herald.yml line 4: unknown key `extra`",
    ]


def test_many_errors_are_counted_past_the_first_five() -> None:
    text = "".join(f"key{i}: 1\n" for i in range(9)).encode()
    message = error_of(text)
    assert message.count(".herald.yml line") == 5
    assert message.endswith("and 4 more errors")


# ---- hostile YAML -----------------------------------------------------------------------


def test_a_file_over_the_size_cap_is_refused_unparsed() -> None:
    assert error_of(b"#" * (MAX_FILE_BYTES + 1)) == (
        f".herald.yml is {MAX_FILE_BYTES + 1:,} bytes; at most {MAX_FILE_BYTES:,} are read"
    )


@pytest.mark.parametrize(
    "tag",
    [b"!!python/object/apply:os.system ['true']", b"!!python/name:os.system ''",
     b"!custom {a: 1}"],
)
def test_arbitrary_tags_are_refused_with_their_line(tag: bytes) -> None:
    message = error_of(b"version: 1\nfail_on: " + tag + b"\n")
    assert message.startswith(".herald.yml line 2: could not determine a constructor")


def test_a_billion_laughs_is_refused_for_its_expanded_size() -> None:
    lines = [b"a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [{', '.join(['*' + previous] * 5)}]".encode())
    assert error_of(b"\n".join(lines) + b"\n") == (
        ".herald.yml: more than 10,000 values once aliases are expanded"
    )


def test_aliases_are_bounded_in_number() -> None:
    text = b"a: &a x\nartifacts: [" + b", ".join([b"*a"] * (MAX_ALIASES + 1)) + b"]\n"
    assert error_of(text) == f".herald.yml line 2: more than {MAX_ALIASES} aliases"


def test_a_few_aliases_are_fine() -> None:
    text = b"artifacts: [&junit junit-*]\nreport:\n  comment: on_change\n"
    assert parse(text).artifacts == ("junit-*",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"report:\n  comment: off\nreport:\n  comment: always\n",
         ".herald.yml line 3: `report` is set twice"),
        (b"- check\n- comment\n",
         ".herald.yml line 1: the file must be a mapping of keys to values"),
        (b"report: [\n", ".herald.yml line 2: expected the node content, but found '<stream end>'"),
        (b"fail_on: nothing\n  oops: 1\n",
         ".herald.yml line 2: mapping values are not allowed here"),
        (b"\xff\xfe", ".herald.yml is not UTF-8 text (byte 0)"),
    ],
)
def test_malformed_files_are_errors_naming_the_line(text: bytes, expected: str) -> None:
    assert error_of(text) == expected


def test_a_reason_quoting_a_huge_value_is_cut() -> None:
    message = error_of(b"fail_on: " + b"x" * 5000 + b"\n")
    assert len(message) <= 300


# ---- what a report does with it ---------------------------------------------------------


def test_a_broken_file_gives_the_defaults_and_says_why() -> None:
    outcome = outcome_of(b"report:\n  coment: off\n", source="repository")
    assert outcome.config == DEFAULTS
    assert outcome.notices == (
        ".herald.yml line 2: unknown key `report.coment`; the defaults were used",
    )
    options = publish_options(outcome)
    assert (options.check, options.comment_enabled, options.gate) == (True, True, True)


def test_settings_not_applied_yet_are_said_not_silently_ignored() -> None:
    outcome = outcome_of(EVERY_KEY, source="organisation")
    assert outcome.notices == (
        ".herald.yml (the organisation's default): `flaky.window_days` is not applied yet: "
        "failures are counted over the history kept (HERALD_HISTORY_MAX_DAYS)",
    )


def test_regressions_without_a_base_gate_every_failure_and_say_why() -> None:
    outcome = outcome_of(b"fail_on: regressions\n", source="repository")
    options = publish_options(outcome, None)

    assert options.gate
    assert options.notices[-1].startswith("`fail_on: regressions`: no earlier run")


@pytest.mark.parametrize(
    ("text", "check", "annotations", "comment", "gate"),
    [
        (b"report: {comment: off}\n", True, True, False, True),
        (b"report: {targets: [comment]}\n", False, False, True, True),
        (b"report: {targets: [check, annotations]}\n", True, True, False, True),
        (b"fail_on: nothing\n", True, True, True, False),
    ],
)
def test_publish_options_follow_the_file(
    text: bytes, check: bool, annotations: bool, comment: bool, gate: bool
) -> None:
    options = publish_options(outcome_of(text, source="repository"))
    assert (options.check, options.annotations, options.comment_enabled, options.gate) == (
        check, annotations, comment, gate)


def test_a_notice_is_inert_in_the_markdown_report() -> None:
    hostile = outcome_of(b"'<img src=x onerror=alert(1)> @all [x](javascript:y)': 1\n",
                         source="repository")
    body = render_markdown(TestRun(id="run"), notices=hostile.notices)
    [line] = [line for line in body.splitlines() if line.startswith("Note: ")]
    assert "<img" not in line
    assert "\\[x\\](javascript" in line  # brackets escaped: no link
    assert "@\u2060all" in line  # no mention
    assert "unknown key" in line


def test_a_metric_cannot_be_better_both_ways() -> None:
    assert "`p95` is both higher and lower is better" in error_of(
        b"metrics:\n  higher: [p95]\n  lower: [p95, rss]\n")
