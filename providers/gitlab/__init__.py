"""GitLab: project and group webhooks (`webhook` module) and, separately, its API client."""

from providers.gitlab.webhook import GitLabProvider

__all__ = ["GitLabProvider"]
