"""The seal gate: no packet is signed on top of a state that fails a blocking invariant.

Dagster's ``blocking=True`` stops the downstream steps of the *same* run only. A run
that materializes ``audit_packets`` alone (a UI backfill, ``dagster asset materialize
--select audit_packets``, the second run of ``zentra run``) would otherwise seal on top
of whatever state the warehouse holds: one a check failed on, one edited since its
checks passed, another home than the one the instance checked. So before sealing, the
packets asset judges the warehouse it is about to seal from, with the very functions
the blocking checks run:

- the cheap invariants (rows conserved, one state per ref, files balanced, data
  contract structure: counts and small tables, milliseconds) run again every time;
- the ledger invariants (every entry read: ~1.8 s at 100k intents over 31 days) reuse
  the verdict the blocking check recorded in the warehouse while the ledger tables'
  fingerprint is still the one it judged (``integrity.ledger_invariants_current``), and
  are judged again otherwise.

Nothing here depends on the Dagster instance's check history, so it holds for any home,
instance or order of runs. Each packet then re-checks its own rows (journals balance,
chain links, closing balances net to zero) before it is signed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import dagster as dg
import duckdb

from dagster_project.defs.contracts.checks import DATA_CONTRACT_STRUCTURE
from dagster_project.defs.ingest.checks import CALLBACKS_CONSERVED, FILES_BALANCED, ONE_STATE_PER_REF
from dagster_project.defs.ledger.checks import LEDGER_INVARIANTS
from zentra_pipelines import data_contracts, evidence_stage, integrity
from zentra_pipelines.domain.errors import first_line

Invariant = Callable[[duckdb.DuckDBPyConnection], list[str]]

#: Every blocking check of the definitions and how the gate judges it (a test holds this
#: list equal to the blocking checks the definitions declare).
BLOCKING_CHECKS: Mapping[dg.AssetCheckKey, Invariant] = {
    dg.AssetCheckKey(dg.AssetKey("provider_state"), CALLBACKS_CONSERVED): integrity.callbacks_conserved,
    dg.AssetCheckKey(dg.AssetKey("provider_state"), ONE_STATE_PER_REF): integrity.one_state_per_ref,
    dg.AssetCheckKey(dg.AssetKey("ingest_accounting"), FILES_BALANCED): integrity.files_balanced,
    dg.AssetCheckKey(dg.AssetKey("ledger_balances"), LEDGER_INVARIANTS): integrity.ledger_invariants_current,
    dg.AssetCheckKey(dg.AssetKey("data_contracts"), DATA_CONTRACT_STRUCTURE): data_contracts.structure_failures,
}


def blocking_failures(con: duckdb.DuckDBPyConnection) -> list[str]:
    """What stops sealing: ``<asset>/<check>: <first violations>`` per failing invariant."""
    failed = []
    for key, invariant in BLOCKING_CHECKS.items():
        try:
            violations = invariant(con)
        except duckdb.CatalogException as exc:  # a table its asset never built: fail closed, say which
            violations = [f"cannot be judged, {first_line(exc, cap=None)}: materialize {key.asset_key.to_user_string()}"]
        if violations:
            failed.append(f"{key.asset_key.to_user_string()}/{key.name}: " + "; ".join(violations[:3]))
    return failed


def refuse_unless_sealable(con: duckdb.DuckDBPyConnection) -> None:
    """Fail the packets step, sealing nothing, on a warehouse missing a table packets seal
    from (nothing or only part of the graph materialized) or failing a blocking invariant."""
    if missing := evidence_stage.missing_tables(con):
        what = "tables" if len(missing) == len(evidence_stage.SEALED_FROM) else ", ".join(missing)
        raise dg.Failure(f"Nothing sealed: the warehouse has no {what} yet. Materialize the upstream "
                         "assets first (Materialize all, or `zentra run`).")
    if failed := blocking_failures(con):
        raise dg.Failure("Nothing sealed: the warehouse fails a blocking integrity invariant. Fix it and "
                         "rematerialize the asset with its checks.\n" + "\n".join(failed))
