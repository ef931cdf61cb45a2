"""Which rows go into which tenant-day packet, and the day-level checks sealed with them.

Contract section 4: a row belongs to the UTC day of its own timestamp; an intent's
breaks, reviews, decisions, routing and timeline belong to the day the intent was
created. Everything sealed for a past day depends only on that day's rows (ages are
measured at the day's end, not at the run's as_of), so a late callback re-seals exactly
the days it touches and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import polars as pl

#: packet table name -> (warehouse table, timestamp column deciding the day)
DAY_COLUMNS: dict[str, tuple[str, str]] = {
    "callbacks_accepted": ("callback_events", "received_at"),
    "callbacks_quarantine": ("callbacks_quarantine", "received_at"),
    "intents": ("intents", "created_at"),
    "intents_quarantine": ("intents_quarantine", "created_at"),
    "policy_decisions": ("policy_decisions", "decided_at"),
    "review_queue": ("review_queue", "opened_at"),
    "ledger_entries": ("ledger_entries", "posted_at"),
    "ledger_postings_quarantine": ("ledger_postings_quarantine", "posted_at"),
    "routing_decisions": ("routing_decisions", "decided_at"),
    "settlements": ("settlements", "settled_at"),
    "settlements_quarantine": ("settlements_quarantine", "settled_at"),
    "deliveries": ("deliveries", "attempted_at"),
    "deliveries_quarantine": ("deliveries_quarantine", "attempted_at"),
    "reconciliation_breaks": ("reconciliation_breaks", "day"),
    "break_log": ("break_log", "day"),
    "intent_timeline": ("intent_timeline", "intent_created_at"),
    "data_contracts": ("data_contract_results_by_tenant", "day"),
}

#: Parse caches behind a packet's accepted intents, deliveries and settlements, whose
#: tables keep no line provenance of their own (a retry in another file collapses into
#: the first row): the landing files behind a tenant-day's rows are read from them, each
#: line dated by its own timestamp, for the manifest's ``source_inputs``.
PROVENANCE_COLUMNS: dict[str, str] = {
    "intents_parsed": "created_at",
    "deliveries_parsed": "attempted_at",
    "settlements_parsed": "settled_at",
}

#: Columns never sealed: raw lines stay in the warehouse archive.
DROP_COLUMNS = {"raw", "text", "content_hash"}

#: Columns a packet recomputes as of its day's end (the warehouse holds them as of the
#: run, so they move every day): sealed, but not inputs of the packet.
DAY_END_COLUMNS = {"reconciliation_breaks": frozenset({"age_days"})}


@dataclass(frozen=True)
class TenantDay:
    tenant_id: str
    period: date


def day_end(day: date) -> datetime:
    return datetime.combine(day, time(0)) + timedelta(days=1)


def allocate(
    frames: Mapping[str, pl.DataFrame], tenants: Sequence[str]
) -> dict[TenantDay, dict[str, pl.DataFrame]]:
    """Split every packet table by (tenant, UTC day). Rows of unconfigured tenants and
    rows without a usable timestamp stay in the warehouse only."""
    out: dict[TenantDay, dict[str, pl.DataFrame]] = {}
    wanted = pl.Series(sorted(tenants), dtype=pl.String)
    for name, frame in frames.items():
        _, column = DAY_COLUMNS[name]
        if frame.height == 0:
            continue
        keep = [c for c in frame.columns if c not in DROP_COLUMNS]
        dated = frame.select(keep).with_columns(_day=pl.col(column).cast(pl.Date)).filter(
            pl.col("tenant_id").is_in(wanted.implode()) & pl.col("_day").is_not_null()
        )
        for (tenant, day), part in dated.partition_by(["tenant_id", "_day"], as_dict=True).items():
            out.setdefault(TenantDay(tenant, day), {})[name] = part.drop("_day")
    return out


def age_at_day_end(breaks: pl.DataFrame, day: date) -> pl.DataFrame:
    """Ages as they stood when the day closed: stable however late the packet is re-sealed
    (the ``DAY_END_COLUMNS`` of reconciliation_breaks). A break first seen after the day
    closed (an intent's break belongs to its creation day, a late callback shows it later)
    had no age then: null, not a negative number of days."""
    end = pl.lit(day_end(day))
    return breaks.with_columns(
        age_days=pl.when(pl.col("first_seen") <= end)
        .then((end - pl.col("first_seen")).dt.total_days())
        .cast(pl.Int64)
    )


def day_counts(tables: Mapping[str, pl.DataFrame]) -> dict[str, int]:
    counts = {f"rows_{name}": frame.height for name, frame in sorted(tables.items())}
    breaks = tables.get("reconciliation_breaks")
    if breaks is not None and breaks.height:
        for kind, n in sorted(breaks.group_by("break_type").len().iter_rows()):
            counts[f"breaks_{kind}"] = int(n)
    decisions = tables.get("policy_decisions")
    if decisions is not None and decisions.height:
        for outcome, n in sorted(decisions.group_by("outcome").len().iter_rows()):
            counts[f"decisions_{outcome}"] = int(n)
    reviews = tables.get("review_queue")
    counts["open_reviews"] = 0 if reviews is None else reviews.filter(pl.col("status") == "open").height
    return counts


def day_checks(tables: Mapping[str, pl.DataFrame], all_journal_sums: pl.DataFrame) -> list[dict[str, object]]:
    """Integrity checks that hold for the day's rows alone (stable once the day is closed)."""
    checks: list[dict[str, object]] = []
    entries = tables.get("ledger_entries", pl.DataFrame())
    if entries.height:
        journals = entries.select("journal_id").unique()
        unbalanced = all_journal_sums.join(journals, on="journal_id", how="semi").filter(pl.col("total") != 0)
        checks.append({
            "name": "journals_balance",
            "passed": unbalanced.height == 0,
            "detail": f"{journals.height} journals, {unbalanced.height} not summing to zero per currency",
        })
        ordered = entries.sort("entry_seq")
        broken = ordered.filter(
            pl.col("prev_hash") != pl.col("entry_hash").shift(1)
        ).filter(pl.col("entry_seq") != ordered["entry_seq"].min())
        gaps = ordered.filter(pl.col("entry_seq").diff().fill_null(1) != 1).height
        checks.append({
            "name": "hash_chain_links",
            "passed": broken.height == 0 and gaps == 0,
            "detail": f"{ordered.height} entries from seq {ordered['entry_seq'].min()} to "
                      f"{ordered['entry_seq'].max()}; {broken.height} broken links, {gaps} gaps",
        })
    balances = tables.get("closing_balances")
    if balances is not None and balances.height:
        sums = balances.group_by("currency").agg(pl.col("balance_minor").sum())
        off = sums.filter(pl.col("balance_minor") != 0)
        checks.append({
            "name": "closing_balances_sum_to_zero",
            "passed": off.height == 0,
            "detail": f"{balances.height} closing balances over {sums.height} currencies; {off.height} not netting to zero",
        })
    return checks
