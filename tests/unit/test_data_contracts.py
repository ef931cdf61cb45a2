"""Great Expectations data contracts of the landing sources, on tiny hand-built frames.

GX is imported once per process (``data_contracts.engine()`` is cached), so the first
test pays its multi-second import and the rest cost about a second each.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from zentra_pipelines import data_contracts as dc
from zentra_pipelines.adapters.warehouse import TABLES, Warehouse

T0 = datetime(2026, 11, 24, 10, 0, 0)
T1 = datetime(2026, 11, 25, 9, 30, 0)


def settlements(**overrides: list) -> pl.DataFrame:
    data: dict[str, list] = {
        "tenant_id": ["t_alpha", "t_alpha", "t_beta"],
        "provider": ["acme_pay", "acme_pay", "zeta_pay"],
        "provider_ref": ["ap_001", "ap_002", "zp_001"],
        "currency": ["EUR", "EUR", "JPY"],
        "gross_minor": [125000, 5000, 900],
        "fee_minor": [1250, 50, 9],
        "net_minor": [123750, 4950, 891],
        "settled_at": [T0, T0, T1],
        "batch_id": ["b_1", "b_1", "b_2"],
        "source_file": ["settlements/a.csv"] * 3,
        "copies": [1, 1, 2],
    }
    data.update(overrides)
    schema = dict(next(k for k in dc.CONTRACTS if k.source == "settlements").columns)
    for column, values in overrides.items():  # a float override changes the column's type on purpose
        if any(isinstance(v, float) for v in values):
            schema[column] = pl.Float64
    return pl.DataFrame(data, schema=schema)


def intents(**overrides: list) -> pl.DataFrame:
    data: dict[str, list] = {
        "tenant_id": ["t_alpha", "t_alpha", "t_beta"],
        "intent_id": ["in_1", "in_2", "in_1"],  # same id in two tenants: allowed
        "scope": ["ws", "ws", "ws"],
        "kind": ["payment", "payout", "card"],
        "amount_minor": [100, 200, 300],
        "currency": ["EUR", "EUR", "USD"],
        "ledger_currency": ["EUR", "EUR", "USD"],
        "corridor": ["EUR:SEPA:EUR", "EUR:SEPA:EUR", "USD:ACH:USD"],
        "actor_id": ["op_1", "op_1", "op_2"],
        "created_at": [T0, T0, T1],
        "primitives": ["ledger", "ledger", "ledger"],
        "copies": [1, 1, 1],
        "content_hash": ["h1", "h2", "h3"],
    }
    data.update(overrides)
    schema = dict(next(k for k in dc.CONTRACTS if k.source == "intents").columns)
    return pl.DataFrame(data, schema=schema)


def ledger_entries(**overrides: list) -> pl.DataFrame:
    data: dict[str, list] = {
        "posting_id": ["p1", "p2"],
        "journal_id": ["j1", "j1"],
        "intent_id": ["in_1", None],
        "tenant_id": ["t_alpha", "t_alpha"],
        "account_id": ["t_alpha:funding", "t_alpha:reserved"],
        "currency": ["EUR", "EUR"],
        "amount_minor": [-100, 100],
        "posted_at": [T0, T0],
        "actor_id": [None, "op_1"],
        "idempotency_key": ["k1", "k1"],
        "entry_seq": [1, 2],
        "prev_hash": ["0" * 64, "a" * 64],
        "entry_hash": ["a" * 64, "b" * 64],
    }
    data.update(overrides)
    return pl.DataFrame(data, schema=dict(next(k for k in dc.CONTRACTS if k.source == "ledger_entries").columns))


def check(frame: pl.DataFrame, source: str) -> dc.ContractReport:
    return dc.validate_frames({source: frame}, sources=[source])


def row(report: dc.ContractReport, rule: str, source: str = "settlements") -> dict:
    rows = report.results.filter((pl.col("rule") == rule) & (pl.col("source") == source)).to_dicts()
    assert len(rows) == 1, rule
    return rows[0]


def failed_rules(report: dc.ContractReport) -> set[str]:
    return set(report.failed["rule"])


# ------------------------------------------------------------------- clean data ---


def test_clean_frames_pass_every_expectation():
    report = dc.validate_frames(
        {"settlements": settlements(), "intents": intents(), "ledger_entries": ledger_entries()},
        sources=["settlements", "intents", "ledger_entries"],
    )
    assert report.passed, dc.describe_failures(report.failed)
    assert report.suites == 3
    assert report.expectations == report.results.height > 60
    assert set(report.results["level"]) == {dc.STRUCTURE, dc.VALUE}
    # nothing in the results is a data value: only counts and schema facts
    assert row(report, "type:gross_minor")["observed"] == "Int64"
    assert row(report, "columns")["observed"] == "11 columns"


# ----------------------------------------------------------------- structure ---


def test_float_amount_fails_the_type_expectation():
    report = check(settlements(gross_minor=[125000.0, 5000.0, 900.0]), "settlements")
    r = row(report, "type:gross_minor")
    assert (r["success"], r["level"], r["observed"]) == (False, dc.STRUCTURE, "float64")
    assert failed_rules(report) == {"type:gross_minor"}


def test_integer_column_with_null_stays_int64_not_float():
    """A plain to_pandas() turns Int64-with-null into float64; the contract must not."""
    report = check(settlements(net_minor=[123750, None, 891]), "settlements")
    assert row(report, "type:net_minor")["success"]
    assert failed_rules(report) == {"not_null:net_minor"}
    assert row(report, "not_null:net_minor")["level"] == dc.VALUE


def test_duplicate_key_fails_uniqueness():
    report = check(settlements(provider_ref=["ap_001", "ap_001", "zp_001"]), "settlements")
    r = row(report, "unique:tenant_id,provider,provider_ref")
    assert (r["success"], r["level"], r["unexpected_count"], r["element_count"]) == (False, dc.STRUCTURE, 2, 3)
    assert failed_rules(report) == {"unique:tenant_id,provider,provider_ref"}


def test_same_intent_id_in_two_tenants_is_not_a_duplicate_but_within_one_is():
    assert check(intents(), "intents").passed
    report = check(intents(intent_id=["in_1", "in_1", "in_1"]), "intents")
    assert failed_rules(report) == {"unique:tenant_id,intent_id"}
    assert row(report, "unique:tenant_id,intent_id", "intents")["unexpected_count"] == 2


def test_missing_column_fails_structure():
    report = check(settlements().drop("batch_id"), "settlements")
    r = row(report, "columns")
    assert (r["success"], r["level"]) == (False, dc.STRUCTURE)
    assert r["observed"] == "missing: batch_id"
    # rules on the missing column fail too (GX raises; only the exception class is kept)
    assert row(report, "type:batch_id")["observed"] == "error: column missing: batch_id"
    assert not row(report, "type:batch_id")["success"]


def test_unexpected_extra_column_fails_structure():
    report = check(settlements().with_columns(pl.lit("x").alias("surprise")), "settlements")
    assert row(report, "columns")["observed"] == "unexpected: surprise"
    assert failed_rules(report) == {"columns"}


def test_unpublished_table_is_one_structural_failure():
    report = dc.validate_frames({}, sources=["deliveries"])
    assert report.results.select("source", "rule", "level", "success", "observed").rows() == [
        ("deliveries", "table_exists", dc.STRUCTURE, False, "table not published")
    ]


# --------------------------------------------------------------------- values ---


BAD_CURRENCIES = ["usd", "EURO", "XXY", "E1R", ""]
BAD_IDENTIFIERS = ["ap'001", "ap 001", "-ap", "ap_001\n", "x" * 129, "ap\u00e9", "ap;DROP", ""]


def test_bad_currency_fails_the_value_set():
    """One validation, one bad value per row: the count proves each one is caught."""
    n = len(BAD_CURRENCIES)
    frame = pl.concat([settlements()] * n).head(n + 1).with_columns(
        provider_ref=pl.Series([f"r{i}" for i in range(n + 1)]), currency=pl.Series(["EUR", *BAD_CURRENCIES])
    )
    report = check(frame, "settlements")
    r = row(report, "currency:currency")
    assert (r["success"], r["level"], r["unexpected_count"], r["element_count"]) == (False, dc.VALUE, n, n + 1)
    assert failed_rules(report) == {"currency:currency"}


def test_identifier_outside_the_contract_pattern_fails_regex():
    n = len(BAD_IDENTIFIERS)
    frame = pl.concat([settlements()] * n).head(n + 1).with_columns(
        provider_ref=pl.Series(["ap_001", *BAD_IDENTIFIERS])
    )
    report = check(frame, "settlements")
    r = row(report, "identifier:provider_ref")
    assert (r["success"], r["level"], r["unexpected_count"]) == (False, dc.VALUE, n)
    assert failed_rules(report) == {"identifier:provider_ref"}


def test_longest_identifier_passes():
    assert check(settlements(provider_ref=["ap_001", "a" * 128, "zp_001"]), "settlements").passed


def test_net_must_equal_gross_minus_fee():
    report = check(settlements(net_minor=[123750, 4949, 891]), "settlements")
    r = row(report, "net_equals_gross_minus_fee")
    # element_count is restated over the whole table (GX counts only the selected rows)
    assert (r["success"], r["level"], r["unexpected_count"], r["element_count"]) == (False, dc.VALUE, 1, 3)
    assert r["unexpected_percent"] == pytest.approx(100 / 3)
    assert failed_rules(report) == {"net_equals_gross_minus_fee"}


def test_unknown_intent_kind_and_event_type_fail_value_sets():
    report = check(intents(kind=["payment", "refund", "card"]), "intents")
    assert failed_rules(report) == {"in_set:kind"}


def test_status_code_range_ignores_null_and_flags_out_of_range():
    cols = next(k for k in dc.CONTRACTS if k.source == "deliveries").columns
    frame = pl.DataFrame(
        {
            "tenant_id": ["t_alpha"] * 3, "delivery_id": ["d1", "d2", "d3"], "event_id": ["e1", "e1", "e1"],
            "endpoint": ["https://hooks.example/z"] * 3, "attempt": [1, 2, 3], "attempted_at": [T0, T0, T0],
            "status_code": [None, 200, 700], "error": ["connection refused", None, None],
            "latency_ms": [None, 20, 30], "copies": [1, 1, 1], "content_hash": ["h1", "h2", "h3"],
        },
        schema=dict(cols),
    )
    report = check(frame, "deliveries")
    assert failed_rules(report) == {"range:status_code"}
    assert row(report, "range:status_code", "deliveries")["unexpected_count"] == 1


# ------------------------------------------------------------- per tenant-day ---


def test_by_tenant_counts_come_from_the_rows_gx_flagged():
    frame = settlements(currency=["EUR", "usd", "eur"])  # t_alpha day 24: 1 bad; t_beta day 25: 1 bad
    report = check(frame, "settlements")
    bt = report.by_tenant.filter(pl.col("rule") == "currency:currency")
    got = {(r["tenant_id"], r["day"].isoformat()): (r["element_count"], r["unexpected_count"], r["success"])
           for r in bt.iter_rows(named=True)}
    assert got == {("t_alpha", "2026-11-24"): (2, 1, False), ("t_beta", "2026-11-25"): (1, 1, False)}
    # table-level rules repeat the table's verdict, without a row count
    types = report.by_tenant.filter(pl.col("rule") == "type:gross_minor")
    assert types["unexpected_count"].is_null().all() and types["success"].all()
    # per-tenant unexpected counts add up to the table's
    totals = report.by_tenant.group_by("rule").agg(pl.col("unexpected_count").sum())
    joined = report.results.join(totals, on="rule", suffix="_tenants").filter(
        pl.col("unexpected_count").is_not_null()
    )
    assert (joined["unexpected_count"] == joined["unexpected_count_tenants"]).all()


def test_results_hold_no_unexpected_values():
    secret = "t_beta_secret_ref"
    report = check(settlements(provider_ref=["ap_001", "ap 001", secret], currency=["EUR", "usd", "JPY"]),
                   "settlements")
    for frame in (report.results, report.by_tenant):
        text = frame.write_csv()
        assert "ap 001" not in text and "usd" not in text and secret not in text


# ------------------------------------------------------------- determinism ---


def test_results_are_deterministic_across_runs():
    frames = {"settlements": settlements(currency=["EUR", "usd", "JPY"]), "intents": intents(),
              "ledger_entries": ledger_entries()}
    one = dc.validate_frames(frames, sources=list(frames))
    two = dc.validate_frames(dict(reversed(list(frames.items()))), sources=list(reversed(list(frames))))
    assert_frame_equal(one.results, two.results)
    assert_frame_equal(one.by_tenant, two.by_tenant)
    assert one.results.columns == list(dc.RESULT_SCHEMA)
    assert one.by_tenant.columns == list(dc.BY_TENANT_SCHEMA)
    keys = one.results.select("source", "expectation", "column", "rule")
    assert keys.equals(keys.sort(keys.columns, nulls_last=True))


# --------------------------------------------------------------- warehouse ---


def test_run_data_contracts_publishes_both_tables(tmp_path):
    assert {dc.RESULTS_TABLE, dc.BY_TENANT_TABLE} <= TABLES
    wh = Warehouse(tmp_path)
    with wh.connect() as con:
        Warehouse.publish(con, {"settlements": settlements(net_minor=[123750, 4949, 891])})
        report = dc.run_data_contracts(con)
        published = Warehouse.read(con, dc.RESULTS_TABLE)
        assert_frame_equal(published, report.results)
        assert Warehouse.read(con, dc.BY_TENANT_TABLE).height == report.by_tenant.height
        # the other five tables are missing: one structural failure each; settlements: one value finding
        structure = dc.structure_failures(con)
        values = dc.value_findings(con)
        assert len(structure) == 5 and all(line.endswith("table not published") for line in structure)
        assert values == ["settlements: net_equals_gross_minus_fee (expect_column_values_to_be_null): 1 of 3 rows"]
        assert dc.summary_lines(con)[0].startswith("Data contracts (Great Expectations): 6 suites")


def test_tables_validate_as_read_back_from_duckdb(tmp_path):
    """DuckDB round trip: UINTEGER/BIGINT/TIMESTAMP come back as the contract's types."""
    with Warehouse(tmp_path).connect() as con:
        Warehouse.publish(con, {"intents": intents(), "ledger_entries": ledger_entries()})
        frames = {s: Warehouse.read(con, s) for s in ("intents", "ledger_entries")}
    report = dc.validate_frames(frames, sources=list(frames))
    assert report.passed, dc.describe_failures(report.failed)


def test_summary_before_any_run():
    con = duckdb.connect()
    try:
        assert dc.summary_lines(con) == ["Data contracts: not run"]
    finally:
        con.close()


def test_empty_table_passes_with_zero_counts():
    report = check(settlements().head(0), "settlements")
    assert report.passed, dc.describe_failures(report.failed)
    assert report.by_tenant.height == 0
    assert row(report, "net_equals_gross_minus_fee")["element_count"] == 0


def test_dagster_asset_and_checks_block_on_structure_and_warn_on_values(tmp_path):
    """Duplicate key (structure) -> ERROR check fails; bad currency (value) -> WARN only."""
    import dagster as dg

    from dagster_project.defs.contracts import assets, checks
    from dagster_project.defs.resources import ZentraResource

    with Warehouse(tmp_path).connect() as con:
        Warehouse.publish(con, {"settlements": settlements(provider_ref=["ap_001", "ap_001", "zp_001"],
                                                           currency=["EUR", "EUR", "usd"])})
    deps = [dg.AssetSpec(k) for k in ("provider_state", "intents", "settlements", "deliveries", "ledger_entries")]
    result = dg.materialize(
        [*deps, assets.data_contracts, checks.data_contract_structure, checks.data_contract_values],
        selection=["data_contracts"],
        resources={"zentra": ZentraResource(home=str(tmp_path))},
        raise_on_error=False,
    )
    meta = result.asset_materializations_for_node("data_contracts")[0].metadata
    assert (meta["suites_run"].value, meta["expectations_evaluated"].value, meta["failed_structure"].value) == (1, 36, 6)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    structure = evaluations[checks.DATA_CONTRACT_STRUCTURE]
    values = evaluations[checks.DATA_CONTRACT_VALUES]
    assert (structure.passed, structure.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert (values.passed, values.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert values.metadata["first"].value == (
        "settlements: currency:currency (expect_column_values_to_be_in_set): 1 of 3 rows")
    with Warehouse(tmp_path).connect(read_only=True) as con:
        structure_lines = dc.structure_failures(con)
    # five tables never published, plus the duplicate key: counts only, never the values
    assert structure.metadata["violations"].value == len(structure_lines) == 6
    assert ("settlements: unique:tenant_id,provider,provider_ref (expect_compound_columns_to_be_unique): "
            "2 of 3 rows") in structure_lines
    assert not any("ap_001" in line or "usd" in line for line in structure_lines)


# ------------------------------------------------- narrow reads, same verdicts ---


class _WholeTable(dc._FrameTable):
    """The reference reading: the table-level rules see the whole table, and every GX
    part is cut from one pandas conversion of the whole table."""

    repeats_only = False  # GX sees every row, uniqueness parts included

    def __init__(self, frame: pl.DataFrame):
        super().__init__(frame)
        self.whole = dc.to_pandas_frame(frame)

    def empty(self) -> pl.DataFrame:
        return self.frame

    def pandas(self, columns, as_int64):
        return dc._narrow(self.whole, columns, as_int64)


def _whole(frames: dict[str, pl.DataFrame]) -> dc.ContractReport:
    return dc._validate(lambda s: _WholeTable(frames[s]) if s in frames else None, list(frames))


#: Failure cases of every kind: types (float, narrower int, another time unit, Null-typed),
#: missing and extra columns, nulls, duplicates, bad values, the net rule, no tenant column.
CASES = {
    "clean": lambda: settlements(),
    "float_amount": lambda: settlements(gross_minor=[125000.0, 5000.0, 900.0]),
    "int32_copies": lambda: settlements().with_columns(pl.col("copies").cast(pl.Int32)),
    "ms_timestamps": lambda: settlements().with_columns(pl.col("settled_at").cast(pl.Datetime("ms"))),
    "null_net": lambda: settlements(net_minor=[123750, None, 891]),
    "missing_batch_id": lambda: settlements().drop("batch_id"),
    "missing_fee": lambda: settlements().drop("fee_minor"),
    "missing_day_and_tenant": lambda: settlements().drop("settled_at", "tenant_id"),
    "extra_column": lambda: settlements().with_columns(pl.lit("x").alias("surprise")),
    "bad_rows": lambda: settlements(provider_ref=["ap_001", "ap_001", "ap 003"], currency=["EUR", "usd", "eur"],
                                    net_minor=[123750, 4949, 891]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_narrow_parts_and_zero_row_schema_give_the_whole_table_verdicts(case):
    """Table-level rules on a zero-row frame, row rules on their own columns only: the
    same results and per-tenant rows as with the whole table converted once."""
    frame = CASES[case]()
    narrow = check(frame, "settlements")
    whole = _whole({"settlements": frame})
    assert_frame_equal(narrow.results, whole.results)
    assert_frame_equal(narrow.by_tenant, whole.by_tenant)


def test_null_typed_and_empty_tables_give_the_whole_table_verdicts():
    for frame in (settlements().with_columns(pl.lit(None).alias("batch_id")), settlements().head(0),
                  settlements(gross_minor=[1.0, 2.0, 3.0]).head(0)):
        narrow, whole = check(frame, "settlements"), _whole({"settlements": frame})
        assert_frame_equal(narrow.results, whole.results)
        assert_frame_equal(narrow.by_tenant, whole.by_tenant)


#: Uniqueness edge cases: null and partly null compound keys (GX ignores a row only when
#: all its key values are missing), a null single-column key, repeats under one rule of a
#: part and not the others, several repeats of one key.
REPEAT_CASES = {
    "settlements_partly_null_keys": ("settlements", lambda: settlements(
        tenant_id=["t_alpha", "t_alpha", "t_alpha"], provider=["acme_pay", "acme_pay", None],
        provider_ref=[None, None, None])),
    "settlements_wholly_null_keys": ("settlements", lambda: settlements(
        tenant_id=[None, None, "t_beta"], provider=[None, None, "zeta_pay"], provider_ref=[None, None, "zp_001"])),
    "ledger_repeated_hash_only": ("ledger_entries", lambda: ledger_entries(entry_hash=["a" * 64, "a" * 64])),
    "ledger_null_hashes": ("ledger_entries", lambda: ledger_entries(entry_hash=[None, None])),
    "ledger_repeated_everything": ("ledger_entries", lambda: pl.concat([ledger_entries()] * 3)),
    "ledger_clean": ("ledger_entries", lambda: ledger_entries()),
    "intents_same_id_two_tenants": ("intents", lambda: intents(intent_id=["in_1", "in_1", "in_1"])),
}


@pytest.mark.parametrize("case", sorted(REPEAT_CASES))
def test_uniqueness_on_the_repeating_rows_gives_the_whole_table_verdicts(case):
    """GX shown only the rows that repeat a key: the same results (counts, percentages,
    verdicts) and per-tenant rows as GX shown every row."""
    source, make = REPEAT_CASES[case]
    frame = make()
    narrow = check(frame, source)
    whole = _whole({source: frame})
    assert_frame_equal(narrow.results, whole.results)
    assert_frame_equal(narrow.by_tenant, whole.by_tenant)


def test_uniqueness_counts_every_occurrence_of_a_repeated_key():
    report = check(pl.concat([ledger_entries()] * 3), "ledger_entries")
    assert row(report, "unique:posting_id", "ledger_entries")["unexpected_count"] == 6
    assert row(report, "unique:entry_hash", "ledger_entries")["element_count"] == 6


def test_zero_row_frame_keeps_every_pandas_dtype():
    for case in CASES.values():
        frame = case()
        assert dict(dc.to_pandas_frame(frame.clear()).dtypes) == dict(dc.to_pandas_frame(frame).dtypes)


class _RecordingConnection:
    """A DuckDB connection that records every query (and can scramble plain reads)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, scramble: bool = False):
        self.con, self.scramble, self.queries = con, scramble, []

    def sql(self, query: str, **kwargs):
        self.queries.append(query)
        if self.scramble and query.startswith("SELECT rowid") and "ORDER BY" not in query:
            query += " ORDER BY rowid DESC"  # what a scan without order could return
        return self.con.sql(query, **kwargs)


def _publish_cases(con, frame: pl.DataFrame) -> None:
    Warehouse.publish(con, {"settlements": frame})


@pytest.mark.parametrize("case", sorted(set(CASES) - {"clean"}))
def test_warehouse_run_reads_columns_not_tables_and_matches_the_whole_table(tmp_path, case):
    with Warehouse(tmp_path).connect() as con:
        _publish_cases(con, CASES[case]())
        whole = _whole({"settlements": Warehouse.read(con, "settlements")})
        recording = _RecordingConnection(con)
        narrow = dc._validate(lambda s: dc._WarehouseTable(recording, s) if s == "settlements" else None,
                              ["settlements"])
        report = dc.run_data_contracts(con)
        published = Warehouse.read(con, dc.RESULTS_TABLE).filter(pl.col("source") == "settlements")
        published_by_tenant = Warehouse.read(con, dc.BY_TENANT_TABLE)
    assert_frame_equal(narrow.results, whole.results)
    assert_frame_equal(narrow.by_tenant, whole.by_tenant)
    assert_frame_equal(published, whole.results)
    assert_frame_equal(published_by_tenant, whole.by_tenant)
    assert report.rows["settlements"] == whole.rows["settlements"]
    # never the whole table: the schema (no rows), the row count, then a few columns per read
    reads = [q for q in recording.queries if q.startswith("SELECT rowid")]
    assert recording.queries[:2] == ['SELECT * FROM "settlements" LIMIT 0', 'SELECT count(*) FROM "settlements"']
    assert len(recording.queries) == 2 + len(reads)
    assert all(q.count(",") <= dc._PART_COLUMNS for q in reads)


def test_missing_column_is_reported_from_the_warehouse(tmp_path):
    with Warehouse(tmp_path).connect() as con:
        _publish_cases(con, settlements().drop("fee_minor"))
        report = dc.run_data_contracts(con)
    results = report.results.filter(pl.col("source") == "settlements")
    observed = dict(results.select("rule", "observed").rows())
    assert observed["columns"] == "missing: fee_minor"
    assert observed["type:fee_minor"] == "error: column missing: fee_minor"
    for rule in ("columns", "type:fee_minor", "not_null:fee_minor", "net_equals_gross_minus_fee"):
        assert not row(report, rule)["success"], rule
    assert_frame_equal(results, check(settlements().drop("fee_minor"), "settlements").results)


def test_reads_out_of_row_order_are_read_again_in_row_order(tmp_path):
    frame = pl.concat([settlements(currency=["EUR", "usd", "JPY"])] * 40).with_columns(
        provider_ref=pl.format("r{}", pl.int_range(pl.len())),
        tenant_id=pl.when(pl.int_range(pl.len()) % 7 == 0).then(pl.lit("t_gamma")).otherwise(pl.col("tenant_id")),
    )
    with Warehouse(tmp_path).connect() as con:
        _publish_cases(con, frame)
        con.execute("DELETE FROM settlements WHERE provider_ref IN ('r3', 'r50')")  # gaps in the row ids
        whole = _whole({"settlements": Warehouse.read(con, "settlements")})
        scrambled = _RecordingConnection(con, scramble=True)
        table = dc._WarehouseTable(scrambled, "settlements")
        assert_frame_equal(table.select(["provider_ref", "currency"]),
                           Warehouse.read(con, "settlements").select("provider_ref", "currency"))
        narrow = dc._validate(lambda s: dc._WarehouseTable(scrambled, s) if s == "settlements" else None,
                              ["settlements"])
    assert any(q.endswith("ORDER BY rowid") for q in scrambled.queries)
    assert_frame_equal(narrow.results, whole.results)
    assert_frame_equal(narrow.by_tenant, whole.by_tenant)
    assert row(narrow, "currency:currency")["unexpected_count"] == 40


def test_row_id_order_check():
    assert dc._in_row_id_order(pl.Series([0, 1, 5, 9]), 4)
    assert dc._in_row_id_order(pl.Series([], dtype=pl.Int64), 0)
    assert not dc._in_row_id_order(pl.Series([0, 5, 1]), 3)  # out of order
    assert not dc._in_row_id_order(pl.Series([0, 1, 1]), 3)  # a row twice
    assert not dc._in_row_id_order(pl.Series([0, 1]), 3)  # a row short


def test_prewarm_calls_on_ready_once_after_the_engine_is_built():
    calls = []
    thread = dc.prewarm(on_ready=lambda: calls.append(dc._ENGINE is not None))
    thread.join(timeout=120)
    assert not thread.is_alive() and calls == [True]
