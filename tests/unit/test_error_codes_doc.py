"""The quarantine code catalogue is a contract: documented, unique, and pinned."""

from __future__ import annotations

import re
from pathlib import Path

from zentra_pipelines.domain import errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "error-codes.md"

#: Renaming or removing a code breaks operators' queries: this set only ever grows.
PINNED = {
    "line_too_large", "invalid_utf8", "nul_byte", "malformed_json", "not_an_object", "duplicate_json_key",
    "missing_field", "invalid_field_type", "invalid_identifier", "invalid_timestamp",
    "amount_float", "amount_string", "amount_boolean", "amount_missing", "amount_invalid",
    "amount_out_of_range", "currency_unknown",
    "unknown_tenant", "header_missing", "signature_malformed", "signature_mismatch", "timestamp_invalid",
    "replay_window", "body_malformed_json", "unsupported_api_version", "unknown_event_type",
    "sequence_invalid", "event_conflict",
    "kind_unknown", "corridor_invalid", "intent_conflict",
    "posting_conflict", "journal_unbalanced", "account_unknown", "tenant_mismatch",
    "csv_malformed", "header_mismatch", "net_mismatch", "settlement_conflict",
    "status_code_invalid", "attempt_invalid", "latency_invalid", "delivery_conflict",
}


def test_doc_is_generated_from_the_catalogue_byte_for_byte():
    assert DOC.read_bytes() == errors.render_markdown().encode("utf-8")


def test_codes_are_pinned():
    assert set(errors.CATALOGUE) == PINNED


def test_codes_are_unique_snake_case_and_documented():
    constants = {name: value for name, value in vars(errors).items() if name.isupper() and isinstance(value, str)}
    values = list(constants.values())
    assert len(values) == len(set(values)), "two constants share one code"
    assert set(values) == set(errors.CATALOGUE), "a code constant is missing from the catalogue (or vice versa)"
    for name, code in constants.items():
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", code), code
        assert name == code.upper(), f"{name} = {code!r}"
    for code, (scope, meaning) in errors.CATALOGUE.items():
        assert scope.strip() and meaning.strip(), code
    rows = [line for line in errors.render_markdown().splitlines() if line.startswith("| `")]
    assert [re.match(r"\| `([^`]+)`", r).group(1) for r in rows] == list(errors.CATALOGUE)
