"""End to end through the `zentra` command: sample → run → tables → sealed packets.

Expected figures come from the sample's own expected.json, computed by the generator
independently of the pipeline (plain Python over what it wrote).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from zentra_pipelines.domain.webhooks import sign

ZENTRA = [sys.executable, "-m", "dagster_project.cli"]


def zentra(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ZENTRA, *args], capture_output=True, text=True, timeout=600, env=env)


def run_args(sample: Path, home: Path) -> list[str]:
    return ["run", "--landing", str(sample / "landing"), "--source-db", str(sample / "source.sqlite"),
            "--policies", str(sample / "policies.yaml"), "--secrets", str(sample / "secrets.json"),
            "--home", str(home)]


def table(home: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def packet_files(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((home / "packets").rglob("v*.zip"))}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    proc = zentra("sample", "--out", str(out), "--intents", "60", "--seed", "11")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def first_run(sample: Path, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    proc = zentra(*run_args(sample, home))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return home, proc


@pytest.fixture(scope="module")
def expected(sample: Path) -> dict:
    return json.loads((sample / "expected.json").read_text())


def test_run_prints_summary_with_accounting(first_run):
    _, proc = first_run
    assert "Zentra run summary" in proc.stdout
    assert "MISMATCH" not in proc.stdout
    for word in ("callbacks", "intents", "settlements", "deliveries", "Reconciliation breaks", "Replay queue",
                 "Audit packets"):
        assert word in proc.stdout


def test_run_shows_its_progress_on_stderr_and_keeps_stdout_for_the_summary(first_run):
    _, proc = first_run
    progress = [line for line in proc.stderr.splitlines() if line.startswith("zentra: [")]
    assert any(line.endswith("] ledger done") for line in progress), proc.stderr
    assert progress[-1].endswith("] audit_packets done")
    assert "] ledger done" not in proc.stdout and proc.stdout.startswith("Zentra run summary")
    assert "zentra: INFO:" not in proc.stderr  # a library's INFO logger (GX's temp folder) stays quiet


def test_every_planted_break_found_and_no_clean_intent_flagged(first_run, expected):
    home, _ = first_run
    got = set(table(home, "SELECT tenant_id, intent_id, provider_ref, break_type FROM reconciliation_breaks"))
    want = {(b["tenant_id"], b["intent_id"], b["provider_ref"], b["break_type"]) for b in expected["breaks"]}
    assert got == want


def test_quarantine_codes_match_the_planted_cases(first_run, expected):
    home, _ = first_run
    tables = {"callbacks": "callbacks_quarantine", "intents": "intents_quarantine",
              "settlements": "settlements_quarantine", "deliveries": "deliveries_quarantine",
              "ledger_postings": "ledger_postings_quarantine"}
    for source, name in tables.items():
        got = dict(table(home, f"SELECT error_code, count(*) FROM {name} GROUP BY 1"))
        assert got == expected["quarantine"][source], source


def test_balances_equal_independent_recomputation(first_run, expected):
    home, _ = first_run
    got = set(table(home, "SELECT tenant_id, account_id, currency, balance_minor FROM ledger_balances"))
    want = {(b["tenant_id"], b["account_id"], b["currency"], b["balance_minor"]) for b in expected["balances"]}
    assert got == want


def test_reviews_and_provider_state(first_run, expected):
    home, _ = first_run
    got = set(table(home, "SELECT tenant_id, intent_id, reason FROM review_queue"))
    assert got == {(r["tenant_id"], r["intent_id"], r["reason"]) for r in expected["reviews"]}
    owners = table(home, "SELECT count(*) FROM review_queue WHERE owner IS NULL OR policy_version IS NULL")
    assert owners == [(0,)]
    assert table(home, "SELECT count(*) FROM provider_state") == [(expected["provider_state_rows"],)]


def test_received_equals_accepted_plus_quarantined_per_file(first_run):
    home, _ = first_run
    rows = table(home, "SELECT count(*), sum(received), sum(accepted + quarantined) FROM ingest_accounting")
    files, received, accounted = rows[0]
    assert files > 0 and received == accounted
    assert table(home, "SELECT count(*) FROM ingest_accounting WHERE NOT balanced") == [(0,)]
    # the source database's postings have their row too: every distinct row read is accounted for
    [(received, accepted, quarantined, sha)] = table(
        home, "SELECT received, accepted, quarantined, file_sha256 FROM ingest_accounting WHERE source = 'ledger_postings'")
    assert sha is None and received == accepted + quarantined
    assert table(home, "SELECT count(*) FROM ledger_entries") == [(accepted,)]
    assert table(home, "SELECT count(*) FROM ledger_postings_quarantine") == [(quarantined,)]


def test_stock_tools_accept_every_sealed_packet(first_run, tmp_path):
    home, _ = first_run
    packets = sorted((home / "packets").rglob("v*.zip"))
    assert packets
    for packet in packets:
        dest = tmp_path / packet.parent.relative_to(home) / packet.stem
        with zipfile.ZipFile(packet) as zf:
            zf.extractall(dest)
        subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=dest, check=True)
        subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "signing_key.pub.pem", "-rawin",
                        "-in", "manifest.json", "-sigfile", "manifest.sig"], cwd=dest, check=True,
                       capture_output=True)
        proc = zentra("packet", "verify", str(packet))
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_packet_holds_only_its_tenant(first_run, expected):
    home, _ = first_run
    tenants = {b["tenant_id"] for b in expected["balances"]}
    for packet in sorted((home / "packets").rglob("v*.zip")):
        owner = packet.parent.parent.name
        others = [t for t in tenants if t != owner]
        with zipfile.ZipFile(packet) as zf:
            for name in zf.namelist():
                data = zf.read(name)
                for other in others:
                    assert other.encode() not in data, f"{other} inside {packet}:{name}"


def test_rerun_changes_nothing(sample, first_run, tmp_path):
    home, _ = first_run
    before = packet_files(home)
    snapshot = {t: table(home, f"SELECT * FROM {t} ORDER BY ALL")
                for t in ("provider_state", "ledger_balances", "reconciliation_breaks", "review_queue")}
    proc = zentra(*run_args(sample, home))
    assert proc.returncode == 0, proc.stderr
    assert "0 sealed this run" in proc.stdout
    assert packet_files(home) == before
    for t, rows in snapshot.items():
        assert table(home, f"SELECT * FROM {t} ORDER BY ALL") == rows, t


def test_late_callback_reseals_exactly_the_affected_day(sample, expected, tmp_path):
    """A late provider callback resolves a missing_at_provider break: v2 for that tenant-day only."""
    landing = tmp_path / "sample"
    shutil.copytree(sample, landing)
    home = tmp_path / "home"
    assert zentra(*run_args(landing, home)).returncode == 0
    before = packet_files(home)
    target = next(b for b in expected["breaks"] if b["break_type"] == "missing_at_provider")
    tenant, intent = target["tenant_id"], target["intent_id"]
    created = table(home, "SELECT created_at, currency FROM intents WHERE tenant_id = '%s' AND intent_id = '%s'"
                    % (tenant, intent))[0]
    created_at, currency = created
    received = created_at + timedelta(seconds=30)
    provider, secret = next(iter(json.loads((landing / "secrets.json").read_text())[tenant].items()))
    body = json.dumps({"api_version": "2026-01-01", "event_id": "evt_late_0001", "type": "payment.authorized",
                       "intent_id": intent, "provider_ref": "ref_late_0001",
                       "amount_minor": target["ledger_amount_minor"], "currency": currency, "sequence": 1,
                       "occurred_at": (received - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")},
                      separators=(",", ":"))
    ts = int((received - datetime(1970, 1, 1)).total_seconds()) - 1
    line = {"received_at": received.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "tenant_id": tenant, "provider": provider,
            "headers": {"webhook-id": "msg_late_0001", "webhook-timestamp": str(ts),
                        "webhook-signature": sign(secret[0], "msg_late_0001", ts, body)},
            "body": body}
    (landing / "landing" / "callbacks" / "zz_late.jsonl").write_text(json.dumps(line) + "\n")
    proc = zentra(*run_args(landing, home))
    assert proc.returncode == 0, proc.stderr
    after = packet_files(home)
    new = sorted(set(after) - set(before))
    day = created_at.date().isoformat()
    assert new == [f"packets/{tenant}/{day}/v2.zip"]
    assert all(after[k] == v for k, v in before.items())  # sealed versions never rewritten
    assert table(home, "SELECT count(*) FROM reconciliation_breaks WHERE intent_id = '%s' AND break_type = "
                 "'missing_at_provider'" % intent) == [(0,)]
    v2 = home / new[0]
    assert zentra("packet", "verify", str(v2)).returncode == 0
    with zipfile.ZipFile(v2) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        log = zf.read("data/break_log.csv").decode()
    resolved = [line for line in log.splitlines() if intent in line and "missing_at_provider" in line]
    assert len(resolved) == 1 and ",resolved," in resolved[0]  # the packet records the resolution
    with zipfile.ZipFile(v2.with_name("v1.zip")) as zf:
        assert manifest["supersedes"] == hashlib.sha256(zf.read("manifest.json")).hexdigest()


def test_bad_usage_is_one_line_exit_2(tmp_path, sample):
    proc = zentra("run", "--landing", str(tmp_path / "nope"), "--home", str(tmp_path / "h"),
                  "--source-db", str(sample / "source.sqlite"), "--policies", str(sample / "policies.yaml"),
                  "--secrets", str(sample / "secrets.json"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "landing folder not found" in proc.stderr
    assert zentra("run", "--bogus").returncode == 2
    partial = zentra("run", "--landing", str(sample / "landing"), "--home", str(tmp_path / "h2"),
                     env={k: v for k, v in os.environ.items() if not k.startswith("ZENTRA_")})
    assert partial.returncode == 2 and not (tmp_path / "h2").exists()  # never the bundled sample's inputs
    assert "needs --source-db (or ZENTRA_SOURCE_DB), --policies" in partial.stderr
    assert zentra("packet", "verify", str(tmp_path / "missing.zip")).returncode != 0


def test_unusable_signing_key_or_source_is_refused_before_any_work(tmp_path, sample):
    """Exit 2 in one line and no home written: a key file that is no PEM key, a source
    without the contract's tables or columns, a file that is no database."""
    import sqlite3

    garbage = tmp_path / "key.pem"
    garbage.write_text("not a key\n")
    garbage.chmod(0o600)
    no_table, no_column, not_db = (tmp_path / n for n in ("no_table.sqlite", "no_column.sqlite", "not_db.sqlite"))
    with sqlite3.connect(no_table) as con:
        con.execute("CREATE TABLE accounts (account_id, tenant_id, type, allow_negative)")
    with sqlite3.connect(no_column) as con:
        con.execute("CREATE TABLE accounts (account_id, tenant_id, type, allow_negative)")
        con.execute("CREATE TABLE ledger_postings (posting_id TEXT PRIMARY KEY, amount_minor BIGINT)")
    not_db.write_text("garbage\n")
    cases = [
        (str(sample / "source.sqlite"), str(garbage), "is not a PEM private key"),
        (str(no_table), None, "has no table ledger_postings"),
        (str(no_column), None, "lacks column(s): journal_id"),
        (str(not_db), None, "cannot open the source database"),
        ("postgresql://u:pw_canary@127.0.0.1:notaport/db", None, "the source database URL is malformed"),
        ("postgresql+asyncpg://u:pw_canary@127.0.0.1/db", None, "no database driver for 'postgresql+asyncpg'"),
    ]
    for source, key, message in cases:
        env = {k: v for k, v in os.environ.items() if k != "ZENTRA_SIGNING_KEY"}
        if key:
            env["ZENTRA_SIGNING_KEY"] = key
        home = tmp_path / "home"
        args = run_args(sample, home)
        args[args.index("--source-db") + 1] = source
        proc = zentra(*args, env=env)
        assert proc.returncode == 2, (message, proc.stderr)
        assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr, proc.stderr
        assert "pw_canary" not in proc.stderr + proc.stdout
        assert not home.exists()



def test_a_second_run_on_a_busy_home_is_refused_in_one_line(tmp_path, sample):
    """While a run holds the home (here: this test process), another `zentra run` on it
    exits 2 at once, naming the holder, and touches nothing; once released, it runs."""
    from zentra_pipelines.adapters.home_lock import exclusive_home

    home = tmp_path / "home"
    with exclusive_home(home):
        proc = zentra(*run_args(sample, home))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"zentra: error: another zentra run is using {home} (pid {os.getpid()}): " \
                                  "run again when it has ended"
    assert proc.stdout == "" and sorted(p.name for p in home.iterdir()) == [".zentra.lock"]


def test_a_warehouse_another_process_holds_open_is_refused_in_one_line(first_run, sample, tmp_path):
    """An analyst's DuckDB session on the warehouse blocks DuckDB's single writer: the run
    says so before any work (it used to fail every step and crash on the summary, exit 1)."""
    from tests.helpers.home_lock import warehouse_open_elsewhere

    home = tmp_path / "home"
    shutil.copytree(first_run[0], home)
    with warehouse_open_elsewhere(home) as holder:
        proc = zentra(*run_args(sample, home))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"zentra: error: {home / 'warehouse.duckdb'} is open in another process " \
                                  f"(pid {holder.pid}): close that session and run again"
    assert proc.stdout == ""


def test_a_home_that_is_no_folder_or_cannot_be_made_is_refused_in_one_line(tmp_path, sample):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me\n")
    for home, message in [(a_file, f"home is not a folder: {a_file}"),
                          (a_file / "home", f"home cannot be created under: {a_file}")]:
        proc = zentra(*run_args(sample, home))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == f"zentra: error: {message}"
    assert a_file.read_text() == "keep me\n"


def test_sample_never_writes_over_a_folder_that_holds_something_else(tmp_path, sample):
    """The generator deletes the input files it finds (an earlier, larger sample's), so it
    refuses a folder that is not empty, new or an earlier sample: a real landing folder's
    callbacks stay. Writing over an earlier sample still works."""
    real = tmp_path / "real"
    (real / "landing" / "callbacks").mkdir(parents=True)
    (real / "landing" / "callbacks" / "2026-11-27.jsonl").write_text("{}\n")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me\n")
    for out, message in [(real, f"{real} holds files that are not a zentra sample: write the sample to a new or "
                                "empty folder"), (a_file, f"--out is not a folder: {a_file}")]:
        proc = zentra("sample", "--out", str(out), "--intents", "60")
        assert proc.returncode == 2 and proc.stderr.strip() == f"zentra: error: {message}", proc.stderr
    assert (real / "landing" / "callbacks" / "2026-11-27.jsonl").read_text() == "{}\n"
    assert sorted(p.name for p in real.rglob("*")) == ["2026-11-27.jsonl", "callbacks", "landing"]
    assert a_file.read_text() == "keep me\n"
    again = tmp_path / "again"
    shutil.copytree(sample, again)
    assert zentra("sample", "--out", str(again), "--intents", "60", "--seed", "11").returncode == 0


def test_a_policy_limit_that_is_not_an_integer_is_refused_before_any_work(tmp_path, sample):
    policies = tmp_path / "policies.yaml"
    text = (sample / "policies.yaml").read_text()
    limit = text.split("max_amount_minor:\n", 1)[1].splitlines()[0]  # e.g. "      EUR: 5000000"
    policies.write_text(text.replace(limit, limit + ".5", 1))
    args = run_args(sample, tmp_path / "home")
    args[args.index("--policies") + 1] = str(policies)
    proc = zentra(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "is not an integer amount in minor units" in proc.stderr
    assert not (tmp_path / "home").exists()


def test_sample_and_packet_list_refuse_bad_input_in_one_line(tmp_path):
    """A sample folder that cannot be written, an intent count past any bench, a home
    that does not exist: exit 2, one line, no traceback."""
    cases = [
        (("sample", "--out", "/proc/zentra_sample", "--intents", "60"), "cannot write the sample to /proc/zentra_sample"),
        (("sample", "--out", str(tmp_path / "s"), "--intents", "99999999999999999999"),
         "--intents must be between 20 and 5,000,000"),
        (("packet", "list", "--home", str(tmp_path / "nowhere")), f"no Zentra home at {tmp_path / 'nowhere'}"),
    ]
    for args, message in cases:
        proc = zentra(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()
