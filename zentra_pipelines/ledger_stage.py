"""Source database -> archive -> validated, chained ledger -> published tables.

``run_ledger`` is the whole ledger step of a run (no Dagster here; the asset wraps it):

1. read the watermark (max posted_at accepted so far) from ``ledger_watermark``;
2. read source rows with posted_at >= watermark - overlap (all rows the first time);
3. append the genuinely new raw rows to the append-only archive ``ledger_source_rows``
   (identical re-reads collapse on posting_id + content hash; a re-read with different
   content is kept, so that validation can quarantine every copy as a conflict);
4. validate ALL archived rows (so a rerun is deterministic and a late conflict is seen),
   chain, rebuild balances, derive findings;
5. publish the ledger tables as one unit through ``Warehouse.publish``, whose audit runs
   the blocking invariants over exactly the frames about to be staged. Any violation, or an empty
   ledger, raises ``IntegrityError`` and leaves the previously published tables as
   they were.

The archive and watermark make reads incremental; the published tables are always a
pure function of the archive and the accounts, so running twice changes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from operator import methodcaller

import duckdb
import polars as pl

from zentra_pipelines.adapters.ledger_source import describe_source, read_source
from zentra_pipelines.adapters.sql_files import load_sql
from zentra_pipelines.adapters.warehouse import Audit, Warehouse
from zentra_pipelines.domain import invariants as inv
from zentra_pipelines.domain import ledger

ARCHIVE = "ledger_source_rows"
WATERMARK = "ledger_watermark"
LEDGER_TABLES = (
    "ledger_entries", "ledger_postings_quarantine", "ledger_accounts", "ledger_balances",
    "daily_balances", "ledger_findings", "ledger_watermark",
)
#: Tables that may legitimately be empty; every other ledger table empty is refused.
ALLOW_EMPTY = frozenset({"ledger_postings_quarantine", "ledger_findings"})

WATERMARK_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "watermark_posted_at": ledger.UTC_US,
    "archived_rows": pl.Int64(),
    "accepted_rows": pl.Int64(),
}
_ARCHIVE_COLUMNS = ledger.SOURCE_COLUMNS


@dataclass(frozen=True)
class LedgerResult:
    source: str
    read_engine: str
    watermark_before: datetime | None
    watermark_after: datetime | None
    since_applied: str | None  # the literal lower bound actually sent to the source
    read: int  # rows fetched from the source this run
    new: int  # of which appended to the archive
    reread_collapsed: int  # of which already archived with identical content
    received: int  # archived rows validated (all of them, every run)
    collapsed: int  # archived rows that are the same posting spelled differently
    accepted: int
    quarantined: int
    quarantined_by_code: dict[str, int]
    accounts: int
    balances_rows: int
    daily_rows: int
    findings_by_type: dict[str, int]
    duplicate_journals: int
    published: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        codes = ", ".join(f"{c} {n}" for c, n in sorted(self.quarantined_by_code.items())) or "none"
        finds = ", ".join(f"{t} {n}" for t, n in sorted(self.findings_by_type.items())) or "none"
        return (
            f"ledger: read {self.read} ({self.new} new, {self.reread_collapsed} re-read) via {self.read_engine}; "
            f"validated {self.received}: accepted {self.accepted}, quarantined {self.quarantined} ({codes}), "
            f"collapsed {self.collapsed}; balances {self.balances_rows}, daily {self.daily_rows}; "
            f"findings: {finds}; duplicate journals {self.duplicate_journals}"
        )


# ------------------------------------------------------------------------- archive ---


def _content_expr(prefix: str = "") -> str:
    """Length-prefixed encoding of every archived column (unambiguous, NULL-aware)."""
    parts = [
        f"coalesce(CAST(strlen({prefix}\"{c}\") AS VARCHAR) || ':' || {prefix}\"{c}\", '-')"
        for c in _ARCHIVE_COLUMNS
    ]
    return "sha256(" + " || '|' || ".join(parts) + ")"


def _ensure_archive(con: duckdb.DuckDBPyConnection) -> None:
    columns = ", ".join(f'"{c}" VARCHAR' for c in _ARCHIVE_COLUMNS)
    con.execute(
        f'CREATE TABLE IF NOT EXISTS "{ARCHIVE}" ({columns}, content_sha256 VARCHAR NOT NULL, '
        "archived_at TIMESTAMP NOT NULL)"  # UTC, no zone attached: the warehouse convention
    )


def content_sha256(frame: pl.DataFrame) -> pl.Series:
    """``_content_expr`` of every row, computed by Polars (text) and hashlib (SHA-256).

    Same bytes as the SQL expression (length in UTF-8 bytes, ':', value; '-' for NULL;
    joined by '|'), hashed by OpenSSL, which is several times faster per row than the
    engine's sha256(). Chunked so memory stays bounded: each chunk's digests become a
    Series at once (6M Python strings alive together held ~700 MB).
    """
    parts = [
        pl.when(pl.col(c).is_null()).then(pl.lit("-"))
        .otherwise(pl.concat_str([pl.col(c).str.len_bytes().cast(pl.String), pl.lit(":"), pl.col(c)]))
        for c in _ARCHIVE_COLUMNS
    ]
    text = pl.concat_str(parts, separator="|").cast(pl.Binary)
    sha256, hexdigest = hashlib.sha256, methodcaller("hexdigest")
    out = pl.Series("content_sha256", [], dtype=pl.String)
    for offset in range(0, frame.height, _HASH_CHUNK):
        texts = frame.slice(offset, _HASH_CHUNK).select(text).to_series().to_list()
        out.append(pl.Series(list(map(hexdigest, map(sha256, texts))), dtype=pl.String))
        del texts
    return out


_HASH_CHUNK = 500_000


def archive_new_rows(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> int:
    """Append rows not archived yet (by content, posting_id included); returns how many."""
    return _archive_new(con, rows).height


def _archive_new(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> pl.DataFrame:
    """Append rows not archived yet (by content, posting_id included); returns them as
    appended (archive columns, in archive order).

    A row is new when no archived row has the same content (every archived column,
    NULL-aware), which is exactly "no row with its posting_id and content hash": the
    length-prefixed encoding is injective. Repeats within one read collapse to the first.
    Only archived rows sharing a posting_id with the read are fetched to compare, and
    only the new rows are hashed.
    """
    _ensure_archive(con)
    frame = rows.select([pl.col(c).cast(pl.String) for c in _ARCHIVE_COLUMNS])
    # equal content means equal posting_id: only rows whose posting_id repeats can repeat
    repeated = frame.select(pl.col("posting_id").is_duplicated()).to_series()
    if repeated.any():
        frame = frame.filter(~repeated | pl.struct(frame.columns).is_first_distinct())
    con.register("_ledger_read_ids", frame.select("posting_id").unique())
    try:
        known = con.sql(load_sql("select_archived_source_rows")).pl()
    finally:
        con.unregister("_ledger_read_ids")
    if known.height:
        known = known.select([pl.col(c).cast(pl.String) for c in _ARCHIVE_COLUMNS])
        frame = frame.join(known, on=list(_ARCHIVE_COLUMNS), how="anti", nulls_equal=True, maintain_order="left")
    if frame.height == 0:
        return frame
    frame = frame.with_columns(
        content_sha256(frame),
        archived_at=pl.lit(datetime.now(timezone.utc).replace(tzinfo=None), dtype=pl.Datetime("us")),
    )
    con.execute("BEGIN TRANSACTION")
    try:
        Warehouse.append(con, ARCHIVE, frame)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return frame


def _scalar(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> object:
    """One value, fully fetched (DuckDB 2.0 refuses new work while a result is pending)."""
    return con.sql(query, params=params or {}).fetchall()[0][0]


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        _scalar(
            con,
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t AND schema_name = 'main'",
            {"t": table},
        )
    )


def read_archive(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    _ensure_archive(con)
    cols = ", ".join(f'"{c}"' for c in _ARCHIVE_COLUMNS)
    frame = con.sql(f'SELECT {cols} FROM "{ARCHIVE}"').pl()
    return frame.select([pl.col(c).cast(t) for c, t in ledger.SOURCE_SCHEMA.items()])


def _with_added(archived: pl.DataFrame, added: pl.DataFrame) -> pl.DataFrame:
    """``read_archive`` after ``added`` was appended to ``archived``: the same rows in the
    same order and types, without reading them back."""
    rows = added.select([pl.col(c).cast(t) for c, t in ledger.SOURCE_SCHEMA.items()])
    if archived.height == 0:
        return rows
    if rows.height == 0:
        return archived
    return pl.concat([archived, rows], how="vertical")


def read_watermark(con: duckdb.DuckDBPyConnection, source: str) -> datetime | None:
    """The last published watermark for this source (None: read everything)."""
    if not _exists(con, WATERMARK):
        return None
    frame = con.sql(f'SELECT * FROM "{WATERMARK}"').pl()
    row = frame.filter(pl.col("source") == source)
    if row.height == 0:
        return None
    value = row["watermark_posted_at"][0]
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------- audit ---


def ledger_audit(received: int, collapsed: int) -> Audit:
    """The blocking invariants over exactly the frames ``Warehouse.publish`` is about to stage."""

    def audit(frames: Mapping[str, pl.DataFrame]) -> list[str]:
        entries = frames["ledger_entries"]
        quarantine = frames["ledger_postings_quarantine"]
        balances = frames["ledger_balances"]
        daily = frames["daily_balances"]
        found: list[inv.Violation] = []
        found += inv.schema_violations(entries, inv.LedgerEntriesModel)
        found += inv.unique_values(entries, inv.ENTRY_UNIQUE)
        found += inv.schema_violations(balances, inv.LedgerBalancesModel)
        found += inv.schema_violations(daily, inv.DailyBalancesModel)
        found += inv.journal_balance(entries)
        found += inv.rows_conserved(received, entries.height, quarantine.height, collapsed)
        found += inv.closing_is_opening_plus_movements(daily)
        found += inv.balances_sum_to_zero(balances)
        found += inv.balances_match_entries(balances, entries)
        found += inv.daily_matches_balances(daily, balances)
        found += inv.chain_verifies(entries)
        return [str(v) for v in found]

    return audit


def _combine(first: Audit, extra: Audit | None) -> Audit:
    if extra is None:
        return first
    return lambda frames: first(frames) + extra(frames)


# --------------------------------------------------------------------------- stage ---


def run_ledger(
    con: duckdb.DuckDBPyConnection,
    source_url: str,
    overlap: timedelta = timedelta(days=1),
    *,
    as_of: datetime | None = None,
    extra_audit: Audit | None = None,
    prefer_arrow: bool = True,
) -> LedgerResult:
    """Read, archive, validate, chain, rebuild and publish the ledger tables.

    ``as_of`` dates the findings (ages, overdue); by default it is the latest accepted
    posted_at, so a rerun on the same data gives the same findings whatever the clock
    says. ``extra_audit`` adds checks to the blocking audit (tests use it to prove that
    a failing audit publishes nothing). Raises ``IntegrityError`` on any violation and
    on an empty ledger: an empty source is refused, never published as "no money".
    """
    clock: dict[str, float] = {}
    t0 = time.perf_counter()
    source = describe_source(source_url)
    before = read_watermark(con, source)
    snap = read_source(source_url, before, overlap, prefer_arrow=prefer_arrow)
    clock["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    # The archive as validated is what earlier runs archived plus what this run appends,
    # in that (the table's) order: read the earlier rows before appending and add the
    # new ones from memory, instead of reading every row back after the append (at 1M
    # intents a first run read its 6M rows straight back: ~7 CPU s, ~1 GB of Arrow).
    archived = read_archive(con)
    added = _archive_new(con, snap.postings)
    read_rows, source_accounts, engine, since = snap.postings.height, snap.accounts, snap.engine, snap.since
    del snap  # millions of rows at scale: only their count is needed from here on
    new = added.height
    archive = _with_added(archived, added)
    del archived, added
    clock["archive"] = time.perf_counter() - t

    t = time.perf_counter()
    accounts, _ambiguous = ledger.normalise_accounts(source_accounts)
    postings, quarantine = ledger.validate_postings(archive, source_accounts)
    # counted independently of validate_postings, so rows_conserved is a real check
    collapsed = ledger.collapsed_rereads(archive)
    received = archive.height
    del archive
    clock["validate"] = time.perf_counter() - t

    t = time.perf_counter()
    entries = ledger.chain_entries(postings)
    del postings
    clock["chain"] = time.perf_counter() - t
    t = time.perf_counter()
    balances, daily = ledger.rebuild_balances(entries)
    clock["rebuild"] = time.perf_counter() - t

    t = time.perf_counter()
    latest = entries["posted_at"].max() if entries.height else None
    findings = ledger.ledger_findings(
        entries, source_accounts, daily, as_of or latest or datetime(1970, 1, 1, tzinfo=timezone.utc)
    )
    duplicates = ledger.duplicate_journals(entries)
    after = max((w for w in (before, latest) if w is not None), default=None)
    watermark = pl.DataFrame(
        [(source, after, received, entries.height)], schema=WATERMARK_SCHEMA, orient="row"
    )
    frames = {
        "ledger_entries": entries,
        "ledger_postings_quarantine": quarantine,
        "ledger_accounts": accounts,
        "ledger_balances": balances,
        "daily_balances": daily,
        "ledger_findings": findings,
        "ledger_watermark": watermark,
    }
    clock["derive"] = time.perf_counter() - t

    t = time.perf_counter()
    published = Warehouse.publish(
        con, frames, audit=_combine(ledger_audit(received, collapsed), extra_audit), allow_empty=ALLOW_EMPTY
    )
    clock["audit_publish"] = time.perf_counter() - t

    return LedgerResult(
        source=source,
        read_engine=engine,
        watermark_before=before,
        watermark_after=after,
        since_applied=since,
        read=read_rows,
        new=new,
        reread_collapsed=read_rows - new,
        received=received,
        collapsed=collapsed,
        accepted=entries.height,
        quarantined=quarantine.height,
        quarantined_by_code=_counts(quarantine, "error_code"),
        accounts=accounts.height,
        balances_rows=balances.height,
        daily_rows=daily.height,
        findings_by_type=_counts(findings, "finding_type"),
        duplicate_journals=duplicates.height,
        published=published,
        seconds={k: round(v, 3) for k, v in clock.items()},
    )


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.height == 0:
        return {}
    return {k: int(n) for k, n in frame.group_by(column).len().sort(column).iter_rows()}
