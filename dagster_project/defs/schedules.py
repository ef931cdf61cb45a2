"""The nightly close: at 02:00 UTC, reconcile everything and seal yesterday's packets.

``daily_reconciliation`` is the whole graph as one partitioned job: the unpartitioned
assets rebuild the full state (ingest, controls, ledger, routing, events,
reconciliation) and ``audit_packets`` seals the run's partition (one UTC day), or a
range of days when a run carries the range tags (the landing sensor, a single-run
backfill). Blocking checks stop the packets of a run whose state failed an invariant.
"""

from datetime import timedelta, timezone

import dagster as dg

from dagster_project.defs.partitions import START, day_of, key_of

JOB_NAME = "daily_reconciliation"

daily_reconciliation = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.all(),  # partitioned by DAILY, inferred from audit_packets
    description="The whole reconciliation: every upstream asset and its checks, then the audit packets "
    "of the selected UTC day(s).",
    tags={"team": "finance-ops"},
)


@dg.schedule(
    name="daily_reconciliation_schedule",
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    job=daily_reconciliation,
    description="02:00 UTC every day: rebuild the state and seal the packets of the previous UTC day "
    "(the day that just closed, with two hours for late files to land).",
)
def daily_reconciliation_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    tick = context.scheduled_execution_time.astimezone(timezone.utc)
    day = (tick - timedelta(days=1)).date()
    if day < day_of(START):
        return dg.SkipReason(f"{key_of(day)} is before the evidence calendar starts ({START}): nothing to close")
    return dg.RunRequest(run_key=f"close-{key_of(day)}", partition_key=key_of(day), tags={"zentra/trigger": "schedule"})


@dg.definitions
def execution() -> dg.Definitions:
    """The job, its schedule, and how every run executes: steps in one process, in order.

    Applies to this job, "Materialize all" and backfills alike. The DuckDB file takes one
    writer at a time anyway (pool ``zentra_warehouse``, limit 1), so a process per step
    buys no parallelism and costs seconds of start-up per step.
    """
    return dg.Definitions(
        jobs=[daily_reconciliation],
        schedules=[daily_reconciliation_schedule],
        executor=dg.in_process_executor,
    )
