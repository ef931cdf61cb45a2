"""The DuckDB warehouse: locked down, written only through write-audit-publish.

Why not Dagster's stock DuckDB IO manager: it deletes then inserts in separate steps,
so an empty or failed write leaves a money table empty while the run reports success
(see FIELD_NOTES). Here every derived table is built under a staging name, audited,
and swapped in with its siblings inside one transaction; a failed audit or an
unexpectedly empty frame leaves the published tables exactly as they were.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

#: DuckDB's own memory cap (the pipeline's Polars frames come on top). Override with the
#: environment variable, e.g. ZENTRA_DUCKDB_MEMORY_LIMIT=8GB.
MEMORY_LIMIT_ENV = "ZENTRA_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "2GB"

#: String compression methods DuckDB may not use when it writes tables. Its FSST-based
#: methods cost most of the CPU of writing string-heavy tables: measured on 1.5M landing
#: lines, 9.4 CPU s with them vs 4.0 without (344 vs 958 MiB on disk); on 3M ledger
#: entries (hex hashes) 12.3 vs 5.0 CPU s (284 vs 802 MiB). On two cores CPU is the scarce
#: resource and disk is not, so they are off by default; set the variable to "" to
#: restore DuckDB's default (smaller files, slower writes).
DISABLED_COMPRESSION_ENV = "ZENTRA_DUCKDB_DISABLED_COMPRESSION"
DEFAULT_DISABLED_COMPRESSION = "fsst,dict_fsst"

#: Every table the pipeline may write. Table names never come from data.
TABLES = frozenset(
    {
        # append-only archive and bookkeeping
        "landing_files", "landing_lines", "callback_checked", "ledger_source_rows",
        # callbacks
        "callbacks_quarantine", "callback_events", "provider_state", "ingest_accounting",
        # intents and controls
        "intents", "intents_quarantine", "policy_decisions", "review_queue",
        # ledger
        "ledger_postings_quarantine", "ledger_entries", "ledger_accounts", "ledger_balances",
        "daily_balances", "ledger_findings", "ledger_watermark",
        # settlements, deliveries, routing
        "settlements", "settlements_quarantine", "deliveries", "deliveries_quarantine",
        "webhook_health", "replay_queue", "routing_decisions", "callback_conflicts", "settlement_conflicts",
        # reconciliation and evidence
        "reconciliation_breaks", "break_log", "intent_timeline", "data_contract_results", "data_contract_results_by_tenant", "check_results",
        "packets", "run_summary",
    }
)


class IntegrityError(RuntimeError):
    """A blocking invariant failed; nothing was published."""

    def __init__(self, table: str, violations: list[str]):
        self.table = table
        self.violations = violations
        shown = "; ".join(violations[:5]) + (f" (+{len(violations) - 5} more)" if len(violations) > 5 else "")
        super().__init__(f"{table}: {len(violations)} integrity violation(s): {shown}")


#: An audit sees the frames about to be published and returns violations (empty = pass).
Audit = Callable[[Mapping[str, pl.DataFrame]], list[str]]


def naive_utc(frame: pl.DataFrame) -> pl.DataFrame:
    """One timestamp convention in the warehouse: TIMESTAMP holding UTC, no zone attached."""
    aware = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone is not None]
    if not aware:
        return frame
    return frame.with_columns(pl.col(c).dt.convert_time_zone("UTC").dt.replace_time_zone(None) for c in aware)


def _table(name: str) -> str:
    if name not in TABLES:
        raise ValueError(f"table {name!r} is not in the warehouse allowlist")
    return name


@dataclass(frozen=True)
class Warehouse:
    home: Path

    @property
    def path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that cannot touch the file system or attach databases.

        Frames reach it through ``register``; files are read by Python, never by SQL,
        because ids and refs inside the data are untrusted strings.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        spill = self.home / ".duckdb_tmp"
        spill.mkdir(exist_ok=True)
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no warehouse at {self.path}: run `zentra run` first")
        con = duckdb.connect(str(self.path), read_only=read_only, config={})
        con.execute("LOAD icu")
        con.execute("SET TimeZone = 'UTC'")
        # Order matters: directories first, then shut the door, then lock the settings.
        con.execute("SET allowed_directories = $dirs", {"dirs": [str(spill)]})
        con.execute("SET temp_directory = $dir", {"dir": str(spill)})
        # DuckDB caches up to 80% of RAM by default; the pipeline also holds Polars frames,
        # so cap the engine and let large operators spill to the home's temp folder.
        con.execute("SET memory_limit = $limit", {"limit": os.environ.get(MEMORY_LIMIT_ENV) or DEFAULT_MEMORY_LIMIT})
        con.execute(
            "SET disabled_compression_methods = $methods",
            {"methods": os.environ.get(DISABLED_COMPRESSION_ENV, DEFAULT_DISABLED_COMPRESSION)},
        )
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            yield con
        finally:
            con.close()

    # --- reads -----------------------------------------------------------------
    @staticmethod
    def exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
        return bool(
            con.sql(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND schema_name = 'main'",
                params={"t": _table(table)},
            ).fetchall()[0][0]
        )

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame | None:
        if not cls.exists(con, table):
            return None
        return con.sql(f'SELECT * FROM "{_table(table)}"').pl()

    # --- writes ----------------------------------------------------------------
    @staticmethod
    def append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
        """Append rows to an archive table, creating it from the frame's schema once."""
        name = _table(table)
        con.register("_append_frame", frame)
        try:
            con.execute(f'CREATE TABLE IF NOT EXISTS "{name}" AS SELECT * FROM _append_frame LIMIT 0')
            con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _append_frame')
        finally:
            con.unregister("_append_frame")
        return frame.height

    @staticmethod
    def publish(
        con: duckdb.DuckDBPyConnection,
        frames: Mapping[str, pl.DataFrame],
        *,
        audit: Audit | None = None,
        allow_empty: frozenset[str] | set[str] = frozenset(),
    ) -> dict[str, int]:
        """Write-audit-publish several tables as one unit.

        1. run ``audit`` over the frames and refuse on any violation; 2. write each frame
        to ``_stage_<table>``; 3. swap all staged tables in one transaction. A frame that is empty without being listed in
        ``allow_empty`` is refused: an empty money table is a symptom, not a result.
        """
        names = {table: _table(table) for table in frames}
        empty = [t for t, f in frames.items() if f.height == 0 and t not in allow_empty]
        if empty:
            raise IntegrityError(",".join(sorted(empty)), ["unexpectedly empty input: refusing to publish"])
        violations = audit(frames) if audit else []
        if violations:
            raise IntegrityError(",".join(sorted(frames)), violations)
        staged = {t: f"_stage_{n}" for t, n in names.items()}
        try:
            for table, frame in frames.items():
                con.register("_publish_frame", naive_utc(frame))
                try:
                    con.execute(f'CREATE OR REPLACE TABLE "{staged[table]}" AS SELECT * FROM _publish_frame')
                finally:
                    con.unregister("_publish_frame")
            con.execute("BEGIN TRANSACTION")
            try:
                for table in frames:
                    con.execute(f'DROP TABLE IF EXISTS "{names[table]}"')
                    con.execute(f'ALTER TABLE "{staged[table]}" RENAME TO "{names[table]}"')
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        finally:
            for stage in staged.values():
                con.execute(f'DROP TABLE IF EXISTS "{stage}"')
        return {t: f.height for t, f in frames.items()}
