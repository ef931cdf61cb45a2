"""The run summary printed by `zentra run`: figures, not adjectives, and where things went."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import packet_plan
from zentra_pipelines.evidence_stage import packet_outcomes


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    return Warehouse.read(con, table) if Warehouse.exists(con, table) else pl.DataFrame()


def _line(label: str, counts: dict[str, int]) -> str:
    if not counts:
        return f"  {label}: none"
    return f"  {label}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())


def _by(con: duckdb.DuckDBPyConnection, table: str, column: str) -> dict[str, int]:
    """Rows per value of ``column``, keys as text in text order (NULL shown as 'None')."""
    return {str(k): n for k, n in sorted(Warehouse.count_by(con, table, column), key=lambda r: str(r[0]))}


#: Accepted tables whose rows a tenant's packet seals: a tenant with rows here and no
#: packet at all is one the policies and secrets do not configure.
_TENANT_TABLES = ("intents", "policy_decisions", "settlements", "deliveries", "ledger_entries")


def _unsealed_tenants(con: duckdb.DuckDBPyConnection, sealed: set[str]) -> dict[str, list[tuple[str, int]]]:
    """Tenant -> (table, rows) for tenants with accepted rows but no packet, in text order.

    Packets are sealed per configured tenant only (tenant ids that name folders come from
    configuration), so such rows are evidence nowhere but here: the summary says so.
    """
    found: dict[str, list[tuple[str, int]]] = {}
    for table in _TENANT_TABLES:
        for tenant, n in Warehouse.count_by(con, table, "tenant_id"):  # [] when not published
            if tenant is not None and tenant not in sealed:
                found.setdefault(tenant, []).append((table, n))
    return dict(sorted(found.items()))


def _ownerless_reviews(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Open reviews per tenant whose owner is null: a tenant configured without reviewers
    (allowed) sends intents to review that nobody owns; said, not left to be found."""
    if not Warehouse.exists(con, "review_queue"):
        return {}
    rows = con.sql('SELECT tenant_id, count(*) FROM "review_queue" WHERE owner IS NULL GROUP BY 1 ORDER BY 1')
    return {str(t): int(n) for t, n in rows.fetchall()}


def _undated_quarantine(con: duckdb.DuckDBPyConnection, sealed: set[str]) -> list[tuple[str, int]]:
    """(table, lines) of configured tenants' quarantined lines without a usable timestamp.

    A packet row belongs to the UTC day of its own timestamp: these have none, so they are
    in no packet, only in the warehouse; the summary says how many, instead of leaving an
    auditor to find the gap. Table and column names are constants (``DAY_COLUMNS``)."""
    found = []
    for name, (table, column) in packet_plan.DAY_COLUMNS.items():
        if not name.endswith("_quarantine") or not Warehouse.exists(con, table):
            continue
        (n,) = con.sql(f'SELECT count(*) FROM "{table}" WHERE "{column}" IS NULL AND list_contains($tenants, tenant_id)',
                       params={"tenants": sorted(sealed)}).fetchall()[0]
        if n:
            found.append((table, int(n)))
    return found


def _packets_line(con: duckdb.DuckDBPyConnection, packets: pl.DataFrame) -> str:
    """What the last packets run did; a warehouse from before packets_run kept it in packets."""
    run = _rows(con, "packets_run")
    done = packet_outcomes(run if run.height or "created" not in packets.columns else packets)
    line = f"Audit packets: {packets.height:,} tenant-days, {done.sealed:,} sealed this run"
    if done.unchanged is not None:
        line += f", {done.unchanged:,} unchanged (not rebuilt)"
    if done.rebuilt_same:
        line += f", {done.rebuilt_same:,} rebuilt to the same content (no new version)"
    return line


def render(con: duckdb.DuckDBPyConnection, home: Path, configured: set[str] | None = None,
           packets_ran: bool = True) -> str:
    """The summary text. ``configured``: the tenants the policies and secrets configure;
    without it, the tenants with a packet stand in for them (a configured tenant whose
    rows all fall after today's evidence calendar has none yet, and would be listed as
    not configured). ``packets_ran``: False when this run stopped before sealing, so the
    last packets run's figures are not reported as this run's."""
    out = ["Zentra run summary"]
    acc = _rows(con, "ingest_accounting")
    if acc.height:
        out.append("Ingest (received = accepted + quarantined):")
        totals = acc.group_by("source").agg(pl.col("received", "accepted", "quarantined").sum()).sort("source")
        for r in totals.iter_rows(named=True):
            ok = "ok" if r["received"] == r["accepted"] + r["quarantined"] else "MISMATCH"
            out.append(f"  {r['source']:<15} received {r['received']:>9,}  accepted {r['accepted']:>9,}  "
                       f"quarantined {r['quarantined']:>7,}  [{ok}]")
    for table, label in (("callbacks_quarantine", "callbacks quarantined"), ("intents_quarantine", "intents quarantined"),
                         ("settlements_quarantine", "settlements quarantined"),
                         ("deliveries_quarantine", "deliveries quarantined"),
                         ("ledger_postings_quarantine", "ledger postings quarantined")):
        codes = _by(con, table, "error_code")
        if codes:
            out.append(_line(label, codes))
    out.append(f"Provider state: {Warehouse.count(con, 'provider_state'):,} provider refs")
    out.append("Controls:")
    out.append(_line("decisions", _by(con, "policy_decisions", "outcome")))
    out.append(_line("open reviews by tenant", _by(con, "review_queue", "tenant_id")))
    ownerless = _ownerless_reviews(con)
    if ownerless:
        out.append(_line("reviews without an owner (the tenant's policy names no reviewer)", ownerless))
    out.append(f"Ledger: {Warehouse.count(con, 'ledger_entries'):,} entries, "
               f"{Warehouse.count(con, 'ledger_balances'):,} balances checked")
    findings = _by(con, "ledger_findings", "finding_type")
    if findings:
        out.append(_line("findings", findings))
    out.append(f"Reconciliation breaks: {Warehouse.count(con, 'reconciliation_breaks'):,}")
    out.append(_line("by type", _by(con, "reconciliation_breaks", "break_type")))
    health = _rows(con, "webhook_health")
    if health.height:
        out.append("Webhook health:")
        for r in health.sort("tenant_id", "endpoint").iter_rows(named=True):
            flag = "  FAILING NOW" if r.get("failing_now") else ""
            out.append(f"  {r['tenant_id']} {r['endpoint']}: {r['success_rate_pct']:.2f}% of {r['attempts']:,} attempts{flag}")
    out.append(f"Replay queue: {Warehouse.count(con, 'replay_queue'):,} events ready to replay")
    packets = _rows(con, "packets")
    if packets.height:
        out.append(_packets_line(con, packets) if packets_ran else
                   f"Audit packets: {packets.height:,} tenant-days on record, none sealed this run (no packets step ran)")
        known = set(configured) if configured is not None else set(packets["tenant_id"])
        unsealed = _unsealed_tenants(con, known)
        if unsealed:
            out.append("Accepted rows of tenants not configured (no packet; kept in the warehouse):")
            out.extend(f"  {tenant}: " + ", ".join(f"{t} {n:,}" for t, n in tables) for tenant, tables in unsealed.items())
        undated = _undated_quarantine(con, known)
        if undated:
            out.append("Quarantined lines without a usable timestamp (no UTC day, so in no packet; kept in the "
                       "warehouse): " + ", ".join(f"{t} {n:,}" for t, n in undated))
    from zentra_pipelines.data_contracts import summary_lines

    out.extend(summary_lines(con))
    out.append(f"Outputs: warehouse {home / 'warehouse.duckdb'}, packets {home / 'packets'}")
    return "\n".join(out)
