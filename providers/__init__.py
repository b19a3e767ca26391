"""Providers: one module per CI system, an explicit registry that refuses duplicates.

`providers.BUILTIN` is the one list of every provider Herald ships; `register` adds a
custom one under a new name, `get` returns the pure parser for a name.
"""

from __future__ import annotations

import importlib
from typing import Any

from bot.ports import SecretSource, UnknownProvider
from bot.settings import ProviderSettings
from providers.base import Provider

#: name -> "module:Class" of every built-in provider, imported on first use.
BUILTIN: dict[str, str] = {
    "github": "providers.github:GitHubProvider",
    "gitlab": "providers.gitlab:GitLabProvider",
    "bitbucket": "providers.bitbucket:BitbucketProvider",
    "azure-devops": "providers.azure_devops:AzureDevOpsProvider",
    "circleci": "providers.circleci:CircleCIProvider",
    "travis": "providers.travis:TravisProvider",
    "jenkins": "providers.jenkins:JenkinsProvider",
    "teamcity": "providers.teamcity:TeamCityProvider",
}

_registry: dict[str, type[Provider]] = {}


def register(name: str, cls: type[Provider]) -> None:
    if name in _registry or name in BUILTIN:
        raise ValueError(f"a provider named {name!r} is already registered")
    _registry[name] = cls


def provider_class(name: str) -> type[Provider]:
    if name in _registry:
        return _registry[name]
    target = BUILTIN.get(name)
    if target is None:
        raise UnknownProvider(name)
    module_name, _, class_name = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def names() -> list[str]:
    return [*BUILTIN, *_registry]


_instances: dict[str, Provider] = {}


def get(name: str) -> Provider:
    """The (stateless) parser instance for `name`; raises `UnknownProvider`."""
    instance = _instances.get(name)
    if instance is None:
        instance = _instances[name] = provider_class(name)()
    return instance


#: name -> "module:factory" of the I/O client of each provider that has one. A factory is
#: `create_client(settings: ProviderSettings, http: httpx.AsyncClient) -> client` and raises
#: `NotConfigured` when the provider's credentials are missing. A client implements
#: `providers.base.CIClient` and, for forges, `providers.base.Forge`.
CLIENTS: dict[str, str] = {
    "github": "providers.github.client:create_client",
    "gitlab": "providers.gitlab.client:create_client",
    "azure-devops": "providers.azure_devops.client:create_client",
    "bitbucket": "providers.bitbucket.client:create_client",
    "jenkins": "providers.jenkins.client:create_client",
    "circleci": "providers.circleci.client:create_client",
    "travis": "providers.travis.client:create_client",
    "teamcity": "providers.teamcity.client:create_client",
    # Runs in folders and reports in files; no webhook, so not in BUILTIN.
    "local": "providers.local:create_client",
}


#: name -> "module:Class" of a provider whose webhook secrets are not simply configured.
SECRET_SOURCES: dict[str, str] = {
    "travis": "providers.travis.keys:TravisKeys",
}


class ConfiguredSecrets:
    """`HERALD_<PROVIDER>_WEBHOOK_SECRET` (or `_FILE`), comma-separated for rotation."""

    async def secrets(self, settings: ProviderSettings, http: Any) -> list[bytes]:
        return [bytes(s) for s in settings.webhook_secrets()]

    async def refresh(self, settings: ProviderSettings, http: Any) -> list[bytes] | None:
        return None


def client_factory(name: str) -> object:
    target = CLIENTS.get(name)
    if target is None:
        raise UnknownProvider(f"{name} has no API client in this build")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class Directory:
    """The built-in and registered providers as the core asks for them
    (`bot.ports.ProviderDirectory`)."""

    def __init__(self) -> None:
        self._secret_sources: dict[str, SecretSource] = {}

    def names(self) -> list[str]:
        return names()

    def parser(self, name: str) -> Provider:
        return get(name)

    def client(self, name: str, settings: ProviderSettings, http: Any) -> Any:
        factory: Any = client_factory(name)
        return factory(settings, http)

    def secret_source(self, name: str) -> SecretSource:
        source = self._secret_sources.get(name)
        if source is None:
            target = SECRET_SOURCES.get(name)
            if target is None:
                source = ConfiguredSecrets()
            else:
                module_name, _, attr = target.partition(":")
                source = getattr(importlib.import_module(module_name), attr)()
            self._secret_sources[name] = source
        return source


#: What `bot.composition` wires into the web app and the worker.
DIRECTORY = Directory()

__all__ = [
    "BUILTIN",
    "CLIENTS",
    "DIRECTORY",
    "SECRET_SOURCES",
    "ConfiguredSecrets",
    "Directory",
    "UnknownProvider",
    "client_factory",
    "get",
    "names",
    "provider_class",
    "register",
]
