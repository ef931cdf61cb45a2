"""Settlement CSV parsing (contract 2.4): every bad-input class with its exact code."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from zentra_pipelines import events_stage, ingest
from zentra_pipelines.adapters import landing
from zentra_pipelines.domain import errors
from zentra_pipelines.domain import settlements as st

HEADER = "provider,provider_ref,tenant_id,currency,gross_minor,fee_minor,net_minor,settled_at,batch_id"
ROW = "acme_pay,pr_001,t_alpha,EUR,125000,1250,123750,2026-11-24T10:00:00Z,b_2026_11_24"


def framed(files: dict[str, bytes]) -> pl.DataFrame:
    """The archive's framing of each file (the real framer, so NUL/UTF-8 arrive pre-flagged)."""
    frames = []
    for name, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        file = landing.LandingFile("settlements", f"settlements/{name}", Path("unused"), sha, len(data))
        frames.append(landing.frame_bytes(file, data))
    return pl.concat(frames).drop("raw")


def csv_file(*rows: str, header: str = HEADER, eol: str = "\n") -> bytes:
    return (eol.join([header, *rows]) + eol).encode("utf-8")


def judge(*rows: str, **kw) -> st.SettlementParse:
    return st.judge_settlements(framed({"a.csv": csv_file(*rows, **kw)}))


def codes(result: st.SettlementParse) -> list[str]:
    return result.quarantine["error_code"].to_list()


def only_code(row: str) -> str:
    result = judge(row)
    assert result.settlements.height == 0
    assert result.quarantine.height == 1
    return result.quarantine["error_code"][0]


def row(**changes: str) -> str:
    values = dict(zip(st.FIELDS, ROW.split(","), strict=True))
    values.update(changes)
    return ",".join(values[f] for f in st.FIELDS)


# ----------------------------------------------------------------- accepted rows ---


def test_valid_row_is_typed_exactly():
    result = judge(ROW)
    expected = pl.DataFrame(
        {
            "tenant_id": ["t_alpha"], "provider": ["acme_pay"], "provider_ref": ["pr_001"], "currency": ["EUR"],
            "gross_minor": [125000], "fee_minor": [1250], "net_minor": [123750],
            "settled_at": [datetime(2026, 11, 24, 10, 0)], "batch_id": ["b_2026_11_24"],
            "source_file": ["settlements/a.csv"], "copies": [1],
        },
        schema=st.SETTLEMENT_SCHEMA,
    )
    assert_frame_equal(result.settlements, expected)
    assert result.quarantine.height == 0
    assert result.conflicts.height == 0


def test_empty_file_has_no_rows():
    result = st.judge_settlements(framed({"empty.csv": b""}))
    assert result.settlements.schema == pl.Schema(st.SETTLEMENT_SCHEMA)
    assert result.quarantine.schema == pl.Schema(st.QUARANTINE_SCHEMA)
    assert (result.settlements.height, result.quarantine.height) == (0, 0)


def test_empty_lines_frame_keeps_schemas():
    empty = framed({"a.csv": b""}).clear()
    settlements, quarantine = st.parse_settlements(empty)
    assert settlements.schema == pl.Schema(st.SETTLEMENT_SCHEMA)
    assert quarantine.schema == pl.Schema(st.QUARANTINE_SCHEMA)
    assert st.settlement_conflicts(empty).schema == pl.Schema(st.CONFLICT_SCHEMA)


def test_header_only_file_has_no_rows():
    result = judge()
    assert (result.settlements.height, result.quarantine.height) == (0, 0)


def test_bom_and_crlf_are_tolerated():
    data = b"\xef\xbb\xbf" + csv_file(ROW, eol="\r\n")
    result = st.judge_settlements(framed({"a.csv": data}))
    assert result.settlements["net_minor"].to_list() == [123750]
    assert result.quarantine.height == 0


def test_rfc4180_quoted_fields_are_read_as_their_values():
    result = judge('"acme_pay","pr_001","t_alpha","EUR","125000","1250","123750","2026-11-24T10:00:00Z","b_1"')
    assert result.settlements.select("provider_ref", "gross_minor").row(0) == ("pr_001", 125000)


def test_offset_timestamp_is_converted_to_utc():
    result = judge(row(settled_at="2026-11-24T11:30:00.123456+01:30"))
    assert result.settlements["settled_at"].to_list() == [datetime(2026, 11, 24, 10, 0, 0, 123456)]


def test_date_only_settled_at_is_midnight_utc():
    result = judge(row(settled_at="2026-11-24"))
    assert result.settlements["settled_at"].to_list() == [datetime(2026, 11, 24)]


def test_negative_amounts_and_int64_bounds_are_amounts():
    result = judge(row(gross_minor="-9223372036854775808", fee_minor="0", net_minor="-9223372036854775808"))
    assert result.settlements["gross_minor"].to_list() == [-(2**63)]


def test_identical_copies_collapse_across_files():
    same_instant = row(settled_at="2026-11-24T11:00:00+01:00")
    result = st.judge_settlements(framed({"a.csv": csv_file(ROW), "b.csv": csv_file(same_instant, ROW)}))
    assert result.settlements.select("provider_ref", "source_file", "copies").rows() == [
        ("pr_001", "settlements/a.csv", 3)
    ]
    assert result.quarantine.height == 0


def test_received_equals_accepted_plus_quarantined():
    rows = [ROW, row(provider_ref="pr_002"), ROW, "", row(provider_ref="pr_003", net_minor="1"), "a,b"]
    lines = framed({"a.csv": csv_file(*rows)})
    result = st.judge_settlements(lines)
    data_lines = lines.filter(pl.col("line_no") > 1).height
    assert result.settlements["copies"].sum() + result.quarantine.height == data_lines == 6


# --------------------------------------------------------------- file framing ---


def test_header_mismatch_quarantines_every_row_of_the_file():
    reordered = "provider_ref,provider,tenant_id,currency,gross_minor,fee_minor,net_minor,settled_at,batch_id"
    lines = framed({"a.csv": csv_file(ROW, ROW, header=reordered), "b.csv": csv_file(ROW)})
    result = st.judge_settlements(lines)
    q = result.quarantine.select("tenant_id", "source_file", "line_no", "error_code", "settled_at")
    expected = pl.DataFrame(
        {
            "tenant_id": [None, None], "source_file": ["settlements/a.csv"] * 2, "line_no": [2, 3],
            "error_code": [errors.HEADER_MISMATCH] * 2, "settled_at": [None, None],
        },
        schema={c: st.QUARANTINE_SCHEMA[c] for c in q.columns},
    )
    assert_frame_equal(q, expected)
    assert result.settlements["source_file"].to_list() == ["settlements/b.csv"]


@pytest.mark.parametrize(
    "header",
    [
        HEADER + ",extra",
        HEADER.upper(),
        HEADER.replace(",", ", "),
        '"provider,"' + HEADER.split(",", 1)[1],
        "'provider'," + HEADER.split(",", 1)[1],
        HEADER + " ",
    ],
)
def test_header_must_be_exact(header):
    assert codes(judge(ROW, header=header)) == [errors.HEADER_MISMATCH]


@pytest.mark.parametrize(
    "header",
    [
        '"provider",' + HEADER.split(",", 1)[1],
        ",".join(f'"{name}"' for name in HEADER.split(",")),
    ],
)
def test_header_names_may_be_quoted(header):
    """RFC 4180 quotes around a name are transport (spreadsheets quote every field)."""
    result = judge(ROW, header=header)
    assert (result.settlements.height, result.quarantine.height) == (1, 0)


def test_unreadable_header_line_is_quarantined_with_its_framing_code():
    data = b"provider\xff" + csv_file(ROW)[len("provider"):]
    result = st.judge_settlements(framed({"a.csv": data}))
    assert result.quarantine.select("line_no", "error_code").rows() == [
        (1, errors.INVALID_UTF8), (2, errors.HEADER_MISMATCH)
    ]


def test_a_header_line_of_other_names_is_no_row():
    """A line 1 without a digit is a header (the wrong one): not counted as a row."""
    result = judge(ROW, header="Provider,Ref,Tenant,Currency,Gross,Fee,Net,Settled,Batch")
    assert result.quarantine.select("line_no", "error_code").rows() == [(2, errors.HEADER_MISMATCH)]


def test_a_file_without_header_loses_no_row():
    """Its line 1 holds digits, so it may be a row: quarantined with the others, not dropped."""
    result = st.judge_settlements(framed({"a.csv": (ROW + "\n" + ROW + "\n").encode()}))
    assert result.quarantine.select("line_no", "error_code").rows() == [
        (1, errors.HEADER_MISMATCH), (2, errors.HEADER_MISMATCH)
    ]


def test_bare_cr_line_ends_quarantine_the_one_framed_line():
    """A file whose lines end in a bare CR frames as one line: it is quarantined (not
    taken for a header and dropped), and the detail says why."""
    result = st.judge_settlements(framed({"a.csv": (HEADER + "\r" + ROW + "\r" + ROW + "\r").encode()}))
    assert result.quarantine.select("line_no", "error_code").rows() == [(1, errors.HEADER_MISMATCH)]
    assert "bare CR" in result.quarantine["detail"][0]


def test_nul_byte_line_keeps_its_framing_code():
    data = csv_file(ROW).replace(b"pr_001", b"pr\x00001")
    result = st.judge_settlements(framed({"a.csv": data}))
    assert result.quarantine.select("line_no", "error_code", "detail").rows() == [
        (2, errors.NUL_BYTE, "NUL byte at offset 11")
    ]


def test_invalid_utf8_line_keeps_its_framing_code():
    data = csv_file(ROW).replace(b"pr_001", b"pr_\xc3(1")
    assert codes(st.judge_settlements(framed({"a.csv": data}))) == [errors.INVALID_UTF8]


def test_blank_line_is_csv_malformed():
    result = judge(ROW, "", "\r")
    assert result.quarantine.select("line_no", "error_code", "detail").rows() == [
        (3, errors.CSV_MALFORMED, "blank line"),
        (4, errors.CSV_MALFORMED, "blank line"),
    ]


def test_a_header_repeated_inside_the_file_is_csv_malformed_not_a_row():
    result = judge(ROW, HEADER, '"' + HEADER.replace(",", '","') + '"')
    assert result.settlements.height == 1
    assert result.quarantine.select("line_no", "tenant_id", "error_code", "detail").rows() == [
        (3, None, errors.CSV_MALFORMED, "a repeated header line inside the file"),
        (4, None, errors.CSV_MALFORMED, "a repeated header line inside the file"),
    ]


def test_short_row_is_csv_malformed():
    result = judge("acme_pay,pr_001,t_alpha,EUR,125000,1250,123750,2026-11-24T10:00:00Z")
    assert result.quarantine.select("error_code", "detail").rows() == [
        (errors.CSV_MALFORMED, "expected 9 fields, got 8")
    ]


def test_long_row_is_csv_malformed():
    assert only_code(ROW + ",extra") == errors.CSV_MALFORMED


def test_broken_quoting_is_csv_malformed():
    assert only_code('acme_pay,"pr_001"x,t_alpha,EUR,125000,1250,123750,2026-11-24T10:00:00Z,b_1') == (
        errors.CSV_MALFORMED
    )


def test_unterminated_quote_is_csv_malformed():
    assert only_code('acme_pay,"pr_001,t_alpha,EUR,125000,1250,123750,2026-11-24T10:00:00Z,b_1') == (
        errors.CSV_MALFORMED
    )


# ------------------------------------------------------------------- fields ---


@pytest.mark.parametrize("field", ["provider", "provider_ref", "tenant_id", "currency", "settled_at", "batch_id"])
def test_empty_field_is_missing_field(field):
    assert only_code(row(**{field: ""})) == errors.MISSING_FIELD


@pytest.mark.parametrize(
    "value",
    ["'pr_001'", '"pr\'1"', "../etc", "pr/001", "pr 001", "pr\x01x", "-pr", "p" * 129, "pr_00é"],
)
def test_bad_provider_ref_is_invalid_identifier(value):
    assert only_code(row(provider_ref=value if "," not in value else f'"{value}"')) == errors.INVALID_IDENTIFIER


def test_quarantine_keeps_a_valid_tenant_and_a_parseable_settled_at():
    result = judge(row(batch_id="b/1"))
    assert result.quarantine.select("tenant_id", "error_code", "settled_at").rows() == [
        ("t_alpha", errors.INVALID_IDENTIFIER, datetime(2026, 11, 24, 10, 0))
    ]


def test_invalid_tenant_is_not_reported_as_the_row_tenant():
    result = judge(row(tenant_id="t_alpha/../t_beta"))
    assert result.quarantine.select("tenant_id", "error_code").rows() == [(None, errors.INVALID_IDENTIFIER)]


def test_detail_escapes_control_characters():
    result = judge(row(provider="ac\x1bme"))
    assert result.quarantine["detail"][0] == "not a contract identifier: provider='ac\\x1bme'"


@pytest.mark.parametrize(
    "value",
    ["2026-11-24T10:00:00", "2026-11-24 10:00:00Z", "2026-02-30T10:00:00Z", "2026-11-24T24:00:00Z",
     "2026-11-24T10:00:60Z", "2026-11-24T10:00:00.1234567Z", "24/11/2026", "1764064800", "2026-11-24t10:00:00z",
     "0001-01-01T00:00:00+01:00"],
)
def test_bad_settled_at_is_invalid_timestamp(value):
    result = judge(row(settled_at=value))
    assert result.quarantine.select("error_code", "settled_at").rows() == [(errors.INVALID_TIMESTAMP, None)]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1250.0", errors.AMOUNT_FLOAT),
        ("1e3", errors.AMOUNT_FLOAT),
        ("-1.5E+3", errors.AMOUNT_FLOAT),
        ("", errors.AMOUNT_MISSING),
        ("abc", errors.AMOUNT_STRING),
        ("+125000", errors.AMOUNT_STRING),
        (" 125000", errors.AMOUNT_STRING),
        ('"1,250"', errors.AMOUNT_STRING),
        ("true", errors.AMOUNT_BOOLEAN),
        ("9223372036854775808", errors.AMOUNT_OUT_OF_RANGE),
        ("-9223372036854775809", errors.AMOUNT_OUT_OF_RANGE),
        ("9" * 5000, errors.AMOUNT_OUT_OF_RANGE),
    ],
)
def test_amount_text_is_never_coerced(value, code):
    assert only_code(row(gross_minor=value)) == code


@pytest.mark.parametrize("value", ["EURO", "eur", "XXY", "€"])
def test_unknown_currency(value):
    assert only_code(row(currency=value)) == errors.CURRENCY_UNKNOWN


def test_net_mismatch_is_exact():
    result = judge(row(net_minor="123751"))
    assert result.quarantine.select("tenant_id", "error_code", "detail").rows() == [
        ("t_alpha", errors.NET_MISMATCH, "net_minor 123751 != gross_minor 125000 - fee_minor 1250 = 123750")
    ]


def test_net_mismatch_has_no_int64_overflow():
    # gross - fee overflows int64; net holds the wrapped value: still a mismatch
    assert only_code(row(gross_minor="9223372036854775807", fee_minor="-1", net_minor="-9223372036854775808")) == (
        errors.NET_MISMATCH
    )


# ------------------------------------------------------------------ conflicts ---


def test_conflicting_copies_are_all_quarantined():
    other = row(gross_minor="125001", net_minor="123751")
    result = st.judge_settlements(framed({"a.csv": csv_file(ROW, row(provider_ref="pr_002")), "b.csv": csv_file(other)}))
    assert result.settlements["provider_ref"].to_list() == ["pr_002"]
    assert result.quarantine.select("tenant_id", "source_file", "line_no", "error_code").rows() == [
        ("t_alpha", "settlements/a.csv", 2, errors.SETTLEMENT_CONFLICT),
        ("t_alpha", "settlements/b.csv", 2, errors.SETTLEMENT_CONFLICT),
    ]
    expected = pl.DataFrame(
        {
            "tenant_id": ["t_alpha"], "provider": ["acme_pay"], "provider_ref": ["pr_001"], "contents": [2],
            "copies": [2], "first_settled_at": [datetime(2026, 11, 24, 10, 0)],
        },
        schema=st.CONFLICT_SCHEMA,
    )
    assert_frame_equal(result.conflicts, expected)


def test_same_ref_in_another_batch_is_a_conflict():
    result = judge(ROW, row(batch_id="b_2026_11_25"))
    assert codes(result) == [errors.SETTLEMENT_CONFLICT] * 2


def test_same_ref_for_another_tenant_is_not_a_conflict():
    result = judge(ROW, row(tenant_id="t_beta"))
    assert result.settlements["tenant_id"].to_list() == ["t_alpha", "t_beta"]
    assert result.quarantine.height == 0


def test_conflict_does_not_depend_on_line_order():
    other = row(fee_minor="0", net_minor="125000")
    a = st.judge_settlements(framed({"a.csv": csv_file(ROW, other)}))
    b = st.judge_settlements(framed({"a.csv": csv_file(other, ROW)}))
    assert_frame_equal(a.conflicts, b.conflicts)
    assert a.settlements.height == b.settlements.height == 0


# -------------------------------------------------------------------- runner ---


def test_runner_reads_the_archive(tmp_path):
    (tmp_path / "settlements").mkdir()
    (tmp_path / "settlements" / "a.csv").write_bytes(csv_file(ROW, row(provider_ref="pr_002", net_minor="0")))
    con = duckdb.connect()
    ingest.archive_landing(con, tmp_path)
    result = events_stage.parse_settlement_lines(con)
    assert result.settlements["provider_ref"].to_list() == ["pr_001"]
    assert codes(result) == [errors.NET_MISMATCH]

