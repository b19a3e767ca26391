"""Settings: the one reader of the environment; secrets rotate, come from files, never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import ConfigError, Secret, Settings, env_name


@pytest.mark.parametrize(
    ("provider", "key", "variable"),
    [
        ("github", "webhook_secret", "HERALD_GITHUB_WEBHOOK_SECRET"),
        ("azure-devops", "webhook_secret", "HERALD_AZURE_DEVOPS_WEBHOOK_SECRET"),
        ("gitlab", "token_FILE", "HERALD_GITLAB_TOKEN_FILE"),
    ],
)
def test_provider_variables_follow_one_pattern(provider: str, key: str, variable: str) -> None:
    assert env_name(provider, key) == variable


def test_a_rotating_secret_is_a_comma_separated_list() -> None:
    settings = Settings.from_env({"HERALD_GITHUB_WEBHOOK_SECRET": "new, old,,"})
    assert [s.reveal() for s in settings.provider("github").webhook_secrets()] == ["new", "old"]


def test_a_secret_can_come_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    settings = Settings.from_env({"HERALD_GITLAB_WEBHOOK_SECRET_FILE": str(secret_file)})
    assert [s.reveal() for s in settings.provider("gitlab").webhook_secrets()] == ["from-file"]


def test_an_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    settings = Settings.from_env({"HERALD_GITLAB_WEBHOOK_SECRET_FILE": str(tmp_path / "gone")})
    with pytest.raises(ConfigError, match="HERALD_GITLAB_WEBHOOK_SECRET_FILE"):
        settings.provider("gitlab").webhook_secrets()


def test_no_secret_configured_is_an_empty_list() -> None:
    assert Settings.from_env({}).provider("circleci").webhook_secrets() == []


def test_secrets_and_credentials_never_show_in_a_repr() -> None:
    assert "hunter2" not in repr(Secret("hunter2"))
    assert "hunter2" not in str(Secret("hunter2"))
    settings = Settings.from_env(
        {"HERALD_REDIS_URL": "redis://:hunter2@redis:6379/0", "HERALD_GITHUB_WEBHOOK_SECRET": "x"}
    )
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HERALD_MAX_BODY_BYTES": "lots"}, "HERALD_MAX_BODY_BYTES must be a whole number"),
        ({"HERALD_MAX_BODY_BYTES": "0"}, "HERALD_MAX_BODY_BYTES must be positive"),
    ],
)
def test_malformed_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ)


def test_redis_url_is_read_from_either_variable() -> None:
    assert Settings.from_env({"REDIS_URL": "redis://a"}).redis_url == "redis://a"
    both = {"REDIS_URL": "redis://a", "HERALD_REDIS_URL": "redis://b"}
    assert Settings.from_env(both).redis_url == "redis://b"


@pytest.mark.parametrize(("raw", "expected"), [(None, 300.0), ("120", 120.0), ("2.5", 2.5)])
def test_the_job_timeout_has_one_reading(raw: str | None, expected: float) -> None:
    environ = {} if raw is None else {"HERALD_JOB_TIMEOUT_SECONDS": raw}
    assert Settings.from_env(environ).job_timeout_seconds() == expected


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "inf"])
def test_a_bad_job_timeout_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_JOB_TIMEOUT_SECONDS"):
        Settings.from_env({"HERALD_JOB_TIMEOUT_SECONDS": raw}).job_timeout_seconds()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HERALD_JOB_MAX_TRIES": "many"}, "HERALD_JOB_MAX_TRIES must be a whole number"),
        ({"HERALD_JOB_MAX_TRIES": "0"}, "HERALD_JOB_MAX_TRIES must be at least 1"),
        ({"HERALD_WORKER_CONCURRENCY": "0"}, "HERALD_WORKER_CONCURRENCY must be at least 1"),
        ({"HERALD_WORKER_POLL_SECONDS": "often"}, "HERALD_WORKER_POLL_SECONDS must be a number"),
        ({"HERALD_WORKER_POLL_SECONDS": "0"}, "HERALD_WORKER_POLL_SECONDS must be a positive"),
    ],
)
def test_worker_settings_that_are_wrong_name_their_variable(
    environ: dict[str, str], message: str
) -> None:
    from bot.worker import WorkerConfig

    with pytest.raises(ConfigError, match=message):
        WorkerConfig.from_settings(Settings.from_env(environ))


def test_the_worker_and_the_handlers_read_max_tries_alike() -> None:
    from bot.worker import WorkerConfig

    settings = Settings.from_env({"HERALD_JOB_MAX_TRIES": "7"})
    assert WorkerConfig.from_settings(settings).max_tries == settings.job_max_tries() == 7
    assert Settings.from_env({}).job_max_tries() == 5


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, 256 * 1024 * 1024),
        ({"HERALD_MAX_BUFFERED_BYTES": "1_073_741_824"}, 1024**3),
        ({"HERALD_MAX_BODY_BYTES": "100", "HERALD_MAX_BUFFERED_BYTES": "100"}, 100),
    ],
)
def test_the_buffered_bytes_budget_is_read(environ: dict[str, str], expected: int) -> None:
    assert Settings.from_env(environ).max_buffered_bytes() == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HERALD_MAX_BUFFERED_BYTES": "plenty"}, "HERALD_MAX_BUFFERED_BYTES must be a whole"),
        ({"HERALD_MAX_BUFFERED_BYTES": "0"}, "HERALD_MAX_BUFFERED_BYTES must be at least 1"),
        ({"HERALD_MAX_BUFFERED_BYTES": "1000"},
         r"HERALD_MAX_BUFFERED_BYTES \(1000\) must be at least HERALD_MAX_BODY_BYTES"),
    ],
)
def test_a_wrong_buffered_bytes_budget_names_its_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(environ).max_buffered_bytes()


@pytest.mark.parametrize(("raw", "expected"), [(None, 10.0), ("2.5", 2.5), ("300", 300.0)])
def test_the_header_timeout_is_read(raw: str | None, expected: float) -> None:
    environ = {} if raw is None else {"HERALD_HEADER_TIMEOUT_SECONDS": raw}
    assert Settings.from_env(environ).header_timeout_seconds() == expected


@pytest.mark.parametrize("raw", ["slow", "0", "-1", "301", "inf", "nan"])
def test_a_wrong_header_timeout_names_its_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_HEADER_TIMEOUT_SECONDS"):
        Settings.from_env({"HERALD_HEADER_TIMEOUT_SECONDS": raw}).header_timeout_seconds()


# ---- the schema: every variable once, refused at start with its name ------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HERALD_BODY_TIMEOUT_SECONDS": "-1"},
         "HERALD_BODY_TIMEOUT_SECONDS must be a positive number, not '-1'"),
        ({"HERALD_BODY_TIMEOUT_SECONDS": "NaN"},
         "HERALD_BODY_TIMEOUT_SECONDS must be a finite number, not 'NaN'"),
        ({"HERALD_RETRY_AFTER_SECONDS": "-30"},
         "HERALD_RETRY_AFTER_SECONDS must be at least 1, not '-30'"),
        ({"HERALD_SECRETS_CACHE_SECONDS": "-5"},
         "HERALD_SECRETS_CACHE_SECONDS must be at least 0, not '-5'"),
        ({"HERALD_LOG_LEVEL": "verbose"},
         "HERALD_LOG_LEVEL must be one of 'debug', 'info', 'warning' or 'error', not 'verbose'"),
        ({"HERALD_LOG_FORMAT": "xml"},
         "HERALD_LOG_FORMAT must be one of 'console' or 'json', not 'xml'"),
        ({"HERALD_REDIS_URL": "http://redis:6379/0"},
         "HERALD_REDIS_URL must be a redis://, rediss://, unix:// or redis+sentinel:// URL, not http://…"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL (read as HERALD_REDIS_URL) must be a redis://"),
    ],
)
def test_the_issues_bad_values_are_refused_naming_the_variable(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(environ)
    assert str(refused.value) == message or str(refused.value).startswith(message)


def test_every_wrong_variable_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"HERALD_LOG_LEVEL": "loud", "HERALD_GITLAB_WORKERS": "0",
                           "HERALD_GITHUB_APP_ID": "my-app"})
    assert str(refused.value).splitlines() == [
        "HERALD_LOG_LEVEL must be one of 'debug', 'info', 'warning' or 'error', not 'loud'",
        "HERALD_GITHUB_APP_ID must be the App's numeric id, not 'my-app'",
        "HERALD_GITLAB_WORKERS must be at least 1, not '0'",
    ]


def test_the_defaults() -> None:
    config = Settings.from_env({}).config
    assert (config.redis_url, config.state_dir, config.queue_name) == (
        None, Path(".herald"), "herald:queue")
    assert (config.log_format, config.log_level) == ("console", "info")
    assert (config.max_body_bytes, config.max_buffered_bytes) == (25 * 2**20, 256 * 2**20)
    assert (config.body_timeout_seconds, config.header_timeout_seconds) == (10.0, 10.0)
    assert (config.retry_after_seconds, config.secrets_cache_seconds) == (30, 5.0)
    assert (config.job_timeout_seconds, config.job_max_tries) == (300.0, 5)
    assert (config.worker_concurrency, config.worker_poll_seconds,
            config.worker_shutdown_grace_seconds) == (10, 0.01, 25)
    assert (config.github.api_url, config.github.request_timeout) == (
        "https://api.github.com", 15.0)
    assert (config.gitlab.url, config.gitlab.timeout, config.gitlab.workers) == (
        "https://gitlab.com", 15.0, 8)
    assert config.travis.api_url == "https://api.travis-ci.com"


def test_logs_are_json_by_default_on_ci_and_a_level_may_be_upper_case() -> None:
    assert Settings.from_env({"CI": "true"}).log_format == "json"
    assert Settings.from_env({"CI": "true", "HERALD_LOG_FORMAT": "console"}).log_format == (
        "console")
    assert Settings.from_env({"HERALD_LOG_LEVEL": "DEBUG"}).log_level == "debug"


@pytest.mark.parametrize(
    ("environ", "accepted"),
    [
        ({"HERALD_HEADER_TIMEOUT_SECONDS": "300"}, True),
        ({"HERALD_HEADER_TIMEOUT_SECONDS": "300.5"}, False),
        ({"HERALD_SECRETS_CACHE_SECONDS": "0"}, True),  # re-read for every delivery
        ({"HERALD_RETRY_AFTER_SECONDS": "0"}, False),
        ({"HERALD_RETRY_AFTER_SECONDS": "1.5"}, False),  # a header of whole seconds
        ({"HERALD_ARTIFACT_RATIO_GRACE_BYTES": "0"}, True),
        ({"HERALD_ARTIFACT_MAX_DEPTH": "0"}, False),
        ({"HERALD_WORKER_POLL_SECONDS": "inf"}, False),
        ({"HERALD_QUEUE_NAME": ""}, True),  # blank is unset: the default queue
        ({"HERALD_REDIS_URL": "unix:///run/redis.sock"}, True),
        ({"HERALD_REDIS_URL": "rediss://:pw@redis.example:6380/1"}, True),
        ({"HERALD_REDIS_URL": "redis://"}, False),
        ({"HERALD_GITLAB_URL": "https://gitlab.example.com/"}, True),
        ({"HERALD_TRAVIS_API_URL": "api.travis-ci.com"}, False),
        ({"HERALD_GITHUB_REQUEST_TIMEOUT": "30", "HERALD_JOB_TIMEOUT_SECONDS": "30"}, False),
        # a short job timeout alone does not refuse providers nobody configured
        ({"HERALD_JOB_TIMEOUT_SECONDS": "10"}, True),
        ({"HERALD_JOB_TIMEOUT_SECONDS": "10", "HERALD_GITLAB_TOKEN": "t"}, False),
    ],
)
def test_bounds(environ: dict[str, str], accepted: bool) -> None:
    if accepted:
        Settings.from_env(environ)
    else:
        with pytest.raises(ConfigError, match=next(iter(environ)).replace("HERALD_", "")):
            Settings.from_env(environ)


@pytest.mark.parametrize("provider", ["GITLAB", "BITBUCKET", "AZURE_DEVOPS", "JENKINS"])
def test_a_provider_timeout_as_long_as_the_job_is_refused_by_name(provider: str) -> None:
    environ = {f"HERALD_{provider}_TOKEN": "t", "HERALD_JOB_TIMEOUT_SECONDS": "10",
               f"HERALD_{provider}_TIMEOUT": "10"}
    with pytest.raises(ConfigError, match=f"HERALD_{provider}_TIMEOUT .* must be shorter"):
        Settings.from_env(environ)


def test_urls_lose_a_trailing_slash() -> None:
    config = Settings.from_env({"HERALD_GITLAB_URL": "https://gitlab.example.com/"}).config
    assert config.gitlab.url == "https://gitlab.example.com"


SECRETS = {
    "HERALD_REDIS_URL": "redis://:hunter2-redis@redis:6379/0",
    "HERALD_GITHUB_WEBHOOK_SECRET": "hunter2-webhook",
    "HERALD_GITHUB_PRIVATE_KEY": "hunter2-key",
    "HERALD_GITLAB_TOKEN": "hunter2-token",
}


def test_secrets_are_masked_in_the_validated_config() -> None:
    settings = Settings.from_env(SECRETS)
    shown = repr(settings.config) + str(settings.config) + repr(settings)
    assert "hunter2" not in shown
    assert settings.config.github.webhook_secret is not None
    assert settings.config.github.webhook_secret.get_secret_value() == "hunter2-webhook"


def test_a_refused_secret_is_not_quoted_nor_kept_in_the_exception_chain() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**SECRETS, "HERALD_REDIS_URL": "http://:hunter2-redis@redis:6379/0",
                           "HERALD_GITLAB_TIMEOUT": "soon"})
    assert "hunter2" not in str(refused.value)
    assert "HERALD_REDIS_URL" in str(refused.value)
    # pydantic's own error (which quotes every input) must not ride along in a traceback
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_a_secret_file_is_declared_but_read_only_when_used(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n...\n")
    environ = {"HERALD_GITHUB_PRIVATE_KEY_FILE": str(key)}
    settings = Settings.from_env(environ)
    assert settings.config.github.private_key_file == key
    assert settings.unknown_variables() == []
    secret = settings.provider("github").secret("private_key")
    assert secret is not None and secret.reveal() == "-----BEGIN PRIVATE KEY-----\n..."
    key.write_text("rotated\n")  # no restart needed: the file is read again when used
    assert [s.reveal() for s in settings.provider("github").secrets("private_key")] == ["rotated"]


def test_a_typo_in_a_variable_is_reported_with_the_name_meant() -> None:
    settings = Settings.from_env({"HERALD_GITHUB_WEBHOOK_SECERT": "s", "HERALD_LOGLEVEL": "x",
                                  "HERALD_FROBNICATE": "1", "PATH": "/bin"})
    assert settings.unknown_variables() == [
        "HERALD_FROBNICATE is not a Herald setting and is ignored",
        "HERALD_GITHUB_WEBHOOK_SECERT is not a Herald setting and is ignored; "
        "did you mean HERALD_GITHUB_WEBHOOK_SECRET?",
        "HERALD_LOGLEVEL is not a Herald setting and is ignored; "
        "did you mean HERALD_LOG_LEVEL?",
    ]


def test_a_registered_providers_variables_are_not_unknown() -> None:
    settings = Settings.from_env({"HERALD_HMAC_TEST_WEBHOOK_SECRET": "s",
                                  "HERALD_GITHUB_WEBHOOK_SECERT": "s"})
    # registering a built-in name again must not hide typos of its variables
    assert settings.unknown_variables(["hmac-test", "github"]) == [
        "HERALD_GITHUB_WEBHOOK_SECERT is not a Herald setting and is ignored; "
        "did you mean HERALD_GITHUB_WEBHOOK_SECRET?",
    ]


def test_unknown_variables_are_warned_about_at_start() -> None:
    from structlog.testing import capture_logs

    from bot.commands.serve import warn_unknown_settings

    with capture_logs() as logs:
        warn_unknown_settings(Settings.from_env({"HERALD_GITHUB_WEBHOOK_SECERT": "s"}))
    assert [(log["log_level"], log["event"]) for log in logs] == [
        ("warning", "HERALD_GITHUB_WEBHOOK_SECERT is not a Herald setting and is ignored; "
                    "did you mean HERALD_GITHUB_WEBHOOK_SECRET?"),
    ]


@pytest.mark.parametrize("command", ["serve", "web", "worker"])
def test_a_command_stops_at_a_bad_value_with_the_message_and_no_traceback(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.setenv("HERALD_REDIS_URL", "http://:hunter2@redis:6379/0")
    monkeypatch.setenv("HERALD_LOG_LEVEL", "verbose")
    assert main([command]) == 2
    output = capsys.readouterr()
    assert output.out.splitlines() == [
        f"herald {command}: HERALD_REDIS_URL must be a redis://, rediss://, unix:// or "
        "redis+sentinel:// URL, not http://…",
        f"herald {command}: HERALD_LOG_LEVEL must be one of 'debug', 'info', 'warning' or "
        "'error', not 'verbose'",
    ]
    assert "Traceback" not in output.err and "hunter2" not in output.out + output.err


# ---- one table: the schema covers every provider and every variable the code names ---------


ROOT = Path(__file__).resolve().parent.parent


def test_every_provider_with_a_webhook_or_a_client_has_a_section() -> None:
    import providers
    from bot.config import provider_sections

    # The Local provider has a client and no webhook parser.
    assert set(provider_sections()) == set(providers.BUILTIN) | set(providers.CLIENTS)


def test_every_herald_variable_the_code_or_docs_name_is_declared() -> None:
    import re

    from bot.config import known_variables

    # HERALD_TOKEN is a Jenkinsfile's own variable in docs/webhooks.md, not Herald's
    outside = {"HERALD_TOKEN"}
    files = [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py"),
             *ROOT.glob("providers/**/*.py"), ROOT / "README.md", *ROOT.glob("docs/*.md")]
    named = {
        (path.relative_to(ROOT).as_posix(), name)
        for path in files
        # a name followed by `<` or ending in `_` is a pattern (`HERALD_<PROVIDER>_...`)
        for name in re.findall(r"HERALD_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_<*])", path.read_text())
    }
    undeclared = {(path, name) for path, name in named
                  if name not in known_variables() | outside}
    assert undeclared == set()


def test_schema_defaults_are_the_ones_the_code_falls_back_to() -> None:
    from bot.app import AppConfig
    from bot.artifacts import ArtifactLimits
    from bot.isolation import ParseLimits
    from bot.worker import WorkerConfig
    from handlers.report import DEFAULT_ARTIFACT_PATTERNS
    from providers.github.api import DEFAULT_TIMEOUT as GITHUB_TIMEOUT
    from providers.github.client import DEFAULT_API_URL as GITHUB_API
    from providers.gitlab.api import DEFAULT_TIMEOUT as GITLAB_TIMEOUT
    from providers.gitlab.api import DEFAULT_WORKERS
    from providers.gitlab.client import DEFAULT_URL
    from providers.travis.keys import DEFAULT_API_URL as TRAVIS_API

    settings = Settings.from_env({})
    config = settings.config
    assert ArtifactLimits.from_settings(settings) == ArtifactLimits()
    assert ParseLimits.from_settings(settings) == ParseLimits()
    assert WorkerConfig.from_settings(settings) == WorkerConfig()
    assert AppConfig.from_settings(settings) == AppConfig(max_body_bytes=config.max_body_bytes)
    assert (config.github.api_url, config.github.request_timeout) == (
        GITHUB_API, GITHUB_TIMEOUT.read)
    assert (config.gitlab.url, config.gitlab.timeout, config.gitlab.workers) == (
        DEFAULT_URL, GITLAB_TIMEOUT, DEFAULT_WORKERS)
    assert config.travis.api_url == TRAVIS_API
    shown = type(config.github).model_fields["artifact_patterns"].json_schema_extra
    assert isinstance(shown, dict)
    assert shown["shown_default"] == ", ".join(f"`{p}`" for p in DEFAULT_ARTIFACT_PATTERNS)


def test_the_docs_tables_are_the_schemas() -> None:
    from bot.config import drifted

    # on failure: python -m bot.config --write
    assert drifted(ROOT) == []


def test_a_stale_table_is_rewritten_and_the_prose_around_it_kept() -> None:
    from bot.config import END, render, table

    stale = f"Intro.\n\n<!-- settings: artifacts -->\n| old | table |\n{END}\n\nOutro.\n"
    assert render(stale) == (
        f"Intro.\n\n<!-- settings: artifacts -->\n{table(['artifacts'])}{END}\n\nOutro.\n"
    )
    assert render(render(stale)) == render(stale)


def test_the_generator_checks_writes_and_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.config import DOCS, END, _main

    for name in DOCS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    limits = tmp_path / "docs/limits.md"
    limits.write_text(limits.read_text().replace(END, "| a row the schema lacks |\n" + END))
    monkeypatch.chdir(tmp_path)

    assert _main(["--check"]) == 1
    assert "docs/limits.md: settings table out of date" in capsys.readouterr().err
    assert _main(["--write"]) == 0
    assert limits.read_text() == (ROOT / "docs/limits.md").read_text()
    assert _main(["--check"]) == 0
    assert _main(["--markdown"]) == 0
    assert "| `HERALD_TEAMCITY_WEBHOOK_SECRET` |" in capsys.readouterr().out
    assert _main([]) == 2
