"""A home held by another process, as a running `zentra run` holds it, or its warehouse
held open by one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLD = ("import sys, time; from pathlib import Path; from zentra_pipelines.adapters.home_lock import exclusive_home\n"
        "with exclusive_home(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)")


@contextmanager
def held_elsewhere(home: Path) -> Iterator[subprocess.Popen]:
    """A child process holding ``home`` until the block ends (then killed)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(home)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


OPEN_READ_ONLY = ("import sys, time, duckdb\nc = duckdb.connect(sys.argv[1], read_only=True)\n"
                  "print('open', flush=True); time.sleep(60)")


@contextmanager
def warehouse_open_elsewhere(home: Path) -> Iterator[subprocess.Popen]:
    """A child process with ``home``'s warehouse open read-only (an analyst's DuckDB
    session) until the block ends; the warehouse must exist."""
    holder = subprocess.Popen([sys.executable, "-c", OPEN_READ_ONLY, str(home / "warehouse.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        yield holder
    finally:
        holder.kill()
        holder.wait()
