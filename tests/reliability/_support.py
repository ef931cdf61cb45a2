"""Shared machinery of the reliability suite (no tests here).

* ``knob``: example/trial counts come from environment variables, so CI stays fast and a
  nightly job can turn the same tests into a soak (see docs/reliability.md).
* ``run_stages``: the whole pipeline driven through the library stages, in the order of
  the Dagster asset graph, on one warehouse connection. Used where Dagster's per-step
  overhead would make hundreds of examples unaffordable; one test pins it to the real
  ``zentra run`` tables so it cannot drift silently.
* ``run_cli`` / ``run_measured``: the real command in a subprocess (the latter with its peak RSS).
* snapshot helpers: tables ``ORDER BY ALL``, packet files and Merkle roots.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

REPO = Path(__file__).absolute().parents[2]
ZENTRA = [sys.executable, "-m", "dagster_project.cli"]

#: Tables whose bytes must not depend on arrival order, duplication, file split or crashes.
STATE_TABLES = ("provider_state", "ledger_balances", "reconciliation_breaks")


def knob(name: str, default: int) -> int:
    """An integer from the environment (nightly sizes), else the CI default."""
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


@dataclass(frozen=True)
class Sample:
    root: Path

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def source_db(self) -> Path:
        return self.root / "source.sqlite"

    @property
    def policies(self) -> Path:
        return self.root / "policies.yaml"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.json"

    def run_args(self, home: Path, landing: Path | None = None, secrets: Path | None = None) -> list[str]:
        return ["run", "--landing", str(landing or self.landing), "--source-db", str(self.source_db),
                "--policies", str(self.policies), "--secrets", str(secrets or self.secrets), "--home", str(home)]

    def expected(self) -> dict:
        return json.loads((self.root / "expected.json").read_text())


def make_sample(out: Path, intents: int = 20, seed: int = 3) -> Sample:
    from zentra_pipelines.sample import generate_sample

    generate_sample(out, intents=intents, seed=seed)
    return Sample(out)


def clean_env() -> dict[str, str]:
    """The environment of a `zentra run` subprocess: no signing key, no ZENTRA_* overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENTRA_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(args: list[str], timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ZENTRA, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or clean_env(), cwd=str(REPO))


# --------------------------------------------------------------- library chain ---


def run_stages(home: Path, landing: Path, source_db: Path | str, policies: Path, secrets: Path,
               *, packets: bool = True, contracts: bool = True, signing_key: str | None = None) -> None:
    """Every stage of `zentra run` in asset-graph order, without Dagster's step overhead.

    ``contracts=False`` skips the Great Expectations data contracts (the slowest stage, whose
    per-tenant counts are sealed too); properties that compare only state tables and
    provenance-free packet members use it to stay affordable.
    """
    from zentra_pipelines import (
        break_log_stage,
        controls,
        events_stage,
        evidence_stage,
        ingest,
        ledger_stage,
        reconciliation_stage,
    )
    from zentra_pipelines.adapters.warehouse import Warehouse
    from zentra_pipelines.settings import normalise_db_url

    url = normalise_db_url(str(source_db))
    with Warehouse(home).connect() as con:
        ingest.archive_landing(con, landing)
        ingest.run_callbacks(con, secrets)
        controls.run_intents(con)
        events_stage.run_settlements(con)
        events_stage.run_deliveries(con)
        ledger_stage.run_ledger(con, url)
        controls.run_controls(con, policies)
        reconciliation_stage.run_accounting(con)
        reconciliation_stage.run_routing(con)
        breaks = reconciliation_stage.run_reconciliation(con)
        break_log_stage.run_break_log(con, breaks.as_of)
        reconciliation_stage.run_timeline(con)
        if contracts:
            from zentra_pipelines import data_contracts

            data_contracts.run_data_contracts(con)
        if packets:
            tenants = evidence_stage.configured_tenants(policies, secrets)
            evidence_stage.run_packets(con, home, tenants, signing_key)


# ------------------------------------------------------------------ snapshots ---


def read_tables(home: Path, tables: tuple[str, ...] | list[str] = STATE_TABLES) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {t: con.sql(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall() for t in tables}
    finally:
        con.close()


def scalar(home: Path, sql: str) -> object:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql).fetchall()[0][0]
    finally:
        con.close()


def packet_files(home: Path) -> dict[str, str]:
    """Every file under packets/ (hidden ones included) -> sha256 of its bytes."""
    root = home / "packets"
    if not root.exists():
        return {}
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def latest_roots(home: Path) -> dict[tuple[str, str], str]:
    """(tenant, day) -> merkle_root of the latest sealed version of that tenant-day."""
    out: dict[tuple[str, str], str] = {}
    root = home / "packets"
    for day_dir in sorted(p for p in root.glob("*/*") if p.is_dir()):
        versions = sorted(day_dir.glob("v*.zip"), key=lambda p: int(p.stem[1:]))
        if versions:
            with zipfile.ZipFile(versions[-1]) as zf:
                manifest = json.loads(zf.read("manifest.json"))
            out[(day_dir.parent.name, day_dir.name)] = manifest["merkle_root"]
    return out


def split_lines(data: bytes) -> list[bytes]:
    """Physical lines of a landing file, the way the framing splits them."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def landing_lines(landing: Path, source: str, pattern: str = "*.jsonl") -> list[bytes]:
    out: list[bytes] = []
    for path in sorted((landing / source).glob(pattern)):
        out += split_lines(path.read_bytes())
    return out


# ------------------------------------------------------------- processes ---


#: Runs a Python child (``-m module`` or ``-c code``) and, at exit, writes its VmHWM (peak RSS
#: of *this* process image, in KiB) to $ZENTRA_TEST_HWM_FILE. ``getrusage``/``wait4`` ru_maxrss
#: is useless here: a child forked from the test process starts with the test process's
#: resident pages, and ru_maxrss survives execve, so it reports at least pytest's own RSS.
HWM_WRAPPER = r"""
import atexit, os, runpy, sys
def _report():
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:")).split()[1]
    with open(os.environ["ZENTRA_TEST_HWM_FILE"], "w") as out:
        out.write(hwm)
atexit.register(_report)
mode, target, *rest = sys.argv[1:]
if mode == "-m":
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *rest]
    exec(compile(target, "<child>", "exec"), {"__name__": "__main__"})
"""


def run_measured(mode: str, target: str, args: list[str], *, cwd: Path = REPO, env: dict | None = None,
                 timeout: float = 900) -> tuple[int, str, str, float, int]:
    """Run ``python -m target`` or ``python -c target`` with ``args`` to completion.

    Returns (returncode, stdout, stderr, seconds, peak RSS in KiB of that child's own image).
    """
    with tempfile.TemporaryDirectory() as tmp:
        hwm_file = Path(tmp) / "hwm"
        child_env = dict(env or clean_env())
        child_env["ZENTRA_TEST_HWM_FILE"] = str(hwm_file)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", HWM_WRAPPER, mode, target, *args], capture_output=True,
                              text=True, cwd=str(cwd), env=child_env, timeout=timeout)
        seconds = time.perf_counter() - t0
        hwm = int(hwm_file.read_text()) if hwm_file.exists() else -1
    return proc.returncode, proc.stdout, proc.stderr, seconds, hwm


def fresh_home(parent: Path, name: str, keys_from: Path) -> Path:
    """A new home holding the reference's dev signing key, so signatures are comparable."""
    home = parent / name
    home.mkdir(parents=True)
    shutil.copytree(keys_from / "keys", home / "keys")
    return home
