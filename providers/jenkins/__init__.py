"""Jenkins: Notification-plugin JSON, authenticated by HTTP Basic or `X-Herald-Token`."""

from providers.jenkins.webhook import JenkinsProvider

__all__ = ["JenkinsProvider"]
