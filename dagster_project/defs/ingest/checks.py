"""Blocking integrity checks of the ingest layer: a failure stops sealing."""

import dagster as dg

from dagster_project.defs.metadata import check_result
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import integrity

CALLBACKS_CONSERVED = "callbacks_rows_conserved"
ONE_STATE_PER_REF = "one_state_per_provider_ref"
FILES_BALANCED = "landing_files_balanced"


@dg.asset_check(asset="provider_state", name=CALLBACKS_CONSERVED, blocking=True,
                description="Every callback line judged is either accepted or quarantined, exactly once.")
def callbacks_rows_conserved(zentra: ZentraResource) -> dg.AssetCheckResult:
    with zentra.warehouse() as con:
        return check_result(integrity.callbacks_conserved(con))


@dg.asset_check(asset="provider_state", name=ONE_STATE_PER_REF, blocking=True,
                description="Duplicate and out-of-order callbacks converged to one state per provider reference.")
def one_state_per_provider_ref(zentra: ZentraResource) -> dg.AssetCheckResult:
    with zentra.warehouse() as con:
        return check_result(integrity.one_state_per_ref(con))


@dg.asset_check(asset="ingest_accounting", name=FILES_BALANCED, blocking=True,
                description="received = accepted + quarantined for every landing file and the source database's postings.")
def landing_files_balanced(zentra: ZentraResource) -> dg.AssetCheckResult:
    with zentra.warehouse() as con:
        return check_result(integrity.files_balanced(con))
