"""Typed parsing of archived JSONL sources with SQL files, one judged row per line.

A line's verdict is a pure function of the line (and of the parser: the SQL file, the
shared macros, the identifier pattern and the ISO currency list), and an archived file
never changes (its identity is its content hash). So each source's verdicts are kept in
a warehouse table (``<source>_parsed``), filled for the files archived since the last
run only; a run then scans the table instead of parsing every line of the history again
(at 100k intents over 31 days the delivery lines' JSON parse was most of the step).
Every cached row carries the parser's version; a table written by another version (or
missing) is parsed again from the whole archive, exactly as the first run does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import duckdb
import polars as pl

from zentra_pipelines.adapters.code_version import code_version
from zentra_pipelines.adapters.sql_files import ensure_macros, load_sql
from zentra_pipelines.adapters.warehouse import TABLES, Warehouse
from zentra_pipelines.domain.money import IDENTIFIER_PATTERN, currency_exponents

PARAMS = {"identifier": IDENTIFIER_PATTERN.strip("^$")}

#: The cache table of each source parsed through ``parse_source`` (constants, never data).
PARSE_CACHES = {"deliveries": "deliveries_parsed", "intents": "intents_parsed", "settlements": "settlements_parsed"}
#: The cached rows' order: unique per line, the order every parse SQL file returns.
LINE_ORDER = "source_file, line_no, file_sha256"
#: The judged rows' order (``refresh_judged``): file by file, as ``archived_lines`` gives them.
FILE_ORDER = "source_file, file_sha256, line_no"
VERSION_COLUMN = "parser_version"


def parser_version(sql_name: str) -> str:
    """Digest of everything a line's verdict depends on besides the line itself: which
    parser, and the code, shipped data (currency list) and engines (``code_version``)."""
    return hashlib.sha256(f"{sql_name}\0{code_version()}".encode()).hexdigest()


def _lines_view(con: duckdb.DuckDBPyConnection, source: str, view: str, files: list[str] | None) -> None:
    """The archived lines of ``source`` (only those of ``files`` when given) as ``view``.

    Built with the relation API, the source and hashes bound as constants: the text
    never round-trips through Python (at 1M intents, ~1 GB of delivery lines was copied
    into Polars and registered back).
    """
    con.table("landing_lines").filter(_lines_condition(source, files)).select(
        "source_file", "file_sha256", "line_no", "text", "frame_error", "frame_detail"
    ).create_view(view, replace=True)


def _lines_condition(source: str, files: list[str] | None) -> duckdb.Expression:
    condition = duckdb.ColumnExpression("source") == duckdb.ConstantExpression(source)
    if files is not None:
        condition = condition & duckdb.ColumnExpression("file_sha256").isin(
            *(duckdb.ConstantExpression(sha) for sha in files)
        )
    return condition


def _check_names(view: str, cache: str) -> None:
    if not view.replace("_", "").isalnum():
        raise ValueError(f"bad view name {view!r}")
    if cache not in TABLES:
        raise ValueError(f"table {cache!r} is not in the warehouse allowlist")


def parse_source(
    con: duckdb.DuckDBPyConnection, source: str, sql_name: str, view: str, *, ordered: bool = True
) -> pl.DataFrame:
    """Every archived line of one landing source judged by ``sql/<sql_name>.sql``, in line order.

    ``ordered=False``: the same rows in the cache table's order, for callers whose result
    does not depend on the rows' order (they sort by a key of their own): sorting the
    cached rows by their text keys was most of the read (267k delivery rows: 0.59 vs
    0.15 CPU s).

    Lines of files not in the source's cache table are parsed and appended to it first
    (one statement: a crash leaves whole files cached or none); then the whole table is
    read in line order, which is the parse of the whole archive by construction.
    ``view`` is the input name the SQL file reads (e.g. intent_lines); both names are
    constants of the caller, never data.
    """
    return read_cache(con, refresh_cache(con, source, sql_name, view), LINE_ORDER if ordered else None)


def read_cache(con: duckdb.DuckDBPyConnection, cache: str, order: str | None) -> pl.DataFrame:
    """The rows of a cache table ``refresh_cache``/``refresh_judged`` just brought up to
    date, without the version column; ``order``: a constant column list, or None for the
    table's own order (callers that sort by a key of their own)."""
    if cache not in PARSE_CACHES.values():
        raise ValueError(f"table {cache!r} is not a parse cache")
    by = f" ORDER BY {order}" if order else ""
    return con.sql(f'SELECT * EXCLUDE ({VERSION_COLUMN}) FROM "{cache}"{by}').pl()


def refresh_cache(con: duckdb.DuckDBPyConnection, source: str, sql_name: str, view: str) -> str:
    """Parse the lines of ``source``'s files not in its cache table yet into it; its name."""
    cache = PARSE_CACHES[source]
    _check_names(view, cache)
    version = parser_version(sql_name)
    con.register("iso_currencies", pl.DataFrame({"currency": sorted(currency_exponents())}))
    try:
        ensure_macros(con)
        con.execute("BEGIN TRANSACTION")
        try:
            pending = _pending_files(con, source, cache, version)
            if pending != []:
                _lines_view(con, source, view, pending)
                parse = "SELECT *, $version::VARCHAR AS " + VERSION_COLUMN + " FROM (\n" + load_sql(sql_name) + "\n)"
                params = {**PARAMS, "version": version}
                con.execute(f'CREATE TABLE IF NOT EXISTS "{cache}" AS {parse} LIMIT 0', params)
                con.execute(f'INSERT INTO "{cache}" {parse}', params)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute("DROP VIEW IF EXISTS " + view)  # a checked identifier, never data
    finally:
        con.unregister("iso_currencies")
    return cache


def _pending_files(con: duckdb.DuckDBPyConnection, source: str, cache: str, version: str) -> list[str] | None:
    """The archived files of ``source`` whose lines are not in ``cache`` yet; None = all
    of them (no cache, or one written by another parser version: it is dropped here,
    inside the caller's transaction)."""
    if not Warehouse.exists(con, cache):
        return None
    if _stale(con, cache, version):
        con.execute(f'DROP TABLE "{cache}"')
        return None
    return uncached_files(con, source, cache)


def unparsed_files(con: duckdb.DuckDBPyConnection, source: str, sql_name: str) -> list[str] | None:
    """What ``refresh_cache`` is about to parse, read-only: the archived files of ``source``
    whose lines are not in its cache yet; None when it would parse every file (no cache,
    or one another parser version wrote)."""
    return unjudged_files(con, source, parser_version(sql_name))


def unjudged_files(con: duckdb.DuckDBPyConnection, source: str, version: str) -> list[str] | None:
    """``unparsed_files`` for a cache whose rows carry ``version`` (``refresh_judged``)."""
    cache = PARSE_CACHES[source]
    if not Warehouse.exists(con, cache) or _stale(con, cache, version):
        return None
    return uncached_files(con, source, cache)


def _stale(con: duckdb.DuckDBPyConnection, cache: str, version: str) -> bool:
    (stale,) = con.execute(
        f'SELECT count(*) FROM "{cache}" WHERE {VERSION_COLUMN} IS DISTINCT FROM $version', {"version": version}
    ).fetchall()[0]
    return bool(stale)


def uncached_files(con: duckdb.DuckDBPyConnection, source: str, cache: str) -> list[str]:
    """The archived files of ``source`` none of whose lines is in ``cache`` (a table of
    per-line results keyed by ``file_sha256``) yet, in hash order: the files a refresh of
    ``cache`` adds whole (a file's lines are archived, and cached, in one statement)."""
    if cache not in TABLES:
        raise ValueError(f"table {cache!r} is not in the warehouse allowlist")
    return [
        sha for (sha,) in con.execute(
            f'SELECT DISTINCT file_sha256 FROM landing_lines WHERE source = $source '
            f'AND file_sha256 NOT IN (SELECT DISTINCT file_sha256 FROM "{cache}") ORDER BY file_sha256',
            {"source": source},
        ).fetchall()
    ]


def changed_lines(con: duckdb.DuckDBPyConnection, cache: str, key: Sequence[str], files: list[str]) -> pl.DataFrame:
    """The cached rows a run that added ``files`` judges again, for a source deduplicated by
    ``key``: every row of those files, and every row judged ok (no error_code) of a key
    that an ok row of theirs carries (NULL equal to NULL): what accepting those keys
    again needs, the copies and conflicts of each decided by its own rows. In line order,
    without the version column. ``cache`` and ``key`` are constants of the caller."""
    if cache not in PARSE_CACHES.values() or not key or not all(c.isidentifier() for c in key):
        raise ValueError(f"not a parse cache and key: {cache!r} {key!r}")
    columns = ", ".join(f'"{c}"' for c in key)
    match = " AND ".join(f'k."{c}" IS NOT DISTINCT FROM p."{c}"' for c in key)
    new = "list_contains(CAST($files AS VARCHAR[]), file_sha256)"
    return con.sql(
        f'WITH keys AS (SELECT DISTINCT {columns} FROM "{cache}" WHERE error_code IS NULL AND {new}) '
        f'SELECT * EXCLUDE ({VERSION_COLUMN}) FROM "{cache}" AS p '
        f"WHERE {new.replace('file_sha256', 'p.file_sha256')} "
        f"OR (p.error_code IS NULL AND EXISTS (SELECT 1 FROM keys AS k WHERE {match})) "
        f"ORDER BY {LINE_ORDER}",
        params={"files": files},
    ).pl()


def archived_lines(con: duckdb.DuckDBPyConnection, source: str, files: list[str] | None = None) -> pl.DataFrame:
    """The archived lines of ``source`` (only those of ``files`` when given), file by file."""
    relation = con.table("landing_lines").filter(_lines_condition(source, files)).select(
        "source_file", "file_sha256", "line_no", "text", "frame_error", "frame_detail"
    )
    return relation.order(FILE_ORDER).pl()


def refresh_judged(
    con: duckdb.DuckDBPyConnection, source: str, judge: Callable[[pl.DataFrame], pl.DataFrame], version: str
) -> str:
    """Judge the lines of ``source``'s files not in its cache table yet into it; its name.

    For a ``judge`` whose rows of a file depend on that file's lines only (and on
    ``version``, the judge's code): the cache read in ``FILE_ORDER`` (``read_cache``) is
    ``judge(archived_lines(con, source))``, while only the files not judged yet are judged."""
    cache = PARSE_CACHES[source]
    _check_names("lines", cache)
    con.execute("BEGIN TRANSACTION")
    try:
        pending = _pending_files(con, source, cache, version)
        if pending != []:
            rows = judge(archived_lines(con, source, pending))
            Warehouse.append(con, cache, rows.with_columns(pl.lit(version).alias(VERSION_COLUMN)))
            del rows
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return cache
