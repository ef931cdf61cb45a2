"""The run summary on a real temporary DuckDB file: what an on-call engineer reads first."""

from __future__ import annotations

from pathlib import Path

import duckdb

from zentra_pipelines.summary import render


def _warehouse(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("CREATE TABLE packets (tenant_id VARCHAR, period DATE, version BIGINT, created BOOLEAN, rebuilt BOOLEAN)")
    con.execute("INSERT INTO packets VALUES ('t_alpha', DATE '2026-11-20', 1, true, true)")
    con.execute("CREATE TABLE intents (tenant_id VARCHAR, intent_id VARCHAR)")
    con.execute("INSERT INTO intents VALUES ('t_alpha', 'in_1'), ('t_zeta', 'in_2'), ('t_zeta', 'in_3')")
    con.execute("CREATE TABLE settlements (tenant_id VARCHAR, provider_ref VARCHAR)")
    con.execute("INSERT INTO settlements VALUES ('t_zeta', 'ap_1'), ('t_alpha', 'ap_2')")
    return con


def test_accepted_rows_of_an_unconfigured_tenant_are_named_in_the_summary(tmp_path):
    con = _warehouse(tmp_path)
    lines = render(con, tmp_path).splitlines()
    at = lines.index("Accepted rows of tenants not configured (no packet; kept in the warehouse):")
    assert lines[at + 1] == "  t_zeta: intents 2, settlements 1"
    assert not lines[at + 2].startswith("  t_")


def test_no_such_line_when_every_tenant_with_rows_has_packets(tmp_path):
    con = _warehouse(tmp_path)
    con.execute("DELETE FROM intents WHERE tenant_id = 't_zeta'")
    con.execute("DELETE FROM settlements WHERE tenant_id = 't_zeta'")
    assert "not configured" not in render(con, tmp_path)


def test_every_source_of_the_accounting_gets_a_line_ok_or_mismatch(tmp_path):
    con = _warehouse(tmp_path)
    con.execute("CREATE TABLE ingest_accounting (source VARCHAR, source_file VARCHAR, file_sha256 VARCHAR, "
                "received BIGINT, accepted BIGINT, quarantined BIGINT, balanced BOOLEAN)")
    con.execute("INSERT INTO ingest_accounting VALUES ('intents', 'a.jsonl', 'x', 3, 3, 0, true), "
                "('ledger_postings', 'sqlite:///s.db', NULL, 10, 7, 2, false)")
    lines = render(con, tmp_path).splitlines()
    at = lines.index("Ingest (received = accepted + quarantined):")
    assert lines[at + 1] == "  intents         received         3  accepted         3  quarantined       0  [ok]"
    assert lines[at + 2] == "  ledger_postings received        10  accepted         7  quarantined       2  [MISMATCH]"


def test_quarantined_lines_of_configured_tenants_without_a_day_are_counted(tmp_path):
    con = _warehouse(tmp_path)
    con.execute("CREATE TABLE callbacks_quarantine (tenant_id VARCHAR, error_code VARCHAR, received_at TIMESTAMP)")
    con.execute("INSERT INTO callbacks_quarantine VALUES ('t_alpha', 'invalid_timestamp', NULL), "
                "('t_alpha', 'signature_mismatch', TIMESTAMP '2026-11-20 10:00:00'), "
                "('t_zeta', 'invalid_timestamp', NULL), (NULL, 'malformed_json', NULL)")
    assert ("Quarantined lines without a usable timestamp (no UTC day, so in no packet; kept in the warehouse): "
            "callbacks_quarantine 1") in render(con, tmp_path).splitlines()


def test_a_configured_tenant_without_a_packet_yet_is_not_called_unconfigured(tmp_path):
    # t_zeta is configured, but its rows are all dated after today's evidence calendar
    con = _warehouse(tmp_path)
    text = render(con, tmp_path, configured={"t_alpha", "t_zeta"})
    assert "not configured" not in text
    assert "t_zeta" not in text


def test_reviews_without_an_owner_are_counted_per_tenant(tmp_path):
    con = _warehouse(tmp_path)
    con.execute("CREATE TABLE review_queue (tenant_id VARCHAR, intent_id VARCHAR, owner VARCHAR)")
    con.execute("INSERT INTO review_queue VALUES ('t_alpha', 'in_1', 'op_anna'), ('t_zeta', 'in_2', NULL), "
                "('t_zeta', 'in_3', NULL)")
    assert ("  reviews without an owner (the tenant's policy names no reviewer): t_zeta 2"
            in render(con, tmp_path).splitlines())


def test_a_run_that_stopped_before_sealing_does_not_report_the_last_packets_run_as_its_own(tmp_path):
    con = _warehouse(tmp_path)
    assert "Audit packets: 1 tenant-days, 1 sealed this run, 0 unchanged (not rebuilt)" in render(con, tmp_path)
    assert ("Audit packets: 1 tenant-days on record, none sealed this run (no packets step ran)"
            in render(con, tmp_path, packets_ran=False).splitlines())
