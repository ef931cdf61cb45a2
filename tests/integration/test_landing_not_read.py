"""What lies in the landing folder and is not input is named, never skipped in silence,
and a link never takes the archive outside the landing folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

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


UNREADABLE = """
import json, sys
from pathlib import Path
from zentra_pipelines.adapters import landing
root = Path(sys.argv[1])
print(json.dumps({"not_read": landing.not_read(root),
                  "listed": [f.source_file for f in landing.list_files(root, "intents")]}))
"""


def test_an_unreadable_file_is_named_and_the_others_are_still_read(tmp_path):
    """Read by a process without the root override of file permissions (setpriv drops it),
    as a service account would be: the unreadable file is named, the rest is input."""
    import json
    import shutil
    import subprocess
    import sys

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE")
    (tmp_path / "intents").mkdir()
    (tmp_path / "intents" / "a.jsonl").write_text("{}\n")
    locked = tmp_path / "intents" / "b.jsonl"
    locked.write_text("{}\n")
    locked.chmod(0)
    try:
        proc = subprocess.run(
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all",
             sys.executable, "-c", UNREADABLE, str(tmp_path)],
            capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[2])
    finally:
        locked.chmod(0o644)
    if proc.returncode != 0 and "setpriv" in proc.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"not_read": [["intents/b.jsonl", "cannot be read (Permission denied)"]],
                                       "listed": ["intents/a.jsonl"]}
