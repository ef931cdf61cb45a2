"""The DuckDB warehouse: locked down, written only through write-audit-publish.

Why not Dagster's stock DuckDB IO manager: it deletes then inserts in separate steps,
so an empty or failed write leaves a money table empty while the run reports success
(see FIELD_NOTES). Here every derived table is built under a staging name, audited,
and swapped in with its siblings inside one transaction; a failed audit or an
unexpectedly empty frame leaves the published tables exactly as they were.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

#: DuckDB's own memory cap (the pipeline's Polars frames come on top). Override with the
#: environment variable, e.g. ZENTRA_DUCKDB_MEMORY_LIMIT=8GB. DuckDB keeps blocks it has
#: read or written cached up to this cap while the step goes on in Polars: at 1M intents
#: 1GB instead of 2GB took the run's peak RSS from 9.4 to 6.9 GiB (with the other changes
#: of that day), and no step got slower (operators that need more spill to .duckdb_tmp).
MEMORY_LIMIT_ENV = "ZENTRA_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "1GB"

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
        "landing_files", "landing_lines", "callback_checked", "callback_keys_judged", "ledger_source_rows",
        "landing_file_stats",  # landing file stat -> content hash, so known files are not re-read
        # per-line parse caches (keyed by file_sha256, line_no; see intake.parse_source)
        "deliveries_parsed", "intents_parsed", "settlements_parsed",
        # digests of what published stage tables were built from (see stage_inputs)
        "deliveries_inputs", "callbacks_inputs", "settlements_inputs", "intents_inputs",
        # callbacks
        "callbacks_quarantine", "callback_events", "provider_state", "ingest_accounting",
        # intents and controls
        "intents", "intents_quarantine", "policy_decisions", "review_queue",
        # ledger
        "ledger_postings_quarantine", "ledger_entries", "ledger_accounts", "ledger_balances",
        "daily_balances", "ledger_findings", "ledger_watermark", "ledger_entries_digest",
        # settlements, deliveries, routing
        "settlements", "settlements_quarantine", "deliveries", "deliveries_quarantine",
        "webhook_health", "replay_queue", "routing_decisions", "callback_conflicts", "settlement_conflicts",
        # reconciliation and evidence
        "reconciliation_breaks", "break_log", "intent_timeline", "data_contract_results", "data_contract_results_by_tenant", "check_results",
        "data_contract_cache",  # per tenant-day GX counts, keyed by a fingerprint (data_contracts)
        "packets", "packets_run", "packet_fingerprints", "run_summary",
        "integrity_verdicts",  # the ledger invariants' verdict and the fingerprint of what it judged (integrity)
        # per-intent input fingerprints of the published timeline (reconciliation_stage.run_timeline)
        "timeline_fingerprints",
        # intent ledger view rows with their entries' fingerprints (reconciliation_stage._ledger_view)
        "reconcile_ledger_view",
    }
)


class WarehouseBusyError(RuntimeError):
    """Another process has the warehouse file open (a DuckDB shell, a notebook): DuckDB
    lets one writer, or any number of readers, hold it. Exit code 2: close it and rerun."""


_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


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
        try:
            con = duckdb.connect(str(self.path), read_only=read_only, config={})
        except duckdb.IOException as err:
            if "Could not set lock" not in str(err):
                raise
            holder = _LOCK_HOLDER.search(str(err))
            raise WarehouseBusyError(
                f"{self.path} is open in another process (pid {holder.group(1) if holder else 'unknown'}): "
                "close that session and run again"
            ) from None
        con.execute("LOAD icu")
        # GLOBAL: a second connection on the same database (``reader``) reads in UTC too
        con.execute("SET GLOBAL TimeZone = 'UTC'")
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
        # long queries would otherwise draw DuckDB's progress bar into `zentra run`'s output
        con.execute("SET enable_progress_bar = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            yield con
        finally:
            con.close()

    @staticmethod
    @contextmanager
    def reader(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
        """A second connection to ``con``'s database, for a helper thread to read on while
        this one writes through ``con`` (one DuckDB connection serves one thread at a
        time). Every setting ``connect`` makes is the database's, so it holds here too,
        locked; it sees what ``con`` has committed."""
        cursor = con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

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

    @classmethod
    def count(cls, con: duckdb.DuckDBPyConnection, table: str) -> int:
        """Rows in a published table (0 when it is not published), counted by the engine."""
        if not cls.exists(con, table):
            return 0
        return int(con.sql(f'SELECT count(*) FROM "{_table(table)}"').fetchall()[0][0])

    @staticmethod
    def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
        """``(name, type)`` of a table's columns in table order, from the catalog."""
        return con.sql(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = $t "
            "ORDER BY column_index",
            params={"t": _table(table)},
        ).fetchall()

    @classmethod
    def count_by(cls, con: duckdb.DuckDBPyConnection, table: str, column: str) -> list[tuple[object, int]]:
        """``(value, rows)`` per value of one column, NULL included, in no particular order
        (empty when the table is not published): counted by the engine, so a summary of a
        6M-row table does not bring its rows into Python."""
        if not cls.exists(con, table):
            return []
        name = _table(table)
        if column not in {c for c, _ in cls.columns(con, name)}:
            raise ValueError(f"table {name!r} has no column {column!r}")
        quoted = '"' + column.replace('"', '""') + '"'
        return [(k, int(n)) for k, n in con.sql(f'SELECT {quoted}, count(*) FROM "{name}" GROUP BY ALL').fetchall()]

    # --- writes ----------------------------------------------------------------
    @staticmethod
    def append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
        """Append rows to an archive table, creating it from the frame's schema once."""
        name = _table(table)
        con.register("_append_frame", _arrow_view(frame))
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
        in_place: Mapping[str, InPlace] | None = None,
    ) -> dict[str, int]:
        """Write-audit-publish several tables as one unit.

        1. run ``audit`` over the frames and refuse on any violation; 2. write each frame
        to ``_stage_<table>``; 3. swap all staged tables in one transaction. A frame that is empty without being listed in
        ``allow_empty`` is refused: an empty money table is a symptom, not a result.

        ``in_place``: tables updated in place within the same transaction (``keep_and_add``)
        instead of being rewritten, each by an :class:`InPlace` update (the rows of
        ``kept`` plus ``added``, or all but those of ``removed`` plus ``added``). A table
        among ``frames`` too has there what it becomes, audited as usual; one that is not
        states its rows after the update (``InPlace.rows``) and the audit must check it
        by other means. Either way the transaction is refused unless the table then
        holds exactly that many rows.
        """
        in_place = in_place or {}
        for table in (*frames, *in_place):
            _table(table)
        unsized = sorted(t for t, update in in_place.items() if t not in frames and update.rows is None)
        if unsized:
            raise ValueError(f"in-place tables {unsized} have neither a frame nor their rows")
        empty = [t for t, f in frames.items() if f.height == 0 and t not in allow_empty]
        if empty:
            raise IntegrityError(",".join(sorted(empty)), ["unexpectedly empty input: refusing to publish"])
        violations = audit(frames) if audit else []
        if violations:
            raise IntegrityError(",".join(sorted(frames)), violations)
        updates = {t: (update, frames[t].height if t in frames else update.rows) for t, update in in_place.items()}
        with _staged(con, [t for t in frames if t not in in_place], updates) as staged:
            for table, stage in staged.items():
                _stage(con, stage, naive_utc(frames[table]), create=True)
        return {t: f.height for t, f in frames.items()} | {t: u.rows for t, u in in_place.items() if t not in frames}

    @staticmethod
    def publish_parts(
        con: duckdb.DuckDBPyConnection,
        table: str,
        parts: Iterable[pl.DataFrame],
        *,
        schema: Mapping[str, pl.DataType] | None = None,
        audit: Audit | None = None,
        allow_empty: bool = False,
    ) -> int:
        """Write-audit-publish one table from a sequence of frames, held one at a time.

        The published table is the parts' concatenation in iteration order (as if their
        ``pl.concat`` went through :meth:`publish`), but only one part is in memory at
        a time: a generator may build each part just before it is staged. The first part
        creates ``_stage_<table>``, the next ones are inserted into it (every part must
        have the first part's schema), and the staged table is swapped in within one
        transaction. ``audit`` sees each part alone (``{table: part}``; it must judge
        rows, not the whole table); any violation, an exception while producing a part,
        or an empty result without ``allow_empty`` drops the staging table and leaves
        the published one exactly as it was. ``schema`` gives the table's columns when
        there are no parts at all (required then, and only then).
        """
        name = _table(table)
        rows, first_part, first_schema, violations = 0, True, None, []
        with _staged(con, [name]) as staged:
            stage = staged[name]
            for part in parts:
                part = naive_utc(part)
                if first_schema is None:
                    first_schema = part.schema
                elif part.schema != first_schema:
                    raise ValueError(f"{name}: a part's schema {dict(part.schema)} differs from the first "
                                     f"part's {dict(first_schema)}")
                if audit:
                    violations += audit({table: part})
                _stage(con, stage, part, create=first_part)
                first_part, rows = False, rows + part.height
                del part  # the generator builds the next part without this one alive
            if rows == 0 and not allow_empty:
                raise IntegrityError(name, ["unexpectedly empty input: refusing to publish"])
            if violations:
                raise IntegrityError(name, violations)
            if first_part:
                if schema is None:
                    raise ValueError(f"{name}: no parts and no schema to create an empty table from")
                _stage(con, stage, naive_utc(pl.DataFrame(schema=schema)), create=True)
        return rows

    @staticmethod
    def replacement(con: duckdb.DuckDBPyConnection, table: str, removed: pl.DataFrame, added: pl.DataFrame) -> InPlace:
        """``InPlace.replacing(removed, added)`` of a published table, with the rows the
        table will hold after it (its rows, less those whose key is among ``removed``, plus
        ``added``) counted now: ``publish`` then refuses the update unless the table holds
        exactly that many, and the caller's audit can count on it."""
        name = _table(table)
        match = _key_match(con, name, removed)
        con.register("_replaced_keys", _arrow_view(removed))
        try:
            held, replaced = con.sql(
                f'SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM _replaced_keys AS k WHERE {match})) '
                f'FROM "{name}" AS t'
            ).fetchall()[0]
        finally:
            con.unregister("_replaced_keys")
        return InPlace.replacing(removed, added, rows=int(held) - int(replaced) + added.height)

    @classmethod
    def changes(cls, con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame,
                key: list[str]) -> InPlace | None:
        """``frame``, a whole new build of a published table, as an in-place update of it:
        the rows of every key (NULL equal to NULL) whose rows differ between the two are
        replaced by the frame's; None when the table is not published with the frame's
        columns and types (``publish`` then rewrites it).

        For a table rebuilt whole every run whose rows mostly come out the same (at 100k
        intents over 31 days, a day's run rewrote ~97k routing and policy decisions,
        0.2-0.26 s each, for the ~3k intents it added): reading it back and comparing
        costs less than writing it. Its physical order becomes that of its updates.
        """
        name = _table(table)
        frame = naive_utc(frame)
        if not cls.exists(con, name):
            return None
        published = con.sql(f'SELECT * FROM "{name}"').pl()
        if published.schema != frame.schema:
            return None
        columns = list(frame.columns)
        differ = pl.concat([
            published.join(frame, on=columns, how="anti", nulls_equal=True).select(key),
            frame.join(published, on=columns, how="anti", nulls_equal=True).select(key),
        ]).unique()
        del published
        return InPlace.replacing(differ, frame.join(differ, on=key, how="semi", nulls_equal=True), rows=frame.height)

    @staticmethod
    def keep_and_add(
        con: duckdb.DuckDBPyConnection, table: str, kept: pl.DataFrame, added: pl.DataFrame
    ) -> int:
        """Update a published table in place, in one transaction: the rows whose key
        (``kept``'s columns, NULL equal to NULL) is among ``kept`` stay, every other row
        goes, and ``added`` is appended (matched to the table's columns by name).

        For a table that a day's run mostly keeps: staging the kept and the new rows as a
        new table and swapping it in rewrote and recompressed every kept row (at 100k
        intents, the timeline step rebuilding 2 days of intents: 1.6-1.75 s that way,
        1.4-1.5 s in place, of which 0.4-0.5 s is DuckDB's checkpoint of the update).
        The table is then a set whose physical order is the order of its updates, not a
        full build's: its readers order what they read (packets sort every table by
        content). Any failure rolls back, leaving the published table as it was. Returns
        its rows.
        """
        name = _table(table)
        _swap(con, {}, {name: (InPlace(kept, added), None)})
        return int(con.sql(f'SELECT count(*) FROM "{name}"').fetchall()[0][0])


@dataclass(frozen=True)
class InPlace:
    """An in-place update of a published table: the rows whose key (``kept``'s columns,
    NULL equal to NULL) is among ``kept`` stay, every other row goes, ``added`` is
    appended (matched to the table's columns by name). Or, with ``removed`` instead of
    ``kept`` (:meth:`replacing`): the rows whose key is among ``removed`` go, every
    other row stays. ``rows``: how many rows the table holds after the update, for a
    table ``Warehouse.publish`` is given no frame of (the update is all there is of it)."""

    kept: pl.DataFrame | None
    added: pl.DataFrame
    removed: pl.DataFrame | None = None
    rows: int | None = None

    def __post_init__(self) -> None:
        if (self.kept is None) == (self.removed is None):
            raise ValueError("an in-place update names either the kept or the removed keys")

    @classmethod
    def replacing(cls, removed: pl.DataFrame, added: pl.DataFrame, rows: int | None = None) -> InPlace:
        """Every row whose key (``removed``'s columns) is among ``removed`` goes, ``added``
        comes in: for a table where a run changes the rows of a few keys only."""
        return cls(None, added, removed, rows)


def _key_match(con: duckdb.DuckDBPyConnection, name: str, keys: pl.DataFrame) -> str:
    """SQL matching a row ``t`` of table ``name`` to a row ``k`` of ``keys`` on every column of
    ``keys`` (NULL equal to NULL); the columns must all be the table's."""
    key = list(keys.columns)
    if not key or not set(key) <= {c for c, _ in Warehouse.columns(con, name)}:
        raise ValueError(f"table {name!r} has no key {key!r}")
    quoted = ['"' + c.replace('"', '""') + '"' for c in key]
    return " AND ".join(f"t.{c} IS NOT DISTINCT FROM k.{c}" for c in quoted)


def _update_in_place(con: duckdb.DuckDBPyConnection, name: str, update: InPlace) -> None:
    """Apply ``update`` to the published table ``name`` inside the caller's transaction."""
    keys = update.kept if update.kept is not None else update.removed
    match = _key_match(con, name, keys)
    gone = "NOT EXISTS" if update.kept is not None else "EXISTS"
    con.register("_update_keys", _arrow_view(keys))
    con.register("_added_rows", _arrow_view(naive_utc(update.added)))
    try:
        con.execute(f'DELETE FROM "{name}" AS t WHERE {gone} (SELECT 1 FROM _update_keys AS k WHERE {match})')
        con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _added_rows')
    finally:
        con.unregister("_update_keys")
        con.unregister("_added_rows")


@contextmanager
def _staged(
    con: duckdb.DuckDBPyConnection, tables: Iterable[str],
    updates: Mapping[str, tuple[InPlace, int | None]] | None = None,
) -> Iterator[dict[str, str]]:
    """``_stage_<table>`` for each of ``tables`` (allowlisted), by table, for the block to
    fill: when it ends without an exception the staged tables replace the published ones
    in one transaction (``_swap``), which also applies ``updates`` (table -> its in-place
    update and the rows it must hold after it); the stages are dropped either way, so a
    failure leaves the published tables as they were and no stage behind."""
    staged = {table: f"_stage_{_table(table)}" for table in tables}
    try:
        yield staged
        _swap(con, staged, updates or {})
    finally:
        for stage in staged.values():
            con.execute(f'DROP TABLE IF EXISTS "{stage}"')


def _stage(con: duckdb.DuckDBPyConnection, stage: str, frame: pl.DataFrame, *, create: bool) -> None:
    """Create the staging table from ``frame`` (replacing any leftover), or append to it."""
    con.register("_publish_frame", _arrow_view(frame))
    try:
        if create:
            con.execute(f'CREATE OR REPLACE TABLE "{stage}" AS SELECT * FROM _publish_frame')
        else:
            con.execute(f'INSERT INTO "{stage}" SELECT * FROM _publish_frame')
    finally:
        con.unregister("_publish_frame")


def _viewable(dtype: pl.DataType) -> bool:
    """Whether Polars exports the type at its newest compat level in a form Arrow (and
    so DuckDB) reads: not Int128/UInt128, at any depth."""
    if isinstance(dtype, (pl.Int128, pl.UInt128)):
        return False
    if isinstance(dtype, (pl.List, pl.Array)):
        return _viewable(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return all(_viewable(f.dtype) for f in dtype.fields)
    return True


def _arrow_view(frame: pl.DataFrame) -> object:
    """The frame as Arrow that shares Polars' buffers, for DuckDB to scan.

    A Polars frame registered as is goes through ``to_arrow()`` at the oldest compat
    level, which rewrites every string column from Polars' string views into a new
    large-string buffer: at 1M intents staging the 6M ledger entries copied ~1 GB of
    text that way (peak RSS of the ledger step). At the newest level strings stay views,
    which DuckDB scans directly; measured on those entries: staging +1,922 -> +986 MiB
    (the rest is DuckDB's own buffer pool), 12.6 -> 10.6 CPU s, the same table (column
    types and values) either way. Frames with a type Arrow has no view for (Int128) are
    handed over as before.
    """
    if not all(map(_viewable, frame.schema.values())):
        return frame
    return frame.to_arrow(compat_level=pl.CompatLevel.newest())


def _swap(
    con: duckdb.DuckDBPyConnection, staged: Mapping[str, str], updates: Mapping[str, tuple[InPlace, int | None]]
) -> None:
    """Replace every published table by its staged one and apply the in-place updates,
    all in one transaction; an updated table left with another row count than expected
    (a ``kept`` that did not describe the published rows; None: not checked) rolls
    everything back."""
    con.execute("BEGIN TRANSACTION")
    try:
        for name, stage in staged.items():
            con.execute(f'DROP TABLE IF EXISTS "{name}"')
            con.execute(f'ALTER TABLE "{stage}" RENAME TO "{name}"')
        for name, (update, rows) in updates.items():
            _update_in_place(con, _table(name), update)
            if rows is None:
                continue
            (held,) = con.sql(f'SELECT count(*) FROM "{name}"').fetchall()[0]
            if held != rows:
                raise IntegrityError(name, [f"in-place update left {held} rows, not the {rows} audited: "
                                            "refusing to publish"])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
