"""Files go up a chunk at a time, and exactly the size that was checked against the cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.stores import CHUNK_BYTES, file_chunks


async def test_a_file_is_read_a_bounded_chunk_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (3 * CHUNK_BYTES + 5))

    sizes = [len(chunk) async for chunk in file_chunks(path, 3 * CHUNK_BYTES + 5)()]

    assert sizes == [CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES, 5]


async def test_a_file_that_grew_after_its_size_was_checked_sends_only_that_size(
        tmp_path: Path) -> None:
    path = tmp_path / "growing.log"
    path.write_bytes(b"a" * 100)
    body = file_chunks(path, 100)
    with path.open("ab") as more:
        more.write(b"b" * 5000)

    sent = b"".join([chunk async for chunk in body()])

    assert sent == b"a" * 100


async def test_a_file_that_shrank_is_an_error_never_a_short_upload(tmp_path: Path) -> None:
    path = tmp_path / "shrinking.log"
    path.write_bytes(b"a" * 10)
    body = file_chunks(path, 100)

    with pytest.raises(OSError, match="shrank"):
        _ = [chunk async for chunk in body()]


async def test_each_attempt_reads_the_file_afresh(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"0123456789")
    body = file_chunks(path, 10)

    first = b"".join([chunk async for chunk in body()])
    second = b"".join([chunk async for chunk in body()])

    assert first == second == b"0123456789"
