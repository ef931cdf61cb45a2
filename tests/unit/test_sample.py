"""The sandbox scenario generator (``zentra sample``).

The generator claims, in expected.json, exactly what a correct pipeline must find. These
tests do not trust that claim: they re-derive it from the written files with a small,
independent reference implementation of the contract (validation order, convergence,
policy, ledger balances, reconciliation rules) and compare.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import re
import sqlite3
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from zentra_pipelines.domain import errors
from zentra_pipelines.domain.money import INT64_MAX, INT64_MIN, currency_exponents
from zentra_pipelines.sample import MIN_INTENTS, generate_sample

N = 240  # three UTC days
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
V1_RE = re.compile(r"v1,[A-Za-z0-9+/]{43}=")
EVENT_TYPES = {"payment.authorized", "payment.captured", "payment.settled", "payment.failed",
               "payment.refunded", "payout.paid", "payout.failed"}
SETTLEMENT_HEADER = "provider,provider_ref,tenant_id,currency,gross_minor,fee_minor,net_minor,settled_at,batch_id"
#: catalogue codes the source formats cannot express (posting_id is the SQLite primary key) or
#: whose reading is ambiguous for a single posting of a journal
NOT_PLANTED = {errors.POSTING_CONFLICT, errors.ACCOUNT_UNKNOWN, errors.TENANT_MISMATCH}
BREAK_TYPES = {"missing_in_ledger", "missing_at_provider", "amount_mismatch", "currency_mismatch",
               "duplicate_journal", "settlement_mismatch", "callback_conflict", "unknown_intent"}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate_sample(out, intents=N, seed=11)
    return out


@pytest.fixture(scope="module")
def expected(sample) -> dict:
    return json.loads((sample / "expected.json").read_text())


@pytest.fixture(scope="module")
def secrets(sample) -> dict:
    return json.loads((sample / "secrets.json").read_text())


def _lines(folder: Path, pattern: str):
    """(source_file, line_no, raw bytes) exactly as the landing framer sees them."""
    for path in sorted(folder.glob(pattern)):
        data = path.read_bytes()
        parts = data.split(b"\n")
        assert parts[-1] == b"", f"{path} must end with a newline"
        for no, raw in enumerate(parts[:-1], 1):
            yield f"{folder.name}/{path.name}", no, raw


def _planted(expected: dict, source: str) -> dict[tuple[str, int], dict]:
    return {(p["file"], p["line_no"]): p for p in expected["planted"] if p["source"] == source}


# ----------------------------------------------------------------------------- reference checks
class _Dup(Exception):
    pass


def _loads(text: str):
    """json.loads that also reports whether any object repeats a key."""
    dup = []

    def hook(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            dup.append(True)
        return dict(pairs)

    return json.loads(text, object_pairs_hook=hook), bool(dup)


def _frame(raw: bytes) -> tuple[str | None, str | None]:
    if len(raw) > 1 << 20:
        return errors.LINE_TOO_LARGE, None
    if b"\x00" in raw:
        return errors.NUL_BYTE, None
    try:
        return None, raw.decode("utf-8")
    except UnicodeDecodeError:
        return errors.INVALID_UTF8, None


def _amount_code(value) -> str | None:
    if value is None:
        return errors.AMOUNT_MISSING
    if isinstance(value, bool):
        return errors.AMOUNT_BOOLEAN
    if isinstance(value, str):
        return errors.AMOUNT_STRING
    if isinstance(value, float):
        return errors.AMOUNT_FLOAT
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else errors.AMOUNT_OUT_OF_RANGE
    return errors.AMOUNT_INVALID


def _ts_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def classify_callback(raw: bytes, secrets: dict) -> tuple[str | None, dict | None]:
    """The contract's callback checks, first failing wins (docs/error-codes.md order)."""
    code, text = _frame(raw)
    if code:
        return code, None
    try:
        env, dup = _loads(text)
    except ValueError:
        return errors.MALFORMED_JSON, None
    if not isinstance(env, dict):
        return errors.NOT_AN_OBJECT, None
    if dup:
        return errors.DUPLICATE_JSON_KEY, None
    names = ("received_at", "tenant_id", "provider", "headers", "body")
    if any(env.get(k) is None for k in names):
        return errors.MISSING_FIELD, None
    if not all(isinstance(env[k], str) for k in ("received_at", "tenant_id", "provider", "body")) or not isinstance(
            env["headers"], dict):
        return errors.INVALID_FIELD_TYPE, None
    if not TS_RE.fullmatch(env["received_at"]):
        return errors.INVALID_TIMESTAMP, None
    if not (ID_RE.fullmatch(env["tenant_id"]) and ID_RE.fullmatch(env["provider"])):
        return errors.INVALID_IDENTIFIER, None
    keys = secrets.get(env["tenant_id"], {}).get(env["provider"])
    if not keys:
        return errors.UNKNOWN_TENANT, None
    h = env["headers"]
    wid, wts, wsig = h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature")
    if wid is None or wts is None or wsig is None:
        return errors.HEADER_MISSING, None
    if not ID_RE.fullmatch(wid):
        return errors.INVALID_IDENTIFIER, None
    if not re.fullmatch(r"[0-9]{1,12}", wts):
        return errors.TIMESTAMP_INVALID, None
    sigs = [s for s in wsig.split(" ") if V1_RE.fullmatch(s)]
    if not sigs:
        return errors.SIGNATURE_MALFORMED, None
    content = f"{wid}.{wts}.{env['body']}".encode()
    good = {"v1," + base64.b64encode(hmac.new(base64.b64decode(k[6:]), content, hashlib.sha256).digest()).decode()
            for k in keys}
    if not good & set(sigs):
        return errors.SIGNATURE_MISMATCH, None
    if abs(_ts_ms(env["received_at"]) - int(wts) * 1000) > 300_000:
        return errors.REPLAY_WINDOW, None
    try:
        body, dup = _loads(env["body"])
    except ValueError:
        return errors.BODY_MALFORMED_JSON, None
    if not isinstance(body, dict):
        return errors.BODY_MALFORMED_JSON, None
    if dup:
        return errors.DUPLICATE_JSON_KEY, None
    version = body.get("api_version")
    if version == "2026-01-01":
        flat = body
        amount_present, amount = "amount_minor" in body, body.get("amount_minor")
    elif version == "2026-06-01":
        obj = body.get("object")
        if not isinstance(obj, dict) or not isinstance(obj.get("amount"), dict):
            return errors.MISSING_FIELD, None
        flat = {**body, "intent_id": obj.get("intent_id"), "provider_ref": obj.get("provider_ref"),
                "currency": obj["amount"].get("currency")}
        amount_present, amount = "value" in obj["amount"], obj["amount"].get("value")
    else:
        return errors.UNSUPPORTED_API_VERSION, None
    fields = ("event_id", "type", "intent_id", "provider_ref", "currency", "occurred_at", "sequence")
    if any(flat.get(k) is None for k in fields):
        return errors.MISSING_FIELD, None
    if not all(isinstance(flat[k], str) for k in fields if k != "sequence"):
        return errors.INVALID_FIELD_TYPE, None
    if not all(ID_RE.fullmatch(flat[k]) for k in ("event_id", "intent_id", "provider_ref")):
        return errors.INVALID_IDENTIFIER, None
    if flat["type"] not in EVENT_TYPES:
        return errors.UNKNOWN_EVENT_TYPE, None
    code = _amount_code(amount if amount_present else None)
    if code:
        return code, None
    if flat["currency"] not in currency_exponents():
        return errors.CURRENCY_UNKNOWN, None
    seq = flat["sequence"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= INT64_MAX:
        return errors.SEQUENCE_INVALID, None
    if not TS_RE.fullmatch(flat["occurred_at"]):
        return errors.INVALID_TIMESTAMP, None
    event = {"tenant_id": env["tenant_id"], "provider": env["provider"], "event_id": flat["event_id"],
             "type": flat["type"], "intent_id": flat["intent_id"], "provider_ref": flat["provider_ref"],
             "amount_minor": amount, "currency": flat["currency"], "sequence": seq,
             "occurred_at": flat["occurred_at"], "received_ms": _ts_ms(env["received_at"]),
             "webhook_ts": int(wts), "webhook_id": wid, "body": env["body"], "headers": h}
    return None, event


def judge_callbacks(landing: Path, secrets: dict):
    """(codes by (file, line), valid events by (file, line), conflicting event keys)."""
    codes, events = {}, {}
    for f, no, raw in _lines(landing / "callbacks", "*.jsonl"):
        codes[(f, no)], ev = classify_callback(raw, secrets)
        if ev is not None:
            events[(f, no)] = ev
    content = defaultdict(set)
    for ev in events.values():
        key = (ev["tenant_id"], ev["provider"], ev["event_id"])
        content[key].add((ev["type"], ev["intent_id"], ev["provider_ref"], ev["amount_minor"], ev["currency"],
                          ev["sequence"], ev["occurred_at"]))
    conflicts = {}  # (tenant, provider, event_id) -> (intent_id, provider_ref)
    for where, ev in list(events.items()):
        key = (ev["tenant_id"], ev["provider"], ev["event_id"])
        if len(content[key]) > 1:
            conflicts[key] = (ev["intent_id"], ev["provider_ref"])
            codes[where] = errors.EVENT_CONFLICT
            del events[where]
    return codes, events, conflicts


def provider_state(events: dict) -> dict[tuple[str, str, str], dict]:
    """Per provider_ref: the event with the highest sequence (ties: the smallest event_id)."""
    state: dict = {}
    for ev in events.values():
        key = (ev["tenant_id"], ev["provider"], ev["provider_ref"])
        cur = state.get(key)
        if cur is None or (ev["sequence"], cur["event_id"]) > (cur["sequence"], ev["event_id"]):
            state[key] = ev
    return state


INTENT_FIELDS = ("intent_id", "tenant_id", "scope", "kind", "currency", "ledger_currency", "corridor", "actor_id",
                 "created_at")


def classify_intent(raw: bytes) -> tuple[str | None, dict | None]:
    code, text = _frame(raw)
    if code:
        return code, None
    try:
        rec, dup = _loads(text)
    except ValueError:
        return errors.MALFORMED_JSON, None
    if not isinstance(rec, dict):
        return errors.NOT_AN_OBJECT, None
    if dup:
        return errors.DUPLICATE_JSON_KEY, None
    if any(rec.get(k) is None for k in INTENT_FIELDS):
        return errors.MISSING_FIELD, None
    prims = rec.get("primitives")
    if not all(isinstance(rec[k], str) for k in INTENT_FIELDS) or (
            prims is not None and (not isinstance(prims, list) or not all(isinstance(x, str) for x in prims))):
        return errors.INVALID_FIELD_TYPE, None
    if not all(ID_RE.fullmatch(rec[k]) for k in ("intent_id", "tenant_id", "scope", "actor_id")):
        return errors.INVALID_IDENTIFIER, None
    if not TS_RE.fullmatch(rec["created_at"]):
        return errors.INVALID_TIMESTAMP, None
    if rec["kind"] not in ("payment", "transfer", "payout", "card"):
        return errors.KIND_UNKNOWN, None
    code = _amount_code(rec.get("amount_minor"))
    if code:
        return code, None
    if rec["currency"] not in currency_exponents() or rec["ledger_currency"] not in currency_exponents():
        return errors.CURRENCY_UNKNOWN, None
    parts = rec["corridor"].split(":")
    if len(parts) != 3 or parts[0] != rec["currency"] or parts[2] != rec["ledger_currency"] or not re.fullmatch(
            r"[A-Z0-9_]{1,32}", parts[1]):
        return errors.CORRIDOR_INVALID, None
    return None, rec


def judge_intents(landing: Path):
    codes, ok = {}, {}
    for f, no, raw in _lines(landing / "intents", "*.jsonl"):
        codes[(f, no)], rec = classify_intent(raw)
        if rec is not None:
            ok[(f, no)] = rec
    bodies = defaultdict(set)
    for rec in ok.values():
        bodies[(rec["tenant_id"], rec["intent_id"])].add(json.dumps(rec, sort_keys=True))
    intents = {}
    for where, rec in ok.items():
        key = (rec["tenant_id"], rec["intent_id"])
        if len(bodies[key]) > 1:
            codes[where] = errors.INTENT_CONFLICT
        else:
            intents[key] = rec
    return codes, intents


def decide(intents: dict, policies: dict) -> tuple[list, list, set]:
    reviews, rejected, accepted = [], [], set()
    used: dict = defaultdict(int)
    for rec in sorted(intents.values(), key=lambda r: (r["tenant_id"], r["created_at"], r["intent_id"])):
        t, c, amount = rec["tenant_id"], rec["currency"], rec["amount_minor"]
        pol = policies["tenants"][t]
        key = (t, c, rec["created_at"][:10])
        if rec["corridor"] not in pol["allowed_corridors"]:
            rejected.append({"tenant_id": t, "intent_id": rec["intent_id"], "reason": "corridor_not_allowed"})
        elif amount <= 0:
            rejected.append({"tenant_id": t, "intent_id": rec["intent_id"], "reason": "amount_not_positive"})
        elif amount > pol["max_amount_minor"][c]:
            reviews.append({"tenant_id": t, "intent_id": rec["intent_id"], "reason": "over_max_amount"})
        elif used[key] + amount > pol["daily_limit_minor"][c]:
            reviews.append({"tenant_id": t, "intent_id": rec["intent_id"], "reason": "over_daily_limit"})
        else:
            used[key] += amount
            accepted.add((t, rec["intent_id"]))
    return reviews, rejected, accepted


SETTLEMENT_COLUMNS = SETTLEMENT_HEADER.split(",")


def judge_settlements(landing: Path):
    codes, rows = {}, {}
    for path in sorted((landing / "settlements").glob("*.csv")):
        f = f"settlements/{path.name}"
        text = path.read_text("utf-8").split("\n")
        assert text[-1] == ""
        header_ok = text[0] == SETTLEMENT_HEADER
        for no, line in enumerate(text[1:-1], 2):
            if not header_ok:
                codes[(f, no)] = errors.HEADER_MISMATCH
                continue
            fields = next(csv.reader(io.StringIO(line)))
            if len(fields) != 9:
                codes[(f, no)] = errors.CSV_MALFORMED
                continue
            row = dict(zip(SETTLEMENT_COLUMNS, fields))
            bad = None
            for k in ("gross_minor", "fee_minor", "net_minor"):
                if not re.fullmatch(r"-?[0-9]+", row[k]):
                    bad = errors.AMOUNT_FLOAT if re.fullmatch(r"-?[0-9]*\.[0-9]+", row[k]) else errors.AMOUNT_INVALID
                    break
            if bad is None and not all(ID_RE.fullmatch(row[k]) for k in ("provider", "provider_ref", "tenant_id")):
                bad = errors.INVALID_IDENTIFIER
            if bad is None and row["currency"] not in currency_exponents():
                bad = errors.CURRENCY_UNKNOWN
            if bad is None and not TS_RE.fullmatch(row["settled_at"]):
                bad = errors.INVALID_TIMESTAMP
            if bad is None and int(row["net_minor"]) != int(row["gross_minor"]) - int(row["fee_minor"]):
                bad = errors.NET_MISMATCH
            codes[(f, no)] = bad
            if bad is None:
                rows[(f, no)] = row
    figures = defaultdict(set)
    for row in rows.values():
        figures[(row["tenant_id"], row["provider"], row["provider_ref"])].add(tuple(row.values()))
    conflicts = {k for k, v in figures.items() if len(v) > 1}
    for where, row in list(rows.items()):
        if (row["tenant_id"], row["provider"], row["provider_ref"]) in conflicts:
            codes[where] = errors.SETTLEMENT_CONFLICT
            del rows[where]
    return codes, rows, conflicts


def classify_delivery(raw: bytes) -> str | None:
    code, text = _frame(raw)
    if code:
        return code
    try:
        rec, dup = _loads(text)
    except ValueError:
        return errors.MALFORMED_JSON
    if not isinstance(rec, dict):
        return errors.NOT_AN_OBJECT
    if dup:
        return errors.DUPLICATE_JSON_KEY
    if any(rec.get(k) is None for k in ("delivery_id", "event_id", "tenant_id", "endpoint", "attempt",
                                        "attempted_at")):
        return errors.MISSING_FIELD
    if not all(ID_RE.fullmatch(str(rec[k])) for k in ("delivery_id", "event_id", "tenant_id")):
        return errors.INVALID_IDENTIFIER
    if not TS_RE.fullmatch(rec["attempted_at"]):
        return errors.INVALID_TIMESTAMP
    a = rec["attempt"]
    if isinstance(a, bool) or not isinstance(a, int) or a < 1:
        return errors.ATTEMPT_INVALID
    s = rec.get("status_code")
    if s is not None and (isinstance(s, bool) or not isinstance(s, int) or not 100 <= s <= 599):
        return errors.STATUS_CODE_INVALID
    lat = rec.get("latency_ms")
    if lat is not None and (isinstance(lat, bool) or not isinstance(lat, int) or lat < 0):
        return errors.LATENCY_INVALID
    return None


def read_ledger(db: Path):
    con = sqlite3.connect(db)
    postings = con.execute("SELECT posting_id, journal_id, intent_id, tenant_id, account_id, currency, "
                           "amount_minor, posted_at, actor_id, idempotency_key FROM ledger_postings").fetchall()
    accounts = {r[0]: r for r in con.execute("SELECT account_id, tenant_id, type, allow_negative FROM accounts")}
    con.close()
    sums = defaultdict(int)
    for p in postings:
        sums[(p[1], p[5])] += p[6]
    unbalanced = {j for (j, _), v in sums.items() if v != 0}
    return postings, accounts, unbalanced


# ----------------------------------------------------------------------------- tests
def test_same_seed_gives_byte_identical_files(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    summary = generate_sample(a, intents=60, seed=3)
    assert generate_sample(b, intents=60, seed=3) == {**summary, "out_dir": str(b)}
    generate_sample(c, intents=60, seed=4)

    def tree(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    ta, tb, tc = tree(a), tree(b), tree(c)
    assert set(ta) >= {"source.sqlite", "policies.yaml", "secrets.json", "expected.json"}
    assert ta == tb
    assert ta["landing/intents/2026-11-20.jsonl"] != tc["landing/intents/2026-11-20.jsonl"]
    # regenerating into a used folder leaves no stale files of the previous run
    generate_sample(a, intents=60, seed=3)
    assert tree(a) == tb


def test_too_small_is_refused(tmp_path):
    with pytest.raises(ValueError):
        generate_sample(tmp_path, intents=MIN_INTENTS - 1)


def test_layout_and_formats(sample, expected):
    landing = sample / "landing"
    for source, pattern in (("callbacks", "*.jsonl"), ("intents", "*.jsonl"), ("deliveries", "*.jsonl"),
                            ("settlements", "*.csv")):
        files = sorted((landing / source).glob(pattern))
        assert len(files) >= 2, source
    days = [p.name for p in (landing / "intents").glob("2026-*.jsonl")]
    assert sorted(days) == ["2026-11-20.jsonl", "2026-11-21.jsonl", "2026-11-22.jsonl"]
    assert (landing / "callbacks" / "late-redeliveries.jsonl").is_file()
    policies = yaml.safe_load((sample / "policies.yaml").read_text())
    assert policies["policy_format"] == 1 and set(policies["tenants"]) == {"t_alpha", "t_beta", "t_gamma"}
    for t, pol in policies["tenants"].items():
        assert set(pol) == {"max_amount_minor", "daily_limit_minor", "allowed_corridors", "reviewers"}
        assert pol["reviewers"] and all(type(v) is int for v in pol["max_amount_minor"].values())
    secrets = json.loads((sample / "secrets.json").read_text())
    assert len(secrets["t_alpha"]["acme_pay"]) == 2
    for t in secrets.values():
        for keys in t.values():
            for k in keys:
                assert k.startswith("whsec_") and len(base64.b64decode(k[6:])) == 24
    # row accounting: what expected.json says was written is what is there
    counted = defaultdict(int)
    for source, pattern in (("callbacks", "*.jsonl"), ("intents", "*.jsonl"), ("deliveries", "*.jsonl")):
        counted[source] = sum(1 for _ in _lines(landing / source, pattern))
    counted["settlements"] = sum(len(p.read_text().splitlines()) - 1 for p in (landing / "settlements").glob("*.csv"))
    postings, _, _ = read_ledger(sample / "source.sqlite")
    counted["ledger_postings"] = len(postings)
    assert dict(counted) == expected["lines"]


def test_valid_callbacks_verify_with_the_reference_library(sample, expected, secrets, monkeypatch):
    # the library checks the timestamp against the wall clock; the contract checks it against
    # received_at (done below), so only the clock check is replaced
    monkeypatch.setattr(Webhook, "_Webhook__verify_timestamp",
                        lambda self, header: datetime.fromtimestamp(int(header), tz=timezone.utc))
    planted = _planted(expected, "callbacks")
    verified = by_old_secret_only = 0
    for f, no, raw in _lines(sample / "landing" / "callbacks", "*.jsonl"):
        p = planted.get((f, no))
        if p is not None and p["code"] is not None and p["code"] != errors.EVENT_CONFLICT:
            continue
        env = json.loads(raw)
        keys = secrets[env["tenant_id"]][env["provider"]]
        ok = []
        for k in keys:
            try:
                body = Webhook(k).verify(env["body"], env["headers"])
                ok.append(k)
            except WebhookVerificationError:
                pass
        assert ok, f"{f}:{no} does not verify with any secret of its tenant/provider"
        assert isinstance(body, dict)
        by_old_secret_only += ok == keys[1:]
        received = _ts_ms(env["received_at"])
        assert abs(received - int(env["headers"]["webhook-timestamp"]) * 1000) <= 300_000
        verified += 1
    assert verified > 2 * N
    assert by_old_secret_only > 0  # rotation: some callbacks are signed with the previous secret only


def test_planted_callbacks_get_exactly_their_code(sample, expected, secrets):
    codes, events, conflicts = judge_callbacks(sample / "landing", secrets)
    planted = _planted(expected, "callbacks")
    want = {where: p["code"] for where, p in planted.items()}
    got = {where: c for where, c in codes.items() if c is not None}
    assert got == {w: c for w, c in want.items() if c is not None}
    for where, p in planted.items():
        if p["code"] is None:
            assert where in events, p  # accepted (and collapsing, for redeliveries)
    counted = defaultdict(int)
    for c in got.values():
        counted[c] += 1
    assert dict(counted) == expected["quarantine"]["callbacks"]
    # versions: both shapes are used by valid callbacks
    versions = {json.loads(ev["body"])["api_version"] for ev in events.values()}
    assert versions == {"2026-01-01", "2026-06-01"}
    # at-least-once: same webhook-id twice (identical line) and same event_id under a new webhook-id
    by_wid = defaultdict(int)
    by_event = defaultdict(set)
    for ev in events.values():
        by_wid[ev["webhook_id"]] += 1
        by_event[(ev["tenant_id"], ev["provider"], ev["event_id"])].add(ev["webhook_id"])
    assert any(v > 1 for v in by_wid.values())
    assert any(len(v) > 1 for v in by_event.values())
    assert len(conflicts) == sum(1 for b in expected["breaks"] if b["break_type"] == "callback_conflict")


def test_provider_state_converges_to_the_highest_sequence(sample, expected, secrets):
    _, events, _ = judge_callbacks(sample / "landing", secrets)
    state = provider_state(events)
    assert len(state) == expected["provider_state_rows"]
    for check in expected["provider_state_checks"]:
        s = state[(check["tenant_id"], check["provider"], check["provider_ref"])]
        got = {k: s[k] for k in ("intent_id", "type", "amount_minor", "currency", "sequence")}
        assert got == {k: check[k] for k in got}, check["role"]
    # the out-of-order case really is out of order in file order
    ooo = [p for p in expected["planted"] if p["case"].startswith("out_of_order_higher")]
    assert ooo
    for p in ooo:
        first = events[(p["file"], p["line_no"])]
        later = events[(p["file"], p["line_no"] + 1)]
        assert first["provider_ref"] == later["provider_ref"] and first["sequence"] > later["sequence"]


def test_intents_codes_and_policy_decisions(sample, expected):
    codes, intents = judge_intents(sample / "landing")
    planted = _planted(expected, "intents")
    got = {w: c for w, c in codes.items() if c is not None}
    assert got == {w: p["code"] for w, p in planted.items() if p["code"] is not None}
    counted = defaultdict(int)
    for c in got.values():
        counted[c] += 1
    assert dict(counted) == expected["quarantine"]["intents"]
    assert len(intents) == expected["counts"]["intents_valid"]
    for rec in intents.values():
        assert rec["currency"] == rec["ledger_currency"] and rec["primitives"] == ["policy", "ledger", "events"]
        assert rec["actor_id"].startswith("usr_") and rec["scope"] == "workspace_scope"
    policies = yaml.safe_load((sample / "policies.yaml").read_text())
    reviews, rejected, accepted = decide(intents, policies)
    strip = lambda rows: sorted((r["tenant_id"], r["intent_id"], r["reason"]) for r in rows)  # noqa: E731
    assert strip(reviews) == strip(expected["reviews"])
    assert strip(rejected) == strip(expected["rejected"])
    assert {r[2] for r in strip(reviews)} == {"over_max_amount", "over_daily_limit"}
    assert "corridor_not_allowed" in {r[2] for r in strip(rejected)}
    assert len(accepted) == expected["counts"]["accepted"]
    # review and rejected intents post nothing and get no callbacks
    postings, _, _ = read_ledger(sample / "source.sqlite")
    held = {(r["tenant_id"], r["intent_id"]) for r in reviews + rejected}
    assert not held & {(p[3], p[2]) for p in postings}
    _, events, _ = judge_callbacks(sample / "landing", json.loads((sample / "secrets.json").read_text()))
    assert not held & {(e["tenant_id"], e["intent_id"]) for e in events.values()}


def test_balances_equal_an_independent_recomputation(sample, expected):
    postings, accounts, unbalanced = read_ledger(sample / "source.sqlite")
    assert len(unbalanced) >= 1
    balances = defaultdict(int)
    for p in postings:
        assert ID_RE.fullmatch(p[0]) and ID_RE.fullmatch(p[1]) and ID_RE.fullmatch(p[2]) and ID_RE.fullmatch(p[4])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}", p[7])
        assert p[4] in accounts and accounts[p[4]][1] == p[3]
        if p[1] not in unbalanced:
            balances[(p[3], p[4], p[5])] += p[6]
    want = [{"tenant_id": t, "account_id": a, "currency": c, "balance_minor": v}
            for (t, a, c), v in sorted(balances.items())]
    assert want == expected["balances"]
    assert expected["quarantine"]["ledger_postings"] == {
        "journal_unbalanced": sum(1 for p in postings if p[1] in unbalanced)}
    # exactly one business finding: a customer driven below zero (allow_negative false)
    negative = [b for b in want if b["balance_minor"] < 0 and not accounts[b["account_id"]][3]]
    assert negative == expected["negative_balances"]
    assert len(negative) == 1 and ":customer:" in negative[0]["account_id"]
    # opening balances and the quarantined adjustment are ledger-only journals
    assert any(p[2].startswith("open_") for p in postings) and any(p[2].startswith("adj_") for p in postings)


def test_breaks_equal_an_independent_reconciliation(sample, expected, secrets):
    """The brief's rules, applied from scratch: nothing but the planted intents may break."""
    _, intents = judge_intents(sample / "landing")
    _, events, conflicts = judge_callbacks(sample / "landing", secrets)
    state = provider_state(events)
    _, settlements, settlement_conflicts = judge_settlements(sample / "landing")
    postings, _, unbalanced = read_ledger(sample / "source.sqlite")
    postings = [p for p in postings if p[1] not in unbalanced]

    ledger_amount: dict = {}
    seen_keys = set()
    has_postings = set()
    released = set()
    journals_by_key = defaultdict(set)
    for pid, jid, iid, t, acct, cur, amt, _, _, key in postings:
        has_postings.add((t, iid))
        journals_by_key[(t, iid, key)].add(jid)
        if key.endswith(":release"):
            released.add((t, iid))
        if acct == f"{t}:reserved" and amt > 0 and (t, key, acct) not in seen_keys:
            seen_keys.add((t, key, acct))
            prev = ledger_amount.get((t, iid), (0, cur))
            ledger_amount[(t, iid)] = (prev[0] + amt, cur)
    state_by_intent = {}
    for (t, p, ref), s in state.items():
        state_by_intent[(t, s["intent_id"])] = s

    breaks = set()
    for (t, iid), s in state_by_intent.items():
        ref = s["provider_ref"]
        failed = s["type"] in ("payment.failed", "payout.failed")
        if (t, iid) not in intents:
            breaks.add((t, iid, ref, "unknown_intent"))
        elif (t, iid) not in has_postings:
            if not failed:
                breaks.add((t, iid, ref, "missing_in_ledger"))
        elif (t, iid) in ledger_amount and not (failed and (t, iid) in released):
            amount, cur = ledger_amount[(t, iid)]
            if s["currency"] != cur:
                breaks.add((t, iid, ref, "currency_mismatch"))
            elif s["amount_minor"] != amount:
                breaks.add((t, iid, ref, "amount_mismatch"))
    for t, iid in has_postings:
        if (t, iid) in intents and (t, iid) not in state_by_intent:
            breaks.add((t, iid, None, "missing_at_provider"))
    for (t, iid, key), jids in journals_by_key.items():
        if len(jids) > 1:
            breaks.add((t, iid, state_by_intent[(t, iid)]["provider_ref"], "duplicate_journal"))
    for (t, p, _), (iid, ref) in conflicts.items():
        breaks.add((t, iid, ref, "callback_conflict"))
    for row in settlements.values():
        s = state.get((row["tenant_id"], row["provider"], row["provider_ref"]))
        if s is None:
            breaks.add((row["tenant_id"], None, row["provider_ref"], "settlement_mismatch"))
        elif int(row["gross_minor"]) != s["amount_minor"] or row["currency"] != s["currency"]:
            breaks.add((row["tenant_id"], s["intent_id"], row["provider_ref"], "settlement_mismatch"))
    for t, p, ref in settlement_conflicts:
        breaks.add((t, state[(t, p, ref)]["intent_id"], ref, "settlement_mismatch"))

    want = {(b["tenant_id"], b["intent_id"], b["provider_ref"], b["break_type"]) for b in expected["breaks"]}
    assert len(want) == len(expected["breaks"])
    assert breaks == want
    assert {b[3] for b in breaks} == BREAK_TYPES


def test_settlements_and_deliveries(sample, expected):
    codes, rows, _ = judge_settlements(sample / "landing")
    planted = _planted(expected, "settlements")
    got = {w: c for w, c in codes.items() if c is not None}
    assert got == {w: p["code"] for w, p in planted.items() if p["code"] is not None}
    counted = defaultdict(int)
    for c in got.values():
        counted[c] += 1
    assert dict(counted) == expected["quarantine"]["settlements"]
    for row in rows.values():
        fee, gross = int(row["fee_minor"]), int(row["gross_minor"])
        assert 0 < fee <= gross * 3 // 100 + 1

    planted = _planted(expected, "deliveries")
    codes, ok = {}, {}
    for f, no, raw in _lines(sample / "landing" / "deliveries", "*.jsonl"):
        codes[(f, no)] = classify_delivery(raw)
        if codes[(f, no)] is None:
            ok[(f, no)] = json.loads(raw)
    contents = defaultdict(set)
    for rec in ok.values():
        contents[(rec["tenant_id"], rec["delivery_id"])].add(json.dumps(rec, sort_keys=True))
    attempts = defaultdict(dict)
    for where, rec in ok.items():
        if len(contents[(rec["tenant_id"], rec["delivery_id"])]) > 1:
            codes[where] = errors.DELIVERY_CONFLICT
            continue
        assert rec["event_id"].startswith("evt_out_") and rec["endpoint"] == f"https://hooks.{rec['tenant_id']}.example/zentra"
        attempts[(rec["tenant_id"], rec["event_id"])][rec["delivery_id"]] = rec  # identical copies collapse
    got = {w: c for w, c in codes.items() if c is not None}
    assert got == {w: p["code"] for w, p in planted.items() if p["code"] is not None}
    counted = defaultdict(int)
    for c in got.values():
        counted[c] += 1
    assert dict(counted) == expected["quarantine"]["deliveries"]
    attempts = {k: list(v.values()) for k, v in attempts.items()}
    failed_last, too_fast = [], []
    for (t, eid), recs in attempts.items():
        recs.sort(key=lambda r: r["attempt"])
        assert [r["attempt"] for r in recs] == list(range(1, len(recs) + 1))
        if recs[-1]["status_code"] != 200:
            failed_last.append(eid)
        times = [_ts_ms(r["attempted_at"]) for r in recs]
        gaps = [b - a for a, b in zip(times, times[1:])]
        for k in range(1, len(gaps)):
            if gaps[k] < 2 * gaps[k - 1]:
                too_fast.append((eid, k + 2))
    assert sorted(failed_last) == sorted(x["event_id"] for x in expected["delivery_findings"]["failed_last_attempt"])
    assert sorted(too_fast) == sorted((x["event_id"], x["attempt"]) for x in expected["delivery_findings"]["retry_too_fast"])
    refused = [r for recs in attempts.values() for r in recs if r["status_code"] is None]
    assert refused and all(r["error"] == "connection refused" for r in refused)


def test_every_failure_case_is_planted_even_at_the_minimum_size(tmp_path):
    generate_sample(tmp_path, intents=MIN_INTENTS, seed=1)
    exp = json.loads((tmp_path / "expected.json").read_text())
    codes = {c for per_source in exp["quarantine"].values() for c in per_source}
    assert codes == set(errors.CATALOGUE) - NOT_PLANTED
    assert {b["break_type"] for b in exp["breaks"]} == BREAK_TYPES
    assert {r["reason"] for r in exp["reviews"]} == {"over_max_amount", "over_daily_limit"}
    assert {r["reason"] for r in exp["rejected"]} == {"corridor_not_allowed", "amount_not_positive"}
    assert exp["quarantine"]["callbacks"][errors.EVENT_CONFLICT] == 2
    cases = {p["case"] for p in exp["planted"]}
    for case in ("identical_redelivery_same_webhook_id", "same_event_id_new_webhook_id",
                 "out_of_order_higher_sequence_first", "replay_past", "replay_future",
                 "replay_window_boundary_exactly_300s_is_valid", "forgery_signed_with_another_tenants_secret",
                 "tampered_body_original_signature", "signature_malformed_v1_no_comma", "signature_malformed_garbage",
                 "unknown_tenant_t_delta_acme_pay", "identical_retry_line", "intent_conflict_first_copy",
                 "amount_float_flat_2026_01_01", "amount_float_nested_2026_06_01"):
        assert case in cases, case
    assert exp["delivery_findings"]["failed_last_attempt"] and exp["delivery_findings"]["retry_too_fast"]
    assert len(exp["negative_balances"]) == 1


def test_start_moves_the_calendar_and_keeps_the_cases(tmp_path):
    """The bench's month of history ends before today: the scenario can start elsewhere,
    with the same planted cases, and the module's calendar is restored afterwards."""
    from datetime import date

    from zentra_pipelines.sample import _scenario

    moved = generate_sample(tmp_path / "moved", intents=MIN_INTENTS, seed=3, days=2, start=date(2026, 10, 1))
    usual = generate_sample(tmp_path / "usual", intents=MIN_INTENTS, seed=3, days=2)
    assert {k: v for k, v in moved.items() if k != "out_dir"} == {k: v for k, v in usual.items() if k != "out_dir"}
    days = sorted(p.name for p in (tmp_path / "moved" / "landing" / "intents").glob("2026-*.jsonl"))
    assert days == ["2026-10-01.jsonl", "2026-10-02.jsonl"]
    assert _scenario.START_DATE == date(2026, 11, 20)
    assert _scenario._iso(_scenario.BASE_MS) == "2026-11-20T00:00:00.000Z"
