"""What lies in the landing folder and is not input is named, never skipped in silence,
and a link never takes the archive outside the landing folder."""

from __future__ import annotations

import logging
import os

from zentra_pipelines.adapters import landing
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.ingest import archive_landing


def _landing(tmp_path):
    root = tmp_path / "landing"
    for source in landing.SOURCES:
        (root / source).mkdir(parents=True)
    (root / "callbacks" / "day.jsonl").write_bytes(b"{}\n")
    return root


def test_every_entry_that_is_not_input_is_named_with_why(tmp_path):
    root = _landing(tmp_path)
    secret = tmp_path / "outside.txt"
    secret.write_text("root:x:0:0\n")
    (root / "callback").mkdir()  # a typo of a source folder
    (root / "README").write_text("hi\n")
    (root / "callbacks" / "notes.txt").write_text("x\n")
    (root / "callbacks" / "2026-11").mkdir()
    (root / "intents" / "dir.jsonl").mkdir()
    os.symlink(secret, root / "deliveries" / "passwd.jsonl")
    os.symlink(root / "callbacks" / "day.jsonl", root / "intents" / "inside.jsonl")  # stays inside: read
    os.symlink(root / "intents" / "loop.jsonl", root / "intents" / "loop.jsonl")
    (root / "callbacks" / ".2026-11-28.jsonl").write_bytes(b"{}\n")  # an upload in progress
    assert landing.not_read(root) == [
        ("README", "not an input folder (callbacks, intents, settlements, deliveries)"),
        ("callback", "not an input folder (callbacks, intents, settlements, deliveries)"),
        ("callbacks/.2026-11-28.jsonl", "a hidden file: partial uploads and tool files are not input"),
        ("callbacks/2026-11", "a folder: callbacks files are read from callbacks/ itself, not its subfolders"),
        ("callbacks/notes.txt", "not a *.jsonl file"),
        ("deliveries/passwd.jsonl", "a link to a file outside the landing folder"),
        ("intents/dir.jsonl", "not a regular file"),
        ("intents/loop.jsonl", "a link that cannot be followed"),
    ]
    assert [f.source_file for f in landing.list_files(root, "deliveries")] == []
    assert [f.source_file for f in landing.list_files(root, "callbacks")] == ["callbacks/day.jsonl"]
    assert [f.source_file for f in landing.list_files(root, "intents")] == ["intents/inside.jsonl"]


def test_a_source_folder_linked_to_storage_elsewhere_is_read(tmp_path):
    storage = tmp_path / "mnt" / "settlements"
    storage.mkdir(parents=True)
    (storage / "batch.csv").write_text("provider\n")
    root = tmp_path / "landing"
    root.mkdir()
    os.symlink(storage, root / "settlements")
    assert landing.not_read(root) == []
    assert [f.source_file for f in landing.list_files(root, "settlements")] == ["settlements/batch.csv"]


def test_the_archive_reports_what_it_did_not_read_and_says_so_in_the_log(tmp_path, caplog):
    root = _landing(tmp_path)
    (root / "callbacks" / "notes.txt").write_text("x\n")
    with caplog.at_level(logging.WARNING, logger="zentra.landing"), Warehouse(tmp_path / "home").connect() as con:
        result = archive_landing(con, root)
    assert (result.new_files, result.not_read) == (1, (("callbacks/notes.txt", "not a *.jsonl file"),))
    assert caplog.messages == ["landing: 1 entry not read: callbacks/notes.txt (not a *.jsonl file)"]


def test_a_clean_landing_folder_reports_nothing(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="zentra.landing"), Warehouse(tmp_path / "home").connect() as con:
        result = archive_landing(con, _landing(tmp_path))
    assert result.not_read == () and caplog.messages == []


def test_a_landing_folder_with_no_source_folder_is_said_to_be_empty(tmp_path, caplog):
    """Pointed at the wrong folder, a run would otherwise seal a day of nothing in silence."""
    root = tmp_path / "landing"
    root.mkdir()
    with caplog.at_level(logging.WARNING, logger="zentra.landing"), Warehouse(tmp_path / "home").connect() as con:
        result = archive_landing(con, root)
    assert (result.new_files, result.not_read) == (0, ())
    assert caplog.messages == [f"landing: {root} holds none of callbacks/, intents/, settlements/, deliveries/: "
                               "nothing to read (is it the right folder?)"]
