"""Routing: which rail and provider carried each accepted intent, and why, as data."""

from __future__ import annotations

import polars as pl


def routing_decisions(intents: pl.DataFrame, decisions: pl.DataFrame, provider_state: pl.DataFrame) -> pl.DataFrame:
    key = ["tenant_id", "intent_id"]
    accepted = intents.join(decisions.filter(pl.col("outcome") == "accepted").select(key), on=key, how="semi")
    # an intent routed through several refs names the first (provider, ref) pair: each ref
    # with its own provider (two separate minima paired one provider with another's ref)
    seen = provider_state.sort(*key, "provider", "provider_ref").group_by(key, maintain_order=True).agg(
        pl.col("provider").first(), pl.col("provider_ref").first(), pl.col("received_at").min().alias("confirmed_at"),
    )
    parts = pl.col("corridor").str.split(":")
    return (
        accepted.join(seen, on=key, how="left")
        .select(
            *key,
            "corridor",
            parts.list.get(0).alias("source_currency"),
            parts.list.get(1).alias("rail"),
            parts.list.get(2).alias("destination_currency"),
            "provider",
            "provider_ref",
            pl.when(pl.col("provider").is_null()).then(pl.lit("pending")).otherwise(pl.lit("routed")).alias("status"),
            pl.when(pl.col("provider").is_null())
            .then(pl.format("corridor {} selects rail {}; no provider callback verified yet",
                            "corridor", parts.list.get(1)))
            .otherwise(pl.format("corridor {} selects rail {}; provider {} confirmed ref {} by a verified callback",
                                 "corridor", parts.list.get(1), "provider", "provider_ref"))
            .alias("reason"),
            pl.col("created_at").alias("decided_at"),
            "confirmed_at",
            pl.lit("svc_routing").alias("service"),
        )
        .sort(key)
    )
