"""list_files: a landing file's identity is the SHA-256 of all its bytes, read in chunks."""

from __future__ import annotations

import hashlib
import os
import time

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


# ------------------------------------------------------------------ stat cache ---


def _landed(tmp_path, data: bytes = b'{"a": 1}\n'):
    folder = tmp_path / "intents"
    folder.mkdir(exist_ok=True)
    path = folder / "day.jsonl"
    path.write_bytes(data)
    time.sleep(0.02)  # file times come from a coarse clock: let the listing be later
    return path


def test_a_settled_file_carries_the_stat_its_hash_holds_for(tmp_path):
    path = _landed(tmp_path)
    (file,) = landing.list_files(tmp_path, "intents", racy_ns=0)
    st = path.stat()
    assert file.stat_key == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def test_a_file_changed_within_the_racy_window_is_not_trusted_later(tmp_path):
    _landed(tmp_path)
    (file,) = landing.list_files(tmp_path, "intents")  # written just now: well within a second
    assert file.stat_key is None


def test_a_file_whose_stat_is_as_recorded_is_not_read_again(tmp_path):
    _landed(tmp_path)
    (first,) = landing.list_files(tmp_path, "intents", racy_ns=0)
    recorded = {first.source_file: (first.stat_key, "f" * 64)}  # not its hash: shows it was not read
    (again,) = landing.list_files(tmp_path, "intents", recorded, racy_ns=0)
    assert (again.sha256, again.size, again.stat_key) == ("f" * 64, first.size, first.stat_key)


def test_a_file_written_after_its_stat_was_recorded_is_read_again(tmp_path):
    path = _landed(tmp_path, b"one\n")
    (first,) = landing.list_files(tmp_path, "intents", racy_ns=0)
    recorded = {first.source_file: (first.stat_key, first.sha256)}
    path.write_bytes(b"two\n")  # same size, same name, same inode: the ctime moves
    (again,) = landing.list_files(tmp_path, "intents", recorded, racy_ns=0)
    assert again.sha256 == hashlib.sha256(b"two\n").hexdigest()


def test_a_file_replaced_under_its_name_is_read_again(tmp_path):
    path = _landed(tmp_path, b"one\n")
    (first,) = landing.list_files(tmp_path, "intents", racy_ns=0)
    recorded = {first.source_file: (first.stat_key, first.sha256)}
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"two\n")
    os.utime(other, ns=(first.stat_key[1], first.stat_key[1]))  # even with the old mtime
    os.replace(other, path)
    (again,) = landing.list_files(tmp_path, "intents", recorded, racy_ns=0)
    assert again.sha256 == hashlib.sha256(b"two\n").hexdigest()
