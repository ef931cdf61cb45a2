"""Reconciled: intent, ledger, provider and settlement agree, or a break says why."""

import dagster as dg
import polars as pl

from dagster_project.defs.lifecycle import (
    EVIDENCED,
    SYNCHRONIZED,
    zentra_asset,
)
from dagster_project.defs.metadata import md_counts, md_frame
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import break_log_stage, reconciliation_stage


@zentra_asset(
    "reconciliation",
    SYNCHRONIZED,
    deps=[
        "intents",
        "ledger_entries",
        "provider_state",
        "settlements",
        "policy_decisions",
    ],
    description="Every disagreement between intent, ledger, provider state and settlement report, "
    "with both amounts, a reason, first seen, age, owner and status. Recomputed from scratch each run.",
)
def reconciliation_breaks(zentra: ZentraResource) -> dg.MaterializeResult:
    with zentra.warehouse() as con:
        r = reconciliation_stage.run_reconciliation(con)
        lifecycle = break_log_stage.run_break_log(con, r.as_of)
    return dg.MaterializeResult(
        metadata={
            "break_lifecycle": md_counts(lifecycle, "status", "breaks"),
            "breaks": r.total,
            "breaks_by_type": md_counts(r.by_type, "break type", "breaks"),
            "amount_at_risk": md_frame(r.at_risk),
            "as_of": r.as_of.isoformat(),
            "dagster/row_count": r.total,
        }
    )


@zentra_asset(
    "reconciliation",
    EVIDENCED,
    deps=["routing_decisions", "deliveries", "ledger_entries", "provider_state"],
    description="One ordered timeline per intent across ingress, policy, ledger, routing, provider, "
    "delivery and evidence: the single answer support, finance and engineering read.",
)
def intent_timeline(zentra: ZentraResource) -> dg.MaterializeResult:
    with zentra.warehouse() as con:
        rows = reconciliation_stage.run_timeline(con)
    return dg.MaterializeResult(metadata={"dagster/row_count": rows})


@zentra_asset(
    "reconciliation",
    SYNCHRONIZED,
    deps=["provider_state", "intents", "settlements", "deliveries", "ledger_entries"],
    description="received = accepted + quarantined for every landing file and for the source database's "
    "postings: nothing silently dropped.",
)
def ingest_accounting(zentra: ZentraResource) -> dg.MaterializeResult:
    with zentra.warehouse() as con:
        acc = reconciliation_stage.run_accounting(con)
    per_source = acc.group_by("source").agg(pl.col("received", "accepted", "quarantined").sum()).sort("source")
    return dg.MaterializeResult(metadata={"per_source": md_frame(per_source), "files": acc.height})
