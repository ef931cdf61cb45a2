"""Incremental data contracts: a run after new rows arrive re-validates the row-local rules
on the changed tenant-days only, and publishes exactly what validating every row gives."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from polars.testing import assert_frame_equal

from zentra_pipelines import data_contracts as dc
from zentra_pipelines.adapters.warehouse import Warehouse

T0 = datetime(2026, 11, 24, 10, 0, 0)
T1 = datetime(2026, 11, 25, 9, 30, 0)
T2 = datetime(2026, 11, 26, 8, 0, 0)
SCHEMA = dict(next(k for k in dc.CONTRACTS if k.source == "settlements").columns)


def settlements(rows: list[tuple]) -> pl.DataFrame:
    """(tenant, ref, currency, gross, fee, net, settled_at) per row."""
    return pl.DataFrame(
        [(t, "acme_pay", ref, cur, g, f, n, at, "b_1", "s/a.csv", 1) for t, ref, cur, g, f, n, at in rows],
        schema=SCHEMA, orient="row",
    )


HISTORY = [
    ("t_alpha", "r1", "EUR", 100, 1, 99, T0),
    ("t_alpha", "r2", "eur", 100, 1, 99, T0),  # a bad currency: cached as 1 unexpected
    ("t_beta", "r3", "JPY", 900, 9, 800, T0),  # net != gross - fee
    ("t_beta", "r4", "JPY", 900, 9, 891, T1),
]


def _run(con) -> tuple[pl.DataFrame, pl.DataFrame]:
    dc.run_data_contracts(con)  # the other five sources are not published: one failure row each
    results = Warehouse.read(con, dc.RESULTS_TABLE).filter(pl.col("source") == "settlements")
    return results, Warehouse.read(con, dc.BY_TENANT_TABLE)


def _whole(frame: pl.DataFrame) -> dc.ContractReport:
    """What validating every row gives (no cache, no warehouse)."""
    return dc.validate_frames({"settlements": frame}, sources=["settlements"])


def test_first_run_on_a_fresh_home_equals_the_whole_validation_and_fills_the_cache(tmp_path):
    frame = settlements(HISTORY)
    with Warehouse(tmp_path).connect() as con:
        Warehouse.publish(con, {"settlements": frame})
        results, by_tenant = _run(con)
        cache = Warehouse.read(con, dc.CACHE_TABLE)
    whole = _whole(frame)
    assert_frame_equal(results, whole.results)
    assert_frame_equal(by_tenant, whole.by_tenant)
    local = [r for r in dc.CONTRACTS[3].rules() if dc._row_local(r)]
    assert cache.height == 3 * len(local)  # 3 tenant-days x the row-local rules
    assert cache.filter(pl.col("rule") == "currency:currency")["unexpected_count"].sum() == 1


def test_incremental_run_equals_the_whole_validation(tmp_path):
    later = [
        ("t_beta", "r4", "JPY", 900, 9, 891, T1),
        ("t_alpha", "r5", "usd", 50, 0, 50, T2),  # a new day with a bad currency
        ("t_beta", "r1", "EUR", 10, 0, 10, T2),  # a new day
        ("t_alpha", "r1", "EUR", 7, 0, 7, T2),  # duplicates r1 of the first day: both days flag it
    ]
    with Warehouse(tmp_path).connect() as con:
        Warehouse.publish(con, {"settlements": settlements(HISTORY)})
        _run(con)
        now = settlements(HISTORY[:3] + later)
        Warehouse.publish(con, {"settlements": now})
        results, by_tenant = _run(con)
    whole = _whole(now)
    assert_frame_equal(results, whole.results)
    assert_frame_equal(by_tenant, whole.by_tenant)
    assert results.filter(pl.col("rule") == "currency:currency")["unexpected_count"].item() == 2
    unique = by_tenant.filter(pl.col("rule") == "unique:tenant_id,provider,provider_ref", ~pl.col("success"))
    assert unique.select("tenant_id", "day").rows() == [("t_alpha", T0.date()), ("t_alpha", T2.date())]


def test_incremental_run_validates_only_the_changed_tenant_days_rows(tmp_path, monkeypatch):
    seen: list[int] = []
    real = dc._Engine.validate

    def spy(self, source, table, rows=None, skip_rows=False):
        seen.append(-1 if skip_rows else (rows or table).height)
        return real(self, source, table, rows, skip_rows)

    with Warehouse(tmp_path).connect() as con:
        Warehouse.publish(con, {"settlements": settlements(HISTORY)})
        _run(con)
        now = settlements(HISTORY + [("t_alpha", "r9", "EUR", 5, 0, 5, T2)])
        Warehouse.publish(con, {"settlements": now})
        monkeypatch.setattr(dc._Engine, "validate", spy)
        results, by_tenant = _run(con)
        again = _run(con)
    assert seen == [1, -1]  # the new tenant-day's one row; then nothing changed
    whole = _whole(now)
    assert_frame_equal(results, whole.results)
    assert_frame_equal(by_tenant, whole.by_tenant)
    assert_frame_equal(again[0], results)
    assert_frame_equal(again[1], by_tenant)


def test_a_table_off_its_contract_is_validated_whole_and_not_cached(tmp_path):
    frame = settlements(HISTORY).with_columns(pl.col("copies").cast(pl.Int32))
    with Warehouse(tmp_path).connect() as con:
        Warehouse.publish(con, {"settlements": frame})
        results, by_tenant = _run(con)
        cache = Warehouse.read(con, dc.CACHE_TABLE)
    whole = _whole(frame)
    assert_frame_equal(results, whole.results)
    assert_frame_equal(by_tenant, whole.by_tenant)
    assert cache.filter(pl.col("source") == "settlements").height == 0


def test_day_key_keeps_null_tenants_and_days_apart():
    import duckdb

    key = dc._day_key(dc.CONTRACTS[3])
    rows = duckdb.sql(
        f"SELECT {key} FROM (VALUES ('t', TIMESTAMP '2026-11-24 10:00'), (NULL, TIMESTAMP '2026-11-24 01:00'), "
        "('N', NULL), (NULL, NULL)) AS v(tenant_id, settled_at)"
    ).fetchall()
    assert [r[0] for r in rows] == ["2026-11-24|Vt", "2026-11-24|N", "N|VN", "N|N"]


def test_a_cache_written_under_other_rules_or_code_is_not_used(tmp_path, monkeypatch):
    seen: list[int] = []
    real = dc._Engine.validate

    def spy(self, source, table, rows=None, skip_rows=False):
        seen.append(-1 if skip_rows else (rows or table).height)
        return real(self, source, table, rows, skip_rows)

    frame = settlements(HISTORY)
    with Warehouse(tmp_path).connect() as con:
        Warehouse.publish(con, {"settlements": frame})
        _run(con)
        monkeypatch.setattr(dc, "_rules_digest", lambda source: "another-digest")
        monkeypatch.setattr(dc._Engine, "validate", spy)
        results, by_tenant = _run(con)
    assert seen == [frame.height]  # every row validated again
    assert_frame_equal(results, _whole(frame).results)
