"""Evidenced: one sealed, signed audit packet per tenant and UTC day.

Partitioned by day: a run seals exactly the days of its partition key range (one day
from the schedule, a range from a single-run backfill or from ``zentra run``). Sealing
is idempotent, so re-running a day whose content did not change seals nothing new.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl

from dagster_project.defs.evidence import gate
from dagster_project.defs.lifecycle import (
    EVIDENCED,
    PACKETS_ASSET,
    zentra_asset,
)
from dagster_project.defs.metadata import md_rows
from dagster_project.defs.partitions import DAILY, key_of, window_days
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import evidence_stage

EVERY_TENANT_DAY_SEALED = "every_tenant_day_sealed"
PACKET_COLUMNS = ["tenant", "version", "sealed now", "merkle root", "key id", "packet"]


@zentra_asset(
    "evidence",
    EVIDENCED,
    kinds={"python", "zip"},
    name=PACKETS_ASSET,
    # Every table a packet seals from; a failed blocking check on any of them (or upstream) skips sealing.
    deps=[
        "reconciliation_breaks",
        "intent_timeline",
        "ledger_balances",
        "review_queue",
        "webhook_health",
        "ingest_accounting",
        "data_contracts",
    ],
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec(EVERY_TENANT_DAY_SEALED, asset=PACKETS_ASSET, blocking=True,
                                   description="Every tenant-day of the run that changed was sealed: none refused "
                                   "because its own rows failed a packet check or its packet could not be written.")],
    description="The day's books, sealed for the auditors: per tenant and UTC day a versioned, Ed25519-signed "
    "packet (packets/<tenant>/<day>/v<N>.zip) with the day's callbacks, intents, decisions, ledger entries, "
    "closing balances, settlements, deliveries and breaks. Auditors verify it offline with sha256sum and "
    "openssl. Same content seals no new version; a late callback seals v<N+1> of the days it changes.",
)
def audit_packets(context: dg.AssetExecutionContext, zentra: ZentraResource) -> dg.MaterializeResult:
    settings = zentra.settings()
    days = partition_days(context)
    tenants = evidence_stage.configured_tenants(settings.policies, settings.secrets)
    with zentra.warehouse() as con:
        gate.refuse_unless_sealable(con)
        r = evidence_stage.run_packets(con, settings.home, tenants, settings.signing_key, days=days)
    if r.key_kind == "development":
        context.log.warning("Packets signed with a DEVELOPMENT key: set ZENTRA_SIGNING_KEY for real evidence.")
    for day in sorted(days):
        context.add_asset_metadata(day_metadata(r.packets, day, settings.home), partition_key=key_of(day))
    return dg.MaterializeResult(
        metadata={
            "days_in_run": len(days),
            "tenant_days_unchanged": dg.MetadataValue.int(r.unchanged),
            "tenant_days_rebuilt_same_content": dg.MetadataValue.int(r.rebuilt_same),
            "key_id": r.key_id,
            "key_kind": r.key_kind,
            "packets_root": dg.MetadataValue.path(str(settings.home / "packets")),
        },
        check_results=[every_tenant_day_sealed(r)],
    )


def every_tenant_day_sealed(r: evidence_stage.EvidenceReport) -> dg.AssetCheckResult:
    """The days that were sealed keep their materialization and metadata; a refused
    tenant-day fails this check (ERROR: `zentra run` exits 1) and names itself."""
    return dg.AssetCheckResult(
        check_name=EVERY_TENANT_DAY_SEALED, passed=not r.refused, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"refused": len(r.refused), "first": "; ".join(map(str, r.refused[:5])) or "none"},
    )


def partition_days(context: dg.AssetExecutionContext) -> set[date]:
    """The UTC days of the run's partition or range; a run without one names the way out."""
    if not (context.has_partition_key or context.has_partition_key_range):
        raise dg.Failure("audit_packets seals UTC days: choose a day or a range of days (a partition in the UI, "
                         "`--partition 2026-11-20` on the command line); `zentra run` seals every day with data.")
    window = context.partition_time_window
    return window_days(window.start, window.end)


def day_metadata(packets: pl.DataFrame, day: date, home: Path) -> dict[str, object]:
    """What an auditor asks of one day: which tenants, which versions, which roots, which key."""
    rows = packets.filter(pl.col("period") == day).sort("tenant_id")
    table = [
        {
            "tenant": r["tenant_id"],
            "version": f"v{r['version']}",
            "sealed now": bool(r["created"]),
            "merkle root": f"`{r['merkle_root']}`",
            "key id": f"`{r['key_id']}`",
            "packet": _relative(r["path"], home),
        }
        for r in rows.iter_rows(named=True)
    ]
    return {
        "tenants_sealed": rows.height,
        "sealed_this_run": int(rows["created"].sum()) if rows.height else 0,
        "versions": ", ".join(f"{r['tenant_id']} v{r['version']}" for r in rows.iter_rows(named=True)) or "none",
        "packets": md_rows(
            table,
            PACKET_COLUMNS,
            empty="_no activity for a configured tenant this day_",
        ),
    }


def _relative(path: str, home: Path) -> str:
    try:
        return str(Path(path).relative_to(home))
    except ValueError:
        return path
