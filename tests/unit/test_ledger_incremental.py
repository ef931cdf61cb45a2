"""Chaining and verifying a chain's tail from seeds gives what one pass over the whole chain gives."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from tests.unit.test_ledger import ACCOUNTS, T, post, raw, reserve
from zentra_pipelines.domain import invariants as inv
from zentra_pipelines.domain import ledger as L


def postings() -> pl.DataFrame:
    beta = [
        post("p_b1", "j_b", "t_beta:funding", -5, tenant_id="t_beta", posted_at_text="2026-11-23 00:00:00"),
        post("p_b2", "j_b", "t_beta:customer:0001", 5, tenant_id="t_beta", posted_at_text="2026-11-23 00:00:00"),
    ]
    rows = [*reserve(1), *reserve(2, at="2026-11-25 00:00:00"), *reserve(3, at="2026-11-26 00:00:00"), *beta]
    accepted, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert quarantine.height == 0
    return accepted


def test_a_seeded_tail_chains_to_the_rows_of_the_whole_chain() -> None:
    whole = L.chain_entries(postings())
    prefix = whole.filter((pl.col("tenant_id") == T) & (pl.col("entry_seq") <= 3))
    tail = whole.join(prefix, on="posting_id", how="anti").select(L.POSTING_COLUMNS)
    chained = L.chain_entries(tail, L.chain_seeds(prefix))
    rebuilt = pl.concat([prefix, chained]).sort("tenant_id", maintain_order=True)
    assert_frame_equal(rebuilt, whole)


def test_no_seeds_and_empty_seeds_chain_from_zeros() -> None:
    whole = L.chain_entries(postings())
    assert_frame_equal(L.chain_entries(postings(), L.chain_seeds(whole.clear())), whole)


def test_a_seeded_tail_verifies_and_a_broken_link_to_its_seed_does_not() -> None:
    whole = L.chain_entries(postings())
    prefix = whole.filter(pl.col("entry_seq") <= 2)
    tail = whole.filter(pl.col("entry_seq") > 2)
    seeds = L.chain_seeds(prefix)
    assert L.verify_chain(tail, seeds=seeds) == []
    wrong = seeds.with_columns(entry_hash=pl.lit("f" * 64))
    assert any("prev_hash" in v for v in L.verify_chain(tail, seeds=wrong))
    skipped = seeds.with_columns(entry_seq=pl.col("entry_seq") - 1)
    assert any("entry_seq" in v for v in L.verify_chain(tail, seeds=skipped))


def test_a_tail_that_sorts_before_its_seed_is_out_of_order() -> None:
    whole = L.chain_entries(postings())
    alpha = whole.filter(pl.col("tenant_id") == T)
    seed = L.chain_seeds(alpha.filter(pl.col("entry_seq") == 6)).with_columns(entry_seq=pl.lit(2, pl.Int64))
    # the entries 3.. re-chained after the last one: linked and sequenced, but earlier in entry order
    rechained = L.chain_entries(alpha.filter(pl.col("entry_seq") >= 3).select(L.POSTING_COLUMNS), seed)
    violations = L.verify_chain(rechained, seeds=seed)
    assert violations and all("order" in v for v in violations)


def test_uniqueness_with_added_rows_finds_a_repeat_inside_them_or_against_the_rest() -> None:
    frame = pl.DataFrame({"posting_id": ["a", "b", "c", "d", None]})
    assert inv.unique_values_with(frame, frame.slice(2), ("posting_id",)) == []
    against = pl.concat([frame, pl.DataFrame({"posting_id": ["a"]})])
    assert inv.unique_values_with(against, against.slice(5), ("posting_id",)) == inv.unique_values(against, ("posting_id",)) != []
    inside = pl.concat([frame, pl.DataFrame({"posting_id": ["e", "e"]})])
    assert inv.unique_values_with(inside, inside.slice(5), ("posting_id",)) == inv.unique_values(inside, ("posting_id",)) != []
