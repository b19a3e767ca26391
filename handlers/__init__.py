"""Worker-side handlers, one concern per module, each with its own `router`.

`ROUTERS` is the one list of everything the worker runs; `grep` it to see what happens.
"""

from __future__ import annotations

from bot.routing import Router

ROUTERS: list[Router] = []
