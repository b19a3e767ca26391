"""Fuzz every provider's endpoint through the real ASGI app: never a 5xx, never an exception.

Bodies are random bytes, random JSON (huge integers, lone surrogates, deep nesting, wrong
types) and real fixtures with one value replaced; each is signed the way its sender signs,
so it reaches the parser, and then its headers are shuffled: random values (huge numbers,
non-ASCII, empty) for the headers the providers read, replaced, added or repeated. The app
runs once per test, with its lifespan, on the test's own Redis database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from bot.composition import create_app
from tests.app.conftest import make_settings
from tests.fuzz.conftest import FUZZ
from tests.providers.senders import (
    SENDERS,
    Sender,
    fixture_json,
    gitlab_signature_headers,
)

HUGE = "9" * 5000
MARK = "@@RAW@@"
#: What stands in for MARK in the JSON text: what `json.dumps` cannot write itself.
RAW_VALUES = [HUGE, "-" + HUGE, '"' + HUGE + '"', "1e99999", '"\\ud800"', '"a\\udfffb"',
              "[" * 2000 + "]" * 2000, '{"a":' * 600 + "1" + "}" * 600]


def environment() -> dict[str, str]:
    """Every provider configured with the first credential of each of its senders."""
    env: dict[str, dict[str, str]] = {}
    for s in SENDERS:
        _, configured = s.credential(0)
        name = s.provider.name
        if name == "travis":
            env.setdefault(name, {})["HERALD_TRAVIS_PUBLIC_KEY"] = configured.decode()
            continue
        variable = f"HERALD_{name.upper().replace('-', '_')}_WEBHOOK_SECRET"
        values = env.setdefault(name, {})
        values[variable] = ",".join(filter(None, [values.get(variable), configured.decode()]))
    return {k: v for values in env.values() for k, v in values.items()}


Post = Callable[[str, list[tuple[bytes, bytes]], bytes], httpx.Response]


@contextlib.contextmanager
def app_posting(redis_url: str, state: Path) -> Iterator[Post]:
    """The app with its lifespan on a loop of its own, and a blocking `post`: hypothesis
    drives a plain function, one request per example."""
    loop = asyncio.new_event_loop()
    # The process' logging stays as it was: configuring it again would swap structlog's
    # processor list under loggers already cached (`capture_logs` then sees nothing).
    app = create_app(make_settings(redis_url, state, **environment()), configure_logging=False)
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://herald")

    def post(provider: str, headers: list[tuple[bytes, bytes]], body: bytes) -> httpx.Response:
        return loop.run_until_complete(
            client.post(f"/webhooks/{provider}", content=body, headers=headers)
        )

    try:
        yield post
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()


# ---- strategies --------------------------------------------------------------------------

surrogates = st.sampled_from(["\ud800", "x\udbffy", "\udc00\ud800", "ok\udfff"])
texts = st.text(max_size=20) | surrogates | st.sampled_from(["", " ", "refs/pull/9/merge"])
numbers = st.integers() | st.sampled_from([2**63 - 1, 2**63, -(2**63) - 1, 10**400, -1, 0])
scalars = (st.none() | st.booleans() | numbers | texts
           | st.floats(allow_nan=False) | st.just(MARK))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=16,
)


def dumps(value: Any, raw: str) -> bytes:
    return json.dumps(value).replace(json.dumps(MARK), raw).encode()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths(child, (*prefix, index))


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    node = value
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return value


@st.composite
def bodies(draw: st.DrawFn, sender: Sender) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "fixture"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    raw = draw(st.sampled_from(RAW_VALUES))
    if kind == "json":
        return dumps(draw(json_values), raw)
    payload = fixture_json(*sender.fixture)
    path = draw(st.sampled_from(sorted(paths(payload), key=repr)))
    return dumps(replaced(payload, path, draw(json_values)), raw)


header_names = st.sampled_from([
    "content-type", "content-length", "x-github-event", "x-hub-signature-256",
    "x-hub-signature", "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type", "x-gitlab-event", "x-gitlab-token",
    "webhook-id", "webhook-timestamp", "webhook-signature", "idempotency-key",
    "x-event-key", "x-request-uuid", "circleci-signature", "circleci-event-type",
    "signature", "authorization", "x-herald-token",
])
header_values = (
    st.sampled_from(["", " ", "9" * 400, HUGE, "-1", "sha256=", "v1,", "v1=", "Basic ",
                     "Basic Og==", "Pipeline Hook", "workflow_run", "application/json",
                     "\u00e9\u00ff\u00a0", "\u0661\u0662"])
    | st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30)
)


@st.composite
def shuffled_headers(draw: st.DrawFn, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    items = [(k.lower(), v) for k, v in headers.items()]
    for _ in range(draw(st.integers(0, 3))):
        name, value = draw(header_names), draw(header_values)
        how = draw(st.sampled_from(["replace", "add", "repeat"]))
        if how == "replace":
            items = [(k, v) for k, v in items if k != name]
        items.append((name, value))
        if how == "repeat":
            items.append((name, value))
    # on the wire a value is bytes: UTF-8 here, which the server reads as latin-1
    return [(k.encode("latin-1"), v.encode("utf-8")) for k, v in items]


def signed(sender: Sender, body: bytes) -> tuple[dict[str, str], bytes]:
    secret, _ = sender.credential(0)
    if sender.id == "gitlab-signing":
        headers = {**sender.event, **gitlab_signature_headers(secret, body,
                                                              timestamp=time.time())}
        wire = body
    elif sender.id == "travis" and not body.startswith(b"{"):
        return sender.deliver(b"{}", secret)[0], body  # random bytes where a form belongs
    else:
        headers, wire = sender.deliver(body, secret)
    content_type = ("application/x-www-form-urlencoded" if sender.id == "travis"
                    else "application/json")
    return {"content-type": content_type, **headers}, wire


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    assert isinstance(response.json(), dict)


# ---- the properties ----------------------------------------------------------------------


def test_signed_deliveries_of_any_shape_get_an_answer_below_500(
    redis_url: str, tmp_path: Path
) -> None:
    with app_posting(redis_url, tmp_path / "state") as post:

        @FUZZ
        @given(st.data())
        def delivery(data: st.DataObject) -> None:
            sender = data.draw(st.sampled_from(SENDERS), label="sender")
            body = data.draw(bodies(sender), label="body")
            headers, wire = signed(sender, body)
            check(post(sender.provider.name, [(k.encode(), v.encode())
                                              for k, v in headers.items()], wire))

        delivery()


def test_deliveries_with_wild_headers_get_an_answer_below_500(
    redis_url: str, tmp_path: Path
) -> None:
    with app_posting(redis_url, tmp_path / "state") as post:

        @FUZZ
        @given(st.data())
        def delivery(data: st.DataObject) -> None:
            sender = data.draw(st.sampled_from(SENDERS), label="sender")
            body = data.draw(bodies(sender), label="body")
            headers, wire = signed(sender, body)
            check(post(sender.provider.name, data.draw(shuffled_headers(headers)), wire))

        delivery()


def test_unsigned_noise_to_any_path_gets_an_answer_below_500(
    redis_url: str, tmp_path: Path
) -> None:
    names = [*sorted({s.provider.name for s in SENDERS}), "nope", "GitHub", "%00"]
    with app_posting(redis_url, tmp_path / "state") as post:

        @FUZZ
        @given(st.sampled_from(names), st.binary(max_size=200),
               st.lists(st.tuples(header_names, header_values), max_size=6))
        @example("gitlab", b"{}", [("webhook-signature", "v1,AAAA"), ("webhook-id", "m"),
                                    ("webhook-timestamp", "9" * 400)])
        def delivery(name: str, body: bytes, headers: list[tuple[str, str]]) -> None:
            check(post(name, [(k.encode(), v.encode("utf-8")) for k, v in headers], body))

        delivery()
