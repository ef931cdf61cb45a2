"""The seal gate: ``audit_packets`` run on its own (a UI backfill, a second run) seals
nothing on top of a state that failed, or never passed, a blocking check."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_project.defs.evidence.gate import BLOCKING_CHECKS
from dagster_project.defs.ingest.checks import ONE_STATE_PER_REF
from dagster_project.defs.ledger.checks import LEDGER_INVARIANTS
from dagster_project.defs.lifecycle import PACKETS_ASSET
from dagster_project.defs.resources import ZentraResource
from dagster_project.defs.schedules import daily_reconciliation_schedule
from dagster_project.defs.sensors import root_message
from dagster_project.pipeline import load_definitions
from zentra_pipelines import integrity

DAY = "2026-11-20"  # the sample's base date


def _resource(sample: Path, home: Path) -> ZentraResource:
    return ZentraResource(landing=str(sample / "landing"), source_db=str(sample / "source.sqlite"),
                          policies=str(sample / "policies.yaml"), secrets=str(sample / "secrets.json"),
                          home=str(home))


def _run(defs, sample: Path, home: Path, instance: dg.DagsterInstance, selection=None,
         partition_key: str | None = DAY) -> dg.ExecuteInProcessResult:
    return dg.materialize([*defs.assets, *defs.asset_checks], resources={"zentra": _resource(sample, home)},
                          partition_key=partition_key, instance=instance, raise_on_error=False, selection=selection)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = event.step_failure_data.user_failure_data
    return error.description if error is not None else root_message(event.step_failure_data.error)


def _packets(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in (home / "packets").rglob("v*.zip"))


def _execute(con_path: Path, sql: str) -> None:
    con = duckdb.connect(str(con_path))
    try:
        con.execute(sql)
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tiny_sample, tmp_path_factory):
    """The whole graph materialized for DAY on one instance; the home as it left it."""
    defs = load_definitions()
    home = tmp_path_factory.mktemp("gate_home")
    instance = dg.DagsterInstance.ephemeral()
    result = _run(defs, tiny_sample, home, instance)
    assert result.success
    yield defs, home, instance
    instance.dispose()


def _copy(home: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    return copy


PACKETS = dg.AssetSelection.assets(PACKETS_ASSET)


def test_the_gate_knows_every_blocking_check_of_the_definitions(built):
    defs, _, _ = built
    declared = {spec.key for checks in defs.asset_checks for spec in checks.check_specs if spec.blocking}
    assert all(key.asset_key != dg.AssetKey(PACKETS_ASSET) for key in declared)  # its own check is not the gate's
    assert set(BLOCKING_CHECKS) == declared


def test_packets_alone_after_a_passing_run_reuse_the_recorded_ledger_verdict_and_seal(built, tiny_sample, tmp_path):
    defs, home, instance = built
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:  # the blocking check recorded its verdict against the ledger tables it judged
        recorded = con.sql("SELECT fingerprint, violations FROM integrity_verdicts").fetchall()
        assert recorded == [(integrity.tables_fingerprint(con, integrity.LEDGER_TABLES), "[]")]
    finally:
        con.close()
    copy = _copy(home, tmp_path)
    result = _run(defs, tiny_sample, copy, instance, PACKETS)
    assert result.success
    assert _packets(copy) == _packets(home)  # same state: nothing new sealed


def test_a_failed_blocking_check_stops_a_later_packets_only_run(built, tiny_sample, tmp_path):
    defs, home, _ = built
    copy = _copy(home, tmp_path)
    _execute(copy / "warehouse.duckdb", "INSERT INTO provider_state SELECT * FROM provider_state LIMIT 1")
    with dg.DagsterInstance.ephemeral() as instance:
        check = dg.AssetCheckKey(dg.AssetKey("provider_state"), ONE_STATE_PER_REF)
        checked = _run(defs, tiny_sample, copy, instance, dg.AssetSelection.checks(check), None)
        assert not checked.success  # the blocking check failed in its own run
        before = _packets(copy)
        result = _run(defs, tiny_sample, copy, instance, PACKETS)
    assert not result.success
    message = _failure(result)
    assert message.startswith("Nothing sealed: the warehouse fails a blocking integrity invariant.")
    assert f"provider_state/{ONE_STATE_PER_REF}: " in message and "has 2 state rows" in message
    assert _packets(copy) == before


def test_on_an_instance_that_never_checked_the_state_the_invariants_run_before_sealing(built, tiny_sample, tmp_path):
    defs, home, _ = built
    copy = _copy(home, tmp_path)
    _execute(copy / "warehouse.duckdb", "INSERT INTO provider_state SELECT * FROM provider_state LIMIT 1")
    before = _packets(copy)
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(defs, tiny_sample, copy, instance, PACKETS)
    assert not result.success
    message = _failure(result)
    assert f"provider_state/{ONE_STATE_PER_REF}: " in message and "has 2 state rows" in message
    assert _packets(copy) == before


@pytest.mark.parametrize("edit", ["one_leg", "both_legs"])
def test_a_ledger_edited_after_its_check_passed_is_judged_again_and_not_sealed(built, tiny_sample, tmp_path, edit):
    """Edited outside Dagster after the blocking check passed (the instance still shows
    the pass): the ledger tables' fingerprint moved, so the invariants run again. Both
    legs of a journal scaled alike still balance, but no longer match the balances."""
    defs, home, instance = built
    copy = _copy(home, tmp_path)
    con = duckdb.connect(str(copy / "warehouse.duckdb"))
    journal, posting = con.sql(
        "SELECT journal_id, posting_id FROM ledger_entries WHERE CAST(posted_at AS DATE) = $day "
        "AND amount_minor > 0 ORDER BY tenant_id, posting_id LIMIT 1", params={"day": DAY}).fetchall()[0]
    if edit == "one_leg":
        con.execute("UPDATE ledger_entries SET amount_minor = amount_minor + 100 WHERE posting_id = ?", [posting])
    else:
        con.execute("UPDATE ledger_entries SET amount_minor = amount_minor * 10 WHERE journal_id = ?", [journal])
    con.close()
    before = _packets(copy)
    result = _run(defs, tiny_sample, copy, instance, PACKETS)
    assert not result.success
    message = _failure(result)
    assert message.startswith("Nothing sealed: the warehouse fails a blocking integrity invariant.")
    assert f"ledger_balances/{LEDGER_INVARIANTS}: " in message
    assert ("sums to 100" in message) if edit == "one_leg" else ("but entries sum to" in message)
    assert _packets(copy) == before  # no v2 of that day for anyone to download


def test_packets_on_a_fresh_home_say_nothing_is_built_yet(built, tiny_sample, tmp_path):
    defs, _, _ = built
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(defs, tiny_sample, tmp_path / "fresh", instance, PACKETS)
    assert not result.success
    assert _failure(result).startswith("Nothing sealed: the warehouse has no tables yet. Materialize the upstream")
    assert not (tmp_path / "fresh" / "packets").exists() or _packets(tmp_path / "fresh") == []


def test_packets_on_a_partly_built_home_name_the_missing_tables(built, tiny_sample, tmp_path):
    defs, _, _ = built
    home = tmp_path / "part"
    with dg.DagsterInstance.ephemeral() as instance:
        first = _run(defs, tiny_sample, home, instance, dg.AssetSelection.assets("provider_state"), None)
        assert first.success
        result = _run(defs, tiny_sample, home, instance, PACKETS)
    assert not result.success
    message = _failure(result)
    assert "ledger_entries" in message and "callback_events" not in message
    assert _packets(home) == [] if (home / "packets").exists() else True


def test_packets_without_a_partition_say_how_to_choose_one(built, tiny_sample, tmp_path):
    defs, home, instance = built
    result = _run(defs, tiny_sample, _copy(home, tmp_path), instance, PACKETS, None)
    assert not result.success
    assert _failure(result).startswith("audit_packets seals UTC days: choose a day or a range of days")


def test_ingest_accounting_alone_on_a_fresh_home_names_what_is_missing(built, tiny_sample, tmp_path):
    defs, _, _ = built
    with dg.DagsterInstance.ephemeral() as instance:
        result = _run(defs, tiny_sample, tmp_path / "fresh", instance,
                      dg.AssetSelection.assets("ingest_accounting"), None)
    assert not result.success
    assert "table landing_lines has not been built yet: materialize its upstream asset first" in _failure(result)


def test_the_first_tick_of_the_calendar_skips_the_day_before_it():
    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc))
    data = daily_reconciliation_schedule.evaluate_tick(ctx)
    assert data.run_requests == [] and "2025-12-31 is before the evidence calendar starts" in data.skip_message


def test_a_tenant_day_that_cannot_be_sealed_fails_the_packets_check_and_the_others_keep_their_metadata(
        built, tiny_sample, tmp_path):
    """One tenant-day's folder is unusable: the run's other tenant-days are sealed and their
    day's metadata recorded, and the packets' own blocking check fails naming the refused one."""
    defs, home, instance = built
    copy = _copy(home, tmp_path)
    con = duckdb.connect(str(copy / "warehouse.duckdb"))
    keys = con.sql("SELECT DISTINCT tenant_id FROM callback_events WHERE CAST(received_at AS DATE) = $d "
                   "ORDER BY 1 LIMIT 2", params={"d": DAY}).fetchall()
    for (tenant,) in keys:
        con.execute("UPDATE callback_events SET detail = 'late correction' WHERE rowid = (SELECT min(rowid) "
                    "FROM callback_events WHERE tenant_id = $t AND CAST(received_at AS DATE) = $d)",
                    {"t": tenant, "d": DAY})
    con.close()
    (refused,), (sealed,) = keys
    folder = copy / "packets" / refused / DAY
    shutil.rmtree(folder)
    folder.write_text("not a folder\n")
    with dg.DagsterInstance.ephemeral() as fresh:
        result = _run(defs, tiny_sample, copy, fresh, PACKETS)
        [check] = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        [mat] = [e.event_specific_data.materialization for e in result.all_events
                 if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert f"{refused} {DAY}: not sealed: " in check.metadata["first"].value
    assert mat.partition == DAY and f"{sealed} v2" in mat.metadata["versions"].value
    assert (copy / "packets" / sealed / DAY / "v2.zip").is_file()


def test_a_checked_table_missing_fails_the_gate_naming_the_asset(built, tiny_sample, tmp_path):
    """Every table packets seal from is there, but one a blocking check reads is not."""
    defs, home, instance = built
    copy = _copy(home, tmp_path)
    _execute(copy / "warehouse.duckdb", "DROP TABLE ingest_accounting")
    result = _run(defs, tiny_sample, copy, instance, PACKETS)
    assert not result.success
    message = _failure(result)
    assert "ingest_accounting/landing_files_balanced: cannot be judged" in message
    assert "materialize ingest_accounting" in message
