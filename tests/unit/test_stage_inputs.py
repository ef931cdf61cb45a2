"""A stage whose inputs and code are unchanged skips its rebuild; anything new rebuilds it."""

from __future__ import annotations

import json
from dataclasses import replace

import duckdb
import pytest
from polars.testing import assert_frame_equal

from tests.helpers.callbacks import DEFAULT_SECRETS, flat_body, make_callback, write_landing, write_secrets
from tests.unit.test_parse_cache import archive, delivery
from zentra_pipelines import events_stage, stage_inputs
from zentra_pipelines import ingest as ingest_stage
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import deliveries as dv
from zentra_pipelines.ingest import archive_landing

TABLES = ("deliveries", "deliveries_quarantine", "webhook_health", "replay_queue")


def tables(con: duckdb.DuckDBPyConnection) -> dict:
    return {t: con.sql(f"SELECT * FROM {t}").pl() for t in TABLES}


def forbid_rebuild(monkeypatch: pytest.MonkeyPatch) -> None:
    def rebuild(*_args, **_kwargs):
        raise AssertionError("rebuilt although nothing changed")
    monkeypatch.setattr(events_stage, "health_and_replay", rebuild)


def test_rerun_with_nothing_new_skips_and_reports_the_same(monkeypatch):
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery(), delivery(delivery_id="dlv_2", status_code=500), b"{")
    first = events_stage.run_deliveries(con)
    before = tables(con)
    forbid_rebuild(monkeypatch)
    assert events_stage.run_deliveries(con) == first
    for name, frame in tables(con).items():
        assert_frame_equal(frame, before[name])


def test_a_new_file_rebuilds_like_a_first_run():
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery())
    events_stage.run_deliveries(con)
    archive(con, "deliveries", "b.jsonl", delivery(delivery_id="dlv_2", status_code=500))
    report = events_stage.run_deliveries(con)
    fresh = duckdb.connect()
    archive(fresh, "deliveries", "a.jsonl", delivery())
    archive(fresh, "deliveries", "b.jsonl", delivery(delivery_id="dlv_2", status_code=500))
    assert events_stage.run_deliveries(fresh) == report
    for name, frame in tables(con).items():
        assert_frame_equal(frame, tables(fresh)[name])
    assert report.rows == 2 and report.replay_queue == 1


def test_another_recorded_digest_or_a_missing_output_rebuilds(monkeypatch):
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery())
    events_stage.run_deliveries(con)
    con.execute("UPDATE deliveries_inputs SET inputs_sha256 = 'other'")
    calls = []
    original = dv.health_and_replay
    monkeypatch.setattr(events_stage, "health_and_replay", lambda *a: calls.append(1) or original(*a))
    events_stage.run_deliveries(con)
    con.execute("DROP TABLE replay_queue")
    events_stage.run_deliveries(con)
    assert calls == [1, 1]
    assert con.sql("SELECT count(*) FROM replay_queue").fetchall() == [(0,)]


def test_digest_follows_each_file_rows_and_the_parts():
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery())
    events_stage.run_deliveries(con)
    one = stage_inputs.digest(con, "deliveries_parsed", ["v1"])
    assert stage_inputs.digest(con, "deliveries_parsed", ["v1"]) == one
    assert stage_inputs.digest(con, "deliveries_parsed", ["v2"]) != one
    archive(con, "deliveries", "b.jsonl", delivery(delivery_id="dlv_2"))
    events_stage.parse_delivery_lines(con)
    assert stage_inputs.digest(con, "deliveries_parsed", ["v1"]) != one


CALLBACK_TABLES = ("callbacks_quarantine", "callback_events", "provider_state", "callback_conflicts")


def callback_tables(con: duckdb.DuckDBPyConnection) -> dict:
    return {t: con.sql(f"SELECT * FROM {t}").pl() for t in CALLBACK_TABLES}


def assert_a_fresh_home_agrees(tmp_path, landing_dir, secrets, report, tables) -> None:
    """The same landing folder and secrets, in one run on a new home: the same report and tables."""
    with Warehouse(tmp_path / "fresh").connect() as fresh:
        archive_landing(fresh, landing_dir)
        assert ingest_stage.run_callbacks(fresh, secrets) == report
        for name, frame in callback_tables(fresh).items():
            assert_frame_equal(frame, tables[name])


def test_callbacks_skip_when_nothing_new_and_rebuild_on_a_new_file(tmp_path, monkeypatch):
    landing_dir = write_landing(tmp_path, {"a.jsonl": [make_callback(flat_body()), "{"]})
    secrets = write_secrets(tmp_path)
    with Warehouse(tmp_path / "home").connect() as con:
        archive_landing(con, landing_dir)
        first = ingest_stage.run_callbacks(con, secrets)
        before = callback_tables(con)
        original = ingest_stage.converge
        monkeypatch.setattr(ingest_stage, "converge", lambda *_: pytest.fail("rebuilt although nothing changed"))
        assert ingest_stage.run_callbacks(con, secrets) == replace(first, verified_now=0)
        for name, frame in callback_tables(con).items():
            assert_frame_equal(frame, before[name])
        monkeypatch.setattr(ingest_stage, "converge", original)
        write_landing(tmp_path, {"b.jsonl": [make_callback(flat_body(event_id="evt_other", sequence=2))]})
        archive_landing(con, landing_dir)
        second = ingest_stage.run_callbacks(con, secrets)
        after = callback_tables(con)
    assert_a_fresh_home_agrees(tmp_path, landing_dir, secrets, replace(second, verified_now=3), after)
    assert second.received == 3 and second.verified_now == 1


def test_settlements_skip_when_nothing_new_and_rebuild_on_a_new_file(monkeypatch):
    from tests.unit.test_parse_cache import SETTLEMENT_HEADER, settlement

    con = duckdb.connect()
    archive(con, "settlements", "a.csv", SETTLEMENT_HEADER, settlement("r_1"), b"x")
    first = events_stage.run_settlements(con)
    original = events_stage.settle_rows
    monkeypatch.setattr(events_stage, "settle_rows", lambda *_: pytest.fail("rebuilt although nothing changed"))
    assert events_stage.run_settlements(con) == first
    monkeypatch.setattr(events_stage, "settle_rows", original)
    archive(con, "settlements", "b.csv", SETTLEMENT_HEADER, settlement("r_1"), settlement("r_2", net=1))
    second = events_stage.run_settlements(con)
    fresh = duckdb.connect()
    archive(fresh, "settlements", "a.csv", SETTLEMENT_HEADER, settlement("r_1"), b"x")
    archive(fresh, "settlements", "b.csv", SETTLEMENT_HEADER, settlement("r_1"), settlement("r_2", net=1))
    assert events_stage.run_settlements(fresh) == second
    for table in ("settlements", "settlements_quarantine", "settlement_conflicts"):
        assert_frame_equal(con.sql(f"SELECT * FROM {table}").pl(), fresh.sql(f"SELECT * FROM {table}").pl())
    assert second.rows == 1 and second.quarantined == 1 + 1  # r_2: net mismatch; x: malformed


def test_intents_skip_when_nothing_new_and_rebuild_on_a_new_file(monkeypatch):
    from zentra_pipelines import controls

    intent = {"intent_id": "i_1", "tenant_id": "t_1", "scope": "payments", "kind": "payment", "amount_minor": 5,
              "currency": "EUR", "ledger_currency": "EUR", "corridor": "EUR:SEPA:EUR", "actor_id": "a_1",
              "created_at": "2026-11-01T10:00:00Z", "primitives": []}
    lines_a = (json.dumps(intent).encode(), json.dumps(intent).encode(), b"[")
    lines_b = (json.dumps({**intent, "intent_id": "i_2"}).encode(),)
    con = duckdb.connect()
    archive(con, "intents", "a.jsonl", *lines_a)
    first = controls.run_intents(con)
    original = controls.accept_intents
    monkeypatch.setattr(controls, "accept_intents", lambda *_: pytest.fail("rebuilt although nothing changed"))
    assert controls.run_intents(con) == first
    monkeypatch.setattr(controls, "accept_intents", original)
    archive(con, "intents", "b.jsonl", *lines_b)
    second = controls.run_intents(con)
    fresh = duckdb.connect()
    archive(fresh, "intents", "a.jsonl", *lines_a)
    archive(fresh, "intents", "b.jsonl", *lines_b)
    assert controls.run_intents(fresh) == second
    for table in ("intents", "intents_quarantine"):
        assert_frame_equal(con.sql(f"SELECT * FROM {table}").pl(), fresh.sql(f"SELECT * FROM {table}").pl())
    assert (first.received, first.accepted_lines, first.intents) == (3, 2, 1)
    assert (second.received, second.accepted_lines, second.intents) == (4, 3, 2)


def test_a_tenant_added_to_the_secrets_judges_its_quarantined_lines_again(tmp_path, caplog):
    """Quarantined as unknown_tenant while t_alpha had no secret; once it has one, the
    lines land as on a fresh home (same inputs, same state), with a warning."""
    landing_dir = write_landing(tmp_path, {"a.jsonl": [make_callback(flat_body()), "{"]})
    (tmp_path / "without").mkdir()
    without = write_secrets(tmp_path / "without", {"t_beta": DEFAULT_SECRETS["t_beta"]})
    secrets = write_secrets(tmp_path)
    with Warehouse(tmp_path / "home").connect() as con:
        archive_landing(con, landing_dir)
        before = ingest_stage.run_callbacks(con, without)
        assert before.quarantined_by_code == {"malformed_json": 1, "unknown_tenant": 1}
        with caplog.at_level("WARNING", logger="zentra.landing"):
            after = ingest_stage.run_callbacks(con, secrets)
        tables = callback_tables(con)
    assert "the webhook secrets changed: 1 callback line(s) quarantined as unknown_tenant or signature_mismatch " \
           "are judged again" in caplog.text
    assert_a_fresh_home_agrees(tmp_path, landing_dir, secrets, replace(after, verified_now=2), tables)
    assert after.accepted == 1 and after.verified_now == 1


def test_a_secret_retired_later_leaves_accepted_lines_accepted(tmp_path):
    """Verified at receipt with the key then configured: retiring that key does not
    turn history into forgeries."""
    landing_dir = write_landing(tmp_path, {"a.jsonl": [make_callback(flat_body())]})
    secrets = write_secrets(tmp_path)
    (tmp_path / "later").mkdir()
    later = write_secrets(tmp_path / "later", {"t_beta": DEFAULT_SECRETS["t_beta"]})
    with Warehouse(tmp_path / "home").connect() as con:
        archive_landing(con, landing_dir)
        assert ingest_stage.run_callbacks(con, secrets).accepted == 1
        assert ingest_stage.run_callbacks(con, later).accepted == 1
