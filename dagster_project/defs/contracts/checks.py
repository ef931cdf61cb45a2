"""Data-contract checks: a broken table shape blocks; a value finding only warns."""

import dagster as dg

from dagster_project.defs.metadata import check_result
from dagster_project.defs.resources import ZentraResource
from zentra_pipelines import data_contracts as contracts

DATA_CONTRACT_STRUCTURE = "data_contract_structure"
DATA_CONTRACT_VALUES = "data_contract_values"


@dg.asset_check(asset="data_contracts", name=DATA_CONTRACT_STRUCTURE, blocking=True,
                description="Every source table has exactly its contract's columns and types (amounts Int64), "
                "non-null keys and no duplicate key.")
def data_contract_structure(zentra: ZentraResource) -> dg.AssetCheckResult:
    with zentra.warehouse() as con:
        return check_result(contracts.structure_failures(con))


@dg.asset_check(asset="data_contracts", name=DATA_CONTRACT_VALUES,
                description="Finding: identifiers, ISO 4217 currencies, event types, intent kinds, ranges, "
                "required values and net = gross - fee hold on every row.")
def data_contract_values(zentra: ZentraResource) -> dg.AssetCheckResult:
    with zentra.warehouse() as con:
        return check_result(contracts.value_findings(con), blocking=False)
