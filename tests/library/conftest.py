"""The forge fakes of push mode's tests, for the library's forge providers, and a working
directory of the library's own."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.push.conftest import capture, github, gitlab  # noqa: F401 (fixtures)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh current directory, Herald's settings from nowhere but its state folder."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("HERALD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HERALD_STATE_DIR", str(tmp_path / "state"))
    yield tmp_path
