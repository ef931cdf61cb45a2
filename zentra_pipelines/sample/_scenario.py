"""The scenario: tenants, policy, the intent lifecycle, and every planted failure.

Design notes (why it looks the way it does):

* One pass over intents in ``created_at`` order (strictly increasing, so the policy's
  ``(created_at, intent_id)`` order is the generation order). Each intent's whole story
  (intent line, policy decision, callbacks, postings, settlement row, deliveries) is
  written when the intent is generated: memory stays bounded whatever ``intents`` is.
* The policy is simulated exactly as the pipeline applies it, so ``reviews`` and
  ``rejected`` in expected.json are the truth, not an estimate.
* Planted cases are either *roles* (a real intent with a twisted story: a break, a review,
  an out-of-order delivery, ...) or *plants* (extra lines with one defect each,
  interleaved in the normal files). A plant whose defect is in the body is validly
  signed, so the code that must win is the body defect, never the signature.
* Quarantined plants use their own identifiers (``in_q00001``, ``ap_q00001``...) so a
  misclassification shows up as a wrong count, never as silently changed state, except
  where the case is about a real event (tampering, forgery, replay).
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import datetime as _dt
import hashlib
import hmac
import json
import math
import os
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import yaml

from zentra_pipelines.domain import errors as E

DAY_MS = 86_400_000
START_DATE = _dt.date(2026, 11, 20)
BASE_MS = calendar.timegm(START_DATE.timetuple()) * 1000
MIN_INTENTS = 20
#: Longest period a scenario may span (``days=``; the default is 1-5 days by size). Dates
#: are precomputed for days -3..63; settlements and late deliveries run past the last day.
MAX_DAYS = 45
REPLAY_WINDOW_MS = 300_000

_MUL = 0x9E3779B97F4A7C15  # odd: multiplication is a bijection modulo 2**k
_MASK48 = (1 << 48) - 1
_MASK64 = (1 << 64) - 1

TENANTS = ("t_alpha", "t_beta", "t_gamma")
SHORT = {"t_alpha": "alpha", "t_beta": "beta", "t_gamma": "gamma"}
REVIEWERS = {
    "t_alpha": ["op_anna", "op_ben"],
    "t_beta": ["op_carla", "op_dev"],
    "t_gamma": ["op_emi", "op_farah"],
}
ENDPOINT = {t: f"https://hooks.{t}.example/zentra" for t in TENANTS}
PROVIDER_PREFIX = {"acme_pay": "ap", "zeta_pay": "zp"}
#: (tenant, provider, number of secrets). t_alpha/acme_pay is mid-rotation: [current, previous].
SECRET_SLOTS = (("t_alpha", "acme_pay", 2), ("t_beta", "acme_pay", 1), ("t_beta", "zeta_pay", 1),
                ("t_gamma", "zeta_pay", 1))
SIGNED_PAIRS = tuple((t, p) for t, p, _ in SECRET_SLOTS)
MAIN_CURRENCY = {"t_alpha": "EUR", "t_beta": "USD", "t_gamma": "JPY"}
#: (tenant, currency, traffic share, log-uniform amount range in minor units [lo, hi)).
POOLS = (
    ("t_alpha", "EUR", 0.38, 500, 250_000),
    ("t_beta", "USD", 0.20, 100, 300_000),
    ("t_beta", "GBP", 0.12, 100, 200_000),
    ("t_gamma", "JPY", 0.20, 100, 300_000),
    ("t_gamma", "BHD", 0.10, 1_000, 500_000),
)
FIXED_MAX = {"EUR": 5_000_000, "USD": 2_500_000, "GBP": 2_000_000, "JPY": 10_000_000}
RAILS = {
    "EUR": {"payment": "SEPA", "card": "CARD", "transfer": "INSTANT", "payout": "SEPA"},
    "USD": {"payment": "ACH", "card": "CARD", "transfer": "WIRE", "payout": "ACH"},
    "GBP": {"payment": "FPS", "card": "CARD", "transfer": "CHAPS", "payout": "FPS"},
    "JPY": {"payment": "ZENGIN", "card": "CARD", "transfer": "ZENGIN", "payout": "ZENGIN"},
    "BHD": {"payment": "FAWRI", "card": "CARD", "transfer": "FAWRI", "payout": "FAWRI"},
}
KINDS = (("payment", 0.50), ("card", 0.75), ("transfer", 0.85), ("payout", 1.0))  # cumulative
OTHER_CURRENCY = {"EUR": "GBP", "USD": "EUR", "GBP": "USD", "JPY": "USD", "BHD": "USD"}
SETTLEMENT_HEADER = "provider,provider_ref,tenant_id,currency,gross_minor,fee_minor,net_minor,settled_at,batch_id"
PRIMITIVES = '["policy", "ledger", "events"]'

#: Roles: real intents with a twisted story. (name, variants of (tenant, currency, provider)).
ROLE_SPECS = (
    ("missing_in_ledger", (("t_beta", "USD", "acme_pay"), ("t_alpha", "EUR", "acme_pay"), ("t_gamma", "JPY", "zeta_pay"))),
    ("missing_at_provider", (("t_alpha", "EUR", "acme_pay"),)),
    ("amount_mismatch", (("t_gamma", "JPY", "zeta_pay"), ("t_alpha", "EUR", "acme_pay"), ("t_beta", "USD", "zeta_pay"))),
    ("currency_mismatch", (("t_beta", "GBP", "zeta_pay"), ("t_alpha", "EUR", "acme_pay"))),
    ("duplicate_journal", (("t_alpha", "EUR", "acme_pay"),)),
    ("settlement_mismatch", (("t_beta", "USD", "acme_pay"), ("t_gamma", "JPY", "zeta_pay"))),
    ("callback_conflict", (("t_alpha", "EUR", "acme_pay"), ("t_beta", "GBP", "zeta_pay"))),
    ("over_max", (("t_alpha", "EUR", "acme_pay"), ("t_gamma", "JPY", "zeta_pay"))),
    ("max_boundary", (("t_beta", "USD", "acme_pay"),)),
    ("rejected", (("t_alpha", "EUR", "acme_pay"), ("t_gamma", "JPY", "zeta_pay"))),
    ("out_of_order", (("t_gamma", "JPY", "zeta_pay"), ("t_beta", "USD", "acme_pay"))),
    ("pending", (("t_beta", "GBP", "zeta_pay"),)),
    ("failed", (("t_alpha", "EUR", "acme_pay"),)),
    ("payout", (("t_gamma", "JPY", "zeta_pay"),)),
    ("captured_unsettled", (("t_alpha", "EUR", "acme_pay"), ("t_beta", "USD", "zeta_pay"))),
)
ROLE_OUTCOME = {
    "missing_in_ledger": "captured", "missing_at_provider": "reserve_only", "amount_mismatch": "captured",
    "currency_mismatch": "captured", "duplicate_journal": "settled", "settlement_mismatch": "settled",
    "callback_conflict": "settled", "max_boundary": "settled", "out_of_order": "captured",
    "pending": "pending", "failed": "failed", "payout": "settled", "captured_unsettled": "captured",
    "burst_a": "settled", "burst_b": "settled",
}
ROLE_KIND = {"payout": "payout", "captured_unsettled": "card", "burst_a": "transfer", "burst_b": "transfer",
             "burst_over": "transfer"}
OUTCOME_COUNTER = {"settled": "settled", "captured": "captured_unsettled", "pending": "pending",
                   "failed": "failed", "reserve_only": "reserve_only"}
BURST = ("t_gamma", "BHD", "zeta_pay")  # the over_daily_limit rehearsal (end of day 0)

#: Plants: extra lines with one defect each. (name, how many: "reps" or "once").
CALLBACK_PLANTS = (
    "cb_redeliver_identical", "cb_redeliver_new_id", "cb_replay_boundary_ok", "cb_replay_past",
    "cb_replay_future", "cb_forgery", "cb_tampered", "cb_sig_malformed", "cb_header_missing",
    "cb_timestamp_invalid", "cb_unknown_tenant", "cb_envelope_bad_webhook_id", "cb_malformed_json",
    "cb_not_an_object", "cb_invalid_utf8", "cb_nul_byte", "cb_dup_key_envelope", "cb_missing_field",
    "cb_invalid_field_type", "cb_invalid_timestamp", "cb_body_malformed", "cb_dup_key_body",
    "cb_unsupported_version", "cb_missing_field_body", "cb_invalid_identifier_body", "cb_unknown_event_type",
    "cb_amount_float", "cb_amount_string", "cb_amount_boolean", "cb_amount_out_of_range", "cb_amount_missing",
    "cb_amount_invalid", "cb_currency_unknown", "cb_sequence_invalid", "cb_unknown_intent",
)
ONCE_PLANTS = ("cb_line_too_large", "stl_header_mismatch")
INTENT_PLANTS = (
    "in_retry", "in_conflict", "in_malformed_json", "in_not_an_object", "in_invalid_utf8", "in_nul_byte",
    "in_dup_key", "in_missing_field", "in_invalid_field_type", "in_invalid_identifier", "in_invalid_timestamp",
    "in_kind_unknown", "in_amount_missing", "in_amount_float", "in_amount_string", "in_amount_boolean",
    "in_amount_out_of_range", "in_amount_invalid", "in_currency_unknown", "in_corridor_invalid",
    "in_amount_not_positive",
)
OTHER_PLANTS = (
    "stl_orphan", "stl_identical_copy", "ledger_unbalanced", "dl_conflict", "dl_identical_copy", "dl_status_abc", "dl_status_700", "dl_attempt_zero",
    "dl_latency_negative", "dl_malformed_json", "dl_missing_field", "dl_invalid_identifier",
    "dl_invalid_timestamp",
)
#: Plants with several variants (k cycles through them): every variant is planted at least once.
VARIANTS = {
    "cb_sig_malformed": 2, "cb_header_missing": 2, "cb_timestamp_invalid": 2, "cb_unknown_tenant": 2,
    "cb_not_an_object": 2, "cb_invalid_field_type": 2, "cb_body_malformed": 2, "cb_invalid_identifier_body": 3,
    "cb_amount_float": 2, "cb_amount_string": 2, "cb_amount_boolean": 2, "cb_amount_out_of_range": 2,
    "cb_amount_invalid": 2, "in_invalid_identifier": 2, "ledger_unbalanced": 1,
}
NEEDS_CALLBACK = {"cb_redeliver_identical", "cb_redeliver_new_id", "cb_replay_boundary_ok", "cb_replay_past",
                  "cb_replay_future", "cb_tampered"}
NEEDS_ALPHA_CALLBACK = {"cb_forgery"}
NEEDS_INTENT = {"in_retry"}
NEEDS_SETTLEMENT = {"stl_identical_copy"}
NEEDS_DELIVERY = {"dl_identical_copy"}

_DAYS: dict[int, str] = {d: (START_DATE + _dt.timedelta(days=d)).isoformat() for d in range(-3, 64)}
_HMS: list[str] = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]
_b64 = base64.b64encode


class _Rng(random.Random):
    """random.Random with a lean randrange (int(random() * n)): the hot path draws millions."""

    def randrange(self, start, stop=None):  # type: ignore[override]
        if stop is None:
            return int(self.random() * start)
        return start + int(self.random() * (stop - start))


def _iso(ms: int) -> str:
    """Epoch milliseconds -> '2026-11-20T10:00:03.120Z' (no datetime objects: hot path)."""
    d, r = divmod(ms - BASE_MS, DAY_MS)
    s, f = divmod(r, 1000)
    return f"{_DAYS[d]}T{_HMS[s]}.{f:03d}Z"


def _posted(ms: int) -> str:
    """Epoch milliseconds -> SQLite text timestamp 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC)."""
    d, r = divmod(ms - BASE_MS, DAY_MS)
    s, f = divmod(r, 1000)
    return f"{_DAYS[d]} {_HMS[s]}.{f:03d}000"


def _day(ms: int) -> int:
    return (ms - BASE_MS) // DAY_MS


def _nice(x: float) -> int:
    """Round up to two significant digits: 123456 -> 130000."""
    x = int(math.ceil(x))
    e = 10 ** max(0, len(str(x)) - 2)
    return -(-x // e) * e


def _scramble(n: int, salt: int, mask: int = _MASK48, width: int = 12) -> str:
    return format(((n + salt) * _MUL) & mask, f"0{width}x")


class _Sink:
    """Buffered line writers, opened lazily, counting physical lines per file."""

    def __init__(self, landing: Path):
        self.landing = landing
        self.files: dict[str, list] = {}

    def write(self, rel: str, line: str, header: str | None = None) -> int:
        entry = self.files.get(rel)
        if entry is None:
            path = self.landing / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            # surrogateescape lets a planted '\udcff' become the raw invalid byte 0xff
            fh = open(path, "w", encoding="utf-8", errors="surrogateescape", newline="\n", buffering=1 << 20)
            entry = self.files[rel] = [fh, 0]
            if header is not None:
                fh.write(header + "\n")
                entry[1] = 1
        entry[0].write(line + "\n")
        entry[1] += 1
        return entry[1]

    def close(self) -> None:
        for fh, _ in self.files.values():
            fh.close()


class _Scenario:
    def __init__(self, out_dir: Path, n: int, seed: int, days: int | None = None):
        if not isinstance(n, int) or n < MIN_INTENTS:
            raise ValueError(f"intents must be an integer >= {MIN_INTENTS} (every case is planted at least once)")
        if days is not None and (not isinstance(days, int) or not 1 <= days <= MAX_DAYS):
            raise ValueError(f"days must be an integer in 1..{MAX_DAYS}")
        self.out = out_dir
        self.n = n
        self.seed = seed
        self.rng = _Rng(seed)
        self.days = days if days is not None else max(1, min(5, (n + 99) // 100))
        self.span = self.days * DAY_MS
        self.step = self.span // n
        self.reps = max(1, n // 25_000)
        self.width = max(7, len(str(n - 1)))
        self.sink = _Sink(out_dir / "landing")

        self._init_secrets()
        self._init_policies()
        self._init_accounts()

        # running state
        self.daily_used: dict[tuple[str, str, int], int] = {}
        self.bal: dict[tuple[str, str, str], int] = {}
        self.post_buf: list[tuple] = []
        self.postings = 0
        self.msg_counter = 0
        self.dl_counter = 0
        self.out_counter = 0
        self.rot_counter = 0
        self.q_counter = 0
        self.plant_no = 0
        self.outage_seen = 0
        self.outage_events = 4 * self.reps
        self.last_cb: dict | None = None
        self.last_cb_by_tenant: dict[str, dict] = {}
        self.last_intent_line: tuple[str, int] | None = None
        self.last_settlement: tuple[str, str] | None = None
        self.last_delivery: str | None = None
        self.cu_intents: list[dict] = []
        self.expected_breaks: list[dict] = []
        self.reviews: list[dict] = []
        self.rejected: list[dict] = []
        self.planted: list[dict] = []
        self.state_checks: list[dict] = []
        self.delivery_findings = {"failed_last_attempt": [], "retry_too_fast": []}
        self.quarantine: dict[str, dict[str, int]] = {
            s: {} for s in ("callbacks", "intents", "settlements", "deliveries", "ledger_postings")
        }
        self.counts = {
            "intents_valid": 0, "accepted": 0, "review": 0, "rejected": 0, "pending": 0, "failed": 0,
            "settled": 0, "captured_unsettled": 0, "reserve_only": 0, "callback_redeliveries_same_webhook_id": 0,
            "callback_redeliveries_new_webhook_id": 0, "intent_retries": 0, "provider_state_rows": 0,
            "outbound_events": 0,
        }
        self.settlement_rows = 0

    # ------------------------------------------------------------------ setup
    def _init_secrets(self) -> None:
        rng = self.rng
        self.secrets: dict[str, dict[str, list[str]]] = {}
        self.keys: dict[tuple[str, str], list] = {}
        for t, p, k in SECRET_SLOTS:
            raws = [rng.randbytes(24) for _ in range(k)]
            self.secrets.setdefault(t, {})[p] = ["whsec_" + _b64(r).decode() for r in raws]
            self.keys[(t, p)] = [hmac.new(r, digestmod=hashlib.sha256) for r in raws]
        # a key nobody configured: signs the unknown tenant's callbacks
        self.stray_key = hmac.new(rng.randbytes(24), digestmod=hashlib.sha256)

    def _init_policies(self) -> None:
        self.max_amount: dict[tuple[str, str], int] = {}
        self.daily_limit: dict[tuple[str, str], int] = {}
        for t, c, w, lo, hi in POOLS:
            mean = (hi - lo) / math.log(hi / lo)
            volume = self.n * w * mean / self.days
            if c == "BHD":
                # max = limit / 2 so the end-of-day-0 burst needs only two intents to reach the limit
                mx = _nice(2 * volume + 2_000_000)
                lim = 2 * mx
            else:
                mx = FIXED_MAX[c]
                lim = _nice(4 * volume + 10 * mx)
            self.max_amount[(t, c)] = mx
            self.daily_limit[(t, c)] = lim
        self.allowed: dict[str, set[str]] = {}
        self.policies = {"policy_format": 1, "tenants": {}}
        for t in TENANTS:
            curs = [c for tt, c, *_ in POOLS if tt == t]
            corridors = sorted({f"{c}:{rail}:{c}" for c in curs for rail in RAILS[c].values()})
            self.allowed[t] = set(corridors)
            self.policies["tenants"][t] = {
                "max_amount_minor": {c: self.max_amount[(t, c)] for c in curs},
                "daily_limit_minor": {c: self.daily_limit[(t, c)] for c in curs},
                "allowed_corridors": corridors,
                "reviewers": list(REVIEWERS[t]),
            }

    def _init_accounts(self) -> None:
        self.customers: dict[tuple[str, str], list[str]] = {}
        self.customer_currency: dict[str, str] = {}
        self.merchants: dict[str, list[str]] = {}
        self.accounts: list[tuple[str, str, str, int]] = []
        nm = max(2, min(100, self.n // 1000))
        for t in TENANTS:
            self.accounts.append((f"{t}:funding", t, "funding", 1))
            number = 1
            for tt, c, w, *_ in POOLS:
                if tt != t:
                    continue
                k = max(3, min(400, int(self.n * w / 15)))
                ids = [f"{t}:customer:{j:04d}" for j in range(number, number + k)]
                number += k
                self.customers[(t, c)] = ids
                for a in ids:
                    self.customer_currency[a] = c
                    self.accounts.append((a, t, "customer", 0))
            self.merchants[t] = [f"{t}:merchant:{j:03d}" for j in range(1, nm + 1)]
            self.accounts += [(a, t, "merchant", 0) for a in self.merchants[t]]
            self.accounts += [(f"{t}:{typ}", t, typ, 0) for typ in ("reserved", "settlement", "fees")]

    def _assign_roles(self) -> dict[int, tuple]:
        n, rng = self.n, self.rng
        roles: list[tuple] = []
        for name, variants in ROLE_SPECS:
            count = min(self.reps, 5) if name == "max_boundary" else self.reps
            roles += [(name, variants[r % len(variants)], r) for r in range(count)]
        # the burst: the last three intents of UTC day 0 (nothing of day 0 comes after them)
        first_day1 = min(n, -(-DAY_MS * n // self.span))
        burst = {first_day1 - 3: ("burst_a", BURST, 0), first_day1 - 2: ("burst_b", BURST, 0),
                 first_day1 - 1: ("burst_over", BURST, 0)}
        available = [i for i in range(n) if i not in burst]
        if len(roles) > len(available):
            raise ValueError(f"intents={n} is too small for {len(roles)} planted roles")
        positions = rng.sample(available, len(roles))
        at = dict(zip(positions, roles))
        # every missing_at_provider reserve (>= 50 000) is posted before any duplicate capture
        # (2 500) of the same tenant: t_alpha:reserved never closes a day below zero
        pair = sorted(p for p, r in at.items() if r[0] in ("missing_at_provider", "duplicate_journal"))
        ordered = [r for r in roles if r[0] == "missing_at_provider"] + [r for r in roles if r[0] == "duplicate_journal"]
        at.update(zip(pair, ordered))
        at.update(burst)
        self.burst_index = first_day1 - 3
        return at

    def _schedule_plants(self) -> list[str]:
        plants = [p for p in CALLBACK_PLANTS + INTENT_PLANTS + OTHER_PLANTS
                  for _ in range(self.reps * VARIANTS.get(p, 1))]
        plants += list(ONCE_PLANTS)
        self.rng.shuffle(plants)
        return plants

    # ------------------------------------------------------------------ helpers
    def _q(self, source: str, code: str, k: int = 1) -> None:
        d = self.quarantine[source]
        d[code] = d.get(code, 0) + k

    def _plant_record(self, source: str, rel: str, line_no: int, code: str | None, case: str, **extra) -> None:
        self.planted.append({"source": source, "file": rel, "line_no": line_no, "code": code, "case": case,
                             **extra})
        if code is not None:
            self._q(source, code)

    def _msg_id(self) -> str:
        self.msg_counter += 1
        return "msg_" + _scramble(self.msg_counter, 0x5EED, _MASK64, 16)

    def _sign_with(self, key, msg: str, ts, body: str) -> str:
        h = key.copy()
        h.update(f"{msg}.{ts}.{body}".encode())
        return "v1," + _b64(h.digest()).decode()

    def _signature(self, t: str, p: str, msg: str, ts, body: str) -> str:
        keys = self.keys.get((t, p))
        if keys is None:
            return self._sign_with(self.stray_key, msg, ts, body)
        if len(keys) == 1:
            return self._sign_with(keys[0], msg, ts, body)
        # rotation: mostly the current secret, some with the previous one only, some with both
        self.rot_counter += 1
        m = self.rot_counter % 6
        if m == 0:
            return self._sign_with(keys[1], msg, ts, body)
        if m == 1:
            return self._sign_with(keys[0], msg, ts, body) + " " + self._sign_with(keys[1], msg, ts, body)
        return self._sign_with(keys[0], msg, ts, body)

    @staticmethod
    def _body(flat: bool, eid: str, typ: str, iid: str, ref: str, amount, cur: str, seq: int, occ: str) -> str:
        if flat:
            return (f'{{"api_version":"2026-01-01","event_id":"{eid}","type":"{typ}","intent_id":"{iid}",'
                    f'"provider_ref":"{ref}","amount_minor":{amount},"currency":"{cur}","sequence":{seq},'
                    f'"occurred_at":"{occ}"}}')
        return (f'{{"api_version":"2026-06-01","event_id":"{eid}","type":"{typ}","occurred_at":"{occ}",'
                f'"sequence":{seq},"object":{{"intent_id":"{iid}","provider_ref":"{ref}",'
                f'"amount":{{"value":{amount},"currency":"{cur}"}}}}}}')

    @staticmethod
    def _cb_line(recv: int, t: str, p: str, msg: str, ts, sig: str, body: str) -> str:
        esc = body.replace("\\", "\\\\").replace('"', '\\"')
        return (f'{{"received_at": "{_iso(recv)}", "tenant_id": "{t}", "provider": "{p}", '
                f'"headers": {{"webhook-id": "{msg}", "webhook-timestamp": "{ts}", "webhook-signature": "{sig}"}}, '
                f'"body": "{esc}"}}')

    def _cb_file(self, recv: int) -> str:
        return f"callbacks/{_DAYS[_day(recv)]}.jsonl"

    def _emit_event(self, t, p, iid, ref, seq, typ, amount, cur, occ, *, ts=None, recv=None,
                    track=True, redeliver=True, rel=None) -> dict:
        """One valid, signed provider callback (plus, sometimes, an at-least-once redelivery)."""
        rng = self.rng
        if ts is None:
            ts = occ // 1000 + rng.randrange(2)
        if recv is None:
            recv = ts * 1000 + 15 + rng.randrange(2500)
        eid = f"evt_{ref[3:]}_{seq}"
        body = self._body(rng.random() < 0.5, eid, typ, iid, ref, amount, cur, seq, _iso(occ))
        msg = self._msg_id()
        sig = self._signature(t, p, msg, ts, body)
        line = self._cb_line(recv, t, p, msg, ts, sig, body)
        rel = rel or self._cb_file(recv)
        line_no = self.sink.write(rel, line)
        cb = {"t": t, "p": p, "iid": iid, "ref": ref, "seq": seq, "typ": typ, "amount": amount, "cur": cur,
              "occ": occ, "eid": eid, "body": body, "msg": msg, "ts": ts, "sig": sig, "recv": recv,
              "line": line, "rel": rel, "line_no": line_no}
        if redeliver:
            r = rng.random()
            if r < 0.015:
                self.sink.write("callbacks/late-redeliveries.jsonl", line)
                self.counts["callback_redeliveries_same_webhook_id"] += 1
            elif r < 0.03:
                self._redeliver_new_id(cb, 30 + rng.randrange(900))
        if track:
            self.last_cb = cb
            self.last_cb_by_tenant[t] = cb
        return cb

    def _redeliver_new_id(self, cb: dict, delay_s: int, *, exact_boundary: bool = False) -> tuple[str, int]:
        """The same event (byte-identical body) under a new webhook-id, re-signed."""
        ts = cb["ts"] + delay_s
        recv = ts * 1000 + (REPLAY_WINDOW_MS if exact_boundary else 15 + self.rng.randrange(2500))
        msg = self._msg_id()
        sig = self._signature(cb["t"], cb["p"], msg, ts, cb["body"])
        rel = self._cb_file(recv)
        line_no = self.sink.write(rel, self._cb_line(recv, cb["t"], cb["p"], msg, ts, sig, cb["body"]))
        self.counts["callback_redeliveries_new_webhook_id"] += 1
        return rel, line_no

    def _journal(self, iid, t, step, cur, posted_ms, actor, legs, *, jstep=None, counted=True) -> None:
        jstep = jstep or step
        jid = f"j_{iid}_{jstep}"
        key = f"{iid}:{step}"
        ps = _posted(posted_ms)
        buf, bal = self.post_buf, self.bal
        for k, (acct, amt) in enumerate(legs, 1):
            buf.append((f"p_{iid}_{jstep}_{k}", jid, iid, t, acct, cur, amt, ps, actor, key))
            if counted:
                bk = (t, acct, cur)
                bal[bk] = bal.get(bk, 0) + amt
        if len(buf) >= 100_000:
            self._flush_postings()

    def _flush_postings(self) -> None:
        if self.post_buf:
            self.db.executemany("INSERT INTO ledger_postings VALUES (?,?,?,?,?,?,?,?,?,?)", self.post_buf)
            self.postings += len(self.post_buf)
            self.post_buf = []

    def _dl_line(self, t, eid, attempt, at_ms, status, error, latency) -> int:
        self.dl_counter += 1
        did = "dlv_" + _scramble(self.dl_counter, 0xD1, _MASK64, 16)
        st = "null" if status is None else status
        er = "null" if error is None else f'"{error}"'
        la = "null" if latency is None else latency
        line = (f'{{"delivery_id": "{did}", "event_id": "{eid}", "tenant_id": "{t}", "endpoint": "{ENDPOINT[t]}", '
                f'"attempt": {attempt}, "attempted_at": "{_iso(at_ms)}", "status_code": {st}, "error": {er}, '
                f'"latency_ms": {la}}}')
        self.last_delivery = line
        return self.sink.write(f"deliveries/{_DAYS[_day(at_ms)]}.jsonl", line)

    def _deliver(self, t: str, ev_ms: int, *, first_event: bool) -> None:
        """One outbound event to the tenant's endpoint, with its delivery attempts."""
        rng = self.rng
        self.out_counter += 1
        self.counts["outbound_events"] += 1
        eid = "evt_out_" + _scramble(self.out_counter, 0x0E7, _MASK48, 12)
        at = ev_ms + 40 + rng.randrange(400)
        if t == "t_gamma" and first_event and self.outage_seen < self.outage_events:
            # t_gamma's endpoint is down: 503 / connection refused, exponential backoff
            j = self.outage_seen
            self.outage_seen += 1
            pattern = j % 4
            gaps = {0: [30, 60, 120, 240, 480], 1: [30, 60], 2: [30], 3: [30, 60, 70, 140]}[pattern]
            fails = {0: 6, 1: 2, 2: 1, 3: 4}[pattern]
            attempt = 1
            for a in range(len(gaps) + 1):
                attempt = a + 1
                if a:
                    at += gaps[a - 1] * 1000  # exact spacing: only the planted retry is "too fast"
                if a < fails:
                    if a % 2 == 0:
                        self._dl_line(t, eid, attempt, at, 503, None, 1000 + rng.randrange(2000))
                    else:
                        self._dl_line(t, eid, attempt, at, None, "connection refused", None)
                else:
                    self._dl_line(t, eid, attempt, at, 200, None, 30 + rng.randrange(300))
            if pattern == 0:
                self.delivery_findings["failed_last_attempt"].append(
                    {"tenant_id": t, "event_id": eid, "endpoint": ENDPOINT[t], "attempts": attempt})
            if pattern == 3:
                self.delivery_findings["retry_too_fast"].append({"tenant_id": t, "event_id": eid, "attempt": 4})
            return
        if rng.random() < 0.004:
            self._dl_line(t, eid, 1, at, 500, None, 200 + rng.randrange(800))
            at += 30_000 + rng.randrange(900)
            self._dl_line(t, eid, 2, at, 200, None, 20 + rng.randrange(400))
            return
        self._dl_line(t, eid, 1, at, 200, None, 20 + rng.randrange(400))

    def _record_break(self, t, iid, ref, btype, ledger, provider) -> None:
        self.expected_breaks.append({"tenant_id": t, "intent_id": iid, "provider_ref": ref, "break_type": btype,
                                     "ledger_amount_minor": ledger, "provider_amount_minor": provider})

    # ------------------------------------------------------------------ one intent
    def _intent(self, i: int, created: int, role: tuple | None) -> None:
        rng = self.rng
        rname = None
        if role is None:
            r = rng.random()
            acc = 0.0
            for t, c, w, lo, hi in POOLS:
                acc += w
                if r < acc:
                    break
            p = "acme_pay" if t == "t_alpha" else "zeta_pay" if t == "t_gamma" else (
                "acme_pay" if rng.random() < 0.5 else "zeta_pay")
            r = rng.random()
            kind = next(k for k, cum in KINDS if r < cum)
            amount = int(lo * (hi / lo) ** rng.random())
        else:
            rname, (t, c, p), rep = role
            kind = ROLE_KIND.get(rname, "payment")
            lo, hi = next((lo, hi) for tt, cc, _, lo, hi in POOLS if (tt, cc) == (t, c))
            amount = int(lo * (hi / lo) ** rng.random())
            if rname == "missing_at_provider":
                amount = 50_000 + rng.randrange(150_000)
            elif rname == "duplicate_journal":
                amount = 2_500
            elif rname == "over_max":
                amount = self.max_amount[(t, c)] + 1
            elif rname == "max_boundary":
                amount = self.max_amount[(t, c)]
            elif rname in ("burst_a", "burst_b", "burst_over"):
                used = self.daily_used.get((t, c, 0), 0)
                room = self.daily_limit[(t, c)] - used
                if rname == "burst_a":
                    assert room >= 2, "BHD traffic reached the day-0 limit before the burst"
                    amount = (room + 1) // 2
                elif rname == "burst_b":
                    amount = room  # brings day 0 to exactly the limit: still accepted (rule is '>')
                else:
                    amount = 150_000  # any positive amount is now over the daily limit
        iid = f"in_{i:0{self.width}d}"
        corridor = f"{c}:SWIFT:{c}" if rname == "rejected" else f"{c}:{RAILS[c][kind]}:{c}"
        actor = f"usr_{SHORT[t]}_{rng.randrange(60):03d}"
        day = _day(created)
        created_iso = _iso(created)
        line = (f'{{"intent_id": "{iid}", "tenant_id": "{t}", "scope": "workspace_scope", "kind": "{kind}", '
                f'"amount_minor": {amount}, "currency": "{c}", "ledger_currency": "{c}", "corridor": "{corridor}", '
                f'"actor_id": "{actor}", "created_at": "{created_iso}", "primitives": {PRIMITIVES}}}')
        self.sink.write(f"intents/{_DAYS[day]}.jsonl", line)
        self.last_intent_line = (line, created)
        self.counts["intents_valid"] += 1
        if rng.random() < 0.01:
            self.sink.write("intents/late-retries.jsonl", line)
            self.counts["intent_retries"] += 1

        # ---- policy, exactly as the pipeline applies it
        key = (t, c, day)
        if corridor not in self.allowed[t]:
            self.rejected.append({"tenant_id": t, "intent_id": iid, "reason": "corridor_not_allowed"})
            self.counts["rejected"] += 1
            return
        if amount > self.max_amount[(t, c)]:
            self.reviews.append({"tenant_id": t, "intent_id": iid, "reason": "over_max_amount",
                                 "amount_minor": amount, "currency": c})
            self.counts["review"] += 1
            return
        used = self.daily_used.get(key, 0)
        if used + amount > self.daily_limit[(t, c)]:
            self.reviews.append({"tenant_id": t, "intent_id": iid, "reason": "over_daily_limit",
                                 "amount_minor": amount, "currency": c})
            self.counts["review"] += 1
            return
        self.daily_used[key] = used + amount
        self.counts["accepted"] += 1
        assert rname not in ("over_max", "rejected", "burst_over"), (rname, iid)
        self._accepted(i, iid, t, c, p, kind, amount, created, actor, rname)

    def _accepted(self, i, iid, t, c, p, kind, amount, created, actor, rname) -> None:
        rng = self.rng
        if rname is None:
            r = rng.random()
            if kind == "payout":
                outcome = "settled" if r < 0.9 else "failed"
            else:
                outcome = "settled" if r < 0.72 else "captured" if r < 0.80 else "pending" if r < 0.90 else "failed"
        else:
            outcome = ROLE_OUTCOME[rname]
        cust_pool = self.customers[(t, c)]
        cust = cust_pool[rng.randrange(len(cust_pool))]
        if rname == "missing_at_provider" and not hasattr(self, "overdraft"):
            self.overdraft = (t, cust, c)
        merchants = self.merchants[t]
        merchant = merchants[rng.randrange(len(merchants))]
        ref = f"{PROVIDER_PREFIX[p]}_{_scramble(i, 0xACE)}"
        pa = amount + max(1, amount // 20) if rname == "amount_mismatch" else amount
        pc = OTHER_CURRENCY[c] if rname == "currency_mismatch" else c
        self.counts[OUTCOME_COUNTER[outcome]] += 1

        # ---- provider events: (seq, type, occurred_ms)
        events: list[tuple[int, str, int]] = []
        capture_evt = fail_evt = None
        settled_at = None
        if outcome != "reserve_only":
            if kind == "payout":
                occ = created + 60_000 + rng.randrange(7_200_000)
                if outcome == "failed":
                    fail_evt = (1, "payout.failed", occ)
                    events.append(fail_evt)
                else:
                    capture_evt = (1, "payout.paid", occ)
                    events.append(capture_evt)
            else:
                events.append((1, "payment.authorized", created + 1000 + rng.randrange(3000)))
                if outcome in ("captured", "settled"):
                    if rname == "out_of_order":
                        occ = created + 40_000 + rng.randrange(60_000)
                    else:
                        occ = created + 30_000 + rng.randrange(1_800_000)
                    capture_evt = (2, "payment.captured", occ)
                    events.append(capture_evt)
                elif outcome == "failed":
                    fail_evt = (2, "payment.failed", created + 20_000 + rng.randrange(600_000))
                    events.append(fail_evt)
            if outcome == "settled":
                settled_at = (_day(capture_evt[2]) + 1) * DAY_MS + BASE_MS + 7_200_000 + rng.randrange(3_600_000)
                if kind != "payout":
                    events.append((3, "payment.settled", settled_at + 1000 + rng.randrange(5000)))

        # ---- callbacks
        recv_of: dict[int, int] = {}
        has_callbacks = bool(events)
        if rname == "out_of_order":
            # the capture (seq 2) arrives first; the authorization (seq 1) is retried later
            (s1, ty1, o1), (s2, ty2, o2) = events[0], events[1]
            cap = self._emit_event(t, p, iid, ref, s2, ty2, pa, pc, o2, redeliver=False)
            ts1 = o1 // 1000 + 1
            auth = self._emit_event(t, p, iid, ref, s1, ty1, pa, pc, o1, ts=ts1, recv=cap["recv"] + 1500,
                                    redeliver=False, rel=cap["rel"])
            assert auth["line_no"] == cap["line_no"] + 1 and abs(auth["recv"] - ts1 * 1000) <= REPLAY_WINDOW_MS
            self._plant_record("callbacks", cap["rel"], cap["line_no"], None, "out_of_order_higher_sequence_first",
                               intent_id=iid, provider_ref=ref)
            self._plant_record("callbacks", auth["rel"], auth["line_no"], None, "out_of_order_lower_sequence_later",
                               intent_id=iid, provider_ref=ref)
            recv_of[2] = cap["recv"]
        else:
            for seq, typ, occ in events:
                if rname == "callback_conflict" and seq == 2:
                    cb1 = self._emit_event(t, p, iid, ref, seq, typ, pa, pc, occ, track=False, redeliver=False)
                    body2 = self._body(True, cb1["eid"], typ, iid, ref, pa + 100, pc, seq, _iso(occ))
                    msg2 = self._msg_id()
                    ts2 = cb1["ts"] + 240
                    recv2 = ts2 * 1000 + 35
                    line2 = self._cb_line(recv2, t, p, msg2, ts2, self._signature(t, p, msg2, ts2, body2), body2)
                    rel2 = "callbacks/late-redeliveries.jsonl"
                    n2 = self.sink.write(rel2, line2)
                    self._plant_record("callbacks", cb1["rel"], cb1["line_no"], E.EVENT_CONFLICT,
                                       "event_conflict_first_copy", intent_id=iid, event_id=cb1["eid"])
                    self._plant_record("callbacks", rel2, n2, E.EVENT_CONFLICT,
                                       "event_conflict_second_copy_amount_differs", intent_id=iid, event_id=cb1["eid"])
                    recv_of[seq] = cb1["recv"]
                    continue
                cb = self._emit_event(t, p, iid, ref, seq, typ, pa, pc, occ)
                recv_of[seq] = cb["recv"]
        if has_callbacks:
            self.counts["provider_state_rows"] += 1
            last = events[-1] if rname != "out_of_order" else events[1]
            if rname is not None:
                self.state_checks.append({"tenant_id": t, "provider": p, "provider_ref": ref, "intent_id": iid,
                                          "type": last[1], "amount_minor": pa, "currency": pc, "sequence": last[0],
                                          "role": rname})

        # ---- settlement report row
        fee = None
        if settled_at is not None:
            bps = 100 + rng.randrange(201)
            gross = pa - max(1, pa // 25) if rname == "settlement_mismatch" else pa
            fee = max(1, gross * bps // 10_000)
            d = _DAYS[_day(settled_at)]
            row = f"{p},{ref},{t},{pc},{gross},{fee},{gross - fee},{_iso(settled_at)},batch_{p}_{d.replace('-', '')}"
            self.sink.write(f"settlements/{p}-{d}.csv", row, header=SETTLEMENT_HEADER)
            self.settlement_rows += 1
            self.last_settlement = (f"{p}-{d}", row)
        if rname == "captured_unsettled":
            self._bad_settlement_rows(t, p, iid, ref, pa, pc, capture_evt[2])

        # ---- ledger (the money core)
        if rname != "missing_in_ledger":
            reserved, settlement = f"{t}:reserved", f"{t}:settlement"
            t_res = created + 1000
            self._journal(iid, t, "reserve", c, t_res, actor, ((cust, -amount), (reserved, amount)))
            if capture_evt is not None:
                t_cap = recv_of[capture_evt[0]] + 800
                self._journal(iid, t, "capture", c, t_cap, "svc_core", ((reserved, -amount), (settlement, amount)))
                if rname == "duplicate_journal":
                    self._journal(iid, t, "capture", c, t_cap + 5000, "svc_core",
                                  ((reserved, -amount), (settlement, amount)), jstep="capture_dup")
            if fail_evt is not None:
                t_rel = recv_of[fail_evt[0]] + 800
                self._journal(iid, t, "release", c, t_rel, "svc_core", ((reserved, -amount), (cust, amount)))
            if settled_at is not None:
                self._journal(iid, t, "settle", c, settled_at, "svc_core",
                              ((settlement, -amount), (merchant, amount - fee), (f"{t}:fees", fee)))

        # ---- expected breaks
        if rname == "missing_in_ledger":
            self._record_break(t, iid, ref, "missing_in_ledger", None, pa)
        elif rname == "missing_at_provider":
            self._record_break(t, iid, None, "missing_at_provider", amount, None)
        elif rname in ("amount_mismatch", "currency_mismatch", "duplicate_journal", "settlement_mismatch",
                       "callback_conflict"):
            self._record_break(t, iid, ref, rname, amount, pa)

        # ---- outbound deliveries to the tenant
        self._deliver(t, created + 1500, first_event=True)
        if capture_evt is not None and rname != "missing_in_ledger":
            self._deliver(t, recv_of[capture_evt[0]] + 1500, first_event=False)
        if fail_evt is not None:
            self._deliver(t, recv_of[fail_evt[0]] + 1500, first_event=False)
        if settled_at is not None:
            self._deliver(t, settled_at + 1500, first_event=False)

    def _bad_settlement_rows(self, t, p, iid, ref, amount, cur, capture_ms) -> None:
        """A captured, not yet settled intent whose settlement report rows are all bad."""
        at = (_day(capture_ms) + 1) * DAY_MS + BASE_MS + 7_500_000
        d = _DAYS[_day(at)]
        rel = f"settlements/{p}-{d}.csv"
        batch = f"batch_{p}_{d.replace('-', '')}"
        fee = max(1, amount * 2 // 100)
        rows = [
            (E.NET_MISMATCH, "net_mismatch", f"{p},{ref},{t},{cur},{amount},{fee},{amount - fee + 1},{_iso(at)},{batch}"),
            (E.AMOUNT_FLOAT, "amount_float", f"{p},{ref},{t},{cur},1250.0,25,1225,{_iso(at + 1)},{batch}"),
            (E.CSV_MALFORMED, "csv_malformed_short_row", f"{p},{ref},{t},{cur},{amount}"),
            (E.SETTLEMENT_CONFLICT, "settlement_conflict_first", f"{p},{ref},{t},{cur},{amount},{fee},{amount - fee},{_iso(at + 2)},{batch}"),
            (E.SETTLEMENT_CONFLICT, "settlement_conflict_second", f"{p},{ref},{t},{cur},{amount + 100},{fee},{amount + 100 - fee},{_iso(at + 3)},{batch}"),
        ]
        for code, case, row in rows:
            n = self.sink.write(rel, row, header=SETTLEMENT_HEADER)
            self._plant_record("settlements", rel, n, code, case, intent_id=iid, provider_ref=ref)
            self.settlement_rows += 1
        # the pipeline reports a conflicting settlement ref as a settlement_mismatch break
        self._record_break(t, iid, ref, "settlement_mismatch", amount, amount)

    # ------------------------------------------------------------------ plants
    def _fab(self, t: str, p: str, recv: int, typ: str = "payment.captured") -> dict:
        """A fabricated, otherwise valid flat callback body (own ids: in_q*, ap_q*/zp_q*, evt_q*)."""
        self.q_counter += 1
        q = self.q_counter
        cur = MAIN_CURRENCY.get(t, "EUR")
        return {"api_version": "2026-01-01", "event_id": f"evt_q{q:05d}", "type": typ, "intent_id": f"in_q{q:05d}",
                "provider_ref": f"{PROVIDER_PREFIX[p]}_q{q:05d}", "amount_minor": 125_000, "currency": cur,
                "sequence": 2, "occurred_at": _iso(recv - 2500)}

    def _plant_cb(self, case: str, code: str | None, *, t: str, p: str, recv: int, body: str | None = None,
                  headers: dict | None = None, ts=None, envelope: dict | None = None, raw: str | None = None,
                  rel: str | None = None, **extra) -> None:
        if raw is None:
            if envelope is None:
                if ts is None:
                    ts = recv // 1000 - 1
                if headers is None:
                    msg = self._msg_id()
                    headers = {"webhook-id": msg, "webhook-timestamp": str(ts),
                               "webhook-signature": self._signature(t, p, msg, ts, body)}
                envelope = {"received_at": _iso(recv), "tenant_id": t, "provider": p, "headers": headers, "body": body}
            raw = json.dumps(envelope)
        rel = rel or self._cb_file(recv)
        n = self.sink.write(rel, raw)
        self._plant_record("callbacks", rel, n, code, case, tenant_id=t, **extra)

    def _valid_headers(self, t, p, body, ts) -> dict:
        msg = self._msg_id()
        return {"webhook-id": msg, "webhook-timestamp": str(ts), "webhook-signature": self._signature(t, p, msg, ts, body)}

    def _plant(self, kind: str, k: int, now: int) -> bool:
        """Run one plant at time ``now``; False when it needs context that does not exist yet."""
        rng = self.rng
        if kind in NEEDS_CALLBACK and self.last_cb is None:
            return False
        if kind in NEEDS_ALPHA_CALLBACK and "t_alpha" not in self.last_cb_by_tenant:
            return False
        if kind in NEEDS_INTENT and self.last_intent_line is None:
            return False
        if kind in NEEDS_SETTLEMENT and self.last_settlement is None:
            return False
        if kind in NEEDS_DELIVERY and self.last_delivery is None:
            return False
        self.plant_no += 1
        t, p = SIGNED_PAIRS[self.plant_no % len(SIGNED_PAIRS)]
        recv = now + 2000 + rng.randrange(3000)
        ts = recv // 1000 - 1
        fab = self._fab(t, p, recv)
        dumps = lambda o: json.dumps(o, separators=(",", ":"))  # noqa: E731
        cb = self.last_cb

        # ---- callbacks: accepted and collapsing
        if kind == "cb_redeliver_identical":
            rel = "callbacks/late-redeliveries.jsonl"
            n = self.sink.write(rel, cb["line"])
            self.counts["callback_redeliveries_same_webhook_id"] += 1
            self._plant_record("callbacks", rel, n, None, "identical_redelivery_same_webhook_id",
                               tenant_id=cb["t"], event_id=cb["eid"], original=f"{cb['rel']}:{cb['line_no']}")
        elif kind == "cb_redeliver_new_id":
            rel, n = self._redeliver_new_id(cb, 45 + rng.randrange(300))
            self._plant_record("callbacks", rel, n, None, "same_event_id_new_webhook_id",
                               tenant_id=cb["t"], event_id=cb["eid"])
        elif kind == "cb_replay_boundary_ok":
            rel, n = self._redeliver_new_id(cb, 20, exact_boundary=True)
            self._plant_record("callbacks", rel, n, None, "replay_window_boundary_exactly_300s_is_valid",
                               tenant_id=cb["t"], event_id=cb["eid"])
        # ---- trust
        elif kind in ("cb_replay_past", "cb_replay_future"):
            recv = cb["recv"] + 60_000 + rng.randrange(600_000)
            if kind == "cb_replay_past":
                ts = (recv - REPLAY_WINDOW_MS) // 1000 - 1 - rng.randrange(3000)  # 301 s .. ~1 h before
            else:
                ts = (recv + REPLAY_WINDOW_MS) // 1000 + 2 + rng.randrange(3000)  # > 300 s in the future
            self._plant_cb(kind[3:], E.REPLAY_WINDOW, t=cb["t"], p=cb["p"], recv=recv, body=cb["body"], ts=ts,
                           event_id=cb["eid"])
        elif kind == "cb_forgery":
            a = self.last_cb_by_tenant["t_alpha"]
            body = self._body(True, f"evt_{a['ref'][3:]}_9", "payment.refunded", a["iid"], a["ref"], a["amount"],
                              a["cur"], 9, _iso(recv - 1500))
            msg = self._msg_id()
            sig = self._sign_with(self.keys[("t_beta", "acme_pay")][0], msg, ts, body)
            self._plant_cb("forgery_signed_with_another_tenants_secret", E.SIGNATURE_MISMATCH, t="t_alpha",
                           p="acme_pay", recv=recv, body=body,
                           headers={"webhook-id": msg, "webhook-timestamp": str(ts), "webhook-signature": sig},
                           intent_id=a["iid"])
        elif kind == "cb_tampered":
            body = self._body(True, cb["eid"], cb["typ"], cb["iid"], cb["ref"], cb["amount"] * 10, cb["cur"],
                              cb["seq"], _iso(cb["occ"]))
            self._plant_cb("tampered_body_original_signature", E.SIGNATURE_MISMATCH, t=cb["t"], p=cb["p"],
                           recv=cb["recv"] + 700, body=body,
                           headers={"webhook-id": cb["msg"], "webhook-timestamp": str(cb["ts"]),
                                    "webhook-signature": cb["sig"]}, intent_id=cb["iid"])
        elif kind == "cb_sig_malformed":
            body = dumps(fab)
            sig = ["v1", "garbage-not-a-signature"][k % 2]
            self._plant_cb(f"signature_malformed_{['v1_no_comma', 'garbage'][k % 2]}", E.SIGNATURE_MALFORMED,
                           t=t, p=p, recv=recv, body=body,
                           headers={"webhook-id": self._msg_id(), "webhook-timestamp": str(ts), "webhook-signature": sig})
        elif kind == "cb_header_missing":
            body = dumps(fab)
            h = self._valid_headers(t, p, body, ts)
            drop = ["webhook-signature", "webhook-id"][k % 2]
            del h[drop]
            self._plant_cb(f"header_missing_{drop}", E.HEADER_MISSING, t=t, p=p, recv=recv, body=body, headers=h)
        elif kind == "cb_timestamp_invalid":
            body = dumps(fab)
            bad = [f"{ts}.5", f"{ts}x"][k % 2]
            msg = self._msg_id()
            h = {"webhook-id": msg, "webhook-timestamp": bad, "webhook-signature": self._signature(t, p, msg, bad, body)}
            self._plant_cb("timestamp_not_whole_seconds", E.TIMESTAMP_INVALID, t=t, p=p, recv=recv, body=body, headers=h)
        elif kind == "cb_unknown_tenant":
            ut, up = [("t_delta", "acme_pay"), ("t_alpha", "zeta_pay")][k % 2]
            fab = self._fab(ut, up, recv)
            body = dumps(fab)
            self._plant_cb(f"unknown_tenant_{ut}_{up}", E.UNKNOWN_TENANT, t=ut, p=up, recv=recv, body=body,
                           headers=self._valid_headers(ut, up, body, ts))
        elif kind == "cb_envelope_bad_webhook_id":
            body = dumps(fab)
            msg = "msg 01/../x"
            h = {"webhook-id": msg, "webhook-timestamp": str(ts), "webhook-signature": self._signature(t, p, msg, ts, body)}
            self._plant_cb("webhook_id_not_an_identifier", E.INVALID_IDENTIFIER, t=t, p=p, recv=recv, body=body, headers=h)
        # ---- framing and envelope
        elif kind == "cb_malformed_json":
            body = dumps(fab)
            line = self._cb_line(recv, t, p, self._msg_id(), ts, "v1,AAAA", body)
            self._plant_cb("truncated_line", E.MALFORMED_JSON, t=t, p=p, recv=recv, raw=line[: len(line) // 2])
        elif kind == "cb_not_an_object":
            self._plant_cb("json_array_line", E.NOT_AN_OBJECT, t=t, p=p, recv=recv,
                           raw=['["callback", 1, 2]', '"just a string"'][k % 2])
        elif kind == "cb_invalid_utf8":
            body = dumps(fab)
            line = self._cb_line(recv, t, p, self._msg_id(), ts, "v1,AAAA", body)
            self._plant_cb("raw_invalid_byte", E.INVALID_UTF8, t=t, p=p, recv=recv,
                           raw=line.replace('"provider": "', '"provider": "\udcff', 1))
        elif kind == "cb_nul_byte":
            body = dumps(fab)
            line = self._cb_line(recv, t, p, self._msg_id(), ts, "v1,AAAA", body)
            self._plant_cb("raw_nul_byte", E.NUL_BYTE, t=t, p=p, recv=recv,
                           raw=line.replace('"provider": "', '"provider": "\x00', 1))
        elif kind == "cb_line_too_large":
            fab["padding"] = "x" * ((1 << 20) + 1024)
            body = dumps(fab)
            self._plant_cb("line_over_1_mib", E.LINE_TOO_LARGE, t=t, p=p, recv=recv, body=body,
                           headers=self._valid_headers(t, p, body, ts))
        elif kind == "cb_dup_key_envelope":
            body = dumps(fab)
            line = self._cb_line(recv, t, p, self._msg_id(), ts, self._signature(t, p, "x", ts, body), body)
            line = line.replace(f'"tenant_id": "{t}", ', f'"tenant_id": "{t}", "tenant_id": "t_gamma", ', 1)
            self._plant_cb("envelope_repeats_tenant_id", E.DUPLICATE_JSON_KEY, t=t, p=p, recv=recv, raw=line)
        elif kind == "cb_missing_field":
            body = dumps(fab)
            env = {"tenant_id": t, "provider": p, "headers": self._valid_headers(t, p, body, ts), "body": body}
            self._plant_cb("envelope_without_received_at", E.MISSING_FIELD, t=t, p=p, recv=recv, envelope=env)
        elif kind == "cb_invalid_field_type":
            body = dumps(fab)
            h = self._valid_headers(t, p, body, ts)
            if k % 2 == 0:
                env = {"received_at": _iso(recv), "tenant_id": t, "provider": p, "headers": json.dumps(h), "body": body}
                case = "headers_is_a_string"
            else:
                env = {"received_at": _iso(recv), "tenant_id": t, "provider": p, "headers": h, "body": fab}
                case = "body_is_an_object_not_a_string"
            self._plant_cb(case, E.INVALID_FIELD_TYPE, t=t, p=p, recv=recv, envelope=env)
        elif kind == "cb_invalid_timestamp":
            body = dumps(fab)
            env = {"received_at": "2026-11-20 noonish", "tenant_id": t, "provider": p,
                   "headers": self._valid_headers(t, p, body, ts), "body": body}
            self._plant_cb("received_at_not_iso8601", E.INVALID_TIMESTAMP, t=t, p=p, recv=recv, envelope=env)
        # ---- body defects (validly signed)
        elif kind == "cb_body_malformed":
            body = [dumps(fab)[:40], "[1, 2, 3]"][k % 2]
            self._plant_cb(["body_truncated_json", "body_is_an_array"][k % 2], E.BODY_MALFORMED_JSON,
                           t=t, p=p, recv=recv, body=body)
        elif kind == "cb_dup_key_body":
            body = dumps(fab).replace('"amount_minor":125000', '"amount_minor":100,"amount_minor":125000', 1)
            self._plant_cb("body_repeats_amount_minor", E.DUPLICATE_JSON_KEY, t=t, p=p, recv=recv, body=body)
        elif kind == "cb_unsupported_version":
            fab["api_version"] = "2025-01-01"
            self._plant_cb("api_version_2025_01_01", E.UNSUPPORTED_API_VERSION, t=t, p=p, recv=recv, body=dumps(fab))
        elif kind == "cb_missing_field_body":
            del fab["provider_ref"]
            self._plant_cb("body_without_provider_ref", E.MISSING_FIELD, t=t, p=p, recv=recv, body=dumps(fab))
        elif kind == "cb_invalid_identifier_body":
            field, value = [("intent_id", "../etc"), ("provider_ref", 'ref"quoted'), ("event_id", "evt 1")][k % 3]
            fab[field] = value
            self._plant_cb(f"body_{field}_not_an_identifier", E.INVALID_IDENTIFIER, t=t, p=p, recv=recv, body=dumps(fab))
        elif kind == "cb_unknown_event_type":
            fab["type"] = "payment.exploded"
            self._plant_cb("type_payment_exploded", E.UNKNOWN_EVENT_TYPE, t=t, p=p, recv=recv, body=dumps(fab))
        elif kind in ("cb_amount_float", "cb_amount_string", "cb_amount_boolean", "cb_amount_out_of_range",
                      "cb_amount_invalid"):
            value, code = {
                "cb_amount_float": (1250.0, E.AMOUNT_FLOAT), "cb_amount_string": ("125000", E.AMOUNT_STRING),
                "cb_amount_boolean": (True, E.AMOUNT_BOOLEAN),
                "cb_amount_out_of_range": (99999999999999999999, E.AMOUNT_OUT_OF_RANGE),
                "cb_amount_invalid": ([1250], E.AMOUNT_INVALID),
            }[kind]
            if k % 2 == 1:  # the same defect in the nested 2026-06-01 shape
                body = dumps({"api_version": "2026-06-01", "event_id": fab["event_id"], "type": fab["type"],
                              "occurred_at": fab["occurred_at"], "sequence": 2,
                              "object": {"intent_id": fab["intent_id"], "provider_ref": fab["provider_ref"],
                                         "amount": {"value": value, "currency": fab["currency"]}}})
                case = f"{code}_nested_2026_06_01"
            else:
                fab["amount_minor"] = value
                body = dumps(fab)
                case = f"{code}_flat_2026_01_01"
            self._plant_cb(case, code, t=t, p=p, recv=recv, body=body)
        elif kind == "cb_amount_missing":
            del fab["amount_minor"]
            self._plant_cb("body_without_amount", E.AMOUNT_MISSING, t=t, p=p, recv=recv, body=dumps(fab))
        elif kind == "cb_currency_unknown":
            fab["currency"] = "XXY"
            self._plant_cb("currency_XXY", E.CURRENCY_UNKNOWN, t=t, p=p, recv=recv, body=dumps(fab))
        elif kind == "cb_sequence_invalid":
            fab["sequence"] = -1
            self._plant_cb("sequence_negative", E.SEQUENCE_INVALID, t=t, p=p, recv=recv, body=dumps(fab))
        elif kind == "cb_unknown_intent":
            self._ghost(k, now)
        # ---- intents
        elif kind.startswith("in_"):
            self._plant_intent(kind, k, now)
        # ---- settlements
        elif kind == "stl_orphan":
            sp = ["acme_pay", "zeta_pay"][k % 2]
            st = ["t_alpha", "t_gamma"][k % 2]
            ref = f"{PROVIDER_PREFIX[sp]}_orphan{k:04d}"
            at = now + 3_600_000
            d = _DAYS[_day(at)]
            rel = f"settlements/{sp}-{d}.csv"
            row = f"{sp},{ref},{st},{MAIN_CURRENCY[st]},98000,1960,96040,{_iso(at)},batch_{sp}_{d.replace('-', '')}"
            n = self.sink.write(rel, row, header=SETTLEMENT_HEADER)
            self.settlement_rows += 1
            self._plant_record("settlements", rel, n, None, "settlement_row_without_provider_state", provider_ref=ref)
            self._record_break(st, None, ref, "settlement_mismatch", None, None)
        elif kind == "stl_identical_copy":
            # the provider re-sent a report: identical rows collapse (nothing quarantined)
            name, row = self.last_settlement
            rel = f"settlements/{name}-resent.csv"
            n = self.sink.write(rel, row, header=SETTLEMENT_HEADER)
            self.settlement_rows += 1
            self._plant_record("settlements", rel, n, None, "identical_settlement_row_resent",
                               provider_ref=row.split(",")[1])
        elif kind == "stl_header_mismatch":
            rel = "settlements/legacy-export.csv"
            d = _DAYS[_day(now)]
            header = "provider,ref,tenant,currency,gross,fee,net,settled_at,batch"
            for j in range(2):
                row = f"acme_pay,ap_legacy{j:03d},t_alpha,EUR,5000,100,4900,{_iso(now + j)},batch_legacy_{d.replace('-', '')}"
                n = self.sink.write(rel, row, header=header)
                self.settlement_rows += 1
                self._plant_record("settlements", rel, n, E.HEADER_MISMATCH, "file_header_is_not_the_contract_header")
        # ---- ledger
        elif kind == "ledger_unbalanced":
            lt = TENANTS[self.plant_no % 3]
            cur = MAIN_CURRENCY[lt]
            aid = f"adj_{k + 1:04d}"
            self._journal(aid, lt, "adjust", cur, now, f"usr_{SHORT[lt]}_ops",
                          ((f"{lt}:fees", 10_000), (f"{lt}:funding", -9_900)), counted=False)
            # counted=False: the whole journal is quarantined, so it is not part of the balances
            self._q("ledger_postings", E.JOURNAL_UNBALANCED, 2)
            self.planted.append({"source": "ledger_postings", "file": "source.sqlite", "line_no": None,
                                 "code": E.JOURNAL_UNBALANCED, "case": "journal_off_by_100", "journal_id": f"j_{aid}_adjust",
                                 "rows": 2, "tenant_id": lt, "intent_id": aid})
        # ---- deliveries
        elif kind.startswith("dl_"):
            self._plant_delivery(kind, k, now)
        else:  # pragma: no cover - a typo in a plant table
            raise AssertionError(kind)
        return True

    def _ghost(self, k: int, now: int) -> None:
        """unknown_intent: verified callbacks for an intent the intent log never had."""
        t, p = [("t_beta", "acme_pay"), ("t_alpha", "acme_pay"), ("t_gamma", "zeta_pay")][k % 3]
        iid = f"in_ghost{k + 1:04d}"
        ref = f"{PROVIDER_PREFIX[p]}_ghost{k + 1:04d}"
        amount = 42_000 + 1000 * k
        cur = MAIN_CURRENCY[t]
        a = self._emit_event(t, p, iid, ref, 1, "payment.authorized", amount, cur, now + 1000, track=False,
                             redeliver=False)
        b = self._emit_event(t, p, iid, ref, 2, "payment.captured", amount, cur, now + 45_000, track=False,
                             redeliver=False)
        for cb in (a, b):
            self._plant_record("callbacks", cb["rel"], cb["line_no"], None, "unknown_intent_valid_callback",
                               tenant_id=t, intent_id=iid, provider_ref=ref)
        self.counts["provider_state_rows"] += 1
        self._record_break(t, iid, ref, "unknown_intent", None, amount)
        self.state_checks.append({"tenant_id": t, "provider": p, "provider_ref": ref, "intent_id": iid,
                                  "type": "payment.captured", "amount_minor": amount, "currency": cur, "sequence": 2,
                                  "role": "unknown_intent"})

    def _plant_intent(self, kind: str, k: int, now: int) -> None:
        t = TENANTS[self.plant_no % 3]
        c = MAIN_CURRENCY[t]
        rel_day = f"intents/{_DAYS[_day(now)]}.jsonl"
        if kind == "in_retry":
            line, _ = self.last_intent_line
            rel = "intents/late-retries.jsonl"
            n = self.sink.write(rel, line)
            self.counts["intent_retries"] += 1
            self._plant_record("intents", rel, n, None, "identical_retry_line")
            return
        self.q_counter += 1
        q = self.q_counter
        rec = {"intent_id": f"in_q{q:05d}", "tenant_id": t, "scope": "workspace_scope", "kind": "payment",
               "amount_minor": 125_000, "currency": c, "ledger_currency": c,
               "corridor": f"{c}:{RAILS[c]['payment']}:{c}", "actor_id": f"usr_{SHORT[t]}_{q % 60:03d}",
               "created_at": _iso(now + 7), "primitives": ["policy", "ledger", "events"]}
        code = None
        raw = None
        case = kind[3:]
        if kind == "in_conflict":
            rec["intent_id"] = f"in_conflict{k + 1:04d}"
            n1 = self.sink.write(rel_day, json.dumps(rec))
            self._plant_record("intents", rel_day, n1, E.INTENT_CONFLICT, "intent_conflict_first_copy",
                               intent_id=rec["intent_id"])
            rec["amount_minor"] += 1000
            n2 = self.sink.write("intents/late-retries.jsonl", json.dumps(rec))
            self._plant_record("intents", "intents/late-retries.jsonl", n2, E.INTENT_CONFLICT,
                               "intent_conflict_second_copy_amount_differs", intent_id=rec["intent_id"])
            return
        if kind == "in_amount_not_positive":
            rec["intent_id"] = f"in_zero{k + 1:04d}"
            rec["amount_minor"] = 0
            n = self.sink.write(rel_day, json.dumps(rec))
            self.counts["intents_valid"] += 1
            self.counts["rejected"] += 1
            self.rejected.append({"tenant_id": t, "intent_id": rec["intent_id"], "reason": "amount_not_positive"})
            self._plant_record("intents", rel_day, n, None, "amount_zero_rejected_by_policy", intent_id=rec["intent_id"])
            return
        if kind == "in_malformed_json":
            raw, code = json.dumps(rec)[:70], E.MALFORMED_JSON
        elif kind == "in_not_an_object":
            raw, code = '["in_q", 125000]', E.NOT_AN_OBJECT
        elif kind == "in_invalid_utf8":
            raw, code = json.dumps(rec).replace('"scope": "', '"scope": "\udcfe', 1), E.INVALID_UTF8
        elif kind == "in_nul_byte":
            raw, code = json.dumps(rec).replace('"scope": "', '"scope": "\x00', 1), E.NUL_BYTE
        elif kind == "in_dup_key":
            raw = json.dumps(rec).replace('"amount_minor": 125000', '"amount_minor": 1, "amount_minor": 125000', 1)
            code = E.DUPLICATE_JSON_KEY
        elif kind == "in_missing_field":
            del rec["actor_id"]
            code = E.MISSING_FIELD
        elif kind == "in_invalid_field_type":
            rec["primitives"] = "policy"
            code = E.INVALID_FIELD_TYPE
        elif kind == "in_invalid_identifier":
            field, value = [("intent_id", "../etc"), ("actor_id", 'usr"quoted')][k % 2]
            rec[field] = value
            code, case = E.INVALID_IDENTIFIER, f"{field}_not_an_identifier"
        elif kind == "in_invalid_timestamp":
            rec["created_at"] = "2026-11-20 25:61:00"
            code = E.INVALID_TIMESTAMP
        elif kind == "in_kind_unknown":
            rec["kind"] = "refund"
            code = E.KIND_UNKNOWN
        elif kind == "in_amount_missing":
            rec["amount_minor"] = None
            code = E.AMOUNT_MISSING
        elif kind == "in_amount_float":
            rec["amount_minor"], code = 1250.0, E.AMOUNT_FLOAT
        elif kind == "in_amount_string":
            rec["amount_minor"], code = "125000", E.AMOUNT_STRING
        elif kind == "in_amount_boolean":
            rec["amount_minor"], code = False, E.AMOUNT_BOOLEAN
        elif kind == "in_amount_out_of_range":
            rec["amount_minor"], code = 99999999999999999999, E.AMOUNT_OUT_OF_RANGE
        elif kind == "in_amount_invalid":
            rec["amount_minor"], code = {"value": 125000}, E.AMOUNT_INVALID
        elif kind == "in_currency_unknown":
            rec["currency"], code = "XXY", E.CURRENCY_UNKNOWN
        elif kind == "in_corridor_invalid":
            rec["corridor"], code = f"{c}-SEPA-{c}", E.CORRIDOR_INVALID
        else:  # pragma: no cover
            raise AssertionError(kind)
        n = self.sink.write(rel_day, raw if raw is not None else json.dumps(rec))
        self._plant_record("intents", rel_day, n, code, case, tenant_id=t)

    def _plant_delivery(self, kind: str, k: int, now: int) -> None:
        t = TENANTS[self.plant_no % 3]
        self.dl_counter += 1
        rec = {"delivery_id": "dlv_q" + _scramble(self.dl_counter, 0xD1, _MASK64, 16),
               "event_id": f"evt_out_q{k:05d}", "tenant_id": t, "endpoint": ENDPOINT[t], "attempt": 1,
               "attempted_at": _iso(now + 900), "status_code": 200, "error": None, "latency_ms": 80}
        raw = None
        case = kind[3:]
        if kind == "dl_identical_copy":
            rel = "deliveries/late-redeliveries.jsonl"
            n = self.sink.write(rel, self.last_delivery)
            self._plant_record("deliveries", rel, n, None, "identical_delivery_line_copy")
            return
        if kind == "dl_conflict":
            rel = f"deliveries/{_DAYS[_day(now + 900)]}.jsonl"
            n1 = self.sink.write(rel, json.dumps(rec))
            self._plant_record("deliveries", rel, n1, E.DELIVERY_CONFLICT, "delivery_conflict_first_copy", tenant_id=t)
            rec["status_code"], rec["error"], rec["latency_ms"] = 502, None, 4000
            rel = "deliveries/late-redeliveries.jsonl"
            n2 = self.sink.write(rel, json.dumps(rec))
            self._plant_record("deliveries", rel, n2, E.DELIVERY_CONFLICT, "delivery_conflict_second_copy_status_differs",
                               tenant_id=t)
            return
        if kind == "dl_status_abc":
            rec["status_code"], code = "abc", E.STATUS_CODE_INVALID
        elif kind == "dl_status_700":
            rec["status_code"], code = 700, E.STATUS_CODE_INVALID
        elif kind == "dl_attempt_zero":
            rec["attempt"], code = 0, E.ATTEMPT_INVALID
        elif kind == "dl_latency_negative":
            rec["latency_ms"], code = -5, E.LATENCY_INVALID
        elif kind == "dl_malformed_json":
            raw, code = json.dumps(rec)[:60], E.MALFORMED_JSON
        elif kind == "dl_missing_field":
            del rec["event_id"]
            code = E.MISSING_FIELD
        elif kind == "dl_invalid_identifier":
            rec["event_id"], code = "evt out 1", E.INVALID_IDENTIFIER
        elif kind == "dl_invalid_timestamp":
            rec["attempted_at"], code = "yesterday at noon", E.INVALID_TIMESTAMP
        else:  # pragma: no cover
            raise AssertionError(kind)
        rel = f"deliveries/{_DAYS[_day(now + 900)]}.jsonl"
        n = self.sink.write(rel, raw if raw is not None else json.dumps(rec))
        self._plant_record("deliveries", rel, n, code, case, tenant_id=t)

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        out = self.out
        check_out_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        self._clean(out)
        db_path = out / "source.sqlite"
        self.db = sqlite3.connect(db_path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-131072")
        self.db.execute("BEGIN")
        self.db.execute(
            "CREATE TABLE accounts (account_id TEXT PRIMARY KEY, tenant_id TEXT, type TEXT, allow_negative BOOLEAN)")
        self.db.execute(
            "CREATE TABLE ledger_postings (posting_id TEXT PRIMARY KEY, journal_id TEXT, intent_id TEXT, "
            "tenant_id TEXT, account_id TEXT, currency TEXT, amount_minor BIGINT, posted_at TIMESTAMP, "
            "actor_id TEXT, idempotency_key TEXT)")
        self.db.executemany("INSERT INTO accounts VALUES (?,?,?,?)", self.accounts)

        roles = self._assign_roles()
        plants = self._schedule_plants()
        n, rng = self.n, self.rng
        # plant j runs after intent floor((j + 1/2) * n / len(plants)), in a shuffled order
        slots = [((2 * j + 1) * n) // (2 * len(plants)) for j in range(len(plants))]
        kcount: dict[str, int] = {}
        queue: list[tuple[str, int]] = []
        pj = 0
        start, span, step = BASE_MS, self.span, self.step
        for i in range(n):
            role = roles.get(i)
            base = start + (i * span) // n
            created = base if role is not None and role[0].startswith("burst") else base + rng.randrange(step)
            self._intent(i, created, role)
            while pj < len(plants) and slots[pj] <= i:
                kind = plants[pj]
                kcount[kind] = kcount.get(kind, -1) + 1
                queue.append((kind, kcount[kind]))
                pj += 1
            if queue:
                queue = [(kind, k) for kind, k in queue if not self._plant(kind, k, created)]
        for kind, k in queue:
            if not self._plant(kind, k, start + span - 60_000):
                raise AssertionError(f"plant {kind} never found its context")

        self._openings()
        self._flush_postings()
        self.db.execute("COMMIT")
        self.db.close()
        self.sink.close()
        return self._write_config_and_expected()

    def _clean(self, out: Path) -> None:
        """Regenerating into the same folder must not leave files of a previous, larger run."""
        for source, pattern in (("callbacks", "*.jsonl"), ("intents", "*.jsonl"), ("deliveries", "*.jsonl"),
                                ("settlements", "*.csv")):
            folder = out / "landing" / source
            if folder.is_dir():
                for f in folder.glob(pattern):
                    f.unlink()
        for name in ("source.sqlite", "source.sqlite-journal", "expected.json", "policies.yaml", "secrets.json"):
            if (out / name).exists():
                os.unlink(out / name)

    def _openings(self) -> None:
        """One opening journal per customer account, sized after the fact so only the planted
        overdraft customer ever closes a day below zero (posted at the period start)."""
        rng = self.rng
        for (t, c), ids in self.customers.items():
            for a in ids:
                net = self.bal.get((t, a, c), 0)  # <= 0: reserves minus releases
                if (t, a, c) == getattr(self, "overdraft", None):
                    x = (-net) // 2
                else:
                    x = -net + rng.randrange(1, 50) * 100_000
                if x <= 0:
                    continue
                oid = f"open_{a}"
                self._journal(oid, t, "open", c, BASE_MS, "svc_core", ((f"{t}:funding", -x), (a, x)))

    def _write_config_and_expected(self) -> dict:
        out = self.out
        (out / "policies.yaml").write_text(
            yaml.safe_dump(self.policies, sort_keys=False, default_flow_style=False), encoding="utf-8")
        (out / "secrets.json").write_text(json.dumps(self.secrets, indent=2) + "\n", encoding="utf-8")

        allow_negative = {a: bool(neg) for a, _, _, neg in self.accounts}
        balances = [{"tenant_id": t, "account_id": a, "currency": c, "balance_minor": v}
                    for (t, a, c), v in sorted(self.bal.items())]
        negative = [b for b in balances if b["balance_minor"] < 0 and not allow_negative[b["account_id"]]]
        lines = {"callbacks": 0, "intents": 0, "settlements": 0, "deliveries": 0}
        files = {}
        for rel, (_, count) in sorted(self.sink.files.items()):
            source = rel.split("/", 1)[0]
            rows = count - 1 if source == "settlements" else count
            lines[source] += rows
            files[f"landing/{rel}"] = rows
        lines["ledger_postings"] = self.postings
        key = lambda b: (b["tenant_id"], b["intent_id"] or "", b["provider_ref"] or "", b["break_type"])  # noqa: E731
        expected = {
            "format": EXPECTED_FORMAT,
            "seed": self.seed,
            "intents": self.n,
            "period": {"first_day": _DAYS[0], "days": self.days},
            "breaks": sorted(self.expected_breaks, key=key),
            "quarantine": {s: dict(sorted(d.items())) for s, d in self.quarantine.items()},
            "reviews": sorted(self.reviews, key=lambda r: (r["tenant_id"], r["intent_id"])),
            "rejected": sorted(self.rejected, key=lambda r: (r["tenant_id"], r["intent_id"])),
            "provider_state_rows": self.counts["provider_state_rows"],
            "provider_state_checks": self.state_checks,
            "balances": balances,
            "negative_balances": negative,
            "delivery_findings": self.delivery_findings,
            "lines": lines,
            "files": files,
            "counts": self.counts,
            "planted": self.planted,
        }
        (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
        return {
            "out_dir": str(out),
            "days": self.days,
            "intents": self.counts["intents_valid"],
            "accepted": self.counts["accepted"],
            "review": self.counts["review"],
            "rejected": self.counts["rejected"],
            "callbacks": lines["callbacks"],
            "intent_lines": lines["intents"],
            "settlement_rows": lines["settlements"],
            "deliveries": lines["deliveries"],
            "postings": self.postings,
            "accounts": len(self.accounts),
            "breaks": len(self.expected_breaks),
            "quarantined": {s: sum(d.values()) for s, d in self.quarantine.items()},
            "provider_state_rows": self.counts["provider_state_rows"],
        }


#: ``expected.json``'s format: also how a folder is recognised as an earlier sample.
EXPECTED_FORMAT = "zentra.sample_expected/1"


class SampleFolderError(ValueError):
    """``--out`` is not a place a sample may be written (exit code 2)."""


def check_out_folder(out: Path) -> None:
    """A sample is written to a new or empty folder, or over an earlier sample: it deletes
    the input files it finds there (a larger earlier sample's would linger), so a folder
    holding anything else (a real landing folder, say) is refused, never emptied."""
    if out.exists() and not out.is_dir():
        raise SampleFolderError(f"--out is not a folder: {out}")
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        earlier = json.loads((out / "expected.json").read_text()).get("format") == EXPECTED_FORMAT
    except (OSError, ValueError, AttributeError):
        earlier = False
    if not earlier:
        raise SampleFolderError(f"{out} holds files that are not a zentra sample: "
                                "write the sample to a new or empty folder")


def generate_sample(
    out_dir: Path, intents: int = 200, seed: int = 7, days: int | None = None, start: _dt.date | None = None
) -> dict:
    """Write the sandbox scenario under ``out_dir`` and return a summary of counts.

    Deterministic: the same ``(intents, seed, days, start)`` gives byte-identical files.
    ``days`` spreads the intents over that many UTC days (default: 1-5 by size, as
    ``zentra sample``); ``start`` is the first day (default START_DATE). The benchmark's
    incremental case uses a month of history ending before today, so that every day of it
    is inside the evidence calendar and gets sealed.
    """
    if start is None or start == START_DATE:
        return _Scenario(Path(out_dir), intents, seed, days).run()
    with _calendar_from(start):
        return _Scenario(Path(out_dir), intents, seed, days).run()


@contextlib.contextmanager
def _calendar_from(start: _dt.date) -> Iterator[None]:
    """Move the scenario's calendar to ``start`` for one generation.

    The hot-path formatters (``_iso``, ``_posted``, ``_day``) read the module's
    BASE_MS and _DAYS; they are rebound here and restored afterwards (one generation
    per process in practice: the CLI and the bench's child process).
    """
    global START_DATE, BASE_MS, _DAYS
    saved = START_DATE, BASE_MS, _DAYS
    START_DATE = start
    BASE_MS = calendar.timegm(start.timetuple()) * 1000
    _DAYS = {d: (start + _dt.timedelta(days=d)).isoformat() for d in range(-3, 64)}
    try:
        yield
    finally:
        START_DATE, BASE_MS, _DAYS = saved
