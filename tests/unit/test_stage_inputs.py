"""A stage whose inputs and code are unchanged skips its rebuild; anything new rebuilds it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import duckdb
import pytest
from polars.testing import assert_frame_equal

from tests.helpers.callbacks import DEFAULT_SECRETS, T0, flat_body, make_callback, write_landing, write_secrets
from tests.unit.test_parse_cache import archive, delivery
from zentra_pipelines import controls, events_stage, intake, stage_inputs
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


def second_file_updates_in_place(source: str, run, files, table: str, tables) -> tuple[object, duckdb.DuckDBPyConnection]:
    """``run`` on ``files[0]``, then on ``files[1]`` too, in one warehouse: ``table`` keeps its
    oid (updated in place, not rewritten), and the report and ``tables(con)`` are a fresh
    warehouse's given both files at once. Returns (the second report, the warehouse)."""
    con = duckdb.connect()
    archive(con, source, files[0][0], *files[0][1])
    run(con)
    oid = f"SELECT table_oid FROM duckdb_tables() WHERE table_name = '{table}'"
    first = con.sql(oid).fetchall()
    archive(con, source, files[1][0], *files[1][1])
    report = run(con)
    assert con.sql(oid).fetchall() == first
    fresh = duckdb.connect()
    for name, lines in files:
        archive(fresh, source, name, *lines)
    assert run(fresh) == report
    assert tables(fresh) == tables(con)
    return report, con


def test_a_new_delivery_file_replaces_only_the_deliveries_it_names_in_place():
    files = (
        ("a.jsonl", (delivery(), delivery(delivery_id="dlv_2"), delivery(delivery_id="dlv_3", status_code=500), b"{")),
        # a copy of dlv_001, another content for dlv_2 (now a conflict), a new dlv_4, a bad line
        ("b.jsonl", (delivery(), delivery(delivery_id="dlv_2", status_code=503),
                     delivery(delivery_id="dlv_4", attempt=2, attempted_at="2026-11-01T10:00:05Z"), b"[")),
    )
    ordered = {"deliveries": " ORDER BY ALL"}  # a set; the others are rewritten whole, in order
    report, con = second_file_updates_in_place(
        "deliveries", events_stage.run_deliveries, files, "deliveries",
        lambda c: {t: c.sql(f"SELECT * FROM {t}" + ordered.get(t, "")).fetchall() for t in TABLES})
    assert con.sql("SELECT delivery_id, copies FROM deliveries ORDER BY 1").fetchall() == [
        ("dlv_001", 2), ("dlv_3", 1), ("dlv_4", 1)]
    assert (report.rows, report.quarantined, report.replay_queue) == (3, 4, 0)


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


def test_outputs_count_as_built_without_files_only_when_the_digest_without_them_is_the_recorded_one():
    con = duckdb.connect()
    archive(con, "deliveries", "a.jsonl", delivery())
    events_stage.run_deliveries(con)
    archive(con, "deliveries", "b.jsonl", delivery(delivery_id="dlv_2"))
    events_stage.parse_delivery_lines(con)
    (b_sha,) = con.sql("SELECT file_sha256 FROM landing_lines WHERE source_file = 'deliveries/b.jsonl'").fetchall()[0]
    parts = [intake.parser_version("parse_deliveries")]
    outputs = ("deliveries", "deliveries_quarantine", "webhook_health", "replay_queue")
    built = [stage_inputs.built_without(con, "deliveries_inputs", "deliveries_parsed", parts, files, outputs)
             for files in ([b_sha], None, [], [b_sha, "another"])]
    assert built == [True, False, False, True]  # a file with no rows leaves the digest as it is
    con.execute("UPDATE deliveries_inputs SET inputs_sha256 = 'other'")
    assert not stage_inputs.built_without(con, "deliveries_inputs", "deliveries_parsed", parts, [b_sha], outputs)


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


EVENTS_OID = "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'callback_events'"


def sorted_callback_tables(con: duckdb.DuckDBPyConnection) -> dict:
    """The callback tables, callback_events as a set (an in-place update leaves its rows in
    another physical order), the others in their physical order (rewritten whole, as a full
    build orders them)."""
    return {t: con.sql(f"SELECT * FROM {t}" + (" ORDER BY ALL" if t == "callback_events" else "")).fetchall()
            for t in CALLBACK_TABLES}


def a_day_then_the_next(tmp_path, *, before_second_run=None) -> tuple[list, list, dict, ingest_stage.CallbackReport]:
    """Two runs on one home: an event with a later copy, one whose later copy conflicts
    (naming another ref), one untouched; then the copies, a newer event for the first ref and a bad line. Returns the
    callback_events oid after each run, the tables and the second report."""
    landing_dir = write_landing(tmp_path, {"a.jsonl": [
        make_callback(flat_body()),
        make_callback(flat_body(event_id="evt_0002", intent_id="int_0002", provider_ref="pr_0002")),
        make_callback(flat_body(event_id="evt_0003", intent_id="int_0003", provider_ref="pr_0003")),
    ]})
    secrets = write_secrets(tmp_path)
    with Warehouse(tmp_path / "home").connect() as con:
        archive_landing(con, landing_dir)
        ingest_stage.run_callbacks(con, secrets)
        first = con.sql(EVENTS_OID).fetchall()
        write_landing(tmp_path, {"b.jsonl": [
            make_callback(flat_body(), received_at=T0 + timedelta(hours=1)),
            # another content naming another ref: pr_0002 loses its only event, pr_0005 gets none
            make_callback(flat_body(event_id="evt_0002", intent_id="int_0002", provider_ref="pr_0005", amount_minor=1)),
            make_callback(flat_body(event_id="evt_0004", type="payment.settled", sequence=2)),
            "{",
        ]})
        archive_landing(con, landing_dir)
        if before_second_run:
            before_second_run(con)
        report = ingest_stage.run_callbacks(con, secrets)
        second = con.sql(EVENTS_OID).fetchall()
        tables = sorted_callback_tables(con)
        state = con.sql("SELECT provider_ref, event_id, events_seen FROM provider_state ORDER BY ALL").fetchall()
        copies = con.sql("SELECT event_id, copies, count(*) FROM callback_events GROUP BY ALL ORDER BY ALL").fetchall()
    with Warehouse(tmp_path / "fresh").connect() as fresh:
        archive_landing(fresh, landing_dir)
        assert ingest_stage.run_callbacks(fresh, secrets) == replace(report, verified_now=7)
        assert sorted_callback_tables(fresh) == tables
    assert state == [("pr_0001", "evt_0004", 2), ("pr_0003", "evt_0003", 1)]
    assert copies == [("evt_0001", 2, 2), ("evt_0003", 1, 1), ("evt_0004", 1, 1)]
    return first, second, tables, report


def test_new_callback_files_update_the_events_in_place_as_a_fresh_home_builds_them(tmp_path):
    first, second, tables, report = a_day_then_the_next(tmp_path)
    assert second == first  # updated in place, not rewritten
    assert (report.accepted, report.quarantined, report.conflicts) == (4, 3, 1)
    assert [code for *_, code, _detail, _at, _sha in tables["callbacks_quarantine"]] == [
        "event_conflict", "event_conflict", "malformed_json"]


def test_a_new_file_of_bad_lines_only_adds_to_the_quarantine(tmp_path):
    landing_dir = write_landing(tmp_path, {"a.jsonl": [make_callback(flat_body())]})
    secrets = write_secrets(tmp_path)
    with Warehouse(tmp_path / "home").connect() as con:
        archive_landing(con, landing_dir)
        first = ingest_stage.run_callbacks(con, secrets)
        write_landing(tmp_path, {"b.jsonl": ["{", make_callback(flat_body(event_id="evt_0009"), secret="whsec_AAAA")]})
        archive_landing(con, landing_dir)
        report = ingest_stage.run_callbacks(con, secrets)
        tables = sorted_callback_tables(con)
    assert (report.accepted, report.quarantined, report.provider_refs) == (first.accepted, 2, first.provider_refs)
    with Warehouse(tmp_path / "fresh").connect() as fresh:
        archive_landing(fresh, landing_dir)
        assert ingest_stage.run_callbacks(fresh, secrets) == replace(report, verified_now=3)
        assert sorted_callback_tables(fresh) == tables


def test_callback_events_are_rewritten_whole_when_the_published_tables_were_built_from_other_lines(tmp_path):
    first, second, _, _ = a_day_then_the_next(
        tmp_path, before_second_run=lambda con: con.execute("UPDATE callbacks_inputs SET inputs_sha256 = 'other'"))
    assert second != first


INTENT = {"intent_id": "i_1", "tenant_id": "t_1", "scope": "payments", "kind": "payment", "amount_minor": 5,
          "currency": "EUR", "ledger_currency": "EUR", "corridor": "EUR:SEPA:EUR", "actor_id": "a_1",
          "created_at": "2026-11-01T10:00:00Z", "primitives": []}


def intent_line(**changes: object) -> bytes:
    return json.dumps({**INTENT, **changes}).encode()


def intent_tables(con: duckdb.DuckDBPyConnection) -> dict:
    """intents as a set (updated in place), the quarantine in its physical order."""
    return {"intents": con.sql("SELECT * FROM intents ORDER BY ALL").fetchall(),
            "intents_quarantine": con.sql("SELECT * FROM intents_quarantine").fetchall()}


def test_a_new_intent_file_replaces_only_the_intents_it_names_in_place():
    files = (
        ("a.jsonl", (intent_line(), intent_line(intent_id="i_2"), intent_line(intent_id="i_3"), b"{")),
        # a copy of i_1, another body for i_2 (now a conflict), a new i_4, a bad line
        ("b.jsonl", (intent_line(), intent_line(intent_id="i_2", amount_minor=6), intent_line(intent_id="i_4"), b"[")),
    )
    report, con = second_file_updates_in_place("intents", controls.run_intents, files, "intents", intent_tables)
    assert con.sql("SELECT intent_id, copies FROM intents ORDER BY 1").fetchall() == [("i_1", 2), ("i_3", 1), ("i_4", 1)]
    assert (report.received, report.accepted_lines, report.quarantined) == (8, 4, 4)


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
    assert settlement_tables(con) == settlement_tables(fresh)
    assert second.rows == 1 and second.quarantined == 1 + 1  # r_2: net mismatch; x: malformed


def settlement_tables(con: duckdb.DuckDBPyConnection) -> dict:
    """settlements as a set (updated in place), the quarantine and conflicts in their physical order."""
    return {t: con.sql(f"SELECT * FROM {t}" + (" ORDER BY ALL" if t == "settlements" else "")).fetchall()
            for t in ("settlements", "settlements_quarantine", "settlement_conflicts")}


def test_a_new_settlement_file_replaces_only_the_refs_it_names_in_place():
    from tests.unit.test_parse_cache import SETTLEMENT_HEADER, settlement

    files = (
        ("a.csv", (SETTLEMENT_HEADER, settlement("r_1"), settlement("r_2"), settlement("r_3"), b"x")),
        # a copy of r_1, another content for r_2 (now a conflict), a new r_4, a bad line
        ("b.csv", (SETTLEMENT_HEADER, settlement("r_1"), b"p_1,r_2,t_1,EUR,100,20,80,2026-11-01T10:00:00Z,b_1",
                   settlement("r_4"), b"y")),
    )
    report, con = second_file_updates_in_place(
        "settlements", events_stage.run_settlements, files, "settlements", settlement_tables)
    assert con.sql("SELECT provider_ref, copies FROM settlements ORDER BY 1").fetchall() == [
        ("r_1", 2), ("r_3", 1), ("r_4", 1)]
    assert (report.rows, report.quarantined, report.conflicts) == (3, 4, 1)


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
    assert intent_tables(con) == intent_tables(fresh)
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
