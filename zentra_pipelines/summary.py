"""The run summary printed by `zentra run`: figures, not adjectives, and where things went."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from zentra_pipelines.adapters.warehouse import Warehouse


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    return Warehouse.read(con, table) if Warehouse.exists(con, table) else pl.DataFrame()


def _line(label: str, counts: dict[str, int]) -> str:
    if not counts:
        return f"  {label}: none"
    return f"  {label}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())


def _by(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.height == 0:
        return {}
    return {str(k): int(v) for k, v in sorted(frame.group_by(column).len().iter_rows(), key=lambda r: str(r[0]))}


def render(con: duckdb.DuckDBPyConnection, home: Path) -> str:
    out = ["Zentra run summary"]
    acc = _rows(con, "ingest_accounting")
    if acc.height:
        out.append("Ingest (received = accepted + quarantined):")
        totals = acc.group_by("source").agg(pl.col("received", "accepted", "quarantined").sum()).sort("source")
        for r in totals.iter_rows(named=True):
            ok = "ok" if r["received"] == r["accepted"] + r["quarantined"] else "MISMATCH"
            out.append(f"  {r['source']:<12} received {r['received']:>9,}  accepted {r['accepted']:>9,}  "
                       f"quarantined {r['quarantined']:>7,}  [{ok}]")
    for table, label in (("callbacks_quarantine", "callbacks quarantined"), ("intents_quarantine", "intents quarantined"),
                         ("settlements_quarantine", "settlements quarantined"),
                         ("deliveries_quarantine", "deliveries quarantined"),
                         ("ledger_postings_quarantine", "ledger postings quarantined")):
        q = _rows(con, table)
        if q.height:
            out.append(_line(label, _by(q, "error_code")))
    state = _rows(con, "provider_state")
    out.append(f"Provider state: {state.height:,} provider refs")
    decisions = _rows(con, "policy_decisions")
    out.append("Controls:")
    out.append(_line("decisions", _by(decisions, "outcome")))
    reviews = _rows(con, "review_queue")
    out.append(_line("open reviews by tenant", _by(reviews, "tenant_id")))
    balances = _rows(con, "ledger_balances")
    entries = _rows(con, "ledger_entries")
    out.append(f"Ledger: {entries.height:,} entries, {balances.height:,} balances checked")
    findings = _rows(con, "ledger_findings")
    if findings.height:
        out.append(_line("findings", _by(findings, "finding_type")))
    breaks = _rows(con, "reconciliation_breaks")
    out.append(f"Reconciliation breaks: {breaks.height:,}")
    out.append(_line("by type", _by(breaks, "break_type")))
    health = _rows(con, "webhook_health")
    if health.height:
        out.append("Webhook health:")
        for r in health.sort("tenant_id", "endpoint").iter_rows(named=True):
            flag = "  FAILING NOW" if r.get("failing_now") else ""
            out.append(f"  {r['tenant_id']} {r['endpoint']}: {r['success_rate_pct']:.2f}% of {r['attempts']:,} attempts{flag}")
    replay = _rows(con, "replay_queue")
    out.append(f"Replay queue: {replay.height:,} events ready to replay")
    packets = _rows(con, "packets")
    if packets.height:
        created = int(packets["created"].sum())
        line = f"Audit packets: {packets.height:,} tenant-days, {created:,} sealed this run"
        if "rebuilt" in packets.columns:
            kept = int((~packets["rebuilt"].fill_null(True)).sum())
            line += f", {kept:,} unchanged (not rebuilt)"
        out.append(line)
    from zentra_pipelines.data_contracts import summary_lines

    out.extend(summary_lines(con))
    out.append(f"Outputs: warehouse {home / 'warehouse.duckdb'}, packets {home / 'packets'}")
    return "\n".join(out)
