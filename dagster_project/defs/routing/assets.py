"""Routed: the corridor, rail and provider of every accepted intent, and why."""

import dagster as dg

from dagster_project.defs.lifecycle import ROUTED, zentra_asset
from dagster_project.defs.metadata import md_counts
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import reconciliation_stage


@zentra_asset(
    "routing",
    ROUTED,
    deps=["policy_decisions", "provider_state"],
    description="Per accepted intent: corridor, rail, the provider actually seen in verified "
    "callbacks, and the reason, recorded as data.",
)
def routing_decisions(zentra: ZentraResource) -> dg.MaterializeResult:
    with zentra.warehouse() as con:
        r = reconciliation_stage.run_routing(con)
    return dg.MaterializeResult(
        metadata={
            "routed": r.routed,
            "pending": r.pending,
            "by_rail": md_counts(r.by_rail, "rail", "intents"),
            "dagster/row_count": r.routed + r.pending,
        }
    )
