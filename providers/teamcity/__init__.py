"""TeamCity: native webhooks, authenticated by HTTP Basic or `X-Herald-Token`."""

from providers.teamcity.webhook import TeamCityProvider

__all__ = ["TeamCityProvider"]
