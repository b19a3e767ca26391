"""deploy/github-app.yml: GitHub's manifest format, and exactly what Herald uses."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "github-app.yml"


def test_the_manifest_asks_for_exactly_what_herald_uses() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert set(manifest) <= {
        "name", "url", "description", "hook_attributes", "redirect_url", "callback_urls",
        "setup_url", "public", "default_permissions", "default_events",
        "request_oauth_on_install", "setup_on_update",
    }
    assert manifest["hook_attributes"]["url"].endswith("/webhooks/github")
    assert manifest["public"] is False
    assert manifest["default_permissions"] == {
        "actions": "write",
        "checks": "write",
        "contents": "read",
        "pull_requests": "write",
        "issues": "write",
        "metadata": "read",
    }
    # The events the GitHub provider translates; anything more would be noise.
    assert sorted(manifest["default_events"]) == [
        "check_run", "check_suite", "issue_comment", "workflow_run",
    ]
