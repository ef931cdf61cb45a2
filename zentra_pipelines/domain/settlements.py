"""Provider settlement reports (contract 2.4): one CSV per batch, judged line by line.

Input is the framed archive of ``settlements/*.csv`` (one row per physical line:
source_file, file_sha256, line_no, text, frame_error, frame_detail). Output is one
row per accepted settlement and one quarantine row per rejected *data* line, so for
every file ``data lines = accepted copies + quarantined``; line 1 of a file is its
header and is not a row (an empty file has none).

Rules, in the order they are judged (the first failing rule names the code):

1. a line that failed framing (too large, not UTF-8, NUL) keeps its framing code;
2. the file's line 1 must be the contract header (``HEADER_PATTERN``: a UTF-8 BOM, a
   trailing ``\\r`` and RFC 4180 quotes around a name are tolerated, nothing else: no
   reordering, no spaces, no other case) or every data row of the file is
   ``header_mismatch`` (its columns cannot be trusted). Line 1 is the file's header line,
   not a row, when it is readable and holds no digit (``is_header_line``): every
   settlement row holds some (amounts, settled_at), so a line 1 with a digit may be a row
   (a file without a header; a file whose lines end in a bare ``\\r`` frames as one
   line) and is quarantined with the rest, never dropped as a header;
3. a blank line, unreadable RFC 4180 quoting, a field count other than 9, or the header
   repeated on a later line (two reports concatenated) is ``csv_malformed``. A line
   ending in ``\\r`` (CRLF files) is read without it. Lines are framed on ``\\n``, so a
   quoted field spanning lines is malformed on both halves;
4. an empty non-amount field is ``missing_field``;
5. provider, provider_ref, tenant_id, batch_id must be contract identifiers
   (``invalid_identifier``);
6. settled_at is ISO 8601 with ``Z`` or a ``±HH:MM`` offset, seconds optionally with
   1-6 fractional digits, or a bare calendar date ``YYYY-MM-DD``. A bare date is the
   settlement's value date and is read as 00:00:00 UTC of that day (providers report
   value dates; UTC is the contract's zone, so the row lands in that day's packet).
   A local time without offset is ambiguous and refused (``invalid_timestamp``);
7. amounts are text (CSV has no number type): ``^-?[0-9]+$`` within signed 64-bit is
   an amount (RFC 4180 quotes around it are transport, not a string type). Empty is
   ``amount_missing``; a decimal or exponent (``1250.0``, ``1e3``) ``amount_float``;
   ``true``/``false`` ``amount_boolean``; an integer beyond 64 bits
   ``amount_out_of_range``; any other text ``amount_string``. Never coerced;
8. currency must be ISO 4217 alpha-3 (``currency_unknown``);
9. ``net_minor`` must equal ``gross_minor - fee_minor`` exactly (``net_mismatch``).

Then duplicates by (tenant_id, provider, provider_ref): copies with identical content
(all nine fields, settled_at compared as an instant) collapse into one row with
``copies``; different contents are a ``settlement_conflict``: every copy is
quarantined, none wins, and the key is returned in ``conflicts`` so reconciliation
reports ``settlement_mismatch``. A ref settled in two different batches is therefore a
conflict too: a double settlement is exactly what finance must look at.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl

from zentra_pipelines.domain import errors, frames
from zentra_pipelines.domain.dedupe import quarantine_all, requarantined, split_conflicts
from zentra_pipelines.domain.money import INT64_MAX, INT64_MIN, is_currency, is_identifier

HEADER = "provider,provider_ref,tenant_id,currency,gross_minor,fee_minor,net_minor,settled_at,batch_id"
FIELDS = HEADER.split(",")
#: Line 1 when it is the header (a full match): each name bare or in RFC 4180 quotes, after
#: an optional UTF-8 BOM, before an optional CR. Literal characters only, so Python's ``re``
#: and DuckDB's RE2 (sql/count_reconcile_source_rows.sql, bound as a parameter) read it alike.
HEADER_PATTERN = "\ufeff?" + ",".join(f'(?:{name}|"{name}")' for name in FIELDS) + "\r?"
ID_FIELDS = ("provider", "provider_ref", "tenant_id", "batch_id")
AMOUNT_FIELDS = ("gross_minor", "fee_minor", "net_minor")
KEY = ["tenant_id", "provider", "provider_ref"]

SETTLEMENT_SCHEMA = {
    "tenant_id": pl.String,
    "provider": pl.String,
    "provider_ref": pl.String,
    "currency": pl.String,
    "gross_minor": pl.Int64,
    "fee_minor": pl.Int64,
    "net_minor": pl.Int64,
    "settled_at": pl.Datetime("us"),
    "batch_id": pl.String,
    "source_file": pl.String,
    "copies": pl.UInt32,
}
QUARANTINE_SCHEMA = {
    "tenant_id": pl.String,
    "source_file": pl.String,
    "line_no": pl.Int64,
    "error_code": pl.String,
    "detail": pl.String,
    "settled_at": pl.Datetime("us"),
    "file_sha256": pl.String,
}
CONFLICT_SCHEMA = {
    "tenant_id": pl.String,
    "provider": pl.String,
    "provider_ref": pl.String,
    "contents": pl.UInt32,
    "copies": pl.UInt32,
    "first_settled_at": pl.Datetime("us"),
}
_ROW_SCHEMA = {
    "source_file": pl.String,
    "file_sha256": pl.String,
    "line_no": pl.Int64,
    "tenant_id": pl.String,
    "provider": pl.String,
    "provider_ref": pl.String,
    "currency": pl.String,
    "gross_minor": pl.Int64,
    "fee_minor": pl.Int64,
    "net_minor": pl.Int64,
    "settled_at": pl.Datetime("us"),
    "batch_id": pl.String,
    "error_code": pl.String,
    "detail": pl.String,
    "content_hash": pl.String,
}

_INTEGER_RE = re.compile(r"-?[0-9]+")
#: a decimal point or an exponent: 1250.0, .5, 1e3, -1.5E+3 (a bare "+5" is text, not a float)
_FLOAT_RE = re.compile(r"[+-]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)")
_TIMESTAMP_RE = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_DATE_RE = re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])")


@dataclass(frozen=True)
class SettlementParse:
    settlements: pl.DataFrame  # SETTLEMENT_SCHEMA, one row per (tenant_id, provider, provider_ref)
    quarantine: pl.DataFrame  # QUARANTINE_SCHEMA, one row per rejected data line
    conflicts: pl.DataFrame  # CONFLICT_SCHEMA, one row per key reported with several contents


def parse_settlements(lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(settlements, quarantine) of framed settlement lines; see ``judge_settlements``."""
    judged = judge_settlements(lines)
    return judged.settlements, judged.quarantine


def settlement_conflicts(lines: pl.DataFrame) -> pl.DataFrame:
    """Keys reported with different contents (for reconciliation's settlement_mismatch)."""
    return judge_settlements(lines).conflicts


def judge_settlements(lines: pl.DataFrame) -> SettlementParse:
    return settle_rows(judge_lines(lines))


#: The columns ``judge_lines`` returns (a row per data line), for callers that keep them.
ROW_SCHEMA = _ROW_SCHEMA


def settle_rows(rows: pl.DataFrame) -> SettlementParse:
    """``judge_settlements`` from the judged rows of every line (``judge_lines``), which a
    caller may have kept per file: a file's rows depend on that file's lines only."""
    ok = rows.filter(pl.col("error_code").is_null())
    split = split_conflicts(ok, KEY)

    settlements = (
        split.accepted.sort(KEY + ["source_file", "line_no", "file_sha256"])
        .group_by(KEY, maintain_order=True)
        .agg(
            pl.col("currency", "gross_minor", "fee_minor", "net_minor", "settled_at", "batch_id").first(),
            pl.col("source_file").min(),
            pl.len().alias("copies"),
        )
        .select([pl.col(c).cast(t) for c, t in SETTLEMENT_SCHEMA.items()])
        .sort(KEY)
    )
    conflicts = (
        split.conflict_lines.group_by(KEY)
        .agg(
            pl.col("contents").first(),
            pl.len().alias("copies"),
            pl.col("settled_at").min().alias("first_settled_at"),
        )
        .select([pl.col(c).cast(t) for c, t in CONFLICT_SCHEMA.items()])
        .sort(KEY)
    )
    columns = list(QUARANTINE_SCHEMA)
    quarantine = quarantine_all(
        rows, split, errors.SETTLEMENT_CONFLICT,
        pl.format("provider_ref {} of provider {} is reported with {} different contents; no copy wins",
                  "provider_ref", "provider", "contents"),
        columns,
    ).select([pl.col(c).cast(t) for c, t in QUARANTINE_SCHEMA.items()])
    return SettlementParse(settlements=settlements, quarantine=quarantine, conflicts=conflicts)


def settle_changes(
    rows: pl.DataFrame, quarantine: pl.DataFrame, conflicts: pl.DataFrame
) -> tuple[SettlementParse, pl.DataFrame]:
    """What ``settle_rows`` of every judged row gives, from its published result over
    every row but those of some new files (``quarantine``, ``conflicts`` and the
    settlements table) and ``rows``: every row of the new files and every ok row of each
    key an ok row of theirs carries (``intake.changed_lines``). Only those keys can change
    (a key's copies and conflict are decided by its own rows, all of them in ``rows``).

    Returns (the settlements of those keys, which replace the published rows of the keys,
    with the whole quarantine and conflicts in ``settle_rows``' order; the keys).
    """
    ok = rows.filter(pl.col("error_code").is_null())
    part = settle_rows(rows)
    redone = ok.select(KEY).unique()
    published = [frame.select([pl.col(c).cast(t) for c, t in schema.items()])
                 for frame, schema in ((quarantine, QUARANTINE_SCHEMA), (conflicts, CONFLICT_SCHEMA))]
    return SettlementParse(
        settlements=part.settlements,
        quarantine=requarantined(published[0], ok, part.quarantine),
        conflicts=pl.concat([published[1].join(redone, on=KEY, how="anti"), part.conflicts]).sort(KEY),
    ), redone


def judge_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """One judged row per data line (header lines dropped), before duplicate handling.

    Two paths, one verdict. A *plain* line (under a valid header, no quote, no stray
    ``\\r``, exactly nine comma-separated fields) whose every field passes its rule is
    accepted by vectorised Polars expressions. Every other line (a quote, a bad field,
    an offset or date-only timestamp, a framing error...) goes through ``_judge_line``,
    the reference rules, one by one. The fast path only ever *accepts*, and only lines
    the reference would accept with the same values, so the result is the reference's.
    """
    ordered = lines.select(
        "source_file", "file_sha256", "line_no", "text", "frame_error", "frame_detail"
    ).sort("source_file", "file_sha256", "line_no")
    file_key = ["source_file", "file_sha256"]
    headers = ordered.filter(pl.col("line_no") == 1).select(
        *file_key,
        pl.when(pl.col("frame_error").is_null()).then(pl.col("text")).alias("_header"),
        pl.lit(True).alias("_has_header"),
    )
    headers = headers.with_columns(
        _header_ok=pl.Series([header_ok(h) for h in headers["_header"].to_list()], dtype=pl.Boolean)
    )
    header_line = (pl.col("line_no") == 1) & pl.col("frame_error").is_null() & is_header_line(pl.col("text"))
    data = (
        ordered.filter(~header_line.fill_null(False))
        .join(headers, on=file_key, how="left", nulls_equal=True)
        .with_columns(pl.col("_has_header").fill_null(False), pl.col("_header_ok").fill_null(False))
    )
    body = pl.col("text").str.strip_suffix("\r")
    data = data.with_columns(
        _plain=(
            pl.col("frame_error").is_null() & pl.col("_header_ok") & pl.col("text").is_not_null()
            & (body != "") & ~body.str.contains('"', literal=True) & ~body.str.contains("\r", literal=True)
            & (body.str.count_matches(",", literal=True) == len(FIELDS) - 1)
        ).fill_null(False)
    )
    plain = data.filter(pl.col("_plain"))
    fields = plain.select(
        "source_file", "file_sha256", "line_no",
        pl.col("text").str.strip_suffix("\r").str.split_exact(",", len(FIELDS) - 1)
        .struct.rename_fields(FIELDS).alias("_f"),
    ).unnest("_f")
    fast = _accept_plain(fields)
    fast_keys = fast.select("source_file", "file_sha256", "line_no")
    rest = data.join(fast_keys, on=["source_file", "file_sha256", "line_no"], how="anti")
    slow_rows = [
        (source_file, sha, line_no, *_judge_line(has_header, header, text, frame_error, frame_detail))
        for source_file, sha, line_no, text, frame_error, frame_detail, header, has_header in rest.select(
            "source_file", "file_sha256", "line_no", "text", "frame_error", "frame_detail", "_header", "_has_header"
        ).iter_rows()
    ]
    slow = pl.DataFrame(slow_rows, schema=_ROW_SCHEMA, orient="row")
    return pl.concat([fast.select(list(_ROW_SCHEMA)).cast(_ROW_SCHEMA), slow], how="vertical").sort(
        "source_file", "file_sha256", "line_no"
    )


#: settled_at in the one spelling the fast path reads: UTC 'Z', 0-6 fraction digits.
_FAST_TS = (
    r"^([0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01]))"
    r"T((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])(\.[0-9]{1,6})?Z$"
)
_FAST_INT = r"^-?[0-9]+$"
_FAST_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


def _accept_plain(fields: pl.DataFrame) -> pl.DataFrame:
    """The plain lines every rule accepts, typed exactly as ``_judge_line`` types them."""
    from zentra_pipelines.domain.money import currency_exponents

    parts = pl.col("settled_at").str.extract_groups(_FAST_TS)
    frac = pl.coalesce(parts.struct.field("3"), pl.lit(".")).str.pad_end(7, "0")
    settled = pl.concat_str([parts.struct.field("1"), pl.lit(" "), parts.struct.field("2"), frac]).str.strptime(
        pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False
    )
    amount = {name: pl.col(name).str.to_integer(strict=False, dtype=pl.Int64) for name in AMOUNT_FIELDS}
    typed = fields.with_columns(
        _settled=settled,
        **{f"_{name}": expr for name, expr in amount.items()},
    )
    ok = (
        pl.all_horizontal([pl.col(c).str.contains(_FAST_ID) for c in ID_FIELDS])
        & pl.col("currency").is_in(sorted(currency_exponents()))
        & pl.col("_settled").is_not_null()
        & pl.all_horizontal([pl.col(n).str.contains(_FAST_INT) & pl.col(f"_{n}").is_not_null() for n in AMOUNT_FIELDS])
        & (pl.col("_net_minor").cast(pl.Int128)
           == pl.col("_gross_minor").cast(pl.Int128) - pl.col("_fee_minor").cast(pl.Int128))
    ).fill_null(False)
    accepted = typed.filter(ok)
    content = pl.concat_str(
        [pl.col("provider"), pl.col("provider_ref"), pl.col("tenant_id"), pl.col("currency"),
         pl.col("_gross_minor").cast(pl.String), pl.col("_fee_minor").cast(pl.String),
         pl.col("_net_minor").cast(pl.String), pl.col("_settled").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"),
         pl.col("batch_id")],
        separator="|",
    )
    return accepted.select(
        "source_file", "file_sha256", "line_no", "tenant_id", "provider", "provider_ref", "currency",
        pl.col("_gross_minor").alias("gross_minor"), pl.col("_fee_minor").alias("fee_minor"),
        pl.col("_net_minor").alias("net_minor"), pl.col("_settled").alias("settled_at"), "batch_id",
        pl.lit(None, pl.String).alias("error_code"), pl.lit(None, pl.String).alias("detail"),
        frames.sha256_hex_of(content).alias("content_hash"),
    )


def header_ok(text: str | None) -> bool:
    return text is not None and _HEADER_RE.fullmatch(text) is not None


_HEADER_RE = re.compile(HEADER_PATTERN)


def is_header_line(text: pl.Expr) -> pl.Expr:
    """Whether a file's line 1 is its header line rather than a row: it holds no digit
    (sql/count_reconcile_source_rows.sql counts rows by the same rule)."""
    return ~text.str.contains("[0-9]")


def parse_timestamp(value: str) -> datetime | None:
    """settled_at as naive UTC (microseconds), or None when it is not accepted."""
    try:
        if _TIMESTAMP_RE.fullmatch(value):
            return datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None)
        if _DATE_RE.fullmatch(value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time())
    except (ValueError, OverflowError):  # Feb 30; an offset pushing year 1 or 9999 out of range
        return None
    return None


def classify_amount(value: str) -> tuple[str | None, int | None]:
    """(error code, value): the amount rules of the money model applied to CSV text."""
    if value == "":
        return errors.AMOUNT_MISSING, None
    if _INTEGER_RE.fullmatch(value):
        # int() refuses strings over 4300 digits (CPython's guard); 64 bits never need 20+ digits
        # once leading zeros are gone.
        digits = value.lstrip("-").lstrip("0")
        if len(digits) > 19:
            return errors.AMOUNT_OUT_OF_RANGE, None
        number = int(digits or "0") * (-1 if value.startswith("-") else 1)
        if INT64_MIN <= number <= INT64_MAX:
            return None, number
        return errors.AMOUNT_OUT_OF_RANGE, None
    if _FLOAT_RE.fullmatch(value):
        return errors.AMOUNT_FLOAT, None
    if value.lower() in ("true", "false"):
        return errors.AMOUNT_BOOLEAN, None
    return errors.AMOUNT_STRING, None


def _show(value: str, limit: int = 64) -> str:
    """A value quoted for a detail message: control characters escaped, length bounded."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


_NOTHING = (None,) * 9


def _judge_line(
    has_header: bool, header: str | None, text: str | None, frame_error: str | None, frame_detail: str | None
) -> tuple:
    """(tenant_id, provider, provider_ref, currency, gross, fee, net, settled_at, batch_id,
    error_code, detail, content_hash) of one data line."""
    if frame_error is not None:
        return (*_NOTHING, frame_error, frame_detail, None)
    if not header_ok(header):
        if not has_header:
            why = "the file has no readable header line"
        elif header is None:
            why = "the file's header line is unreadable"
        else:
            why = f"the file's header is {_show(header, 200)}"
            if "\r" in header.removesuffix("\r"):
                why += " (its lines end in a bare CR, so the file reads as one line: end lines in LF or CRLF)"
        return (*_NOTHING, errors.HEADER_MISMATCH, f"{why}, not the contract header {HEADER!r}", None)

    assert text is not None  # framing leaves text null only with a frame_error
    body = text[:-1] if text.endswith("\r") else text
    if body == "":
        return (*_NOTHING, errors.CSV_MALFORMED, "blank line", None)
    try:
        parsed = list(csv.reader([body], strict=True))
    except csv.Error as exc:
        return (*_NOTHING, errors.CSV_MALFORMED, f"unreadable CSV: {exc}", None)
    if len(parsed) != 1:  # cannot happen for one physical line, but never trust it silently
        return (*_NOTHING, errors.CSV_MALFORMED, f"the line holds {len(parsed)} CSV records", None)
    fields = parsed[0]
    if len(fields) != len(FIELDS):
        return (*_NOTHING, errors.CSV_MALFORMED, f"expected {len(FIELDS)} fields, got {len(fields)}", None)

    if _HEADER_RE.fullmatch(body):
        # two reports concatenated: the second header is no settlement (it was judged as
        # one and quarantined as invalid_timestamp with tenant_id 'tenant_id')
        return (*_NOTHING, errors.CSV_MALFORMED, "a repeated header line inside the file", None)
    row = dict(zip(FIELDS, fields, strict=True))
    tenant_id = row["tenant_id"] if is_identifier(row["tenant_id"]) else None
    settled_at = parse_timestamp(row["settled_at"])

    def reject(code: str, detail: str) -> tuple:
        return (tenant_id, None, None, None, None, None, None, settled_at, None, code, detail, None)

    empty = [name for name in FIELDS if name not in AMOUNT_FIELDS and row[name] == ""]
    if empty:
        return reject(errors.MISSING_FIELD, f"empty field(s): {', '.join(empty)}")
    bad_ids = [name for name in ID_FIELDS if not is_identifier(row[name])]
    if bad_ids:
        shown = ", ".join(f"{name}={_show(row[name])}" for name in bad_ids)
        return reject(errors.INVALID_IDENTIFIER, f"not a contract identifier: {shown}")
    if settled_at is None:
        return reject(
            errors.INVALID_TIMESTAMP,
            f"settled_at {_show(row['settled_at'])} is not ISO 8601 with Z or an offset, nor a date YYYY-MM-DD",
        )
    amounts: dict[str, int] = {}
    for name in AMOUNT_FIELDS:
        code, number = classify_amount(row[name])
        if code is not None:
            return reject(code, f"{name} {_show(row[name])} is not an integer amount of minor units")
        assert number is not None
        amounts[name] = number
    if not is_currency(row["currency"]):
        return reject(errors.CURRENCY_UNKNOWN, f"currency {_show(row['currency'])} is not an ISO 4217 code")
    gross, fee, net = amounts["gross_minor"], amounts["fee_minor"], amounts["net_minor"]
    if net != gross - fee:  # Python integers: exact, no overflow
        return reject(
            errors.NET_MISMATCH, f"net_minor {net} != gross_minor {gross} - fee_minor {fee} = {gross - fee}"
        )

    # unambiguous: every part is a validated identifier, ISO code, integer or ISO timestamp (no '|')
    content = "|".join(
        [row["provider"], row["provider_ref"], row["tenant_id"], row["currency"], str(gross), str(fee), str(net),
         settled_at.isoformat(timespec="microseconds"), row["batch_id"]]
    )
    return (
        tenant_id, row["provider"], row["provider_ref"], row["currency"], gross, fee, net, settled_at,
        row["batch_id"], None, None, hashlib.sha256(content.encode("utf-8")).hexdigest(),
    )
