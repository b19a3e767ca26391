"""Test senders: what each CI system puts on the wire, built the way its docs describe.

A `Sender` turns a payload and a credential into the headers and body the real system
would send, so the verification tests run the same table over every provider and scheme.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as random_secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers.azure_devops import AzureDevOpsProvider
from providers.base import Provider
from providers.bitbucket import BitbucketProvider
from providers.circleci import CircleCIProvider
from providers.github import GitHubProvider
from providers.gitlab import GitLabProvider
from providers.jenkins import JenkinsProvider
from providers.teamcity import TeamCityProvider
from providers.travis import TravisProvider

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"
#: The clock the GitLab signing-token tests run at.
NOW = 1_795_683_600.0


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def fixture_json(provider: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture(provider, name))
    return data


def hex_hmac(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


@cache
def travis_key_pair(index: int) -> tuple[rsa.RSAPrivateKey, bytes]:
    """A generated key pair standing in for Travis CI's (old = 0, new = 1)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, pem


def travis_body(payload: bytes) -> bytes:
    return urlencode({"payload": payload.decode()}).encode()


def travis_signature(private: rsa.RSAPrivateKey, payload: bytes) -> str:
    signature = private.sign(payload, padding.PKCS1v15(), hashes.SHA1())
    return base64.b64encode(signature).decode()


def gitlab_signing_token() -> bytes:
    return b"whsec_" + base64.b64encode(random_secrets.token_bytes(32))


def gitlab_signature_headers(
    token: bytes, body: bytes, message_id: str = "msg_2Jk9", timestamp: float = NOW
) -> dict[str, str]:
    key = base64.b64decode(token[len(b"whsec_") :])
    stamp = str(int(timestamp))
    mac = hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def basic(credential: bytes) -> str:
    return "Basic " + base64.b64encode(credential).decode()


@dataclass
class Sender:
    """One provider and one authentication scheme.

    `credential(i)` gives (what the sender signs with, what Herald is configured with) for
    the i-th secret; `auth(body, material)` the headers that authenticate `body`;
    `wrap(payload)` the body that carries a JSON payload; `event` the headers naming the
    fixture's event and `unknown_event` those of an event Herald does not use.
    """

    id: str
    provider: Provider
    credential: Callable[[int], tuple[Any, bytes]]
    auth: Callable[[bytes, Any], dict[str, str]]
    auth_header: str
    fixture: tuple[str, str]
    event: dict[str, str]
    unknown_event: tuple[dict[str, str], bytes]
    #: False for schemes that authenticate the sender but do not sign the body.
    signs_body: bool = True
    wrap: Callable[[bytes], bytes] = field(default=lambda payload: payload)

    def deliver(
        self, payload: bytes, material: Any, event: dict[str, str] | None = None
    ) -> tuple[dict[str, str], bytes]:
        body = self.wrap(payload)
        signed = payload if self.id == "travis" else body
        return {**(self.event if event is None else event), **self.auth(signed, material)}, body


def _hmac_credential(prefix: str) -> Callable[[int], tuple[bytes, bytes]]:
    def credential(index: int) -> tuple[bytes, bytes]:
        secret = f"{prefix}-secret-{index}-{'x' * 24}".encode()
        return secret, secret

    return credential


def _basic_credential(index: int) -> tuple[bytes, bytes]:
    credential = f"herald:pa55-{index}-{'y' * 24}".encode()
    return credential, credential


def _token_credential(index: int) -> tuple[bytes, bytes]:
    token = f"tok-{index}-{'z' * 32}".encode()
    return token, token


def _signing_credential(index: int) -> tuple[bytes, bytes]:
    token = base64.b64encode(hashlib.sha256(f"gitlab-{index}".encode()).digest())
    return b"whsec_" + token, b"whsec_" + token


def _travis_credential(index: int) -> tuple[rsa.RSAPrivateKey, bytes]:
    return travis_key_pair(index)


SENDERS: list[Sender] = [
    Sender(
        id="github",
        provider=GitHubProvider(),
        credential=_hmac_credential("gh"),
        auth=lambda body, secret: {"X-Hub-Signature-256": "sha256=" + hex_hmac(secret, body)},
        auth_header="X-Hub-Signature-256",
        fixture=("github", "workflow_run_completed.json"),
        event={"X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "72d3162e-cc78-11e3"},
        unknown_event=({"X-GitHub-Event": "push"}, fixture("github", "push.json")),
    ),
    Sender(
        id="gitlab-token",
        provider=GitLabProvider(clock=lambda: NOW),
        credential=_token_credential,
        auth=lambda body, token: {"X-Gitlab-Token": token.decode()},
        auth_header="X-Gitlab-Token",
        fixture=("gitlab", "pipeline_success.json"),
        event={"X-Gitlab-Event": "Pipeline Hook", "Idempotency-Key": "5c1f3b1e-gl"},
        unknown_event=({"X-Gitlab-Event": "Push Hook"}, fixture("gitlab", "push.json")),
        signs_body=False,
    ),
    Sender(
        id="gitlab-signing",
        provider=GitLabProvider(clock=lambda: NOW),
        credential=_signing_credential,
        auth=lambda body, token: gitlab_signature_headers(token, body),
        auth_header="webhook-signature",
        fixture=("gitlab", "pipeline_success.json"),
        event={"X-Gitlab-Event": "Pipeline Hook", "Idempotency-Key": "5c1f3b1e-gl"},
        unknown_event=({"X-Gitlab-Event": "Push Hook"}, fixture("gitlab", "push.json")),
    ),
    Sender(
        id="bitbucket",
        provider=BitbucketProvider(),
        credential=_hmac_credential("bb"),
        auth=lambda body, secret: {"X-Hub-Signature": "sha256=" + hex_hmac(secret, body)},
        auth_header="X-Hub-Signature",
        fixture=("bitbucket", "commit_status_updated_failed.json"),
        event={"X-Event-Key": "repo:commit_status_updated", "X-Request-UUID": "a1b2-bb"},
        unknown_event=({"X-Event-Key": "repo:push"}, fixture("bitbucket", "repo_push.json")),
    ),
    Sender(
        id="azure-devops-basic",
        provider=AzureDevOpsProvider(),
        credential=_basic_credential,
        auth=lambda body, credential: {"Authorization": basic(credential)},
        auth_header="Authorization",
        fixture=("azure-devops", "build_complete.json"),
        event={},
        unknown_event=({}, fixture("azure-devops", "git_push.json")),
        signs_body=False,
    ),
    Sender(
        id="azure-devops-token",
        provider=AzureDevOpsProvider(),
        credential=_token_credential,
        auth=lambda body, token: {"X-Herald-Token": token.decode()},
        auth_header="X-Herald-Token",
        fixture=("azure-devops", "build_complete.json"),
        event={},
        unknown_event=({}, fixture("azure-devops", "git_push.json")),
        signs_body=False,
    ),
    Sender(
        id="circleci",
        provider=CircleCIProvider(),
        credential=_hmac_credential("cc"),
        auth=lambda body, secret: {"circleci-signature": "v1=" + hex_hmac(secret, body)},
        auth_header="circleci-signature",
        fixture=("circleci", "workflow_completed.json"),
        event={"circleci-event-type": "workflow-completed"},
        unknown_event=(
            {"circleci-event-type": "pipeline-created"},
            b'{"id": "0e1f", "type": "pipeline-created"}',
        ),
    ),
    Sender(
        id="travis",
        provider=TravisProvider(),
        credential=_travis_credential,
        auth=lambda payload, private: {"Signature": travis_signature(private, payload)},
        auth_header="Signature",
        fixture=("travis", "build_failed_pull_request.json"),
        event={"Travis-Repo-Slug": "orbit-labs/telemetry"},
        unknown_event=({}, fixture("travis", "build_started.json")),
        wrap=travis_body,
    ),
    Sender(
        id="jenkins-basic",
        provider=JenkinsProvider(),
        credential=_basic_credential,
        auth=lambda body, credential: {"Authorization": basic(credential)},
        auth_header="Authorization",
        fixture=("jenkins", "finalized.json"),
        event={},
        unknown_event=({}, fixture("jenkins", "started.json")),
        signs_body=False,
    ),
    Sender(
        id="jenkins-token",
        provider=JenkinsProvider(),
        credential=_token_credential,
        auth=lambda body, token: {"X-Herald-Token": token.decode()},
        auth_header="X-Herald-Token",
        fixture=("jenkins", "finalized.json"),
        event={},
        unknown_event=({}, fixture("jenkins", "started.json")),
        signs_body=False,
    ),
    Sender(
        id="teamcity-basic",
        provider=TeamCityProvider(),
        credential=_basic_credential,
        auth=lambda body, credential: {"Authorization": basic(credential)},
        auth_header="Authorization",
        fixture=("teamcity", "build_finished.json"),
        event={},
        unknown_event=({}, fixture("teamcity", "build_started.json")),
        signs_body=False,
    ),
]

SIGNING_SENDERS = [sender for sender in SENDERS if sender.signs_body]
