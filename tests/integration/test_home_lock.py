"""``adapters.home_lock``: one run per home, refused at once, re-entrant in its holder,
released however its holder ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.home_lock import held_elsewhere
from zentra_pipelines.adapters.home_lock import LOCK_NAME, HomeBusyError, exclusive_home

PROBE = ("import sys; from pathlib import Path; from zentra_pipelines.adapters.home_lock import HomeBusyError, "
         "exclusive_home\ntry:\n    with exclusive_home(Path(sys.argv[1])): print('free')\n"
         "except HomeBusyError as e: print(e)")


def probe(home: Path) -> str:
    """What another process finds: 'free' or the refusal."""
    return subprocess.run([sys.executable, "-c", PROBE, str(home)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_home_held_by_another_process_is_refused_naming_its_holder(tmp_path):
    with held_elsewhere(tmp_path) as holder:
        with pytest.raises(HomeBusyError, match=rf"is using {tmp_path} \(pid {holder.pid}\): run again"):
            with exclusive_home(tmp_path):
                pass


def test_the_lock_of_a_killed_run_does_not_outlive_it(tmp_path):
    """The file stays behind; the lock does not: the kernel drops it with its holder."""
    with held_elsewhere(tmp_path):
        pass
    assert (tmp_path / LOCK_NAME).exists()
    with exclusive_home(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_the_holder_takes_its_home_again_and_keeps_it_until_its_last_hold_ends(tmp_path):
    """How `zentra run` holds the home and each step's warehouse takes it again."""
    with exclusive_home(tmp_path):
        with exclusive_home(tmp_path):
            pass
        assert probe(tmp_path) == f"another zentra run is using {tmp_path} (pid {os.getpid()}): run again when it has ended"
    assert probe(tmp_path) == "free"


def test_a_home_that_cannot_be_locked_is_refused_with_why(tmp_path):
    (tmp_path / LOCK_NAME).mkdir()  # whatever stands in the lock file's way
    with pytest.raises(HomeBusyError, match=rf"^cannot lock {tmp_path / LOCK_NAME}: Is a directory$"):
        with exclusive_home(tmp_path):
            pass
