"""The forge fakes of push mode's tests, for the library's forge providers."""

from tests.push.conftest import capture, github, gitlab  # noqa: F401 (fixtures)
