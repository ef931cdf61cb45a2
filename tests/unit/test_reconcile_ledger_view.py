"""reconciliation's intent ledger view is rebuilt only for the intents whose entries moved, and
equals ledger.intent_ledger_view over every entry (first run, new entries, changed accounts)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from polars.testing import assert_frame_equal

from zentra_pipelines import reconciliation_stage as stage
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import ledger

ACCOUNTS = pl.DataFrame({
    "account_id": ["t_a:customer", "t_a:reserved", "t_b:customer", "t_b:reserved"],
    "tenant_id": ["t_a", "t_a", "t_b", "t_b"],
    "type": ["customer", "reserved", "customer", "reserved"],
    "allow_negative": [False, False, False, False],
})


def journal(tenant: str, intent: str, journal_id: str, amount: int, minute: int) -> pl.DataFrame:
    return pl.DataFrame({
        "tenant_id": [tenant] * 2, "intent_id": [intent] * 2, "journal_id": [journal_id] * 2,
        "account_id": [f"{tenant}:customer", f"{tenant}:reserved"], "currency": ["EUR"] * 2,
        "amount_minor": [-amount, amount], "posted_at": [datetime(2026, 11, 1, 9, minute)] * 2,
        "idempotency_key": [f"k_{journal_id}"] * 2,
    })


BASE = pl.concat([journal("t_a", "in_1", "j1", 100, 1), journal("t_a", "in_3", "j3", 30, 2),
                  journal("t_b", "in_2", "j2", 70, 3)])
LATER = pl.concat([BASE, journal("t_a", "in_2", "j4", 5, 4), journal("t_a", "in_1", "j5", 1, 5)])


def view_and_publish(con) -> pl.DataFrame:
    view, cache = stage._ledger_view(con)
    if cache is not None:
        Warehouse.publish(con, {stage.LEDGER_VIEW_CACHE: cache}, allow_empty={stage.LEDGER_VIEW_CACHE})
    return view


def full(entries: pl.DataFrame, accounts: pl.DataFrame = ACCOUNTS) -> pl.DataFrame:
    return ledger.intent_ledger_view(entries, accounts)


def test_first_run_is_the_full_view_and_caches_it(tmp_path):
    with Warehouse(tmp_path / "home").connect() as con:
        Warehouse.publish(con, {"ledger_entries": BASE, "ledger_accounts": ACCOUNTS})
        assert_frame_equal(view_and_publish(con), full(BASE))
        assert con.sql(f'SELECT count(*) FROM "{stage.LEDGER_VIEW_CACHE}"').fetchall()[0][0] == 3


def test_new_entries_rebuild_their_intents_only_and_equal_the_full_view(tmp_path, monkeypatch):
    with Warehouse(tmp_path / "home").connect() as con:
        Warehouse.publish(con, {"ledger_entries": BASE, "ledger_accounts": ACCOUNTS})
        view_and_publish(con)
        Warehouse.publish(con, {"ledger_entries": LATER})
        expected = full(LATER)
        seen: list[list[tuple[str, str]]] = []
        original = ledger.intent_ledger_view
        monkeypatch.setattr(stage.ledger_domain, "intent_ledger_view",
                            lambda e, a: seen.append(sorted(set(e.select("tenant_id", "intent_id").rows()))) or original(e, a))
        assert_frame_equal(view_and_publish(con), expected)
        assert seen == [[("t_a", "in_1"), ("t_a", "in_2")]]
        monkeypatch.undo()
        assert_frame_equal(view_and_publish(con), full(LATER))  # nothing new: the cache as is


def test_changed_accounts_rebuild_every_intent(tmp_path):
    with Warehouse(tmp_path / "home").connect() as con:
        Warehouse.publish(con, {"ledger_entries": BASE, "ledger_accounts": ACCOUNTS})
        view_and_publish(con)
        retyped = ACCOUNTS.with_columns(type=pl.when(pl.col("tenant_id") == "t_b").then(pl.lit("settlement"))
                                        .otherwise(pl.col("type")))
        Warehouse.publish(con, {"ledger_accounts": retyped})
        assert_frame_equal(view_and_publish(con), full(BASE, retyped))


def test_a_cache_of_another_shape_is_rebuilt_not_mixed_in(tmp_path):
    """A cache written by code whose view had other columns (before ledger_fee_minor)
    is not combined with new rows: the full view is built once."""
    with Warehouse(tmp_path / "home").connect() as con:
        Warehouse.publish(con, {"ledger_entries": BASE, "ledger_accounts": ACCOUNTS})
        view_and_publish(con)
        older = Warehouse.read(con, stage.LEDGER_VIEW_CACHE).drop("ledger_fee_minor")
        Warehouse.publish(con, {stage.LEDGER_VIEW_CACHE: older, "ledger_entries": LATER})
        assert_frame_equal(view_and_publish(con), full(LATER))
