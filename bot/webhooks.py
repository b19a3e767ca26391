"""The ingress endpoint, `POST /webhooks/{provider}`: verify, translate, queue, answer.

Steps (see DESIGN.md, "The flow"), each with the one status a sender can act on:

1. unknown provider → 404; a Content-Length over the cap → 413 before reading anything
2. body read in chunks against the byte cap (413 at cap + 1, the rest is never read) and a
   deadline on the whole receive (408), so neither a huge nor a trickling body holds memory
   or a worker for long; and against the process's budget of body bytes held at once
   across all connections (`BodyBudget`, `HERALD_MAX_BUFFERED_BYTES`): 503 with
   Retry-After when the delivery would overrun it, so many big uploads at once cannot
   exhaust memory
3. content type not one the provider sends → 400
4. `provider.parse(headers, body, secrets)`: NotConfigured / InvalidSignature → 401,
   BadPayload → 400, Ignored → 202 `ignored` with the reason (never a 4xx: GitLab disables
   a hook after repeated 4xx answers)
5. enqueue: 202 `queued` (or `spooled` while Redis is down), 200 `duplicate` for a
   redelivery; 503 with Retry-After only if neither Redis nor the local spool took it.

One canonical log line per delivery: provider, event, delivery, outcome, status,
latency_ms. Bodies, signatures and secrets are never logged or echoed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from bot.events import Event, Ignored
from bot.logging import get_logger
from bot.ports import (
    BadPayload,
    Headers,
    InvalidSignature,
    NotConfigured,
    Provider,
    ProviderDirectory,
    TransientError,
    UnknownProvider,
)
from bot.queue import job_namespace

if TYPE_CHECKING:
    from bot.app import Runtime

log = get_logger("herald.webhooks")

#: Where the endpoint is mounted; `provider_from_path` matches what the Starlette route
#: `/webhooks/{provider}` would (one non-empty path segment).
PATH_PREFIX: Final = "/webhooks/"

#: Headers that identify a delivery, per provider, for the log line of a delivery that was
#: refused before parsing (after parsing, the Event's own delivery id is used).
DELIVERY_HEADERS = (
    "x-github-delivery",
    "idempotency-key",
    "x-gitlab-event-uuid",
    "x-request-uuid",
    "x-request-id",
)

CLOSE = {"connection": "close"}
_NO_HEADERS: Final[Mapping[str, str]] = {}
_JSON_HEADERS: Final = (b"content-type", b"application/json")


class _Refused(Exception):
    def __init__(self, status: int, outcome: str, reason: str, headers: Mapping[str, str]):
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason
        self.headers = dict(headers)


class RequestHeaders(Mapping[str, str]):
    """A request's headers, looked up case-insensitively; of a repeated header, the first
    (as Starlette's `Headers`). A dict built once: Starlette's decodes and compares every
    header on every lookup, and a delivery takes half a dozen lookups."""

    __slots__ = ("_raw", "_values")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._raw = list(raw)
        values: dict[str, str] = {}
        for key, value in reversed(self._raw):
            values[key.decode("latin-1").lower()] = value.decode("latin-1")
        self._values = values

    def __getitem__(self, key: str) -> str:
        return self._values[key.lower()]

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getlist(self, key: str) -> list[str]:
        """Every value of a repeated header, in order."""
        wanted = key.lower()
        return [value.decode("latin-1") for name, value in self._raw
                if name.decode("latin-1").lower() == wanted]


def provider_from_path(path: str) -> str | None:
    """The `{provider}` of `/webhooks/{provider}`, or None for any other path."""
    if not path.startswith(PATH_PREFIX):
        return None
    name = path[len(PATH_PREFIX):]
    if not name or "/" in name:
        return None
    return name


class WebhookEndpoint:
    """`POST /webhooks/{provider}` as a plain ASGI app.

    Mounted as the route's endpoint, and called directly by `bot.app.HeraldApp` for the
    webhook path, bypassing Starlette's middleware, routing, `Request` and `Response`
    objects: together they cost about a fifth of a request's time for nothing this
    endpoint uses (it answers every error itself).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime: Runtime = scope["app"].state.runtime
        await handle(runtime, scope["path_params"]["provider"], scope, receive, send)


async def handle(runtime: Runtime, name: str, scope: Scope, receive: Receive,
                 send: Send) -> None:
    """Answer one delivery to provider `name` (the request's method is POST)."""
    started = time.perf_counter()
    headers = RequestHeaders(scope["headers"])
    delivery: str | None = None
    event_label = "unknown"
    provider_label = "unknown"  # the metric's label until the name is known to be ours
    response_headers: Mapping[str, str] = _NO_HEADERS
    content: dict[str, Any]
    claim = runtime.body_budget.claim(runtime.config.retry_after_seconds)
    try:
        provider = _provider(runtime.directory, name)
        provider_label = name
        body = await _read_body(headers, receive, runtime.config.max_body_bytes,
                                runtime.body_deadlines, claim)
        _check_content_type(provider, headers.get("content-type"))
        try:
            result = await _parse(runtime, provider, name, headers, body)
        except (InvalidSignature, NotConfigured) as exc:
            if isinstance(exc, InvalidSignature):
                runtime.metrics.signature_failures.labels(name).inc()
            raise _Refused(401, "unauthorized", str(exc), {}) from None
        except BadPayload as exc:
            raise _Refused(400, "bad_payload", str(exc), {}) from None
        except TransientError as exc:
            # the provider's verification key could not be fetched just now
            retry = {"retry-after": str(runtime.config.retry_after_seconds)}
            raise _Refused(503, "unavailable", str(exc), retry) from None
        if not isinstance(result, Event):
            event_label = result.native_name
            status, outcome = 202, "ignored"
            content = {"status": "ignored", "reason": result.reason}
        else:
            event_label, delivery = result.name, result.delivery_id
            status, outcome, content = await _enqueue(runtime, result)
    except _Refused as refused:
        status, outcome = refused.status, refused.outcome
        content = {"status": "error" if status != 503 else "unavailable", "reason": refused.reason}
        response_headers = refused.headers
    except ClientDisconnect:
        status, outcome, content = 499, "error", {}
    except Exception:
        delivery = delivery or _delivery_header(headers)
        log.exception("webhook failed", provider=name, delivery=delivery)
        status, outcome = 500, "error"
        content = {"status": "error", "reason": "internal error; the delivery was not queued"}
    finally:
        # the body is not needed past this point: the job holds its own encoding
        claim.release()
    if status == 499:
        # nobody is listening; answer anyway so the server can close the exchange
        await _send(send, 400, b"", [(b"content-length", b"0")])
    else:
        await _send_json(send, status, content, response_headers)
    if delivery is None:
        delivery = _delivery_header(headers)
    runtime.metrics.delivery(provider_label, event_label, outcome).inc()
    log.info(
        "webhook",
        provider=name,
        _event=event_label,
        delivery=delivery,
        outcome=outcome,
        status=status,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        **({"reason": content.get("reason")} if status >= 400 or outcome == "ignored" else {}),
    )


async def _send_json(send: Send, status: int, content: dict[str, Any],
                     extra: Mapping[str, str]) -> None:
    body = orjson.dumps(content)
    headers = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in extra.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    headers.append(_JSON_HEADERS)
    await _send(send, status, body, headers)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _delivery_header(headers: Headers) -> str | None:
    return next((headers[h] for h in DELIVERY_HEADERS if h in headers), None)


async def _parse(
    runtime: Runtime, provider: Provider, name: str, headers: Headers, body: bytes
) -> Event | Ignored:
    secrets = await runtime.secrets(name)
    try:
        return provider.parse(headers, body, secrets)
    except InvalidSignature:
        # A provider whose key can change under us (Travis CI's public key) gets one
        # refetch, rate-limited in the runtime, before the delivery is refused.
        fresh = await runtime.refresh_secrets(name)
        if fresh is None:
            raise
        return provider.parse(headers, body, fresh)


def _provider(directory: ProviderDirectory, name: str) -> Provider:
    try:
        return directory.parser(name)
    except UnknownProvider:
        raise _Refused(404, "unknown_provider", f"no provider named {name!r}", {}) from None
    except ImportError:
        # a built-in name whose package is not part of this build
        raise _Refused(404, "unknown_provider", f"provider {name!r} is not available in this build",
                       {}) from None


class _Reading:
    __slots__ = ("cancelling", "deadline", "done", "expired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.cancelling = task.cancelling()
        self.done = False
        self.expired = False


class BodyDeadlines:
    """The body-read deadline of every request in one event loop, kept with one timer.

    `asyncio.timeout` per request arms and cancels a loop timer each time (~8% of a
    delivery's time under load). All requests share one timeout, so their deadlines come
    in arrival order: a queue, whose head alone needs a timer. A request past its deadline
    gets its task cancelled, which `_read_body` turns into a 408, as `asyncio.timeout`
    would (a cancellation from elsewhere still propagates).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._reading: deque[_Reading] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> _Reading:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a body deadline needs a task to cancel")
        reading = _Reading(task, loop.time() + self.seconds)
        self._reading.append(reading)
        if self._timer is None:
            self._timer = loop.call_at(reading.deadline, self._expire)
        return reading

    def finish(self, reading: _Reading) -> None:
        reading.done = True
        queue = self._reading
        while queue and queue[0].done:
            queue.popleft()

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        queue = self._reading
        while queue and (queue[0].done or queue[0].deadline <= now):
            reading = queue.popleft()
            if not reading.done:
                reading.expired = True
                reading.task.cancel()
        if queue:
            self._timer = loop.call_at(max(queue[0].deadline, now), self._expire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class BodyBudget:
    """Bytes of request bodies this process holds at once, across all its connections.

    Each request claims its declared Content-Length before reading (or, streamed without
    one, each chunk as it arrives) and gives it back when its answer is decided. One event
    loop runs every request of a process, so a plain counter is exact.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def claim(self, retry_after: int) -> BodyClaim:
        return BodyClaim(self, retry_after)


class BodyClaim:
    """One request's share of the `BodyBudget`."""

    __slots__ = ("_budget", "_retry_after", "held")

    def __init__(self, budget: BodyBudget, retry_after: int) -> None:
        self._budget = budget
        self._retry_after = retry_after
        self.held = 0

    def grow_to(self, size: int) -> None:
        """Hold `size` bytes in all, or refuse with 503 if the budget has no room."""
        more = size - self.held
        if more <= 0:
            return
        budget = self._budget
        if budget.held + more > budget.limit:
            raise _Refused(
                503, "unavailable",
                f"the server already holds its {budget.limit}-byte limit of request bodies; "
                "retry later",
                {"retry-after": str(self._retry_after), **CLOSE},
            )
        budget.held += more
        self.held = size

    def release(self) -> None:
        self._budget.held -= self.held
        self.held = 0


#: Content-Length is at most this many digits: counted before int(), which refuses more
#: than 4300 (and a body that long is over any cap anyway).
_MAX_LENGTH_DIGITS: Final = 19


def _declared_length(declared: str, cap: int) -> int:
    text = declared.strip()
    if not text or not (text.isascii() and text.isdecimal()):
        raise _Refused(400, "bad_payload", "malformed Content-Length", CLOSE)
    if len(text.lstrip("0")) > _MAX_LENGTH_DIGITS or int(text) > cap:
        raise _Refused(413, "too_large", f"body over the {cap}-byte limit", CLOSE)
    return int(text)


async def _read_body(headers: Headers, receive: Receive, cap: int,
                     deadlines: BodyDeadlines, claim: BodyClaim | None = None) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        length = _declared_length(declared, cap)
        if claim is not None:
            claim.grow_to(length)
    chunks: list[bytes] = []
    size = 0
    reading = deadlines.start()
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > cap:
                    # Connection: close, so the server drops the rest instead of reading it
                    raise _Refused(413, "too_large", f"body over the {cap}-byte limit", CLOSE)
                if claim is not None:
                    claim.grow_to(size)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if reading.expired and reading.task.uncancel() <= reading.cancelling:
            reason = f"body not received within {deadlines.seconds:g} s"
            raise _Refused(408, "timeout", reason, CLOSE) from None
        raise
    finally:
        deadlines.finish(reading)
    # a body that arrived in one message (the usual case) is used as is, not copied
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _check_content_type(provider: Provider, header: str | None) -> None:
    media_type = (header or "").split(";", 1)[0].strip().lower()
    if media_type not in provider.content_types:
        expected = " or ".join(provider.content_types)
        got = media_type or "none"
        raise _Refused(400, "bad_content_type", f"content type {got!r}; expected {expected}", {})


async def _enqueue(runtime: Runtime, event: Event) -> tuple[int, str, dict[str, Any]]:
    started = time.perf_counter()
    try:
        outcome = await runtime.queue.enqueue(event)
    except (OSError, RedisError, RuntimeError):
        # Redis failed and so did the spool (disk full, read-only): refuse, loudly, so the
        # sender's retry (or a manual redelivery) brings it back.
        log.exception("neither redis nor the spool accepted the delivery",
                      provider=event.provider, delivery=event.delivery_id)
        raise _Refused(
            503, "unavailable", "queue unavailable; retry later",
            {"retry-after": str(runtime.config.retry_after_seconds)},
        ) from None
    runtime.metrics.enqueue_seconds.observe(time.perf_counter() - started)
    # The id ARQ and the logs know the job by: the queue's namespace included.
    job_id = f"{job_namespace(runtime.settings.queue_name)}{event.job_id}"
    if outcome == "duplicate":
        return 200, outcome, {"status": "duplicate", "job_id": job_id}
    return 202, outcome, {"status": outcome, "job_id": job_id}
