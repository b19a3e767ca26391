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
