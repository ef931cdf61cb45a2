"""Signed-callback ingest (contract 2.1, 4): every bad input gets its exact, stable code.

Lines are built by ``tests.helpers.callbacks.make_callback`` (real Standard Webhooks
signatures), landed in a temporary folder, archived and verified by the production SQL
in a real DuckDB file, then converged. Each bad line is wrong in exactly one way, so
its code is the one the first failing check of ``sql/verify_callbacks.sql`` gives.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import polars as pl
import pytest

from tests.helpers.callbacks import (
    ALPHA_SECRET,
    ALPHA_SECRET_NEXT,
    BETA_SECRET,
    GAMMA_SECRET,
    MISSING,
    T0,
    TS0,
    body_text,
    flat_body,
    ingest,
    make_callback,
    make_secret,
    nested_body,
    run_lines,
    write_landing,
    write_secrets,
)
from zentra_pipelines.adapters.config import ConfigError, load_webhook_keys
from zentra_pipelines.adapters.landing import BATCH_BYTES, MAX_LINE_BYTES
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import errors
from zentra_pipelines.domain.callbacks import converge
from zentra_pipelines.domain.webhooks import sign
from zentra_pipelines.ingest import archive_landing, run_callbacks

CANONICAL = ["event_id", "type", "intent_id", "provider_ref", "amount_minor", "currency", "sequence",
             "occurred_at", "content_hash"]


def _eid(label: str) -> str:
    return "evt_" + "".join(c if c.isalnum() else "_" for c in label)[:100]


def cb(label: str, body_kw: dict | None = None, *, nested: bool = False, **kw) -> str:
    """A callback whose body is valid except for ``body_kw``, with an event_id unique to the case."""
    body_kw = {"event_id": _eid(label), **(body_kw or {})}
    body = nested_body(**body_kw) if nested else flat_body(**body_kw)
    return make_callback(body, **kw)


def _raw_body(label: str, replace: tuple[str, str] | None = None, suffix: str = "") -> str:
    text = body_text(flat_body(event_id=_eid(label)))
    if replace:
        assert replace[0] in text
        text = text.replace(*replace, 1)
    return text + suffix


def _dup_envelope() -> str:
    line = cb("dup_envelope")
    return line[:-1] + ',"tenant_id":"t_beta"}'


def _dup_headers() -> str:
    line = cb("dup_headers")
    return line.replace('"headers":{', '"headers":{"webhook-id":"msg_other",', 1)


def _headers_renamed(label: str, names: dict[str, str]) -> str:
    """A correctly signed callback whose header names are spelled otherwise (HTTP header
    names are case-insensitive; a receiver may log them as "Webhook-Id")."""
    line = cb(label)
    for old, new in names.items():
        line = line.replace(f'"{old}":', f'"{new}":', 1)
    return line


def _exactly_one_mib() -> str:
    """A valid, correctly signed callback whose line is exactly MAX_LINE_BYTES long."""
    def build(pad: int) -> str:
        return cb("exactly_1mib", {"note": "x" * pad}, webhook_id="msg_exactly_1mib")
    # each pad char costs 1 body byte, and the body's quotes are escaped in the envelope,
    # so the line grows by exactly one byte per pad char.
    pad = MAX_LINE_BYTES - len(build(0).encode())
    line = build(pad)
    assert len(line.encode()) == MAX_LINE_BYTES
    return line


def _replay(seconds: float, label: str) -> str:
    return cb(label, ts=TS0, received_at=T0 + timedelta(seconds=seconds))



#: label -> (line, expected error_code or None for accepted[, pytest marks])
CASES: dict[str, tuple] = {
    # --- accepted controls ---------------------------------------------------
    "ok.flat": (cb("ok.flat"), None),
    "ok.nested": (cb("ok.nested", nested=True), None),
    "ok.several_signatures_one_matches": (
        cb("ok.several", sign_with=[GAMMA_SECRET, BETA_SECRET, ALPHA_SECRET]), None),
    "ok.malformed_entry_next_to_valid_signature": (
        make_callback(flat_body(event_id="evt_ok_mixed"), webhook_id="msg_ok_mixed",
                      signature="v1 v1,!!!! " + sign(
                          ALPHA_SECRET, "msg_ok_mixed", TS0, body_text(flat_body(event_id="evt_ok_mixed")))),
        None),
    "ok.replay_exactly_300s_after": (_replay(300, "ok.replay_300_after"), None),
    "ok.replay_exactly_300s_before": (_replay(-300, "ok.replay_300_before"), None),
    "ok.amount_int64_max": (cb("ok.int64_max", {"amount_minor": 2**63 - 1}), None),
    "ok.amount_int64_min": (cb("ok.int64_min", {"amount_minor": -(2**63)}), None),
    "ok.amount_zero": (cb("ok.zero", {"amount_minor": 0}), None),
    "ok.sequence_zero": (cb("ok.seq0", {"sequence": 0}), None),
    "ok.non_ascii_body_escaped": (make_callback(json.dumps(flat_body(event_id="evt_ok_u1", note="é€😀"))), None),
    "ok.non_ascii_body_raw": (
        make_callback(json.dumps(flat_body(event_id="evt_ok_u2", note="é€😀"), ensure_ascii=False)), None),
    "ok.received_at_with_offset": (cb("ok.offset", received_at="2026-11-24T11:00:03.120+01:00"), None),
    "ok.line_exactly_1MiB": (_exactly_one_mib(), None),
    "ok.header_names_capitalised": (_headers_renamed("ok.hdr_caps", {
        "webhook-id": "Webhook-Id", "webhook-timestamp": "Webhook-Timestamp",
        "webhook-signature": "Webhook-Signature"}), None),
    "ok.header_names_upper_one_of_them": (_headers_renamed("ok.hdr_upper", {"webhook-signature": "WEBHOOK-SIGNATURE"}),
                                          None),
    "ok.header_extra_next_to_the_three": (_headers_renamed("ok.hdr_extra", {
        "webhook-id": "content-type\":\"application/json\",\"webhook-id"}), None),
    # --- framing -------------------------------------------------------------
    "line_too_large": (cb("too_large", {"note": "x" * (MAX_LINE_BYTES + 1)}), errors.LINE_TOO_LARGE),
    "invalid_utf8": (cb("invalid_utf8").encode()[:-1] + b'\xff\xfe"}', errors.INVALID_UTF8),
    "invalid_utf8.lone_continuation": (b'{"received_at":"\x80"}', errors.INVALID_UTF8),
    "nul_byte": (cb("nul").encode().replace(b"t_alpha", b"t_al\x00pha", 1), errors.NUL_BYTE),
    # --- envelope JSON -------------------------------------------------------
    "malformed_json.truncated": (cb("truncated")[:-7], errors.MALFORMED_JSON),
    "malformed_json.trailing_garbage": (cb("trailing") + " x", errors.MALFORMED_JSON),
    "malformed_json.blank_line": ("", errors.MALFORMED_JSON),
    "malformed_json.trailing_comma": (cb("trailing_comma")[:-1] + ",}", errors.MALFORMED_JSON),
    "not_an_object.array": ('[{"tenant_id":"t_alpha"}]', errors.NOT_AN_OBJECT),
    "not_an_object.string": ('"hello"', errors.NOT_AN_OBJECT),
    "not_an_object.number": ("42", errors.NOT_AN_OBJECT),
    "not_an_object.null": ("null", errors.NOT_AN_OBJECT),
    "duplicate_json_key.envelope": (_dup_envelope(), errors.DUPLICATE_JSON_KEY),
    "duplicate_json_key.envelope_escaped": (
        cb("dup_esc").replace('"tenant_id":"t_alpha"', '"tenant_id":"t_alpha","tenant\\u005fid":"t_beta"', 1),
        errors.DUPLICATE_JSON_KEY),
    "duplicate_json_key.headers": (_dup_headers(), errors.DUPLICATE_JSON_KEY),
    "duplicate_json_key.headers_in_two_cases": (
        cb("dup_hdr_case").replace('"headers":{', '"headers":{"Webhook-Id":"msg_other",', 1),
        errors.DUPLICATE_JSON_KEY),
    "duplicate_json_key.body": (
        make_callback(_raw_body("dup_body", suffix="")[:-1] + ',"amount_minor":1}'), errors.DUPLICATE_JSON_KEY),
    "duplicate_json_key.body_escaped": (
        make_callback(_raw_body("dup_body_esc")[:-1] + ',"amount\\u005fminor":1}'), errors.DUPLICATE_JSON_KEY),
    "duplicate_json_key.nested_object": (
        make_callback(body_text(nested_body(event_id="evt_dup_obj")).replace(
            '"object":{', '"object":{"provider_ref":"pr_evil",', 1)), errors.DUPLICATE_JSON_KEY),
    "duplicate_json_key.nested_amount": (
        make_callback(body_text(nested_body(event_id="evt_dup_amt")).replace(
            '"amount":{', '"amount":{"value":1,', 1)), errors.DUPLICATE_JSON_KEY),
    # --- envelope fields -----------------------------------------------------
    "missing_field.body": (cb("mf_body", envelope_override={"body": MISSING}), errors.MISSING_FIELD),
    "missing_field.received_at_null": (cb("mf_recv", envelope_override={"received_at": None}), errors.MISSING_FIELD),
    "missing_field.tenant_id": (cb("mf_tenant", envelope_override={"tenant_id": MISSING}), errors.MISSING_FIELD),
    "missing_field.headers": (cb("mf_headers", envelope_override={"headers": MISSING}), errors.MISSING_FIELD),
    "invalid_field_type.headers_string": (
        cb("ift_headers", envelope_override={"headers": "webhook-id: msg_1"}), errors.INVALID_FIELD_TYPE),
    "invalid_field_type.headers_array": (cb("ift_headers_arr", envelope_override={"headers": []}),
                                         errors.INVALID_FIELD_TYPE),
    "invalid_field_type.body_object": (
        cb("ift_body", envelope_override={"body": flat_body(event_id="evt_ift_body")}), errors.INVALID_FIELD_TYPE),
    "invalid_field_type.tenant_number": (cb("ift_tenant", tenant=7), errors.INVALID_FIELD_TYPE),
    "invalid_field_type.webhook_timestamp_number": (
        cb("ift_wts", headers_override={"webhook-timestamp": TS0}), errors.INVALID_FIELD_TYPE),
    "invalid_timestamp.received_at_words": (cb("it_words", received_at="yesterday"), errors.INVALID_TIMESTAMP),
    "invalid_timestamp.received_at_no_zone": (
        cb("it_nozone", received_at="2026-11-24T10:00:03.120"), errors.INVALID_TIMESTAMP),
    "invalid_timestamp.received_at_impossible_date": (
        cb("it_feb30", received_at="2026-02-30T10:00:03Z"), errors.INVALID_TIMESTAMP),
    "invalid_timestamp.occurred_at": (cb("it_occ", {"occurred_at": "24/11/2026"}), errors.INVALID_TIMESTAMP),
    # --- identifiers ---------------------------------------------------------
    "invalid_identifier.tenant_quote": (cb("ii_tenant", tenant="t_al'pha"), errors.INVALID_IDENTIFIER),
    "invalid_identifier.tenant_trailing_newline": (cb("ii_tenant_nl", tenant="t_alpha\n"), errors.INVALID_IDENTIFIER),
    "invalid_identifier.provider_space": (cb("ii_provider", provider="acme pay"), errors.INVALID_IDENTIFIER),
    "invalid_identifier.intent_dotdot": (cb("ii_intent", {"intent_id": "../x"}), errors.INVALID_IDENTIFIER),
    "invalid_identifier.provider_ref_slash": (cb("ii_ref", {"provider_ref": "pr/0001"}), errors.INVALID_IDENTIFIER),
    "invalid_identifier.event_id_control_char": (cb("ii_evt", {"event_id": "evt_\u0001x"}), errors.INVALID_IDENTIFIER),
    "invalid_identifier.event_id_too_long": (cb("ii_evt_long", {"event_id": "e" * 129}), errors.INVALID_IDENTIFIER),
    "invalid_identifier.webhook_id": (cb("ii_wid", webhook_id="msg 1;drop"), errors.INVALID_IDENTIFIER),
    "invalid_identifier.nested_provider_ref": (
        cb("ii_nested_ref", {"obj": {"provider_ref": "../../etc"}}, nested=True), errors.INVALID_IDENTIFIER),
    "ok.identifier_128_chars": (cb("ok.long_id", {"intent_id": "i" * 128}), None),
    # --- trust ---------------------------------------------------------------
    "unknown_tenant.tenant": (cb("ut_tenant", tenant="t_zeta", secret=GAMMA_SECRET), errors.UNKNOWN_TENANT),
    "unknown_tenant.provider": (cb("ut_provider", provider="other_pay"), errors.UNKNOWN_TENANT),
    "header_missing.signature": (cb("hm_sig", headers_override={"webhook-signature": MISSING}),
                                 errors.HEADER_MISSING),
    "header_missing.id": (cb("hm_id", headers_override={"webhook-id": MISSING}), errors.HEADER_MISSING),
    "header_missing.signature_null": (cb("hm_sig_null", headers_override={"webhook-signature": None}),
                                      errors.HEADER_MISSING),
    "header_missing.signature_null_capitalised": (_headers_renamed("hm_sig_null_caps", {
        "webhook-signature": "Webhook-Signature"}).replace('"Webhook-Signature":"', '"Webhook-Signature":null,"x":"', 1),
        errors.HEADER_MISSING),
    "header_missing.timestamp": (cb("hm_ts", headers_override={"webhook-timestamp": MISSING}),
                                 errors.HEADER_MISSING),
    "timestamp_invalid.fraction": (cb("ti_frac", ts="1795514400.5"), errors.TIMESTAMP_INVALID),
    "timestamp_invalid.words": (cb("ti_words", ts="soon"), errors.TIMESTAMP_INVALID),
    "timestamp_invalid.negative": (cb("ti_neg", ts="-1"), errors.TIMESTAMP_INVALID),
    "timestamp_invalid.empty": (cb("ti_empty", ts=""), errors.TIMESTAMP_INVALID),
    "signature_malformed.no_comma": (cb("sm_nocomma", signature="v1"), errors.SIGNATURE_MALFORMED),
    "signature_malformed.not_base64": (cb("sm_b64", signature="v1,!!not*base64!!"), errors.SIGNATURE_MALFORMED),
    "signature_malformed.wrong_length": (cb("sm_len", signature="v1,AAAA"), errors.SIGNATURE_MALFORMED),
    "signature_malformed.other_version_only": (
        cb("sm_v2", signature="v1a," + "A" * 43 + "="), errors.SIGNATURE_MALFORMED),
    "signature_malformed.empty": (cb("sm_empty", signature=""), errors.SIGNATURE_MALFORMED),
    "signature_mismatch.tampered_body": (
        cb("smm_tamper").replace("125000", "925000", 1), errors.SIGNATURE_MISMATCH),
    "signature_mismatch.tampered_timestamp": (
        cb("smm_ts", ts=TS0).replace(f'"webhook-timestamp":"{TS0}"', f'"webhook-timestamp":"{TS0 + 1}"', 1),
        errors.SIGNATURE_MISMATCH),
    "signature_mismatch.tampered_webhook_id": (
        cb("smm_wid", webhook_id="msg_a").replace('"webhook-id":"msg_a"', '"webhook-id":"msg_b"', 1),
        errors.SIGNATURE_MISMATCH),
    "signature_mismatch.other_tenants_secret": (cb("smm_forgery", sign_with=BETA_SECRET), errors.SIGNATURE_MISMATCH),
    "signature_mismatch.unconfigured_secret": (cb("smm_gamma", sign_with=GAMMA_SECRET), errors.SIGNATURE_MISMATCH),
    "signature_mismatch.forged_as_beta": (
        cb("smm_as_beta", tenant="t_beta", sign_with=ALPHA_SECRET), errors.SIGNATURE_MISMATCH),
    "replay_window.301s_after": (_replay(301, "rw_after"), errors.REPLAY_WINDOW),
    "replay_window.301s_before": (_replay(-301, "rw_before"), errors.REPLAY_WINDOW),
    "replay_window.one_day_old": (_replay(86_400, "rw_day"), errors.REPLAY_WINDOW),
    "replay_window.300s_plus_400us_after": (
        cb("rw_sub_ms_after", ts=TS0, received_at="2026-11-24T10:05:00.0004Z"), errors.REPLAY_WINDOW),
    "replay_window.300s_plus_1us_before": (
        cb("rw_sub_ms_before", ts=TS0, received_at="2026-11-24T09:54:59.999999Z"), errors.REPLAY_WINDOW),
    # --- body ----------------------------------------------------------------
    "body_malformed_json.words": (make_callback("not json at all"), errors.BODY_MALFORMED_JSON),
    "body_malformed_json.truncated": (make_callback(_raw_body("bmj_trunc")[:-3]), errors.BODY_MALFORMED_JSON),
    "body_malformed_json.array": (make_callback("[1,2,3]"), errors.BODY_MALFORMED_JSON),
    "body_malformed_json.empty": (make_callback(""), errors.BODY_MALFORMED_JSON),
    "body_malformed_json.trailing_comma": (make_callback(_raw_body("bmj_comma")[:-1] + ",}"),
                                           errors.BODY_MALFORMED_JSON),
    "body_malformed_json.nan_amount": (make_callback(_raw_body("bmj_nan", ("125000", "NaN"))),
                                       errors.BODY_MALFORMED_JSON),
    "ok.body_text_holding_nan_inf_and_a_comma_brace": (cb("ok_nan_text", {"note": "nan, Infinity ,}"}), None),
    "unsupported_api_version.unknown": (cb("uav", {"api_version": "2025-01-01"}), errors.UNSUPPORTED_API_VERSION),
    "unsupported_api_version.missing": (cb("uav_missing", {"api_version": MISSING}), errors.UNSUPPORTED_API_VERSION),
    "unsupported_api_version.number": (cb("uav_num", {"api_version": 20260101}), errors.UNSUPPORTED_API_VERSION),
    "missing_field.body_event_id": (cb("mf_evt", {"event_id": MISSING}), errors.MISSING_FIELD),
    "missing_field.body_provider_ref_null": (cb("mf_ref", {"provider_ref": None}), errors.MISSING_FIELD),
    "missing_field.nested_object": (cb("mf_obj", {"obj": MISSING}, nested=True), errors.MISSING_FIELD),
    "invalid_field_type.nested_amount_array": (
        cb("ift_amt", {"amount": [125000, "EUR"]}, nested=True), errors.INVALID_FIELD_TYPE),
    "invalid_field_type.body_currency_number": (cb("ift_cur", {"currency": 978}), errors.INVALID_FIELD_TYPE),
    "unknown_event_type": (cb("uet", {"type": "payment.exploded"}), errors.UNKNOWN_EVENT_TYPE),
    "unknown_event_type.case": (cb("uet_case", {"type": "Payment.Captured"}), errors.UNKNOWN_EVENT_TYPE),
    # --- money ---------------------------------------------------------------
    "amount_float.1250.0": (cb("af", {"amount_minor": 1250.0}), errors.AMOUNT_FLOAT),
    "amount_float.exponent": (make_callback(_raw_body("af_exp", ('"amount_minor":125000', '"amount_minor":1e3'))),
                              errors.AMOUNT_FLOAT),
    "amount_float.nested": (cb("af_nested", {"amount": {"value": 1250.5}}, nested=True), errors.AMOUNT_FLOAT),
    "amount_string": (cb("as", {"amount_minor": "125000"}), errors.AMOUNT_STRING),
    "amount_string.nested": (cb("as_nested", {"amount": {"value": "125000"}}, nested=True), errors.AMOUNT_STRING),
    "amount_boolean": (cb("ab", {"amount_minor": True}), errors.AMOUNT_BOOLEAN),
    "amount_boolean.false": (cb("ab_false", {"amount_minor": False}), errors.AMOUNT_BOOLEAN),
    "amount_missing": (cb("am", {"amount_minor": MISSING}), errors.AMOUNT_MISSING),
    "amount_missing.null": (cb("am_null", {"amount_minor": None}), errors.AMOUNT_MISSING),
    "amount_missing.nested": (cb("am_nested", {"amount": {"value": MISSING}}, nested=True), errors.AMOUNT_MISSING),
    "amount_invalid.array": (cb("ai", {"amount_minor": [125000]}), errors.AMOUNT_INVALID),
    "amount_invalid.object": (cb("ai_obj", {"amount_minor": {"value": 1}}), errors.AMOUNT_INVALID),
    "amount_out_of_range.2**63": (cb("aoor_pos", {"amount_minor": 2**63}), errors.AMOUNT_OUT_OF_RANGE),
    "amount_out_of_range.20_digits": (
        cb("aoor_big", {"amount_minor": 99999999999999999999}), errors.AMOUNT_OUT_OF_RANGE),
    "amount_out_of_range.-2**63-1": (cb("aoor_neg", {"amount_minor": -(2**63) - 1}), errors.AMOUNT_OUT_OF_RANGE),
    "amount_out_of_range.2**64": (cb("aoor_u64", {"amount_minor": 2**64}), errors.AMOUNT_OUT_OF_RANGE),
    "amount_out_of_range.nested": (
        cb("aoor_nested", {"amount": {"value": 2**63}}, nested=True), errors.AMOUNT_OUT_OF_RANGE),
    "currency_unknown": (cb("cu", {"currency": "ZZZ"}), errors.CURRENCY_UNKNOWN),
    "currency_unknown.lowercase": (cb("cu_lower", {"currency": "eur"}), errors.CURRENCY_UNKNOWN),
    "currency_unknown.nested": (cb("cu_nested", {"amount": {"currency": "EURO"}}, nested=True),
                                errors.CURRENCY_UNKNOWN),
    "sequence_invalid.negative": (cb("si_neg", {"sequence": -1}), errors.SEQUENCE_INVALID),
    "sequence_invalid.float": (cb("si_float", {"sequence": 1.5}), errors.SEQUENCE_INVALID),
    "sequence_invalid.string": (cb("si_str", {"sequence": "1"}), errors.SEQUENCE_INVALID),
    "sequence_invalid.over_int64": (cb("si_big", {"sequence": 2**63}), errors.SEQUENCE_INVALID),
}

LABELS = list(CASES)


def _params():
    for label, (line, code, *marks) in CASES.items():
        yield pytest.param(label, code, id=label, marks=marks)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """All CASES in one landing file, one verification pass (the SQL judges lines independently)."""
    lines = [CASES[label][0] for label in LABELS]
    checked, result = run_lines(tmp_path_factory.mktemp("codes"), lines)
    assert checked.height == len(LABELS)
    return checked.sort("line_no"), result


def _row(checked: pl.DataFrame, label: str) -> dict:
    return checked.row(LABELS.index(label), named=True)


@pytest.mark.parametrize(("label", "code"), list(_params()))
def test_line_gets_its_exact_code(batch, label, code):
    checked, result = batch
    row = _row(checked, label)
    assert row["line_no"] == LABELS.index(label) + 1
    assert row["error_code"] == code, f"{label}: detail={row['detail']!r}"
    in_quarantine = result.quarantine.filter(pl.col("line_no") == row["line_no"])
    in_events = result.events.filter(pl.col("line_no") == row["line_no"])
    if code is None:
        # accepted: every canonical column is filled, nothing quarantined
        assert all(row[c] is not None for c in CANONICAL), row
        assert row["detail"] is None
        assert in_events.height == 1 and in_quarantine.height == 0
    else:
        # quarantined with the same code and a human detail, never accepted, never lost
        assert in_quarantine["error_code"].to_list() == [code]
        assert in_quarantine["detail"][0]
        assert in_events.height == 0
        assert all(row[c] is None for c in CANONICAL), row


def test_every_callback_code_is_rehearsed():
    """The batch exercises every code a callback line can get from SQL (event_conflict: converge)."""
    callback_codes = {
        code for code, (scope, _) in errors.CATALOGUE.items()
        if scope in ("all line inputs", "jsonl inputs", "jsonl inputs, callback bodies", "callbacks", "all inputs")
    } - {errors.EVENT_CONFLICT}
    rehearsed = {code for _, code, *_ in CASES.values() if code}
    assert callback_codes - rehearsed == set()


def test_accepted_amounts_are_exact(batch):
    checked, _ = batch
    assert _row(checked, "ok.amount_int64_max")["amount_minor"] == 2**63 - 1
    assert _row(checked, "ok.amount_int64_min")["amount_minor"] == -(2**63)
    assert _row(checked, "ok.amount_zero")["amount_minor"] == 0
    assert checked.schema["amount_minor"] == pl.Int64


def test_framing_errors_keep_position_and_no_tenant(batch):
    checked, _ = batch
    too_large = _row(checked, "line_too_large")
    assert too_large["tenant_id"] is None
    assert str(MAX_LINE_BYTES) in too_large["detail"] and "sha256" in too_large["detail"]
    assert "offset" in _row(checked, "nul_byte")["detail"]
    assert "byte" in _row(checked, "invalid_utf8")["detail"]


def test_quarantine_keeps_tenant_when_it_is_a_valid_identifier(batch):
    checked, result = batch
    q = result.quarantine
    mismatch = q.filter(pl.col("line_no") == _row(checked, "signature_mismatch.other_tenants_secret")["line_no"])
    assert mismatch["tenant_id"].to_list() == ["t_alpha"]
    bad_tenant = q.filter(pl.col("line_no") == _row(checked, "invalid_identifier.tenant_quote")["line_no"])
    assert bad_tenant["tenant_id"].to_list() == [None]


def test_a_byte_order_mark_opening_a_callbacks_file_is_ignored(tmp_path):
    checked, result = run_lines(tmp_path, ["\ufeff" + cb("bom_first"), "\ufeff" + cb("bom_second")])
    assert checked.sort("line_no")["error_code"].to_list() == [None, errors.MALFORMED_JSON]
    assert result.events["line_no"].to_list() == [1]


def test_replay_detail_states_the_skew(batch):
    checked, _ = batch
    assert _row(checked, "replay_window.301s_after")["detail"].startswith("received_at and webhook-timestamp differ by 301 s")
    assert "-301 s" in _row(checked, "replay_window.301s_before")["detail"]
    # a gap just past the limit is shown exactly, not floored back onto the limit
    assert "differ by 300.0004 s (limit 300 s)" in _row(checked, "replay_window.300s_plus_400us_after")["detail"]
    assert "differ by -300.000001 s (limit 300 s)" in _row(checked, "replay_window.300s_plus_1us_before")["detail"]


# ---------------------------------------------------------------- conflicts ---


@pytest.mark.parametrize("order", ["a_then_b", "b_then_a", "split_files"])
def test_event_conflict_quarantines_every_copy_whatever_the_order(tmp_path, order):
    ref = {"provider_ref": "pr_conf", "intent_id": "int_conf"}
    seq1 = make_callback(flat_body(event_id="evt_c1", sequence=1, type="payment.authorized", **ref))
    seq2 = make_callback(flat_body(event_id="evt_c2", sequence=2, **ref))
    # seq 3 would win, but its event_id arrived with two different bodies
    a = make_callback(flat_body(event_id="evt_c3", sequence=3, type="payment.settled", **ref), webhook_id="msg_a")
    b = make_callback(flat_body(event_id="evt_c3", sequence=3, type="payment.settled", amount_minor=1, **ref),
                      webhook_id="msg_b")
    a_again = make_callback(flat_body(event_id="evt_c3", sequence=3, type="payment.settled", **ref),
                            webhook_id="msg_a", received_at=T0 + timedelta(seconds=60), ts=TS0)
    lines = {
        "a_then_b": [seq1, a, seq2, b, a_again],
        "b_then_a": [b, seq2, a_again, seq1, a],
        "split_files": {"2.jsonl": [a, seq1], "1.jsonl": [b, a_again, seq2]},
    }[order]
    checked, result = run_lines(tmp_path, lines)
    assert checked["error_code"].null_count() == 5  # all five are well-formed and verified
    conflict = result.quarantine.filter(pl.col("error_code") == errors.EVENT_CONFLICT)
    assert conflict.height == 3  # both bodies and the redelivery of the first: every copy
    assert "evt_c3" in conflict["detail"][0]
    assert result.quarantine.height == 3
    assert sorted(result.events["event_id"].to_list()) == ["evt_c1", "evt_c2"]
    assert result.conflicts.select("tenant_id", "provider", "event_id", "provider_ref", "contents", "copies").to_dicts() == [
        {"tenant_id": "t_alpha", "provider": "acme_pay", "event_id": "evt_c3", "provider_ref": "pr_conf",
         "contents": 2, "copies": 3}
    ]
    state = result.state.select("provider_ref", "event_id", "type", "sequence", "amount_minor", "events_seen")
    assert state.to_dicts() == [
        {"provider_ref": "pr_conf", "event_id": "evt_c2", "type": "payment.captured", "sequence": 2,
         "amount_minor": 125000, "events_seen": 2}
    ]


def test_same_event_id_in_two_tenants_is_no_conflict(tmp_path):
    body = flat_body(event_id="evt_shared")
    other = flat_body(event_id="evt_shared", amount_minor=7)
    lines = [make_callback(body), make_callback(other, tenant="t_beta", secret=BETA_SECRET)]
    checked, result = run_lines(tmp_path, lines)
    assert result.quarantine.height == 0 and result.conflicts.height == 0
    assert result.state.select("tenant_id", "amount_minor").sort("tenant_id").rows() == [("t_alpha", 125000), ("t_beta", 7)]


# ------------------------------------------------------------ trust features ---


def test_secret_rotation_both_secrets_verify(tmp_path):
    secrets = {"t_alpha": {"acme_pay": [ALPHA_SECRET, ALPHA_SECRET_NEXT]}, "t_beta": {"acme_pay": [BETA_SECRET]}}
    short = make_secret("short", size=1)  # a 1-byte key is padded, a 100-byte key hashed (RFC 2104)
    secrets["t_alpha"]["acme_pay"].append(short)
    lines = [
        make_callback(flat_body(event_id="evt_old"), sign_with=ALPHA_SECRET),
        make_callback(flat_body(event_id="evt_new", sequence=2), sign_with=ALPHA_SECRET_NEXT),
        make_callback(flat_body(event_id="evt_short", sequence=3), sign_with=short),
        make_callback(flat_body(event_id="evt_beta_key", sequence=4), sign_with=BETA_SECRET),
    ]
    checked, _ = run_lines(tmp_path, lines, secrets)
    assert checked["error_code"].to_list() == [None, None, None, errors.SIGNATURE_MISMATCH]


def test_nested_body_upcasts_to_the_same_canonical_event(tmp_path):
    flat = flat_body(event_id="evt_up", provider_ref="pr_up", intent_id="int_up", amount_minor=-4200,
                     currency="JPY", sequence=7, type="payment.refunded", occurred_at="2026-11-24T10:59:58.5+01:00")
    nested = nested_body(event_id="evt_up", sequence=7, type="payment.refunded",
                         occurred_at="2026-11-24T09:59:58.500Z",
                         obj={"provider_ref": "pr_up", "intent_id": "int_up"},
                         amount={"value": -4200, "currency": "JPY"})
    lines = [make_callback(flat, webhook_id="msg_flat"), make_callback(nested, webhook_id="msg_nested")]
    checked, result = run_lines(tmp_path, lines)
    assert checked["error_code"].to_list() == [None, None]
    assert checked["api_version"].to_list() == ["2026-01-01", "2026-06-01"]
    rows = checked.select(CANONICAL).unique()
    assert rows.height == 1
    assert rows.row(0, named=True)["amount_minor"] == -4200
    assert str(rows.row(0, named=True)["occurred_at"]) == "2026-11-24 09:59:58.500000"
    # two deliveries of one event: collapsed, no conflict
    assert result.conflicts.height == 0 and result.quarantine.height == 0
    assert result.events["copies"].to_list() == [2, 2]
    assert result.state.select("provider_ref", "amount_minor", "currency", "sequence", "events_seen").rows() == [
        ("pr_up", -4200, "JPY", 7, 1)
    ]


def test_secret_never_reaches_any_output(tmp_path):
    canary = make_secret("CANARY-do-not-leak")
    canary_b64 = canary.removeprefix("whsec_")
    secrets = {"t_alpha": {"acme_pay": [canary]}}
    lines = [
        make_callback(flat_body(event_id="evt_ok"), secret=canary),
        make_callback(flat_body(event_id="evt_forged"), secret=GAMMA_SECRET),
        make_callback(flat_body(event_id="evt_replay"), secret=canary, ts=TS0, received_at=T0 + timedelta(hours=1)),
        make_callback(flat_body(event_id="evt_bad_sig"), signature="v1"),
        make_callback(flat_body(event_id="evt_float", amount_minor=1.5), secret=canary),
        make_callback(flat_body(event_id="evt_ok"), secret=canary, webhook_id="msg_dup"),
        make_callback(flat_body(event_id="evt_conf", amount_minor=3), secret=canary),
        make_callback(flat_body(event_id="evt_conf", amount_minor=4), secret=canary),  # conflict
        "{not json",
    ]
    landing_dir = write_landing(tmp_path, lines)
    secrets_path = write_secrets(tmp_path, secrets)
    home = tmp_path / "home"
    with Warehouse(home).connect() as con:
        archive_landing(con, landing_dir)
        report = run_callbacks(con, secrets_path)
        tables = {t: con.sql(f'SELECT * FROM "{t}"').pl() for t in
                  ("callback_checked", "callbacks_quarantine", "callback_events", "provider_state",
                   "callback_conflicts", "landing_files")}
    assert (report.accepted, report.quarantined, report.conflicts) == (2, 7, 1)
    assert tables["callbacks_quarantine"]["detail"].null_count() == 0
    for name, frame in tables.items():
        for column in frame.columns:
            text = "\n".join(map(str, frame[column].to_list()))
            assert canary not in text and canary_b64 not in text, f"secret leaked in {name}.{column}"
    blob = (home / "warehouse.duckdb").read_bytes()
    key = base64.b64decode(canary_b64)
    assert canary_b64.encode() not in blob and key not in blob


def test_config_error_never_prints_the_secret(tmp_path):
    bad = "whsec_CANARY!!not-base64"
    path = write_secrets(tmp_path, {"t_alpha": {"acme_pay": [ALPHA_SECRET, bad]}})
    with pytest.raises(ConfigError) as info:
        load_webhook_keys(path)
    assert "CANARY" not in str(info.value) and "#1" in str(info.value)


def test_received_equals_accepted_plus_quarantined(tmp_path):
    valid = [make_callback(flat_body(event_id=f"evt_{i}", provider_ref=f"pr_{i % 3}", sequence=i)) for i in range(6)]
    lines = [
        *valid,
        valid[0], valid[1],  # redeliveries
        make_callback(flat_body(event_id="evt_0", provider_ref="pr_0", sequence=0), webhook_id="msg_new"),
        make_callback(flat_body(event_id="evt_x", amount_minor="12")),
        make_callback(flat_body(event_id="evt_y"), sign_with=BETA_SECRET),
        make_callback(flat_body(event_id="evt_2", provider_ref="pr_2", sequence=2, amount_minor=9)),  # conflict
        b"\xff\xfe",
        "[]",
        "",
    ]
    landing_dir = write_landing(tmp_path, lines)
    with Warehouse(tmp_path / "home").connect() as con:
        archive_landing(con, landing_dir)
        report = run_callbacks(con, write_secrets(tmp_path))
        published = {t: con.sql(f'SELECT count(*) FROM "{t}"').fetchall()[0][0]
                     for t in ("callback_events", "callbacks_quarantine", "provider_state")}
        state = con.sql("SELECT * FROM provider_state ORDER BY ALL").pl()
        # running again on the same inputs changes nothing
        assert archive_landing(con, landing_dir).new_files == 0
        again = run_callbacks(con, write_secrets(tmp_path))
        assert again.verified_now == 0 and again.received == report.received
        assert con.sql("SELECT * FROM provider_state ORDER BY ALL").pl().equals(state)
    assert report.received == len(lines) == 15
    assert report.received == report.accepted + report.quarantined
    assert (report.accepted, report.quarantined) == (8, 7)  # evt_2: both copies quarantined
    assert report.quarantined_by_code == {
        errors.AMOUNT_STRING: 1, errors.SIGNATURE_MISMATCH: 1, errors.EVENT_CONFLICT: 2,
        errors.INVALID_UTF8: 1, errors.NOT_AN_OBJECT: 1, errors.MALFORMED_JSON: 1,
    }
    assert published == {"callback_events": 8, "callbacks_quarantine": 7, "provider_state": 3}
    assert report.duplicates_collapsed == 3 and report.distinct_events == 5


def test_a_file_of_only_bad_lines_publishes_an_empty_state(tmp_path):
    landing_dir = write_landing(tmp_path, ["{", make_callback(flat_body(), signature="v1"), b"\x00"])
    with Warehouse(tmp_path / "home").connect() as con:
        archive_landing(con, landing_dir)
        report = run_callbacks(con, write_secrets(tmp_path))
        state_rows = con.sql("SELECT count(*) FROM provider_state").fetchall()[0][0]
        quarantined = con.sql("SELECT error_code FROM callbacks_quarantine ORDER BY line_no").pl()
    assert (report.received, report.accepted, report.quarantined, state_rows) == (3, 0, 3, 0)
    assert quarantined["error_code"].to_list() == [errors.MALFORMED_JSON, errors.SIGNATURE_MALFORMED, errors.NUL_BYTE]


# ------------------------------------------------------------------ archive ---


def test_rerun_adds_nothing_and_new_files_only_add_themselves(tmp_path):
    first = [make_callback(flat_body(event_id=f"evt_{i}", sequence=i)) for i in range(3)]
    landing_dir = write_landing(tmp_path, {"a.jsonl": first})
    secrets_path = write_secrets(tmp_path)
    home = tmp_path / "home"

    archived, verified, checked = ingest(home, landing_dir, secrets_path)
    assert (archived.new_files, archived.new_lines, archived.skipped_files, verified) == (1, 3, 0, 3)

    archived, verified, again = ingest(home, landing_dir, secrets_path)
    assert (archived.new_files, archived.new_lines, archived.skipped_files, verified) == (0, 0, 1, 0)
    assert again.equals(checked)

    write_landing(tmp_path, {"b.jsonl": [make_callback(flat_body(event_id="evt_9", sequence=9)), "oops"]})
    archived, verified, grown = ingest(home, landing_dir, secrets_path)
    assert (archived.new_files, archived.new_lines, archived.skipped_files, verified) == (1, 2, 1, 2)
    assert grown.height == 5
    assert grown.filter(pl.col("source_file") == "callbacks/b.jsonl")["error_code"].to_list() == [
        None, errors.MALFORMED_JSON]
    assert grown.filter(pl.col("source_file") == "callbacks/a.jsonl").equals(checked)
    with Warehouse(home).connect(read_only=True) as con:
        assert con.sql("SELECT count(*) FROM landing_lines").fetchall()[0][0] == 5
        assert con.sql("SELECT count(*) FROM landing_files").fetchall()[0][0] == 2


def test_a_file_grown_after_it_was_archived_is_archived_again_and_said_so(tmp_path, caplog):
    """Outside the contract (files are never rewritten), but never silent: the lines it
    held before now count twice, and the run says which file and why."""
    lines = [make_callback(flat_body(event_id=f"evt_{i}", sequence=i)) for i in range(2)]
    landing_dir = write_landing(tmp_path, {"a.jsonl": lines})
    secrets_path = write_secrets(tmp_path)
    ingest(tmp_path / "home", landing_dir, secrets_path)
    write_landing(tmp_path, {"a.jsonl": [*lines, make_callback(flat_body(event_id="evt_9", sequence=9))]})
    with caplog.at_level("WARNING", logger="zentra.landing"):
        archived, _, _ = ingest(tmp_path / "home", landing_dir, secrets_path)
    assert (archived.new_files, archived.new_lines, archived.rewritten) == (1, 3, ("callbacks/a.jsonl",))
    assert "landing: 1 file(s) changed since they were archived (callbacks/a.jsonl): archived again" in caplog.text


def test_same_bytes_under_a_second_name_are_archived_once(tmp_path):
    lines = [make_callback(flat_body()), "not json"]
    landing_dir = write_landing(tmp_path, {"a.jsonl": lines, "copy_of_a.jsonl": lines})
    secrets_path = write_secrets(tmp_path)
    home = tmp_path / "home"
    archived, verified, checked = ingest(home, landing_dir, secrets_path)
    assert (archived.new_files, archived.new_lines, archived.skipped_files, verified) == (1, 2, 1, 2)
    assert checked["source_file"].unique().to_list() == ["callbacks/a.jsonl"]
    # and a later third copy is still nothing new
    write_landing(tmp_path, {"z_third_copy.jsonl": lines})
    archived, verified, again = ingest(home, landing_dir, secrets_path)
    assert (archived.new_files, archived.new_lines, archived.skipped_files, verified) == (0, 0, 3, 0)
    assert again.equals(checked)


def test_empty_file_is_archived_with_no_lines(tmp_path):
    landing_dir = write_landing(tmp_path, {"empty.jsonl": []})
    archived, verified, checked = ingest(tmp_path / "home", landing_dir, write_secrets(tmp_path))
    assert (archived.new_files, archived.new_lines, verified, checked.height) == (1, 0, 0, 0)


def test_no_trailing_newline_loses_no_line(tmp_path):
    lines = [make_callback(flat_body(event_id="evt_1")), make_callback(flat_body(event_id="evt_2", sequence=2))]
    folder = tmp_path / "landing" / "callbacks"
    folder.mkdir(parents=True)
    (folder / "c.jsonl").write_text("\n".join(lines), "utf-8")
    _, _, checked = ingest(tmp_path / "home", tmp_path / "landing", write_secrets(tmp_path))
    assert checked["error_code"].to_list() == [None, None]


def test_signature_verdict_belongs_to_its_own_line_not_its_file_name(tmp_path):
    """Two archived versions of callbacks/c.jsonl pending at once (archive ran, verify did not)."""
    good = make_callback(flat_body(event_id="evt_good"))
    forged = make_callback(flat_body(event_id="evt_forged", amount_minor=999_999), sign_with=GAMMA_SECRET)
    landing_dir = write_landing(tmp_path, {"c.jsonl": [good]})
    secrets_path = write_secrets(tmp_path)
    with Warehouse(tmp_path / "home").connect() as con:
        archive_landing(con, landing_dir)
        write_landing(tmp_path, {"c.jsonl": [forged]})  # a new version under the same name
        archive_landing(con, landing_dir)
    _, _, checked = ingest(tmp_path / "home", landing_dir, secrets_path)
    verdicts = dict(zip(checked["event_id"].to_list(), checked["error_code"].to_list(), strict=True))
    assert checked.height == 2
    forged_row = checked.filter(pl.col("amount_minor") == 999_999)
    assert forged_row.height == 0, verdicts
    assert checked["error_code"].to_list().count(errors.SIGNATURE_MISMATCH) == 1


def test_signature_verification_is_per_line_in_one_file(tmp_path):
    """Line n's verdict never leaks to line n of another file verified in the same pass."""
    good = make_callback(flat_body(event_id="evt_good"))
    forged = make_callback(flat_body(event_id="evt_forged"), sign_with=GAMMA_SECRET)
    checked, _ = run_lines(tmp_path, {"a.jsonl": [good], "b.jsonl": [forged]})
    assert checked["error_code"].to_list() == [None, errors.SIGNATURE_MISMATCH]


def test_converge_is_a_function_of_checked_rows(batch):
    checked, result = batch
    again = converge(checked.reverse())
    assert again.state.equals(result.state)
    assert again.quarantine.equals(result.quarantine)


def test_an_empty_new_file_is_recorded_with_zero_lines(tmp_path):
    landing_dir = write_landing(tmp_path, {"a.jsonl": [make_callback(flat_body())], "b_empty.jsonl": []})
    archived, verified, _ = ingest(tmp_path / "home", landing_dir, write_secrets(tmp_path))
    assert (archived.new_files, archived.new_lines, archived.skipped_files, verified) == (2, 1, 0, 1)
    with Warehouse(tmp_path / "home").connect(read_only=True) as con:
        files = con.sql("SELECT source_file, lines FROM landing_files ORDER BY source_file").fetchall()
    assert files == [("callbacks/a.jsonl", 1), ("callbacks/b_empty.jsonl", 0)]


def test_a_file_of_many_batches_is_archived_in_line_order(tmp_path):
    """Framed on the helper thread in ~4 MiB batches and appended here: the lines of a
    file larger than several batches arrive numbered and in file order."""
    line = (make_callback(flat_body()) + "\n").encode("utf-8")
    copies = 3 * BATCH_BYTES // len(line) + 1
    folder = tmp_path / "landing" / "callbacks"
    folder.mkdir(parents=True)
    (folder / "big.jsonl").write_bytes(line * copies)
    with Warehouse(tmp_path / "home").connect() as con:
        archived = archive_landing(con, tmp_path / "landing")
        numbers = con.sql("SELECT line_no FROM landing_lines").pl()["line_no"]
    assert (archived.new_files, archived.new_lines) == (1, copies)
    assert numbers.to_list() == list(range(1, copies + 1))
