"""One answer to "was this stored result written by the code running now?"

Several stages keep results between runs so that a run costs what is new: the parse
caches, the timeline and ledger-view fingerprints, the ledger's audited basis, the
contract counts per tenant-day, the packet fingerprints. Each such result must be
ignored once the code that wrote it has changed, since any edit may change what the
stage computes. Per-stage lists of "the modules this stage depends on" drift as code
moves between modules (a helper moves, the list stays), so there is one rule: the
digest of the package's whole source (Python, SQL, shipped data such as the currency
list) and of the engines that compute and format rows. An upgrade therefore costs one
full recompute, once; a stale cache is never trusted.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import metadata
from pathlib import Path

import zentra_pipelines
from zentra_pipelines.adapters.sql_files import SQL_DIR

#: The engines whose version can change a stored row's bytes (values, formatting, order).
ENGINES = ("duckdb", "polars", "pyarrow", "pandas", "great_expectations", "pandera")
_SOURCE_SUFFIXES = (".py", ".sql", ".csv", ".json", ".yaml")


def _source_files() -> list[tuple[str, Path]]:
    package = Path(zentra_pipelines.__file__).resolve().parent
    files = [(f"zentra_pipelines/{p.relative_to(package).as_posix()}", p) for p in package.rglob("*")]
    files += [(f"sql/{p.name}", p) for p in SQL_DIR.glob("*.sql")]
    return sorted((name, p) for name, p in files if p.suffix in _SOURCE_SUFFIXES and p.is_file())


@cache
def code_version() -> str:
    """sha256 over every source file (name and bytes) and the engines' versions.

    Computed once per process (~1 MB of source), never at import time."""
    digest = hashlib.sha256()
    for name, path in _source_files():
        digest.update(name.encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    for engine in ENGINES:
        digest.update(f"{engine}={metadata.version(engine)}\0".encode())
    return digest.hexdigest()
