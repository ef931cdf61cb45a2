"""Callback ingest throughput under fuzzing and on clean traffic.

Usage:
  .venv/bin/python bench/fuzz_callbacks.py                       # 100k mutations + 100k valid callbacks
  .venv/bin/python bench/fuzz_callbacks.py --mutations 1000000 --valid 0 --seed 11

A fresh sample (``generate_sample(intents=20)``) provides the accepted, signed callback
lines; ``tests/helpers/hostile.mutate_callbacks`` mutates them (byte flips, truncations,
insertions, field deletions, type swaps, re-signed body edits); ``--valid`` freshly signed
callbacks measure the clean path. Both go through ``ingest.archive_landing`` +
``ingest.run_callbacks`` (framing, SQL signature verification, convergence, publish) on a
new DuckDB warehouse in a temporary folder. Prints one JSON object per measurement (wall
and CPU seconds; compare CPU on a shared machine). Nothing is written outside the
temporary folder.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import hostile  # noqa: E402
from zentra_pipelines import ingest  # noqa: E402
from zentra_pipelines.adapters.warehouse import Warehouse  # noqa: E402
from zentra_pipelines.sample import generate_sample  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ingest_lines(root: Path, name: str, lines: list[bytes], secrets: Path, files: int = 10) -> dict:
    landing = root / name / "landing" / "callbacks"
    landing.mkdir(parents=True)
    per = max(1, -(-len(lines) // files))
    for f in range(files):
        (landing / f"{name}-{f:02d}.jsonl").write_bytes(b"".join(x + b"\n" for x in lines[f * per:(f + 1) * per]))
    wall, c0 = time.perf_counter(), cpu()
    with Warehouse(root / name / "home").connect() as con:
        ingest.archive_landing(con, landing.parent)
        report = ingest.run_callbacks(con, secrets)
    wall, used = time.perf_counter() - wall, cpu() - c0
    return {"measurement": name, "lines": report.received, "accepted": report.accepted,
            "quarantined": report.quarantined, "codes": len(report.quarantined_by_code),
            "wall_s": round(wall, 2), "cpu_s": round(used, 2), "lines_per_s": round(report.received / wall),
            "lines_per_cpu_s": round(report.received / used) if used else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutations", type=int, default=100_000)
    p.add_argument("--valid", type=int, default=100_000, help="freshly signed valid callbacks (0 to skip)")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="zentra_fuzz_bench_"))
    try:
        generate_sample(root / "sample", intents=20, seed=3)
        secrets_path = root / "sample" / "secrets.json"
        secrets = json.loads(secrets_path.read_text())
        shutil.copytree(root / "sample" / "landing" / "callbacks", root / "seed" / "landing" / "callbacks")
        with Warehouse(root / "seed" / "home").connect() as con:
            ingest.archive_landing(con, root / "seed" / "landing")
            ingest.run_callbacks(con, secrets_path)
            valid = [r[0].encode() for r in con.sql(
                "SELECT l.text FROM callback_events e JOIN landing_lines l USING (file_sha256, line_no)").fetchall()]
        if args.mutations:
            t0 = time.perf_counter()
            lines = list(hostile.mutate_callbacks(valid, args.mutations, args.seed, secrets))
            gen = time.perf_counter() - t0
            print(json.dumps({**ingest_lines(root, "mutated", lines, secrets_path), "generate_s": round(gen, 2)}))
        if args.valid:
            signer = hostile.CallbackSigner("t_alpha", "acme_pay", secrets["t_alpha"]["acme_pay"][0])
            lines = [signer.line(signer.body(n)) for n in range(args.valid)]
            print(json.dumps(ingest_lines(root, "valid", lines, secrets_path)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
