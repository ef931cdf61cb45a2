"""The floor: the least work anyone could do on a scenario's files, in bare DuckDB.

Usage:
  .venv/bin/python bench/floor.py --scenario bench/out/scenarios/n100000-s7 [--report FILE.json]

Three things only, the irreducible core of ``zentra run``:

1. verify every callback line: Standard Webhooks HMAC-SHA256 composed from two SHA-256
   passes in DuckDB SQL (the same construction the pipeline uses), any of the tenant's
   secrets, and the 300 s replay window;
2. dedupe: the verified events collapse to one state per (tenant, provider,
   provider_ref), the highest sequence winning;
3. rebuild balances: ledger postings read from the source database (connectorx, Arrow),
   re-reads collapsed by posting_id, summed per tenant, account and currency.

No quarantine codes, no duplicate-key or type checks, no conflict detection, no
hash chain, no archive, no packets, no Dagster: the ratio ``zentra run / floor`` says
what all of that costs. Prints and writes one JSON object with the timings.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import time
from pathlib import Path

import connectorx as cx
import duckdb
import polars as pl

BLOCK = 64


def pads(secret: str) -> tuple[bytes, bytes]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


VERIFY = r"""
WITH lines AS (
    SELECT json AS j FROM read_ndjson_objects($files, ignore_errors = true, maximum_object_size = 4194304)
),
env AS (
    SELECT j ->> 'tenant_id' AS tenant_id, j ->> 'provider' AS provider,
           j ->> '$.headers."webhook-id"' AS wid, j ->> '$.headers."webhook-timestamp"' AS wts,
           j ->> '$.headers."webhook-signature"' AS wsig, j ->> 'body' AS body,
           try_cast(j ->> 'received_at' AS TIMESTAMPTZ) AS received_at
    FROM lines
),
checked AS (
    SELECT e.*, bool_or(list_contains(string_split(e.wsig, ' '),
        'v1,' || to_base64(unhex(sha256(k.okey || unhex(sha256(k.ikey || encode(e.wid || '.' || e.wts || '.' || e.body)))))))) AS ok
    FROM env AS e JOIN secrets AS k USING (tenant_id, provider)
    WHERE e.body IS NOT NULL AND e.wid IS NOT NULL AND e.wts IS NOT NULL AND e.wsig IS NOT NULL
    GROUP BY ALL
),
valid AS (
    SELECT tenant_id, provider, CASE WHEN json_valid(body) THEN body END AS body
    FROM checked
    WHERE ok AND abs(epoch(received_at) - try_cast(wts AS BIGINT)) <= 300
),
events AS (
    SELECT tenant_id, provider, body ->> 'api_version' AS v, body FROM valid WHERE body IS NOT NULL
),
flat AS (
    SELECT tenant_id, provider,
        CASE WHEN v = '2026-06-01' THEN body ->> '$.object.provider_ref' ELSE body ->> 'provider_ref' END AS provider_ref,
        CASE WHEN v = '2026-06-01' THEN body ->> '$.object.intent_id' ELSE body ->> 'intent_id' END AS intent_id,
        CASE WHEN v = '2026-06-01' THEN try_cast(body ->> '$.object.amount.value' AS BIGINT)
             ELSE try_cast(body ->> 'amount_minor' AS BIGINT) END AS amount_minor,
        body ->> 'event_id' AS event_id, body ->> 'type' AS type,
        try_cast(body ->> 'sequence' AS BIGINT) AS sequence
    FROM events
)
SELECT tenant_id, provider, provider_ref,
       arg_max(type, (sequence, event_id)) AS type, arg_max(amount_minor, (sequence, event_id)) AS amount_minor,
       max(sequence) AS sequence, count(DISTINCT event_id) AS events
FROM flat GROUP BY ALL
"""

BALANCES = """
SELECT tenant_id, account_id, currency, sum(amount_minor::HUGEINT)::BIGINT AS balance_minor
FROM (SELECT DISTINCT ON (posting_id) * FROM postings ORDER BY posting_id)
GROUP BY ALL ORDER BY ALL
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", type=Path, required=True)
    p.add_argument("--report", type=Path)
    args = p.parse_args()
    scn = args.scenario.resolve()
    t = {}
    t0 = time.perf_counter()
    con = duckdb.connect()
    secrets = json.loads((scn / "secrets.json").read_text())
    rows = []
    for tenant, providers in secrets.items():
        for provider, values in providers.items():
            for secret in values:
                try:
                    ikey, okey = pads(secret)
                except (binascii.Error, ValueError):
                    continue
                rows.append((tenant, provider, ikey, okey))
    con.register("secrets", pl.DataFrame(rows, schema={"tenant_id": pl.String, "provider": pl.String,
                                                        "ikey": pl.Binary, "okey": pl.Binary}, orient="row"))
    files = sorted(str(f) for f in (scn / "landing" / "callbacks").glob("*.jsonl"))
    state = con.sql(VERIFY, params={"files": files}).pl()
    t["verify_dedupe_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    postings = cx.read_sql(f"sqlite://{scn / 'source.sqlite'}",
                           "SELECT posting_id, tenant_id, account_id, currency, amount_minor FROM ledger_postings",
                           return_type="arrow")
    t["read_postings_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    con.register("postings", postings)
    balances = con.sql(BALANCES).pl()
    t["balances_s"] = time.perf_counter() - t2
    t["total_s"] = time.perf_counter() - t0
    report = {**{k: round(v, 3) for k, v in t.items()}, "callback_files": len(files), "provider_refs": state.height,
              "postings": postings.num_rows, "balances": balances.height}
    print(json.dumps(report))
    if args.report:
        args.report.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
