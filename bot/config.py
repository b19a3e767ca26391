"""The settings schema: every `HERALD_` variable once, with its type, default, bounds and doc.

`HeraldConfig` is the one declaration. A top-level field `queue_name` is
`HERALD_QUEUE_NAME`; a provider field `github.app_id` is `HERALD_GITHUB_APP_ID` (the
provider upper-cased, `-` as `_`); a secret also has a `_FILE` variant naming a file that
holds it. A blank variable counts as unset. `validate(environ)` checks a whole environment
at once and raises `ConfigError` naming each wrong variable and what it allows, never
echoing a secret; `unknown_variables` finds the `HERALD_` names nothing reads (typos). The
configuration tables in README.md and docs/ are written from this module: `python -m
bot.config --write`; `--check` (run by `make lint` and tests/test_settings.py) fails when
they drift.

Secret files are not read here: they are re-read where used (`bot.settings.ProviderSettings`)
so a rotated file takes effect without a restart.
"""

from __future__ import annotations

import difflib
import re
import string
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.redis_url import is_sentinel_url, parse_sentinel

MiB: Final = 1024 * 1024
DEFAULT_MAX_BODY_BYTES: Final = 25 * MiB
#: Request bodies one web process holds at once: ten deliveries at the full body cap.
DEFAULT_MAX_BUFFERED_BYTES: Final = 256 * MiB
DEFAULT_HEADER_TIMEOUT_SECONDS: Final = 10.0
MAX_HEADER_TIMEOUT_SECONDS: Final = 300.0
DEFAULT_JOB_MAX_TRIES: Final = 5
DEFAULT_JOB_TIMEOUT_SECONDS: Final = 300.0
REDIS_SCHEMES: Final = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")
POSTGRES_SCHEMES: Final = ("postgresql", "postgres")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


# ---- value types -------------------------------------------------------------------------


def _without_underscores(value: object) -> object:
    # `1_073_741_824` reads better than `1073741824` in a manifest; Python accepts it too
    return value.replace("_", "") if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class _Check:
    """A validator that refuses values `ok` rejects; `message` says what is allowed (and
    is the docs' "Allowed" cell, less its "must be")."""

    def __init__(self, ok: Callable[[Any], bool], message: str) -> None:
        self.ok = ok
        self.message = message

    def __call__(self, value: Any) -> Any:
        if value is not None and not self.ok(value):
            raise PydanticCustomError("herald_check", self.message)
        return value


def _check(ok: Callable[[Any], bool], message: str) -> AfterValidator:
    return AfterValidator(_Check(ok, message))


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""  # a host name, or an IPv6 address without brackets
    if not host or "/" in host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(text)
    return host.lower().rstrip("."), int(port) if port else None


def allowed_hosts(value: str | None) -> tuple[tuple[str, int | None], ...]:
    """`HERALD_EGRESS_ALLOWED_HOSTS` read: (host, port), port None for any port."""
    if not value:
        return ()
    return tuple(_host_port(part.strip()) for part in value.split(",") if part.strip())


def _are_hosts(value: str) -> bool:
    try:
        allowed_hosts(value)
    except ValueError:
        return False
    return True


def _without_trailing_slash(value: object) -> object:
    return value.rstrip("/") if isinstance(value, str) else value


def _check_url(value: str | None, schemes: Sequence[str], allowed: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        # the URL may hold a password: name its scheme only
        shown = f"{parts.scheme}://…" if parts.scheme else "a value without a scheme"
        raise PydanticCustomError("herald_check", f"must be {allowed}, not {shown}")
    return value


def _check_sentinel(value: str | None) -> str | None:
    if value is not None and is_sentinel_url(value):
        try:
            parse_sentinel(value)
        except ValueError as exc:
            raise PydanticCustomError("herald_check", str(exc)) from None
    return value


def _check_redis_url(value: str | None) -> str | None:
    return _check_sentinel(_check_url(
        value, REDIS_SCHEMES, "a redis://, rediss://, unix:// or redis+sentinel:// URL"
    ))


def _check_history_url(value: str | None) -> str | None:
    return _check_sentinel(_check_url(
        value, (*REDIS_SCHEMES, *POSTGRES_SCHEMES),
        "a redis://, rediss://, unix://, redis+sentinel:// or postgresql:// URL",
    ))


WholeNumber = Annotated[int, BeforeValidator(_without_underscores)]
Seconds = Annotated[float, Field(allow_inf_nan=False)]
HttpUrl = Annotated[
    str,
    BeforeValidator(_without_trailing_slash),
    _check(_is_http_url, "must be an http(s):// URL with a host"),
]


def setting(
    default: Any,
    description: str,
    *,
    shown_default: str | None = None,
    allowed: str | None = None,
    secret: bool = False,
    **bounds: Any,
) -> Any:
    """One variable: its default, a one-line description for the docs, and its bounds.

    `shown_default` and `allowed` override what the docs derive from the default and the
    bounds; `secret` keeps the value out of every message (SecretStr fields are secret
    anyway).
    """
    if secret:
        bounds.setdefault("repr", False)
    extra: dict[str, Any] = {"secret": secret}
    if shown_default is not None:
        extra["shown_default"] = shown_default
    if allowed is not None:
        extra["allowed"] = allowed
    return Field(default, description=description, json_schema_extra=extra, **bounds)


# ---- providers ---------------------------------------------------------------------------


class ProviderConfig(BaseModel):
    """Variables every provider that checks a shared webhook secret has."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhook_secret: SecretStr | None = setting(
        None, "the webhook secret; comma-separated to roll a new one out beside the old",
        shown_default="none: deliveries are refused with 401",
    )
    webhook_secret_file: Path | None = setting(
        None, "a file holding the webhook secret instead (re-read within "
        "`HERALD_SECRETS_CACHE_SECONDS`)",
    )


class ClientConfig(ProviderConfig):
    """Variables of a provider Herald also calls (reads runs and artifacts of)."""

    artifact_patterns: str | None = setting(
        None, "comma-separated, case-insensitive globs naming the artifacts (GitHub), "
        "jobs (GitLab) or archived files (Jenkins) searched for test reports",
        shown_default="`*test*`, `*junit*`, `*report*`, `*result*`, `*surefire*`, "
        "`*failsafe*`, `*xunit*`, `*nunit*`, `*trx*`",
    )


class GitHubConfig(ClientConfig):
    app_id: Annotated[str | None, _check(str.isdigit, "must be the App's numeric id")] = (
        setting(None, "the GitHub App's numeric id", shown_default="none: no reports",
                allowed="digits")
    )
    client_id: str | None = setting(
        None, "the App's client id, used as the JWT issuer as GitHub recommends"
    )
    private_key: SecretStr | None = setting(
        None, "the App's PEM private key (newlines may be written `\\n`)",
        shown_default="none: no reports",
    )
    private_key_file: Path | None = setting(None, "a file holding the private key instead")
    token: SecretStr | None = setting(
        None, "without the App: a token with `checks: write` and `pull-requests: write` "
        "(push mode: the workflow's `GITHUB_TOKEN` when this is unset)",
        shown_default="none: the App",
    )
    token_file: Path | None = setting(None, "a file holding the token instead")
    token_login: str = setting(
        "github-actions[bot]", "the login GitHub credits the token's comments to: its "
        "sticky comment is the one by this login",
    )
    api_url: HttpUrl = setting(
        "https://api.github.com", "`https://<host>/api/v3` for GitHub Enterprise Server"
    )
    retest_allowlist: str | None = setting(
        None, "comma-separated logins allowed to `/retest` without write access "
        "(a release bot, a triager)",
    )
    request_timeout: Seconds = setting(
        15.0, "seconds per API request; shorter than `HERALD_JOB_TIMEOUT_SECONDS`", gt=0
    )
    redeliver_interval_minutes: WholeNumber = setting(
        10, "how often a worker asks GitHub to redeliver the App's failed webhook "
        "deliveries (at minutes past the hour divisible by it; GitHub never redelivers by "
        "itself); 0 turns it off. Needs the App, not a token", ge=0, le=60,
    )
    redeliver_window_hours: WholeNumber = setting(
        24, "how far back failed deliveries are redelivered (GitHub keeps 3 days)",
        ge=1, le=72,
    )
    redeliver_max_per_pass: WholeNumber = setting(
        50, "redeliveries asked for at most per pass; the rest wait for the next one",
        ge=1, le=1000,
    )


class GitLabConfig(ClientConfig):
    url: HttpUrl = setting("https://gitlab.com", "your GitLab's address")
    token: SecretStr | None = setting(
        None, "an access token of scope `api`", shown_default="none: no reports"
    )
    token_file: Path | None = setting(None, "a file holding the token instead")
    timeout: Seconds = setting(
        15.0, "seconds per GitLab request (connect and read); shorter than "
        "`HERALD_JOB_TIMEOUT_SECONDS`", gt=0,
    )
    workers: WholeNumber = setting(8, "GitLab requests one worker process runs at once", ge=1)


class BitbucketConfig(ProviderConfig):
    api_url: HttpUrl = setting(
        "https://api.bitbucket.org/2.0", "Bitbucket Cloud's REST API; runs of other CI "
        "systems whose repository URL has its host are reported there too (`bot.forges`)",
    )
    token: SecretStr | None = setting(
        None, "a repository, project or workspace access token (sent as `Bearer`), or an "
        "API token with `HERALD_BITBUCKET_USERNAME`", shown_default="none: no reports",
    )
    token_file: Path | None = setting(None, "a file holding the token instead")
    username: str | None = setting(
        None, "the Atlassian account email an API token belongs to (HTTP Basic); unset "
        "for an access token", shown_default="none: `Bearer` token",
    )
    timeout: Seconds = setting(
        15.0, "seconds per Bitbucket request (connect and read); shorter than "
        "`HERALD_JOB_TIMEOUT_SECONDS`", gt=0,
    )


class AzureDevOpsConfig(ClientConfig):
    url: HttpUrl | None = setting(
        None, "the organization's address (`https://dev.azure.com/<organization>`, or an "
        "Azure DevOps Server collection); service hooks of another organization are refused",
        shown_default="`https://dev.azure.com/<organization>`, the service hook's own",
    )
    token: SecretStr | None = setting(
        None, "a personal access token: Build (read & execute), Code (read & write), Test "
        "Management (read); for `/retest` Identity (read) and Security (manage)",
        shown_default="none: no reports",
    )
    token_file: Path | None = setting(None, "a file holding the token instead")
    timeout: Seconds = setting(
        15.0, "seconds per Azure DevOps request (connect and read); shorter than "
        "`HERALD_JOB_TIMEOUT_SECONDS`", gt=0,
    )


class JenkinsConfig(ClientConfig):
    """Jenkins as a CI source: its builds are read with a user's API token; the report goes
    to the forge the build's repository URL names (`bot.forges`)."""

    url: HttpUrl | None = setting(
        None, "your Jenkins' address (with its context path, `https://ci.example/jenkins`); "
        "every request goes there, whatever URL a notification names",
        shown_default="none: no reports", allowed="an http(s):// URL with a host",
    )
    user: str | None = setting(
        None, "the Jenkins user the API token belongs to", shown_default="none: no reports"
    )
    token: SecretStr | None = setting(
        None, "that user's API token (Overall/Read, Job/Read; Job/Build for `/retest`; "
        "Run/Update for build descriptions)",
        shown_default="none: no reports",
    )
    token_file: Path | None = setting(None, "a file holding the token instead")
    timeout: Seconds = setting(
        15.0, "seconds per Jenkins request (connect and read); shorter than "
        "`HERALD_JOB_TIMEOUT_SECONDS`", gt=0,
    )


#: The placeholders `HERALD_TRAVIS_REPORT_URL` may hold, each filled in per job.
TRAVIS_REPORT_PLACEHOLDERS: Final = frozenset(
    {"repo", "build_id", "build_number", "job_id", "job_number", "commit"}
)
TRAVIS_REPORT_URL_RULE: Final = (
    "must be an http(s):// URL whose path (not its host) holds only the placeholders "
    "{repo}, {build_id}, {build_number}, {job_id}, {job_number}, {commit}"
)
TRAVIS_LOG_SUMMARIES: Final = frozenset({"pytest", "go"})


def _is_report_url_template(value: str) -> bool:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if "{" in parts.netloc or "}" in parts.netloc or parts.username or parts.password:
        return False  # a placeholder in the host would let a build choose where Herald goes
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion
                  in string.Formatter().parse(value) if name is not None]
    except ValueError:
        return False
    return all(name in TRAVIS_REPORT_PLACEHOLDERS and not spec and not conversion
               for name, spec, conversion in fields)


def _are_log_summaries(value: str) -> bool:
    names = {part.strip() for part in value.split(",")}
    return bool(names) and names <= TRAVIS_LOG_SUMMARIES


class TeamCityConfig(ClientConfig):
    """TeamCity as a CI source: its builds are read with an access token; the report goes
    to the forge the build's VCS root URL names (`bot.forges`)."""

    url: HttpUrl | None = setting(
        None, "your TeamCity server's address (`https://teamcity.example`, with its context "
        "path if any); every request goes there, whatever URL a webhook names",
        shown_default="none: no reports", allowed="an http(s):// URL with a host",
    )
    token: SecretStr | None = setting(
        None, "an access token (sent as `Bearer`) of a user who may view the projects' "
        "builds and build configuration settings; Run build for `/retest`, Edit build "
        "comments for the build's comment",
        shown_default="none: no reports",
    )
    token_file: Path | None = setting(None, "a file holding the token instead")
    timeout: Seconds = setting(
        15.0, "seconds per TeamCity request (connect and read); shorter than "
        "`HERALD_JOB_TIMEOUT_SECONDS`", gt=0,
    )


class CircleCIConfig(ClientConfig):
    """CircleCI as a CI source: workflows, jobs, stored test results and artifacts read
    with a personal API token; the report goes to the forge of the pipeline's repository."""

    api_url: HttpUrl = setting(
        "https://circleci.com/api/v2", "CircleCI's API v2 (`https://<host>/api/v2` for "
        "CircleCI server); every request goes there, whatever URL a webhook names",
    )
    token: SecretStr | None = setting(
        None, "a personal API token (sent as `Circle-Token`) of a user who can see the "
        "projects; triggering workflows (write) for `/retest`",
        shown_default="none: no reports",
    )
    token_file: Path | None = setting(None, "a file holding the token instead")
    artifact_hosts: Annotated[
        str, _check(_are_hosts, "must be comma-separated `host` or `host:port`")
    ] = setting(
        "output.circle-artifacts.com", "comma-separated hosts CircleCI serves artifacts "
        "from: downloads start there with the token (https), and nowhere else",
    )
    timeout: Seconds = setting(
        15.0, "seconds per CircleCI request (connect and read); shorter than "
        "`HERALD_JOB_TIMEOUT_SECONDS`", gt=0,
    )


class TravisConfig(BaseModel):
    """Travis CI signs with its own key pair: no shared secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # public, so not a SecretStr; it still has a `_FILE` variant, for a PEM file
    public_key: str | None = setting(
        None, "Travis CI's PEM public key, to pin it rather than fetch it",
        shown_default="fetched from the API, kept for an hour", allowed="PEM",
    )
    public_key_file: Path | None = setting(None, "a file holding the public key instead")
    api_url: HttpUrl = setting(
        "https://api.travis-ci.com", "Travis CI's API: where the key is fetched from "
        "(`<api_url>/config`) and builds, jobs and logs are read"
    )
    token: SecretStr | None = setting(
        None, "an API token (`travis token`, or the profile's settings page) of a user "
        "who can read the repositories' builds; restart access for `/retest`",
        shown_default="none: no reports",
    )
    token_file: Path | None = setting(None, "a file holding the token instead")
    timeout: Seconds = setting(
        15.0, "seconds per Travis CI request (connect and read), report files and logs "
        "included; shorter than `HERALD_JOB_TIMEOUT_SECONDS`", gt=0,
    )
    report_url: Annotated[
        str | None, _check(_is_report_url_template, TRAVIS_REPORT_URL_RULE)
    ] = setting(
        None, "where each job's test report is published (the artifacts add-on's bucket, "
        "your own host), with placeholders: `{repo}`, `{build_id}`, `{build_number}`, "
        "`{job_id}`, `{job_number}`, `{commit}`; fetched without the Travis token",
        shown_default="none: results from the job logs only",
        allowed="an http(s):// URL template",
    )
    log_summary: Annotated[
        str | None, _check(_are_log_summaries, "must be `pytest`, `go` or `pytest,go`")
    ] = setting(
        None, "when no `HERALD_TRAVIS_REPORT_URL` is set: the test runners whose summary "
        "is read from each job's log", shown_default="none: logs are not read",
        allowed="`pytest`, `go`, `pytest,go`",
    )


class LocalConfig(BaseModel):
    """The Local provider (`providers.local`): runs are folders, reports are files. It has
    no webhook (a folder cannot sign one); the library and the worker read runs by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: Path | None = setting(
        None, "the folder holding the runs: a run is a folder under it, named by its path",
        shown_default="none: the Local provider is off",
    )
    reports_dir: Path | None = setting(
        None, "where a run's `report.md`, `report.html` and `report.json` are written, at "
        "the run's path", shown_default="`HERALD_STATE_DIR/reports`",
    )
    artifact_patterns: str = setting(
        "*", "comma-separated, case-insensitive globs of the paths in a run's folder read "
        "as test reports; every file by default, so one that is no report is named",
    )


# ---- the schema --------------------------------------------------------------------------


LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["console", "json"]


class HeraldConfig(BaseSettings):
    """Every variable Herald reads. Provider sections are the fields typed by a model."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    # -- core: web and worker
    redis_url: Annotated[str | None, AfterValidator(_check_redis_url)] = setting(
        None, "the Redis web and workers share (`REDIS_URL` is read too)",
        shown_default="embedded (`herald serve` only)",
        allowed="`redis://host:port/db`, `rediss://…` (TLS), `unix:///path`, "
        "`redis+sentinel://host:26379,…/service/db` (Sentinel)", secret=True,
    )
    state_dir: Path = setting(Path(".herald"), "embedded Redis data and the delivery spool")
    queue_name: str = setting(
        "herald:queue", "the Redis queue web and workers share; any other name also "
        "prefixes every key of its jobs, so installations sharing a Redis never see each "
        "other's deliveries ([docs/operations.md](docs/operations.md))", min_length=1
    )
    store_dir: Path | None = setting(
        None, "where the library's `Reporter` keeps the artifacts it collects, served as "
        "signed `/files/store/…` links", shown_default="`HERALD_STATE_DIR/store`",
    )
    public_url: Annotated[str | None, BeforeValidator(_without_trailing_slash)] = setting(
        None, "the address Herald is reached at, for links back to it"
    )
    egress_allowed_hosts: Annotated[
        str | None, _check(_are_hosts, "must be comma-separated `host` or `host:port`")
    ] = setting(
        None, "hosts Herald may connect to although they resolve to a private, loopback or "
        "link-local address, beside the configured provider URLs (an internal object store "
        "a self-hosted forge redirects downloads to); every other host must be public "
        "([docs/limits.md](docs/limits.md))", shown_default="none",
    )
    log_format: Annotated[LogFormat, BeforeValidator(_lower)] = setting(
        "console", "`json` in production", shown_default="`json` when `CI` is set, else "
        "`console`",
    )
    log_level: Annotated[LogLevel, BeforeValidator(_lower)] = setting("info", "log lines kept")

    # -- history: past runs per repository, branch and workflow (docs/history.md)
    history_url: Annotated[str | None, AfterValidator(_check_history_url)] = setting(
        None, "where run history is kept: a Redis URL, or a `postgresql://` URL for long "
        "retention and many repositories",
        shown_default="the Redis of `HERALD_REDIS_URL`",
        allowed="`redis://…`, `rediss://…`, `unix:///path`, `redis+sentinel://…`, "
        "`postgresql://user@host/db`",
        secret=True,
    )
    history_max_runs: WholeNumber = setting(
        50, "runs kept per repository, branch and workflow: the window flaky rates and "
        "duration medians are counted over; 0 keeps no history (reports compare with "
        "nothing, and `fail_on: regressions` fails on every failure)", ge=0, le=1000,
    )
    history_max_days: WholeNumber = setting(
        30, "days a run stays in history; older runs are dropped whatever their number",
        ge=1, le=3650,
    )

    # -- web: ingress limits
    max_body_bytes: WholeNumber = setting(
        DEFAULT_MAX_BODY_BYTES, "larger request bodies get 413 (GitHub's own cap)", gt=0
    )
    max_buffered_bytes: WholeNumber = setting(
        DEFAULT_MAX_BUFFERED_BYTES, "request bodies one web process holds at once, across "
        "all connections; a delivery that would overrun it gets 503 with `Retry-After` "
        "before it is read (at least `HERALD_MAX_BODY_BYTES`)", ge=1,
    )
    body_timeout_seconds: Seconds = setting(
        10.0, "a body not received by then gets 408 (senders give up after 10 s anyway)", gt=0
    )
    header_timeout_seconds: Seconds = setting(
        DEFAULT_HEADER_TIMEOUT_SECONDS, "a request line and headers not received by then: "
        "408 and the connection closed (a silent close if nothing came)",
        gt=0, le=MAX_HEADER_TIMEOUT_SECONDS,
    )
    retry_after_seconds: WholeNumber = setting(
        30, "the `Retry-After` of a 503", ge=1
    )
    url_signing_key: SecretStr | None = setting(
        None, "signs the links to files Herald serves (`/files/…`, a Local run's reports' "
        "artifacts); comma-separated to roll a new key out beside the old",
        shown_default="none: no files are served, links are `file:` URLs",
    )
    url_signing_key_file: Path | None = setting(None, "a file holding the signing key instead")
    status_token: SecretStr | None = setting(
        None, "the bearer token `GET /status` asks for (`Authorization: Bearer …`); "
        "comma-separated to roll a new one out beside the old",
        shown_default="none: `/status` answers 403 (`herald status` reads Redis directly)",
    )
    status_token_file: Path | None = setting(None, "a file holding the status token instead")
    url_ttl_seconds: WholeNumber = setting(
        7 * 24 * 3600, "how long a signed link stays valid: a week, as long as a pull "
        "request is usually read", ge=60,
    )
    secrets_cache_seconds: Seconds = setting(
        5.0, "how long webhook secrets read from files or provider APIs are kept "
        "(rotation needs no restart; 0 re-reads them for every delivery)", ge=0,
    )

    # -- worker
    job_timeout_seconds: Seconds = setting(
        DEFAULT_JOB_TIMEOUT_SECONDS, "how long one job may run before it is cancelled", gt=0
    )
    job_max_tries: WholeNumber = setting(
        DEFAULT_JOB_MAX_TRIES, "the try after which a job gives up and says so", ge=1
    )
    worker_concurrency: WholeNumber = setting(
        10, "jobs at once per worker process; a worker's memory bound is this times "
        "`HERALD_ARTIFACT_MAX_TOTAL_BYTES` ([docs/limits.md](docs/limits.md))", ge=1,
    )
    worker_poll_seconds: Seconds = setting(
        0.01, "how often an idle worker looks at the queue", gt=0
    )
    worker_shutdown_grace_seconds: WholeNumber = setting(
        25, "on SIGTERM, how long running jobs may finish", ge=1
    )
    worker_heartbeat_seconds: Seconds = setting(
        10.0, "how often a worker renews its entry in `herald status`; a worker that stops "
        "beating drops out after three", gt=0, le=3600,
    )

    # -- one report per commit (bot.coalesce)
    coalesce_seconds: Seconds = setting(
        0.0, "runs of one commit (matrix runs, workflows, CI systems) make one report once "
        "none has arrived for this long; 0: each run is reported on its own "
        "([docs/coalescing.md](docs/coalescing.md))", ge=0, le=3600,
    )
    coalesce_expected_runs: WholeNumber = setting(
        0, "with coalescing, report as soon as this many runs of the commit are in, "
        "without waiting out the quiet period; 0: always wait", ge=0, le=1000,
    )

    # -- parsing: each artifact in a child process under these limits (bot.isolation)
    parse_max_memory_bytes: WholeNumber = setting(
        1024 * MiB, "address space of the child that parses one artifact (`RLIMIT_AS`, the "
        "preloaded parsers' ~100 MB included); over it, the report says \"could not be "
        "read: used more than N bytes of memory\"", ge=128 * MiB,
    )
    parse_max_cpu_seconds: WholeNumber = setting(
        120, "CPU seconds of that child (`RLIMIT_CPU`); over it: \"used more than N s of "
        "CPU\", and the run's other artifacts still count", ge=1,
    )
    parse_timeout_seconds: WholeNumber = setting(
        180, "wall-clock seconds from the child's start until its result has arrived",
        ge=1,
    )
    parse_processes: WholeNumber | None = setting(
        None, "parse children at once per worker; their memory is at most this times "
        "`HERALD_PARSE_MAX_MEMORY_BYTES`", shown_default="`HERALD_WORKER_CONCURRENCY`",
        allowed="whole number ≥ 1", ge=1,
    )

    # -- artifacts (docs/limits.md)
    artifact_max_bytes: WholeNumber = setting(
        512 * MiB, "bytes downloaded of one artifact (spooled to a temporary file, checked "
        "per chunk)", ge=1,
    )
    artifact_max_total_bytes: WholeNumber = setting(
        512 * MiB, "**bytes inflated by one report job**: across all members, all nesting "
        "levels and all artifacts of the job together (for `herald render`: per archive "
        "file)", ge=1,
    )
    artifact_max_entries: WholeNumber = setting(
        10_000, "members of one archive, read from its end record before `zipfile` lists "
        "them", ge=1,
    )
    artifact_max_depth: WholeNumber = setting(
        2, "archive levels: the artifact's zip and zips inside it, no deeper", ge=1
    )
    artifact_max_ratio: WholeNumber = setting(
        200, "inflated bytes per compressed byte of one member...", ge=1
    )
    artifact_ratio_grace_bytes: WholeNumber = setting(
        16 * MiB, "...once that member has inflated more than this (small reports compress "
        "very well)", ge=0,
    )

    # -- providers: `HERALD_<PROVIDER>_<KEY>`; the field name is the provider's, `-` as `_`
    github: GitHubConfig = GitHubConfig()
    gitlab: GitLabConfig = GitLabConfig()
    bitbucket: BitbucketConfig = BitbucketConfig()
    azure_devops: AzureDevOpsConfig = AzureDevOpsConfig()
    circleci: CircleCIConfig = CircleCIConfig()
    travis: TravisConfig = TravisConfig()
    jenkins: JenkinsConfig = JenkinsConfig()
    teamcity: TeamCityConfig = TeamCityConfig()
    local: LocalConfig = LocalConfig()

    @model_validator(mode="after")
    def _consistent(self) -> HeraldConfig:
        # A delivery at the body cap could never be taken under a smaller budget; a request
        # that may outlast its job would be cancelled with the job (never retried).
        if self.max_buffered_bytes < self.max_body_bytes:
            raise PydanticCustomError(
                "herald_consistency",
                f"HERALD_MAX_BUFFERED_BYTES ({self.max_buffered_bytes}) must be at least "
                f"HERALD_MAX_BODY_BYTES ({self.max_body_bytes}): a delivery at the body cap "
                "could never be taken",
            )
        # Checked when the client will be made (credentials set) or the timeout was set:
        # a short job timeout alone must not refuse a provider nobody uses.
        github = self.github
        limits: list[tuple[str, float, bool]] = [
            ("HERALD_GITHUB_REQUEST_TIMEOUT", github.request_timeout,
             "request_timeout" in github.model_fields_set or github.app_id is not None),
        ]
        # Every token-holding client section with a `timeout`: GitLab, Bitbucket, Azure
        # DevOps, Jenkins, and each one added later without a line here.
        for name in type(self).model_fields:
            section = getattr(self, name)
            if isinstance(section, BaseModel) and "timeout" in type(section).model_fields:
                used = {"timeout", "token", "token_file"} & section.model_fields_set
                seconds = float(section.model_dump(include={"timeout"})["timeout"])
                limits.append((variable_name(name, "timeout"), seconds, bool(used)))
        for variable, seconds, relevant in limits:
            if relevant and seconds >= self.job_timeout_seconds:
                raise PydanticCustomError(
                    "herald_consistency",
                    f"{variable} ({seconds:g}) must be shorter than HERALD_JOB_TIMEOUT_SECONDS "
                    f"({self.job_timeout_seconds:g}): the job would be cancelled before the "
                    "request gives up",
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what `HeraldEnvironment` read from the mapping it was given: the process
        # environment in production, a test's dict in tests, never both mixed.
        return (init_settings,)


def provider_sections() -> dict[str, type[BaseModel]]:
    """Provider name (`azure-devops`) -> the model of its variables: the one table."""
    return {name.replace("_", "-"): model for name, model in _sections().items()}


def _sections() -> dict[str, type[BaseModel]]:
    return {
        name: field.annotation
        for name, field in HeraldConfig.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }


# ---- reading and validating --------------------------------------------------------------


class HeraldEnvironment(PydanticBaseSettingsSource):
    """The pydantic-settings source of Herald's variables, read from one mapping.

    Unlike pydantic-settings' own environment source it reads the mapping it is given (a
    test's dict, `herald worker --concurrency` overriding one value), maps provider
    sections by Herald's naming rather than a nested delimiter (`azure-devops` has a `_`
    of its own), treats a blank value as unset, and remembers which variable each value
    came from so that an error names it.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ
        #: field location -> the variable its value came from
        self.origins: dict[tuple[str, ...], str] = {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # the source protocol's per-field reading; `__call__` reads all of them at once
        variable = f"HERALD_{field_name.upper()}"
        return self.environ.get(variable) or None, variable, False

    def _read(self, location: tuple[str, ...], *variables: str) -> str | None:
        for variable in variables:
            value = self.environ.get(variable)
            if value not in (None, ""):
                self.origins[location] = variable
                return value
        return None

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        sections = _sections()
        for name in self.settings_cls.model_fields:
            if name in sections:
                nested = {
                    key: value
                    for key in sections[name].model_fields
                    if (value := self._read((name, key), variable_name(name, key))) is not None
                }
                if nested:
                    values[name] = nested
                continue
            extra = ("REDIS_URL",) if name == "redis_url" else ()
            value = self._read((name,), variable_name(name), *extra)
            if value is not None:
                values[name] = value
        if "log_format" not in values and self.environ.get("CI"):
            values["log_format"] = "json"  # CI logs are read by machines
        return values


def variable_name(*location: str) -> str:
    """`("github", "app_id")` -> `HERALD_GITHUB_APP_ID`; `("azure-devops", ...)` alike."""
    return "HERALD_" + "_".join(location).upper().replace("-", "_")


def validate(environ: Mapping[str, str]) -> HeraldConfig:
    """The whole configuration, or `ConfigError` naming every wrong variable at once."""
    source = HeraldEnvironment(HeraldConfig, environ)
    values = source()
    try:
        return HeraldConfig(**values)
    except ValidationError as exc:
        lines = [_explain(error, source.origins) for error in exc.errors()]
        # `from None`: the ValidationError's text holds the refused values, secrets too
        raise ConfigError("\n".join(lines)) from None


def _explain(error: Mapping[str, Any], origins: Mapping[tuple[str, ...], str]) -> str:
    location = tuple(str(part) for part in error["loc"])
    if not location:  # a model-wide consistency check: its message names the variables
        return str(error["msg"])
    variable = origins.get(location) or variable_name(*location)
    if variable == "REDIS_URL":
        variable = "REDIS_URL (read as HERALD_REDIS_URL)"
    field = _field(location)
    message = f"{variable} {_allowed(error, field)}"
    value = error.get("input")
    if isinstance(value, str) and not _is_secret(field):
        message += f", not {value!r}"
    return message


def _field(location: tuple[str, ...]) -> FieldInfo | None:
    model: type[BaseModel] = HeraldConfig
    field: FieldInfo | None = None
    for part in location:
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return field


def _is_secret(field: FieldInfo | None) -> bool:
    if field is None:
        return True  # nothing known about it: show nothing
    extra = field.json_schema_extra
    flagged = isinstance(extra, dict) and bool(extra.get("secret"))
    return flagged or field.annotation in (SecretStr, SecretStr | None)


def _allowed(error: Mapping[str, Any], field: FieldInfo | None) -> str:
    """What the variable allows, phrased to follow its name (pydantic's own text otherwise)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    whole = field is not None and field.annotation is int
    match kind:
        case "int_parsing" | "int_from_float" | "int_type":
            return "must be a whole number"
        case "float_parsing" | "float_type":
            return "must be a number"
        case "finite_number":
            return "must be a finite number"
        case "greater_than" if ctx.get("gt") == 0:
            return "must be positive" if whole else "must be a positive number"
        case "greater_than":
            return f"must be more than {_number(ctx['gt'])}"
        case "greater_than_equal":
            return f"must be at least {_number(ctx['ge'])}"
        case "less_than_equal":
            return f"must be at most {_number(ctx['le'])}"
        case "literal_error":
            return f"must be one of {ctx['expected']}"
        case "string_too_short":
            return "must not be empty"
        case "extra_forbidden":
            return "is not a Herald setting"
        case _:
            text = str(error["msg"])
            return text if kind.startswith("herald_") else f"is wrong: {text[:1].lower()}{text[1:]}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# ---- unknown variables -------------------------------------------------------------------


def known_variables() -> frozenset[str]:
    """Every variable the schema declares (secrets' `_FILE` variants are fields too)."""
    names = {"REDIS_URL"}
    sections = _sections()
    for name in HeraldConfig.model_fields:
        if name in sections:
            names.update(variable_name(name, key) for key in sections[name].model_fields)
        else:
            names.add(variable_name(name))
    return frozenset(names)


def unknown_variables(
    environ: Mapping[str, str], *, other_providers: Iterable[str] = ()
) -> list[str]:
    """A warning for each `HERALD_` variable nothing reads, with the nearest known name.

    `other_providers` are providers registered at run time, whose variables the schema
    cannot know: any `HERALD_<THAT PROVIDER>_...` passes.
    """
    known = known_variables()
    builtin = {variable_name(name) + "_" for name in _sections()}
    foreign = tuple(
        prefix for prefix in (variable_name(p) + "_" for p in other_providers)
        # `HERALD_GITHUB_` registered again would hide typos of GitHub's own variables
        if prefix not in builtin
    )
    warnings = []
    for variable in sorted(environ):
        if not variable.startswith("HERALD_") or variable in known:
            continue
        if variable.startswith(foreign):
            continue
        near = difflib.get_close_matches(variable, known, n=1, cutoff=0.8)
        hint = f"; did you mean {near[0]}?" if near else ""
        warnings.append(f"{variable} is not a Herald setting and is ignored{hint}")
    return warnings


# ---- the docs ----------------------------------------------------------------------------

#: The tables written into the docs: file -> the sections it shows. A section is "core",
#: "web", "worker", "artifacts", "history" (by field name) or a provider's name.
DOCS: Final[dict[str, tuple[str, ...]]] = {
    "README.md": ("core", "web", "worker"),
    "docs/limits.md": ("artifacts",),
    "docs/github.md": ("github",),
    "docs/gitlab.md": ("gitlab",),
    "docs/azure-devops.md": ("azure-devops",),
    "docs/bitbucket.md": ("bitbucket",),
    "docs/jenkins.md": ("jenkins",),
    "docs/circleci.md": ("circleci",),
    "docs/travis.md": ("travis",),
    "docs/teamcity.md": ("teamcity",),
    "docs/local.md": ("local",),
    "docs/history.md": ("history",),
}
_WEB = ("max_body_bytes", "max_buffered_bytes", "body_timeout_seconds",
        "header_timeout_seconds", "retry_after_seconds", "url_signing_key",
        "url_signing_key_file", "url_ttl_seconds", "secrets_cache_seconds", "status_token",
        "status_token_file")
_BEGIN = re.compile(r"<!-- settings: ([a-z, -]+) -->\n")
END: Final = "<!-- end of settings: written by `python -m bot.config --write` -->"


def _core_section(name: str) -> str:
    if name.startswith("artifact_"):
        return "artifacts"
    if name.startswith(("job_", "worker_")):
        return "worker"
    if name.startswith("history_"):
        return "history"
    return "web" if name in _WEB else "core"


def rows(section: str) -> Iterator[tuple[str, FieldInfo]]:
    """(variable, field) of one section, in declaration order."""
    sections = _sections()
    key = section.replace("-", "_")
    if key in sections:
        for name, field in sections[key].model_fields.items():
            yield variable_name(key, name), field
        return
    for name, field in HeraldConfig.model_fields.items():
        if name not in sections and _core_section(name) == section:
            yield variable_name(name), field


def table(sections: Sequence[str]) -> str:
    lines = ["| Variable | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for section in sections:
        for variable, field in rows(section):
            cells = (f"`{variable}`", _shown_default(field), _shown_allowed(field),
                     field.description or "")
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _extra(field: FieldInfo, key: str) -> str | None:
    extra = field.json_schema_extra
    value = extra.get(key) if isinstance(extra, dict) else None
    return value if isinstance(value, str) else None


def _shown_default(field: FieldInfo) -> str:
    shown = _extra(field, "shown_default")
    if shown is not None:
        return shown
    value = field.default
    if value is None:
        return "none"
    if isinstance(value, bool | Path | str):
        return f"`{value}`"
    if isinstance(value, int) and value >= MiB and value % MiB == 0:
        return f"{value} ({value // MiB} MiB)"
    if isinstance(value, int):
        return f"{value:,}"
    return _number(value)


def _shown_allowed(field: FieldInfo) -> str:
    shown = _extra(field, "allowed")
    if shown is not None:
        return shown
    annotation = field.annotation
    choices = get_args(annotation) if getattr(annotation, "__origin__", None) is Literal else ()
    if choices:
        return ", ".join(f"`{choice}`" for choice in choices)
    bounds: dict[str, Any] = {}
    for meta in field.metadata:
        for bound in ("gt", "ge", "le"):
            if getattr(meta, bound, None) is not None:
                bounds[bound] = getattr(meta, bound)
    kind = "whole number" if annotation is int else "seconds" if annotation is float else None
    if kind is None:
        if SecretStr in get_args(annotation):
            return "secret"
        if Path in get_args(annotation) or annotation is Path:
            return "path"
        checks = [meta.func for meta in field.metadata if isinstance(meta, AfterValidator)]
        for check in checks:
            if isinstance(check, _Check):
                return check.message.removeprefix("must be ")
        return "text"
    limits = [f"{sign} {_number(bounds[bound])}"
              for bound, sign in (("gt", ">"), ("ge", "≥"), ("le", "≤")) if bound in bounds]
    return f"{kind} {' and '.join(limits)}" if limits else kind


def render(text: str) -> str:
    """`text` with each `<!-- settings: a, b -->` ... END block rewritten from the schema."""
    out: list[str] = []
    position = 0
    for match in _BEGIN.finditer(text):
        end = text.find(END, match.end())
        if end < 0:
            raise ValueError(f"{match.group(0).strip()} has no {END!r} after it")
        sections = tuple(part.strip() for part in match.group(1).split(","))
        out += [text[position:match.end()], table(sections)]
        position = end
    out.append(text[position:])
    return "".join(out)


def drifted(root: Path) -> list[str]:
    """The doc files whose tables differ from what the schema writes."""
    return [name for name in DOCS if render(text := (root / name).read_text()) != text]


def _main(argv: Sequence[str]) -> int:
    root = Path.cwd()
    if argv == ["--write"]:
        for name in DOCS:
            path = root / name
            path.write_text(render(path.read_text()))
        return 0
    if argv == ["--check"]:
        stale = drifted(root)
        for name in stale:
            print(f"{name}: settings table out of date; run `python -m bot.config --write`",
                  file=sys.stderr)
        return 1 if stale else 0
    if argv == ["--markdown"]:
        print(table(("core", "web", "worker", "artifacts", *provider_sections())), end="")
        return 0
    print("usage: python -m bot.config --write | --check | --markdown", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
