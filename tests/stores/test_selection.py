"""Which store a provider's artifacts go to, and the flat names forges are given."""

from __future__ import annotations

from pathlib import Path

import pytest

import herald
from bot.artifact_store import DirectoryStore
from providers.azure_devops.store import AzureDevOpsStore
from providers.bitbucket.store import BitbucketStore
from providers.gitlab.store import GitLabStore
from providers.stores import flat_name

TOKENS = {"HERALD_GITLAB_TOKEN": "glpat-x", "HERALD_BITBUCKET_TOKEN": "bb-x",
          "HERALD_AZURE_DEVOPS_TOKEN": "pat-x"}


@pytest.mark.parametrize(("name", "config", "kind"), [
    ("gitlab", {"project_id": "48213"}, GitLabStore),
    ("gitlab", {"repository": "platform/herald"}, GitLabStore),
    ("bitbucket", {"repository": "acme-eng/checkout-service"}, BitbucketStore),
    ("azure-devops", {"repository": "contoso/Payments"}, AzureDevOpsStore),
])
async def test_a_forge_with_a_token_keeps_artifacts_itself(
        name: str, config: dict[str, str], kind: type, tmp_path: Path) -> None:
    store = herald.create_artifact_store(
        name, config, environ={**TOKENS, "HERALD_STATE_DIR": str(tmp_path)})

    assert isinstance(store, kind)
    await store.aclose()


@pytest.mark.parametrize("name", ["gitlab", "bitbucket", "azure-devops"])
def test_a_forge_without_a_token_leaves_artifacts_to_herald(name: str, tmp_path: Path) -> None:
    store = herald.create_artifact_store(name, {"repository": "a/b"},
                                         environ={"HERALD_STATE_DIR": str(tmp_path)})

    assert isinstance(store, DirectoryStore)


@pytest.mark.parametrize("name", ["github", "jenkins", "circleci", "travis", "teamcity",
                                  "local"])
def test_every_other_provider_leaves_artifacts_to_herald(name: str, tmp_path: Path) -> None:
    store = herald.create_artifact_store(
        name, environ={**TOKENS, "HERALD_STATE_DIR": str(tmp_path)})

    assert isinstance(store, DirectoryStore)


@pytest.mark.parametrize(("name", "config", "says"), [
    ("gitlab", {}, "needs project_id or repository"),
    ("bitbucket", {}, "needs repository"),
    ("bitbucket", {"repository": "no-slash"}, "is not `owner/name`"),
    ("azure-devops", {"repository": "contoso/a/b"}, "is not `owner/name`"),
])
def test_a_token_without_the_place_to_store_is_refused_by_name(
        name: str, config: dict[str, str], says: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=says):
        herald.create_artifact_store(name, config,
                                     environ={**TOKENS, "HERALD_STATE_DIR": str(tmp_path)})


@pytest.mark.parametrize(("first", "second"), [
    (("a/b",), ("a_2fb",)),
    (("a_b",), ("a_5fb",)),
    (("run", "x/y"), ("run__x", "y")),
    (("run/x", "y"), ("run", "x/y")),
    (("café",), ("cafe",)),
])
def test_different_names_never_flatten_to_one(first: tuple[str, ...],
                                              second: tuple[str, ...]) -> None:
    assert flat_name(*first) != flat_name(*second)


def test_a_flat_name_keeps_only_what_every_forge_takes() -> None:
    flat = flat_name("4711", "shots/@user #123 <x>.png")

    assert flat == "4711__shots_2f_40user_20_23123_20_3cx_3e.png"
    assert set(flat) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
