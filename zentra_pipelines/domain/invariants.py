"""Blocking invariants of the ledger: what must hold before a table may be published.

Pure functions returning ``list[Violation]`` (empty = holds). The ledger stage runs
them against the *staged* tables inside ``Warehouse.publish``; one violation keeps the
previously published tables in place. Sums are taken in Int128 so that a hostile amount
near the 64-bit limit cannot wrap a non-zero total to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandera.polars as pa
import polars as pl
from pandera.engines import polars_engine as pe

from zentra_pipelines.domain import frames
from zentra_pipelines.domain.ledger import BALANCE_KEY, verify_chain

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
_CURRENCY = r"^[A-Z]{3}$"
_HEX64 = r"^[0-9a-f]{64}$"


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


# ------------------------------------------------------------------------ schemas ---


class LedgerEntriesModel(pa.DataFrameModel):
    """Types, nullability and formats; posting_id and entry_hash uniqueness is
    ``unique_values`` (ENTRY_UNIQUE), exact and ~7x cheaper than Pandera's at 6M rows."""

    posting_id: str = pa.Field(nullable=False, str_matches=_ID)
    journal_id: str = pa.Field(nullable=False, str_matches=_ID)
    intent_id: str = pa.Field(nullable=True, str_matches=_ID)
    tenant_id: str = pa.Field(nullable=False, str_matches=_ID)
    account_id: str = pa.Field(nullable=False, str_matches=_ID)
    currency: str = pa.Field(nullable=False, str_matches=_CURRENCY)
    amount_minor: pl.Int64 = pa.Field(nullable=False)
    posted_at: pe.DateTime = pa.Field(nullable=False, dtype_kwargs={"time_unit": "us", "time_zone": "UTC"})
    actor_id: str = pa.Field(nullable=True, str_matches=_ID)
    idempotency_key: str = pa.Field(nullable=True, str_matches=_ID)
    entry_seq: pl.Int64 = pa.Field(nullable=False, ge=1)
    prev_hash: str = pa.Field(nullable=False, str_matches=_HEX64)
    entry_hash: str = pa.Field(nullable=False, str_matches=_HEX64)

    class Config:
        strict = True
        ordered = True


class LedgerBalancesModel(pa.DataFrameModel):
    tenant_id: str = pa.Field(nullable=False, str_matches=_ID)
    account_id: str = pa.Field(nullable=False, str_matches=_ID)
    currency: str = pa.Field(nullable=False, str_matches=_CURRENCY)
    balance_minor: pl.Int64 = pa.Field(nullable=False)

    class Config:
        strict = True
        ordered = True
        unique = ["tenant_id", "account_id", "currency"]


class DailyBalancesModel(pa.DataFrameModel):
    tenant_id: str = pa.Field(nullable=False, str_matches=_ID)
    account_id: str = pa.Field(nullable=False, str_matches=_ID)
    currency: str = pa.Field(nullable=False, str_matches=_CURRENCY)
    day: pl.Date = pa.Field(nullable=False)
    opening_minor: pl.Int64 = pa.Field(nullable=False)
    movements_minor: pl.Int64 = pa.Field(nullable=False)
    closing_minor: pl.Int64 = pa.Field(nullable=False)

    class Config:
        strict = True
        ordered = True
        unique = ["tenant_id", "account_id", "currency", "day"]


def schema_violations(frame: pl.DataFrame, model: type[pa.DataFrameModel], *, limit: int = 50) -> list[Violation]:
    """Pandera (Polars API) validation, lazily collecting every failure as a Violation."""
    name = f"schema:{model.__name__}"
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        if not isinstance(cases, pl.DataFrame):  # pragma: no cover - pandera returns Polars here
            cases = pl.DataFrame(cases)
        grouped = (
            cases.with_columns(pl.col("failure_case").cast(pl.String).str.slice(0, 80))
            .group_by("column", "check", maintain_order=True)
            .agg(pl.len().alias("n"), pl.col("failure_case").head(3).str.join(" | ").alias("examples"))
        )
        out = [
            Violation(name, f"{col or '(frame)'}: {check} failed for {n} row(s), e.g. {examples}")
            for col, check, n, examples in grouped.iter_rows()
        ]
        return out[:limit]
    except pa.errors.SchemaError as err:  # pragma: no cover - lazy=True raises SchemaErrors
        return [Violation(name, str(err)[:300])]
    return []


#: Columns of ledger_entries that hold a different value on every row.
ENTRY_UNIQUE = ("posting_id", "entry_hash")


def unique_values(frame: pl.DataFrame, columns: tuple[str, ...], *, limit: int = 3) -> list[Violation]:
    """No two rows share a (non-null) value of each column; nulls are the schema's concern.

    Exact, and cheap on millions of strings (``frames.repeated``: a sort of 64-bit hashes,
    then an exact comparison of the candidates; Pandera's ``unique=True`` took ~5.5 CPU s
    per column on 6M entries).
    """
    out = []
    for column in columns:
        if column not in frame.columns:
            continue  # a missing column is a schema violation already
        values = frame.select(pl.col(column)).filter(pl.col(column).is_not_null())
        repeated = values.filter(frames.repeated(values, pl.col(column)))
        if repeated.height:
            examples = repeated[column].unique(maintain_order=True).head(limit).cast(pl.String).str.slice(0, 80)
            out.append(Violation(
                "unique_values",
                f"{column}: {repeated.height} row(s) share their value with another row, e.g. {' | '.join(examples)}",
            ))
    return out


def unique_values_with(
    frame: pl.DataFrame, added: pl.DataFrame, columns: tuple[str, ...], *, limit: int = 3
) -> list[Violation]:
    """``unique_values(frame, columns)`` when ``added`` is a subset of ``frame``'s rows and
    the rest were unique already (checked when they were published): the whole column is
    unique exactly when the added values are distinct and none occurs elsewhere, i.e.
    when the rows holding an added value are the added rows alone. The probe is a set
    of the added values, not a hash of every value."""
    out = []
    for column in columns:
        if column not in frame.columns or column not in added.columns:
            continue
        values = added.get_column(column).drop_nulls()
        holding = frame.select(pl.col(column).is_in(values.implode()).sum()).item()
        if holding != values.len() or values.n_unique() != values.len():
            out += unique_values(frame, (column,), limit=limit)
    return out


# ---------------------------------------------------------------------- invariants ---


def journal_balance(entries: pl.DataFrame, *, limit: int = 50) -> list[Violation]:
    """Every journal (per tenant) sums to zero in each currency."""
    off = (
        entries.group_by("tenant_id", "journal_id", "currency")
        .agg(pl.col("amount_minor").cast(pl.Int128).sum().alias("total"))
        .filter(pl.col("total") != 0)
        .sort("tenant_id", "journal_id", "currency")
    )
    return [
        Violation("journal_balance", f"{t} journal {j} sums to {total} {c}, not zero")
        for t, j, c, total in off.head(limit).iter_rows()
    ] + ([Violation("journal_balance", f"(+{off.height - limit} more)")] if off.height > limit else [])


def rows_conserved(received: int, accepted: int, quarantined: int, collapsed: int) -> list[Violation]:
    """received = accepted + quarantined + collapsed: no row vanished, none was invented."""
    if min(received, accepted, quarantined, collapsed) < 0:
        return [Violation("rows_conserved", f"negative count: {received=} {accepted=} {quarantined=} {collapsed=}")]
    if received != accepted + quarantined + collapsed:
        return [
            Violation(
                "rows_conserved",
                f"received {received} != accepted {accepted} + quarantined {quarantined} + collapsed {collapsed}",
            )
        ]
    return []


def closing_is_opening_plus_movements(daily: pl.DataFrame, *, limit: int = 50) -> list[Violation]:
    """closing = opening + movements on every row, and a day's opening is the closing of
    the account's previous day with movement (0 on its first day)."""
    checked = daily.sort(BALANCE_KEY + ["day"]).with_columns(
        _prev=pl.col("closing_minor").shift(1).over(BALANCE_KEY).fill_null(0).cast(pl.Int128),
    )
    arith = checked.filter(
        (pl.col("opening_minor").cast(pl.Int128) + pl.col("movements_minor").cast(pl.Int128)
         != pl.col("closing_minor").cast(pl.Int128)).fill_null(True)
    )
    carry = checked.filter((pl.col("opening_minor").cast(pl.Int128) != pl.col("_prev")).fill_null(True))
    out = [
        Violation("closing_is_opening_plus_movements", f"{t} {a} {c} {d}: {o} + {m} != {cl}")
        for t, a, c, d, o, m, cl in arith.select(*BALANCE_KEY, "day", "opening_minor", "movements_minor", "closing_minor").head(limit).iter_rows()
    ]
    out += [
        Violation("opening_is_previous_closing", f"{t} {a} {c} {d}: opening {o} != previous closing {p}")
        for t, a, c, d, o, p in carry.select(*BALANCE_KEY, "day", "opening_minor", "_prev").head(limit).iter_rows()
    ]
    return out


def balances_sum_to_zero(balances: pl.DataFrame) -> list[Violation]:
    """Double entry: per tenant and currency, all account balances net to zero."""
    off = (
        balances.group_by("tenant_id", "currency")
        .agg(pl.col("balance_minor").cast(pl.Int128).sum().alias("total"), pl.col("balance_minor").null_count().alias("nulls"))
        .filter((pl.col("total") != 0) | (pl.col("nulls") > 0))
        .sort("tenant_id", "currency")
    )
    return [
        Violation("balances_sum_to_zero", f"{t} {c}: balances sum to {total}" + (f" ({n} null)" if n else ""))
        for t, c, total, n in off.iter_rows()
    ]


def balances_match_entries(balances: pl.DataFrame, entries: pl.DataFrame, *, limit: int = 50) -> list[Violation]:
    """Each published balance equals the sum of its entries, and every account with
    entries has a balance (a full outer comparison)."""
    expected = entries.group_by(BALANCE_KEY).agg(pl.col("amount_minor").cast(pl.Int128).sum().alias("expected"))
    have = balances.select(*BALANCE_KEY, pl.col("balance_minor").cast(pl.Int128).alias("have"))
    joined = expected.join(have, on=BALANCE_KEY, how="full", coalesce=True, nulls_equal=True)
    off = joined.filter(
        pl.col("expected").is_null() | pl.col("have").is_null() | (pl.col("expected") != pl.col("have"))
    ).sort(BALANCE_KEY, nulls_last=True)
    return [
        Violation("balances_match_entries", f"{t} {a} {c}: balance {h} but entries sum to {e}")
        for t, a, c, e, h in off.select(*BALANCE_KEY, "expected", "have").head(limit).iter_rows()
    ]


def daily_matches_balances(daily: pl.DataFrame, balances: pl.DataFrame, *, limit: int = 50) -> list[Violation]:
    """The last daily closing of each account-currency is its ledger balance."""
    last = daily.sort(BALANCE_KEY + ["day"]).group_by(BALANCE_KEY).agg(pl.col("closing_minor").last().alias("closing"))
    joined = last.join(balances, on=BALANCE_KEY, how="full", coalesce=True, nulls_equal=True)
    off = joined.filter(
        pl.col("closing").is_null() | pl.col("balance_minor").is_null() | (pl.col("closing") != pl.col("balance_minor"))
    ).sort(BALANCE_KEY, nulls_last=True)
    return [
        Violation("daily_matches_balances", f"{t} {a} {c}: last closing {cl} but balance {b}")
        for t, a, c, cl, b in off.select(*BALANCE_KEY, "closing", "balance_minor").head(limit).iter_rows()
    ]


def chain_verifies(entries: pl.DataFrame, *, limit: int = 50) -> list[Violation]:
    return [Violation("chain_verifies", v) for v in verify_chain(entries, limit=limit)]
