"""The provider contract as providers import it: defined in `bot.ports`, so that the core
depends on no provider (see that module); re-exported here for the providers' own use,
with what every client factory checks of its settings."""

from collections.abc import Mapping

from bot.ports import (
    BadPayload,
    Build,
    Change,
    CISource,
    ForgeTarget,
    Headers,
    InvalidSignature,
    Job,
    NotConfigured,
    OutcomeUnknown,
    PermanentError,
    Provider,
    ProviderError,
    Published,
    RemoteArtifact,
    RepoFile,
    ReportOrigin,
    Rerun,
    TransientError,
    Unsupported,
)


def require_settings(system: str, needs: str, values: Mapping[str, object]) -> None:
    """`NotConfigured` naming every variable of `values` (name -> value) that is unset or
    blank, and what the credentials need (`needs`), or nothing when all are set."""
    missing = [name for name, value in values.items()
               if value is None or (isinstance(value, str) and not value.strip())]
    if missing:
        raise NotConfigured(f"{system} is not configured: set {', '.join(missing)} ({needs})")


__all__ = [
    "BadPayload",
    "Build",
    "CISource",
    "Change",
    "ForgeTarget",
    "Headers",
    "InvalidSignature",
    "Job",
    "NotConfigured",
    "OutcomeUnknown",
    "PermanentError",
    "Provider",
    "ProviderError",
    "Published",
    "RemoteArtifact",
    "RepoFile",
    "ReportOrigin",
    "Rerun",
    "TransientError",
    "Unsupported",
    "require_settings",
]
