"""list_files: a landing file's identity is the SHA-256 of all its bytes, read in chunks."""

from __future__ import annotations

import hashlib

import pytest

from zentra_pipelines.adapters import landing

CHUNK = landing.HASH_READ_BYTES


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3])
def test_a_file_is_identified_by_the_sha256_of_all_its_bytes(tmp_path, size):
    data = (b"0123456789abcdef\n" * (size // 17 + 1))[:size]
    folder = tmp_path / "intents"
    folder.mkdir()
    (folder / "day.jsonl").write_bytes(data)
    (file,) = landing.list_files(tmp_path, "intents")
    assert (file.sha256, file.size) == (hashlib.sha256(data).hexdigest(), size)


def test_files_of_one_listing_do_not_share_bytes(tmp_path):
    # one read buffer serves the whole listing: a short file after a long one must not
    # hash what the long one left in it
    folder = tmp_path / "deliveries"
    folder.mkdir()
    long, short = b"x" * (CHUNK + 5), b"y\n"
    (folder / "a.jsonl").write_bytes(long)
    (folder / "b.jsonl").write_bytes(short)
    files = landing.list_files(tmp_path, "deliveries")
    assert [(f.source_file, f.sha256) for f in files] == [
        ("deliveries/a.jsonl", hashlib.sha256(long).hexdigest()),
        ("deliveries/b.jsonl", hashlib.sha256(short).hexdigest()),
    ]
