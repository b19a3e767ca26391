"""The import rules: the core depends on no plug-in, handlers on no provider.

- No module of `bot` imports `providers` or `handlers`, except the composition root
  (`bot.composition`) and the command line (`bot.cli`, `bot.commands`), which pick them.
- `handlers` use the contract (`bot.ports`) and never a provider's module: a handler that
  knew GitHub would need copying for every forge.
- `providers` never import `handlers`, and no provider imports another provider's package.
- Nothing in `bot`, `handlers` or `providers` imports `herald`, the users' facade.

Imports are read from the source (every `import` statement, inside functions too), so a
lazy import cannot slip through.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSITION = {"bot/composition.py", "bot/cli.py"}
COMMANDS = "bot/commands/"


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module `path` imports, as absolute dotted names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
    return names


def top(name: str) -> str:
    return name.split(".", 1)[0]


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", modules("bot"), ids=relative)
def test_the_core_imports_no_plug_in(path: Path) -> None:
    where = relative(path)
    if where in COMPOSITION or where.startswith(COMMANDS):
        return
    wrong = sorted(n for n in imported(path) if top(n) in ("providers", "handlers"))
    assert not wrong, f"{where} imports {wrong}: depend on bot.ports, wire in bot.composition"


@pytest.mark.parametrize("path", modules("handlers"), ids=relative)
def test_handlers_use_the_contract_not_a_provider(path: Path) -> None:
    wrong = sorted(n for n in imported(path) if top(n) == "providers")
    assert not wrong, f"{relative(path)} imports {wrong}: use bot.ports"


@pytest.mark.parametrize("path", modules("providers"), ids=relative)
def test_providers_import_no_handler_and_no_other_provider(path: Path) -> None:
    parts = path.relative_to(ROOT / "providers").parts
    own = parts[0] if len(parts) > 1 else None
    for name in imported(path):
        assert top(name) != "handlers", f"{relative(path)} imports {name}"
        segments = name.split(".")
        if segments[0] == "providers" and len(segments) > 2 and own is not None:
            assert segments[1] == own, f"{relative(path)} imports {name}, another provider's"


@pytest.mark.parametrize(
    "path", [*modules("bot"), *modules("handlers"), *modules("providers")], ids=relative)
def test_nothing_inside_imports_the_public_facade(path: Path) -> None:
    # `herald` re-exports the internals for users; an internal module importing it back
    # would make the facade part of the core it stands in front of.
    wrong = sorted(n for n in imported(path) if top(n) == "herald")
    assert not wrong, f"{relative(path)} imports {wrong}: the facade is for users only"


def test_the_rules_see_lazy_imports() -> None:
    # `bot.artifacts` imports the parsers inside a function: the reader must find it.
    assert "bot.results.parsers" in imported(ROOT / "bot" / "artifacts.py")
