"""A `/retest` (or any) comment on a GitHub pull request, as GitHub delivers it to Herald:
the `issue_comment` payload and its signed delivery (`deliver` signs any other event too)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx

from tests.fakes.github import FakeGitHub
from tests.github.conftest import WEBHOOK_SECRET, payload


def issue_comment(fake: FakeGitHub, repo: str, number: int, author: str,
                  comment_id: int = 2498765432, body: str = "/retest") -> dict[str, Any]:
    event = copy.deepcopy(payload("issue_comment_created.json"))
    owner, name = repo.split("/")
    event["repository"].update(full_name=repo, name=name)
    event["repository"]["owner"]["login"] = owner
    event["issue"]["number"] = number
    event["comment"].update(id=comment_id, body=body)
    event["comment"]["user"].update(login=author, type="User")
    event["installation"]["id"] = fake.installation_id
    return event


async def deliver(http: httpx.AsyncClient, event: dict[str, Any],
                  event_name: str = "issue_comment") -> httpx.Response:
    raw = json.dumps(event).encode()
    signature = hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return await http.post("/webhooks/github", content=raw, headers={
        "content-type": "application/json",
        "x-github-event": event_name,
        "x-github-delivery": str(uuid.uuid4()),
        "x-hub-signature-256": f"sha256={signature}",
    })
