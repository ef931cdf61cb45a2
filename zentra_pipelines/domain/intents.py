"""Financial intents (contract 2.2): retries collapse, a reused intent_id with a new body conflicts."""

from __future__ import annotations

import polars as pl

from zentra_pipelines.domain import errors
from zentra_pipelines.domain.dedupe import quarantine_all, split_conflicts

KEY = ["tenant_id", "intent_id"]
INTENT_COLUMNS = [
    "tenant_id", "intent_id", "scope", "kind", "amount_minor", "currency", "ledger_currency",
    "corridor", "actor_id", "created_at", "primitives", "copies", "content_hash",
]
QUARANTINE_COLUMNS = [
    "tenant_id", "intent_id", "source_file", "line_no", "error_code", "detail", "created_at", "file_sha256",
]


def accept_intents(parsed: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(intents, quarantine): one row per accepted intent; one per rejected line."""
    ok = parsed.filter(pl.col("error_code").is_null())
    split = split_conflicts(ok, KEY)
    intents = (
        split.accepted.with_columns(pl.len().over(KEY).alias("copies"))
        .unique(subset=KEY, keep="any")
        .select(INTENT_COLUMNS)
        .sort(KEY)
    )
    quarantine = quarantine_all(
        parsed, split, errors.INTENT_CONFLICT,
        pl.format("intent_id {} arrived with {} different bodies; no copy wins", "intent_id", "contents"),
        QUARANTINE_COLUMNS,
    )
    return intents, quarantine

