"""What the Great Expectations data contracts cost, per source and in total.

Usage:
  .venv/bin/python bench/bench_data_contracts.py --warehouse var/home/warehouse.duckdb
  .venv/bin/python bench/bench_data_contracts.py --rows 100000 --rows 2500000 [--sources ledger_entries]

``--warehouse`` validates the published tables of a real run (opened read-only);
``--rows N`` validates synthetic, contract-clean tables of N rows per source (three
tenants, seven UTC days). Prints one JSON object per measurement: wall and CPU seconds
(the CPU figure is the one to compare on a shared machine), split into the one-off GX
engine setup, Polars -> pandas conversion, the GX suite validation and the per-tenant
derivation. Results are never written anywhere.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zentra_pipelines import data_contracts as dc  # noqa: E402


def synthetic(source: str, n: int) -> pl.DataFrame:
    """A contract-clean table of n rows with the source's exact schema."""
    contract = next(c for c in dc.CONTRACTS if c.source == source)
    i = pl.int_range(0, n, eager=True)
    tenant = (i % 3).replace_strict({0: "t_alpha", 1: "t_beta", 2: "t_gamma"}, return_dtype=pl.String)
    step = 7 * 86400 // max(n, 1) or 1
    ts = pl.select((pl.lit(datetime(2026, 11, 20)).cast(pl.Datetime("us")) + pl.duration(seconds=i * step)).alias("ts"))
    base = pl.DataFrame({"i": i, "tenant_id": tenant}).with_columns(ts["ts"])
    ident = lambda prefix: pl.lit(prefix) + pl.col("i").cast(pl.String)  # noqa: E731
    hex64 = pl.col("i").cast(pl.String).hash().cast(pl.String).str.pad_start(64, "0")
    exprs: dict[str, pl.Expr] = {
        "tenant_id": pl.col("tenant_id"),
        "provider": pl.lit("acme_pay"), "provider_ref": ident("ap_"), "intent_id": ident("in_"),
        "event_id": ident("evt_"), "webhook_id": ident("msg_"), "delivery_id": ident("dlv_"),
        "posting_id": ident("p_"), "journal_id": pl.lit("j_") + (pl.col("i") // 2).cast(pl.String),
        "account_id": pl.col("tenant_id") + pl.lit(":funding"), "actor_id": pl.lit("op_1"),
        "idempotency_key": ident("k_"), "batch_id": pl.lit("b_1"), "scope": pl.lit("ws"),
        "kind": pl.lit("payment"), "type": pl.lit("payment.captured"), "api_version": pl.lit("2026-01-01"),
        "currency": pl.lit("EUR"), "ledger_currency": pl.lit("EUR"), "corridor": pl.lit("EUR:SEPA:EUR"),
        "primitives": pl.lit("ledger"), "endpoint": pl.lit("https://hooks.example/zentra"),
        "source_file": pl.lit("landing/file.jsonl"), "file_sha256": pl.lit("a" * 64), "line_no": pl.col("i") + 1,
        "content_hash": hex64, "prev_hash": hex64, "entry_hash": hex64, "entry_seq": pl.col("i") + 1,
        "amount_minor": pl.col("i") * 10 + 1, "gross_minor": pl.col("i") * 10 + 100, "fee_minor": pl.lit(7),
        "net_minor": pl.col("i") * 10 + 93, "sequence": pl.lit(1), "webhook_timestamp": pl.lit(1764064800),
        "attempt": pl.lit(1), "status_code": pl.lit(200), "latency_ms": pl.lit(20), "error": pl.lit(None, pl.String),
        "error_code": pl.lit(None, pl.String), "detail": pl.lit(None, pl.String), "copies": pl.lit(1),
        "events_seen": pl.lit(1),
    }
    for c in ("received_at", "occurred_at", "first_received_at", "created_at", "settled_at", "attempted_at", "posted_at"):
        exprs[c] = pl.col("ts")
    return base.select(exprs[c].cast(t).alias(c) for c, t in contract.columns.items())


def measure(frames: dict[str, pl.DataFrame], label: str) -> None:
    sources = [s for s in dc.SOURCES if s in frames]
    w0, c0 = time.perf_counter(), time.process_time()
    report = dc.validate_frames(frames, sources=sources)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    out = {
        "label": label, "rows": report.rows, "expectations": report.expectations,
        "failed": report.failed_count(), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
        "engine_setup_s": report.engine_s, "per_source": report.timing_detail,
        "by_tenant_rows": report.by_tenant.height,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(out), flush=True)
    if report.failed_count():
        print(json.dumps({"label": label, "failures": dc.describe_failures(report.failed)[:20]}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", type=Path, action="append", default=[])
    ap.add_argument("--rows", type=int, action="append", default=[])
    ap.add_argument("--sources", nargs="*", default=list(dc.SOURCES))
    ap.add_argument("--repeat", type=int, default=2, help="runs per input (the first one pays GX setup)")
    args = ap.parse_args()

    w0, c0 = time.perf_counter(), time.process_time()
    dc.engine()
    print(json.dumps({"label": "gx_engine_setup", "wall_s": round(time.perf_counter() - w0, 3),
                      "cpu_s": round(time.process_time() - c0, 3)}), flush=True)
    for path in args.warehouse:
        con = duckdb.connect(str(path), read_only=True)
        try:
            frames = {s: con.sql(f'SELECT * FROM "{s}"').pl() for s in args.sources}  # names from the allowlist
        finally:
            con.close()
        for k in range(args.repeat):
            measure(frames, f"{path} run {k + 1}")
    for n in args.rows:
        frames = {s: synthetic(s, n) for s in args.sources}
        for k in range(args.repeat):
            measure(frames, f"synthetic {n:,} rows/source run {k + 1}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
