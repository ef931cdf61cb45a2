"""Ledger checks: integrity invariants block sealing; business findings only warn."""

import dagster as dg

from dagster_project.defs.metadata import check_result
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import integrity

LEDGER_INVARIANTS = "ledger_integrity_invariants"
NO_NEGATIVE_BALANCES = "no_negative_balances"
CLEARING_RETURNS_TO_ZERO = "clearing_accounts_return_to_zero"


@dg.asset_check(asset="ledger_balances", name=LEDGER_INVARIANTS, blocking=True,
                description="Every journal sums to zero per currency, the per-tenant hash chain verifies, "
                "balances match entries and net to zero, closing = opening + movements.")
def ledger_integrity_invariants(zentra: ZentraResource) -> dg.AssetCheckResult:
    with zentra.warehouse() as con:
        return check_result(integrity.ledger_invariants_recorded(con))


@dg.asset_check(asset="ledger_balances", name=NO_NEGATIVE_BALANCES,
                description="Business finding: accounts that may not go negative are below zero.")
def no_negative_balances(zentra: ZentraResource) -> dg.AssetCheckResult:
    with zentra.warehouse() as con:
        return check_result(integrity.ledger_findings(con, "negative_balance"), blocking=False)


@dg.asset_check(asset="ledger_balances", name=CLEARING_RETURNS_TO_ZERO,
                description="Business finding: reserved/settlement clearing balances per intent not back at zero.")
def clearing_accounts_return_to_zero(zentra: ZentraResource) -> dg.AssetCheckResult:
    with zentra.warehouse() as con:
        return check_result(integrity.ledger_findings(con, "clearing_not_zero"), blocking=False)
