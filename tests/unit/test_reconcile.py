"""Reconciliation rules on tiny hand-built frames: one intent, one provider ref, and the
one disagreement each test plants."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from zentra_pipelines.domain.reconcile import reconcile

T0 = datetime(2026, 11, 20, 10, 0)
S, N, D = pl.String, pl.Int64, pl.Datetime("us")


def _frame(rows: list[tuple], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row")


def _breaks(*, ledger_captured: bool | None, state_type: str | None = "payment.captured",
            settlement: tuple | None = None, ledger_intent: str = "in_1", ledger_fee: int | None = None,
            columns: tuple[str, ...] = ("break_type", "owner", "reason"), quarantined: str | None = None,
            conflict: bool = False, held: tuple[str, str] | None = None,
            more_refs: tuple[tuple, ...] = (), ledger_settled: bool | None = None) -> list[tuple]:
    """Breaks of intent in_1 (1,000 EUR); ``ledger_captured`` None: no postings at all;
    ``state_type`` None: no provider state; ``ledger_settled`` None: a settle journal
    exactly when the ledger captured."""
    settled = ledger_captured if ledger_settled is None else ledger_settled
    intents = _frame([("t_a", "in_1", 1_000, "EUR", "EUR", T0)],
                     {"tenant_id": S, "intent_id": S, "amount_minor": N, "currency": S, "ledger_currency": S,
                      "created_at": D})
    ledger = _frame([] if ledger_captured is None else [("t_a", ledger_intent, 1_000, "EUR", T0, False,
                                                         ledger_captured, settled, ledger_fee)],
                    {"tenant_id": S, "intent_id": S, "ledger_amount_minor": N, "ledger_currency": S,
                     "first_posted_at": D, "released": pl.Boolean, "captured": pl.Boolean, "settled": pl.Boolean,
                     "ledger_fee_minor": N})
    state = _frame(([] if state_type is None else [("t_a", "acme", "ref_1", "in_1", state_type, 1_000, "EUR", T0)])
                   + list(more_refs),
                   {"tenant_id": S, "provider": S, "provider_ref": S, "intent_id": S, "type": S, "amount_minor": N,
                    "currency": S, "received_at": D})
    settlements = _frame([settlement] if settlement else [],
                         {"tenant_id": S, "provider": S, "provider_ref": S, "currency": S, "gross_minor": N,
                          "fee_minor": N, "settled_at": D, "batch_id": S})
    out = reconcile(
        intents=intents, ledger=ledger,
        duplicate_journals=_frame([], {"tenant_id": S, "intent_id": S, "idempotency_key": S, "journal_ids": S,
                                       "amount_minor": N, "currency": S}),
        provider_state=state,
        first_callbacks=_frame([("t_a", "in_1", T0)], {"tenant_id": S, "intent_id": S, "first_received_at": D}),
        callback_conflicts=_frame([("t_a", "in_1", "ref_1", "evt_9", T0)] if conflict else [],
                                  {"tenant_id": S, "intent_id": S, "provider_ref": S, "event_id": S,
                                   "first_received_at": D}),
        quarantined_intents=_frame([], {"tenant_id": S, "intent_id": S, "intent_codes": S}),
        sequence_ties=_frame([], {"tenant_id": S, "provider": S, "provider_ref": S, "sequence": N, "event_ids": S,
                                  "first_received_at": D}),
        settlements=settlements,
        settlement_conflicts=_frame([], {"tenant_id": S, "provider": S, "provider_ref": S, "first_settled_at": D}),
        as_of=T0,
        held=_frame([("t_a", "in_1", *held)] if held else [],
                    {"tenant_id": S, "intent_id": S, "outcome": S, "decision_reason": S}),
        quarantined_postings=_frame([("t_a", "in_1", quarantined)] if quarantined else [],
                                    {"tenant_id": S, "intent_id": S, "ledger_codes": S}),
    )
    return out.select(columns).rows()


def test_a_captured_intent_with_its_capture_journal_has_no_break():
    assert _breaks(ledger_captured=True) == []


def test_a_capture_the_ledger_never_posted_is_missing_in_ledger():
    assert _breaks(ledger_captured=False) == [
        ("missing_in_ledger", "ledger_ops",
         "provider reports payment.captured but the ledger has no capture journal for the intent (reserved 1000 only)")]


def test_an_authorized_payment_needs_no_capture_journal():
    assert _breaks(ledger_captured=False, state_type="payment.authorized") == []


def test_a_settlement_for_a_failed_payment_is_a_settlement_mismatch():
    settled = ("t_a", "acme", "ref_1", "EUR", 1_000, 6, T0, "b_1")
    assert _breaks(ledger_captured=False, state_type="payment.failed", settlement=settled) == [
        ("settlement_mismatch", "finance_recon",
         "settlement batch b_1 reports gross 1000 EUR for a ref whose provider state is payment.failed")]


def test_a_settlement_for_a_payment_only_authorized_is_a_settlement_mismatch():
    """The provider settles money its own state says was never captured: the ledger
    posted no capture and still holds it reserved."""
    settled = ("t_a", "acme", "ref_1", "EUR", 1_000, 6, T0, "b_1")
    assert _breaks(ledger_captured=False, state_type="payment.authorized", settlement=settled) == [
        ("settlement_mismatch", "finance_recon",
         "settlement batch b_1 reports gross 1000 EUR for a ref whose provider state is payment.authorized")]


def test_a_settlement_for_a_captured_payment_with_the_same_figures_is_no_break():
    settled = ("t_a", "acme", "ref_1", "EUR", 1_000, 6, T0, "b_1")
    assert _breaks(ledger_captured=True, ledger_fee=6, state_type="payment.captured", settlement=settled) == []


def test_a_settle_journal_that_posted_a_fee_of_zero_is_compared_with_the_provider_fee():
    settled = ("t_a", "acme", "ref_1", "EUR", 1_000, 6, T0, "b_1")
    assert _breaks(ledger_captured=True, ledger_fee=0, settlement=settled) == [
        ("settlement_mismatch", "finance_recon",
         "settlement batch b_1 reports fee 6 EUR, the ledger's settle journal posted fee 0")]
    assert _breaks(ledger_captured=True, ledger_fee=0,
                   settlement=("t_a", "acme", "ref_1", "EUR", 1_000, 0, T0, "b_1")) == []


def test_a_settlement_the_ledger_captured_but_never_settled_is_a_settlement_mismatch():
    settled = ("t_a", "acme", "ref_1", "EUR", 1_000, 6, T0, "b_1")
    assert _breaks(ledger_captured=True, ledger_settled=False, settlement=settled) == [
        ("settlement_mismatch", "finance_recon",
         "settlement batch b_1 reports gross 1000 EUR settled, the ledger captured it but posted no settle journal")]


def test_a_settlement_the_ledger_never_captured_is_only_the_missing_capture():
    settled = ("t_a", "acme", "ref_1", "EUR", 1_000, 6, T0, "b_1")
    assert [b[0] for b in _breaks(ledger_captured=False, settlement=settled)] == ["missing_in_ledger"]


def test_no_postings_at_all_is_missing_in_ledger():
    assert _breaks(ledger_captured=None) == [
        ("missing_in_ledger", "ledger_ops", "provider reports payment.captured but the ledger has no postings for "
                                            "the intent")]


def test_a_reserve_for_an_intent_nobody_else_knows_is_missing_at_provider_for_ledger_ops():
    assert _breaks(ledger_captured=True, state_type=None, ledger_intent="in_ghost") == [
        ("missing_at_provider", "ledger_ops", "ledger reserved 1000 EUR for intent in_ghost absent from the intent log, "
                                         "no provider callback")]


def test_a_settlement_fee_the_ledger_posted_differently_is_a_settlement_mismatch():
    settled = ("t_a", "acme", "ref_1", "EUR", 1_000, 147, T0, "b_1")
    assert _breaks(ledger_captured=True, ledger_fee=47, settlement=settled) == [
        ("settlement_mismatch", "finance_recon",
         "settlement batch b_1 reports fee 147 EUR, the ledger's settle journal posted fee 47")]


def test_a_settlement_whose_fee_the_ledger_posted_alike_has_no_break():
    settled = ("t_a", "acme", "ref_1", "EUR", 1_000, 47, T0, "b_1")
    assert _breaks(ledger_captured=True, ledger_fee=47, settlement=settled) == []


def test_a_settlement_in_another_currency_keeps_the_amount_columns_currency():
    settled = ("t_a", "acme", "ref_1", "USD", 1_000, 6, T0, "b_1")
    assert _breaks(ledger_captured=True, settlement=settled, columns=(
        "break_type", "ledger_amount_minor", "provider_amount_minor", "currency", "reason")) == [
        ("settlement_mismatch", 1_000, 1_000, "EUR", "settlement batch b_1 reports gross 1000 USD, provider state "
                                                     "1000 EUR")]


def test_a_capture_whose_postings_were_quarantined_says_so():
    assert _breaks(ledger_captured=None, quarantined="journal_unbalanced,posting_conflict") == [
        ("missing_in_ledger", "ledger_ops", "provider reports payment.captured but the ledger holds no reserve for "
                                            "the intent: its postings were quarantined (journal_unbalanced,"
                                            "posting_conflict)")]


def test_a_callback_conflict_without_postings_carries_the_provider_currency():
    assert _breaks(ledger_captured=None, conflict=True,
                   columns=("break_type", "ledger_amount_minor", "provider_amount_minor", "currency")) == [
        ("callback_conflict", None, 1_000, "EUR"), ("missing_in_ledger", None, 1_000, "EUR")]


def test_a_ledger_posting_for_an_intent_policy_held_is_control_bypassed_for_risk_ops():
    assert _breaks(ledger_captured=True, held=("review", "over_max_amount")) == [
        ("control_bypassed", "risk_ops",
         "ledger reserved 1000 EUR for an intent policy decided review (over_max_amount): posted past a control")]


def test_one_intent_captured_under_two_provider_refs_is_an_amount_mismatch_of_their_total():
    second = ("t_a", "zeta", "ref_2", "in_1", "payment.captured", 1_000, "EUR", T0)
    assert _breaks(ledger_captured=True, more_refs=(second,),
                   columns=("break_type", "provider_ref", "ledger_amount_minor", "provider_amount_minor", "reason")) == [
        ("amount_mismatch", None, 1_000, 2_000,
         "captured under 2 provider refs (acme ref_1, zeta ref_2) for 2000 EUR in total; the ledger reserved 1000")]


def test_a_second_ref_that_failed_is_no_double_capture():
    failed = ("t_a", "zeta", "ref_2", "in_1", "payment.failed", 1_000, "EUR", T0)
    assert _breaks(ledger_captured=True, more_refs=(failed,)) == []
