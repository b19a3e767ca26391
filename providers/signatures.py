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
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import orjson

from bot.events import JsonObject
from bot.settings import env_name
from providers.base import BadPayload, Headers, InvalidSignature, NotConfigured

#: The header Herald reads a shared secret from when the sender cannot sign (Azure DevOps
#: service hooks, Jenkins `httpRequest`, TeamCity): one name for all, see docs/webhooks.md.
TOKEN_HEADER: Final = "X-Herald-Token"  # noqa: S105 - a header name, not a secret
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


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
    Integers over the standard library's 4300-digit limit are invalid JSON too.

    Only the standard library lets a lone UTF-16 surrogate (`"\\ud800"`) through, and
    no UTF-8 text (a URL, an API's JSON body) can carry one: on that path every string
    holding one is mended (`_mend`), so nothing downstream ever sees one.
    """
    source: bytes | str | None = body
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BadPayload(f"invalid JSON: {_short(str(exc))}") from exc
        data = _mend(data)
        # Mended text is not the text that came: the job must carry the parsed payload.
        source = None
    if not isinstance(data, dict):
        raise BadPayload(f"invalid JSON: expected an object, got {type(data).__name__}")
    return JsonObject(data, source)


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[:limit] + "…"


class Mended(str):
    """Text that held lone UTF-16 surrogates, each replaced by U+FFFD.

    Free text (`as_text`) reads it as plain text; a field Herald addresses things by
    (`as_str`, `as_int`) refuses it: a repository or branch with a character replaced
    names something else.
    """

    __slots__ = ()


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _mended(text: str) -> str:
    if not _has_surrogate(text):
        return text
    # json.loads has joined every valid pair already: what is left is alone
    return Mended(_LONE_SURROGATE.sub("\ufffd", text))


def _mend(data: Any) -> Any:
    """`data` with every string (keys too) free of lone surrogates; iterative, since the
    nesting can be as deep as the standard library's recursion allowed."""
    if isinstance(data, str):
        return _mended(data)
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                new_key = _mended(key)
                if new_key is not key:
                    del node[key]
                    node[str(new_key)] = value
                if isinstance(value, str):
                    node[str(new_key)] = _mended(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, str):
                    node[index] = _mended(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
    return data


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


#: The largest id Herald reads: no CI system or forge has larger ones (they are 64-bit).
MAX_ID: Final = 2**63 - 1
_MAX_ID_DIGITS: Final = len(str(MAX_ID))
#: Unix times Herald reads lie before 10^11 s (the year 5138); later is no clock's.
_MAX_UNIX_DIGITS: Final = 11
_OUT_OF_RANGE: Final = "a number where an id belongs is out of range 0..2^63-1"
_SURROGATE: Final = (
    "a field Herald addresses things by (repository, id, sha, branch, URL, event type) "
    "holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff): it is no text, and no "
    "URL or API could carry it"
)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdecimal()


def _bounded(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise BadPayload(_OUT_OF_RANGE)
    return value


def as_int(value: Any) -> int | None:
    """An id or count from a payload or a header: None when it is absent or not a whole
    number, `BadPayload` when it is one outside 0..2^63-1.

    Digits are counted before `int()` runs: Python refuses more than 4300 (ValueError),
    and a number that big is no id anyway. Only ASCII digits are digits here: `isdecimal`
    also accepts Arabic-Indic and other digits no sender writes.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _bounded(value)
    if isinstance(value, str):
        text = value.strip()
        if not _ascii_digits(text):
            return None
        significant = text.lstrip("0")
        if len(significant) > _MAX_ID_DIGITS:
            raise BadPayload(_OUT_OF_RANGE)
        return _bounded(int(significant or "0"))
    return None


def as_unix_time(text: str) -> int | None:
    """Whole seconds since the epoch from a header, or None unless 1 to 11 ASCII digits
    (before the year 5138): bounded, so neither `int()` nor a float can overflow."""
    text = text.strip()
    if not text or not _ascii_digits(text) or len(text.lstrip("0")) > _MAX_UNIX_DIGITS:
        return None
    return int(text.lstrip("0") or "0")


def as_str(value: Any) -> str | None:
    """An identifier (repository, id, sha, branch, URL, state) as text, or None when it is
    absent or not a scalar. A number must be an id within 0..2^63-1; text that held a
    lone surrogate is refused (`BadPayload`), not guessed at."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, Mended):
        raise BadPayload(_SURROGATE)
    if isinstance(value, int) and not isinstance(value, bool):
        _bounded(value)
    if isinstance(value, str):
        return value or None
    text = str(value)
    return text or None


def as_id(value: Any) -> str | None:
    """An object's id as text (`as_str`): a numeric one, sent as a number or as digits,
    must lie within 0..2^63-1, since the clients turn it back into an int."""
    text = as_str(value)
    if text is not None and _ascii_digits(text):
        as_int(text)
    return text


def as_text(value: Any) -> str | None:
    """Free text (a name, a title, a comment, a message) for people to read: like
    `as_str`, but lone surrogates arrive as U+FFFD rather than being refused, and
    numbers are not bounded (they are shown, never used)."""
    if value is None or isinstance(value, dict | list):
        return None
    try:
        text = str(value)
    except ValueError:  # an int beyond Python's 4300-digit str() limit
        return None
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
