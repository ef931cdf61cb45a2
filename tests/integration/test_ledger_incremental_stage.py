"""The ledger stage's incremental path gives exactly the full recompute's tables.

Each case runs the stage on a history, changes the source, runs it again (the
incremental path, asserted through ``LedgerResult.seconds``) and compares every
published ledger table with one run over the final source on a fresh warehouse.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from tests.integration.test_ledger_stage import (
    ACCOUNTS_DDL,
    POSTINGS_DDL,
    START,
    add_sqlite,
    make_ledger,
    ts,
    write_sqlite,
)
from zentra_pipelines.adapters.code_version import code_version
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain.ledger import chain_seeds
from zentra_pipelines.ledger_stage import (
    DIGEST,
    LEDGER_TABLES,
    AuditScope,
    LedgerResult,
    entries_digest,
    ledger_audit,
    run_ledger,
)

#: How each table is read to compare: an incremental run updates ledger_entries in place
#: (its rechained tails appended), so its rows are compared in chain order.
ORDER = {"ledger_entries": " ORDER BY tenant_id, entry_seq"}


def tables(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    return {t: con.sql(f'SELECT * FROM "{t}"' + ORDER.get(t, "")).pl() for t in LEDGER_TABLES}


def history_then(tmp_path: Path, change: Callable[[str], None]) -> tuple[LedgerResult, dict, dict]:
    """(second run's result, its tables, the full recompute's tables on the same archive).

    The reference is a copy of the warehouse after the first run, run again over the
    changed source with ``incremental=False``: the same rows read and archived, every
    one validated and chained again.
    """
    accounts, postings = make_ledger()
    url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    with Warehouse(tmp_path / "inc").connect() as con:
        run_ledger(con, url)
    shutil.copytree(tmp_path / "inc", tmp_path / "full")
    change(url)
    with Warehouse(tmp_path / "inc").connect() as con:
        result = run_ledger(con, url)
        incremental = tables(con)
        # the published digest is the whole table's, however the run summed it
        assert_frame_equal(con.sql(f'SELECT * FROM "{DIGEST}"').pl(),
                           entries_digest(con.sql("SELECT * FROM ledger_entries").pl()))
    with Warehouse(tmp_path / "full").connect() as con:
        full_result = run_ledger(con, url, incremental=False)
        full = tables(con)
    assert "path_full" in full_result.seconds
    return result, incremental, full


def assert_same(incremental: dict, full: dict) -> None:
    for name in LEDGER_TABLES:
        assert_frame_equal(incremental[name], full[name], check_exact=True)


def journal(n: str, at: str, tenant: str = "t_alpha", cur: str = "EUR", amount: int = 4_321) -> list[tuple]:
    return [
        (f"p_{n}_1", f"j_{n}", n, tenant, f"{tenant}:customer:0001", cur, -amount, at, "svc_core", f"{n}:k"),
        (f"p_{n}_2", f"j_{n}", n, tenant, f"{tenant}:reserved", cur, amount, at, "svc_core", f"{n}:k"),
    ]


def test_a_new_day_extends_each_chain_and_equals_the_full_recompute(tmp_path: Path) -> None:
    later = START + timedelta(days=30)
    result, inc, full = history_then(tmp_path, lambda url: add_sqlite(url, journal("n1", ts(later)) + journal(
        "n2", ts(later), "t_beta", "USD")))
    assert "path_incremental" in result.seconds and result.seconds["rechained"] == 4
    assert_same(inc, full)


def test_new_days_update_the_entries_in_place_and_the_next_run_builds_on_them(tmp_path: Path) -> None:
    accounts, postings = make_ledger()
    url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    oid = "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'ledger_entries'"
    with Warehouse(tmp_path / "inc").connect() as con:
        run_ledger(con, url)
        first = con.sql(oid).fetchall()
        for day, n in ((30, "n1"), (31, "n2")):
            add_sqlite(url, journal(n, ts(START + timedelta(days=day))) + journal(f"{n}b", ts(START + timedelta(days=day)), "t_beta"))
            result = run_ledger(con, url)
            assert "path_incremental" in result.seconds and result.seconds["rechained"] == 4
            assert con.sql(oid).fetchall() == first  # not rewritten: its tails were replaced
        # the physical order is no longer the chain's: each run appended the tails it rechained
        tail = con.sql("SELECT journal_id FROM ledger_entries").pl()["journal_id"].tail(4).to_list()
        assert tail == ["j_n2", "j_n2", "j_n2b", "j_n2b"]
        incremental = tables(con)
    shutil.copytree(tmp_path / "inc", tmp_path / "full")
    with Warehouse(tmp_path / "full").connect() as con:
        run_ledger(con, url, incremental=False)
        assert_same(incremental, tables(con))


def test_a_late_posting_rechains_from_where_it_sorts(tmp_path: Path) -> None:
    def change(url: str) -> None:  # posted 12 hours before the newest posting: inside the read's overlap
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        newest = datetime.fromisoformat(con.execute("SELECT max(posted_at) FROM ledger_postings").fetchone()[0])
        con.close()
        add_sqlite(url, journal("late", ts(newest - timedelta(hours=12))))

    result, inc, full = history_then(tmp_path, change)
    assert "path_incremental" in result.seconds and result.seconds["rechained"] > 2
    assert_same(inc, full)


def test_a_posting_landing_late_before_the_read_window_is_read_not_lost(tmp_path: Path) -> None:
    """Posted 10 days before the newest posting, i.e. before the windowed read's overlap:
    the source then holds an id the archive never saw, so the whole source is read once."""
    def change(url: str) -> None:
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        newest = datetime.fromisoformat(con.execute("SELECT max(posted_at) FROM ledger_postings").fetchone()[0])
        con.close()
        add_sqlite(url, journal("backdated", ts(newest - timedelta(days=10))))

    result, inc, _ = history_then(tmp_path, change)
    assert "reread_whole_source" in result.seconds and "path_full" in result.seconds
    assert inc["ledger_entries"].filter(pl.col("posting_id").str.starts_with("p_backdated_")).height == 2
    with Warehouse(tmp_path / "fresh").connect() as con:
        run_ledger(con, f"sqlite:///{tmp_path / 'source.sqlite'}")
        fresh = tables(con)
    for name in LEDGER_TABLES:
        if name != "ledger_watermark":  # its row counts what each home read, not the ledger
            assert_frame_equal(inc[name], fresh[name], check_exact=True)


def test_a_deleted_posting_does_not_hide_a_late_one_and_is_counted(tmp_path: Path, caplog) -> None:
    """Two postings deleted in the source and two landing late before the read window:
    the counts agree, the sets do not. The late journal is read; the deleted one stays in
    the ledger as archived (append-only evidence) and the run counts and says it."""
    def change(url: str) -> None:
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        newest = datetime.fromisoformat(con.execute("SELECT max(posted_at) FROM ledger_postings").fetchone()[0])
        gone = con.execute("SELECT journal_id FROM ledger_postings ORDER BY posting_id LIMIT 1").fetchone()[0]
        assert con.execute("DELETE FROM ledger_postings WHERE journal_id = ?", (gone,)).rowcount == 2
        con.commit()
        con.close()
        add_sqlite(url, journal("backdated", ts(newest - timedelta(days=10))))

    with caplog.at_level("WARNING", logger="zentra.ledger"):
        result, inc, _ = history_then(tmp_path, change)
    assert "reread_whole_source" in result.seconds
    assert inc["ledger_entries"].filter(pl.col("posting_id").str.starts_with("p_backdated_")).height == 2
    assert result.deleted_in_source == 2
    assert "2 posting(s) archived by earlier runs are no longer in the source" in caplog.text


def test_a_changed_reread_of_an_old_posting_quarantines_it_like_the_full_recompute(tmp_path: Path) -> None:
    def change(url: str) -> None:
        newest = "(SELECT posting_id FROM ledger_postings ORDER BY posted_at DESC, posting_id LIMIT 1)"
        add_sqlite(url, [], f"UPDATE ledger_postings SET amount_minor = amount_minor + 1 WHERE posting_id = {newest}")

    result, inc, full = history_then(tmp_path, change)
    assert "path_incremental" in result.seconds
    assert inc["ledger_postings_quarantine"].height >= 2
    assert_same(inc, full)


def test_a_new_posting_in_an_old_journal_unbalances_it_like_the_full_recompute(tmp_path: Path) -> None:
    extra = [("p_int_00010_reserve_9", "j_int_00010_reserve", "int_00010", "t_alpha", "t_alpha:fees", "EUR", 5,
              ts(START + timedelta(days=31)), "svc_core", "int_00010:reserve")]
    result, inc, full = history_then(tmp_path, lambda url: add_sqlite(url, extra))
    assert "path_incremental" in result.seconds
    assert_same(inc, full)


def test_changed_accounts_take_the_full_path(tmp_path: Path) -> None:
    def change(url: str) -> None:
        add_sqlite(url, journal("n1", ts(START + timedelta(days=30))),
                   "INSERT INTO accounts VALUES ('t_alpha:customer:0099', 't_alpha', 'customer', 0)")

    result, inc, full = history_then(tmp_path, change)
    assert "path_full" in result.seconds
    assert_same(inc, full)


def rerun_writes_nothing(con: duckdb.DuckDBPyConnection, url: str) -> LedgerResult:
    """Run the stage again with nothing new: the unchanged path, no table written (same
    oids), the same rows; its result."""
    before = tables(con)
    oids = con.sql("SELECT table_name, table_oid FROM duckdb_tables() ORDER BY 1").fetchall()
    again = run_ledger(con, url)
    assert "path_unchanged" in again.seconds and again.new == 0
    assert con.sql("SELECT table_name, table_oid FROM duckdb_tables() ORDER BY 1").fetchall() == oids
    after = tables(con)
    for name in LEDGER_TABLES:
        assert_frame_equal(before[name], after[name])
    return again


def test_a_rerun_with_nothing_new_rewrites_nothing(tmp_path: Path) -> None:
    accounts, postings = make_ledger()
    url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    with Warehouse(tmp_path / "inc").connect() as con:
        run_ledger(con, url)
        again = rerun_writes_nothing(con, url)
        full = run_ledger(con, url, incremental=False)  # the same counts, recomputed
        assert again.summary().split("; validated")[1] == full.summary().split("; validated")[1]


def test_a_rerun_after_an_in_place_update_rewrites_nothing(tmp_path: Path) -> None:
    """After an incremental run the entries are not in entry order in the table (each
    tenant's rechained tail was added after the kept rows); the next run with nothing new
    still shows them unchanged from their digest alone and writes no table."""
    accounts, postings = make_ledger()
    url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    with Warehouse(tmp_path / "inc").connect() as con:
        run_ledger(con, url)
        add_sqlite(url, journal("n1", ts(START + timedelta(days=30))))
        assert "path_incremental" in run_ledger(con, url).seconds
        in_table_order = con.sql("SELECT tenant_id, entry_seq FROM ledger_entries").pl()
        assert not in_table_order.equals(in_table_order.sort("tenant_id", "entry_seq"))
        rerun_writes_nothing(con, url)


def test_an_edited_published_entry_is_repaired_by_the_full_recompute(tmp_path: Path) -> None:
    """The incremental path builds on the published entries; if one was edited since,
    the audit refuses that result and the full recompute from the archive publishes."""
    accounts, postings = make_ledger()
    url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    with Warehouse(tmp_path / "inc").connect() as con:
        run_ledger(con, url)
    shutil.copytree(tmp_path / "inc", tmp_path / "full")
    add_sqlite(url, journal("n1", ts(START + timedelta(days=30))))
    with Warehouse(tmp_path / "inc").connect() as con:
        con.execute("UPDATE ledger_entries SET amount_minor = amount_minor + 1 WHERE posting_id = 'p_int_00003_reserve_2'")
        result = run_ledger(con, url)
        inc = tables(con)
    with Warehouse(tmp_path / "full").connect() as con:
        run_ledger(con, url, incremental=False)
        full = tables(con)
    assert "path_full" in result.seconds
    assert_same(inc, full)


def test_the_scoped_audit_passes_what_the_full_audit_passes_and_catches_an_edited_tail(tmp_path: Path) -> None:
    accounts, postings = make_ledger()
    url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    with Warehouse(tmp_path / "inc").connect() as con:
        run_ledger(con, url)
        frames = tables(con)
    entries = frames["ledger_entries"].with_columns(pl.col("posted_at").dt.replace_time_zone("UTC"))
    tail = entries.filter(pl.col("entry_seq") > 20)
    seeds = chain_seeds(entries.filter(pl.col("entry_seq") <= 20))
    scope = AuditScope(tail=tail, seeds=seeds, journals=tail.select("tenant_id", "journal_id").unique())
    staged = {**frames, "ledger_entries": entries}
    watermark = frames["ledger_watermark"].row(0, named=True)
    received, accepted = watermark["archived_rows"], watermark["accepted_rows"]
    quarantined = frames["ledger_postings_quarantine"].height
    audit = ledger_audit(received, received - accepted - quarantined, scope)
    assert audit(staged) == [] == ledger_audit(received, received - accepted - quarantined)(staged)
    edited = tail.with_columns(amount_minor=pl.when(pl.col("entry_seq") == 21).then(7).otherwise(pl.col("amount_minor")))
    bad = AuditScope(tail=edited, seeds=seeds, journals=scope.journals)
    found = ledger_audit(received, received - accepted - quarantined, bad)({**staged, "ledger_entries": pl.concat(
        [entries.filter(pl.col("entry_seq") <= 20), edited]).sort("tenant_id", maintain_order=True)})
    assert any("entry_hash does not match" in v for v in found)
    assert any(v.startswith("journal_balance") for v in found)


def test_an_edited_published_table_is_audited_whole(tmp_path: Path) -> None:
    accounts, postings = make_ledger()
    url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    with Warehouse(tmp_path / "inc").connect() as con:
        run_ledger(con, url)
        digest = con.sql(f'SELECT * FROM "{DIGEST}"').pl()
        entries = con.sql("SELECT * FROM ledger_entries").pl()
        assert_frame_equal(digest, entries_digest(entries))
        con.execute("UPDATE ledger_entries SET actor_id = 'svc_other' WHERE entry_seq = 3")
        edited = con.sql("SELECT * FROM ledger_entries").pl()
        assert not entries_digest(edited).equals(digest)


def test_a_reread_spelled_differently_collapses_and_counts_like_the_full_recompute(tmp_path: Path) -> None:
    """posted_at stored as TEXT: a re-read that spells the timestamp differently is a new
    archived row that validation collapses into the posting (collapsed counts it)."""
    accounts, postings = make_ledger()
    path = tmp_path / "source.sqlite"
    con = sqlite3.connect(path)
    with con:
        con.execute(POSTINGS_DDL.format(amount="BIGINT", ts="TEXT"))
        con.execute(ACCOUNTS_DDL)
        con.executemany("INSERT INTO accounts VALUES (?,?,?,?)", accounts)
        con.executemany("INSERT INTO ledger_postings VALUES (?,?,?,?,?,?,?,?,?,?)", postings)
    con.close()
    url = f"sqlite:///{path}"
    with Warehouse(tmp_path / "inc").connect() as con:
        run_ledger(con, url)
    shutil.copytree(tmp_path / "inc", tmp_path / "full")
    newest = "(SELECT posting_id FROM ledger_postings ORDER BY posted_at DESC, posting_id LIMIT 1)"
    add_sqlite(url, [], f"UPDATE ledger_postings SET posted_at = posted_at || 'Z' WHERE posting_id = {newest}")
    add_sqlite(url, journal("n1", ts(START + timedelta(days=30))))
    with Warehouse(tmp_path / "inc").connect() as con:
        result = run_ledger(con, url)
        inc = tables(con)
    with Warehouse(tmp_path / "full").connect() as con:
        full_result = run_ledger(con, url, incremental=False)
        full = tables(con)
    assert "path_incremental" in result.seconds
    assert result.collapsed == full_result.collapsed == 1
    assert_same(inc, full)


def test_amounts_that_could_overflow_a_balance_take_the_full_path(tmp_path: Path) -> None:
    huge = 9_000_000_000_000_000_000
    at = ts(START + timedelta(days=30))
    rows = journal("big1", at, amount=huge) + journal("big2", at, amount=huge)
    result, inc, full = history_then(tmp_path, lambda url: add_sqlite(url, rows))
    assert "path_full" in result.seconds
    assert inc["ledger_postings_quarantine"].height >= 2
    assert_same(inc, full)


def test_tables_published_by_other_code_take_the_full_path(tmp_path: Path) -> None:
    """Other code may validate or chain differently: its tables are never the basis."""
    accounts, postings = make_ledger()
    url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    with Warehouse(tmp_path / "inc").connect() as con:
        run_ledger(con, url)
        con.execute("UPDATE ledger_entries_digest SET code = 'another version'")
    add_sqlite(url, journal("n1", ts(START + timedelta(days=30))))
    with Warehouse(tmp_path / "inc").connect() as con:
        result = run_ledger(con, url)
        assert con.sql("SELECT code FROM ledger_entries_digest").fetchall() == [(code_version(),)]
    assert "path_full" in result.seconds
