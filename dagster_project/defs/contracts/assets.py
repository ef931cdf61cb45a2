"""Data contracts: every landing source validated with Great Expectations 1.x, every run."""

import dagster as dg
import polars as pl

from dagster_project.defs.lifecycle import SYNCHRONIZED, zentra_asset
from dagster_project.defs.metadata import md_frame
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import data_contracts as contracts


@zentra_asset(
    "reconciliation",
    SYNCHRONIZED,
    kinds={"great_expectations", "pandas"},
    deps=["provider_state", "intents", "settlements", "deliveries", "ledger_entries"],
    description="Great Expectations suites as the data contract of each landing source (accepted callbacks, "
    "provider state, intents, settlements, deliveries, ledger entries): columns, types (amounts Int64, never "
    "float), non-null and unique keys, identifier and ISO 4217 formats, value sets, ranges, net = gross - fee. "
    "Every row of every table: uniqueness and shape on the whole tables each run, the row-level rules re-run "
    "only on tenant-days whose rows changed (their earlier counts kept in data_contract_cache); results "
    "(counts only, never values) in data_contract_results and, per tenant "
    "and UTC day for sealing, data_contract_results_by_tenant.",
)
def data_contracts(zentra: ZentraResource) -> dg.MaterializeResult:
    with zentra.warehouse() as con:
        r = contracts.run_data_contracts(con)
    failed = r.failed.select(
        "source",
        "rule",
        "level",
        "expectation",
        "unexpected_count",
        "element_count",
        "observed",
    )
    timings = pl.DataFrame(
        {
            "source": list(r.timings),
            "rows": [r.rows[s] for s in r.timings],
            "seconds": list(r.timings.values()),
        },
        schema={"source": pl.String, "rows": pl.Int64, "seconds": pl.Float64},
    )
    return dg.MaterializeResult(
        metadata={
            "suites_run": r.suites,
            "tables_not_published": ", ".join(r.missing) or "none",
            "expectations_evaluated": r.expectations,
            "failed_expectations": r.failed_count(),
            "failed_structure": r.failed_count(contracts.STRUCTURE),
            "failed_value": r.failed_count(contracts.VALUE),
            "failed": md_frame(failed),
            "timings": md_frame(timings),
            "gx_seconds": r.total_s,
            "gx_engine_setup_seconds": r.engine_s,
            "rows_validated": sum(r.rows.values()),
            "dagster/row_count": r.results.height,
        }
    )
