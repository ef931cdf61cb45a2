"""Export a run's ledger entries as a ledger-cli / hledger journal, for `bal` comparisons.

Usage:
  .venv/bin/python bench/export_ledger_journal.py --warehouse HOME/warehouse.duckdb --out FILE.journal

One transaction per journal (dated by its posted_at UTC day, described by journal_id),
one posting per entry: ``account  <amount_minor> <CURRENCY>``. Amounts stay integer
minor units with the currency as the commodity, so both tools add integers and no
decimal conversion (or float) is involved. Entries are the published, accepted
``ledger_entries`` (quarantined postings excluded), so every transaction balances.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import polars as pl

CHUNK = 500_000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warehouse", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    con = duckdb.connect(str(args.warehouse), read_only=True)
    entries = con.sql(
        "SELECT journal_id, account_id, currency, amount_minor, posted_at FROM ledger_entries "
        "ORDER BY posted_at, journal_id, posting_id"
    ).pl()
    con.close()
    first = pl.col("journal_id") != pl.col("journal_id").shift(1)
    lines = entries.select(
        pl.when(first.fill_null(True))
        .then(pl.concat_str([pl.lit("\n"), pl.col("posted_at").dt.strftime("%Y-%m-%d"), pl.lit(" "),
                             pl.col("journal_id"), pl.lit("\n")]))
        .otherwise(pl.lit(""))
        .alias("head"),
        pl.concat_str([pl.lit("    "), pl.col("account_id"), pl.lit("  "), pl.col("amount_minor").cast(pl.String),
                       pl.lit(" "), pl.col("currency")]).alias("posting"),
    ).select(pl.concat_str(["head", "posting"]).alias("line"))["line"]
    with args.out.open("w", encoding="utf-8") as fh:
        fh.write("; Zentra ledger_entries export: amounts in integer minor units, commodity = ISO 4217 code\n")
        for offset in range(0, lines.len(), CHUNK):
            fh.write("\n".join(lines.slice(offset, CHUNK).to_list()))
            fh.write("\n")
    print(f"{entries.height} postings -> {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
