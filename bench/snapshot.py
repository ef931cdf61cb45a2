"""Fingerprint a Zentra home: every warehouse table (rows sorted) and every packet.

Usage:
  .venv/bin/python bench/snapshot.py HOME [--out FILE.json] [--compare OTHER.json]

Used to prove an optimisation changed nothing: run the same inputs before and after
(with the same ``ZENTRA_SIGNING_KEY``, so signatures are comparable), snapshot both
homes and compare. Per table: row count, column names and types, and a SHA-256 over the
rows in a canonical order (sorted by every column, rendered as CSV). Per packet: the
zip's SHA-256 and its manifest's Merkle root. Columns that record *when* something ran
(``archived_at``) are left out and named in the output; the home's own path in
text columns is written ``<home>``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import duckdb
import polars as pl

#: Columns holding the wall clock of the run, not data.
VOLATILE = {"ledger_source_rows": {"archived_at"}}


def table_digest(frame: pl.DataFrame) -> str:
    keys = [c for c, t in frame.schema.items() if not isinstance(t, (pl.List, pl.Struct, pl.Array, pl.Object))]
    if frame.height and keys:
        frame = frame.sort(keys, nulls_last=True, maintain_order=True)
    buf = io.BytesIO()
    frame.with_columns(
        [pl.col(c).bin.encode("hex") for c, t in frame.schema.items() if t == pl.Binary]
        + [pl.col(c).cast(pl.String) for c, t in frame.schema.items() if isinstance(t, (pl.List, pl.Struct))]
    ).write_csv(buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def snapshot(home: Path) -> dict:
    out: dict = {"tables": {}, "packets": {}}
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        names = [r[0] for r in con.sql(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY table_name").fetchall()]
        for name in names:
            frame = con.sql(f'SELECT * FROM "{name}"').pl()
            dropped = sorted(VOLATILE.get(name, set()) & set(frame.columns))
            frame = frame.drop(dropped)
            # paths name the home folder: compare them relative to it
            frame = frame.with_columns(
                [pl.col(c).str.replace_all(str(home.resolve()), "<home>", literal=True)
                 for c, t in frame.schema.items() if t == pl.String])
            out["tables"][name] = {
                "rows": frame.height,
                "schema": [f"{c}:{t}" for c, t in frame.schema.items()],
                "sha256": table_digest(frame),
                "volatile_columns_ignored": dropped,
            }
    finally:
        con.close()
    for path in sorted((home / "packets").rglob("*.zip")):
        data = path.read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            members = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in sorted(zf.namelist())}
        out["packets"][str(path.relative_to(home))] = {
            "merkle_root": manifest["merkle_root"], "members": members}
        out.setdefault("zips", {})[str(path.relative_to(home))] = hashlib.sha256(data).hexdigest()
    return out


def compare(a: dict, b: dict) -> list[str]:
    """Differences in table contents and packet contents (members, Merkle root). The zip
    container's own bytes (compression) are reported apart, by ``zip_differences``."""
    diffs = []
    for kind in ("tables", "packets"):
        for key in sorted(set(a[kind]) | set(b[kind])):
            if a[kind].get(key) != b[kind].get(key):
                diffs.append(f"{kind[:-1]} {key}: {a[kind].get(key)} != {b[kind].get(key)}")
    return diffs


def zip_differences(a: dict, b: dict) -> int:
    za, zb = a.get("zips", {}), b.get("zips", {})
    return sum(1 for k in set(za) | set(zb) if za.get(k) != zb.get(k))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("home", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--compare", type=Path, help="a snapshot JSON to compare with")
    args = p.parse_args()
    snap = snapshot(args.home)
    text = json.dumps(snap, indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    print(f"{len(snap['tables'])} tables, {len(snap['packets'])} packets")
    if args.compare:
        ref = json.loads(args.compare.read_text())
        diffs = compare(ref, snap)
        for d in diffs:
            print("DIFF", d)
        print("tables and packet contents identical" if not diffs else f"{len(diffs)} differences")
        if "zips" in ref:
            print(f"zip containers with other bytes (compression only if the above is identical): "
                  f"{zip_differences(ref, snap)} of {len(snap.get('zips', {}))}")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
