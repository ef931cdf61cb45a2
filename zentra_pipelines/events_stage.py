"""Settlements and deliveries from the landing archive: thin runners over the pure domain.

Both read only what ``ingest.archive_landing`` archived (``landing_lines``), so a run
judges every archived line of the source again from scratch: the result is a function
of the archive, and re-running on the same inputs changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from zentra_pipelines import intake, stage_inputs
from zentra_pipelines.adapters.warehouse import InPlace, Warehouse
from zentra_pipelines.domain.accounting import count_by
from zentra_pipelines.domain.dedupe import accept_changes
from zentra_pipelines.domain.deliveries import KEY as DELIVERY_KEY
from zentra_pipelines.domain.deliveries import QUARANTINE_SCHEMA, accept_deliveries, health_and_replay
from zentra_pipelines.domain.settlements import KEY as SETTLEMENT_KEY
from zentra_pipelines.domain.settlements import SettlementParse, judge_lines, settle_changes, settle_rows

#: What a settlement line's verdict depends on besides the line and its file's header.
SETTLEMENT_JUDGE = "judge_settlements"


def parse_settlement_lines(con: duckdb.DuckDBPyConnection) -> SettlementParse:
    """(settlements, quarantine, conflicts) of every archived settlements/*.csv line.

    Header lines (line 1 of each file) are not rows: for accounting,
    received = archived lines - files with at least one line. A file's rows depend on
    that file's lines only, so they are judged once and kept (``settlements_parsed``).
    """
    return _settlements_from(con, _refresh_settlements(con))


def _refresh_settlements(con: duckdb.DuckDBPyConnection) -> str:
    return intake.refresh_judged(con, "settlements", judge_lines, intake.parser_version(SETTLEMENT_JUDGE))


def _settlements_from(con: duckdb.DuckDBPyConnection, cache: str) -> SettlementParse:
    """Settlements from the judged rows of a refreshed cache, in judged-row order (``refresh_judged``)."""
    return settle_rows(intake.read_cache(con, cache, intake.FILE_ORDER))


def parse_delivery_lines(con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(deliveries, quarantine) of every archived deliveries/*.jsonl line."""
    return _deliveries_from(con, _refresh_deliveries(con))


def _refresh_deliveries(con: duckdb.DuckDBPyConnection) -> str:
    return intake.refresh_cache(con, "deliveries", "parse_deliveries", "delivery_lines")


def _deliveries_from(con: duckdb.DuckDBPyConnection, cache: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """accept_deliveries sorts the lines by (delivery_id, tenant_id, line), a total order,
    and the quarantine by line: the parsed rows are read in any order."""
    return accept_deliveries(intake.read_cache(con, cache, None))


@dataclass(frozen=True)
class SourceReport:
    rows: int
    quarantined: int
    quarantined_by_code: dict[str, int]
    conflicts: int = 0


def run_settlements(con: duckdb.DuckDBPyConnection) -> SourceReport:
    """Settlement lines → settlements, their quarantine and conflicting refs; skipped (the
    report read from the published tables) when the judged rows and the code are those
    the tables were built from (``stage_inputs``). When they are those plus the rows of
    the files judged now, only the refs those rows name are settled again
    (``_publish_settlement_changes``)."""
    version = intake.parser_version(SETTLEMENT_JUDGE)
    new_files = intake.unjudged_files(con, "settlements", version)
    cache = _refresh_settlements(con)
    inputs = stage_inputs.digest(con, cache, [version])
    if stage_inputs.unchanged(con, SETTLEMENT_INPUTS, inputs, SETTLEMENT_TABLES):
        return _published_settlement_report(con)
    if stage_inputs.built_without(con, SETTLEMENT_INPUTS, cache, [version], new_files, SETTLEMENT_TABLES):
        _publish_settlement_changes(con, cache, new_files, inputs)
        return _published_settlement_report(con)
    parsed = _settlements_from(con, cache)
    Warehouse.publish(
        con,
        {"settlements": parsed.settlements, "settlements_quarantine": parsed.quarantine,
         "settlement_conflicts": parsed.conflicts, SETTLEMENT_INPUTS: stage_inputs.frame(inputs)},
        allow_empty={"settlements", "settlements_quarantine", "settlement_conflicts"},
    )
    return SourceReport(parsed.settlements.height, parsed.quarantine.height,
                        count_by(parsed.quarantine, "error_code"), parsed.conflicts.height)


def _publish_settlement_changes(con: duckdb.DuckDBPyConnection, cache: str, new_files: list[str], inputs: str) -> None:
    """Publish the settlements of every judged row from the published ones, built on every
    row but those of ``new_files``: the refs those rows name are settled again
    (``settle_changes``) and replace their rows in place; the quarantine and the conflicts
    (small) are rewritten whole, in a full build's order. The table is then a set whose
    physical order is the order of its updates: its readers sort, or join by ref."""
    changes, redone = settle_changes(
        intake.changed_lines(con, cache, SETTLEMENT_KEY, new_files),
        Warehouse.read(con, "settlements_quarantine"), Warehouse.read(con, "settlement_conflicts"),
    )
    Warehouse.publish(
        con,
        {"settlements_quarantine": changes.quarantine, "settlement_conflicts": changes.conflicts,
         SETTLEMENT_INPUTS: stage_inputs.frame(inputs)},
        allow_empty={"settlements_quarantine", "settlement_conflicts"},
        in_place={"settlements": Warehouse.replacement(con, "settlements", redone, changes.settlements)},
    )


def _published_settlement_report(con: duckdb.DuckDBPyConnection) -> SourceReport:
    """The report of the published settlement tables, read from them."""
    quarantine = Warehouse.read(con, "settlements_quarantine")
    (rows,) = con.sql("SELECT count(*) FROM settlements").fetchall()[0]
    (conflicts,) = con.sql("SELECT count(*) FROM settlement_conflicts").fetchall()[0]
    return SourceReport(rows, quarantine.height, count_by(quarantine, "error_code"), conflicts)


@dataclass(frozen=True)
class DeliveryReport(SourceReport):
    endpoints: int = 0
    failing_endpoints: int = 0
    success_rate_pct: float = 0.0
    replay_queue: int = 0
    fast_retries: int = 0


def run_deliveries(con: duckdb.DuckDBPyConnection) -> DeliveryReport:
    """Delivery log → deliveries, webhook health per endpoint and the replay-ready queue.

    Health is measured as of the newest attempt in the log, never the wall clock. When
    the parsed lines and the code are those the published tables were built from
    (``stage_inputs``), nothing is rebuilt: the report is read from those tables. When
    they are those plus the lines of the files parsed now, only the deliveries those
    lines name are accepted again (``_delivery_changes``); health and the replay queue
    are computed over every delivery either way.
    """
    new_files = intake.unparsed_files(con, "deliveries", "parse_deliveries")
    cache = _refresh_deliveries(con)
    parts = [intake.parser_version("parse_deliveries")]
    inputs = stage_inputs.digest(con, cache, parts)
    if stage_inputs.unchanged(con, DELIVERY_INPUTS, inputs, DELIVERY_TABLES):
        (rows,) = con.sql("SELECT count(*) FROM deliveries").fetchall()[0]
        (replay_rows,) = con.sql("SELECT count(*) FROM replay_queue").fetchall()[0]
        return _delivery_report(rows, Warehouse.read(con, "deliveries_quarantine"),
                                Warehouse.read(con, "webhook_health"), replay_rows)
    update = None
    if stage_inputs.built_without(con, DELIVERY_INPUTS, cache, parts, new_files, DELIVERY_TABLES):
        deliveries, quarantine, update = _delivery_changes(con, cache, new_files)
    else:
        deliveries, quarantine = _deliveries_from(con, cache)
    as_of = deliveries["attempted_at"].max() if deliveries.height else datetime(1970, 1, 1)
    health, replay = health_and_replay(deliveries, as_of)
    Warehouse.publish(
        con,
        {"deliveries": deliveries, "deliveries_quarantine": quarantine, "webhook_health": health,
         "replay_queue": replay, DELIVERY_INPUTS: stage_inputs.frame(inputs)},
        allow_empty={"deliveries", "deliveries_quarantine", "webhook_health", "replay_queue"},
        in_place={"deliveries": update} if update is not None else None,
    )
    return _delivery_report(deliveries.height, quarantine, health, replay.height)


def _delivery_changes(
    con: duckdb.DuckDBPyConnection, cache: str, new_files: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame, InPlace]:
    """(every delivery, the whole quarantine, the deliveries table's in-place update) from
    the published tables, built on every line but those of ``new_files``: the deliveries
    those lines name are accepted again (``dedupe.accept_changes``) and replace their
    rows; the others are read back from the table (health needs them all).

    Why: at 100k intents over 30 days a day's run accepted all ~256k delivery lines again
    (the parse cache read whole, sorted and deduplicated) and rewrote the table for the
    ~8k it added. The table is then a set whose physical order is the order of its
    updates: its readers sort, or group by event.
    """
    changed, quarantine, redone = accept_changes(
        accept_deliveries, intake.changed_lines(con, cache, DELIVERY_KEY, new_files),
        Warehouse.read(con, "deliveries_quarantine").cast(QUARANTINE_SCHEMA), DELIVERY_KEY,
    )
    published = con.sql("SELECT * FROM deliveries").pl()
    deliveries = pl.concat(
        [published.join(redone, on=DELIVERY_KEY, how="anti", nulls_equal=True).select(changed.columns), changed],
        how="vertical",
    )
    return deliveries, quarantine, Warehouse.replacement(con, "deliveries", redone, changed)


#: Published with the settlement tables: the digest of what they were built from.
SETTLEMENT_INPUTS = "settlements_inputs"
SETTLEMENT_TABLES = ("settlements", "settlements_quarantine", "settlement_conflicts")

#: Published with the delivery tables: the digest of what they were built from.
DELIVERY_INPUTS = "deliveries_inputs"
DELIVERY_TABLES = ("deliveries", "deliveries_quarantine", "webhook_health", "replay_queue")


def _delivery_report(rows: int, quarantine: pl.DataFrame, health: pl.DataFrame, replay_rows: int) -> DeliveryReport:
    attempts = int(health["attempts"].sum()) if health.height else 0
    successes = int(health["successes"].sum()) if health.height else 0
    return DeliveryReport(
        rows=rows,
        quarantined=quarantine.height,
        quarantined_by_code=count_by(quarantine, "error_code"),
        endpoints=health.height,
        failing_endpoints=int(health["failing_now"].sum()) if health.height else 0,
        success_rate_pct=round(100 * successes / attempts, 2) if attempts else 0.0,
        replay_queue=replay_rows,
        fast_retries=int(health["fast_retries"].sum()) if health.height else 0,
    )
