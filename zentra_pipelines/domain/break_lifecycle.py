"""Break lifecycle: open while the disagreement exists, resolved once it no longer does.

Breaks are recomputed from scratch every run; the log remembers what earlier runs saw,
so when a late callback or a corrected posting makes a break disappear, the break is
kept as ``resolved`` (with the data time it was resolved at, never the wall clock) and
the day's packet is re-sealed recording the resolution.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

KEY = ["tenant_id", "intent_id", "provider_ref", "break_type"]
LOG_COLUMNS = KEY + [
    "day", "first_seen", "owner", "ledger_amount_minor", "provider_amount_minor", "currency", "reason",
    "status", "resolved_as_of",
]


def update_log(previous: pl.DataFrame | None, current: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """Current breaks are open; earlier breaks absent now are resolved (once, at ``as_of``)."""
    now = current.with_columns(status=pl.lit("open"), resolved_as_of=pl.lit(None, pl.Datetime("us"))).select(LOG_COLUMNS)
    if previous is None or previous.height == 0:
        return now.sort(KEY, nulls_last=True)
    gone = previous.select(LOG_COLUMNS).join(now.select(KEY), on=KEY, how="anti", nulls_equal=True).with_columns(
        resolved_as_of=pl.when(pl.col("status") == "resolved").then(pl.col("resolved_as_of")).otherwise(pl.lit(as_of)),
        status=pl.lit("resolved"),
    )
    return pl.concat([now, gone.select(LOG_COLUMNS)], how="vertical_relaxed").sort(KEY, nulls_last=True)
