"""Bad input never crashes a run and never vanishes: accepted, or quarantined with a catalogued code.

* The hostile corpus of ``tests/helpers/hostile.py`` (every input format: callbacks,
  intents, deliveries, settlements, and the SQLite ledger source with REAL/TEXT/BLOB
  amounts, quotes in ids and NULLs) is landed next to the sample and the *whole* pipeline
  runs over it, packets included.
* ZENTRA_FUZZ_MUTATIONS (default 100000) random mutations of valid signed callbacks go
  through archive + verification + convergence on a fresh warehouse: per file, received =
  accepted + quarantined; every code is in the catalogue; every accepted line is
  re-checked by an independent oracle (Python ``hmac`` for the signature, Python ``json``
  for the body) - a mutation the SQL accepts must really be a valid, signed, in-window
  callback carrying exactly the values the warehouse recorded.
* ZENTRA_FUZZ_OTHER_MUTATIONS (default 3000 per format) mutations of intents, deliveries
  and settlement rows: per-file accounting balanced, codes catalogued.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from tests.helpers import hostile
from tests.reliability._support import knob, run_stages, split_lines
from zentra_pipelines import controls, events_stage, ingest, reconciliation_stage
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain.errors import CATALOGUE
from zentra_pipelines.domain.money import IDENTIFIER_PATTERN, currency_exponents

MUTATIONS = knob("ZENTRA_FUZZ_MUTATIONS", 100_000)
OTHER_MUTATIONS = knob("ZENTRA_FUZZ_OTHER_MUTATIONS", 3_000)
FUZZ_SEED = knob("ZENTRA_FUZZ_SEED", 7)
FUZZ_FILES = 10

QUARANTINE = {"callbacks": "callbacks_quarantine", "intents": "intents_quarantine",
              "settlements": "settlements_quarantine", "deliveries": "deliveries_quarantine"}
EVENT_TYPES = {"payment.authorized", "payment.captured", "payment.settled", "payment.failed",
               "payment.refunded", "payout.paid", "payout.failed"}
IDENT = re.compile(IDENTIFIER_PATTERN)


def _accounts(db: Path, tenant: str) -> tuple[str, str]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT account_id, type FROM accounts WHERE tenant_id = ? ORDER BY account_id",
                           (tenant,)).fetchall()
    finally:
        con.close()
    funding = next(a for a, t in rows if t == "funding")
    customer = next(a for a, t in rows if t == "customer")
    return funding, customer


def _secrets(sample) -> dict[str, dict[str, list[str]]]:
    return json.loads(sample.secrets.read_text())


@pytest.fixture(scope="module")
def corpus_run(sample, reference, tmp_path_factory) -> dict:
    """The sample plus one hostile file per source and a hostile ledger; the whole pipeline once."""
    root = tmp_path_factory.mktemp("hostile")
    landing = root / "landing"
    shutil.copytree(sample.landing, landing)
    secrets = _secrets(sample)
    signer = hostile.CallbackSigner("t_alpha", "acme_pay", secrets["t_alpha"]["acme_pay"][0])
    other = next(iter(secrets["t_beta"].values()))[0]
    corpora = {
        "callbacks": ("hostile.jsonl", hostile.callback_corpus(signer, other)),
        "intents": ("hostile.jsonl", hostile.intent_corpus()),
        "deliveries": ("hostile.jsonl", hostile.delivery_corpus()),
        "settlements": ("hostile.csv", hostile.settlement_corpus()),
    }
    for source, (name, cases) in corpora.items():
        header = [hostile.SETTLEMENT_HEADER] if source == "settlements" else []
        (landing / source / name).write_bytes(b"".join(line + b"\n" for line in header + [c.line for c in cases]))
    db = root / "source.sqlite"
    funding, customer = _accounts(sample.source_db, "t_alpha")
    ledger_labels = hostile.write_hostile_ledger(db, sample.source_db, "t_alpha", funding, customer)
    ledger_ids = {row[0] for _, row in hostile.ledger_rows("t_alpha", funding, customer)}
    home = root / "home"
    shutil.copytree(reference["home"] / "keys", home / "keys")
    t0 = time.perf_counter()
    run_stages(home, landing, db, sample.policies, sample.secrets)  # must not raise
    seconds = time.perf_counter() - t0
    return {"home": home, "corpora": corpora, "ledger_labels": ledger_labels, "ledger_ids": ledger_ids,
            "seconds": seconds, "db": db}


def _codes(home: Path, source: str, name: str) -> dict[int, str | None]:
    """line_no -> quarantine code (None = accepted) for every data line of one landing file."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        lines = [r[0] for r in con.sql(
            "SELECT line_no FROM landing_lines WHERE source_file = $f ORDER BY line_no",
            params={"f": f"{source}/{name}"}).fetchall()]
        codes = dict(con.sql(f'SELECT line_no, error_code FROM "{QUARANTINE[source]}" WHERE source_file = $f',
                             params={"f": f"{source}/{name}"}).fetchall())
    finally:
        con.close()
    first = 2 if source == "settlements" else 1  # a CSV file's line 1 is its header
    return {n: codes.get(n) for n in lines if n >= first}


def test_hostile_corpus_every_line_accounted_and_catalogued(corpus_run, figures):
    home = corpus_run["home"]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        unbalanced = con.sql("SELECT source_file, received, accepted, quarantined FROM ingest_accounting "
                             "WHERE NOT balanced").fetchall()
        codes = {t: {r[0] for r in con.sql(f'SELECT DISTINCT error_code FROM "{t}"').fetchall()}
                 for t in [*QUARANTINE.values(), "ledger_postings_quarantine"]}
        landed = con.sql("SELECT count(*) FROM landing_lines WHERE source = 'callbacks'").fetchall()[0][0]
        judged = con.sql("SELECT count(*) FROM callback_checked").fetchall()[0][0]
    finally:
        con.close()
    assert unbalanced == []
    assert landed == judged
    for table, found in codes.items():
        assert found <= set(CATALOGUE), (table, found - set(CATALOGUE))
    figures["hostile_corpus"] = {
        "cases": {s: len(c) for s, (_, c) in corpus_run["corpora"].items()} | {"ledger_rows": len(corpus_run["ledger_labels"])},
        "pipeline_seconds": round(corpus_run["seconds"], 2),
    }


@pytest.mark.parametrize("source", ["callbacks", "intents", "deliveries", "settlements"])
def test_hostile_corpus_each_line_gets_the_contract_code(corpus_run, source):
    name, cases = corpus_run["corpora"][source]
    got = _codes(corpus_run["home"], source, name)
    offset = 1 if source == "settlements" else 0
    assert len(got) == len(cases), f"{len(cases)} hostile lines written, {len(got)} archived"
    wrong = []
    for i, case in enumerate(cases, 1):
        code = got[i + offset]
        if case.expect == hostile.ANY:
            ok = code is None or code in CATALOGUE
        elif isinstance(case.expect, frozenset):
            ok = code in case.expect
        else:
            ok = code == case.expect
        if not ok:
            wrong.append(f"{case.label}: got {code!r}, want {case.expect!r}")
    assert not wrong, "\n".join(wrong)


def test_hostile_ledger_rows_are_quarantined_not_coerced(corpus_run):
    home = corpus_run["home"]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        accepted = {r[0] for r in con.sql("SELECT posting_id FROM ledger_entries").fetchall()} & corpus_run["ledger_ids"]
        quarantined = con.sql("SELECT posting_id, journal_id, error_code FROM ledger_postings_quarantine").fetchall()
        archived = con.sql("SELECT count(*) FROM ledger_source_rows").fetchall()[0][0]
        entries = con.sql("SELECT count(*) FROM ledger_entries").fetchall()[0][0]
    finally:
        con.close()
    hostile_q = [r for r in quarantined if r[0] in corpus_run["ledger_ids"]]
    src = sqlite3.connect(corpus_run["db"])
    try:
        total = src.execute("SELECT count(*) FROM ledger_postings").fetchone()[0]
    finally:
        src.close()
    # nothing vanishes: every source row is an entry or a quarantine row (identical re-reads collapse)
    assert archived == total
    assert entries + len(quarantined) == total
    assert accepted == set(), accepted  # no hostile row is a valid integer posting of a known account
    assert len(hostile_q) == len(corpus_run["ledger_labels"])
    by_code = Counter(code for _, _, code in hostile_q)
    for code in ("amount_float", "amount_string", "amount_missing", "amount_invalid", "invalid_identifier",
                 "invalid_timestamp", "currency_unknown", "account_unknown", "journal_unbalanced"):
        assert by_code[code] > 0, (code, by_code)


def test_balance_overflow_journal_is_quarantined_not_a_stop(sample, tmp_path):
    from zentra_pipelines import ledger_stage
    from zentra_pipelines.settings import normalise_db_url

    funding, customer = _accounts(sample.source_db, "t_alpha")
    db = tmp_path / "source.sqlite"
    hostile.write_hostile_ledger(db, sample.source_db, "t_alpha", funding, customer,
                                 rows=hostile.overflow_rows("t_alpha", funding, customer))
    with Warehouse(tmp_path / "home").connect() as con:
        result = ledger_stage.run_ledger(con, normalise_db_url(str(db)))  # must publish, not raise
        quarantined = {r[0] for r in con.sql("SELECT posting_id FROM ledger_postings_quarantine").fetchall()}
        exact = con.sql("SELECT count(*) FROM (SELECT tenant_id, account_id, currency, "
                        "sum(CAST(amount_minor AS HUGEINT)) AS s FROM ledger_entries GROUP BY ALL) e "
                        "JOIN ledger_balances b USING (tenant_id, account_id, currency) "
                        "WHERE b.balance_minor IS DISTINCT FROM e.s").fetchall()[0][0]
    assert {"p_overflow_1_0", "p_overflow_1_1"} <= quarantined
    assert result.received == result.accepted + result.quarantined + result.collapsed
    assert exact == 0


@contextmanager
def _sample_plus(sample, reference, tmp_path, files: dict[str, bytes], *, emptied: tuple[str, ...] = ()):
    """The sample's landing with ``emptied`` sources' files removed and ``files`` added,
    through every stage but the data contracts; yields the warehouse, read-only."""
    landing = tmp_path / "landing"
    shutil.copytree(sample.landing, landing)
    for source in emptied:
        for path in (landing / source).iterdir():
            path.unlink()
    for name, data in files.items():
        (landing / name).write_bytes(data)
    home = tmp_path / "home"
    shutil.copytree(reference["home"] / "keys", home / "keys")
    run_stages(home, landing, sample.source_db, sample.policies, sample.secrets, contracts=False)  # must not raise
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        yield con
    finally:
        con.close()


def test_an_intent_log_of_only_malformed_lines_is_quarantined_not_a_stop(sample, reference, tmp_path):
    """Every intent line bad leaves no intent: a result (each line quarantined, counted),
    not the 'unexpectedly empty' refusal that stopped the run before the breaks."""
    with _sample_plus(sample, reference, tmp_path, {"intents/bad.jsonl": b"x\n[\n"}, emptied=("intents",)) as con:
        assert con.sql("SELECT count(*) FROM intents").fetchall() == [(0,)]
        assert con.sql("SELECT line_no, error_code FROM intents_quarantine ORDER BY line_no").fetchall() == [
            (1, "malformed_json"), (2, "malformed_json")]
        assert con.sql("SELECT received, accepted, quarantined FROM ingest_accounting "
                       "WHERE source_file = 'intents/bad.jsonl'").fetchall() == [(2, 0, 2)]
        assert con.sql("SELECT count(*) FROM review_queue").fetchall() == [(0,)]
        assert con.sql("SELECT count(*) FROM reconciliation_breaks WHERE break_type = 'unknown_intent'"
                       ).fetchall()[0][0] > 0


def test_a_callback_for_an_intent_whose_lines_all_conflict_says_so(sample, reference, tmp_path):
    """Still unknown_intent (no intent was accepted), but the reason points at the
    quarantined intent lines instead of claiming the intent log never had the id."""
    intent = {"intent_id": "in_torn_0001", "tenant_id": "t_alpha", "scope": "payments", "kind": "payment",
              "amount_minor": 1250, "currency": "EUR", "ledger_currency": "EUR", "corridor": "EUR:SEPA:EUR",
              "actor_id": "a_1", "created_at": "2026-11-20T11:00:00Z", "primitives": []}
    signer = hostile.CallbackSigner("t_alpha", "acme_pay", _secrets(sample)["t_alpha"]["acme_pay"][0])
    files = {"intents/torn.jsonl": (json.dumps(intent) + "\n" + json.dumps({**intent, "amount_minor": 1251})).encode(),
             "callbacks/torn.jsonl": signer.line(signer.body(1, intent_id="in_torn_0001"))}
    with _sample_plus(sample, reference, tmp_path, files) as con:
        assert con.sql("SELECT break_type, reason FROM reconciliation_breaks WHERE intent_id = 'in_torn_0001'"
                       ).fetchall() == [("unknown_intent", "verified payment.captured callback for intent "
                                         "in_torn_0001 whose every intent line was quarantined (intent_conflict)")]


def test_a_sequence_tie_between_disagreeing_events_is_a_break(sample, reference, tmp_path):
    """Two events at a ref's highest sequence that disagree leave the contract's "highest
    sequence wins" without a winner: the state is the smallest event_id's, and the tie is
    reported. A resend of the same contents under another event_id is no tie."""
    signer = hostile.CallbackSigner("t_alpha", "acme_pay", _secrets(sample)["t_alpha"]["acme_pay"][0])
    tied = dict(intent_id="in_tie_0001", provider_ref="ref_tie_0001", sequence=5)
    same = dict(intent_id="in_tie_0002", provider_ref="ref_tie_0002", sequence=5)
    lines = [signer.line(signer.body(1, event_id="evt_tie_b", amount_minor=1300, **tied)),
             signer.line(signer.body(2, event_id="evt_tie_a", amount_minor=1250, **tied)),
             signer.line(signer.body(3, event_id="evt_same_a", **same)),
             signer.line(signer.body(4, event_id="evt_same_b", **same))]
    with _sample_plus(sample, reference, tmp_path, {"callbacks/ties.jsonl": b"\n".join(lines)}) as con:
        assert con.sql("SELECT provider_ref, event_id, amount_minor FROM provider_state "
                       "WHERE provider_ref LIKE 'ref_tie_%' ORDER BY 1").fetchall() == [
            ("ref_tie_0001", "evt_tie_a", 1250), ("ref_tie_0002", "evt_same_a", 1250)]
        assert con.sql("SELECT intent_id, provider_ref, provider_amount_minor, owner, reason "
                       "FROM reconciliation_breaks WHERE break_type = 'sequence_tie'").fetchall() == [
            ("in_tie_0001", "ref_tie_0001", 1250, "provider_ops",
             "events evt_tie_a,evt_tie_b share the highest sequence 5 with different contents; "
             "the state took the first by event_id")]


def test_a_settlement_for_a_payment_the_provider_reports_failed_is_a_break(sample, reference, tmp_path):
    """The ledger released a failed payment back to the customer; the provider settling
    it as well means the money went out twice: a settlement_mismatch, never silence."""
    ref = duckdb.connect(str(reference["home"] / "warehouse.duckdb"), read_only=True)
    try:
        provider, provider_ref, tenant, intent_id, amount, currency = ref.sql(
            "SELECT provider, provider_ref, tenant_id, intent_id, amount_minor, currency FROM provider_state "
            "WHERE type = 'payment.failed' ORDER BY provider_ref LIMIT 1").fetchall()[0]
    finally:
        ref.close()
    row = f"{provider},{provider_ref},{tenant},{currency},{amount},6,{amount - 6},2026-11-22T05:00:00Z,b_failed_1"
    files = {"settlements/failed.csv": (hostile.SETTLEMENT_HEADER.decode() + "\n" + row + "\n").encode()}
    with _sample_plus(sample, reference, tmp_path, files) as con:
        assert con.sql("SELECT intent_id, provider_amount_minor, owner, reason FROM reconciliation_breaks "
                       "WHERE break_type = 'settlement_mismatch' AND provider_ref = $r",
                       params={"r": provider_ref}).fetchall() == [
            (intent_id, amount, "finance_recon", f"settlement batch b_failed_1 reports gross {amount} {currency} "
                                                 "for a ref whose provider state is payment.failed")]


def test_money_moved_for_an_intent_policy_held_is_a_control_breach_not_a_ledger_fault(sample, reference, tmp_path):
    """A captured callback for an intent in review: the ledger rightly posted nothing, so
    the missing_in_ledger break says policy held it and goes to risk, not to ledger ops."""
    ref = duckdb.connect(str(reference["home"] / "warehouse.duckdb"), read_only=True)
    try:
        intent_id, amount, reason = ref.sql(
            "SELECT d.intent_id, i.amount_minor, d.reason FROM policy_decisions d JOIN intents i USING (tenant_id, "
            "intent_id) WHERE d.tenant_id = 't_alpha' AND d.outcome = 'review' AND i.currency = 'EUR' "
            "ORDER BY 1 LIMIT 1").fetchall()[0]
    finally:
        ref.close()
    signer = hostile.CallbackSigner("t_alpha", "acme_pay", _secrets(sample)["t_alpha"]["acme_pay"][0])
    line = signer.line(signer.body(1, intent_id=intent_id, provider_ref="ref_held_0001", amount_minor=amount))
    with _sample_plus(sample, reference, tmp_path, {"callbacks/held.jsonl": line}) as con:
        assert con.sql("SELECT break_type, owner, reason FROM reconciliation_breaks WHERE intent_id = $i",
                       params={"i": intent_id}).fetchall() == [
            ("missing_in_ledger", "risk_ops", f"provider reports payment.captured for an intent policy decided "
                                              f"review ({reason}): no postings by design, money moved past a control")]


@pytest.mark.parametrize("label", sorted(hostile.out_of_range_timestamps(
    hostile.CallbackSigner("t_alpha", "acme_pay", "whsec_" + "A" * 43 + "=")).keys()))
def test_out_of_calendar_timestamps_are_quarantined_not_a_crash(sample, reference, tmp_path, label):
    secrets = _secrets(sample)
    signer = hostile.CallbackSigner("t_alpha", "acme_pay", secrets["t_alpha"]["acme_pay"][0])
    source, name, data = hostile.out_of_range_timestamps(signer)[label]
    landing = tmp_path / "landing"
    shutil.copytree(sample.landing, landing)
    (landing / source / name).write_bytes(data)
    home = tmp_path / "home"
    shutil.copytree(reference["home"] / "keys", home / "keys")
    run_stages(home, landing, sample.source_db, sample.policies, sample.secrets, contracts=False)  # must not raise
    assert set(_codes(home, source, name).values()) == {"invalid_timestamp"}


# --------------------------------------------------------------------- fuzz ---


@pytest.fixture(scope="module")
def valid_callbacks(sample, tmp_path_factory) -> list[bytes]:
    """Every callback line of the sample that the pipeline accepts (signed, in window)."""
    root = tmp_path_factory.mktemp("valid_cb")
    shutil.copytree(sample.landing / "callbacks", root / "landing" / "callbacks")
    with Warehouse(root / "home").connect() as con:
        ingest.archive_landing(con, root / "landing")
        ingest.run_callbacks(con, sample.secrets)
        rows = con.sql("SELECT l.text FROM callback_events e JOIN landing_lines l USING (file_sha256, line_no) "
                       "ORDER BY l.source_file, l.line_no").fetchall()
    return [r[0].encode() for r in rows]


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_callback_mutations_never_crash_never_vanish_never_forge(sample, valid_callbacks, tmp_path, figures):
    secrets = _secrets(sample)
    t0 = time.perf_counter()
    lines = list(hostile.mutate_callbacks(valid_callbacks, MUTATIONS, FUZZ_SEED, secrets))
    generate_s = time.perf_counter() - t0
    landing = tmp_path / "landing" / "callbacks"
    landing.mkdir(parents=True)
    per = -(-len(lines) // FUZZ_FILES)
    framed = 0
    for f in range(FUZZ_FILES):
        data = b"".join(line + b"\n" for line in lines[f * per:(f + 1) * per])
        framed += len(split_lines(data))
        (landing / f"fuzz-{f:02d}.jsonl").write_bytes(data)
    t1 = time.perf_counter()
    with Warehouse(tmp_path / "home").connect() as con:
        archived = ingest.archive_landing(con, tmp_path / "landing")
        report = ingest.run_callbacks(con, sample.secrets)
        elapsed = time.perf_counter() - t1
        per_file = con.sql("""
            SELECT l.source_file, count(*) AS received,
                   count(e.line_no) AS accepted, count(q.line_no) AS quarantined
            FROM landing_lines l
            LEFT JOIN callback_events e USING (file_sha256, line_no)
            LEFT JOIN callbacks_quarantine q USING (file_sha256, line_no)
            WHERE l.source = 'callbacks' GROUP BY 1 ORDER BY 1""").fetchall()
        codes = Counter(dict(con.sql("SELECT error_code, count(*) FROM callbacks_quarantine GROUP BY 1").fetchall()))
        accepted = con.sql("""
            SELECT l.text, e.tenant_id, e.provider, e.received_at, e.event_id, e.type, e.intent_id, e.provider_ref,
                   e.amount_minor, e.currency, e.sequence, e.api_version
            FROM callback_events e JOIN landing_lines l USING (file_sha256, line_no)""").fetchall()
    assert archived.new_lines == framed == report.received
    assert report.accepted + report.quarantined == report.received
    for source_file, received, acc, qua in per_file:
        assert received == acc + qua, (source_file, received, acc, qua)
    assert set(codes) <= set(CATALOGUE), set(codes) - set(CATALOGUE)

    # independent oracle for every accepted line: Python json + hmac, not the SQL under test
    iso = set(currency_exponents())
    forged = []
    for (text, tenant, provider, received_at, event_id, etype, intent_id, ref, amount, currency, seq, api) in accepted:
        env = json.loads(text)
        h = {name.lower(): value for name, value in env["headers"].items()}  # HTTP header names: any case
        if not hostile.signature_matches(secrets[tenant][provider], h["webhook-id"], h["webhook-timestamp"],
                                         env["body"], h["webhook-signature"]):
            forged.append(("signature", text[:200]))
            continue
        if abs(_parse_ts(env["received_at"]).timestamp() - int(h["webhook-timestamp"])) > 300:
            forged.append(("window", text[:200]))
        body = json.loads(env["body"])
        flat = body if api == "2026-01-01" else {**body["object"], "amount_minor": body["object"]["amount"]["value"],
                                                  "currency": body["object"]["amount"]["currency"]}
        want = (body["event_id"], body["type"], flat["intent_id"], flat["provider_ref"], flat["amount_minor"],
                flat["currency"], body["sequence"])
        if want != (event_id, etype, intent_id, ref, amount, currency, seq) or type(flat["amount_minor"]) is not int:
            forged.append(("values", text[:200]))
        if not (etype in EVENT_TYPES and currency in iso and -(2**63) <= amount < 2**63 and seq >= 0
                and all(IDENT.fullmatch(x) for x in (event_id, intent_id, ref, tenant, h["webhook-id"]))):
            forged.append(("contract", text[:200]))
    assert not forged, forged[:10]

    rate = report.received / elapsed
    figures["callback_fuzz"] = {
        "mutations": MUTATIONS, "framed_lines": report.received, "accepted": report.accepted,
        "quarantined": report.quarantined, "distinct_codes": len(codes), "codes": dict(sorted(codes.items())),
        "generate_s": round(generate_s, 2), "archive_verify_converge_s": round(elapsed, 2),
        "lines_per_s": round(rate), "files": FUZZ_FILES,
    }
    print(f"\ncallback fuzz: {report.received} lines in {elapsed:.1f}s = {rate:,.0f} lines/s; "
          f"accepted {report.accepted}, quarantined {report.quarantined} over {len(codes)} codes")


def test_mutations_of_intents_deliveries_settlements(sample, tmp_path, figures):
    landing = tmp_path / "landing"
    shutil.copytree(sample.landing / "callbacks", landing / "callbacks")
    sizes = {}
    for source, pattern in (("intents", "*.jsonl"), ("deliveries", "*.jsonl"), ("settlements", "*.csv")):
        (landing / source).mkdir()
        base = []
        for path in sorted((sample.landing / source).glob(pattern)):
            rows = split_lines(path.read_bytes())
            base += rows[1:] if source == "settlements" else rows
        mutated = list(hostile.mutate_lines(base, OTHER_MUTATIONS, FUZZ_SEED + len(source)))
        header = [hostile.SETTLEMENT_HEADER] if source == "settlements" else []
        suffix = pattern[1:]
        for f in range(2):
            part = mutated[f::2]
            (landing / source / f"fuzz-{f}{suffix}").write_bytes(b"".join(x + b"\n" for x in header + part))
        sizes[source] = len(mutated)
    t0 = time.perf_counter()
    with Warehouse(tmp_path / "home").connect() as con:
        ingest.archive_landing(con, landing)
        ingest.run_callbacks(con, sample.secrets)
        controls.run_intents(con)
        events_stage.run_settlements(con)
        events_stage.run_deliveries(con)
        accounting = reconciliation_stage.run_accounting(con)
        codes = {t: {r[0] for r in con.sql(f'SELECT DISTINCT error_code FROM "{t}"').fetchall()}
                 for t in QUARANTINE.values()}
    elapsed = time.perf_counter() - t0
    assert accounting["balanced"].all()
    for table, found in codes.items():
        assert found <= set(CATALOGUE), (table, found - set(CATALOGUE))
    figures["other_fuzz"] = {"mutations_per_format": sizes, "seconds": round(elapsed, 2),
                             "received": int(accounting["received"].sum())}
