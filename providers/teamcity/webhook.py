"""TeamCity webhooks: shared-secret check and translation to `build.completed`.

TeamCity's own webhooks (https://www.jetbrains.com/help/teamcity/teamcity-webhooks.html,
the bundled JetBrains/teamcity-webhooks plugin) post `{"eventType": "BUILD_FINISHED",
"payload": <REST API build>}` and sign nothing, but send HTTP Basic credentials taken
from the `teamcity.internal.webhooks.username` / `.password` project parameters. Herald
checks those (or an `X-Herald-Token` header, for a `curl` step or a proxy that adds one)
against `HERALD_TEAMCITY_WEBHOOK_SECRET`; set-up in docs/webhooks.md.

`BUILD_FINISHED` and `BUILD_INTERRUPTED` are final: an interrupted (canceled) build does
not also fire `BUILD_FINISHED`.

The tcWebHooks plugin (https://github.com/tcplugins/tcWebHooks), for servers older than
the bundled webhooks or for its templates, posts its JSON payload `{"build": {notifyType,
buildId, buildTypeId, buildExternalTypeId, buildNumber, buildStatusUrl, branchName,
buildResult, ...}}` with HTTP Basic or a custom header: checked the same way. Its final
states (`buildFinished` and the `buildSuccessful` / `buildFailed` / `buildFixed` /
`buildBroken` variants, `buildInterrupted`) all name one finished build: they share one
delivery id, so a hook that sends two of them reports once. The commit is not in its
payload: the client reads the build's revisions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

from bot.events import BUILD_COMPLETED, Event, Ignored, RunRef
from providers.base import BadPayload, Headers, Provider
from providers.signatures import (
    as_id,
    as_int,
    as_str,
    as_text,
    body_digest,
    check_shared_secret,
    dig,
    load_json_object,
    strip_ref,
)

NAME: Final = "teamcity"
FINAL_EVENTS: Final = frozenset({"BUILD_FINISHED", "BUILD_INTERRUPTED"})
#: tcWebHooks' `notifyType`s of a build that has finished (or was canceled).
TCWEBHOOKS_FINAL: Final = frozenset({
    "buildFinished", "buildSuccessful", "buildFailed", "buildFixed", "buildBroken",
    "buildInterrupted",
})
#: Logical branch names the Pull Requests build feature gives PR builds.
_PULL_BRANCH = re.compile(r"(?:^|/)(?:pull|pull-requests|merge-requests)/(\d+)(?:/|$)")
#: A build properties file is a few kB; refuse to read anything much larger.
_MAX_PROPERTIES_BYTES: Final = 1024 * 1024


def change_from_branch(branch: str | None) -> int | None:
    match = _PULL_BRANCH.search(branch or "")
    return as_int(match.group(1)) if match else None


def _first_revision(build: Mapping[str, Any]) -> Mapping[str, Any] | None:
    revisions = dig(build, "revisions", "revision")
    if isinstance(revisions, list) and revisions and isinstance(revisions[0], dict):
        first: Mapping[str, Any] = revisions[0]
        return first
    return None


def read_properties(path: str) -> dict[str, str]:
    """The `key=value` lines of a TeamCity build properties file (Java properties, simple)."""
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_PROPERTIES_BYTES:
            return {}
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "!")):
            continue
        key, sep, value = stripped.partition("=")
        if sep:
            # Java properties escape ':' and '=' in values (URLs); undo the common ones.
            values[key.strip()] = value.strip().replace("\\:", ":").replace("\\=", "=")
    return values


def _tcwebhooks(build: Mapping[str, Any], payload: dict[str, Any]) -> Event | Ignored:
    """tcWebHooks' JSON payload (see the module docstring)."""
    notify = as_str(build.get("notifyType")) or "unknown"
    build_id = as_id(build.get("buildId"))
    # One finished build, whichever final state (and however many of them) the hook sends.
    final = notify in TCWEBHOOKS_FINAL
    delivery = body_digest(as_str(build.get("buildStatusUrl")) or build_id or notify,
                           "finished" if final else notify)
    if not final:
        return Ignored(NAME, notify, f"tcWebHooks state {notify!r} is not a finished build")
    repo = as_str(build.get("buildExternalTypeId")) or as_str(build.get("buildTypeId"))
    if repo is None or build_id is None:
        raise BadPayload(f"tcWebHooks {notify} payload lacks buildId or buildTypeId")
    branch = as_str(build.get("branchName"))
    interrupted = notify == "buildInterrupted"
    run = RunRef(
        provider=NAME,
        repo=repo,
        run_id=build_id,
        sha=None,
        branch=strip_ref(branch),
        change=change_from_branch(branch),
        url=as_str(build.get("buildStatusUrl")),
        status=(as_str(build.get("buildResult")) or "").upper() or None,
        extra={
            "event_type": notify,
            "interrupted": interrupted,
            "number": as_str(build.get("buildNumber")),
            "build_type_name": as_text(build.get("buildName")),
            "project_name": as_text(build.get("projectName")),
            "default_branch": build.get("branchIsDefault") is True,
        },
    )
    return Event(NAME, BUILD_COMPLETED, notify, delivery, repo=repo, run=run, payload=payload)


class TeamCityProvider(Provider):
    name: ClassVar[str] = NAME

    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        check_shared_secret(headers, secrets, NAME)
        payload = load_json_object(body)
        event_type = as_str(payload.get("eventType"))
        build = payload.get("payload")
        legacy = payload.get("build")
        if not event_type and isinstance(legacy, dict) and as_str(legacy.get("notifyType")):
            return _tcwebhooks(legacy, payload)
        if not event_type or not isinstance(build, dict):
            raise BadPayload("not a TeamCity webhook: expected {eventType, payload} (or "
                             "tcWebHooks' {build: {notifyType, ...}})")
        web_url = as_str(build.get("webUrl"))
        build_id = as_id(build.get("id"))
        delivery = body_digest(web_url or build_id or body, event_type)
        if event_type not in FINAL_EVENTS:
            reason = f"teamcity event {event_type!r} is not a finished build"
            return Ignored(NAME, event_type, reason)
        repo = as_str(build.get("buildTypeId")) or as_str(dig(build, "buildType", "id"))
        if repo is None or build_id is None:
            raise BadPayload(f"{event_type} payload lacks id or buildTypeId")
        branch = as_str(build.get("branchName"))
        revision = _first_revision(build)
        run = RunRef(
            provider=NAME,
            repo=repo,
            run_id=build_id,
            sha=as_str(dig(revision, "version")),
            branch=strip_ref(branch) or strip_ref(as_str(dig(revision, "vcsBranchName"))),
            change=change_from_branch(branch),
            url=web_url,
            status=as_str(build.get("status")),
            extra={
                "event_type": event_type,
                "interrupted": event_type == "BUILD_INTERRUPTED",
                "number": as_str(build.get("number")),
                "state": as_str(build.get("state")),
                "status_text": as_text(build.get("statusText")),
                "build_type_name": as_text(dig(build, "buildType", "name")),
                "project_id": as_str(dig(build, "buildType", "projectId")),
                "project_name": as_text(dig(build, "buildType", "projectName")),
                "default_branch": build.get("defaultBranch") is True,
                "vcs_root_id": as_str(dig(revision, "vcs-root-instance", "vcs-root-id")),
                "vcs_root_instance_id": as_id(dig(revision, "vcs-root-instance", "id")),
            },
        )
        return Event(
            NAME, BUILD_COMPLETED, event_type, delivery, repo=repo, run=run, payload=payload
        )

    def detect(self, environ: Mapping[str, str]) -> RunRef | None:
        """A TeamCity build step.

        TeamCity exposes the build id only as a parameter, so it is read from the build
        properties file the agent names in `TEAMCITY_BUILD_PROPERTIES_FILE`, or from
        `TEAMCITY_BUILD_ID` / `TEAMCITY_BUILDTYPE_ID` set with `env.` parameters (see
        docs/webhooks.md). Without a build id there is no run to report on.
        """
        if not environ.get("TEAMCITY_VERSION"):
            return None
        properties_file = environ.get("TEAMCITY_BUILD_PROPERTIES_FILE")
        props = read_properties(properties_file) if properties_file else {}
        build_id = environ.get("TEAMCITY_BUILD_ID") or props.get("teamcity.build.id")
        build_type = environ.get("TEAMCITY_BUILDTYPE_ID") or props.get("teamcity.buildType.id")
        if not build_id or not build_type:
            return None
        server = environ.get("TEAMCITY_SERVER_URL") or props.get("teamcity.serverUrl") or ""
        server = server.rstrip("/")
        branch = environ.get("TEAMCITY_BRANCH") or props.get("teamcity.build.branch")
        return RunRef(
            provider=NAME,
            repo=build_type,
            run_id=build_id,
            sha=environ.get("BUILD_VCS_NUMBER") or props.get("build.vcs.number") or None,
            branch=strip_ref(branch) or None,
            change=as_int(environ.get("TEAMCITY_PULL_REQUEST_NUMBER"))
            or change_from_branch(branch),
            url=f"{server}/buildConfiguration/{build_type}/{build_id}" if server else None,
            extra={
                "number": environ.get("BUILD_NUMBER") or None,
                "project_name": environ.get("TEAMCITY_PROJECT_NAME") or None,
                "build_type_name": environ.get("TEAMCITY_BUILDCONF_NAME") or None,
                "server_url": server or None,
            },
        )
