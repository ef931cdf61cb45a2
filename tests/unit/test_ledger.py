"""The pure ledger: validation codes, re-reads, conflicts, journals, chain, balances, findings."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from zentra_pipelines.domain import errors
from zentra_pipelines.domain import invariants as inv
from zentra_pipelines.domain import ledger as L

UTC = timezone.utc
T = "t_alpha"

ACCOUNTS = pl.DataFrame(
    [
        (f"{T}:funding", T, "funding", True),
        (f"{T}:customer:0001", T, "customer", False),
        (f"{T}:customer:0002", T, "customer", False),
        (f"{T}:reserved", T, "reserved", False),
        (f"{T}:settlement", T, "settlement", False),
        (f"{T}:merchant:001", T, "merchant", False),
        (f"{T}:fees", T, "fees", False),
        ("t_beta:customer:0001", "t_beta", "customer", False),
        ("t_beta:funding", "t_beta", "funding", True),
    ],
    schema=L.ACCOUNT_SCHEMA,
    orient="row",
)


def post(pid: str, jid: str, account: str, amount: object, **kw: object) -> dict[str, object]:
    """One raw source row; amount given as Python int -> stored as integer."""
    intent = kw.pop("intent", "int_1")
    row = {
        "posting_id": pid,
        "journal_id": jid,
        "intent_id": intent,
        "tenant_id": account.split(":")[0] if ":" in account else T,
        "account_id": account,
        "currency": "EUR",
        "amount_minor": str(amount) if amount is not None else None,
        "amount_type": "integer" if isinstance(amount, int) else ("null" if amount is None else "text"),
        "posted_at_text": "2026-11-24 10:00:00.000000",
        "actor_id": "svc_core",
        "idempotency_key": f"{intent}:{jid}",
    }
    row.update(kw)
    return row


def raw(*rows: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=L.SOURCE_SCHEMA)


def reserve(n: int, amount: int = 125_000, *, at: str = "2026-11-24 10:00:00.000000", customer: str = "0001") -> list[dict]:
    jid = f"j_int_{n}_reserve"
    return [
        post(f"p_int_{n}_reserve_1", jid, f"{T}:customer:{customer}", -amount, intent=f"int_{n}", posted_at_text=at),
        post(f"p_int_{n}_reserve_2", jid, f"{T}:reserved", amount, intent=f"int_{n}", posted_at_text=at),
    ]


def codes(quarantine: pl.DataFrame) -> dict[str, str]:
    return dict(quarantine.select("posting_id", "error_code").iter_rows())


# ------------------------------------------------------------------ validation ---


def test_a_balanced_journal_is_accepted_with_integer_amounts() -> None:
    postings, quarantine = L.validate_postings(raw(*reserve(1)), ACCOUNTS)
    assert quarantine.height == 0
    assert postings["amount_minor"].to_list() == [-125_000, 125_000]
    assert postings.schema == pl.Schema(L.POSTING_SCHEMA)
    assert postings["posted_at"][0] == datetime(2026, 11, 24, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "column", ["posting_id", "journal_id", "intent_id", "tenant_id", "account_id", "actor_id", "idempotency_key"]
)
def test_every_identifier_column_is_checked(column: str) -> None:
    rows = reserve(1)
    rows[1][column] = "x'; DROP TABLE accounts; --"
    _, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    bad = quarantine.filter(pl.col("error_code") == errors.INVALID_IDENTIFIER)
    assert bad.height == 1 and column in bad["detail"][0]


def test_an_identifier_with_a_trailing_newline_is_invalid() -> None:
    rows = reserve(1)
    rows[0]["posting_id"] = "p_ok\n"
    _, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert quarantine.filter(pl.col("posting_id") == "p_ok\n")["error_code"].to_list() == [errors.INVALID_IDENTIFIER]


def test_a_null_required_identifier_is_a_missing_field() -> None:
    rows = reserve(1)
    rows[0]["account_id"] = None
    _, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert codes(quarantine)["p_int_1_reserve_1"] == errors.MISSING_FIELD


def test_null_optional_identifiers_are_allowed() -> None:
    rows = reserve(1)
    for row in rows:
        row.update(intent_id=None, actor_id=None, idempotency_key=None)
    postings, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert quarantine.height == 0 and postings.height == 2


def test_unknown_currency_is_quarantined() -> None:
    rows = reserve(1)
    for row in rows:
        row["currency"] = "EURO"
    _, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert set(codes(quarantine).values()) == {errors.CURRENCY_UNKNOWN}


@pytest.mark.parametrize(
    ("text", "storage", "code"),
    [
        ("1250.0", "real", errors.AMOUNT_FLOAT),
        ("125000", "text", errors.AMOUNT_STRING),
        ("true", "boolean", errors.AMOUNT_BOOLEAN),
        (None, "null", errors.AMOUNT_MISSING),
        ("x'00FF'", "blob", errors.AMOUNT_INVALID),
        ("9223372036854775808", "integer", errors.AMOUNT_OUT_OF_RANGE),
        ("-9223372036854775809", "integer", errors.AMOUNT_OUT_OF_RANGE),
        ("12e3", "integer", errors.AMOUNT_INVALID),
    ],
)
def test_amounts_that_are_not_64_bit_integers_are_never_coerced(text: str | None, storage: str, code: str) -> None:
    rows = reserve(1)
    rows[1].update(amount_minor=text, amount_type=storage)
    _, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert codes(quarantine)["p_int_1_reserve_2"] == code


def test_int64_extremes_are_amounts() -> None:
    rows = [
        post("p1", "j1", f"{T}:funding", -(2**63) + 1),
        post("p2", "j1", f"{T}:customer:0001", 2**63 - 1),
    ]
    postings, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert quarantine.height == 0 and postings["amount_minor"].to_list() == [-(2**63) + 1, 2**63 - 1]


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24 10:00:00",
        "2026-11-24T10:00:00",
        "2026-11-24T10:00:00Z",
        "2026-11-24 10:00:00+00:00",
        "2026-11-24 10:00:00+00",
        "2026-11-24T10:00:00.000000Z",
        "2026-11-24 10:00:00.0",
    ],
)
def test_accepted_timestamp_spellings_normalise_to_utc(text: str) -> None:
    value = pl.select(L.parse_utc_timestamp(pl.lit(text))).item()
    assert value == datetime(2026, 11, 24, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["2026-11-24", "1764064800", "2026-02-30 10:00:00", "2026-11-24 10:00:00+01:00", "2026-11-24 25:00:00",
     "2026-11-24 10:00:00.1234567", " 2026-11-24 10:00:00", "garbage"],
)
def test_unparseable_or_non_utc_timestamps_are_quarantined(text: str) -> None:
    rows = reserve(1)
    rows[0]["posted_at_text"] = text
    _, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert codes(quarantine)["p_int_1_reserve_1"] == errors.INVALID_TIMESTAMP


def test_a_posting_to_an_unknown_account_is_quarantined() -> None:
    rows = reserve(1)
    rows[1]["account_id"] = f"{T}:reserved:9"
    _, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert codes(quarantine)["p_int_1_reserve_2"] == errors.ACCOUNT_UNKNOWN


def test_an_account_defined_twice_differently_is_unknown() -> None:
    accounts = pl.concat([ACCOUNTS, pl.DataFrame([(f"{T}:reserved", T, "fees", False)], schema=L.ACCOUNT_SCHEMA, orient="row")])
    _, quarantine = L.validate_postings(raw(*reserve(1)), accounts)
    row = quarantine.filter(pl.col("posting_id") == "p_int_1_reserve_2")
    assert row["error_code"].to_list() == [errors.ACCOUNT_UNKNOWN] and "several times" in row["detail"][0]


def test_a_posting_to_another_tenants_account_is_a_tenant_mismatch() -> None:
    rows = reserve(1)
    rows[0]["account_id"] = "t_beta:customer:0001"
    rows[0]["tenant_id"] = T
    _, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert codes(quarantine)["p_int_1_reserve_1"] == errors.TENANT_MISMATCH


def test_the_first_failing_check_wins() -> None:
    rows = reserve(1)
    rows[1].update(posting_id="bad id", currency="XXXX", amount_minor="1.5", amount_type="real")
    _, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert codes(quarantine)["bad id"] == errors.INVALID_IDENTIFIER


def test_a_quarantined_posting_takes_its_journal_with_it() -> None:
    rows = reserve(1)
    rows[1].update(amount_minor="125000.0", amount_type="real")
    postings, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert postings.height == 0
    sibling = quarantine.filter(pl.col("posting_id") == "p_int_1_reserve_1")
    assert sibling["error_code"].to_list() == [errors.JOURNAL_UNBALANCED]
    assert "p_int_1_reserve_2 (amount_float)" in sibling["detail"][0]


def test_identical_rereads_collapse_into_one_posting() -> None:
    rows = reserve(1)
    again = [dict(r) for r in rows]
    again[0]["posted_at_text"] = "2026-11-24T10:00:00Z"  # same instant, other spelling
    postings, quarantine = L.validate_postings(raw(*rows, *again, rows[1]), ACCOUNTS)
    assert quarantine.height == 0
    assert postings.height == 2


def test_a_reread_with_different_content_is_a_conflict_for_every_copy() -> None:
    rows = reserve(1)
    changed = dict(rows[1], amount_minor="125001")
    postings, quarantine = L.validate_postings(raw(*rows, changed), ACCOUNTS)
    assert postings.height == 0
    conflict = quarantine.filter(pl.col("error_code") == errors.POSTING_CONFLICT)
    assert conflict["posting_id"].to_list() == ["p_int_1_reserve_2", "p_int_1_reserve_2"]
    assert codes(quarantine)["p_int_1_reserve_1"] == errors.JOURNAL_UNBALANCED
    sibling = quarantine.filter(pl.col("posting_id") == "p_int_1_reserve_1")["detail"].to_list()
    assert sibling == ["journal j_int_1_reserve lost 1 posting(s) to quarantine: p_int_1_reserve_2 "
                       "(posting_conflict); it no longer balances"]


def test_a_journal_that_does_not_sum_to_zero_is_quarantined_whole() -> None:
    rows = [
        post("p_adj_1", "j_adj", f"{T}:fees", 10_000),
        post("p_adj_2", "j_adj", f"{T}:funding", -9_900),
    ]
    postings, quarantine = L.validate_postings(raw(*rows, *reserve(2)), ACCOUNTS)
    assert postings["journal_id"].unique().to_list() == ["j_int_2_reserve"]
    bad = quarantine.filter(pl.col("journal_id") == "j_adj")
    assert bad["error_code"].to_list() == [errors.JOURNAL_UNBALANCED] * 2
    assert "EUR 100" in bad["detail"][0]


def test_a_journal_balanced_in_one_currency_only_is_unbalanced() -> None:
    rows = [
        post("p1", "j1", f"{T}:funding", -100),
        post("p2", "j1", f"{T}:customer:0001", 100, currency="USD"),
    ]
    postings, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert postings.height == 0 and set(codes(quarantine).values()) == {errors.JOURNAL_UNBALANCED}


def test_journal_sums_cannot_wrap_around_int64() -> None:
    big = 2**63 - 1
    rows = [
        post("p1", "j1", f"{T}:customer:0001", big),
        post("p2", "j1", f"{T}:customer:0002", big),
        post("p3", "j1", f"{T}:merchant:001", 2),  # int64 sum wraps to exactly 0
    ]
    postings, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert postings.height == 0 and quarantine.height == 3


def test_rows_are_conserved() -> None:
    rows = [*reserve(1), *reserve(1), *reserve(2), dict(reserve(3)[0], amount_type="real"), reserve(3)[1]]
    postings, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    collapsed = L.collapsed_rereads(raw(*rows))
    assert (postings.height, quarantine.height, collapsed) == (4, 2, 2)
    assert inv.rows_conserved(len(rows), postings.height, quarantine.height, collapsed) == []


# ------------------------------------------------------------------------ chain ---


def entries_of(*rows: dict) -> pl.DataFrame:
    postings, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
    assert quarantine.height == 0, quarantine
    return L.chain_entries(postings)


def test_the_chain_starts_at_zeros_and_hashes_the_canonical_row() -> None:
    entries = entries_of(*reserve(1))
    first = entries.row(0, named=True)
    text = (
        f"p_int_1_reserve_1|j_int_1_reserve|int_1|{T}|{T}:customer:0001|EUR|-125000|"
        "2026-11-24T10:00:00.000000Z|svc_core|int_1:j_int_1_reserve"
    )
    assert first["prev_hash"] == "0" * 64
    assert first["entry_hash"] == hashlib.sha256(("0" * 64 + "\n" + text).encode()).hexdigest()
    assert entries["prev_hash"][1] == first["entry_hash"]
    assert entries["entry_seq"].to_list() == [1, 2]


def test_entries_are_ordered_and_sequenced_per_tenant() -> None:
    beta = [
        post("p_b1", "j_b", "t_beta:funding", -5, tenant_id="t_beta", posted_at_text="2026-11-23 00:00:00"),
        post("p_b2", "j_b", "t_beta:customer:0001", 5, tenant_id="t_beta", posted_at_text="2026-11-23 00:00:00"),
    ]
    entries = entries_of(*reserve(2, at="2026-11-25 00:00:00"), *reserve(1), *beta)
    assert entries.select("tenant_id", "entry_seq", "journal_id").rows() == [
        (T, 1, "j_int_1_reserve"), (T, 2, "j_int_1_reserve"), (T, 3, "j_int_2_reserve"), (T, 4, "j_int_2_reserve"),
        ("t_beta", 1, "j_b"), ("t_beta", 2, "j_b"),
    ]
    assert entries.filter(pl.col("entry_seq") == 1)["prev_hash"].to_list() == ["0" * 64] * 2
    assert L.verify_chain(entries) == []


def test_editing_one_amount_breaks_the_chain() -> None:
    entries = entries_of(*reserve(1), *reserve(2))
    tampered = entries.with_columns(
        amount_minor=pl.when(pl.col("posting_id") == "p_int_2_reserve_2").then(1).otherwise(pl.col("amount_minor"))
    )
    violations = L.verify_chain(tampered)
    assert len(violations) == 1 and "p_int_2_reserve_2" in violations[0] and "entry_hash" in violations[0]


@pytest.mark.parametrize("column", ["posted_at", "actor_id", "idempotency_key", "account_id"])
def test_editing_any_hashed_field_breaks_the_chain(column: str) -> None:
    entries = entries_of(*reserve(1))
    value = datetime(2026, 11, 24, 10, 0, 1, tzinfo=UTC) if column == "posted_at" else f"{T}:fees"
    tampered = entries.with_columns(pl.when(pl.col("entry_seq") == 2).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))
    assert L.verify_chain(tampered) != []


def test_deleting_an_entry_breaks_the_chain() -> None:
    entries = entries_of(*reserve(1), *reserve(2))
    violations = L.verify_chain(entries.filter(pl.col("entry_seq") != 2))
    assert any("entry_seq" in v for v in violations) and any("prev_hash" in v for v in violations)


def _rechain(ordered: pl.DataFrame) -> pl.DataFrame:
    """An attacker's consistent re-chain of rows in the given order (single tenant)."""
    prev, hashes = "0" * 64, []
    for text in ordered.select(L.canonical_text()).to_series().to_list():
        prev = hashlib.sha256((prev + "\n" + text).encode()).hexdigest()
        hashes.append(prev)
    return ordered.with_columns(
        entry_seq=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        entry_hash=pl.Series(hashes),
        prev_hash=pl.Series(["0" * 64, *hashes[:-1]]),
    )


def test_a_consistently_rehashed_chain_in_the_wrong_order_is_caught() -> None:
    entries = entries_of(*reserve(1, at="2026-11-24 10:00:00"), *reserve(2, at="2026-11-25 10:00:00"))
    assert L.verify_chain(_rechain(entries)) == []
    reordered = _rechain(entries.sort("posted_at", "posting_id", descending=True))
    violations = L.verify_chain(reordered)
    assert violations and all("order" in v for v in violations)


# --------------------------------------------------------------------- balances ---


def two_days() -> pl.DataFrame:
    return entries_of(
        post("p_open_1", "j_open", f"{T}:funding", -1_000, posted_at_text="2026-11-23 00:00:00"),
        post("p_open_2", "j_open", f"{T}:customer:0001", 1_000, posted_at_text="2026-11-23 00:00:00"),
        *reserve(1, 300, at="2026-11-24 09:00:00"),
        *reserve(2, 200, at="2026-11-24 18:00:00"),
        *reserve(3, 100, at="2026-11-26 18:00:00"),
    )


def test_balances_are_the_sums_per_account_and_currency() -> None:
    balances, _ = L.rebuild_balances(two_days())
    expected = pl.DataFrame(
        [(T, f"{T}:customer:0001", "EUR", 400), (T, f"{T}:funding", "EUR", -1_000), (T, f"{T}:reserved", "EUR", 600)],
        schema=L.BALANCE_SCHEMA, orient="row",
    )
    assert_frame_equal(balances, expected)


def test_daily_closing_is_opening_plus_the_days_movements() -> None:
    _, daily = L.rebuild_balances(two_days())
    customer = daily.filter(pl.col("account_id") == f"{T}:customer:0001")
    expected = pl.DataFrame(
        [
            (T, f"{T}:customer:0001", "EUR", date(2026, 11, 23), 0, 1_000, 1_000),
            (T, f"{T}:customer:0001", "EUR", date(2026, 11, 24), 1_000, -500, 500),
            (T, f"{T}:customer:0001", "EUR", date(2026, 11, 26), 500, -100, 400),
        ],
        schema=L.DAILY_SCHEMA, orient="row",
    )
    assert_frame_equal(customer, expected)
    assert inv.closing_is_opening_plus_movements(daily) == []


def test_closing_balances_carry_over_days_without_movement() -> None:
    _, daily = L.rebuild_balances(two_days())
    at = L.closing_balances_at(daily, date(2026, 11, 25))
    assert at.select("account_id", "last_movement_day", "balance_minor").rows() == [
        (f"{T}:customer:0001", date(2026, 11, 24), 500),
        (f"{T}:funding", date(2026, 11, 23), -1_000),
        (f"{T}:reserved", date(2026, 11, 24), 500),
    ]
    assert L.closing_balances_at(daily, date(2026, 11, 22)).height == 0


# --------------------------------------------------------------- views, findings ---


def test_duplicate_journals_are_kept_and_listed() -> None:
    first = reserve(1)
    dup = [dict(r, posting_id=r["posting_id"] + "_dup", journal_id="j_int_1_reserve_dup") for r in first]
    entries = entries_of(*first, *dup)
    assert entries.height == 4
    dups = L.duplicate_journals(entries)
    assert dups.select("tenant_id", "intent_id", "idempotency_key", "journal_ids", "amount_minor", "currency").rows() == [
        (T, "int_1", "int_1:j_int_1_reserve", "j_int_1_reserve,j_int_1_reserve_dup", 125_000, "EUR")
    ]


def test_duplicate_journals_lists_only_keys_with_several_journals() -> None:
    """A key whose postings all share one journal is no duplicate; a null tenant is a
    tenant of its own (as in a group by); the intent is the smallest non-null one."""
    entries = pl.DataFrame(
        {
            "tenant_id": ["t", "t", "t", None, None, "t", "u", "u"],
            "idempotency_key": ["k", "k", "k", "k", "k", None, "solo", "solo"],
            "journal_id": ["j2", "j1", "j1", "j3", "j4", "j9", "j5", "j5"],
            "intent_id": [None, "i", None, None, "z", "i", "s", "s"],
            "amount_minor": [5, -5, 7, 1, 2, 3, 4, -4],
            "currency": ["EUR"] * 8,
        }
    )
    assert L.duplicate_journals(entries).rows() == [
        (None, "z", "k", "j3,j4", 2, None, None),
        ("t", "i", "k", "j1,j2", 2, 7, "EUR"),
    ]


def test_intent_view_counts_each_idempotency_key_once() -> None:
    first = reserve(1)
    dup = [dict(r, posting_id=r["posting_id"] + "_dup", journal_id="j_int_1_reserve_dup") for r in first]
    view = L.intent_ledger_view(entries_of(*first, *dup), ACCOUNTS)
    assert view.select("intent_id", "ledger_amount_minor", "ledger_currency", "journals", "released", "captured").rows() == [
        ("int_1", 125_000, "EUR", 2, False, False)
    ]


def capture(n: int, amount: int, at: str = "2026-11-24 12:00:00") -> list[dict]:
    jid = f"j_int_{n}_capture"
    return [
        post(f"p_int_{n}_capture_1", jid, f"{T}:reserved", -amount, intent=f"int_{n}", posted_at_text=at),
        post(f"p_int_{n}_capture_2", jid, f"{T}:settlement", amount, intent=f"int_{n}", posted_at_text=at),
    ]


def release(n: int, amount: int, at: str = "2026-11-24 12:00:00") -> list[dict]:
    jid = f"j_int_{n}_release"
    return [
        post(f"p_int_{n}_release_1", jid, f"{T}:reserved", -amount, intent=f"int_{n}", posted_at_text=at),
        post(f"p_int_{n}_release_2", jid, f"{T}:customer:0001", amount, intent=f"int_{n}", posted_at_text=at),
    ]


def test_intent_view_flags_captured_and_released() -> None:
    entries = entries_of(*reserve(1, 100), *capture(1, 100), *reserve(2, 50), *release(2, 50))
    view = L.intent_ledger_view(entries, ACCOUNTS)
    assert view.select("intent_id", "ledger_amount_minor", "released", "captured").rows() == [
        ("int_1", 100, False, True),
        ("int_2", 50, True, False),
    ]


def settled_without_fee_and_captured_only() -> pl.DataFrame:
    """int_1 captured and settled by a journal with no posting into fees; int_2 captured only."""
    settle = [
        post("p_int_1_settle_1", "j_int_1_settle", f"{T}:settlement", -100, intent="int_1"),
        post("p_int_1_settle_2", "j_int_1_settle", f"{T}:merchant:001", 100, intent="int_1"),
    ]
    return entries_of(*reserve(1, 100), *capture(1, 100), *settle, *reserve(2, 50), *capture(2, 50))


def test_intent_view_flags_settled_only_when_money_leaves_settlement() -> None:
    view = L.intent_ledger_view(settled_without_fee_and_captured_only(), ACCOUNTS)
    assert view.select("intent_id", "captured", "settled").rows() == [("int_1", True, True), ("int_2", True, False)]


def test_intent_view_fee_is_zero_for_a_settle_journal_without_fees_and_null_without_one() -> None:
    view = L.intent_ledger_view(settled_without_fee_and_captured_only(), ACCOUNTS)
    assert view.select("intent_id", "ledger_fee_minor").rows() == [("int_1", 0), ("int_2", None)]


def test_findings_report_negative_balances_and_open_clearing() -> None:
    entries = entries_of(
        *reserve(1, 100, at="2026-11-20 10:00:00", customer="0002"),  # overdraws customer 0002
        *reserve(2, 50, at="2026-11-24 10:00:00"),
        *release(2, 50, at="2026-11-24 11:00:00"),
        *capture(1, 100, at="2026-11-24 12:00:00"),
        post("p_f1", "j_f", f"{T}:funding", -1000, intent=None, idempotency_key=None),
        post("p_f2", "j_f", f"{T}:customer:0001", 1000, intent=None, idempotency_key=None),
    )
    _, daily = L.rebuild_balances(entries)
    findings = L.ledger_findings(entries, ACCOUNTS, daily, datetime(2026, 11, 25, 12, tzinfo=UTC))
    assert findings.schema == pl.Schema(L.FINDING_SCHEMA)
    assert findings.select("finding_type", "account_id", "intent_id", "amount_minor", "since", "age_days", "overdue").rows() == [
        ("clearing_not_zero", f"{T}:settlement", "int_1", 100, datetime(2026, 11, 24, 12, tzinfo=UTC), 1, False),
        ("negative_balance", f"{T}:customer:0002", None, -100, datetime(2026, 11, 20, tzinfo=UTC), 5, True),
    ]


def test_open_clearing_becomes_overdue_after_the_window() -> None:
    entries = entries_of(*reserve(1, 100, at="2026-11-20 10:00:00"), *reserve(2, 5, at="2026-11-24 10:00:00"))
    _, daily = L.rebuild_balances(entries)
    found = L.ledger_findings(entries, ACCOUNTS, daily, datetime(2026, 11, 25, tzinfo=UTC), timedelta(days=3))
    clearing = found.filter(pl.col("finding_type") == "clearing_not_zero")
    assert clearing.select("intent_id", "age_days", "overdue").rows() == [("int_1", 4, True), ("int_2", 0, False)]


# ------------------------------------------------------------------- invariants ---


def test_invariants_hold_on_a_rebuilt_ledger() -> None:
    entries = two_days()
    balances, daily = L.rebuild_balances(entries)
    assert inv.schema_violations(entries, inv.LedgerEntriesModel) == []
    assert inv.schema_violations(balances, inv.LedgerBalancesModel) == []
    assert inv.schema_violations(daily, inv.DailyBalancesModel) == []
    assert inv.journal_balance(entries) == []
    assert inv.balances_sum_to_zero(balances) == []
    assert inv.balances_match_entries(balances, entries) == []
    assert inv.daily_matches_balances(daily, balances) == []
    assert inv.chain_verifies(entries) == []


def test_invariants_catch_broken_frames() -> None:
    entries = two_days()
    balances, daily = L.rebuild_balances(entries)
    edited = entries.with_columns(amount_minor=pl.when(pl.col("entry_seq") == 1).then(-999).otherwise(pl.col("amount_minor")))
    assert inv.journal_balance(edited)[0].invariant == "journal_balance"
    assert inv.balances_match_entries(balances, edited) != []
    off = balances.with_columns(balance_minor=pl.col("balance_minor") + 1)
    assert inv.balances_sum_to_zero(off) != []
    broken_daily = daily.with_columns(closing_minor=pl.col("closing_minor") + 1)
    assert {v.invariant for v in inv.closing_is_opening_plus_movements(broken_daily)} == {
        "closing_is_opening_plus_movements", "opening_is_previous_closing"
    }
    assert inv.rows_conserved(10, 5, 3, 1)[0].invariant == "rows_conserved"
    bad_schema = entries.with_columns(amount_minor=pl.col("amount_minor").cast(pl.Float64), currency=pl.lit("eur"))
    found = inv.schema_violations(bad_schema, inv.LedgerEntriesModel)
    assert {v.invariant for v in found} == {"schema:LedgerEntriesModel"}
    assert any("amount_minor" in v.detail for v in found) and any("currency" in v.detail for v in found)


def test_in_order_is_true_for_strictly_ascending_keys() -> None:
    frame = pl.DataFrame({"t": ["a", "a", "b"], "n": [1, 2, 1]})
    assert L.in_order(frame, ["t", "n"]) is True


def test_in_order_is_false_for_a_descent_a_tie_or_a_null() -> None:
    assert L.in_order(pl.DataFrame({"t": ["a", "b", "a"], "n": [1, 1, 2]}), ["t", "n"]) is False
    assert L.in_order(pl.DataFrame({"t": ["a", "a"], "n": [1, 1]}), ["t", "n"]) is False
    assert L.in_order(pl.DataFrame({"t": ["a", None], "n": [1, 2]}), ["t", "n"]) is False
    assert L.in_order(pl.DataFrame({"t": [None], "n": [1]}), ["t", "n"]) is False


def test_chain_of_shuffled_postings_equals_chain_of_sorted_ones() -> None:
    entries = two_days()
    postings = entries.select(L.POSTING_COLUMNS)
    assert_frame_equal(L.chain_entries(postings.reverse()), L.chain_entries(postings))
    assert L.verify_chain(entries.reverse()) == []


def test_unique_values_holds_on_a_chained_ledger() -> None:
    assert inv.unique_values(two_days(), inv.ENTRY_UNIQUE) == []


def test_unique_values_reports_a_repeated_posting_id_and_entry_hash() -> None:
    entries = two_days()
    copy = entries.head(1)
    found = inv.unique_values(pl.concat([entries, copy]), inv.ENTRY_UNIQUE)
    assert [v.invariant for v in found] == ["unique_values", "unique_values"]
    assert found[0].detail.startswith("posting_id: 2 row(s) share their value")
    assert found[1].detail.startswith("entry_hash: 2 row(s) share their value")


def test_unique_values_leaves_nulls_to_the_schema() -> None:
    frame = pl.DataFrame({"posting_id": ["a", None, None, "b"]})
    assert inv.unique_values(frame, ("posting_id",)) == []


def test_ledger_audit_refuses_duplicate_entries() -> None:
    from zentra_pipelines.ledger_stage import ledger_audit

    entries = two_days()
    doubled = pl.concat([entries, entries.head(1)])
    balances, daily = L.rebuild_balances(entries)
    frames = {"ledger_entries": doubled, "ledger_postings_quarantine": L.empty(L.QUARANTINE_SCHEMA),
              "ledger_balances": balances, "daily_balances": daily}
    found = ledger_audit(doubled.height, 0)(frames)
    assert any(v.startswith("unique_values: posting_id") for v in found)


# --------------------------------------------------------------------- property ---

BASE_ROWS = [
    *reserve(1, 125_000, at="2026-11-24 10:00:00"),
    *capture(1, 125_000, at="2026-11-24 10:00:00"),
    *reserve(2, 7, at="2026-11-24 10:00:00"),
    *release(2, 7, at="2026-11-25 10:00:00"),
    *reserve(3, 9, at="2026-11-24T10:00:00Z"),
    post("p_b1", "j_b", "t_beta:funding", -5, tenant_id="t_beta"),
    post("p_b2", "j_b", "t_beta:customer:0001", 5, tenant_id="t_beta"),
    dict(reserve(4)[0], amount_type="real"),
    reserve(4)[1],
    dict(reserve(5)[0], amount_minor="1"),
    reserve(5)[0],
    reserve(5)[1],
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(list(range(len(BASE_ROWS)))), repeats=st.lists(st.integers(0, len(BASE_ROWS) - 1), max_size=4))
def test_any_arrival_order_gives_identical_entries_and_balances(order: list[int], repeats: list[int]) -> None:
    def build(rows: list[dict]) -> tuple[pl.DataFrame, ...]:
        postings, quarantine = L.validate_postings(raw(*rows), ACCOUNTS)
        entries = L.chain_entries(postings)
        return (entries, quarantine, *L.rebuild_balances(entries))

    reference = build(BASE_ROWS)
    shuffled = build([BASE_ROWS[i] for i in order] + [BASE_ROWS[i] for i in repeats])
    for a, b in zip(reference, shuffled):
        assert_frame_equal(a, b)


def test_entries_read_back_from_the_warehouse_with_naive_utc_timestamps_work_the_same() -> None:
    entries = two_days()
    naive = entries.with_columns(pl.col("posted_at").dt.replace_time_zone(None))
    assert L.verify_chain(naive) == []
    for a, b in zip(L.rebuild_balances(entries), L.rebuild_balances(naive)):
        assert_frame_equal(a, b)
    view, naive_view = L.intent_ledger_view(entries, ACCOUNTS), L.intent_ledger_view(naive, ACCOUNTS)
    assert naive_view["first_posted_at"].dtype == pl.Datetime("us")  # same convention as its input
    assert_frame_equal(view.with_columns(pl.col("first_posted_at").dt.replace_time_zone(None)), naive_view)
    _, daily = L.rebuild_balances(entries)
    as_of = datetime(2026, 11, 30, tzinfo=UTC)
    assert_frame_equal(L.ledger_findings(entries, ACCOUNTS, daily, as_of), L.ledger_findings(naive, ACCOUNTS, daily, as_of))
