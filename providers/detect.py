"""Push mode: which CI system and run this process is part of, from its environment.

Each provider's `detect` reads its CI's documented variables. They are tried in one fixed
order, first match wins: a job can carry variables of several systems (a Jenkins agent
that runs inside GitHub Actions, a TeamCity agent with `JENKINS_URL` left in its
environment), and the more specific marker must win over the generic one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import providers
from bot.events import RunRef

#: The detection order of PROVIDERS.md section 9.
ORDER: Final = (
    "github",
    "gitlab",
    "bitbucket",
    "azure-devops",
    "circleci",
    "travis",
    "teamcity",
    "jenkins",
)


def detect(environ: Mapping[str, str]) -> RunRef | None:
    """The run of the first provider (in `ORDER`) whose CI variables are present."""
    for name in ORDER:
        ref = providers.get(name).detect(environ)
        if ref is not None:
            return ref
    return None
