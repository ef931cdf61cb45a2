"""One ``zentra run`` per home at a time.

Why: every step opens the warehouse, works and closes it, so two runs on one home (a
scheduled run and a manual one) would take turns between steps rather than exclude
each other: their stages and packet versions interleaved, or the second one failing
somewhere inside with DuckDB's lock error, a page of stack trace and a summary it cannot
read. The lock is taken once, before any work, and held until the summary is printed;
the second run is refused at once, in one line naming the run that holds it.

``flock`` on ``<home>/.zentra.lock``: the kernel releases it when its holder exits,
however it exits, so a killed run never leaves the home locked. Re-entrant within the
holding process: ``zentra run`` holds its home for the whole run and each step's
warehouse connection takes it again for free; a step run by the UI takes it for the
step alone, so a UI run and a command-line run on one home exclude each other cleanly.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".zentra.lock"

#: Homes this process holds: the lock file's descriptor and how many holds are open.
_held: dict[Path, list[int]] = {}
_held_guard = threading.Lock()


class HomeBusyError(RuntimeError):
    """Another run holds the home, or it cannot be locked at all (exit code 2)."""


@contextmanager
def exclusive_home(home: Path) -> Iterator[None]:
    """Hold ``home`` for this process, or raise :class:`HomeBusyError` without waiting."""
    home.mkdir(parents=True, exist_ok=True)
    key = home.resolve()
    with _held_guard:  # the flock does not wait, so neither does anyone on the guard
        if key in _held:
            _held[key][1] += 1
        else:
            _held[key] = [_lock(home), 1]
    try:
        yield
    finally:
        with _held_guard:
            _held[key][1] -= 1
            if not _held[key][1]:
                os.close(_held.pop(key)[0])  # releases the lock


def _lock(home: Path) -> int:
    """The lock file's descriptor, locked, with this process's pid written in it."""
    try:
        fd = os.open(home / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise HomeBusyError(f"cannot lock {home / LOCK_NAME}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise HomeBusyError(f"another zentra run is using {home} (pid {holder}): run again when it has ended") from None
    except OSError as exc:  # e.g. ENOLCK: a file system without locks
        os.close(fd)
        raise HomeBusyError(f"cannot lock {home / LOCK_NAME}: {exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
