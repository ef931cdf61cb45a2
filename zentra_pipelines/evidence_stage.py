"""Ledgered and reconciled state → one sealed, signed packet per tenant and UTC day."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from zentra_pipelines.adapters import packet_store
from zentra_pipelines.adapters.config import load_policies, load_webhook_keys
from zentra_pipelines.adapters.signing import load_signer
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import deliveries as delivery_health
from zentra_pipelines.domain import ledger as ledger_domain
from zentra_pipelines.domain import packet_plan
from zentra_pipelines.domain.evidence import PacketInput

#: Tenant-days sealed at once (each holds one packet's tables and bytes in memory).
SEAL_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class EvidenceReport:
    packets: pl.DataFrame  # tenant_id, period, version, created, path, merkle_root, key_id
    key_kind: str
    key_id: str

    @property
    def sealed_now(self) -> int:
        return int(self.packets["created"].sum()) if self.packets.height else 0


def configured_tenants(policies_path: Path, secrets_path: Path) -> list[str]:
    """Packets are only ever made for tenants named in configuration (ids used in paths)."""
    tenants = set(load_policies(policies_path)["tenants"]) | set(load_webhook_keys(secrets_path)["tenant_id"])
    return sorted(t for t in tenants if isinstance(t, str))


def tenant_day_frames(con: duckdb.DuckDBPyConnection, tenant: str, day: date) -> dict[str, pl.DataFrame]:
    """The tables of one tenant-day packet, as :func:`packet_plan.allocate` would cut
    them out of the whole day's rows: only that tenant's rows of that UTC day,
    without the never-sealed columns, empty tables left out. Filtered in DuckDB, so only
    one packet's rows reach Python (a whole day at 1M intents is ~1 GB of frames)."""
    frames: dict[str, pl.DataFrame] = {}
    params = {"tenant": tenant, "day": day}
    for name, (table, column) in packet_plan.DAY_COLUMNS.items():
        if name == "intent_timeline" or not Warehouse.exists(con, table):
            continue
        frames[name] = con.sql(
            f'SELECT {_sealed_columns(con, table, "t")} FROM "{table}" AS t '
            f'WHERE t.tenant_id = $tenant AND CAST(t."{column}" AS DATE) = $day',
            params=params,
        ).pl()
    if Warehouse.exists(con, "intent_timeline") and Warehouse.exists(con, "intents"):
        frames["intent_timeline"] = con.sql(
            f'SELECT {_sealed_columns(con, "intent_timeline", "t")}, i.created_at AS intent_created_at '
            'FROM "intent_timeline" AS t '
            'JOIN "intents" AS i ON t.tenant_id = i.tenant_id AND t.intent_id = i.intent_id '
            'WHERE t.tenant_id = $tenant AND i.tenant_id = $tenant AND CAST(i.created_at AS DATE) = $day',
            params=params,
        ).pl()
    return {name: frame for name, frame in frames.items() if frame.height}


def _sealed_columns(con: duckdb.DuckDBPyConnection, table: str, alias: str) -> str:
    """A table's columns in table order, less packet_plan.DROP_COLUMNS (names from the catalog, quoted)."""
    names = [c for (c,) in con.sql(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = $t ORDER BY column_index",
        params={"t": table},
    ).fetchall() if c not in packet_plan.DROP_COLUMNS]
    return ", ".join(f'{alias}."{c.replace(chr(34), chr(34) * 2)}"' for c in names)


def packet_days(con: duckdb.DuckDBPyConnection, tenants: list[str]) -> list[date]:
    """Every UTC day holding a row of a configured tenant in a packet table."""
    found: set[date] = set()
    for name, (table, column) in packet_plan.DAY_COLUMNS.items():
        if name == "intent_timeline" or not Warehouse.exists(con, table):
            continue  # dated by its intent, already counted through `intents`
        found.update(d for (d,) in con.sql(
            f'SELECT DISTINCT CAST("{column}" AS DATE) FROM "{table}" WHERE list_contains($tenants, tenant_id)',
            params={"tenants": sorted(tenants)},
        ).fetchall() if d is not None)
    return sorted(found)


def run_packets(
    con: duckdb.DuckDBPyConnection,
    home: Path,
    tenants: list[str],
    signing_key: str | None,
    days: set[date] | None = None,
) -> EvidenceReport:
    """Seal every tenant-day (or only ``days``, for a partitioned run); unchanged days seal nothing.

    One tenant-day at a time: only that packet's rows are read from the warehouse (at 1M
    intents the whole state is many GB, one day's rows of every tenant ~1 GB of frames)
    and sealed on a small thread pool, while the next one is read; at most SEAL_WORKERS
    packets' rows are held at once.
    """
    signer = load_signer(home, signing_key)
    packet_store.sweep_staging(home)  # temp packets of a killed run: never evidence, never kept
    daily = Warehouse.read(con, "daily_balances")
    # sums over every entry (a hostile journal could span days); exact (HUGEINT). The day
    # checks only look for journals whose sum is not zero: the balanced ones (all but a
    # handful of ~1M at 1M intents) are left in DuckDB.
    journal_sums = (
        con.sql('SELECT journal_id, currency, sum(amount_minor) AS total FROM "ledger_entries" GROUP BY ALL '
                'HAVING sum(amount_minor) <> 0').pl()
        if Warehouse.exists(con, "ledger_entries")
        else pl.DataFrame(schema={"journal_id": pl.String, "currency": pl.String, "total": pl.Int64})
    )
    daily_by_tenant = (
        daily.partition_by("tenant_id", as_dict=True) if daily is not None and daily.height else {}
    )
    todo = sorted(days) if days is not None else packet_days(con, tenants)

    def seal_one(key: packet_plan.TenantDay, tables: dict[str, pl.DataFrame]) -> tuple:
        tenant_daily = daily_by_tenant.get((key.tenant_id,))
        if tenant_daily is not None:
            tables["closing_balances"] = ledger_domain.closing_balances_at(tenant_daily, key.period)
        if "reconciliation_breaks" in tables:
            tables["reconciliation_breaks"] = packet_plan.age_at_day_end(tables["reconciliation_breaks"], key.period)
        report = {}
        if "deliveries" in tables:
            as_of = packet_plan.day_end(key.period)
            tables["webhook_health"], tables["replay_queue"] = delivery_health.health_and_replay(
                tables["deliveries"], as_of)
        inp = PacketInput(
            tenant_id=key.tenant_id,
            period=key.period.isoformat(),
            tables=tables,
            counts=packet_plan.day_counts(tables),
            policy_versions=sorted(set(tables["policy_decisions"]["policy_version"]))
            if "policy_decisions" in tables else [],
            source_inputs=_source_inputs(tables),
            checks=packet_plan.day_checks(tables, journal_sums),
            report=report,
        )
        result = packet_store.seal(home, inp, signer)
        return (key.tenant_id, key.period, result.version, result.created, str(result.path),
                result.merkle_root, result.key_id)

    # Tenant-days are independent (own folder, own version chain) and the work is Parquet,
    # CSV, zlib and SHA-256 on large buffers, all of which release the GIL: seal them on
    # a small pool while this thread (the only one using ``con``) reads the next one.
    # Rows come back in (day, tenant) order whatever the thread schedule.
    rows = []
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=SEAL_WORKERS, thread_name_prefix="zentra-seal") as pool:
        for day in todo:
            for tenant in sorted(set(tenants)):
                if len(pending) >= SEAL_WORKERS:  # bound the packets in memory
                    rows.append(pending.popleft().result())
                tables = tenant_day_frames(con, tenant, day)
                if tables:  # a tenant without a row that day has no packet
                    pending.append(pool.submit(seal_one, packet_plan.TenantDay(tenant, day), tables))
                del tables  # held by the task only, freed when it is sealed
        while pending:
            rows.append(pending.popleft().result())
    packets = pl.DataFrame(
        rows,
        schema={"tenant_id": pl.String, "period": pl.Date, "version": pl.Int64, "created": pl.Boolean,
                "path": pl.String, "merkle_root": pl.String, "key_id": pl.String},
        orient="row",
    )
    _record_packets(con, packets, days)
    return EvidenceReport(packets=packets, key_kind=signer.key_kind, key_id=signer.key_id)


def _record_packets(con: duckdb.DuckDBPyConnection, packets: pl.DataFrame, days: set[date] | None) -> None:
    """Keep the ``packets`` table whole: a partitioned run replaces only the rows of its days."""
    old = Warehouse.read(con, "packets") if days is not None else None
    if old is not None and old.height:
        kept = old.filter(~pl.col("period").is_in(sorted(days)))
        packets = pl.concat([kept, packets], how="diagonal_relaxed").select(packets.columns)
    Warehouse.publish(con, {"packets": packets.sort("tenant_id", "period")}, allow_empty={"packets"})


def _source_inputs(tables: dict[str, pl.DataFrame]) -> list[dict[str, str]]:
    """The landing files that contributed rows to this packet, by content hash."""
    seen: set[tuple[str, str]] = set()
    for frame in tables.values():
        if {"source_file", "file_sha256"} <= set(frame.columns):
            seen.update(frame.select("source_file", "file_sha256").unique().iter_rows())
    entries = tables.get("ledger_entries")
    if entries is not None and entries.height:
        head = entries.sort("entry_seq")["entry_hash"][-1]
        seen.add(("source_db:ledger_postings (chain head)", head))
    return [{"path": p, "sha256": h} for p, h in sorted(seen) if p and h]
