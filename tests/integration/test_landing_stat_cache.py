"""archive_landing keeps each settled landing file's stat with its content hash, so a later
run learns a file is known without reading it, and reads every file whose stat moved."""

from __future__ import annotations

import hashlib
import time

from zentra_pipelines.adapters import landing
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.ingest import STAT_CACHE, archive_landing


def _archive(home, landing_dir):
    with Warehouse(home).connect() as con:
        result = archive_landing(con, landing_dir)
        cached = Warehouse.read(con, STAT_CACHE)
    return result, cached


def _settle() -> None:
    time.sleep(landing.RACY_NS / 1e9 + 0.1)


def test_a_settled_file_is_cached_and_skipped_without_a_read(tmp_path):
    folder = tmp_path / "landing" / "intents"
    folder.mkdir(parents=True)
    (folder / "day.jsonl").write_bytes(b"one\n")
    _settle()
    first, cached = _archive(tmp_path / "home", tmp_path / "landing")
    assert (first.new_files, first.skipped_files) == (1, 0)
    assert cached.select("source_file", "bytes", "file_sha256").rows() == [
        ("intents/day.jsonl", 4, hashlib.sha256(b"one\n").hexdigest())]
    again, cached_again = _archive(tmp_path / "home", tmp_path / "landing")
    assert (again.new_files, again.skipped_files) == (0, 1)
    assert cached_again.equals(cached)


def test_a_file_grown_after_it_was_cached_is_archived_and_left_out_until_it_settles(tmp_path):
    folder = tmp_path / "landing" / "intents"
    folder.mkdir(parents=True)
    path = folder / "day.jsonl"
    path.write_bytes(b"one\n")
    _settle()
    _archive(tmp_path / "home", tmp_path / "landing")
    with path.open("ab") as fh:
        fh.write(b"two\n")
    grown, cached = _archive(tmp_path / "home", tmp_path / "landing")
    assert (grown.new_files, grown.new_lines) == (1, 2)  # a new content: the whole file again
    assert cached.height == 0  # written just now: its stat is not trusted yet
    _settle()
    settled, cached = _archive(tmp_path / "home", tmp_path / "landing")
    assert (settled.new_files, settled.skipped_files) == (0, 1)
    assert cached["file_sha256"].to_list() == [hashlib.sha256(b"one\ntwo\n").hexdigest()]
