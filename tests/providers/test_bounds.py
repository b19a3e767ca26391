"""Numbers and text from outside, within bounds: every provider answers, none crashes.

Ids are whole numbers in 0..2^63-1 (no CI system or forge has larger ones); anything else
where an id belongs is refused as a bad payload, before Python's 4300-digit `int()` limit
or a float conversion can turn it into an exception. Text that cannot be encoded (a lone
UTF-16 surrogate, `\\ud800`, which JSON can escape but UTF-8 cannot carry) is refused in
fields Herald addresses things by, and replaced by U+FFFD in free text (docs/webhooks.md).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from bot.events import Event
from providers.base import BadPayload, InvalidSignature
from providers.gitlab import GitLabProvider
from providers.signatures import MAX_ID, as_int, as_str, as_text, as_unix_time, load_json_object
from tests.providers.senders import (
    NOW,
    SENDERS,
    Sender,
    fixture,
    fixture_json,
    gitlab_signature_headers,
    gitlab_signing_token,
)

HUGE = "9" * 5000  # over Python's 4300-digit int() limit
LARGE = "9" * 400  # under it, but no float holds it


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (42, 42),
        (MAX_ID, MAX_ID),
        ("42", 42),
        (" 42 ", 42),
        ("0" * 5000 + "7", 7),  # leading zeros are not digits of the value
        (str(MAX_ID), MAX_ID),
        (None, None),
        (True, None),
        (4.0, None),
        ("4.0", None),
        ("", None),
        ("abc", None),
        ("\u0661\u0662", None),  # Arabic-Indic digits: decimal to Python, not to any sender
        ([], None),
    ],
)
def test_as_int_reads_ids_within_0_to_2_63_minus_1(value: Any, expected: int | None) -> None:
    assert as_int(value) == expected


@pytest.mark.parametrize("value", [MAX_ID + 1, -1, int(LARGE), str(MAX_ID + 1), LARGE, HUGE])
def test_as_int_refuses_a_whole_number_out_of_range_as_a_bad_payload(value: Any) -> None:
    with pytest.raises(BadPayload, match=r"out of range 0\.\.2\^63-1"):
        as_int(value)


@pytest.mark.parametrize("value", [MAX_ID + 1, -5, int(LARGE)])
def test_as_str_refuses_an_id_number_out_of_range(value: int) -> None:
    with pytest.raises(BadPayload, match="out of range"):
        as_str(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1795683600", 1795683600), (" 0 ", 0), (LARGE, None), (HUGE, None), ("-5", None),
     ("1e9", None), ("\u0661", None), ("", None), ("9" * 11, 10**11 - 1), ("1" + "0" * 11, None)],
)
def test_as_unix_time_reads_seconds_before_the_year_5000(text: str, expected: int | None) -> None:
    assert as_unix_time(text) == expected


# ---- GitLab's signing-token timestamp, before and after the signature ---------------------

gitlab = GitLabProvider(clock=lambda: NOW)
PIPELINE = fixture("gitlab", "pipeline_success.json")


@pytest.mark.parametrize("stamp", [LARGE, HUGE, "\u0661\u0662", "1e9", "-1", "9" * 12])
def test_an_unsigned_gitlab_delivery_with_a_wild_timestamp_is_unauthorized(stamp: str) -> None:
    token = gitlab_signing_token()
    headers = {"X-Gitlab-Event": "Pipeline Hook", "webhook-id": "msg_1",
               "webhook-timestamp": stamp, "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl"}

    with pytest.raises(InvalidSignature, match="webhook-timestamp"):
        gitlab.parse(headers, PIPELINE, [token])


def test_a_signed_gitlab_delivery_with_a_wild_timestamp_is_unauthorized() -> None:
    token = gitlab_signing_token()
    headers = {"X-Gitlab-Event": "Pipeline Hook",
               **gitlab_signature_headers(token, PIPELINE, timestamp=float(10**11 + 5))}

    with pytest.raises(InvalidSignature, match="not a Unix time"):
        gitlab.parse(headers, PIPELINE, [token])


# ---- huge numbers where each provider reads an id -----------------------------------------

#: (sender, path to a number the provider reads as an id or count) for every provider.
ID_FIELDS = [
    ("github", ("workflow_run", "run_attempt")),
    ("github", ("workflow_run", "id")),
    ("gitlab-token", ("object_attributes", "id")),
    ("gitlab-signing", ("project", "id")),
    ("azure-devops-basic", ("resource", "id")),
    ("azure-devops-token", ("resource", "definition", "id")),
    ("circleci", ("pipeline", "number")),
    ("travis", ("id",)),
    ("jenkins-basic", ("build", "number")),
    ("jenkins-token", ("build", "queue_id")),
    ("teamcity-basic", ("payload", "id")),
]


def sender(sender_id: str) -> Sender:
    return next(s for s in SENDERS if s.id == sender_id)


def put(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = payload
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return payload


def deliver(s: Sender, body: bytes) -> Any:
    secret, configured = s.credential(0)
    headers, wire = s.deliver(body, secret)
    return s.provider.parse(headers, wire, [configured])


def with_raw_number(s: Sender, path: tuple[str, ...], digits: str, quoted: bool) -> bytes:
    """The fixture with the number at `path` written as `digits`, bare or in quotes (the
    standard library's json cannot write a 5000-digit int, so it goes in as a marker)."""
    payload = put(fixture_json(*s.fixture), path, "@@NUMBER@@")
    text = json.dumps(payload)
    return text.replace('"@@NUMBER@@"', f'"{digits}"' if quoted else digits).encode()


@pytest.mark.parametrize(("sender_id", "path"), ID_FIELDS)
@pytest.mark.parametrize("digits", [LARGE, HUGE, str(MAX_ID + 1)], ids=["400", "5000", "2^63"])
@pytest.mark.parametrize("quoted", [False, True], ids=["number", "string"])
def test_a_signed_payload_with_a_huge_id_is_a_bad_payload(
    sender_id: str, path: tuple[str, ...], digits: str, quoted: bool
) -> None:
    s = sender(sender_id)

    with pytest.raises(BadPayload):
        deliver(s, with_raw_number(s, path, digits, quoted))


@pytest.mark.parametrize(("sender_id", "path"), ID_FIELDS)
def test_the_largest_id_is_still_read(sender_id: str, path: tuple[str, ...]) -> None:
    s = sender(sender_id)

    event = deliver(s, with_raw_number(s, path, str(MAX_ID), quoted=False))

    assert isinstance(event, Event)


#: (sender, path, text with {n} where a number sits inside a ref or URL, paths to blank
#: first so that the number is the one read).
NUMBERS_IN_TEXT = [
    ("bitbucket", ("commit_status", "url"),
     "https://bitbucket.org/a/b/addon/pipelines/home#!/results/{n}", []),
    ("gitlab-token", ("object_attributes", "ref"), "refs/merge-requests/{n}/head",
     [("merge_request",)]),
    ("azure-devops-basic", ("resource", "sourceBranch"), "refs/pull/{n}/merge",
     [("resource", "triggerInfo")]),
    ("jenkins-basic", ("url",), "job/acme/job/inventory/job/PR-{n}/",
     [("build", "parameters")]),
    ("teamcity-basic", ("payload", "branchName"), "pull/{n}", []),
]


@pytest.mark.parametrize(("sender_id", "path", "template", "blank"), NUMBERS_IN_TEXT)
@pytest.mark.parametrize("digits", [LARGE, HUGE], ids=["400", "5000"])
def test_a_huge_number_inside_a_ref_or_url_is_a_bad_payload(
    sender_id: str, path: tuple[str, ...], template: str, blank: list[tuple[str, ...]],
    digits: str,
) -> None:
    s = sender(sender_id)
    payload = put(fixture_json(*s.fixture), path, template.format(n=digits))
    for other in blank:
        put(payload, other, None)

    with pytest.raises(BadPayload, match="out of range"):
        deliver(s, json.dumps(payload).encode())


# ---- text that cannot be encoded -----------------------------------------------------------

SURROGATE = "\\ud800"  # as it appears in the JSON text


def with_escape(s: Sender, path: tuple[str, ...], text: str) -> bytes:
    payload = put(fixture_json(*s.fixture), path, "@@TEXT@@")
    return json.dumps(payload).replace("@@TEXT@@", text).encode()


def test_a_lone_surrogate_in_a_workflow_name_is_replaced_and_the_event_encodes() -> None:
    s = sender("github")
    body = with_escape(s, ("workflow_run", "name"), f"CI {SURROGATE}nightly")

    event = deliver(s, body)

    assert isinstance(event, Event) and event.run is not None
    assert event.run.extra["workflow_name"] == "CI \ufffdnightly"
    assert event.payload["workflow_run"]["name"] == "CI \ufffdnightly"
    # nothing the job receives holds text that UTF-8 (a URL, a JSON body) cannot carry
    orjson.dumps(event.to_dict())


#: (sender, path of a field Herald addresses things by).
IDENTIFIER_FIELDS = [
    ("github", ("repository", "full_name")),
    ("github", ("workflow_run", "head_sha")),
    ("github", ("workflow_run", "head_branch")),
    ("gitlab-token", ("project", "path_with_namespace")),
    ("bitbucket", ("commit_status", "commit", "hash")),
    ("azure-devops-basic", ("resource", "sourceBranch")),
    ("circleci", ("project", "slug")),
    ("travis", ("repository", "name")),
    ("jenkins-basic", ("build", "full_url")),
    ("teamcity-basic", ("payload", "buildTypeId")),
]


@pytest.mark.parametrize(("sender_id", "path"), IDENTIFIER_FIELDS)
def test_a_lone_surrogate_in_an_identifier_is_a_bad_payload_with_a_reason(
    sender_id: str, path: tuple[str, ...]
) -> None:
    s = sender(sender_id)

    with pytest.raises(BadPayload, match="unpaired UTF-16 surrogate"):
        deliver(s, with_escape(s, path, f"x{SURROGATE}y"))


#: (sender, path of free text, where it ends up in the event).
FREE_TEXT_FIELDS = [
    ("github", ("workflow_run", "name"), lambda e: e.run.extra["workflow_name"]),
    ("circleci", ("workflow", "name"), lambda e: e.run.extra["workflow_name"]),
    ("travis", ("status_message",), lambda e: e.run.extra["status_message"]),
    ("teamcity-basic", ("payload", "statusText"), lambda e: e.run.extra["status_text"]),
    ("azure-devops-basic", ("resource", "definition", "name"),
     lambda e: e.run.extra["definition_name"]),
]


@pytest.mark.parametrize(("sender_id", "path", "read"), FREE_TEXT_FIELDS)
def test_a_lone_surrogate_in_free_text_becomes_the_replacement_character(
    sender_id: str, path: tuple[str, ...], read: Any
) -> None:
    s = sender(sender_id)

    event = deliver(s, with_escape(s, path, f"a{SURROGATE}b\\udfffc"))

    assert read(event) == "a\ufffdb\ufffdc"
    orjson.dumps(event.to_dict())


def test_a_valid_surrogate_pair_is_the_character_it_encodes() -> None:
    payload = load_json_object(b'{"name": "\\ud83d\\ude00"}')

    assert payload["name"] == "\U0001f600"
    assert as_str(payload["name"]) == "\U0001f600"


def test_as_text_is_plain_text_and_a_lone_surrogate_anywhere_is_mended() -> None:
    payload = load_json_object(b'{"a": ["\\udc00", {"\\ud800k": "v"}], "b": "ok"}')

    assert payload == {"a": ["\ufffd", {"\ufffdk": "v"}], "b": "ok"}
    assert type(as_text(payload["a"][0])) is str
    assert as_str(payload["b"]) == "ok"
