"""What each tenant-day packet is made of, summed up in one digest, so an unchanged day
is recognised without reading its rows or rebuilding its packet.

Why: re-sealing compares a freshly built packet with the latest sealed version, which
means reading every row of every day and serialising it again: at 100k intents over
31 days that was 26 of the 75 seconds of adding one day, and a run with nothing new
cost as much as the first. The digest is computed in DuckDB in one grouped pass per
table (about 0.1 s per 250k rows) and recorded beside the version it describes
(``packet_fingerprints``); a tenant-day whose digest and sealed version are both
unchanged keeps its packet untouched.

What goes in, per tenant-day: for each packet table, the count and the sum of a 64-bit
hash of every sealed column of its rows of that day (order-free, so arrival order does
not matter; the columns a packet recomputes at its day's end, packet_plan.DAY_END_COLUMNS,
are left out: they move with every run's as-of); the intent timeline of the intents created that day; the tenant's daily
balances up to that day (closing balances carry forward); the unbalanced journals among
that day's entries (the day's checks read them); and, for every day alike, the signing
key id, the packet tables' schemas, the library versions that write the bytes and a
digest of this package's source (``code_version``: a code change rebuilds every packet once, and the
content comparison still seals a new version only where bytes differ).

What it is not: evidence. The hash is DuckDB's fast non-cryptographic ``hash``; the
digest only decides whether a day needs rebuilding. Packets stay signed and verified
as before; ``ZENTRA_PACKETS_REBUILD_ALL=1`` (read at run time) ignores the recorded
digests and rebuilds every day, e.g. after restoring a warehouse from backup.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from datetime import date
from importlib import metadata

import duckdb
import polars as pl

from zentra_pipelines.adapters.code_version import code_version
from zentra_pipelines.adapters.sql_files import load_sql
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import packet_plan

TABLE = "packet_fingerprints"
REBUILD_ALL_ENV = "ZENTRA_PACKETS_REBUILD_ALL"
#: Bump when what a packet holds changes in a way neither its rows nor the code digest show.
FORMAT = "zentra.packet_inputs/1"
_LIBRARIES = ("duckdb", "polars", "pyarrow")

Key = tuple[str, date]


def rebuild_all_requested() -> bool:
    return os.environ.get(REBUILD_ALL_ENV, "").strip().lower() in {"1", "true", "yes"}


def provenance(con: duckdb.DuckDBPyConnection, tenants: list[str], days: list[date]) -> dict[Key, list[list[str]]]:
    """Per tenant-day, the ``[source_file, file_sha256]`` of the landing files whose lines
    became its accepted intents, deliveries and settlements (packet_plan.PROVENANCE_COLUMNS),
    sorted. Cache and column names are constants of the plan; tenants and days are bound."""
    params = {"tenants": sorted(set(tenants)), "days": sorted(days)}
    found: dict[Key, set[tuple[str, str]]] = defaultdict(set)
    for cache, column in packet_plan.PROVENANCE_COLUMNS.items():
        if not Warehouse.exists(con, cache):
            continue
        for tenant, d, source_file, sha in _by_tenant_day(
            con, "t.source_file, t.file_sha256", f"FROM {quote(cache)} AS t", f"CAST(t.{quote(column)} AS DATE)",
            params, "AND t.error_code IS NULL",
        ):
            found[(tenant, d)].add((source_file, sha))
    return {key: [list(pair) for pair in sorted(pairs)] for key, pairs in found.items()}


def fingerprints(
    con: duckdb.DuckDBPyConnection, tenants: list[str], days: list[date], key_id: str,
    present: dict[Key, dict[str, int]] | None = None, journal_sums: pl.DataFrame | None = None,
    sources: dict[Key, list[list[str]]] | None = None,
) -> dict[Key, str]:
    """``(tenant_id, day) -> sha256 hex`` for every tenant-day of ``days`` holding a packet row.

    ``present``, when given, receives per tenant-day the packet tables holding at least one
    of its rows and how many (the same tenant and day filter as the packet's own reads): a
    tenant-day that is rebuilt need not query the others, which would come back empty.
    ``journal_sums``: ``unbalanced_journal_sums(con)``, when the caller has it already (the
    packet step needs it for its day checks; a scan of every entry, 0.37 s at 1M intents).
    ``sources``: ``provenance(con, tenants, days)``, when the caller has it already (the
    files a manifest names change its bytes, so they are part of the digest).
    """
    params = {"tenants": sorted(set(tenants)), "days": sorted(days)}
    parts: dict[Key, dict[str, list[str]]] = defaultdict(dict)
    schemas: dict[str, list[list[str]]] = {}
    for name, (table, column) in packet_plan.DAY_COLUMNS.items():
        if not Warehouse.exists(con, table) or (name == "intent_timeline" and not Warehouse.exists(con, "intents")):
            continue
        columns = sealed_columns(con, table)
        schemas[name] = columns
        recomputed = packet_plan.DAY_END_COLUMNS.get(name, frozenset())
        row = ", ".join(f"t.{quote(c)}" for c, _ in columns if c not in recomputed)
        if name == "intent_timeline":  # dated by its intent's creation, as the packet cuts it
            source = 'FROM "intent_timeline" AS t JOIN "intents" AS i ON t.tenant_id = i.tenant_id AND t.intent_id = i.intent_id'
            day = "CAST(i.created_at AS DATE)"
            row += ", i.created_at"
        else:
            source = f'FROM "{table}" AS t'
            day = f"CAST(t.{quote(column)} AS DATE)"
        for tenant, d, n, h in _by_tenant_day(con, f"count(*), CAST(sum(hash({row})) AS VARCHAR)", source, day, params):
            parts[(tenant, d)][name] = [str(n), h]
    if present is not None:
        present.update({key: {name: int(n) for name, (n, _) in tables.items()} for key, tables in parts.items()})
    balances = _carried_balances(con, params["tenants"], parts.keys())
    journals = _unbalanced_journals(
        con, params, unbalanced_journal_sums(con) if journal_sums is None else journal_sums)
    sources = provenance(con, params["tenants"], params["days"]) if sources is None else sources
    common = {"format": FORMAT, "key_id": key_id, "schemas": schemas, "code": code_version(), "libraries": _versions()}
    return {
        key: hashlib.sha256(json.dumps(
            {"common": common, "tables": tables, "balances": balances.get(key), "journals": journals.get(key),
             "sources": sources.get(key)},
            sort_keys=True, separators=(",", ":"),
        ).encode()).hexdigest()
        for key, tables in parts.items()
    }


def _by_tenant_day(con: duckdb.DuckDBPyConnection, select: str, source: str, day: str, params: dict,
                   where: str = "") -> list[tuple]:
    """``(tenant_id, day, *select)`` of ``source`` (``FROM ... AS t``) grouped by tenant-day and
    the selected columns, for the bound ``$tenants`` and ``$days``. Every SQL piece is built
    from constants and catalog names by the callers, never from data."""
    return con.sql(
        f"SELECT t.tenant_id, {day}, {select} {source} "
        f"WHERE list_contains($tenants, t.tenant_id) AND list_contains($days, {day}) {where} GROUP BY ALL",
        params=params,
    ).fetchall()


def sealed_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[list[str]]:
    """``[name, type]`` of a table's sealed columns in table order (packet_plan.DROP_COLUMNS left out)."""
    return [[c, t] for c, t in Warehouse.columns(con, table) if c not in packet_plan.DROP_COLUMNS]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _carried_balances(con: duckdb.DuckDBPyConnection, tenants: list[str], keys) -> dict[Key, list[str]]:
    """Per tenant-day, the count and hash sum of the tenant's daily balances up to that day:
    a packet's closing balances carry every account's last movement forward."""
    if not Warehouse.exists(con, "daily_balances"):
        return {}
    row = ", ".join(f"t.{quote(c)}" for c, _ in sealed_columns(con, "daily_balances"))
    per_day: dict[str, list[tuple[date, int, int]]] = defaultdict(list)
    for tenant, day, n, h in con.sql(
        f'SELECT t.tenant_id, t."day", count(*), sum(hash({row})) FROM "daily_balances" AS t '
        "WHERE list_contains($tenants, t.tenant_id) GROUP BY ALL ORDER BY ALL",
        params={"tenants": tenants},
    ).fetchall():
        per_day[tenant].append((day, int(n), int(h)))
    out: dict[Key, list[str]] = {}
    for tenant, day in keys:
        upto = [(n, h) for d, n, h in per_day.get(tenant, []) if d <= day]
        out[(tenant, day)] = [str(sum(n for n, _ in upto)), str(sum(h for _, h in upto))]
    return out


#: ``unbalanced_journal_sums``: sums are HUGEINT in DuckDB, exact beyond int64.
JOURNAL_SUMS_SCHEMA: dict[str, pl.DataType] = {"journal_id": pl.String, "currency": pl.String, "total": pl.Int128}


def unbalanced_journal_sums(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every journal whose entries do not sum to zero per currency (sql/select_unbalanced_journals.sql),
    ``JOURNAL_SUMS_SCHEMA``; none without a ledger."""
    if not Warehouse.exists(con, "ledger_entries"):
        return pl.DataFrame(schema=JOURNAL_SUMS_SCHEMA)
    return con.sql(load_sql("select_unbalanced_journals")).pl().cast(JOURNAL_SUMS_SCHEMA)


def _unbalanced_journals(con: duckdb.DuckDBPyConnection, params: dict, sums: pl.DataFrame) -> dict[Key, list[str]]:
    """Per tenant-day, the journals among its entries whose sum is not zero (with their sums).

    ``sums``: ``unbalanced_journal_sums``; handed to DuckDB with the totals as text (exact,
    and a type every Arrow export carries)."""
    if sums.height == 0:
        return {}
    con.register("_unbalanced_journal_sums", sums.with_columns(pl.col("total").cast(pl.String)))
    try:
        rows = con.sql(
            "WITH days AS (SELECT DISTINCT tenant_id, CAST(posted_at AS DATE) AS day, journal_id FROM ledger_entries "
            "WHERE journal_id IN (SELECT journal_id FROM _unbalanced_journal_sums) AND list_contains($tenants, tenant_id) "
            "AND list_contains($days, CAST(posted_at AS DATE))) "
            "SELECT d.tenant_id, d.day, count(*), CAST(sum(hash(o.journal_id, o.currency, o.total)) AS VARCHAR) "
            "FROM days AS d JOIN _unbalanced_journal_sums AS o USING (journal_id) GROUP BY ALL",
            params=params,
        ).fetchall()
    finally:
        con.unregister("_unbalanced_journal_sums")
    return {(tenant, day): [str(n), h] for tenant, day, n, h in rows}


def _versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in _LIBRARIES}


# ------------------------------------------------------------------ the record ---

SCHEMA = {
    "tenant_id": pl.String,
    "period": pl.Date,
    "version": pl.Int64,
    "inputs_sha256": pl.String,
    "manifest_sha256": pl.String,
}


def recorded(con: duckdb.DuckDBPyConnection) -> dict[Key, tuple[int, str, str]]:
    """``(tenant_id, period) -> (version, inputs_sha256, manifest_sha256)`` as last recorded."""
    frame = Warehouse.read(con, TABLE)
    if frame is None:
        return {}
    return {(t, p): (v, i, m) for t, p, v, i, m in frame.select(list(SCHEMA)).iter_rows()}


def record(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, date, int, str, str]], days: set[date] | None) -> None:
    """Keep the record whole: a partitioned run replaces only the rows of its days."""
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    old = Warehouse.read(con, TABLE) if days is not None else None
    if old is not None and old.height:
        kept = old.select(list(SCHEMA)).filter(~pl.col("period").is_in(sorted(days)))
        frame = pl.concat([kept, frame])
    Warehouse.publish(con, {TABLE: frame.sort("tenant_id", "period")}, allow_empty={TABLE})
