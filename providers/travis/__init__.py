"""Travis CI: build notifications signed with Travis CI's RSA key."""

from providers.travis.webhook import TravisProvider

__all__ = ["TravisProvider"]
