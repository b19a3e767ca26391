"""Every provider and scheme, one table: who may deliver, and what happens before parsing.

The rules (from the issue): compare against every configured secret in constant time,
refuse everything when no secret is configured, name the missing header, parse no JSON
before the signature holds, and answer a verified but unused event with a reason.
"""

from __future__ import annotations

import json

import pytest

from bot.events import Event, Ignored
from providers.base import BadPayload, InvalidSignature, NotConfigured
from tests.providers.senders import SENDERS, SIGNING_SENDERS, Sender, fixture

ids = [sender.id for sender in SENDERS]


def _payload(sender: Sender) -> bytes:
    return fixture(*sender.fixture)


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
def test_a_delivery_authenticated_with_the_configured_secret_is_an_event(sender: Sender) -> None:
    material, configured = sender.credential(0)
    headers, body = sender.deliver(_payload(sender), material)

    result = sender.provider.parse(headers, body, [configured])

    assert isinstance(result, Event)
    assert result.provider == sender.provider.name
    assert result.payload == json.loads(_payload(sender))


@pytest.mark.parametrize("sender", SIGNING_SENDERS, ids=[s.id for s in SIGNING_SENDERS])
def test_a_body_changed_after_signing_is_refused(sender: Sender) -> None:
    material, configured = sender.credential(0)
    payload = _payload(sender)
    headers, _ = sender.deliver(payload, material)
    # Same JSON value, different bytes: the signature covers the raw body, not its meaning.
    _, reformatted = sender.deliver(json.dumps(json.loads(payload)).encode(), material)
    changed = payload.replace(b"2026-11-25", b"2026-11-26", 1)
    assert changed != payload
    _, altered = sender.deliver(changed, material)

    for body in (reformatted, altered):
        with pytest.raises(InvalidSignature, match="does not"):
            sender.provider.parse(headers, body, [configured])


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
def test_a_delivery_authenticated_with_another_secret_is_refused(sender: Sender) -> None:
    material, _ = sender.credential(0)
    _, configured_elsewhere = sender.credential(1)
    headers, body = sender.deliver(_payload(sender), material)

    with pytest.raises(InvalidSignature, match=r"not match|does not verify"):
        sender.provider.parse(headers, body, [configured_elsewhere])


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
@pytest.mark.parametrize("signed_with", [0, 1], ids=["old secret", "new secret"])
def test_during_a_rotation_both_the_old_and_the_new_secret_are_accepted(
    sender: Sender, signed_with: int
) -> None:
    material, _ = sender.credential(signed_with)
    configured = [sender.credential(1)[1], sender.credential(0)[1]]  # newest first
    headers, body = sender.deliver(_payload(sender), material)

    assert isinstance(sender.provider.parse(headers, body, configured), Event)


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
def test_a_delivery_without_the_authentication_header_is_refused_by_name(sender: Sender) -> None:
    material, configured = sender.credential(0)
    headers, body = sender.deliver(_payload(sender), material)
    del headers[sender.auth_header]

    with pytest.raises(InvalidSignature, match=f"missing .*{sender.auth_header}"):
        sender.provider.parse(headers, body, [configured])


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
@pytest.mark.parametrize("configured", [[], [b""]], ids=["no secrets", "an empty secret"])
def test_without_a_configured_secret_nothing_is_accepted(
    sender: Sender, configured: list[bytes]
) -> None:
    material, _ = sender.credential(0)
    headers, body = sender.deliver(_payload(sender), material)

    with pytest.raises(NotConfigured, match="HERALD_"):
        sender.provider.parse(headers, body, configured)


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
def test_a_verified_body_that_is_not_json_is_a_bad_payload(sender: Sender) -> None:
    material, configured = sender.credential(0)
    headers, body = sender.deliver(b'{"action": "completed", ', material)

    with pytest.raises(BadPayload, match="invalid JSON"):
        sender.provider.parse(headers, body, [configured])


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
def test_a_verified_body_nested_too_deep_to_parse_is_a_bad_payload(sender: Sender) -> None:
    """Deeper than orjson's limit of 1024: the standard library's parser then runs out of
    recursion, which must still be the sender's 400, not a server error."""
    material, configured = sender.credential(0)
    headers, body = sender.deliver(b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}", material)

    with pytest.raises(BadPayload, match="invalid JSON"):
        sender.provider.parse(headers, body, [configured])


@pytest.mark.parametrize("sender", SIGNING_SENDERS, ids=[s.id for s in SIGNING_SENDERS])
def test_an_unverified_body_is_never_parsed(sender: Sender) -> None:
    """Not JSON and not signed: the answer is about the signature, never about the JSON."""
    material, configured = sender.credential(0)
    headers, _ = sender.deliver(_payload(sender), material)
    _, garbage = sender.deliver(b"<<< not json at all", material)

    with pytest.raises(InvalidSignature):
        sender.provider.parse(headers, garbage, [configured])


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
def test_a_verified_event_herald_does_not_use_is_ignored_with_a_reason(sender: Sender) -> None:
    material, configured = sender.credential(0)
    event_headers, payload = sender.unknown_event
    headers, body = sender.deliver(payload, material, {**sender.event, **event_headers})

    result = sender.provider.parse(headers, body, [configured])

    assert isinstance(result, Ignored)
    assert result.provider == sender.provider.name
    assert result.reason
    assert result.native_name


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
def test_header_names_are_matched_whatever_their_case(sender: Sender) -> None:
    material, configured = sender.credential(0)
    headers, body = sender.deliver(_payload(sender), material)

    for transform in (str.lower, str.upper):
        cased = {transform(name): value for name, value in headers.items()}
        assert isinstance(sender.provider.parse(cased, body, [configured]), Event)


@pytest.mark.parametrize("sender", SENDERS, ids=ids)
def test_a_redelivery_has_the_same_delivery_id(sender: Sender) -> None:
    material, configured = sender.credential(0)
    headers, body = sender.deliver(_payload(sender), material)

    first = sender.provider.parse(headers, body, [configured])
    again = sender.provider.parse(dict(headers), body, [configured])

    assert isinstance(first, Event)
    assert isinstance(again, Event)
    assert first.delivery_id == again.delivery_id
    assert first.job_id == f"{sender.provider.name}:{first.delivery_id}"
