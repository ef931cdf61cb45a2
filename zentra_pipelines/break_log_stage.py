"""Keep the break log: every break ever seen, open or resolved (see domain.break_lifecycle)."""

from __future__ import annotations

from datetime import datetime

import duckdb

from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain.break_lifecycle import update_log


def run_break_log(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict[str, int]:
    current = Warehouse.read(con, "reconciliation_breaks")
    if current is None:
        raise RuntimeError("reconciliation_breaks has not been built yet")
    log = update_log(Warehouse.read(con, "break_log"), current, as_of)
    Warehouse.publish(con, {"break_log": log}, allow_empty={"break_log"})
    return {status: int(n) for status, n in sorted(log.group_by("status").len().iter_rows())} if log.height else {}
