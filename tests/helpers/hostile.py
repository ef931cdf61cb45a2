"""Hostile input: a corpus of bad lines for every input format, and fast deterministic mutators.

Everything here builds *bytes* (a landing line never has to be valid UTF-8 or JSON) and is
a pure function of its arguments and seed, so a failing case is reproducible from the
test's output. Nothing here is collected as a test.

* ``Case``: one hostile line, with the code the contract requires (``ACCEPT`` = accepted,
  a code, a set of acceptable codes, or ``ANY`` = accepted or quarantined with any code of
  the catalogue; the suite always checks that no line crashes a run or vanishes).
* ``CallbackSigner``: Standard Webhooks signing of callback lines (contract 2.1).
* ``callback_corpus`` / ``intent_corpus`` / ``delivery_corpus`` / ``settlement_corpus`` and
  ``ledger_rows`` (the SQLite source: REAL/TEXT/BLOB amounts, quotes in ids, NULLs).
* ``mutate_callbacks``: N mutations of valid callbacks (byte flips, truncations, insertions,
  deletions, field deletions, type swaps, body edits re-signed so that the deeper checks run).
* ``mutate_lines``: the same byte- and JSON-level mutations for any JSONL/CSV line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.helpers.callbacks import MISSING, overridden

ACCEPT = None
ANY = "*"

SQL_INJECTION = "x'; DROP TABLE intents; --"
HOSTILE_IDS = {
    "sql_quote": SQL_INJECTION,
    "double_quote": 'x"; DROP TABLE "provider_state"; --',
    "dotdot": "..",
    "traversal": "../../etc/passwd",
    "slash": "t_alpha/evil",
    "absolute": "/etc/passwd",
    "backslash": "a\\b",
    "newline": "evt\nline",
    "bell": "evt\u0007",
    "escape_seq": "evt\u001b[31m",
    "nbsp": "evt\u00a0x",
    "rtl_override": "evt\u202eabc",
    "line_separator": "evt\u2028x",
    "arabic_digit": "\u0663abc",
    "fullwidth": "\uff45vt",
    "empty": "",
    "too_long": "a" * 129,
    "leading_dash": "-evt",
    "space": "evt 1",
    "percent": "evt%00",
    "glob": "evt*",
}


@dataclass(frozen=True)
class Case:
    label: str
    line: bytes
    expect: Any = ANY  # ACCEPT, a code, a frozenset of codes, or ANY


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def jline(obj: Any) -> bytes:
    return dumps(obj).encode("utf-8")


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ----------------------------------------------------------------- callbacks ---


def _sign(secret: str, webhook_id: str, timestamp: str, body: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_matches(secrets: Sequence[str], webhook_id: str, timestamp: str, body: str, header: str) -> bool:
    """Independent (Python hmac) check of a webhook-signature header: one v1 match suffices."""
    offered = set(header.split(" "))
    return any(_sign(s, webhook_id, timestamp, body) in offered for s in secrets)


@dataclass(frozen=True)
class CallbackSigner:
    tenant: str
    provider: str
    secret: str
    received_at: datetime = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)

    def body(self, n: int = 0, **overrides: Any) -> dict:
        body = {"api_version": "2026-01-01", "event_id": f"evt_hostile_{n:06d}", "type": "payment.captured",
                "intent_id": f"in_hostile_{n:06d}", "provider_ref": f"ref_hostile_{n:06d}", "amount_minor": 1250,
                "currency": "EUR", "sequence": 1, "occurred_at": iso(self.received_at - timedelta(seconds=2))}
        return overridden(body, overrides)

    def envelope(self, body: str | dict, *, webhook_id: str | None = None, ts: int | str | None = None,
                 signature: str | None = None, sign_with: str | None = None, headers: dict | None = None,
                 **fields: Any) -> dict:
        raw = body if isinstance(body, str) else dumps(body)
        ts = str(int(self.received_at.timestamp()) - 1) if ts is None else str(ts)
        if webhook_id is None:
            webhook_id = "msg_" + hashlib.sha256(f"{raw}|{ts}".encode()).hexdigest()[:20]
        if signature is None:
            signature = _sign(sign_with or self.secret, webhook_id, ts, raw)
        env = {"received_at": iso(self.received_at), "tenant_id": self.tenant, "provider": self.provider,
               "headers": {"webhook-id": webhook_id, "webhook-timestamp": ts, "webhook-signature": signature},
               "body": raw}
        env["headers"] = overridden(env["headers"], headers or {})
        return overridden(env, fields)

    def line(self, body: str | dict | None = None, **kw: Any) -> bytes:
        return jline(self.envelope(self.body() if body is None else body, **kw))


#: an override that removes the key (the callback helpers' sentinel)
DROP = MISSING


def callback_corpus(signer: CallbackSigner, other_secret: str) -> list[Case]:
    """Hostile callback lines for ``signer``'s tenant; ``other_secret`` belongs to another tenant."""
    s = signer
    good = s.line(s.body(0))
    n = iter(range(1, 10_000))
    cases = [
        Case("valid", good, ACCEPT),
        Case("truncated_json", good[: len(good) // 2], "malformed_json"),
        Case("truncated_one_byte", good[:-1], "malformed_json"),
        Case("trailing_garbage", good + b" x", "malformed_json"),
        Case("two_objects_one_line", good + good, "malformed_json"),
        Case("nul_byte", good.replace(b'"provider":', b'"provider":\x00', 1), "nul_byte"),
        Case("nul_escaped_in_id", s.line(s.body(next(n), event_id="evt\u0000x")), "invalid_identifier"),
        Case("invalid_utf8", good.replace(b"acme", b"ac\xffme", 1) if b"acme" in good else good[:20] + b"\xff" + good[20:],
             "invalid_utf8"),
        Case("overlong_utf8", good[:10] + b"\xc0\xaf" + good[10:], "invalid_utf8"),
        Case("lone_surrogate_utf8", good[:10] + b"\xed\xa0\x80" + good[10:], "invalid_utf8"),
        Case("body_10mb", s.line(s.body(next(n), pad="x" * (10 << 20))), "line_too_large"),
        Case("nesting_10k_top", nested(10_000).encode(), "not_an_object"),
        Case("nesting_10k_in_envelope", jline(s.envelope(s.body(next(n)))).replace(
            b'"body":', b'"deep":' + nested(10_000).encode() + b',"body":', 1), ANY),
        Case("nesting_10k_in_body", s.line('{"api_version":"2026-01-01","deep":' + nested(10_000) + "}"), ANY),
        Case("unclosed_nesting_10k", ("[" * 10_000).encode(), "malformed_json"),
        Case("dup_key_envelope", good.replace(b'{"received_at"', b'{"tenant_id":"t_other","received_at"', 1),
             "duplicate_json_key"),
        Case("dup_key_headers", good.replace(b'"headers":{', b'"headers":{"webhook-id":"msg_dup",', 1),
             "duplicate_json_key"),
        Case("dup_key_body", s.line('{"amount_minor":1,' + dumps(s.body(next(n)))[1:]), "duplicate_json_key"),
        Case("amount_2p63", s.line(s.body(next(n), amount_minor=2**63)), "amount_out_of_range"),
        Case("amount_max_i64", s.line(s.body(next(n), amount_minor=2**63 - 1)), ACCEPT),
        Case("amount_min_i64", s.line(s.body(next(n), amount_minor=-(2**63))), ACCEPT),
        Case("amount_below_i64", s.line(s.body(next(n), amount_minor=-(2**63) - 1)), "amount_out_of_range"),
        Case("amount_10p30", s.line(s.body(next(n), amount_minor=10**30)), "amount_out_of_range"),
        Case("amount_1e400", s.line(dumps(s.body(next(n))).replace('"amount_minor":1250', '"amount_minor":1e400')), ANY),
        # NaN is not JSON (RFC 8259), but DuckDB's reader accepts it as a float: either refusal is fine
        Case("amount_nan", s.line(dumps(s.body(next(n))).replace('"amount_minor":1250', '"amount_minor":NaN')),
             frozenset({"body_malformed_json", "amount_float", "amount_invalid"})),
        Case("amount_float", s.line(s.body(next(n), amount_minor=1250.0)), "amount_float"),
        Case("amount_string", s.line(s.body(next(n), amount_minor="1250")), "amount_string"),
        Case("amount_bool", s.line(s.body(next(n), amount_minor=True)), "amount_boolean"),
        Case("amount_list", s.line(s.body(next(n), amount_minor=[1250])), "amount_invalid"),
        Case("sequence_2p64", s.line(s.body(next(n), sequence=2**64)), "sequence_invalid"),
        Case("sequence_negative", s.line(s.body(next(n), sequence=-1)), "sequence_invalid"),
        Case("timestamp_huge", s.line(s.body(next(n)), ts="99999999999999999999"), "timestamp_invalid"),
        Case("timestamp_negative", s.line(s.body(next(n)), ts="-5"), "timestamp_invalid"),
        Case("replay_301s", s.line(s.body(next(n)), ts=int(s.received_at.timestamp()) - 301), "replay_window"),
        Case("future_301s", s.line(s.body(next(n)), ts=int(s.received_at.timestamp()) + 301), "replay_window"),
        Case("edge_300s", s.line(s.body(next(n)), ts=int(s.received_at.timestamp()) - 300), ACCEPT),
        Case("sig_v1_no_comma", s.line(s.body(next(n)), signature="v1"), "signature_malformed"),
        Case("sig_v1_comma_alone", s.line(s.body(next(n)), signature="v1,"), "signature_malformed"),
        Case("sig_not_base64", s.line(s.body(next(n)), signature="v1,!!!!"), "signature_malformed"),
        Case("sig_v2_scheme", s.line(s.body(next(n)), signature="v2," + "A" * 43 + "="), "signature_malformed"),
        Case("sig_empty", s.line(s.body(next(n)), signature=""), "signature_malformed"),
        Case("sig_1000_bogus", s.line(s.body(next(n)), signature=" ".join(
            "v1," + base64.b64encode(hashlib.sha256(str(i).encode()).digest()).decode() for i in range(1000))),
             "signature_mismatch"),
        Case("sig_1000_with_valid_last", _with_many_signatures(s, s.body(next(n))), ACCEPT),
        Case("sig_other_tenant_secret", s.line(s.body(next(n)), sign_with=other_secret), "signature_mismatch"),
        Case("sig_as_list", s.line(s.body(next(n)), headers={"webhook-signature": ["v1,x"]}), "invalid_field_type"),
        Case("header_missing_sig", s.line(s.body(next(n)), headers={"webhook-signature": DROP}), "header_missing"),
        Case("headers_not_object", jline({**s.envelope(s.body(next(n))), "headers": "webhook-id: x"}),
             "invalid_field_type"),
        Case("body_not_string", jline({**s.envelope(s.body(next(n))), "body": s.body(next(n))}), "invalid_field_type"),
        Case("body_not_json", s.line("not json at all"), "body_malformed_json"),
        Case("body_json_array", s.line("[1,2,3]"), "body_malformed_json"),
        Case("api_version_unknown", s.line(s.body(next(n), api_version="2099-01-01")), "unsupported_api_version"),
        Case("event_type_unknown", s.line(s.body(next(n), type="payment.stolen")), "unknown_event_type"),
        Case("currency_unknown", s.line(s.body(next(n), currency="XXQ")), "currency_unknown"),
        Case("currency_lowercase", s.line(s.body(next(n), currency="eur")), "currency_unknown"),
        Case("received_at_garbage", s.line(s.body(next(n)), received_at="2026-13-45T99:99:99Z"), "invalid_timestamp"),
        Case("occurred_at_garbage", s.line(s.body(next(n), occurred_at="yesterday")), "invalid_timestamp"),
        Case("unknown_tenant", jline(s.envelope(s.body(next(n)), tenant_id="t_nobody")), "unknown_tenant"),
        Case("missing_body", jline({k: v for k, v in s.envelope(s.body(next(n))).items() if k != "body"}),
             "missing_field"),
        Case("empty_line", b"", "malformed_json"),
        Case("whitespace_line", b"   \t ", "malformed_json"),
        Case("crlf", s.line(s.body(next(n))) + b"\r", ANY),
        Case("bom", b"\xef\xbb\xbf" + s.line(s.body(next(n))), ANY),
        Case("json_null", b"null", "not_an_object"),
        Case("json_string", b'"hello"', "not_an_object"),
    ]
    for key, bad in HOSTILE_IDS.items():
        cases.append(Case(f"event_id_{key}", s.line(s.body(next(n), event_id=bad)), "invalid_identifier"))
        cases.append(Case(f"provider_ref_{key}", s.line(s.body(next(n), provider_ref=bad)), "invalid_identifier"))
        cases.append(Case(f"webhook_id_{key}", s.line(s.body(next(n)), webhook_id=bad), "invalid_identifier"))
        cases.append(Case(f"tenant_id_{key}", jline(s.envelope(s.body(next(n)), tenant_id=bad)), "invalid_identifier"))
    return cases


def _with_many_signatures(s: CallbackSigner, body: dict) -> bytes:
    raw = dumps(body)
    ts = str(int(s.received_at.timestamp()) - 1)
    wid = "msg_many_" + hashlib.sha256(raw.encode()).hexdigest()[:12]
    bogus = ["v1," + base64.b64encode(hashlib.sha256(f"b{i}".encode()).digest()).decode() for i in range(999)]
    return s.line(raw, webhook_id=wid, ts=ts, signature=" ".join([*bogus, _sign(s.secret, wid, ts, raw)]))


def out_of_range_timestamps(signer: CallbackSigner) -> dict[str, tuple[str, str, bytes]]:
    """Timestamps that match ISO 8601 but whose UTC value lies outside years 1..9999 (which
    Python's datetime, Arrow-to-Python conversion and the evidence calendar cannot hold).
    label -> (source, file name, file bytes)."""
    s = signer
    return {
        "callback_received_year_0": ("callbacks", "y0.jsonl",
                                     s.line(s.body(900_001), received_at="0000-01-01T00:00:00Z") + b"\n"),
        "callback_received_offset_to_year_0": ("callbacks", "y0-offset.jsonl",
                                               s.line(s.body(900_002), received_at="0001-01-01T00:00:00+01:00") + b"\n"),
        "callback_received_year_10000": ("callbacks", "y10000.jsonl",
                                         s.line(s.body(900_003), received_at="9999-12-31T23:59:59-01:00") + b"\n"),
        "intent_created_year_0": ("intents", "y0.jsonl",
                                  jline(intent(900_004, created_at="0000-01-01T00:00:00Z")) + b"\n"),
        "intent_created_year_10000": ("intents", "y10000.jsonl",
                                      jline(intent(900_005, created_at="9999-12-31T23:59:59-01:00")) + b"\n"),
    }


# -------------------------------------------------------------------- intents ---


def intent(n: int, tenant: str = "t_alpha", **overrides: Any) -> dict:
    obj = {"intent_id": f"in_hostile_{n:06d}", "tenant_id": tenant, "scope": "workspace_scope", "kind": "payment",
           "amount_minor": 1250, "currency": "EUR", "ledger_currency": "EUR", "corridor": "EUR:SEPA:EUR",
           "actor_id": "usr_hostile", "created_at": "2026-11-20T12:00:00.000Z", "primitives": ["policy", "ledger"]}
    return overridden(obj, overrides)


def intent_corpus(tenant: str = "t_alpha") -> list[Case]:
    n = iter(range(1, 10_000))
    good = jline(intent(0, tenant))
    cases = [
        Case("truncated", good[:-7], "malformed_json"),
        Case("nul_byte", good.replace(b'"kind"', b'"ki\x00nd"'), "nul_byte"),
        Case("invalid_utf8", good.replace(b"workspace", b"work\xfespace"), "invalid_utf8"),
        Case("ten_mb", jline(intent(next(n), tenant, pad="y" * (10 << 20))), "line_too_large"),
        Case("nesting_10k", nested(10_000).encode(), "not_an_object"),
        Case("nesting_10k_primitives", jline(intent(next(n), tenant)).replace(
            b'"primitives":["policy","ledger"]', b'"primitives":' + nested(10_000).encode()), "invalid_field_type"),
        Case("dup_key", b'{"amount_minor":1,' + jline(intent(next(n), tenant))[1:], "duplicate_json_key"),
        Case("amount_huge", jline(intent(next(n), tenant, amount_minor=10**30)), "amount_out_of_range"),
        Case("amount_float", jline(intent(next(n), tenant, amount_minor=1.5)), "amount_float"),
        Case("amount_string", jline(intent(next(n), tenant, amount_minor="1250")), "amount_string"),
        Case("scope_injection", jline(intent(next(n), tenant, scope=SQL_INJECTION)), "invalid_identifier"),
        Case("corridor_injection", jline(intent(next(n), tenant, corridor="EUR:'; DROP TABLE x; --:EUR")),
             "corridor_invalid"),
        Case("kind_unknown", jline(intent(next(n), tenant, kind="heist")), "kind_unknown"),
        Case("primitives_not_strings", jline(intent(next(n), tenant, primitives=[1, None, {}])), "invalid_field_type"),
        Case("created_at_garbage", jline(intent(next(n), tenant, created_at="2026-02-30T25:00:00Z")), "invalid_timestamp"),
        Case("empty_line", b"", "malformed_json"),
        Case("crlf", jline(intent(next(n), tenant)) + b"\r", ANY),
        Case("bom", b"\xef\xbb\xbf" + jline(intent(next(n), tenant)), ANY),
        Case("null_everything", jline({k: None for k in intent(0)}), "missing_field"),
    ]
    for key, bad in HOSTILE_IDS.items():
        cases.append(Case(f"intent_id_{key}", jline(intent(next(n), tenant, intent_id=bad)), "invalid_identifier"))
        cases.append(Case(f"tenant_id_{key}", jline(intent(next(n), bad)), "invalid_identifier"))
        cases.append(Case(f"actor_id_{key}", jline(intent(next(n), tenant, actor_id=bad)), "invalid_identifier"))
    return cases


# ----------------------------------------------------------------- deliveries ---


def delivery(n: int, tenant: str = "t_alpha", **overrides: Any) -> dict:
    obj = {"delivery_id": f"dlv_hostile_{n:06d}", "event_id": f"evt_out_hostile_{n:06d}", "tenant_id": tenant,
           "endpoint": f"https://hooks.{tenant}.example/zentra", "attempt": 1,
           "attempted_at": "2026-11-20T12:00:00.000Z", "status_code": 200, "error": None, "latency_ms": 12}
    return overridden(obj, overrides)


def delivery_corpus(tenant: str = "t_alpha") -> list[Case]:
    n = iter(range(1, 10_000))
    good = jline(delivery(0, tenant))
    cases = [
        Case("truncated", good[:-3], "malformed_json"),
        Case("nul_byte", good.replace(b"https", b"ht\x00tps"), "nul_byte"),
        Case("invalid_utf8", good.replace(b"hooks", b"ho\x80oks"), "invalid_utf8"),
        Case("ten_mb", jline(delivery(next(n), tenant, error="e" * (10 << 20))), "line_too_large"),
        Case("nesting_10k", nested(10_000).encode(), "not_an_object"),
        Case("dup_key", b'{"attempt":2,' + jline(delivery(next(n), tenant))[1:], "duplicate_json_key"),
        Case("status_huge", jline(delivery(next(n), tenant, status_code=10**30)), "status_code_invalid"),
        Case("status_99", jline(delivery(next(n), tenant, status_code=99)), "status_code_invalid"),
        Case("attempt_zero", jline(delivery(next(n), tenant, attempt=0)), "attempt_invalid"),
        Case("latency_negative", jline(delivery(next(n), tenant, latency_ms=-1)), "latency_invalid"),
        Case("endpoint_javascript", jline(delivery(next(n), tenant, endpoint="javascript:alert(1)")), "invalid_field_type"),
        Case("endpoint_space", jline(delivery(next(n), tenant, endpoint="https://a b")), "invalid_field_type"),
        Case("error_injection_text", jline(delivery(next(n), tenant, status_code=500, error=SQL_INJECTION)), ACCEPT),
        Case("empty_line", b"", "malformed_json"),
        Case("crlf", jline(delivery(next(n), tenant)) + b"\r", ANY),
        Case("bom", b"\xef\xbb\xbf" + jline(delivery(next(n), tenant)), ANY),
    ]
    for key, bad in HOSTILE_IDS.items():
        cases.append(Case(f"delivery_id_{key}", jline(delivery(next(n), tenant, delivery_id=bad)), "invalid_identifier"))
        cases.append(Case(f"tenant_id_{key}", jline(delivery(next(n), bad)), "invalid_identifier"))
    return cases


# ---------------------------------------------------------------- settlements ---

SETTLEMENT_HEADER = b"provider,provider_ref,tenant_id,currency,gross_minor,fee_minor,net_minor,settled_at,batch_id"


def settlement(n: int, tenant: str = "t_alpha", **overrides: str) -> bytes:
    row = {"provider": "acme_pay", "provider_ref": f"ref_settle_hostile_{n:06d}", "tenant_id": tenant,
           "currency": "EUR", "gross_minor": "10000", "fee_minor": "250", "net_minor": "9750",
           "settled_at": "2026-11-20T18:00:00.000Z", "batch_id": "batch_hostile"}
    row.update(overrides)
    return ",".join(row.values()).encode("utf-8")


def settlement_corpus(tenant: str = "t_alpha") -> list[Case]:
    """Rows of one CSV file; the caller writes SETTLEMENT_HEADER first (line 1)."""
    n = iter(range(1, 10_000))
    cases = [
        Case("valid", settlement(0, tenant), ACCEPT),
        Case("too_few_fields", b"acme_pay,ref_x," + tenant.encode(), "csv_malformed"),
        Case("too_many_fields", settlement(next(n), tenant) + b",extra", "csv_malformed"),
        Case("broken_quote", settlement(next(n), tenant, batch_id='"unterminated'), "csv_malformed"),
        Case("nul_byte", settlement(next(n), tenant).replace(b"acme", b"ac\x00me"), "nul_byte"),
        Case("invalid_utf8", settlement(next(n), tenant).replace(b"acme", b"ac\xffme"), "invalid_utf8"),
        Case("ten_mb", settlement(next(n), tenant, batch_id="b" * (10 << 20)), "line_too_large"),
        Case("gross_huge", settlement(next(n), tenant, gross_minor=str(10**30)), ANY),
        Case("gross_float", settlement(next(n), tenant, gross_minor="100.5"), ANY),
        Case("net_mismatch", settlement(next(n), tenant, net_minor="1"), "net_mismatch"),
        Case("quoted_injection_ref", settlement(next(n), tenant, provider_ref='"x\'; DROP TABLE settlements; --"'),
             "invalid_identifier"),
        Case("formula_ref", settlement(next(n), tenant, provider_ref="=cmd|' /C calc'!A0"), ANY),
        Case("empty_line", b"", "csv_malformed"),
        Case("crlf", settlement(next(n), tenant) + b"\r", ANY),
        Case("bom", b"\xef\xbb\xbf" + settlement(next(n), tenant), ANY),
    ]
    for key, bad in HOSTILE_IDS.items():
        if any(c in bad for c in ',"\n'):
            continue  # would change the CSV framing itself, covered above
        want = frozenset({"missing_field", "invalid_identifier"}) if not bad else "invalid_identifier"
        cases.append(Case(f"provider_ref_{key}", settlement(next(n), tenant, provider_ref=bad), want))
    return cases


# --------------------------------------------------------- ledger source (SQLite) ---

POSTING_COLUMNS = ("posting_id", "journal_id", "intent_id", "tenant_id", "account_id", "currency",
                   "amount_minor", "posted_at", "actor_id", "idempotency_key")


def ledger_rows(tenant: str, debit: str, credit: str) -> list[tuple[str, tuple]]:
    """(label, row) of hostile postings; each journal is two legs between two real accounts."""
    rows: list[tuple[str, tuple]] = []

    def journal(label: str, n: int, amount_a: Any = -500, amount_b: Any = 500, **over: Any) -> None:
        base = {"journal_id": f"j_hostile_{n}", "intent_id": f"in_hostile_{n}", "tenant_id": tenant,
                "currency": "EUR", "posted_at": "2026-11-20T13:00:00.000000Z", "actor_id": "usr_hostile",
                "idempotency_key": f"in_hostile_{n}:reserve"}
        for leg, (account, amount) in enumerate(((debit, amount_a), (credit, amount_b))):
            row = {**base, "posting_id": f"p_hostile_{n}_{leg}", "account_id": account, "amount_minor": amount}
            row.update({k: v for k, v in over.items() if k != "posting_id"})
            if "posting_id" in over:
                row["posting_id"] = f"{over['posting_id']}{leg}"
            rows.append((f"{label}#{leg}", tuple(row[c] for c in POSTING_COLUMNS)))

    journal("real_amount", 1, -500.0, 500.0)
    journal("real_fraction", 2, -12.5, 12.5)
    journal("text_amount", 3, "-500", "500")
    journal("text_garbage", 4, "abc", "def")
    journal("null_amount", 5, None, None)
    journal("blob_amount", 6, b"\x01\x02", b"\x03")
    journal("huge_real", 7, -(2.0**70), 2.0**70)
    journal("quote_posting_id", 9, posting_id="p'; DROP TABLE ledger_postings; --")
    journal("quote_account", 10, account_id="acct'; DROP TABLE accounts; --")
    journal("traversal_tenant", 11, tenant_id="../../etc")
    journal("null_journal", 12, journal_id=None)
    journal("null_posted_at", 13, posted_at=None)
    journal("garbage_posted_at", 14, posted_at="not a date")
    journal("impossible_date", 15, posted_at="2026-02-30T00:00:00Z")
    journal("currency_unknown", 16, currency="XXQ")
    journal("currency_null", 17, currency=None)
    journal("unknown_account", 18, account_id="t_nowhere:customer:0001")
    journal("control_chars", 19, intent_id="in\u0007\u001b[2J")
    journal("unbalanced", 20, -500, 499)
    journal("invalid_utf8_blob_id", 21, actor_id=b"\xff\xfe")
    return rows


def overflow_rows(tenant: str, debit: str, credit: str) -> list[tuple[str, tuple]]:
    """One balanced journal of two valid int64 postings (-(2^63-1), +(2^63-1)): each amount is
    legal, but any account already holding a balance of the same sign overflows int64."""
    base = {"journal_id": "j_overflow_1", "intent_id": "in_overflow_1", "tenant_id": tenant, "currency": "EUR",
            "posted_at": "2026-11-20T13:00:00.000000Z", "actor_id": "usr_hostile",
            "idempotency_key": "in_overflow_1:reserve"}
    rows = []
    for leg, (account, amount) in enumerate(((debit, -(2**63 - 1)), (credit, 2**63 - 1))):
        row = {**base, "posting_id": f"p_overflow_1_{leg}", "account_id": account, "amount_minor": amount}
        rows.append((f"overflow#{leg}", tuple(row[c] for c in POSTING_COLUMNS)))
    return rows


def write_hostile_ledger(target: Path, base_db: Path, tenant: str, debit: str, credit: str,
                         rows: list[tuple[str, tuple]] | None = None) -> list[str]:
    """Copy ``base_db``'s rows into ``target`` with *untyped* columns (no SQLite affinity, so
    REAL/TEXT/BLOB amounts survive as stored) and append the hostile rows (default
    ``ledger_rows``); return their labels."""
    src = sqlite3.connect(base_db)
    dst = sqlite3.connect(target)
    try:
        dst.execute(f"CREATE TABLE ledger_postings ({', '.join(POSTING_COLUMNS)})")
        dst.execute("CREATE TABLE accounts (account_id, tenant_id, type, allow_negative)")
        dst.executemany(f"INSERT INTO ledger_postings VALUES ({','.join('?' * len(POSTING_COLUMNS))})",
                        src.execute(f"SELECT {', '.join(POSTING_COLUMNS)} FROM ledger_postings"))
        dst.executemany("INSERT INTO accounts VALUES (?,?,?,?)",
                        src.execute("SELECT account_id, tenant_id, type, allow_negative FROM accounts"))
        hostile = ledger_rows(tenant, debit, credit) if rows is None else rows
        dst.executemany(f"INSERT INTO ledger_postings VALUES ({','.join('?' * len(POSTING_COLUMNS))})",
                        [row for _, row in hostile])
        dst.commit()
    finally:
        src.close()
        dst.close()
    return [label for label, _ in hostile]


# ------------------------------------------------------------------ mutation ---

_INTERESTING_BYTES = [b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"\x00", b"\xff", b"\xc3", b"\n", b"\r",
                      b" ", b"'", b"0", b"-", b"e", b"\\u0000", b"\\ud800", b"null", b"1e999", b"\t"]
_SWAPS: list[Any] = [None, True, False, 0, -1, 1.5, 1e308, 2**63, -(2**63) - 1, 10**40, "", "x", "1250",
                     "2026-11-20T12:00:00Z", [], [1], {}, {"a": 1}, SQL_INJECTION, "../x", "\u0000", "\ud7ff"]
_BODY_KEYS = ("api_version", "event_id", "type", "intent_id", "provider_ref", "amount_minor", "currency",
              "sequence", "occurred_at")


def _byte_mutation(rng: random.Random, line: bytes) -> bytes:
    op = rng.randrange(6)
    if not line:
        return rng.choice(_INTERESTING_BYTES)
    i = rng.randrange(len(line))
    if op == 0:  # flip a byte
        return line[:i] + bytes([line[i] ^ rng.randrange(1, 256)]) + line[i + 1:]
    if op == 1:  # truncate
        return line[:i]
    if op == 2:  # insert
        return line[:i] + rng.choice(_INTERESTING_BYTES) + line[i:]
    if op == 3:  # delete a span
        return line[:i] + line[i + rng.randrange(1, 16):]
    if op == 4:  # duplicate a span
        j = min(len(line), i + rng.randrange(1, 32))
        return line[:j] + line[i:j] + line[j:]
    return line[:i] + bytes([rng.randrange(256)]) + line[i + 1:]  # overwrite


def _json_mutation(rng: random.Random, obj: dict) -> dict:
    obj = dict(obj)
    keys = list(obj)
    op = rng.randrange(4)
    if op == 0 and keys:  # delete a field
        obj.pop(rng.choice(keys))
    elif op == 1 and keys:  # swap a type
        obj[rng.choice(keys)] = rng.choice(_SWAPS)
    elif op == 2:  # add a field
        obj[rng.choice(["extra", "amount_minor", "sequence", "object", ""])] = rng.choice(_SWAPS)
    elif keys:  # nest
        k = rng.choice(keys)
        obj[k] = {"v": obj[k]} if rng.random() < 0.5 else [obj[k]]
    return obj


def mutate_callbacks(valid: Sequence[bytes], n: int, seed: int, secrets: dict[str, dict[str, list[str]]]) -> Iterator[bytes]:
    """``n`` mutated callback lines (each may contain newlines, i.e. frame as several lines)."""
    rng = random.Random(seed)
    parsed = [json.loads(line) for line in valid]
    for i in range(n):
        k = rng.randrange(len(valid))
        kind = rng.random()
        if kind < 0.45:
            line = valid[k]
            for _ in range(rng.randrange(1, 4)):
                line = _byte_mutation(rng, line)
            yield line
            continue
        env = parsed[k]
        if kind < 0.6:  # envelope or headers, signature untouched
            if rng.random() < 0.5:
                yield _safe_dumps(_json_mutation(rng, env))
            else:
                yield _safe_dumps({**env, "headers": _json_mutation(rng, env["headers"])})
            continue
        # body edited then re-signed with the tenant's own secret, so the body checks run
        try:
            body = json.loads(env["body"])
        except ValueError:
            body = {}
        if rng.random() < 0.9:  # a new event (a reused event_id with new content is a conflict: 10% of them)
            body["event_id"] = f"evt_fuzz_{seed}_{i}"
        if kind < 0.72:
            body = _json_mutation(rng, body)
        elif kind < 0.82:
            pass  # re-signed unchanged apart from its ids and timestamp: accepted when in window
        elif kind < 0.92:
            body = {**body, rng.choice(_BODY_KEYS): rng.choice(_SWAPS)}
        else:  # upcast to the nested 2026-06-01 shape, sometimes with a bad amount
            body = {**{k: v for k, v in body.items() if k not in ("intent_id", "provider_ref", "amount_minor",
                                                                    "currency")},
                    "api_version": "2026-06-01", "object": {
                        "intent_id": body.get("intent_id"), "provider_ref": body.get("provider_ref"),
                        "amount": rng.choice([{"value": body.get("amount_minor"), "currency": body.get("currency")},
                                              {"value": body.get("amount_minor"), "currency": body.get("currency")},
                                              {"value": rng.choice(_SWAPS), "currency": "EUR"},
                                              rng.choice(_SWAPS)])}}
        raw = _safe_dumps(body).decode("utf-8", "replace")
        tenant, provider = env.get("tenant_id"), env.get("provider")
        keys = secrets.get(tenant, {}).get(provider) or ["whsec_" + base64.b64encode(b"k" * 32).decode()]
        headers = dict(env["headers"])
        headers["webhook-id"] = f"msg_fuzz_{seed}_{i}"
        shift = rng.choice([0, 0, 0, -1, 1, -299, 299, -301, 301, -10_000])
        headers["webhook-timestamp"] = str(int(headers.get("webhook-timestamp", "0")) + shift)
        headers["webhook-signature"] = _sign(rng.choice(keys), headers["webhook-id"], headers["webhook-timestamp"], raw)
        yield _safe_dumps({**env, "headers": headers, "body": raw})


def mutate_lines(valid: Sequence[bytes], n: int, seed: int) -> Iterator[bytes]:
    """Byte- and (for JSON lines) field-level mutations of any line format."""
    rng = random.Random(seed)
    parsed: list[Any] = []
    for line in valid:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            parsed.append(None)
    for _ in range(n):
        k = rng.randrange(len(valid))
        if parsed[k] is not None and isinstance(parsed[k], dict) and rng.random() < 0.5:
            yield _safe_dumps(_json_mutation(rng, parsed[k]))
        else:
            line = valid[k]
            for _ in range(rng.randrange(1, 4)):
                line = _byte_mutation(rng, line)
            yield line


def _safe_dumps(obj: Any) -> bytes:
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError, OverflowError):
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, default=str).encode()
