"""Synchronized: settlement reports and outbound webhook delivery health."""

import dagster as dg

from dagster_project.defs.lifecycle import (
    POOL,
    SYNCHRONIZED,
    zentra_asset,
    zentra_spec,
)
from dagster_project.defs.metadata import md_counts
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import events_stage


@zentra_asset(
    "events",
    SYNCHRONIZED,
    deps=["landing_archive"],
    description="Provider settlement reports: gross, fee and net per provider reference, "
    "integer minor units, net = gross - fee enforced; conflicting copies quarantined.",
)
def settlements(zentra: ZentraResource) -> dg.MaterializeResult:
    with zentra.warehouse() as con:
        r = events_stage.run_settlements(con)
    return dg.MaterializeResult(
        metadata={
            "rows": r.rows,
            "quarantined": r.quarantined,
            "conflicting_refs": r.conflicts,
            "quarantined_by_code": md_counts(r.quarantined_by_code),
            "dagster/row_count": r.rows,
        }
    )


@dg.multi_asset(
    specs=[
        zentra_spec(
            "deliveries",
            "events",
            SYNCHRONIZED,
            deps=["landing_archive"],
            description="Outbound webhook delivery attempts to tenant endpoints.",
        ),
        zentra_spec(
            "webhook_health",
            "events",
            SYNCHRONIZED,
            deps=["landing_archive"],
            description="Per tenant endpoint: success rate, attempts, retry spacing against "
            "exponential backoff, endpoints failing now, and the replay-ready queue.",
        ),
    ],
    pool=POOL,
)
def delivery_health(zentra: ZentraResource):
    with zentra.warehouse() as con:
        r = events_stage.run_deliveries(con)
    yield dg.MaterializeResult(
        asset_key="deliveries",
        metadata={
            "rows": r.rows,
            "quarantined": r.quarantined,
            "quarantined_by_code": md_counts(r.quarantined_by_code),
        },
    )
    yield dg.MaterializeResult(
        asset_key="webhook_health",
        metadata={
            "endpoints": r.endpoints,
            "failing_endpoints": r.failing_endpoints,
            "webhook_health_pct": r.success_rate_pct,
            "replay_queue": r.replay_queue,
            "fast_retries": r.fast_retries,
        },
    )
