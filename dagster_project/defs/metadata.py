"""Materialization metadata a controller reads at a glance: counts and Markdown tables."""

from collections.abc import Mapping

import dagster as dg
import polars as pl


def md_counts(counts: Mapping[str, object], key: str = "code", value: str = "rows") -> dg.MarkdownMetadataValue:
    lines = [f"| {key} | {value} |", "| --- | ---: |"]
    lines += [f"| `{k}` | {v:,} |" if isinstance(v, int) else f"| `{k}` | `{v}` |" for k, v in counts.items()]
    if len(lines) == 2:
        lines.append("| (none) | 0 |")
    return dg.MetadataValue.md("\n".join(lines))


def md_frame(frame: pl.DataFrame, limit: int = 50) -> dg.MarkdownMetadataValue:
    if frame.height == 0:
        return dg.MetadataValue.md("_none_")
    cols = frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for row in frame.head(limit).iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    if frame.height > limit:
        lines.append(f"\n_{frame.height - limit} more rows in the warehouse_")
    return dg.MetadataValue.md("\n".join(lines))


def check_result(violations: list[str], *, blocking: bool = True) -> dg.AssetCheckResult:
    """Violations → a check result: ERROR for integrity invariants, WARN for business findings."""
    return dg.AssetCheckResult(
        passed=not violations,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        metadata={"violations": len(violations), "first": "; ".join(violations[:5]) or "none"},
    )


def md_rows(rows: list[Mapping[str, object]], columns: list[str], empty: str = "_none_") -> dg.MarkdownMetadataValue:
    """A Markdown table from plain dicts (numbers right-aligned, thousands separated)."""
    if not rows:
        return dg.MetadataValue.md(empty)

    def cell(v: object) -> str:
        if v is None:
            return ""
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v).replace("|", "\\|")

    numeric = {c for c in columns if all(isinstance(r.get(c), int) and not isinstance(r.get(c), bool) for r in rows)}
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "".join(" ---: |" if c in numeric else " --- |" for c in columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def md_amounts(frame: pl.DataFrame, group: str = "break_type", currency: str = "currency",
               amount: str = "amount_minor") -> dg.MarkdownMetadataValue:
    """Amounts at risk per currency (integer minor units), one row per ``group`` and currency."""
    if frame.height == 0:
        return dg.MetadataValue.md("_nothing at risk_")
    totals = (frame.group_by(group, currency).agg(pl.col(amount).abs().sum().alias(amount))
              .sort(group, currency))
    return md_rows(totals.to_dicts(), [group, currency, amount])

