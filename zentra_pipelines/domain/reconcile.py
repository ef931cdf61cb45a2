"""Reconciliation: intent ↔ ledger ↔ provider ↔ settlement, exact integer amounts.

Breaks are recomputed from scratch every run from the current state, so a late
callback that completes a story resolves its break on the next run. Each break carries
both sides' amounts, a reason in words, when it was first observable, its age against
``as_of`` (the newest timestamp in the data, never the wall clock), an owner and a status.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

MISSING_IN_LEDGER = "missing_in_ledger"
MISSING_AT_PROVIDER = "missing_at_provider"
AMOUNT_MISMATCH = "amount_mismatch"
CURRENCY_MISMATCH = "currency_mismatch"
DUPLICATE_JOURNAL = "duplicate_journal"
SETTLEMENT_MISMATCH = "settlement_mismatch"
CALLBACK_CONFLICT = "callback_conflict"
UNKNOWN_INTENT = "unknown_intent"
SEQUENCE_TIE = "sequence_tie"
#: The ledger posted for an intent policy held in review or rejected (contract 2.6: an
#: intent over a limit moves to review *before posting*). Beyond the contract's list.
CONTROL_BYPASSED = "control_bypassed"

#: Who works a missing_in_ledger break for an intent policy held or rejected: the
#: provider moved money past a control, not a ledger fault.
CONTROL_OWNER = "risk_ops"
#: Who works each kind of break.
OWNERS = {
    MISSING_IN_LEDGER: "ledger_ops",
    DUPLICATE_JOURNAL: "ledger_ops",
    MISSING_AT_PROVIDER: "provider_ops",
    CALLBACK_CONFLICT: "provider_ops",
    UNKNOWN_INTENT: "provider_ops",
    SEQUENCE_TIE: "provider_ops",
    CONTROL_BYPASSED: CONTROL_OWNER,
    AMOUNT_MISMATCH: "finance_recon",
    CURRENCY_MISMATCH: "finance_recon",
    SETTLEMENT_MISMATCH: "finance_recon",
}
FAILED_TYPES = ["payment.failed", "payout.failed"]
#: Provider states that mean the money was captured (the ledger then posts `capture`).
CAPTURED_TYPES = ["payment.captured", "payment.settled", "payment.refunded", "payout.paid"]

BREAK_SCHEMA = {
    "tenant_id": pl.String, "intent_id": pl.String, "provider_ref": pl.String, "break_type": pl.String,
    "ledger_amount_minor": pl.Int64, "provider_amount_minor": pl.Int64, "currency": pl.String,
    "reason": pl.String, "first_seen": pl.Datetime("us"), "day": pl.Date,
}
BREAK_COLUMNS = list(BREAK_SCHEMA) + ["age_days", "owner", "status"]


def _shape(frame: pl.DataFrame, break_type: str) -> pl.DataFrame:
    """Project one kind of break onto the common schema (absent columns become null)."""
    frame = frame.with_columns(break_type=pl.lit(break_type))
    return frame.select(
        [(pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c) for c, t in BREAK_SCHEMA.items()]
    )


def reconcile(
    intents: pl.DataFrame,  # tenant_id, intent_id, amount_minor, currency, ledger_currency, created_at
    ledger: pl.DataFrame,  # intent_ledger_view: ..., ledger_amount_minor, ledger_currency, first_posted_at, released, captured, settled, ledger_fee_minor
    duplicate_journals: pl.DataFrame,  # tenant_id, intent_id, idempotency_key, journal_ids, amount_minor, currency
    provider_state: pl.DataFrame,  # contract provider_state (+ received_at)
    first_callbacks: pl.DataFrame,  # tenant_id, intent_id, first_received_at (accepted callbacks)
    callback_conflicts: pl.DataFrame,  # per event and (intent_id, provider_ref) named: first_received_at
    quarantined_intents: pl.DataFrame,  # tenant_id, intent_id, intent_codes: ids with quarantined lines only
    sequence_ties: pl.DataFrame,  # tenant_id, provider, provider_ref, sequence, event_ids, first_received_at
    settlements: pl.DataFrame,  # tenant_id, provider, provider_ref, currency, gross_minor, fee_minor, settled_at
    settlement_conflicts: pl.DataFrame,  # tenant_id, provider, provider_ref, first_settled_at
    as_of: datetime,
    held: pl.DataFrame,  # tenant_id, intent_id, outcome, decision_reason: policy review or rejected
    quarantined_postings: pl.DataFrame,  # tenant_id, intent_id, ledger_codes
) -> pl.DataFrame:
    key = ["tenant_id", "intent_id"]
    created = intents.select(*key, "created_at")
    state = provider_state.select(
        *key, "provider", "provider_ref", "type",
        pl.col("amount_minor").alias("provider_amount_minor"),
        pl.col("currency").alias("provider_currency"), "received_at",
    )
    known = state.join(created, on=key, how="semi")
    breaks: list[pl.DataFrame] = []

    # unknown_intent: verified callbacks for an intent the intent log never had
    unknown = (state.join(created, on=key, how="anti").join(first_callbacks, on=key, how="left")
               .join(quarantined_intents.select(*key, "intent_codes"), on=key, how="left"))
    breaks.append(_shape(
        unknown.join(ledger, on=key, how="left").with_columns(
            currency=pl.col("provider_currency"),
            reason=pl.when(pl.col("intent_codes").is_null())
            .then(pl.format("verified {} callback for intent {} absent from the intent log", "type", "intent_id"))
            .otherwise(pl.format("verified {} callback for intent {} whose every intent line was quarantined ({})",
                                 "type", "intent_id", "intent_codes")),
            first_seen=pl.coalesce("first_received_at", "received_at"),
            day=pl.coalesce("first_received_at", "received_at").dt.date(),
        ),
        UNKNOWN_INTENT,
    ))

    matched = known.join(ledger, on=key, how="left").with_columns(
        failed=pl.col("type").is_in(FAILED_TYPES)
    )
    # missing_in_ledger: the provider moved money, the ledger never heard of it
    # ... unless policy held or rejected the intent: then the ledger is right and the
    # provider moved money past a control (same break type, the reason and owner say so)
    breaks.append(_shape(
        matched.filter(pl.col("ledger_amount_minor").is_null() & ~pl.col("failed"))
        .join(held, on=key, how="left").join(quarantined_postings, on=key, how="left").with_columns(
            currency=pl.col("provider_currency"),
            reason=pl.when(pl.col("outcome").is_null() & pl.col("ledger_codes").is_not_null())
            .then(pl.format("provider reports {} but the ledger holds no reserve for the intent: its postings "
                            "were quarantined ({})", "type", "ledger_codes"))
            .when(pl.col("outcome").is_null())
            .then(pl.format("provider reports {} but the ledger has no postings for the intent", "type"))
            .otherwise(pl.format("provider reports {} for an intent policy decided {} ({}): no postings by "
                                 "design, money moved past a control", "type", "outcome", "decision_reason")),
            first_seen=pl.col("received_at"),
        ),
        MISSING_IN_LEDGER,
    ))
    # the provider captured (or later) but the ledger only reserved: the capture journal
    # is missing, so the money sits in reserved instead of settlement
    breaks.append(_shape(
        matched.filter(
            pl.col("ledger_amount_minor").is_not_null() & pl.col("type").is_in(CAPTURED_TYPES)
            & ~pl.col("captured").fill_null(False)
        ).with_columns(
            currency=pl.col("provider_currency"),
            reason=pl.format("provider reports {} but the ledger has no capture journal for the intent "
                             "(reserved {} only)", "type", "ledger_amount_minor"),
            first_seen=pl.col("received_at"),
        ),
        MISSING_IN_LEDGER,
    ))
    both = matched.filter(
        pl.col("ledger_amount_minor").is_not_null() & ~(pl.col("failed") & pl.col("released").fill_null(False))
    )
    breaks.append(_shape(
        both.filter(pl.col("provider_currency") != pl.col("ledger_currency")).with_columns(
            currency=pl.col("ledger_currency"),
            reason=pl.format("ledger holds {} {}, provider reports {} {}", "ledger_amount_minor",
                             "ledger_currency", "provider_amount_minor", "provider_currency"),
            first_seen=pl.max_horizontal("received_at", "first_posted_at"),
        ),
        CURRENCY_MISMATCH,
    ))
    breaks.append(_shape(
        both.filter(
            (pl.col("provider_currency") == pl.col("ledger_currency"))
            & (pl.col("provider_amount_minor") != pl.col("ledger_amount_minor"))
        ).with_columns(
            currency=pl.col("ledger_currency"),
            reason=pl.format("ledger reserved {} but provider reports {} ({} {})", "ledger_amount_minor",
                             "provider_amount_minor", "type", "ledger_currency"),
            first_seen=pl.max_horizontal("received_at", "first_posted_at"),
        ),
        AMOUNT_MISMATCH,
    ))
    # one intent captured under several provider refs: each ref may agree with the ledger
    # on its own while together they moved more than the ledger holds (a double capture)
    captured_refs = known.filter(pl.col("type").is_in(CAPTURED_TYPES)).group_by(*key, "provider_currency").agg(
        pl.len().alias("_refs"),
        pl.col("provider_amount_minor").sum().alias("provider_amount_minor"),
        pl.format("{} {}", "provider", "provider_ref").sort().str.join(", ").alias("_refs_named"),
        pl.col("received_at").max(),
    ).filter(pl.col("_refs") > 1)
    breaks.append(_shape(
        captured_refs.join(ledger, on=key, how="inner").filter(
            (pl.col("provider_currency") == pl.col("ledger_currency"))
            & (pl.col("provider_amount_minor") != pl.col("ledger_amount_minor"))
        ).with_columns(
            provider_ref=pl.lit(None, pl.String),
            currency=pl.col("ledger_currency"),
            reason=pl.format("captured under {} provider refs ({}) for {} {} in total; the ledger reserved {}",
                             "_refs", "_refs_named", "provider_amount_minor", "ledger_currency", "ledger_amount_minor"),
            first_seen=pl.max_horizontal("received_at", "first_posted_at"),
        ),
        AMOUNT_MISMATCH,
    ))
    # control_bypassed: the ledger posted for an intent policy held in review or rejected
    breaks.append(_shape(
        ledger.filter(pl.col("ledger_amount_minor").is_not_null()).join(held, on=key, how="inner").with_columns(
            provider_ref=pl.lit(None, pl.String), provider_amount_minor=pl.lit(None, pl.Int64),
            currency=pl.col("ledger_currency"),
            reason=pl.format("ledger reserved {} {} for an intent policy decided {} ({}): posted past a control",
                             "ledger_amount_minor", "ledger_currency", "outcome", "decision_reason"),
            first_seen=pl.col("first_posted_at"),
        ),
        CONTROL_BYPASSED,
    ))
    # the ledger posted a different amount than the intent asked for
    asked = intents.join(ledger, on=key, how="inner").filter(
        (pl.col("currency") == pl.col("ledger_currency"))
        & (pl.col("amount_minor") != pl.col("ledger_amount_minor"))
    ).join(state.select(*key, "provider_ref", "provider_amount_minor"), on=key, how="left")
    breaks.append(_shape(
        asked.with_columns(
            currency=pl.col("ledger_currency"),
            reason=pl.format("intent asked {} but the ledger reserved {}", "amount_minor", "ledger_amount_minor"),
            first_seen=pl.col("first_posted_at"),
        ),
        AMOUNT_MISMATCH,
    ))

    # missing_at_provider: the ledger moved money for an intent no provider confirmed
    breaks.append(_shape(
        ledger.join(created, on=key, how="semi").join(state, on=key, how="anti").with_columns(
            provider_ref=pl.lit(None, pl.String), provider_amount_minor=pl.lit(None, pl.Int64),
            currency=pl.col("ledger_currency"),
            reason=pl.lit("ledger postings exist but no verified provider callback"),
            first_seen=pl.col("first_posted_at"),
        ),
        MISSING_AT_PROVIDER,
    ))

    # missing_at_provider for an intent the intent log never had either: a reserve no
    # provider confirmed (with a callback it is an unknown_intent, the contract's type for a
    # callback without an intent). Only reserves: other journals carry references that are
    # no intents (opening balances).
    breaks.append(_shape(
        ledger.filter(pl.col("ledger_amount_minor").is_not_null())
        .join(created, on=key, how="anti").join(state, on=key, how="anti")
        .join(quarantined_intents.select(*key, "intent_codes"), on=key, how="left").with_columns(
            provider_ref=pl.lit(None, pl.String), provider_amount_minor=pl.lit(None, pl.Int64),
            currency=pl.col("ledger_currency"),
            reason=pl.when(pl.col("intent_codes").is_null())
            .then(pl.format("ledger reserved {} {} for intent {} absent from the intent log, no provider callback",
                            "ledger_amount_minor", "ledger_currency", "intent_id"))
            .otherwise(pl.format("ledger reserved {} {} for intent {} whose every intent line was quarantined ({}), "
                                 "no provider callback", "ledger_amount_minor", "ledger_currency", "intent_id",
                                 "intent_codes")),
            first_seen=pl.col("first_posted_at"),
            day=pl.col("first_posted_at").dt.date(),
        ),
        MISSING_AT_PROVIDER,
    ))

    first_ref = state.group_by(key).agg(pl.col("provider_ref").min(), pl.col("provider_amount_minor").first())
    breaks.append(_shape(
        duplicate_journals.join(first_ref, on=key, how="left").join(
            ledger.select(*key, "ledger_amount_minor", "first_posted_at"), on=key, how="left"
        ).with_columns(
            reason=pl.format("journals {} share idempotency key {}", "journal_ids", "idempotency_key"),
            first_seen=pl.col("first_posted_at"),
        ),
        DUPLICATE_JOURNAL,
    ))
    conflicts = callback_conflicts.group_by("tenant_id", "intent_id", "provider_ref").agg(
        pl.col("event_id").sort().str.join(","), pl.col("first_received_at").min()
    )
    breaks.append(_shape(
        conflicts.join(ledger.select(*key, "ledger_amount_minor", "ledger_currency"), on=key, how="left")
        .join(state.select(*key, "provider_ref", "provider_amount_minor", "provider_currency"),
              on=[*key, "provider_ref"], how="left")
        .with_columns(
            # the ledger's currency when it has an amount, else the provider's: never an amount without one
            currency=pl.when(pl.col("ledger_amount_minor").is_not_null())
            .then(pl.col("ledger_currency")).otherwise(pl.col("provider_currency")),
            reason=pl.format("event(s) {} arrived with different contents; every copy quarantined", "event_id"),
            first_seen=pl.col("first_received_at"),
        ),
        CALLBACK_CONFLICT,
    ))

    pkey = ["tenant_id", "provider", "provider_ref"]
    # sequence_tie: the ref's state is the smallest event_id among disagreeing events
    # that share its highest sequence; reported against the intent the state names
    breaks.append(_shape(
        sequence_ties.join(state.select(*pkey, "intent_id", "provider_amount_minor", "provider_currency"),
                           on=pkey, how="inner")
        .join(ledger.select(*key, "ledger_amount_minor"), on=key, how="left")
        .with_columns(
            currency=pl.col("provider_currency"),
            reason=pl.format("events {} share the highest sequence {} with different contents; "
                             "the state took the first by event_id", "event_ids", "sequence"),
            first_seen=pl.col("first_received_at"),
        ),
        SEQUENCE_TIE,
    ))

    settled = settlements.join(
        state.select(*pkey, "intent_id", "type", "provider_amount_minor", "provider_currency"), on=pkey, how="left"
    ).join(ledger.select(*key, "ledger_amount_minor", "ledger_fee_minor", "captured", "settled"), on=key, how="left")
    # money settled for a payment the provider itself reports never captured: failed (the
    # ledger released it back to the customer, so it went out twice unless someone acts)
    # or only authorized (the ledger posted no capture: it still holds the money reserved)
    settled_uncaptured = (pl.col("type").is_not_null() & ~pl.col("type").is_in(CAPTURED_TYPES)).fill_null(False)
    # the provider's fee against the fee the ledger's settle journal posted (with gross
    # equal, net = gross - fee then equals the merchant's credit too)
    fee_differs = (pl.col("ledger_fee_minor").is_not_null() & (pl.col("fee_minor") != pl.col("ledger_fee_minor"))
                   ).fill_null(False)
    figures_differ = (pl.col("gross_minor") != pl.col("provider_amount_minor")) | (
        pl.col("currency") != pl.col("provider_currency"))
    # settled at the provider, captured in the ledger, but the ledger never paid the money
    # out of settlement (no settle journal): the merchant's credit and the fee are missing.
    # An intent the ledger never captured is a missing_in_ledger break already.
    no_settle_journal = (pl.col("captured") & ~pl.col("settled")).fill_null(False)
    breaks.append(_shape(
        settled.filter(
            pl.col("provider_amount_minor").is_null() | figures_differ | settled_uncaptured | fee_differs
            | no_settle_journal
        ).with_columns(
            reason=pl.when(pl.col("provider_amount_minor").is_null())
            .then(pl.format("settlement batch {} reports {} {} for a ref with no provider state",
                            "batch_id", "gross_minor", "currency"))
            .when(settled_uncaptured)
            .then(pl.format("settlement batch {} reports gross {} {} for a ref whose provider state is {}",
                            "batch_id", "gross_minor", "currency", "type"))
            .when(figures_differ)
            .then(pl.format("settlement batch {} reports gross {} {}, provider state {} {}",
                            "batch_id", "gross_minor", "currency", "provider_amount_minor", "provider_currency"))
            .when(fee_differs)
            .then(pl.format("settlement batch {} reports fee {} {}, the ledger's settle journal posted fee {}",
                            "batch_id", "fee_minor", "currency", "ledger_fee_minor"))
            .otherwise(pl.format("settlement batch {} reports gross {} {} settled, the ledger captured it but "
                                 "posted no settle journal", "batch_id", "gross_minor", "currency")),
            # the currency of the amount columns (the provider's and the ledger's); the
            # settlement's own figures, currency included, are in the reason
            currency=pl.coalesce("provider_currency", "currency"),
            first_seen=pl.col("settled_at"),
        ),
        SETTLEMENT_MISMATCH,
    ))
    breaks.append(_shape(
        settlement_conflicts.join(
            state.select(*pkey, "intent_id", "provider_amount_minor", "provider_currency"), on=pkey, how="left"
        ).join(ledger.select(*key, "ledger_amount_minor"), on=key, how="left").with_columns(
            currency=pl.col("provider_currency"),
            reason=pl.lit("the settlement report lists this ref with different figures; every copy quarantined"),
            first_seen=pl.col("first_settled_at"),
        ),
        SETTLEMENT_MISMATCH,
    ))

    out = pl.concat(breaks, how="vertical")
    # an intent's breaks belong to the day it was created; refs without an intent to their own first day
    out = out.join(created.rename({"created_at": "_created"}), on=key, how="left").with_columns(
        day=pl.coalesce(pl.col("_created").dt.date(), pl.col("day"), pl.col("first_seen").dt.date())
    ).with_columns(_unlogged=pl.col("_created").is_null()).drop("_created").join(
        held.select(*key, _held=pl.lit(True)), on=key, how="left"
    ).with_columns(
        _control_breach=(pl.col("break_type") == MISSING_IN_LEDGER) & pl.col("_held").fill_null(False)
    )
    return (
        out.unique(subset=["tenant_id", "intent_id", "provider_ref", "break_type"], keep="first", maintain_order=True)
        .with_columns(
            age_days=((pl.lit(as_of) - pl.col("first_seen")).dt.total_days()).cast(pl.Int64),
            owner=pl.when(pl.col("_control_breach")).then(pl.lit(CONTROL_OWNER))
            .when((pl.col("break_type") == MISSING_AT_PROVIDER) & pl.col("_unlogged"))
            .then(pl.lit(OWNERS[MISSING_IN_LEDGER]))  # a reserve only the ledger has: its team's
            .otherwise(pl.col("break_type").replace_strict(OWNERS)),
            status=pl.lit("open"),
        )
        .select(BREAK_COLUMNS)
        .sort("tenant_id", "intent_id", "provider_ref", "break_type", nulls_last=True)
    )
