"""`ctx.clients` of a worker whose CI source is not a forge (Jenkins, Travis CI): that
source's real client under its name, and one forge's real client."""

from __future__ import annotations

from typing import Any


class SourceAndForge:
    def __init__(self, source_name: str, source: Any, forge_name: str, forge: Any) -> None:
        self.by_name = {source_name: source, forge_name: forge}
        self.forge_name = forge_name

    def source(self, provider: str) -> Any:
        return self.by_name[provider]

    def forge(self, provider: str) -> Any:
        assert provider == self.forge_name
        return self.by_name[provider]
