"""Travis CI deliveries: RSA signatures over the form field, the key's source, events."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

import httpx
import pytest

from bot.events import BUILD_COMPLETED, Event, Ignored
from bot.settings import ProviderSettings
from providers.base import InvalidSignature, NotConfigured, PermanentError, TransientError
from providers.travis import TravisProvider
from providers.travis.keys import TravisKeys
from providers.travis.webhook import split_pem
from tests.providers.senders import fixture, travis_body, travis_key_pair, travis_signature

provider = TravisProvider()


def deliver(name: str, key_index: int = 0) -> Event | Ignored:
    private, public = travis_key_pair(key_index)
    payload = fixture("travis", name)
    headers = {"Signature": travis_signature(private, payload), "Travis-Repo-Slug": "x/y"}
    return provider.parse(headers, travis_body(payload), [public])


def test_a_finished_pull_request_build_is_reported_on_the_pull_request_head() -> None:
    event = deliver("build_failed_pull_request.json")

    assert isinstance(event, Event) and event.run is not None
    payload = fixture("travis", "build_failed_pull_request.json")
    assert (event.name, event.native_name, event.repo) == (
        BUILD_COMPLETED,
        "build:failed",
        "orbit-labs/telemetry",
    )
    assert event.delivery_id == hashlib.sha256(payload + b"\x00").hexdigest()
    run = event.run
    assert (run.provider, run.repo, run.run_id, run.sha, run.branch, run.change, run.status) == (
        "travis",
        "orbit-labs/telemetry",
        "271834455",
        "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2",
        "main",
        233,
        "failed",
    )
    assert run.url == "https://app.travis-ci.com/github/orbit-labs/telemetry/builds/271834455"
    assert run.extra == {
        "number": "1042",
        "type": "pull_request",
        "status_message": "Broken",
        "commit": "b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80",
        "base_commit": "1234abcd5678ef901234abcd5678ef901234abcd",
        "head_commit": "4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2",
        "compare_url": "https://github.com/orbit-labs/telemetry/pull/233",
        "tag": None,
        "repository_id": 19283746,
    }


def test_a_push_build_is_reported_on_its_commit() -> None:
    event = deliver("build_passed_push.json")
    assert isinstance(event, Event) and event.run is not None
    assert (event.run.sha, event.run.change, event.run.status) == (
        "b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f80",
        None,
        "passed",
    )


@pytest.mark.parametrize(
    ("state", "final"),
    [
        ("passed", True),
        ("failed", True),
        ("errored", True),
        ("canceled", True),
        ("started", False),
        ("created", False),
    ],
)
def test_only_finished_builds_are_reported(state: str, final: bool) -> None:
    private, public = travis_key_pair(0)
    data = json.loads(fixture("travis", "build_passed_push.json"))
    data["state"] = state
    payload = json.dumps(data).encode()
    result = provider.parse(
        {"Signature": travis_signature(private, payload)}, travis_body(payload), [public]
    )
    assert isinstance(result, Event) is final
    if not final:
        assert isinstance(result, Ignored)
        assert result.reason == f"build state {state!r} is not final"


def test_the_signature_covers_the_url_decoded_payload_field() -> None:
    private, public = travis_key_pair(0)
    data = json.loads(fixture("travis", "build_passed_push.json"))
    data["message"] = "Fix a+b & c=d at 100% (café)"
    payload = json.dumps(data, ensure_ascii=False).encode()
    body = b"payload=" + quote(payload.decode(), safe="").encode()
    headers = {"Signature": travis_signature(private, payload)}

    event = provider.parse(headers, body, [public])

    assert isinstance(event, Event)
    assert event.payload["message"] == "Fix a+b & c=d at 100% (café)"


@pytest.mark.parametrize(
    ("body", "signature", "reason"),
    [
        (b"payload=%7B%7D", "not base64!", "not valid base64"),
        (b"nothing=here", None, "no payload field"),
        (b"payload=%7B%7D&" + b"&".join(b"f%d=1" % i for i in range(20)), None, "not a Travis"),
    ],
    ids=["bad base64", "no payload field", "too many fields"],
)
def test_malformed_deliveries_are_refused_before_anything_is_parsed(
    body: bytes, signature: str | None, reason: str
) -> None:
    private, public = travis_key_pair(0)
    headers = {"Signature": signature or travis_signature(private, b"{}")}
    with pytest.raises(InvalidSignature, match=reason):
        provider.parse(headers, body, [public])


def test_a_refused_form_body_is_not_quoted_in_the_reason() -> None:
    private, public = travis_key_pair(0)
    headers = {"Signature": travis_signature(private, b"{}")}
    with pytest.raises(InvalidSignature) as refused:
        provider.parse(headers, b"payload=%7B%7D&leaked-secret-field", [public])
    assert "leaked" not in str(refused.value)


def test_a_configured_value_that_is_not_a_key_is_not_configured() -> None:
    private, _ = travis_key_pair(0)
    payload = fixture("travis", "build_passed_push.json")
    with pytest.raises(NotConfigured, match="HERALD_TRAVIS_PUBLIC_KEY"):
        provider.parse(
            {"Signature": travis_signature(private, payload)},
            travis_body(payload),
            [b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"],
        )


# ---- where the key comes from ----------------------------------------------------------


def settings(**values: str) -> ProviderSettings:
    return ProviderSettings("travis", {f"HERALD_TRAVIS_{k.upper()}": v for k, v in values.items()})


class FakeTravisAPI:
    """Travis CI's `/config` endpoint on an in-process transport, recording each request."""

    def __init__(self, *public_keys: bytes, status: int = 200) -> None:
        self.keys = list(public_keys)
        self.status = status
        self.requests: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        key = self.keys[min(len(self.requests), len(self.keys)) - 1]
        webhook = {"public_key": key.decode()}
        body = {"config": {"host": "travis-ci.com", "notifications": {"webhook": webhook}}}
        return httpx.Response(self.status, json=body)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_configured_key_is_used_without_asking_the_api(tmp_path: object) -> None:
    _, old = travis_key_pair(0)
    _, new = travis_key_pair(1)
    api = FakeTravisAPI(old)
    async with api.client() as http:
        keys = await TravisKeys().secrets(settings(public_key=(new + old).decode()), http)
    assert keys == [new, old]
    assert api.requests == []


async def test_the_key_is_fetched_from_the_configured_api_and_cached_for_an_hour() -> None:
    _, key = travis_key_pair(0)
    api = FakeTravisAPI(key)
    clock = Clock()
    travis = TravisKeys(clock=clock)
    async with api.client() as http:
        config = settings(api_url="https://travis.internal.example/")
        first = await travis.secrets(config, http)
        clock.now += 3599
        cached = await travis.secrets(config, http)
        clock.now += 2
        refetched = await travis.secrets(config, http)
    assert first == cached == refetched == [key]
    assert api.requests == ["https://travis.internal.example/config"] * 2


async def test_the_default_api_is_travis_ci_com() -> None:
    _, key = travis_key_pair(0)
    api = FakeTravisAPI(key)
    async with api.client() as http:
        await TravisKeys().secrets(settings(), http)
    assert api.requests == ["https://api.travis-ci.com/config"]


async def test_a_rotated_key_is_picked_up_by_refresh_after_a_failed_verification() -> None:
    _, old = travis_key_pair(0)
    new_private, new = travis_key_pair(1)
    api = FakeTravisAPI(old, new)
    clock = Clock()
    travis = TravisKeys(clock=clock)
    payload = fixture("travis", "build_passed_push.json")
    headers = {"Signature": travis_signature(new_private, payload)}
    async with api.client() as http:
        keys = await travis.secrets(settings(), http)
        with pytest.raises(InvalidSignature):
            TravisProvider().parse(headers, travis_body(payload), keys)
        # Within a minute of the last fetch nothing is refetched (forged traffic is cheap).
        assert await travis.refresh(settings(), http) is None
        clock.now += 61
        fresh = await travis.refresh(settings(), http)
        assert fresh == [new]
        assert isinstance(TravisProvider().parse(headers, travis_body(payload), fresh), Event)
        # The refreshed key is what `secrets` serves from now on.
        assert await travis.secrets(settings(), http) == [new]
    assert len(api.requests) == 2


async def test_refresh_returns_none_when_the_key_did_not_change_or_is_configured() -> None:
    _, key = travis_key_pair(0)
    api = FakeTravisAPI(key)
    clock = Clock()
    travis = TravisKeys(clock=clock)
    async with api.client() as http:
        await travis.secrets(settings(), http)
        clock.now += 120
        assert await travis.refresh(settings(), http) is None
        assert await travis.refresh(settings(public_key=key.decode()), http) is None


@pytest.mark.parametrize(
    ("status", "error"), [(503, TransientError), (429, TransientError), (404, PermanentError)]
)
async def test_a_failed_key_fetch_says_whether_to_retry(
    status: int, error: type[Exception]
) -> None:
    _, key = travis_key_pair(0)
    api = FakeTravisAPI(key, status=status)
    async with api.client() as http:
        with pytest.raises(error, match=f"HTTP {status}"):
            await TravisKeys().secrets(settings(), http)


async def test_an_unreachable_api_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(TransientError, match="could not fetch the Travis CI public key"):
            await TravisKeys().secrets(settings(), http)


async def test_a_config_without_a_key_is_permanent() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"config": {}}))
    ) as http:
        with pytest.raises(PermanentError, match="public_key"):
            await TravisKeys().secrets(settings(), http)


def test_pem_blocks_are_split_for_rotation() -> None:
    _, old = travis_key_pair(0)
    _, new = travis_key_pair(1)
    assert split_pem(b"junk\n" + old + b"\n" + new.replace(b"\n", b"\r\n")) == [old, new]
    assert split_pem(b"no key here") == []
