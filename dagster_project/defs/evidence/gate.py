"""The seal gate: no packet is signed on top of a state a blocking check failed.

Dagster's ``blocking=True`` stops the downstream steps of the *same* run only. A run
that materializes ``audit_packets`` alone (a UI backfill, ``dagster asset materialize
--select audit_packets``, the second run of ``zentra run``) would otherwise seal on top
of whatever state the last upstream run left, failed invariants included. So before
sealing, the packets asset asks the instance for the latest evaluation of every
blocking check:

- failed, and no newer materialization of its asset: refuse to seal, naming the check;
- passed, and no newer materialization of its asset: trusted, not run again;
- never evaluated on this instance (a warehouse built by ``zentra run`` and opened by
  ``dagster dev``), evaluated before its asset's latest materialization, or only planned
  (skipped): the invariant is run again here, on the warehouse about to be sealed.

Integrity of the stored rows themselves is re-checked per packet by the evidence stage
(a packet whose own journals do not balance is never signed), which also covers a
warehouse edited outside Dagster after its checks passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import dagster as dg
import duckdb

from dagster_project.defs.contracts.checks import DATA_CONTRACT_STRUCTURE
from dagster_project.defs.ingest.checks import CALLBACKS_CONSERVED, FILES_BALANCED, ONE_STATE_PER_REF
from dagster_project.defs.ledger.checks import LEDGER_INVARIANTS
from zentra_pipelines import data_contracts, integrity

Invariant = Callable[[duckdb.DuckDBPyConnection], list[str]]

#: Every blocking check of the definitions and the library function it runs (a test
#: holds this list equal to the blocking checks the definitions declare).
BLOCKING_CHECKS: Mapping[dg.AssetCheckKey, Invariant] = {
    dg.AssetCheckKey(dg.AssetKey("provider_state"), CALLBACKS_CONSERVED): integrity.callbacks_conserved,
    dg.AssetCheckKey(dg.AssetKey("provider_state"), ONE_STATE_PER_REF): integrity.one_state_per_ref,
    dg.AssetCheckKey(dg.AssetKey("ingest_accounting"), FILES_BALANCED): integrity.files_balanced,
    dg.AssetCheckKey(dg.AssetKey("ledger_balances"), LEDGER_INVARIANTS): integrity.ledger_invariants,
    dg.AssetCheckKey(dg.AssetKey("data_contracts"), DATA_CONTRACT_STRUCTURE): data_contracts.structure_failures,
}


def latest_verdict(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> bool | None:
    """The latest evaluation's verdict if it is about the asset's latest materialization,
    else ``None`` (unknown: run the invariant again)."""
    record = instance.get_latest_asset_check_evaluation_record(key)
    evaluation = record.evaluation if record is not None else None
    if evaluation is None:  # never evaluated here, or planned and then skipped
        return None
    materialized = instance.get_latest_materialization_event(key.asset_key)
    if materialized is not None and materialized.timestamp > record.event.timestamp:
        return None  # the asset changed since: that verdict is about an older state
    return evaluation.passed


def blocking_failures(instance: dg.DagsterInstance, con: duckdb.DuckDBPyConnection,
                      log: Callable[[str], None] = lambda _: None) -> list[str]:
    """What stops sealing: ``<asset>/<check>: <first violations>`` per failed blocking check."""
    failed = []
    for key, invariant in BLOCKING_CHECKS.items():
        verdict = latest_verdict(instance, key)
        name = f"{key.asset_key.to_user_string()}/{key.name}"
        if verdict is None:
            log(f"{name}: no evaluation of the current state on this instance; checking it now")
            violations = invariant(con)
            if violations:
                failed.append(f"{name}: " + "; ".join(violations[:3]))
        elif not verdict:
            failed.append(f"{name}: its latest evaluation failed (see the check's history)")
    return failed
