"""Travis CI webhook notifications: RSA `Signature` verification and translation to events.

Implements https://docs.travis-ci.com/user/notifications/#verifying-webhook-requests:
the body is form-encoded `payload=<json>`, and `Signature` is the base64 RSA PKCS#1 v1.5
SHA-1 signature of the (URL-decoded) `payload` value under Travis CI's public key, which
its API publishes at `/config` (`config.notifications.webhook.public_key`).

The key is configured or fetched from Travis CI's API by `providers.travis.keys`; this
module only verifies against the keys it is given.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from bot.events import BUILD_COMPLETED, Event, Ignored, RunRef
from providers.base import (
    BadPayload,
    Headers,
    InvalidSignature,
    NotConfigured,
    Provider,
)
from providers.signatures import (
    as_id,
    as_int,
    as_str,
    as_text,
    body_digest,
    dig,
    header,
    load_json_object,
)

NAME: Final = "travis"
FINAL_STATES: Final = frozenset({"passed", "failed", "errored", "canceled"})
#: A Travis notification is one field; anything with many fields is not from Travis.
MAX_FORM_FIELDS: Final = 16
_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?:RSA )?PUBLIC KEY-----.+?-----END (?:RSA )?PUBLIC KEY-----", re.DOTALL
)


def split_pem(text: bytes) -> list[bytes]:
    """Every PEM public key block in `text` (two blocks configured = rotation)."""
    return [block.replace(b"\r\n", b"\n") + b"\n" for block in _PEM_BLOCK.findall(text)]


@functools.lru_cache(maxsize=8)
def _load_key(pem: bytes) -> rsa.RSAPublicKey | None:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        return None
    return key if isinstance(key, rsa.RSAPublicKey) else None


class TravisProvider(Provider):
    """Travis CI build notifications, verified against the keys `providers.travis.keys`
    fetches (the I/O side: this module stays a pure function of its input)."""

    name: ClassVar[str] = NAME
    content_types: ClassVar[tuple[str, ...]] = ("application/x-www-form-urlencoded",)

    # ---- parsing ----------------------------------------------------------------------

    def parse(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> Event | Ignored:
        keys = [key for key in (_load_key(pem) for pem in secrets if pem) if key is not None]
        if not keys:
            raise NotConfigured(
                "no Travis CI public key: set HERALD_TRAVIS_PUBLIC_KEY or let Herald fetch it "
                "from HERALD_TRAVIS_API_URL"
            )
        signature_b64 = header(headers, "Signature")
        if signature_b64 is None:
            raise InvalidSignature("missing Signature header")
        try:
            signature = base64.b64decode(signature_b64.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidSignature("Signature header is not valid base64") from exc
        try:
            fields = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=True,
                max_num_fields=MAX_FORM_FIELDS,
            )
        except (UnicodeDecodeError, ValueError) as exc:
            # The parser's message quotes the body; an unverified body stays out of answers
            # and logs.
            raise InvalidSignature("body is not a Travis CI form notification") from exc
        payload_field = next((value for key, value in fields if key == "payload"), None)
        if payload_field is None:
            raise InvalidSignature("form body has no payload field to verify")
        signed = payload_field.encode()
        verified = False
        for key in keys:
            try:
                key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
                verified = True
            except CryptoInvalidSignature:
                continue
        if not verified:
            raise InvalidSignature("Signature does not verify under any Travis CI public key")

        payload = load_json_object(payload_field)
        state = as_str(payload.get("state"))
        native = f"build:{state or 'unknown'}"
        # Travis sends no delivery id; the payload of one notification is stable.
        delivery = body_digest(signed)
        if state not in FINAL_STATES:
            return Ignored(NAME, native, f"build state {state!r} is not final")
        return self._build(headers, payload, native, delivery)

    def _build(
        self, headers: Headers, payload: dict[str, Any], native: str, delivery: str
    ) -> Event:
        owner = as_str(dig(payload, "repository", "owner_name"))
        name = as_str(dig(payload, "repository", "name"))
        repo = f"{owner}/{name}" if owner and name else None
        build_id = as_id(payload.get("id"))
        if repo is None or build_id is None:
            raise BadPayload("Travis CI payload lacks id or repository.owner_name/name")
        event_type = as_str(payload.get("type"))
        is_pull = event_type == "pull_request"
        change = as_int(payload.get("pull_request_number")) if is_pull else None
        # A PR build tests the merge commit (`commit`); reports belong on the PR head.
        head = as_str(payload.get("head_commit")) if is_pull else None
        run = RunRef(
            provider=NAME,
            repo=repo,
            run_id=build_id,
            sha=head or as_str(payload.get("commit")),
            branch=as_str(payload.get("branch")),
            change=change,
            url=as_str(payload.get("build_url")),
            status=as_str(payload.get("state")),
            extra={
                "number": as_str(payload.get("number")),
                "type": event_type,
                "status_message": as_text(payload.get("status_message")),
                "commit": as_str(payload.get("commit")),
                "base_commit": as_str(payload.get("base_commit")),
                "head_commit": as_str(payload.get("head_commit")),
                "compare_url": as_str(payload.get("compare_url")),
                "tag": as_str(payload.get("tag")),
                "repository_id": as_int(dig(payload, "repository", "id")),
            },
        )
        return Event(NAME, BUILD_COMPLETED, native, delivery, repo=repo, run=run, payload=payload)

    def detect(self, environ: Mapping[str, str]) -> RunRef | None:
        """Travis CI jobs, from the default environment variables."""
        if environ.get("TRAVIS") != "true":
            return None
        repo = environ.get("TRAVIS_REPO_SLUG")
        build_id = environ.get("TRAVIS_BUILD_ID")
        if not repo or not build_id:
            return None
        pull = environ.get("TRAVIS_PULL_REQUEST") or "false"
        change = as_int(pull) if pull != "false" else None
        return RunRef(
            provider=NAME,
            repo=repo,
            run_id=build_id,
            sha=(environ.get("TRAVIS_PULL_REQUEST_SHA") if change else None)
            or environ.get("TRAVIS_COMMIT")
            or None,
            branch=(environ.get("TRAVIS_PULL_REQUEST_BRANCH") if change else None)
            or environ.get("TRAVIS_BRANCH")
            or None,
            change=change,
            url=environ.get("TRAVIS_BUILD_WEB_URL") or None,
            extra={
                "number": environ.get("TRAVIS_BUILD_NUMBER") or None,
                "job_id": environ.get("TRAVIS_JOB_ID") or None,
                "job_url": environ.get("TRAVIS_JOB_WEB_URL") or None,
                "type": environ.get("TRAVIS_EVENT_TYPE") or None,
                "target_branch": environ.get("TRAVIS_BRANCH") if change else None,
            },
        )
