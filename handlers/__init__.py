"""Worker-side handlers, one concern per module, each with its own `router`.

`ROUTERS` is the one list of everything the worker runs; `grep` it to see what happens.
"""

from __future__ import annotations

from bot.routing import Router
from handlers import commit, report, retest

ROUTERS: list[Router] = [
    report.router,  # build.completed → results published where the change is reviewed
    commit.router,  # commit.report → a commit's runs, quiet now, published as one report
    retest.router,  # comment.created `/retest`, check.rerequested → rerun what failed
]
