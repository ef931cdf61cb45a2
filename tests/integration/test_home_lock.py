"""``adapters.home_lock``: one run per home, refused at once, released however its holder ends."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zentra_pipelines.adapters.home_lock import LOCK_NAME, HomeBusyError, exclusive_home


def test_a_held_home_is_refused_naming_its_holder(tmp_path):
    with exclusive_home(tmp_path / "home"):
        with pytest.raises(HomeBusyError, match=rf"is using {tmp_path / 'home'} \(pid {os.getpid()}\)"):
            with exclusive_home(tmp_path / "home"):
                pass


def test_a_released_home_is_taken_again(tmp_path):
    with exclusive_home(tmp_path):
        pass
    with exclusive_home(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_the_lock_of_a_killed_run_does_not_outlive_it(tmp_path):
    """The file stays behind; the lock does not: the kernel drops it with its holder."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from zentra_pipelines.adapters.home_lock import exclusive_home\n"
         "with exclusive_home(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(HomeBusyError, match=rf"pid {holder.pid}\)"):
            with exclusive_home(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_home(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
