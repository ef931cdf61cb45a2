"""Ledgered: the money core's postings, hash-chained and rebuilt into balances."""

import dagster as dg

from dagster_project.defs.lifecycle import LEDGERED, POOL, zentra_spec
from dagster_project.defs.metadata import md_counts
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import ledger_stage


@dg.multi_asset(
    specs=[
        zentra_spec(
            "ledger_entries",
            "ledger",
            LEDGERED,
            kinds={"sqlalchemy", "polars", "duckdb"},
            description="Postings read incrementally from the money core's database, re-reads collapsed, "
            "unbalanced journals quarantined, each entry hash-chained per tenant so any later edit shows.",
        ),
        zentra_spec(
            "ledger_balances",
            "ledger",
            LEDGERED,
            deps=["ledger_entries"],
            description="Current and daily closing balances per tenant, account and currency, integer "
            "minor units; findings (negative balances, clearing accounts not back at zero) reported.",
        ),
    ],
    pool=POOL,
)
def ledger(zentra: ZentraResource):
    with zentra.warehouse() as con:
        r = ledger_stage.run_ledger(con, zentra.settings().source_db)
    yield dg.MaterializeResult(
        asset_key="ledger_entries",
        metadata={
            "read": r.read,
            "new": r.new,
            "reread_collapsed": r.reread_collapsed,
            "received": r.received,
            "accepted": r.accepted,
            "quarantined": r.quarantined,
            "quarantined_by_code": md_counts(r.quarantined_by_code),
            "duplicate_journals": r.duplicate_journals,
            "deleted_in_source": r.deleted_in_source,
            "read_engine": r.read_engine,
            "watermark": str(r.watermark_after),
            "dagster/row_count": r.accepted,
            "seconds": dg.MetadataValue.json(r.seconds),
        },
    )
    yield dg.MaterializeResult(
        asset_key="ledger_balances",
        metadata={
            "balances_checked": r.balances_rows,
            "daily_rows": r.daily_rows,
            "findings": md_counts(r.findings_by_type, "finding", "rows"),
            "dagster/row_count": r.balances_rows,
        },
    )
