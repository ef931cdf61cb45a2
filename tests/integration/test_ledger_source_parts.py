"""A large SQLite source is read in rowid ranges at once (``ledger_source._rowid_ranges``):
the same rows, in the same order, as one read; tables it cannot split are read whole."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from zentra_pipelines.adapters import ledger_source as src

COLUMNS = ("posting_id TEXT PRIMARY KEY, journal_id TEXT, intent_id TEXT, tenant_id TEXT, account_id TEXT, "
           "currency TEXT, amount_minor, posted_at TIMESTAMP, actor_id TEXT, idempotency_key TEXT")


def _source(path: Path, ddl: str = f"CREATE TABLE ledger_postings ({COLUMNS})", rows: int = 40) -> str:
    con = sqlite3.connect(path)
    with con:
        con.execute(ddl)
        amounts = [125, -3, 1250.0, "125000", b"\x01", None]
        con.executemany(
            "INSERT INTO ledger_postings VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(f"p_{(i * 7) % rows:03d}", f"j{i // 2}", "i", "t_alpha", "acct", "EUR", amounts[i % len(amounts)],
              f"2026-11-{1 + i % 28:02d}T10:00:00Z", None if i % 5 else "a", "k") for i in range(rows)],
        )
        con.execute("DELETE FROM ledger_postings WHERE posting_id IN ('p_003', 'p_039')")  # gaps
    con.close()
    return f"sqlite:///{path}"


def _engine(url: str):
    return src._engine(src._normalise_url(url))


def _read(url: str, min_rows: int, since: datetime | None = None):
    parsed = src._normalise_url(url)
    engine = src._engine(parsed)
    stmt, _ = src._postings_query(engine, "sqlite", since, timedelta(days=1))
    frame, path = src._fetch(stmt, parsed, engine, list(src.POSTING_SOURCE_COLUMNS), True, "ledger_postings", min_rows)
    return frame, path


def test_ranges_cover_every_rowid_in_contiguous_parts(tmp_path):
    engine = _engine(_source(tmp_path / "s.sqlite"))
    ranges = src._rowid_ranges(engine, "ledger_postings", 2, 1)
    assert ranges == [(1, 20), (21, 40)]  # rowids 1..40, the deleted ones included
    assert src._rowid_ranges(engine, "ledger_postings", 3, 1) == [(1, 14), (15, 28), (29, 40)]


def test_a_table_spanning_fewer_rowids_than_the_minimum_is_read_whole(tmp_path):
    assert src._rowid_ranges(_engine(_source(tmp_path / "s.sqlite")), "ledger_postings", 2, 41) is None


@pytest.mark.parametrize("ddl", [
    f"CREATE TABLE ledger_postings ({COLUMNS}) WITHOUT ROWID",
    f"CREATE TABLE ledger_postings ({COLUMNS}, oid INTEGER)",
])
def test_a_table_without_a_usable_rowid_is_read_whole(tmp_path, ddl):
    path = tmp_path / "s.sqlite"
    con = sqlite3.connect(path)
    con.execute(ddl)
    con.close()
    assert src._rowid_ranges(_engine(f"sqlite:///{path}"), "ledger_postings", 2, 1) is None


@pytest.mark.parametrize("since", [None, datetime(2026, 11, 10, tzinfo=timezone.utc)])
def test_a_read_in_parts_gives_the_rows_of_one_read_in_its_order(tmp_path, since):
    url = _source(tmp_path / "s.sqlite")
    whole, path = _read(url, 10**9, since)
    parts, parts_path = _read(url, 1, since)
    assert path == parts_path == "connectorx"
    assert whole.height == (38 if since is None else 23)  # 40 rows, 2 deleted; 23 from 2026-11-09 on
    assert_frame_equal(parts, whole)


def test_a_part_with_no_rows_past_the_watermark_still_reads_in_parts(tmp_path):
    """Postings come in time order, so after a watermark the older rowid ranges are empty;
    connectorx types an empty part's null mask as text, which once failed the concatenation
    and sent every incremental read down the slow SQLAlchemy path."""
    url = _source(tmp_path / "s.sqlite")
    con = sqlite3.connect(tmp_path / "s.sqlite")
    with con:
        con.execute("UPDATE ledger_postings SET posted_at = '2026-10-01T10:00:00Z' WHERE rowid <= 20")
    con.close()
    since = datetime(2026, 11, 10, tzinfo=timezone.utc)
    whole, _ = _read(url, 10**9, since)
    parts, parts_path = _read(url, 1, since)
    assert parts_path == "connectorx"
    assert whole.height == 12  # of rowids 21..40, those dated from 2026-11-09 (one day of overlap) on
    assert_frame_equal(parts, whole)
