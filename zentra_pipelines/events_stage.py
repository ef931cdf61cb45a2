"""Settlements and deliveries from the landing archive: thin runners over the pure domain.

Both read only what ``ingest.archive_landing`` archived (``landing_lines``), so a run
judges every archived line of the source again from scratch: the result is a function
of the archive, and re-running on the same inputs changes nothing.
"""

from __future__ import annotations

import duckdb
import polars as pl

from zentra_pipelines import intake
from zentra_pipelines.domain.deliveries import accept_deliveries
from zentra_pipelines.domain.settlements import SettlementParse, judge_settlements


def parse_settlement_lines(con: duckdb.DuckDBPyConnection) -> SettlementParse:
    """(settlements, quarantine, conflicts) of every archived settlements/*.csv line.

    Header lines (line 1 of each file) are not rows: for accounting,
    received = archived lines - files with at least one line.
    """
    return judge_settlements(intake.archived_lines(con, "settlements"))


def parse_delivery_lines(con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(deliveries, quarantine) of every archived deliveries/*.jsonl line."""
    parsed = intake.parse_source(con, "deliveries", "parse_deliveries", "delivery_lines")
    return accept_deliveries(parsed)
