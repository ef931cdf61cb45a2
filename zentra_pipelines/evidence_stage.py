"""Ledgered and reconciled state → one sealed, signed packet per tenant and UTC day."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
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


def load_packet_frames(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    frames: dict[str, pl.DataFrame] = {}
    for name, (table, _) in packet_plan.DAY_COLUMNS.items():
        if name == "intent_timeline":
            continue
        frame = Warehouse.read(con, table)
        if frame is not None:
            frames[name] = frame
    timeline = Warehouse.read(con, "intent_timeline")
    intents = frames.get("intents")
    if timeline is not None and intents is not None:
        frames["intent_timeline"] = timeline.join(
            intents.select("tenant_id", "intent_id", pl.col("created_at").alias("intent_created_at")),
            on=["tenant_id", "intent_id"],
        )
    return frames


def run_packets(
    con: duckdb.DuckDBPyConnection,
    home: Path,
    tenants: list[str],
    signing_key: str | None,
    days: set[date] | None = None,
) -> EvidenceReport:
    """Seal every tenant-day (or only ``days``, for a partitioned run); unchanged days seal nothing."""
    signer = load_signer(home, signing_key)
    packet_store.sweep_staging(home)  # temp packets of a killed run: never evidence, never kept
    frames = load_packet_frames(con)
    plan = packet_plan.allocate(frames, tenants)
    if days is not None:
        plan = {k: v for k, v in plan.items() if k.period in days}
    daily = Warehouse.read(con, "daily_balances")
    entries = frames.get("ledger_entries", pl.DataFrame())
    journal_sums = (
        entries.group_by("journal_id", "currency").agg(pl.col("amount_minor").sum().alias("total"))
        if entries.height else pl.DataFrame(schema={"journal_id": pl.String, "currency": pl.String, "total": pl.Int64})
    )
    daily_by_tenant = (
        daily.partition_by("tenant_id", as_dict=True) if daily is not None and daily.height else {}
    )

    def seal_one(key: packet_plan.TenantDay) -> tuple:
        tables = dict(plan[key])
        tenant_daily = daily_by_tenant.get((key.tenant_id,))
        if tenant_daily is not None:
            tables["closing_balances"] = ledger_domain.closing_balances_at(tenant_daily, key.period)
        if "reconciliation_breaks" in tables:
            tables["reconciliation_breaks"] = packet_plan.age_at_day_end(tables["reconciliation_breaks"], key.period)
        report = {}
        if "deliveries" in tables:
            as_of = packet_plan.day_end(key.period)
            tables["webhook_health"] = delivery_health.webhook_health(tables["deliveries"], as_of)
            tables["replay_queue"] = delivery_health.replay_queue(tables["deliveries"])
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
    # a small pool. The packets table is sorted, so the thread schedule never shows.
    keys = sorted(plan, key=lambda k: (k.tenant_id, k.period))
    workers = min(SEAL_WORKERS, len(keys)) or 1
    if workers == 1:
        rows = [seal_one(k) for k in keys]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zentra-seal") as pool:
            rows = list(pool.map(seal_one, keys))
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
