"""How much of one ``zentra run`` is spent writing warehouse tables.

Usage (the arguments are ``zentra run``'s, passed through unchanged; a leading ``run``,
as in a ``zentra run`` command line, may be kept):
  .venv/bin/python bench/write_share.py [--out FILE.txt] [run] --landing DIR \
      --source-db URL --policies FILE --secrets FILE --home DIR

Why: an incremental run (one new day on a long history) costs more than that day alone,
and the question for a storage redesign is how much of the difference is rewriting
published tables whole and how much is reading and recomputing the history. This runs
the CLI's own code path in this process, with every warehouse write
(``Warehouse.publish``, ``publish_parts``, ``keep_and_add``, ``append``) timed, and
prints the wall seconds per call site (the tables written together) and their total.
A diagnostic for the bench only: the timing wrappers replace the Warehouse methods for
this process, which no test or pipeline code does.

Measured with it (100k intents x 31 days, one more day on the history, 2026-11-29): the
incremental run took 25.44 s and wrote for 4.07 s, the day alone on a fresh home 12.95 s
and 1.22 s; so 2.85 s of the 12.5 s difference is writing, the rest reading,
fingerprinting and recomputing the history.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import Counter
from pathlib import Path

from zentra_pipelines.adapters.warehouse import Warehouse

#: The Warehouse methods that write tables, and how each names what it wrote.
WRITERS = {
    "publish": lambda args: ",".join(sorted(args[1])),
    "publish_parts": lambda args: args[1],
    "keep_and_add": lambda args: args[1],
    "append": lambda args: args[1],
}


def timed_writes(seconds: Counter) -> None:
    """Wrap every writer so that its wall seconds add up in ``seconds`` by call site."""
    for name, label in WRITERS.items():
        original = getattr(Warehouse, name)

        def wrapper(*args, _original=original, _name=name, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds[f"{_name}: {_label(args)}"] += time.perf_counter() - start

        setattr(Warehouse, name, staticmethod(functools.wraps(original)(wrapper)))


def report(seconds: Counter, run_s: float) -> str:
    total = sum(seconds.values())
    lines = [f"zentra run {run_s:.2f} s, of which writing tables {total:.2f} s ({total / run_s:.0%})"]
    lines += [f"{s:8.3f} s  {site}" for site, s in seconds.most_common()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    own, run_args = parser.parse_known_args(argv)
    if run_args[:1] == ["run"]:
        run_args = run_args[1:]
    from dagster_project.cli import main as zentra

    seconds: Counter = Counter()
    timed_writes(seconds)
    start = time.perf_counter()
    code = zentra(["run", *run_args])
    text = report(seconds, time.perf_counter() - start)
    sys.stderr.write(text)
    if own.out:
        own.out.write_text(text)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
