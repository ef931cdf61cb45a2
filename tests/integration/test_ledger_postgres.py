"""The same ledger read from PostgreSQL gives the same ledger as from SQLite.

Needs a server: set ZENTRA_TEST_PG_URL (e.g. postgresql://zentra:zentra@127.0.0.1:5432/zentra_test;
``.ci/run`` starts one). The test owns the ``ledger_postings`` and ``accounts`` tables there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from polars.testing import assert_frame_equal
from test_ledger_stage import (  # shared fixture: same rows for both databases
    ACCOUNTS_DDL,
    POSTINGS_DDL,
    START,
    expected_balances,
    make_ledger,
    tables,
    ts,
    write_sqlite,
)

from zentra_pipelines.adapters import ledger_source
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import errors
from zentra_pipelines.ledger_stage import LEDGER_TABLES, run_ledger

PG_URL = os.environ.get("ZENTRA_TEST_PG_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="set ZENTRA_TEST_PG_URL to run the PostgreSQL ledger test"),
]


def _engine() -> sa.Engine:
    url = sa.make_url(PG_URL)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def load_postgres(accounts: list[tuple], postings: list[tuple], *, ts_type: str = "TIMESTAMP") -> None:
    engine = _engine()
    with engine.begin() as con:
        con.exec_driver_sql("DROP TABLE IF EXISTS ledger_postings")
        con.exec_driver_sql("DROP TABLE IF EXISTS accounts")
        con.exec_driver_sql(POSTINGS_DDL.format(amount="BIGINT", ts=ts_type))
        con.exec_driver_sql(ACCOUNTS_DDL)
        con.execute(
            sa.text("INSERT INTO accounts VALUES (:a, :t, :ty, :n)"),
            [dict(zip(("a", "t", "ty", "n"), row)) for row in accounts],
        )
        keys = ("p", "j", "i", "t", "a", "c", "m", "at", "ac", "k")
        con.execute(
            # explicit UTC offset: a timestamptz column must not depend on the session zone
            sa.text(f"INSERT INTO ledger_postings VALUES (:p, :j, :i, :t, :a, :c, :m, CAST(:at AS {ts_type}), :ac, :k)"),
            [dict(zip(keys, row[:7] + (row[7] + "+00:00",) + row[8:])) for row in postings],
        )
    engine.dispose()


@pytest.fixture
def pg_session_tz() -> Iterator[None]:
    """A non-UTC server time zone for the session must not shift timestamptz values."""
    engine = _engine()
    with engine.begin() as con:
        db = con.exec_driver_sql("SELECT current_database()").scalar_one()
        con.exec_driver_sql(f'ALTER DATABASE "{db}" SET timezone TO \'Asia/Kolkata\'')
    try:
        yield
    finally:
        with engine.begin() as con:
            con.exec_driver_sql(f'ALTER DATABASE "{db}" RESET timezone')
        engine.dispose()


def test_postgres_and_sqlite_give_identical_ledgers(tmp_path: Path) -> None:
    accounts, postings = make_ledger()
    sqlite_url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    load_postgres(accounts, postings)
    with Warehouse(tmp_path / "sqlite_home").connect() as con:
        lite = run_ledger(con, sqlite_url)
        lite_tables = tables(con)
    with Warehouse(tmp_path / "pg_home").connect() as con:
        pg = run_ledger(con, PG_URL)
        pg_tables = tables(con)
    assert pg.accepted == lite.accepted == len(postings)
    assert_frame_equal(pg_tables["ledger_balances"], expected_balances(postings))
    for name in LEDGER_TABLES:
        if name != "ledger_watermark":  # it names its source
            assert_frame_equal(pg_tables[name], lite_tables[name])


def test_postgres_fast_and_fallback_paths_agree() -> None:
    accounts, postings = make_ledger(intents=30)
    load_postgres(accounts, postings)
    since = START + timedelta(days=1)
    for when in (None, since):
        fast = ledger_source.read_postings(PG_URL, when, timedelta(hours=2))
        slow = ledger_source.read_postings(PG_URL, when, timedelta(hours=2), prefer_arrow=False)
        assert_frame_equal(fast.sort("posting_id"), slow.sort("posting_id"))
    assert ledger_source.read_accounts(PG_URL)["allow_negative"].dtype == pl.Boolean


def test_postgres_incremental_read_and_injection_shaped_ids(tmp_path: Path) -> None:
    accounts, postings = make_ledger(intents=30)
    load_postgres(accounts, postings)
    with Warehouse(tmp_path / "home").connect() as con:
        first = run_ledger(con, PG_URL)
        late = ts(START + timedelta(days=20))
        engine = _engine()
        with engine.begin() as pg:
            pg.execute(
                sa.text("INSERT INTO ledger_postings VALUES (:p, 'j_e', 'int_e', 't_alpha', :a, 'EUR', :m, CAST(:at AS TIMESTAMP), 'svc_core', 'int_e:r')"),
                [
                    {"p": "x'; DROP TABLE accounts; --", "a": "t_alpha:customer:0001", "m": -3, "at": late},
                    {"p": "p_e_2", "a": "t_alpha:reserved", "m": 3, "at": late},
                ],
            )
        second = run_ledger(con, PG_URL)
        assert second.new == 2 and second.read < first.read
        q = dict(con.sql("SELECT posting_id, error_code FROM ledger_postings_quarantine").fetchall())
        assert q == {"x'; DROP TABLE accounts; --": errors.INVALID_IDENTIFIER, "p_e_2": errors.JOURNAL_UNBALANCED}
        with engine.connect() as pg:
            assert pg.exec_driver_sql("SELECT count(*) FROM accounts").scalar_one() == len(accounts)
        engine.dispose()


def test_timestamptz_columns_are_read_in_utc_whatever_the_session_zone(tmp_path: Path, pg_session_tz: None) -> None:
    accounts, postings = make_ledger(intents=20)
    sqlite_url = write_sqlite(tmp_path / "source.sqlite", accounts, postings)
    load_postgres(accounts, postings, ts_type="TIMESTAMPTZ")
    fast = ledger_source.read_postings(PG_URL, None)
    lite = ledger_source.read_postings(sqlite_url, None)
    assert_frame_equal(
        fast.select("posting_id", "posted_at").sort("posting_id"), lite.select("posting_id", "posted_at").sort("posting_id")
    )
    since = START + timedelta(days=1)
    window = ledger_source.read_postings(PG_URL, since, timedelta(hours=1))
    assert window["posted_at"].min() >= since - timedelta(hours=1)


def test_postgres_source_preflight_names_what_is_missing() -> None:
    """The CLI's preflight on PostgreSQL: passes on the contract's tables, names a missing one."""
    accounts, postings = make_ledger()
    load_postgres(accounts, postings)
    ledger_source.check_source(PG_URL)
    engine = _engine()
    with engine.begin() as con:
        con.exec_driver_sql("DROP TABLE accounts")
    engine.dispose()
    with pytest.raises(ledger_source.LedgerSourceError, match="has no table accounts"):
        ledger_source.check_source(PG_URL)
