"""Webhook verification helpers shared by the provider parsers: pure, constant-time.

Every check compares against *every* configured secret without stopping at the first
match, so the time taken does not tell which secret (old or new, during a rotation)
matched, and a missing secret list is an error rather than an open door.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Final

import orjson

from bot.settings import env_name
from providers.base import BadPayload, Headers, InvalidSignature, NotConfigured

#: The header Herald reads a shared secret from when the sender cannot sign (Azure DevOps
#: service hooks, Jenkins `httpRequest`, TeamCity): one name for all, see docs/webhooks.md.
TOKEN_HEADER: Final = "X-Herald-Token"  # noqa: S105 - a header name, not a secret


def header(headers: Headers, name: str) -> str | None:
    """Case-insensitive header lookup that also works on a plain dict with mixed-case keys."""
    value = headers.get(name.lower())
    if value is None:
        value = headers.get(name)
    if value is None and not hasattr(headers, "getlist"):
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def event_header(headers: Headers, name: str) -> str:
    """The event name the sender puts in header `name`: a delivery without it is malformed."""
    value = (header(headers, name) or "").strip()
    if not value:
        raise BadPayload(f"missing {name} header")
    return value


def delivery_id(headers: Headers, body: bytes, *names: str) -> str:
    """The first non-blank of the sender's delivery-id headers `names`, in that order; else
    a digest of the body, so that a resend of the same body still dedupes."""
    for name in names:
        value = (header(headers, name) or "").strip()
        if value:
            return value
    return body_digest(body)


def require_secrets(secrets: Sequence[bytes], provider: str) -> None:
    """Unsigned traffic is never accepted by default: no secret configured is an error."""
    if not any(secrets):
        variable = env_name(provider, "webhook_secret")
        raise NotConfigured(f"no webhook secret configured: set {variable}")


def matches_any(candidate: bytes, expected: Iterable[bytes]) -> bool:
    """True when `candidate` equals one of `expected`; every comparison runs."""
    matched = False
    for value in expected:
        matched |= hmac.compare_digest(candidate, value)
    return matched


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def hex_hmac_matches(body: bytes, signatures: Iterable[str], secrets: Sequence[bytes]) -> bool:
    """Does any hex HMAC-SHA256 in `signatures` match the body under any of `secrets`?"""
    expected = [hmac_sha256(secret, body).hex().encode() for secret in secrets if secret]
    matched = False
    for signature in signatures:
        matched |= matches_any(signature.strip().lower().encode(), expected)
    return matched


def check_sha256_signature(
    signature: str | None, name: str, body: bytes, secrets: Sequence[bytes]
) -> None:
    """Verify the value of a `name: sha256=<hex>` header (GitHub's `X-Hub-Signature-256`,
    Bitbucket's `X-Hub-Signature`): the HMAC-SHA256 of the raw body under any secret."""
    if signature is None:
        raise InvalidSignature(f"missing {name} header")
    algorithm, _, digest = signature.strip().partition("=")
    if algorithm != "sha256" or not digest:
        raise InvalidSignature(f"{name} must look like 'sha256=<hex>'")
    if not hex_hmac_matches(body, [digest], secrets):
        raise InvalidSignature(f"{name} does not match any configured secret")


def body_digest(*parts: bytes | str) -> str:
    """A stable delivery id for senders that send none: sha256 over the given parts."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


def load_json_object(body: bytes | str) -> dict[str, Any]:
    """Parse a verified body; only an object is a webhook payload.

    orjson parses a typical 20 kB payload about three times faster than the standard
    library. Whatever orjson refuses (integers beyond 64 bits, NaN, lone surrogates,
    UTF-16/32 or a BOM, invalid input) goes to `json.loads`, so what is accepted, the
    values produced and the error messages are the standard library's. Nesting deeper
    than orjson's limit exhausts the standard library's recursion: invalid JSON as well.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BadPayload(f"invalid JSON: {exc}") from exc
    else:
        if isinstance(data, dict):
            _last_parsed.set((data, body))
    if not isinstance(data, dict):
        raise BadPayload(f"invalid JSON: expected an object, got {type(data).__name__}")
    return data


#: The object `load_json_object` last returned in this context (one request's task) and
#: the text it was parsed from, when orjson parsed it (strict JSON, UTF-8).
_last_parsed: ContextVar[tuple[dict[str, Any], bytes | str] | None] = ContextVar(
    "herald_last_parsed", default=None
)


def raw_json(payload: object) -> bytes | str | None:
    """The JSON text `payload` was parsed from, if it is the object `load_json_object` last
    returned in this context; else None.

    Lets the web process put the verified body into the job as it came instead of
    serialising the parsed payload again (~5 µs of a 20 kB one). Parsers return the parsed
    object as an event's payload without changing it; one that builds or edits a payload
    returns another object, or must not use this (an edited dict would still be this one).
    """
    last = _last_parsed.get()
    if last is not None and last[0] is payload:
        return last[1]
    return None


def check_shared_secret(headers: Headers, secrets: Sequence[bytes], provider: str) -> None:
    """Verify a sender that cannot sign: HTTP Basic credentials or the `X-Herald-Token` header.

    Each configured secret is either `user:password` (the whole Basic credential must match)
    or a bare token (matched by `X-Herald-Token`, or by the password of a Basic credential
    with any user name, for senders whose user name field cannot be left empty).
    """
    require_secrets(secrets, provider)
    # An empty entry would accept an empty token or password: it is no secret at all.
    secrets = [secret for secret in secrets if secret]
    token = header(headers, TOKEN_HEADER)
    authorization = header(headers, "Authorization")
    if token is not None:
        if matches_any(token.strip().encode(), secrets):
            return
        raise InvalidSignature(f"{TOKEN_HEADER} does not match any configured secret")
    if authorization is None:
        raise InvalidSignature(f"missing Authorization (HTTP Basic) or {TOKEN_HEADER} header")
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        # The header's value is never echoed: a sender that puts a bare token there would
        # see it in the answer and in our logs.
        raise InvalidSignature("Authorization is not HTTP Basic")
    try:
        credential = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature("Authorization header is not valid base64") from exc
    _, colon, password = credential.partition(b":")
    if not colon:
        raise InvalidSignature("HTTP Basic credential has no ':' between user and password")
    whole = [secret for secret in secrets if b":" in secret]
    bare = [secret for secret in secrets if b":" not in secret]
    # Both lists are always compared, so the timing does not reveal which kind is configured.
    if matches_any(credential, whole) | matches_any(password, bare):
        return
    raise InvalidSignature("HTTP Basic credentials do not match any configured secret")


def as_int(value: Any) -> int | None:
    """An id or number from a payload, or None when it is absent or not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    # isdecimal, not isdigit: int() refuses superscripts and circled digits isdigit accepts.
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value.strip())
    return None


def as_str(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value)
    return text or None


def dig(data: Mapping[str, Any] | None, *path: str) -> Any:
    """`data[a][b][c]` or None when any step is missing or not an object."""
    current: Any = data
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def strip_ref(ref: str | None) -> str | None:
    """`refs/heads/main` → `main`; other refs unchanged."""
    if ref is None:
        return None
    return ref.removeprefix("refs/heads/")
