"""Accepted: landing files archived once, callbacks verified and converged."""

import dagster as dg

from dagster_project.defs.lifecycle import (
    ACCEPTED,
    SYNCHRONIZED,
    zentra_asset,
)
from dagster_project.defs.metadata import md_counts, md_rows
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import controls, ingest


@zentra_asset(
    "ingest",
    ACCEPTED,
    kinds={"python", "duckdb"},
    description="Every landing file (callbacks, intents, settlements, deliveries) archived once, "
    "byte for byte, with its source file, line number and content hash. Re-running adds nothing.",
)
def landing_archive(zentra: ZentraResource) -> dg.MaterializeResult:
    settings = zentra.settings()
    with zentra.warehouse() as con:
        result = ingest.archive_landing(con, settings.landing)
    return dg.MaterializeResult(
        metadata={
            "new_files": result.new_files,
            "new_lines": result.new_lines,
            "already_archived_files": result.skipped_files,
            "duplicate_files": result.duplicate_files,
            "rewritten_files": dg.MetadataValue.int(len(result.rewritten)),
            "not_read": md_rows([{"entry": entry, "why": why} for entry, why in result.not_read], ["entry", "why"],
                                empty="_every entry of the landing folder is input_"),
        }
    )


@zentra_asset(
    "ingest",
    SYNCHRONIZED,
    deps=[landing_archive],
    description="Provider callbacks verified (Standard Webhooks signature with the tenant's own "
    "secrets, 300 s replay window) and converged: one state per provider reference, the highest "
    "sequence wins, duplicates collapse, conflicting copies are quarantined.",
)
def provider_state(zentra: ZentraResource) -> dg.MaterializeResult:
    with zentra.warehouse() as con:
        r = ingest.run_callbacks(con, zentra.settings().secrets)
    return dg.MaterializeResult(
        metadata={
            "received": r.received,
            "accepted": r.accepted,
            "quarantined": r.quarantined,
            "quarantined_by_code": md_counts(r.quarantined_by_code),
            "verified_this_run": r.verified_now,
            "distinct_events": r.distinct_events,
            "duplicates_collapsed": r.duplicates_collapsed,
            "conflicting_events": r.conflicts,
            "provider_refs": r.provider_refs,
            "dagster/row_count": r.provider_refs,
        }
    )


@zentra_asset(
    "ingest",
    ACCEPTED,
    deps=[landing_archive],
    description="Financial intents from the API edge: contract-checked, retries collapsed, a reused "
    "intent_id with a different body quarantined as a conflict.",
)
def intents(zentra: ZentraResource) -> dg.MaterializeResult:
    with zentra.warehouse() as con:
        r = controls.run_intents(con)
    return dg.MaterializeResult(
        metadata={
            "received": r.received,
            "accepted_lines": r.accepted_lines,
            "intents": r.intents,
            "quarantined": r.quarantined,
            "quarantined_by_code": md_counts(r.quarantined_by_code),
            "dagster/row_count": r.intents,
        }
    )
