"""Senders that cannot sign (Azure DevOps, Jenkins, TeamCity): Basic auth or a token header."""

from __future__ import annotations

import base64

import pytest

from providers.base import InvalidSignature, NotConfigured
from providers.signatures import check_shared_secret

WHOLE = b"herald:correct-horse-battery"
BARE = b"s3cr3t-token-0123456789abcdef"


def basic(credential: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credential).decode()}


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        (basic(WHOLE), True),
        (basic(b"someone-else:correct-horse-battery"), False),  # user:password must match whole
        (basic(b"herald:" + BARE), True),  # a bare secret matches the password, any user
        (basic(b"teamcity:" + BARE), True),
        (basic(BARE + b":"), False),
        (basic(b":" + BARE), True),  # an empty user name is what Azure sends when left blank
        ({"X-Herald-Token": BARE.decode()}, True),
        ({"X-Herald-Token": f"  {BARE.decode()}  "}, True),
        ({"X-Herald-Token": WHOLE.decode()}, True),  # the token header compares whole entries
        ({"X-Herald-Token": "nope"}, False),
        # A wrong token is refused even when the Basic credential beside it is right.
        ({"X-Herald-Token": "nope", **basic(WHOLE)}, False),
    ],
    ids=[
        "whole credential",
        "other user",
        "bare secret as password",
        "bare secret, any user",
        "bare secret as user",
        "bare secret, empty user",
        "token header",
        "token header with spaces",
        "token header, whole entry",
        "wrong token",
        "wrong token beside right basic",
    ],
)
def test_which_credentials_are_accepted(headers: dict[str, str], accepted: bool) -> None:
    if accepted:
        check_shared_secret(headers, [WHOLE, BARE], "jenkins")
    else:
        with pytest.raises(InvalidSignature):
            check_shared_secret(headers, [WHOLE, BARE], "jenkins")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing Authorization (HTTP Basic) or X-Herald-Token header"),
        ({"Authorization": "Bearer " + BARE.decode()}, "Authorization is not HTTP Basic"),
        ({"Authorization": "Basic %%%"}, "not valid base64"),
        (basic(b"no-colon-here"), "no ':' between user and password"),
        (basic(b"herald:wrong"), "do not match any configured secret"),
        ({"X-Herald-Token": "wrong"}, "X-Herald-Token does not match any configured secret"),
    ],
    ids=["nothing", "bearer", "bad base64", "no colon", "wrong password", "wrong token"],
)
def test_refusals_say_what_was_wrong(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidSignature, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_shared_secret(headers, [WHOLE, BARE], "azure-devops")


@pytest.mark.parametrize(
    "headers",
    [{"X-Herald-Token": ""}, {"X-Herald-Token": "  "}, basic(b"herald:"), basic(b":")],
    ids=["empty token", "blank token", "empty password", "empty user and password"],
)
def test_an_empty_entry_among_the_secrets_accepts_no_empty_credential(
    headers: dict[str, str],
) -> None:
    with pytest.raises(InvalidSignature):
        check_shared_secret(headers, [WHOLE, b""], "teamcity")


def test_no_configured_secret_names_the_variable_of_the_provider() -> None:
    with pytest.raises(NotConfigured, match="set HERALD_AZURE_DEVOPS_WEBHOOK_SECRET"):
        check_shared_secret({"X-Herald-Token": "x"}, [], "azure-devops")


@pytest.mark.parametrize(
    "value", ["s3cr3t-token-without-scheme", "Token s3cr3t-token-without-scheme"]
)
def test_a_refusal_never_echoes_the_authorization_header(value: str) -> None:
    # A sender that puts its token in Authorization without "Basic " must not find it in
    # the 401 answer or in Herald's delivery log.
    with pytest.raises(InvalidSignature) as refused:
        check_shared_secret({"Authorization": value}, [WHOLE, BARE], "jenkins")
    assert "s3cr3t" not in str(refused.value)
