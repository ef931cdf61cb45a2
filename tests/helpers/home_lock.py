"""A home held by another process, as a running `zentra run` holds it, or its warehouse
held open by one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLD_HOME = ("import sys, time; from pathlib import Path; from zentra_pipelines.adapters.home_lock import exclusive_home\n"
             "with exclusive_home(Path(sys.argv[1])):\n    print('ready', flush=True); time.sleep(60)")
OPEN_READ_ONLY = ("import sys, time, duckdb\nc = duckdb.connect(sys.argv[1], read_only=True)\n"
                  "print('ready', flush=True); time.sleep(60)")


@contextmanager
def _child(code: str, arg: Path) -> Iterator[subprocess.Popen]:
    """A child process running ``code`` with ``arg``, once it says it is ready; killed
    when the block ends."""
    child = subprocess.Popen([sys.executable, "-c", code, str(arg)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        yield child
    finally:
        child.kill()
        child.wait()


def held_elsewhere(home: Path):
    """A child process holding ``home`` (``exclusive_home``) until the block ends."""
    return _child(HOLD_HOME, home)


def warehouse_open_elsewhere(home: Path):
    """A child process with ``home``'s warehouse open read-only (an analyst's DuckDB
    session) until the block ends; the warehouse must exist."""
    return _child(OPEN_READ_ONLY, home / "warehouse.duckdb")
