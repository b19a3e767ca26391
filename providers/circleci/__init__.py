"""CircleCI: outbound webhooks signed with `circleci-signature: v1=<hex>`."""

from providers.circleci.webhook import CircleCIProvider

__all__ = ["CircleCIProvider"]
