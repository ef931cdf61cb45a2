"""Skip a stage whose published tables were built from exactly its current inputs and code.

Why: with the per-line parse caches, a run with nothing new still rebuilt deliveries and
callbacks from the whole history (3-4 CPU s each at 100k intents over 31 days) to write
the same bytes again. A digest of everything a stage's tables depend on (its input
table, file by file; the parser and code versions; the engines) is published with the
tables, in the same write-audit-publish transaction, so it always describes the tables
beside it. A later run that computes the same digest knows a recompute would write what
is already there, and skips it. No digest table, a missing output, or any difference:
recompute, exactly as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable

import duckdb
import polars as pl

from zentra_pipelines.adapters.warehouse import TABLES, Warehouse

COLUMN = "inputs_sha256"


def digest(
    con: duckdb.DuckDBPyConnection, input_table: str, parts: Iterable[str], without: Collection[str] = ()
) -> str:
    """sha256 of ``parts`` and of ``input_table``'s rows per file (count and line numbers).

    The input tables are append-only and a file's rows are written once, in one
    statement, so a file's row count and line-number sum change whenever its rows do.
    ``without``: file hashes left out, so that a run can ask whether the published
    tables were built from exactly the files it had before it added these (the digest
    the previous run published).
    """
    if input_table not in TABLES:
        raise ValueError(f"table {input_table!r} is not in the warehouse allowlist")
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8") + b"\0")
    if Warehouse.exists(con, input_table):
        for sha, rows, line_sum in con.sql(
            f'SELECT file_sha256, count(*), sum(line_no) FROM "{input_table}" '
            "WHERE file_sha256 IS NULL OR NOT list_contains(CAST($without AS VARCHAR[]), file_sha256) "
            "GROUP BY ALL ORDER BY ALL",
            params={"without": sorted(without)},
        ).fetchall():
            h.update(f"{sha}|{rows}|{line_sum}\n".encode())
    return h.hexdigest()


def unchanged(con: duckdb.DuckDBPyConnection, table: str, inputs: str, outputs: Iterable[str]) -> bool:
    """Whether ``table`` records ``inputs`` and every output table exists."""
    if not all(Warehouse.exists(con, t) for t in (table, *outputs)):
        return False
    return con.sql(f'SELECT {COLUMN} FROM "{table}"').fetchall() == [(inputs,)]


def built_without(
    con: duckdb.DuckDBPyConnection, table: str, input_table: str, parts: Iterable[str], files: Collection[str] | None,
    outputs: Iterable[str],
) -> bool:
    """Whether ``table`` records the digest of ``input_table`` without ``files`` (and every
    output table exists): the outputs were built from exactly the other files' rows, so a
    run that has just added ``files`` may bring them up to date with those files' rows.
    No files (None: every file is about to be read again) is never such a run."""
    return bool(files) and unchanged(con, table, digest(con, input_table, parts, without=files or ()), outputs)


def frame(inputs: str) -> pl.DataFrame:
    """The one-row table to publish with the outputs."""
    return pl.DataFrame({COLUMN: [inputs]}, schema={COLUMN: pl.String})
