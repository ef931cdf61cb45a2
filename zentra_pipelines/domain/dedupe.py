"""At-least-once delivery, one rule everywhere: retries collapse, reused ids conflict.

Like TigerBeetle and Formance, a reused id with a different payload is refused rather
than answered with the old result: every copy is quarantined so that no arrival order
can decide which one wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

#: Where a line came from: unique per line, the order of every quarantine.
LINE_KEY = ["source_file", "line_no", "file_sha256"]


@dataclass(frozen=True)
class Deduped:
    accepted: pl.DataFrame  # every line whose id has one content (retries included)
    conflict_lines: pl.DataFrame  # every line whose id arrived with several contents
    conflicts: pl.DataFrame  # one row per conflicting id: key columns + `contents`


def split_conflicts(ok: pl.DataFrame, key: list[str], content: str = "content_hash") -> Deduped:
    # An id with several contents has its smallest and largest content apart, or mixes
    # null with a value. Found per 64-bit hash of the id (two ids sharing a hash only add
    # a candidate, never hide one) over just that hash and the content column, then the
    # distinct contents are counted exactly, by id, on the candidates' lines alone. With
    # no conflict at all (the usual case) ``accepted`` is ``ok`` itself, not a copy.
    id_hash = pl.struct(key).hash()
    spread = (
        ok.select(id_hash.alias("_id"), pl.col(content))
        .group_by("_id")
        .agg(
            pl.col(content).min().alias("_min"),
            pl.col(content).max().alias("_max"),
            pl.col(content).null_count().alias("_nulls"),
            pl.len().alias("_n"),
        )
    )
    candidates = spread.filter(
        (pl.col("_min") != pl.col("_max")).fill_null(False) | ((pl.col("_nulls") > 0) & (pl.col("_nulls") < pl.col("_n")))
    ).get_column("_id")
    del spread
    # no candidate (the usual case): no second pass hashing every id again to find none
    candidate_lines = ok.filter(id_hash.is_in(candidates.implode())) if candidates.len() else ok.clear()
    contents = candidate_lines.group_by(key).agg(pl.col(content).n_unique().alias("contents"))
    conflicting = contents.filter(pl.col("contents") > 1).sort(key)
    if conflicting.height == 0:
        return Deduped(accepted=ok, conflict_lines=ok.clear().join(conflicting, on=key, how="inner"),
                       conflicts=conflicting)
    return Deduped(
        accepted=ok.join(conflicting, on=key, how="anti", maintain_order="left"),
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
    ).sort(LINE_KEY)


def requarantined(published: pl.DataFrame, redone: pl.DataFrame, quarantine: pl.DataFrame) -> pl.DataFrame:
    """A published quarantine with the lines judged again replaced: the rows of ``redone``'s
    lines (``LINE_KEY``) go, ``quarantine`` (what judging them again quarantined) comes in,
    in the order ``quarantine_all`` gives a whole quarantine."""
    return pl.concat(
        [published.join(redone.select(LINE_KEY), on=LINE_KEY, how="anti"), quarantine], how="vertical"
    ).sort(LINE_KEY)


def accept_changes(
    accept: Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame]], lines: pl.DataFrame,
    quarantine: pl.DataFrame, key: list[str],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """What ``accept`` (a source's lines -> (one row per accepted key, quarantine)) of every
    parsed line gives, from its published result over every line but those of some new
    files (``quarantine``, and the table of accepted rows) and ``lines``: every line of the
    new files and every ok line of each key an ok line of theirs carries
    (``intake.changed_lines``). Only those keys can change: a key's copies and conflict
    are decided by its own lines, all of them in ``lines``.

    Returns (the accepted rows of those keys, which replace the published rows of the keys;
    the whole quarantine, in ``quarantine_all``'s order; the keys).
    """
    ok = lines.filter(pl.col("error_code").is_null())
    rows, part = accept(lines)
    return rows, requarantined(quarantine, ok, part), ok.select(key).unique()


def same_as_previous(keys: list[str]) -> pl.Expr:
    """On rows sorted by ``keys`` (+ more): does this row continue the previous row's group?

    Null-aware, like ``over()``'s grouping (a null key is one group); the first row
    never continues anything. Masked shifts on sorted rows replace ``over()`` windows,
    which hash every key again for each window (seconds per million rows).
    """
    same = pl.int_range(pl.len()) > 0
    for key in keys:
        same = same & pl.col(key).eq_missing(pl.col(key).shift(1))
    return same
