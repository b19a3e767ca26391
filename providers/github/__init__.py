"""GitHub: the App's webhooks (this package's `webhook` module) and, separately, its API client."""

from providers.github.webhook import GitHubProvider

__all__ = ["GitHubProvider"]
