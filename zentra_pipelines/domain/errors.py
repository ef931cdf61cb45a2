"""The quarantine code catalogue: stable, documented, pinned by tests.

A code is a contract with operators and auditors (``callbacks_quarantine.error_code``
and friends): never rename one, only add. ``docs/error-codes.md`` is generated from
this table and a test keeps the two identical.
"""

from __future__ import annotations

# --- framing: the line itself -------------------------------------------------
LINE_TOO_LARGE = "line_too_large"
INVALID_UTF8 = "invalid_utf8"
NUL_BYTE = "nul_byte"
MALFORMED_JSON = "malformed_json"
NOT_AN_OBJECT = "not_an_object"
DUPLICATE_JSON_KEY = "duplicate_json_key"
MISSING_FIELD = "missing_field"
INVALID_FIELD_TYPE = "invalid_field_type"
INVALID_IDENTIFIER = "invalid_identifier"
INVALID_TIMESTAMP = "invalid_timestamp"
# --- money --------------------------------------------------------------------
AMOUNT_FLOAT = "amount_float"
AMOUNT_STRING = "amount_string"
AMOUNT_BOOLEAN = "amount_boolean"
AMOUNT_MISSING = "amount_missing"
AMOUNT_INVALID = "amount_invalid"
AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
CURRENCY_UNKNOWN = "currency_unknown"
# --- callbacks: trust -----------------------------------------------------------
UNKNOWN_TENANT = "unknown_tenant"
HEADER_MISSING = "header_missing"
SIGNATURE_MALFORMED = "signature_malformed"
SIGNATURE_MISMATCH = "signature_mismatch"
TIMESTAMP_INVALID = "timestamp_invalid"
REPLAY_WINDOW = "replay_window"
BODY_MALFORMED_JSON = "body_malformed_json"
UNSUPPORTED_API_VERSION = "unsupported_api_version"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
SEQUENCE_INVALID = "sequence_invalid"
EVENT_CONFLICT = "event_conflict"
# --- intents --------------------------------------------------------------------
KIND_UNKNOWN = "kind_unknown"
CORRIDOR_INVALID = "corridor_invalid"
INTENT_CONFLICT = "intent_conflict"
# --- ledger postings (source database) -------------------------------------------
POSTING_CONFLICT = "posting_conflict"
JOURNAL_UNBALANCED = "journal_unbalanced"
ACCOUNT_UNKNOWN = "account_unknown"
TENANT_MISMATCH = "tenant_mismatch"
# --- settlements ----------------------------------------------------------------
CSV_MALFORMED = "csv_malformed"
HEADER_MISMATCH = "header_mismatch"
NET_MISMATCH = "net_mismatch"
SETTLEMENT_CONFLICT = "settlement_conflict"
# --- deliveries -----------------------------------------------------------------
STATUS_CODE_INVALID = "status_code_invalid"
ATTEMPT_INVALID = "attempt_invalid"
LATENCY_INVALID = "latency_invalid"
DELIVERY_CONFLICT = "delivery_conflict"

#: code -> (applies to, meaning). Order is the documentation order.
CATALOGUE: dict[str, tuple[str, str]] = {
    LINE_TOO_LARGE: ("all line inputs", "The line is longer than the 1 MiB line limit; it is archived by hash, not parsed."),
    INVALID_UTF8: ("all line inputs", "The line is not valid UTF-8."),
    NUL_BYTE: ("all line inputs", "The line contains a NUL byte."),
    MALFORMED_JSON: ("jsonl inputs", "The line is not one valid RFC 8259 JSON value (truncated, trailing garbage, a trailing comma, "
                     "NaN or Infinity, ...)."),
    NOT_AN_OBJECT: ("jsonl inputs", "The line is valid JSON but not an object."),
    DUPLICATE_JSON_KEY: ("jsonl inputs, callback bodies", "An object repeats a key (callback header names in any case): parsers disagree on which value wins, so neither is trusted."),
    MISSING_FIELD: ("all inputs", "A required field is absent or null."),
    INVALID_FIELD_TYPE: ("all inputs", "A field has the wrong JSON type (e.g. headers not an object, body not a string)."),
    INVALID_IDENTIFIER: ("all inputs", "An identifier does not match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$."),
    INVALID_TIMESTAMP: ("all inputs", "A timestamp field is not an ISO 8601 UTC timestamp."),
    AMOUNT_FLOAT: ("all inputs", "The amount is a JSON number with a fraction or exponent (e.g. 1250.0): never coerced."),
    AMOUNT_STRING: ("all inputs", "The amount is a string (e.g. \"125000\"): never coerced."),
    AMOUNT_BOOLEAN: ("all inputs", "The amount is a boolean."),
    AMOUNT_MISSING: ("all inputs", "The amount is absent or null."),
    AMOUNT_INVALID: ("all inputs", "The amount is an array, object or unreadable value."),
    AMOUNT_OUT_OF_RANGE: ("all inputs", "The amount is an integer outside signed 64-bit."),
    CURRENCY_UNKNOWN: ("all inputs", "The currency is not an ISO 4217 alpha-3 code."),
    UNKNOWN_TENANT: ("callbacks", "No webhook secret is configured for the callback's tenant_id and provider."),
    HEADER_MISSING: ("callbacks", "webhook-id, webhook-timestamp or webhook-signature is absent (names match in any case, as in HTTP)."),
    SIGNATURE_MALFORMED: ("callbacks", "webhook-signature holds no well-formed 'v1,<base64>' entry."),
    SIGNATURE_MISMATCH: ("callbacks", "No v1 signature matches any secret of the callback's own tenant and provider (a forgery, or another tenant's secret)."),
    TIMESTAMP_INVALID: ("callbacks", "webhook-timestamp is not a whole number of Unix seconds."),
    REPLAY_WINDOW: ("callbacks", "|received_at - webhook-timestamp| > 300 s: a replay or a stale/future message."),
    BODY_MALFORMED_JSON: ("callbacks", "The signed body is not a JSON object (RFC 8259: no trailing comma, no NaN)."),
    UNSUPPORTED_API_VERSION: ("callbacks", "The body's api_version is not 2026-01-01 or 2026-06-01."),
    UNKNOWN_EVENT_TYPE: ("callbacks", "The body's type is not one of the contract's event types."),
    SEQUENCE_INVALID: ("callbacks", "sequence is not a non-negative 64-bit integer."),
    EVENT_CONFLICT: ("callbacks", "The same event_id arrived with different content (the canonical event's fields: "
                     "the two api_versions of one event agree): every copy is quarantined, neither wins."),
    KIND_UNKNOWN: ("intents", "kind is not payment, transfer, payout or card."),
    CORRIDOR_INVALID: ("intents", "corridor is not CUR:RAIL:CUR with ISO 4217 currencies, its first "
                 "currency the intent's currency and its last the ledger_currency."),
    INTENT_CONFLICT: ("intents", "The same intent_id arrived with a different body (its contract fields differ): "
                      "every copy is quarantined."),
    POSTING_CONFLICT: ("ledger postings", "The same posting_id was read twice with different content."),
    JOURNAL_UNBALANCED: ("ledger postings", "The journal's postings do not sum to zero per currency: the whole journal is quarantined."),
    ACCOUNT_UNKNOWN: ("ledger postings", "The posting names an account absent from the accounts table."),
    TENANT_MISMATCH: ("ledger postings", "The posting's tenant_id differs from its account's tenant."),
    CSV_MALFORMED: ("settlements", "The row is not one well-formed CSV record with the header's fields (wrong field count, blank line, broken quoting), or is the header repeated inside the file."),
    HEADER_MISMATCH: ("settlements", "The file's line 1 is not the contract header (names bare or in RFC 4180 quotes):"
                                     " every row is quarantined, line 1 too when it holds a digit (it may be a row: no header, or lines ending in a bare CR)."),
    NET_MISMATCH: ("settlements", "net_minor != gross_minor - fee_minor."),
    SETTLEMENT_CONFLICT: ("settlements", "The same provider_ref is reported with different figures: every copy is quarantined."),
    STATUS_CODE_INVALID: ("deliveries", "status_code is neither null nor an integer 100..599."),
    ATTEMPT_INVALID: ("deliveries", "attempt is not a positive integer."),
    LATENCY_INVALID: ("deliveries", "latency_ms is not a non-negative integer (or null)."),
    DELIVERY_CONFLICT: ("deliveries", "The same delivery_id arrived with different content: every copy is quarantined."),
}


def render_markdown() -> str:
    """docs/error-codes.md, generated so the catalogue and its documentation never drift."""
    lines = [
        "# Quarantine error codes",
        "",
        "Every rejected input row lands in a `*_quarantine` table with one of these codes.",
        "Codes are stable: they are never renamed or reused, only added.",
        "The `detail` column explains the case in words and never contains a secret.",
        "",
        "| code | applies to | meaning |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{code}` | {scope} | {meaning} |" for code, (scope, meaning) in CATALOGUE.items()]
    return "\n".join(lines) + "\n"


def first_line(exc: BaseException, cap: int | None = 200) -> str:
    """An exception's first line, capped: enough to act on in a one-line error, never a
    dump of a statement or a traceback ("" for an exception without text)."""
    text = str(exc)
    return text.splitlines()[0][:cap] if text else ""
