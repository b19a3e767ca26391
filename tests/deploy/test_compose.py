"""deploy/compose.yml and the env file it references: parsed, complete, known settings only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.config import known_variables

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EXAMPLE = DEPLOY / "herald.env.example"
#: `KEY=value`, also commented out (`# KEY=value`: an optional provider's settings).
ASSIGNMENT = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yml").read_text(encoding="utf-8"))
    return data


def example() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match:
            pairs[match.group(1)] = match.group(2)
    return pairs


def test_compose_parses_and_herald_services_read_the_env_file_beside_it() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "web", "worker"}
    for name in ("web", "worker"):
        assert services[name]["env_file"] == ["herald.env"]
        assert services[name]["environment"]["HERALD_REDIS_URL"] == "redis://redis:6379/0"


def test_the_example_sets_only_variables_herald_knows() -> None:
    names = set(example())
    assert names, "the example sets nothing"
    assert sorted(names - known_variables()) == []


def test_the_example_leaves_redis_to_compose_and_holds_no_real_secret() -> None:
    pairs = example()
    assert "HERALD_REDIS_URL" not in pairs  # compose.yml points it at its own Redis
    for name, value in pairs.items():
        if "FILE" not in name and any(word in name for word in ("SECRET", "TOKEN", "KEY")):
            assert value.startswith("replace-with-"), name
    assert not any(value.startswith(("'", '"')) for value in pairs.values())


def test_the_key_file_the_example_names_is_the_secret_compose_mounts() -> None:
    key_file = example()["HERALD_GITHUB_PRIVATE_KEY_FILE"]
    secrets = compose()["secrets"]
    assert key_file.removeprefix("/run/secrets/") in secrets
    for name in ("web", "worker"):
        assert compose()["services"][name]["secrets"] == [key_file.removeprefix("/run/secrets/")]


def test_the_real_env_files_are_kept_out_of_git() -> None:
    ignored = (DEPLOY.parent / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "deploy/herald.env" in ignored and "deploy/github-app.pem" in ignored
