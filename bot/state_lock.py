"""One owner per state directory: `herald serve` holds an exclusive lock on a file in it.

Two `herald serve` on one `HERALD_STATE_DIR` (two terminals, `make run` twice) would share
the embedded Redis socket and the spool: when one stopped it removed the socket, and the
other spooled every delivery until restarted. The lock is `fcntl.flock` on an open file,
so the kernel releases it when its process ends in any way (SIGKILL included): a stale
lock never needs clearing by hand. The file holds the owner's pid for the refusal message
only; it is never deleted, since a process that unlinked it could let a third one lock a
new file while a second still holds the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

LOCK_NAME: Final = "herald.lock"
#: The pid written in the file is a few bytes; a larger file is not ours to trust.
MAX_LOCK_BYTES: Final = 64


class StateDirBusy(Exception):
    """Another process holds the state directory."""


@contextlib.contextmanager
def hold_state_dir(state_dir: Path) -> Iterator[Path]:
    """Hold `state_dir` for this process until the block ends; `StateDirBusy` naming the
    holder's pid if another process holds it. Yields the lock file's path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            raise StateDirBusy(
                f"{state_dir} is in use by another `herald serve` ({holder}); stop it, or "
                "give this one its own HERALD_STATE_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        # Closing the descriptor releases the lock; the file stays (see the module docstring).
        os.close(fd)


def _holder(fd: int) -> str:
    raw = os.pread(fd, MAX_LOCK_BYTES, 0).strip()
    return f"process {int(raw)}" if raw.isdigit() else "a process that has not written its pid yet"
