"""The jinja2 environments the renderers share, loading templates shipped in the package."""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def environment(*, html: bool) -> jinja2.Environment:
    """HTML templates autoescape every value, always: `select_autoescape` decides by the
    template's file name, and a name not ending in `.html` would silently turn it off.
    Markdown templates receive values already escaped by `bot.reports.markdown`."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.reports", "templates"),
        autoescape=html,  # noqa: S701 (Markdown values are escaped by bot.reports.markdown)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # The templates ship with the package and never change under a running process;
        # reloading would stat the file on every get_template, once per failure rendered.
        auto_reload=False,
    )
