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


def quarantine_all(
    judged: pl.DataFrame, split: Deduped, conflict_code: str, conflict_detail: pl.Expr, columns: list[str]
) -> pl.DataFrame:
    """Every quarantined line of a source: those judged bad line by line, then every copy
    of a conflicting id under ``conflict_code``; sorted by where the lines came from."""
    conflicts = split.conflict_lines.with_columns(error_code=pl.lit(conflict_code), detail=conflict_detail)
    return pl.concat(
        [judged.filter(pl.col("error_code").is_not_null()).select(columns), conflicts.select(columns)],
        how="vertical_relaxed",
    ).sort("source_file", "line_no", "file_sha256")
