"""At-least-once delivery, one rule everywhere: retries collapse, reused ids conflict.

Like TigerBeetle and Formance, a reused id with a different payload is refused rather
than answered with the old result: every copy is quarantined so that no arrival order
can decide which one wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Deduped:
    accepted: pl.DataFrame  # every line whose id has one content (retries included)
    conflict_lines: pl.DataFrame  # every line whose id arrived with several contents
    conflicts: pl.DataFrame  # one row per conflicting id: key columns + `contents`


def split_conflicts(ok: pl.DataFrame, key: list[str], content: str = "content_hash") -> Deduped:
    contents = ok.group_by(key).agg(pl.col(content).n_unique().alias("contents"))
    conflicting = contents.filter(pl.col("contents") > 1).sort(key)
    return Deduped(
        accepted=ok.join(conflicting, on=key, how="anti"),
        conflict_lines=ok.join(conflicting, on=key, how="inner"),
        conflicts=conflicting,
    )


def quarantine_rows(lines: pl.DataFrame, code: str, detail: pl.Expr, columns: list[str]) -> pl.DataFrame:
    """Lines turned into quarantine rows with one code; other columns kept as named."""
    return lines.with_columns(error_code=pl.lit(code), detail=detail).select(columns)
