"""Bitbucket Cloud: repository webhooks signed with `X-Hub-Signature: sha256=...`."""

from providers.bitbucket.webhook import BitbucketProvider

__all__ = ["BitbucketProvider"]
