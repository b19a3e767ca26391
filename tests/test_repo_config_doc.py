"""docs/repo-config.md documents `.herald.yml` as the schema declares it."""

from __future__ import annotations

from pathlib import Path

from bot.repo_config import DOC_BEGIN, DOC_END, DOC_PATH, RepoConfig, schema_table

ROOT = Path(__file__).resolve().parent.parent


def test_the_doc_s_table_is_the_schema_s() -> None:
    text = (ROOT / DOC_PATH).read_text(encoding="utf-8")
    start = text.index(DOC_BEGIN) + len(DOC_BEGIN)
    assert text[start:text.index(DOC_END, start)] == schema_table()


def test_the_table_names_every_key_of_every_section() -> None:
    table = schema_table()
    for name, info in RepoConfig.model_fields.items():
        nested = getattr(info.annotation, "model_fields", None)
        keys = [f"{name}.{inner}" for inner in nested] if nested else [name]
        for key in keys:
            assert f"| `{key}` |" in table
