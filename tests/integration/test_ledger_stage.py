"""The ledger stage end to end: a real SQLite source file and a real DuckDB warehouse.

The fixture helpers here are shared with ``test_ledger_postgres.py``.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from zentra_pipelines.adapters import ledger_source
from zentra_pipelines.adapters.warehouse import IntegrityError, Warehouse
from zentra_pipelines.domain import errors
from zentra_pipelines.ledger_stage import LEDGER_TABLES, run_ledger

UTC = timezone.utc
START = datetime(2026, 11, 20, tzinfo=UTC)
TENANTS = {"t_alpha": "EUR", "t_beta": "USD", "t_gamma": "JPY"}

POSTINGS_DDL = (
    "CREATE TABLE ledger_postings (posting_id TEXT PRIMARY KEY, journal_id TEXT, intent_id TEXT, tenant_id TEXT, "
    "account_id TEXT, currency TEXT, amount_minor {amount}, posted_at {ts}, actor_id TEXT, idempotency_key TEXT)"
)
ACCOUNTS_DDL = "CREATE TABLE accounts (account_id TEXT PRIMARY KEY, tenant_id TEXT, type TEXT, allow_negative BOOLEAN)"

Posting = tuple[str, str, str, str, str, str, int, str, str, str]


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def make_ledger(seed: int = 7, intents: int = 120) -> tuple[list[tuple], list[Posting]]:
    """A realistic little ledger, as the design's journal table describes it."""
    rng = random.Random(seed)
    accounts: list[tuple] = []
    postings: list[Posting] = []

    def journal(t: str, iid: str, step: str, cur: str, at: datetime, legs: list[tuple[str, int]]) -> None:
        jid = f"j_{iid}_{step}"
        for k, (acct, amount) in enumerate(legs, 1):
            postings.append((f"p_{iid}_{step}_{k}", jid, iid, t, acct, cur, amount, ts(at), "svc_core", f"{iid}:{step}"))

    for t, cur in TENANTS.items():
        accounts += [
            (f"{t}:funding", t, "funding", True), (f"{t}:reserved", t, "reserved", False),
            (f"{t}:settlement", t, "settlement", False), (f"{t}:fees", t, "fees", False),
            (f"{t}:merchant:001", t, "merchant", False),
        ]
        for c in range(1, 6):
            acct = f"{t}:customer:{c:04d}"
            accounts.append((acct, t, "customer", False))
            journal(t, f"open_{acct}", "open", cur, START, [(f"{t}:funding", -10_000_000), (acct, 10_000_000)])
    for n in range(intents):
        t = rng.choice(list(TENANTS))
        cur = TENANTS[t]
        iid = f"int_{n:05d}"
        amount = rng.randrange(100, 500_000)
        at = START + timedelta(hours=1 + n, seconds=rng.randrange(3600))
        customer = f"{t}:customer:{rng.randrange(1, 6):04d}"
        journal(t, iid, "reserve", cur, at, [(customer, -amount), (f"{t}:reserved", amount)])
        fate = rng.random()
        if fate < 0.6:
            journal(t, iid, "capture", cur, at + timedelta(hours=2), [(f"{t}:reserved", -amount), (f"{t}:settlement", amount)])
            if rng.random() < 0.7:
                fee = amount // 100
                journal(t, iid, "settle", cur, at + timedelta(days=1), [
                    (f"{t}:settlement", -amount), (f"{t}:merchant:001", amount - fee), (f"{t}:fees", fee),
                ])
        elif fate < 0.8:
            journal(t, iid, "release", cur, at + timedelta(hours=3), [(f"{t}:reserved", -amount), (customer, amount)])
    return accounts, postings


def expected_balances(postings: list[Posting]) -> pl.DataFrame:
    """Plain Python: no shared code with the module under test."""
    sums: dict[tuple[str, str, str], int] = {}
    for _, _, _, tenant, account, currency, amount, *_ in postings:
        sums[(tenant, account, currency)] = sums.get((tenant, account, currency), 0) + amount
    rows = sorted((t, a, c, b) for (t, a, c), b in sums.items())
    return pl.DataFrame(
        rows, schema={"tenant_id": pl.String, "account_id": pl.String, "currency": pl.String, "balance_minor": pl.Int64},
        orient="row",
    )


def write_sqlite(path: Path, accounts: list[tuple], postings: list[tuple], *, amount_type: str = "BIGINT") -> str:
    con = sqlite3.connect(path)
    with con:
        con.execute(POSTINGS_DDL.format(amount=amount_type, ts="TIMESTAMP"))
        con.execute(ACCOUNTS_DDL)
        con.executemany("INSERT INTO accounts VALUES (?,?,?,?)", accounts)
        con.executemany("INSERT INTO ledger_postings VALUES (?,?,?,?,?,?,?,?,?,?)", postings)
    con.close()
    return f"sqlite:///{path}"


def add_sqlite(url: str, postings: list[tuple], sql: str | None = None, params: tuple = ()) -> None:
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    with con:
        if postings:
            con.executemany("INSERT INTO ledger_postings VALUES (?,?,?,?,?,?,?,?,?,?)", postings)
        if sql:
            con.execute(sql, params)
    con.close()


def exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    query = "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t"
    return con.sql(query, params={"t": table}).fetchall() == [(1,)]


def tables(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    return {t: con.sql(f'SELECT * FROM "{t}"').pl() for t in LEDGER_TABLES}


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with Warehouse(tmp_path / "home").connect() as con:
        yield con


@pytest.fixture
def ledger_data() -> tuple[list[tuple], list[Posting]]:
    return make_ledger()


@pytest.fixture
def source(tmp_path: Path, ledger_data: tuple[list[tuple], list[Posting]]) -> str:
    accounts, postings = ledger_data
    return write_sqlite(tmp_path / "source.sqlite", accounts, postings)


# ------------------------------------------------------------------------- tests ---


def test_balances_equal_a_plain_python_recomputation(
    warehouse: duckdb.DuckDBPyConnection, source: str, ledger_data: tuple[list[tuple], list[Posting]]
) -> None:
    result = run_ledger(warehouse, source)
    _, postings = ledger_data
    assert result.accepted == len(postings) and result.quarantined == 0
    assert_frame_equal(warehouse.sql("SELECT * FROM ledger_balances").pl(), expected_balances(postings))
    assert result.read_engine == "connectorx"


def test_published_tables_have_the_documented_types(warehouse: duckdb.DuckDBPyConnection, source: str) -> None:
    run_ledger(warehouse, source)
    got = tables(warehouse)
    assert got["ledger_balances"].schema == pl.Schema(
        {"tenant_id": pl.String, "account_id": pl.String, "currency": pl.String, "balance_minor": pl.Int64}
    )
    # the warehouse convention: TIMESTAMP holding UTC, no zone attached
    assert got["ledger_entries"]["posted_at"].dtype == pl.Datetime("us")
    assert got["daily_balances"]["day"].dtype == pl.Date


def test_the_fast_and_the_fallback_read_paths_agree(source: str) -> None:
    since = START + timedelta(days=2)
    for when in (None, since):
        fast = ledger_source.read_postings(source, when, timedelta(hours=1), prefer_arrow=True)
        slow = ledger_source.read_postings(source, when, timedelta(hours=1), prefer_arrow=False)
        assert_frame_equal(fast.sort("posting_id"), slow.sort("posting_id"))
    assert_frame_equal(ledger_source.read_accounts(source), ledger_source.read_accounts(source, prefer_arrow=False))


@pytest.mark.parametrize("prefer_arrow", [True, False])
def test_every_storage_class_is_read_as_its_exact_text(tmp_path: Path, prefer_arrow: bool) -> None:
    """Blobs as x'HEX' (found by ``col >= x''``), NULL as NULL, numbers and text as SQLite spells them."""
    accounts, _ = make_ledger(intents=1)
    at = ts(START)
    rows = [
        ("p_blob", b"\x00\xab", "i", "t_alpha", b"", "EUR", b"\x01\x02", at, "a", "k"),
        ("p_real", "j", "i", "t_alpha", "acct", "EUR", 1250.0, at, None, "k"),
        ("p_text", "j", "i", "t_alpha", "acct", "EUR", "125000", at, "", "k"),
        ("p_int", "j", "i", "t_alpha", "acct", "EUR", -3, at, 7, "k"),
    ]
    url = write_sqlite(tmp_path / "classes.sqlite", accounts, rows, amount_type="")
    got = ledger_source.read_postings_snapshot(url, None, prefer_arrow=prefer_arrow)[0].sort("posting_id")
    cols = ["posting_id", "journal_id", "account_id", "amount_minor", "amount_type", "actor_id"]
    assert got.select(cols).rows() == [
        ("p_blob", "x'00AB'", "x''", "x'0102'", "blob", "a"),
        ("p_int", "j", "acct", "-3", "integer", "7"),
        ("p_real", "j", "acct", "1250.0", "real", None),
        ("p_text", "j", "acct", "125000", "text", ""),
    ]


def test_a_rerun_adds_nothing_and_changes_nothing(warehouse: duckdb.DuckDBPyConnection, source: str) -> None:
    first = run_ledger(warehouse, source)
    before = tables(warehouse)
    second = run_ledger(warehouse, source)
    assert second.new == 0 and second.read > 0 and second.reread_collapsed == second.read
    assert second.since_applied is not None
    assert second.received == first.received
    after = tables(warehouse)
    for name in LEDGER_TABLES:
        assert_frame_equal(before[name], after[name])


def test_a_new_posting_is_picked_up_incrementally(warehouse: duckdb.DuckDBPyConnection, source: str) -> None:
    first = run_ledger(warehouse, source)
    late = START + timedelta(days=30)
    add_sqlite(source, [
        ("p_int_late_reserve_1", "j_int_late_reserve", "int_late", "t_alpha", "t_alpha:customer:0001", "EUR", -777, ts(late), "svc_core", "int_late:reserve"),
        ("p_int_late_reserve_2", "j_int_late_reserve", "int_late", "t_alpha", "t_alpha:reserved", "EUR", 777, ts(late), "svc_core", "int_late:reserve"),
    ])
    second = run_ledger(warehouse, source)
    assert second.new == 2
    assert second.read < first.read  # only the overlap window was read again
    assert second.accepted == first.accepted + 2
    assert second.watermark_after == late
    balances = warehouse.sql("SELECT * FROM ledger_balances WHERE account_id = 't_alpha:reserved'").pl()
    before = warehouse.sql("SELECT count(*) FROM ledger_entries WHERE posting_id LIKE 'p_int_late%'").fetchall()
    assert before == [(2,)] and balances.height == 1


def test_every_path_counts_a_journal_written_twice_under_one_key(
    warehouse: duckdb.DuckDBPyConnection, source: str
) -> None:
    assert run_ledger(warehouse, source).duplicate_journals == 0
    late = START + timedelta(days=30)
    for journal in ("j_dup_a", "j_dup_b"):  # the core wrote one reserve twice
        add_sqlite(source, [
            (f"p_{journal}_1", journal, "int_dup", "t_alpha", "t_alpha:customer:0001", "EUR", -500, ts(late), "svc_core", "int_dup:reserve"),
            (f"p_{journal}_2", journal, "int_dup", "t_alpha", "t_alpha:reserved", "EUR", 500, ts(late), "svc_core", "int_dup:reserve"),
        ])
    incremental = run_ledger(warehouse, source)
    unchanged = run_ledger(warehouse, source)
    full = run_ledger(warehouse, source, incremental=False)
    assert (incremental.seconds.get("path_incremental"), unchanged.seconds.get("path_unchanged")) == (1.0, 1.0)
    assert incremental.duplicate_journals == unchanged.duplicate_journals == full.duplicate_journals == 1


def test_a_changed_reread_quarantines_every_copy(warehouse: duckdb.DuckDBPyConnection, source: str) -> None:
    run_ledger(warehouse, source)
    last = warehouse.sql("SELECT posting_id, journal_id FROM ledger_entries ORDER BY posted_at DESC, posting_id LIMIT 1").fetchall()[0]
    add_sqlite(source, [], "UPDATE ledger_postings SET amount_minor = amount_minor + 1 WHERE posting_id = ?", (last[0],))
    result = run_ledger(warehouse, source)
    quarantine = warehouse.sql("SELECT posting_id, journal_id, error_code FROM ledger_postings_quarantine").pl()
    assert quarantine.filter(pl.col("posting_id") == last[0])["error_code"].to_list() == [errors.POSTING_CONFLICT] * 2
    assert set(quarantine.filter(pl.col("posting_id") != last[0])["error_code"]) == {errors.JOURNAL_UNBALANCED}
    assert result.quarantined_by_code[errors.POSTING_CONFLICT] == 2


def test_rows_added_to_a_non_empty_archive_validate_like_the_archive_read_back(
    warehouse: duckdb.DuckDBPyConnection, source: str
) -> None:
    """A run that appends validates earlier rows + its own from memory; the next run
    (nothing new) reads every row back from the warehouse: the same tables."""
    run_ledger(warehouse, source)
    last = warehouse.sql("SELECT posting_id FROM ledger_entries ORDER BY posted_at DESC, posting_id LIMIT 1").fetchall()[0]
    add_sqlite(source, [], "UPDATE ledger_postings SET amount_minor = amount_minor + 1 WHERE posting_id = ?", (last[0],))
    appended = run_ledger(warehouse, source)
    before = tables(warehouse)
    again = run_ledger(warehouse, source)
    assert appended.new == 1 and again.new == 0 and again.received == appended.received
    after = tables(warehouse)
    for name in LEDGER_TABLES:
        assert_frame_equal(before[name], after[name])


def test_a_failing_audit_leaves_the_published_tables_unchanged(warehouse: duckdb.DuckDBPyConnection, source: str) -> None:
    run_ledger(warehouse, source)
    before = tables(warehouse)
    later = START + timedelta(days=40)
    add_sqlite(source, [
        ("p_x_1", "j_x", "int_x", "t_beta", "t_beta:funding", "USD", -5, ts(later), "svc_core", "int_x:open"),
        ("p_x_2", "j_x", "int_x", "t_beta", "t_beta:customer:0001", "USD", 5, ts(later), "svc_core", "int_x:open"),
    ])
    with pytest.raises(IntegrityError, match="forced violation"):
        run_ledger(warehouse, source, extra_audit=lambda frames: ["forced violation"] if frames["ledger_entries"].height else [])
    after = tables(warehouse)
    for name in LEDGER_TABLES:
        assert_frame_equal(before[name], after[name])
    # the raw rows were archived as read; the next healthy run publishes them
    assert run_ledger(warehouse, source).new == 0
    assert warehouse.sql("SELECT count(*) FROM ledger_entries WHERE journal_id = 'j_x'").fetchall() == [(2,)]


def test_an_empty_source_is_refused(warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    url = write_sqlite(tmp_path / "empty.sqlite", [], [])
    with pytest.raises(IntegrityError, match="unexpectedly empty"):
        run_ledger(warehouse, url)
    assert not exists(warehouse, "ledger_entries")


def test_an_empty_source_after_a_good_run_keeps_the_ledger(
    warehouse: duckdb.DuckDBPyConnection, source: str, tmp_path: Path
) -> None:
    run_ledger(warehouse, source)
    before = tables(warehouse)
    add_sqlite(source, [], "DELETE FROM ledger_postings")
    run_ledger(warehouse, source)  # the archive still holds every row ever read: nothing vanishes
    for name in ("ledger_entries", "ledger_balances", "daily_balances"):
        assert_frame_equal(before[name], tables(warehouse)[name])


def test_hostile_amounts_are_quarantined_not_coerced(warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    accounts, postings = make_ledger(intents=20)
    at = ts(START + timedelta(days=3))
    hostile = [
        # an untyped column keeps what was written: SQLite's BIGINT affinity would turn
        # '125000' and 1250.0 into integers before anyone could read them
        ("p_h1_1", "j_h1", "int_h1", "t_alpha", "t_alpha:customer:0001", "EUR", 1250.0, at, "svc_core", "int_h1:reserve"),
        ("p_h1_2", "j_h1", "int_h1", "t_alpha", "t_alpha:reserved", "EUR", 1250, at, "svc_core", "int_h1:reserve"),
        ("p_h2_1", "j_h2", "int_h2", "t_alpha", "t_alpha:customer:0001", "EUR", "125000", at, "svc_core", "int_h2:reserve"),
        ("p_h2_2", "j_h2", "int_h2", "t_alpha", "t_alpha:reserved", "EUR", -125000, at, "svc_core", "int_h2:reserve"),
        ("p_h3_1", "j_h3", "int_h3", "t_alpha", "t_alpha:reserved", "EUR", b"\x00\x01", at, "svc_core", "int_h3:reserve"),
        ("p_h4_1", "j_h4", "int_h4", "t_alpha", "t_alpha:reserved", "EUR", None, at, "svc_core", "int_h4:reserve"),
    ]
    url = write_sqlite(tmp_path / "hostile.sqlite", accounts, postings + hostile, amount_type="")
    result = run_ledger(warehouse, url)
    q = dict(warehouse.sql("SELECT posting_id, error_code FROM ledger_postings_quarantine").fetchall())
    assert q == {
        "p_h1_1": errors.AMOUNT_FLOAT, "p_h1_2": errors.JOURNAL_UNBALANCED,
        "p_h2_1": errors.AMOUNT_STRING, "p_h2_2": errors.JOURNAL_UNBALANCED,
        "p_h3_1": errors.AMOUNT_INVALID, "p_h4_1": errors.AMOUNT_MISSING,
    }
    assert result.accepted == len(postings)
    assert_frame_equal(warehouse.sql("SELECT * FROM ledger_balances").pl(), expected_balances(postings))


def test_typed_sqlite_columns_still_refuse_fractional_and_text_amounts(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    accounts, postings = make_ledger(intents=10)
    at = ts(START + timedelta(days=3))
    hostile = [
        ("p_h1_1", "j_h1", "int_h1", "t_alpha", "t_alpha:customer:0001", "EUR", 12.5, at, "svc_core", "int_h1:reserve"),
        ("p_h2_1", "j_h2", "int_h2", "t_alpha", "t_alpha:customer:0001", "EUR", "12x", at, "svc_core", "int_h2:reserve"),
    ]
    url = write_sqlite(tmp_path / "typed.sqlite", accounts, postings + hostile)
    run_ledger(warehouse, url)
    q = dict(warehouse.sql("SELECT posting_id, error_code FROM ledger_postings_quarantine").fetchall())
    assert q == {"p_h1_1": errors.AMOUNT_FLOAT, "p_h2_1": errors.AMOUNT_STRING}


def test_an_injection_shaped_id_is_quarantined_and_every_table_survives(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    accounts, postings = make_ledger(intents=10)
    evil = "x'; DROP TABLE accounts; --"
    at = ts(START + timedelta(days=3))
    hostile = [
        (evil, "j_e", "int_e", "t_alpha", "t_alpha:customer:0001", "EUR", -1, at, "svc_core", "int_e:reserve"),
        ("p_e_2", "j_e", "int_e", "t_alpha", "t_alpha:reserved", "EUR", 1, at, "svc_core", "int_e:reserve"),
        ("p_e_3", "j_e3", evil, "t_alpha", "t_alpha:reserved", "EUR", 0, at, "svc_core", "int_e3:reserve"),
        ("p_e_4", "j_e4", "int_e4", 'x"); DROP TABLE ledger_entries; --', "t_alpha:reserved", "EUR", 0, at, "svc_core", "k4"),
    ]
    url = write_sqlite(tmp_path / "evil.sqlite", accounts, postings + hostile)
    run_ledger(warehouse, url)
    run_ledger(warehouse, url)  # and again, through the incremental path
    q = dict(warehouse.sql("SELECT posting_id, error_code FROM ledger_postings_quarantine").fetchall())
    assert q == {
        evil: errors.INVALID_IDENTIFIER, "p_e_2": errors.JOURNAL_UNBALANCED,
        "p_e_3": errors.INVALID_IDENTIFIER, "p_e_4": errors.INVALID_IDENTIFIER,
    }
    src = sqlite3.connect(tmp_path / "evil.sqlite")
    assert src.execute("SELECT count(*) FROM accounts").fetchone()[0] == len(accounts)
    assert src.execute("SELECT count(*) FROM ledger_postings").fetchone()[0] == len(postings) + len(hostile)
    src.close()
    for name in LEDGER_TABLES:
        assert exists(warehouse, name)
    assert warehouse.sql("SELECT count(*) FROM ledger_entries").fetchall() == [(len(postings),)]


def test_a_missing_source_file_is_a_clear_error(warehouse: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(ledger_source.LedgerSourceError, match="does not exist"):
        run_ledger(warehouse, f"sqlite:///{tmp_path / 'nope.sqlite'}")
    assert not (tmp_path / "nope.sqlite").exists()


def _single_pass_invariants(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The published-ledger check as one pass over the whole entries table (the reference)."""
    from zentra_pipelines.domain import invariants as inv

    entries, balances, daily = (con.sql(f'SELECT * FROM "{t}"').pl() for t in
                                ("ledger_entries", "ledger_balances", "daily_balances"))
    found = (inv.journal_balance(entries) + inv.chain_verifies(entries) + inv.balances_sum_to_zero(balances)
             + inv.balances_match_entries(balances, entries) + inv.closing_is_opening_plus_movements(daily))
    return [str(v) for v in found]


@pytest.mark.parametrize(
    "tamper",
    [
        None,
        "UPDATE ledger_entries SET amount_minor = amount_minor + 1 WHERE posting_id = (SELECT min(posting_id) FROM ledger_entries)",
        "UPDATE ledger_entries SET tenant_id = NULL WHERE posting_id = (SELECT max(posting_id) FROM ledger_entries)",
        "DELETE FROM ledger_entries WHERE tenant_id = 't_beta'",
        "INSERT INTO ledger_balances VALUES ('t_nobody', 't_nobody:funding', 'EUR', 0)",
        "UPDATE ledger_entries SET entry_seq = entry_seq + 1 WHERE tenant_id = 't_gamma'",
        # the chain alone broken (journals and balances still agree): the digest no longer matches
        "UPDATE ledger_entries SET entry_hash = repeat('0', 64) WHERE posting_id = (SELECT min(posting_id) FROM ledger_entries)",
    ],
)
def test_the_published_ledger_check_reads_one_tenant_at_a_time_with_single_pass_messages(
    warehouse: duckdb.DuckDBPyConnection, source: str, tamper: str | None
) -> None:
    from zentra_pipelines import integrity

    run_ledger(warehouse, source)
    if tamper:
        warehouse.execute(tamper)
    got = integrity.ledger_invariants(warehouse)
    assert got == _single_pass_invariants(warehouse)
    assert (got == []) == (tamper is None)


def test_a_published_digest_that_no_longer_matches_makes_the_check_verify_every_chain(
    warehouse: duckdb.DuckDBPyConnection, source: str
) -> None:
    from zentra_pipelines import integrity

    run_ledger(warehouse, source)
    warehouse.execute("UPDATE ledger_entries_digest SET digest = '0'")
    assert integrity.ledger_invariants(warehouse) == _single_pass_invariants(warehouse) == []
    warehouse.execute("UPDATE ledger_entries SET prev_hash = repeat('f', 64) WHERE entry_seq = 2")
    got = integrity.ledger_invariants(warehouse)
    assert got == _single_pass_invariants(warehouse)
    assert got and all(v.startswith("chain_verifies") for v in got)


def test_archive_content_hash_is_the_documented_sql_encoding(warehouse: duckdb.DuckDBPyConnection) -> None:
    """content_sha256 (Polars) and _content_expr (the same encoding in SQL, for operators
    checking the archive in the engine) agree byte for byte, on nulls, non-ASCII text
    and values holding the encoding's own separators."""
    from zentra_pipelines.ledger_stage import _ARCHIVE_COLUMNS, _content_expr, content_sha256

    values = [None, "", "a|b", "3:x", "ünïcödé €", "x" * 3000]
    rows = pl.DataFrame({c: [values[(i + k) % len(values)] for k in range(12)]
                         for i, c in enumerate(_ARCHIVE_COLUMNS)}, schema=dict.fromkeys(_ARCHIVE_COLUMNS, pl.String))
    warehouse.register("_rows", rows)
    expected = warehouse.sql(f"SELECT {_content_expr()} AS content_sha256 FROM _rows").pl().to_series()
    assert content_sha256(rows).to_list() == expected.to_list()


def test_identical_copies_in_one_read_are_archived_once(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path, ledger_data: tuple[list[tuple], list[Posting]]
) -> None:
    """A core that wrote the same postings twice (here three rows, one of them three
    times, at the start, middle and end of the table): each is archived once, in first-copy
    order, and the ledger is the one of the deduplicated rows."""
    accounts, postings = ledger_data
    rows = list(postings)
    doubled = rows[:1] + rows + [rows[len(rows) // 2], rows[0], rows[-1]]
    path = tmp_path / "doubled.sqlite"  # a core table without a key on posting_id
    con = sqlite3.connect(path)
    with con:
        con.execute(POSTINGS_DDL.replace(" PRIMARY KEY", "").format(amount="BIGINT", ts="TIMESTAMP"))
        con.execute(ACCOUNTS_DDL)
        con.executemany("INSERT INTO accounts VALUES (?,?,?,?)", accounts)
        con.executemany("INSERT INTO ledger_postings VALUES (?,?,?,?,?,?,?,?,?,?)", doubled)
    con.close()
    url = f"sqlite:///{path}"
    result = run_ledger(warehouse, url)
    assert (result.read, result.new, result.accepted, result.quarantined) == (len(rows) + 4, len(rows), len(rows), 0)
    archived = warehouse.sql("SELECT posting_id FROM ledger_source_rows").pl()["posting_id"].to_list()
    assert archived == [p[0] for p in rows]
    assert_frame_equal(warehouse.sql("SELECT * FROM ledger_balances").pl(), expected_balances(postings))


def test_the_source_rows_in_any_order_publish_the_same_ledger(
    tmp_path: Path, ledger_data: tuple[list[tuple], list[Posting]]
) -> None:
    """The read order (a plain scan's, or rowid ranges read at once) is not the ledger's."""
    accounts, postings = ledger_data
    published = []
    for name, rows in (("as_written", postings), ("reversed", postings[::-1])):
        url = write_sqlite(tmp_path / f"{name}.sqlite", accounts, rows)
        with Warehouse(tmp_path / name).connect() as con:
            run_ledger(con, url)
            published.append({t: con.sql(f'SELECT * FROM "{t}"').pl() for t in LEDGER_TABLES if t != "ledger_watermark"})
    for table, frame in published[0].items():
        assert_frame_equal(published[1][table], frame)
