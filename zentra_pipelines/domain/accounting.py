"""Row accounting: received = accepted + quarantined, per source and per file."""

from __future__ import annotations

import polars as pl


def rows_conserved_violations(received: int, accepted: int, quarantined: int, source: str) -> list[str]:
    if received != accepted + quarantined:
        return [f"{source}: received {received} != accepted {accepted} + quarantined {quarantined}"]
    return []


def per_file_accounting(
    lines: pl.DataFrame, accepted: pl.DataFrame, quarantined: pl.DataFrame, source: str
) -> pl.DataFrame:
    """One row per landing file: received, accepted, quarantined, balanced."""
    key = ["source_file", "file_sha256"]
    return file_accounting(
        lines.group_by(key).agg(pl.len().alias("received")),
        accepted.group_by(key).agg(pl.len().alias("accepted")),
        quarantined.group_by(key).agg(pl.len().alias("quarantined")),
        source,
    )


def file_accounting(received: pl.DataFrame, accepted: pl.DataFrame, quarantined: pl.DataFrame, source: str) -> pl.DataFrame:
    """The accounting rows from per-file counts (``received``, ``accepted``, ``quarantined``,
    each keyed by source_file and file_sha256), whoever counted them (Polars or the engine):
    a file with no accepted or no quarantined row counts 0 there. A null file_sha256 (the
    source database's row, which is no file) joins with itself."""
    key = ["source_file", "file_sha256"]
    return (
        received.join(accepted, on=key, how="left", nulls_equal=True)
        .join(quarantined, on=key, how="left", nulls_equal=True)
        .with_columns(pl.col("accepted", "quarantined").fill_null(0).cast(pl.Int64), pl.col("received").cast(pl.Int64))
        .with_columns(
            source=pl.lit(source),
            balanced=pl.col("received") == pl.col("accepted") + pl.col("quarantined"),
        )
        .select("source", "source_file", "file_sha256", "received", "accepted", "quarantined", "balanced")
        .sort("source", "source_file", "file_sha256")
    )


def count_by(frame: pl.DataFrame, column: str) -> dict[str, int]:
    """{value: rows} sorted by value, for summaries and metadata."""
    if frame.height == 0:
        return {}
    return {str(k): int(v) for k, v in sorted(frame.group_by(column).len().iter_rows(), key=lambda r: str(r[0]))}
