"""packet_inputs.unbalanced_journal_sums (sql/select_unbalanced_journals.sql): the one
definition of "a journal that does not sum to zero", read once per packet run for the day
checks and the packet input fingerprints."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from zentra_pipelines import packet_inputs

INT64_MAX = 2**63 - 1


@pytest.fixture
def con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("CREATE TABLE ledger_entries (journal_id VARCHAR, currency VARCHAR, amount_minor BIGINT)")
    yield con
    con.close()


def unbalanced(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return packet_inputs.unbalanced_journal_sums(con).sort("journal_id", "currency")


def test_no_ledger_means_no_unbalanced_journal(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    try:
        assert_frame_equal(unbalanced(con), pl.DataFrame(schema=packet_inputs.JOURNAL_SUMS_SCHEMA))
    finally:
        con.close()


def test_balanced_journals_are_not_listed(con) -> None:
    con.execute("INSERT INTO ledger_entries VALUES ('j1', 'EUR', -125000), ('j1', 'EUR', 125000)")
    assert unbalanced(con).height == 0


def test_a_journal_is_judged_per_currency(con) -> None:
    # sums to zero over both currencies together, not per currency
    con.execute("INSERT INTO ledger_entries VALUES ('j1', 'EUR', -500), ('j1', 'USD', 500), "
                "('j2', 'EUR', -1), ('j2', 'EUR', 1)")
    got = unbalanced(con)
    assert got["journal_id"].to_list() == ["j1", "j1"]
    assert got["currency"].to_list() == ["EUR", "USD"]
    assert got["total"].to_list() == [-500, 500]


def test_sums_beyond_int64_are_exact(con) -> None:
    # two INT64_MAX entries sum past 64 bits: the total must not wrap to a negative number
    con.execute("INSERT INTO ledger_entries VALUES ('j1', 'EUR', $m), ('j1', 'EUR', $m)", {"m": INT64_MAX})
    got = unbalanced(con)
    assert got["total"].to_list() == [2 * INT64_MAX]


def test_entries_of_one_journal_on_different_rows_are_summed_together(con) -> None:
    con.execute("INSERT INTO ledger_entries VALUES ('j1', 'EUR', -300), ('j2', 'EUR', 5), ('j1', 'EUR', 200)")
    expected = pl.DataFrame({"journal_id": ["j1", "j2"], "currency": ["EUR", "EUR"], "total": [-100, 5]})
    assert_frame_equal(unbalanced(con), expected.cast(packet_inputs.JOURNAL_SUMS_SCHEMA))
