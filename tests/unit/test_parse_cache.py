"""The per-line parse cache of intake.parse_source: incremental parse == full parse."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from zentra_pipelines import events_stage, intake
from zentra_pipelines.adapters import landing
from zentra_pipelines.adapters.sql_files import ensure_macros, load_sql
from zentra_pipelines.domain.deliveries import accept_deliveries
from zentra_pipelines.domain.intents import accept_intents
from zentra_pipelines.domain.money import currency_exponents
from zentra_pipelines.domain.settlements import SettlementParse, judge_settlements

DELIVERY = {
    "delivery_id": "dlv_001", "event_id": "evt_001", "tenant_id": "t_1", "endpoint": "https://x.example/hook",
    "attempt": 1, "attempted_at": "2026-11-01T10:00:00Z", "status_code": 200, "error": None, "latency_ms": 120,
}


def delivery(**changes: object) -> bytes:
    return json.dumps({**DELIVERY, **changes}).encode()


def archive(con: duckdb.DuckDBPyConnection, source: str, name: str, *lines: bytes) -> None:
    """Frame one file for real and append its lines, as ingest.archive_landing does."""
    con.execute(load_sql("create_archive"))
    data = b"".join(line + b"\n" for line in lines)
    sha = hashlib.sha256(data).hexdigest()
    file = landing.LandingFile(source, f"{source}/{name}", Path("unused"), sha, len(data))
    con.register("frame", landing.frame_bytes(file, data).with_columns(source=pl.lit(source)))
    con.execute("INSERT INTO landing_lines BY NAME SELECT * EXCLUDE (raw), raw FROM frame")
    con.unregister("frame")


def full_parse(con: duckdb.DuckDBPyConnection, source: str, sql_name: str) -> pl.DataFrame:
    """The uncached reference: the SQL file over every archived line of the source."""
    con.register("iso_currencies", pl.DataFrame({"currency": sorted(currency_exponents())}))
    ensure_macros(con)
    view = {"deliveries": "delivery_lines", "intents": "intent_lines"}[source]
    con.register(view, con.sql("SELECT * FROM landing_lines").pl().filter(pl.col("source") == source))
    parsed = con.sql(load_sql(sql_name), params=intake.PARAMS).pl()
    con.unregister(view)
    return parsed.sort("source_file", "line_no", "file_sha256")


def parse_deliveries(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return intake.parse_source(con, "deliveries", "parse_deliveries", "delivery_lines")


def test_new_file_parsed_incrementally_equals_full_parse():
    con = duckdb.connect()
    archive(con, "deliveries", "b.jsonl", delivery(), b"{")
    parse_deliveries(con)
    archive(con, "deliveries", "a.jsonl", delivery(delivery_id="dlv_002", attempt=0), delivery())
    incremental = parse_deliveries(con)
    assert_frame_equal(incremental, full_parse(con, "deliveries", "parse_deliveries"))
    assert incremental["source_file"].to_list() == ["deliveries/a.jsonl"] * 2 + ["deliveries/b.jsonl"] * 2


def test_first_run_equals_full_parse_and_fills_the_cache():
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery(), b"[1]", delivery(status_code=99))
    parsed = parse_deliveries(con)
    assert_frame_equal(parsed, full_parse(con, "deliveries", "parse_deliveries"))
    assert con.sql("SELECT count(*) FROM deliveries_parsed").fetchall() == [(3,)]


def test_rerun_with_nothing_new_adds_nothing():
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery())
    first = parse_deliveries(con)
    assert_frame_equal(parse_deliveries(con), first)
    assert con.sql("SELECT count(*) FROM deliveries_parsed").fetchall() == [(1,)]


def test_cache_of_another_parser_version_is_parsed_again():
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery(), b"{")
    parse_deliveries(con)
    # as an older parser would have left it: another version and another verdict
    con.execute("UPDATE deliveries_parsed SET parser_version = 'old', error_code = 'stale'")
    parsed = parse_deliveries(con)
    assert_frame_equal(parsed, full_parse(con, "deliveries", "parse_deliveries"))
    assert con.sql("SELECT DISTINCT parser_version FROM deliveries_parsed").fetchall() == [
        (intake.parser_version("parse_deliveries"),)
    ]


def test_sources_have_separate_caches():
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery())
    archive(con, "intents", "a.jsonl", b'{"intent_id": "i_1"}')
    parse_deliveries(con)
    intents = intake.parse_source(con, "intents", "parse_intents", "intent_lines")
    assert_frame_equal(intents, full_parse(con, "intents", "parse_intents"))
    assert con.sql("SELECT count(*) FROM intents_parsed").fetchall() == [(1,)]
    assert con.sql("SELECT count(*) FROM deliveries_parsed").fetchall() == [(1,)]


def test_a_byte_order_mark_opening_a_jsonl_file_is_ignored_elsewhere_it_is_malformed():
    """RFC 8259 lets a parser ignore a BOM; only at the start of a file is it one."""
    bom = "\ufeff".encode()
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", bom + delivery(), bom + delivery(delivery_id="dlv_002"))
    parsed = parse_deliveries(con)
    assert parsed.select("line_no", "error_code").rows() == [(1, None), (2, "malformed_json")]


def test_a_trailing_comma_or_a_nan_is_not_json_though_duckdb_reads_them():
    """RFC 8259 has neither; a stricter reader downstream would see another line."""
    con = duckdb.connect()
    ok = delivery(error="nan, info ,}")  # the same characters inside a string are data
    archive(con, "deliveries", "a.jsonl", delivery()[:-1] + b",}", delivery(delivery_id="dlv_nan").replace(
        b'"latency_ms": 120', b'"latency_ms": NaN'), ok)
    parsed = parse_deliveries(con)
    assert parsed.select("line_no", "error_code").rows() == [(1, "malformed_json"), (2, "malformed_json"), (3, None)]
    archive(con, "intents", "a.jsonl", b'{"intent_id": "i_1",}', b'{"intent_id": "i_2", "amount_minor": Infinity}')
    intents = intake.parse_source(con, "intents", "parse_intents", "intent_lines")
    assert intents.select("line_no", "error_code").rows() == [(1, "malformed_json"), (2, "malformed_json")]


def test_strict_json_flags_nan_and_infinity_only_where_a_value_starts():
    """The pre-scan looks for NaN/Infinity where a JSON value can start; words holding
    "nan" or "inf" in keys or strings ("tenant", "info") are data, never a reason."""
    con = duckdb.connect()
    ensure_macros(con)
    texts = [
        '{"tenant_id": "t_alpha", "info": "financial"}',  # valid: nan/inf only inside strings
        'NaN', ' -Infinity', '{"a": -nan}', '{"a":[1, inf]}', '{"a" :\t+Inf}', '{"a": [1,]}',
        '{"a": "x:nan", "b": 1}',  # valid: the scan hits, the string-stripped pass clears it
    ]
    got = [con.sql("SELECT json_strict_valid($s)", params={"s": t}).fetchall()[0][0] for t in texts]
    assert got == [True, False, False, False, False, False, False, True]


SETTLEMENT_HEADER = b"provider,provider_ref,tenant_id,currency,gross_minor,fee_minor,net_minor,settled_at,batch_id"


def settlement(ref: str, net: int = 90) -> bytes:
    return f"p_1,{ref},t_1,EUR,100,10,{net},2026-11-01T10:00:00Z,b_1".encode()


def settle(con: duckdb.DuckDBPyConnection) -> SettlementParse:
    return events_stage.parse_settlement_lines(con)


def assert_parse_equal(got: SettlementParse, want: SettlementParse) -> None:
    assert_frame_equal(got.settlements, want.settlements)
    assert_frame_equal(got.quarantine, want.quarantine)
    assert_frame_equal(got.conflicts, want.conflicts)


def test_settlements_judged_incrementally_equal_a_full_judgement():
    con = duckdb.connect()
    archive(con, "settlements", "b.csv", SETTLEMENT_HEADER, settlement("r_1"), settlement("r_2", net=1))
    settle(con)
    # a later file repeats r_1 (a copy) and reports r_2 again with another content (a conflict),
    # and one file has a bad header: its rows are judged with their own file's header only
    archive(con, "settlements", "a.csv", SETTLEMENT_HEADER, settlement("r_1"), settlement("r_3"))
    archive(con, "settlements", "c.csv", b"nope", settlement("r_4"))
    incremental = settle(con)
    assert_parse_equal(incremental, judge_settlements(intake.archived_lines(con, "settlements")))
    assert incremental.settlements.select("provider_ref", "copies").rows() == [("r_1", 2), ("r_3", 1)]


def test_settlements_first_run_and_rerun_equal_a_full_judgement():
    con = duckdb.connect()
    archive(con, "settlements", "a.csv", SETTLEMENT_HEADER, settlement("r_1"), b"x,y")
    first = settle(con)
    assert_parse_equal(first, judge_settlements(intake.archived_lines(con, "settlements")))
    assert_parse_equal(settle(con), first)
    assert con.sql("SELECT count(*) FROM settlements_parsed").fetchall() == [(2,)]


def test_settlement_rows_of_another_judge_version_are_judged_again():
    con = duckdb.connect()
    archive(con, "settlements", "a.csv", SETTLEMENT_HEADER, settlement("r_1"))
    settle(con)
    con.execute("UPDATE settlements_parsed SET parser_version = 'old', error_code = 'stale'")
    assert_parse_equal(settle(con), judge_settlements(intake.archived_lines(con, "settlements")))


def test_accepted_deliveries_and_intents_do_not_depend_on_the_parsed_rows_order():
    """Why the runners may read the cache unordered: both accept steps sort totally."""
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery(), delivery(delivery_id="dlv_2"), delivery(status_code=500), b"{")
    archive(con, "deliveries", "b.jsonl", delivery(delivery_id="dlv_2"), delivery(delivery_id="dlv_3", tenant_id="t_0"))
    intent = {"intent_id": "i_1", "tenant_id": "t_1", "scope": "payments", "kind": "payment", "amount_minor": 5,
              "currency": "EUR", "ledger_currency": "EUR", "corridor": "EUR:SEPA:EUR", "actor_id": "a_1",
              "created_at": "2026-11-01T10:00:00Z", "primitives": []}
    archive(con, "intents", "a.jsonl", json.dumps(intent).encode(), json.dumps({**intent, "intent_id": "i_2"}).encode(),
            json.dumps(intent).encode(), json.dumps({**intent, "amount_minor": 6, "intent_id": "i_2"}).encode(), b"[")
    for accept, parsed in (
        (accept_deliveries, parse_deliveries(con)),
        (accept_intents, intake.parse_source(con, "intents", "parse_intents", "intent_lines")),
    ):
        for shuffled in (parsed.reverse(), parsed.sample(fraction=1.0, shuffle=True, seed=7)):
            for got, want in zip(accept(shuffled), accept(parsed), strict=True):
                assert_frame_equal(got, want)


def test_a_url_password_is_masked_whatever_the_case_of_its_scheme():
    """URL schemes are case-insensitive: HTTPS://user:pw@ is a password as much as https://
    (the endpoint itself must still be written https://, or the row is quarantined)."""
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl",
            delivery(error="TLS error talking to Https://ops:s3cret_canary@x.example"),
            delivery(delivery_id="dlv_002", endpoint="HTTPS://u:pw_canary@x.example/hook"))
    parsed = parse_deliveries(con)
    assert parsed.select("endpoint", "error", "error_code").rows() == [
        ("https://x.example/hook", "TLS error talking to Https://***@x.example", None),
        (None, None, "invalid_field_type")]  # a quarantined row keeps no field values
