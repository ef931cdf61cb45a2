"""Materialize the whole graph in-process on a tiny generated sample, as the UI and `zentra run` do."""

from __future__ import annotations

import gc
import re
import shutil
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from dagster_project.defs.contracts.checks import DATA_CONTRACT_STRUCTURE, DATA_CONTRACT_VALUES
from dagster_project.defs.ingest.checks import CALLBACKS_CONSERVED, FILES_BALANCED, ONE_STATE_PER_REF
from dagster_project.defs.ledger.checks import LEDGER_INVARIANTS
from dagster_project.defs.lifecycle import PACKETS_ASSET
from dagster_project.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from dagster_project.defs.resources import ZentraResource
from dagster_project.pipeline import execute, failures, input_failure, load_definitions
from zentra_pipelines.settings import Settings

DAY = "2026-11-20"  # the sample's base date


def _resource(sample: Path, home: Path) -> ZentraResource:
    return ZentraResource(landing=str(sample / "landing"), source_db=str(sample / "source.sqlite"),
                          policies=str(sample / "policies.yaml"), secrets=str(sample / "secrets.json"),
                          home=str(home))


def _settings(sample: Path, home: Path, source_db: Path | None = None) -> Settings:
    return Settings.resolve({"landing": str(sample / "landing"), "source_db": str(source_db or sample / "source.sqlite"),
                             "policies": str(sample / "policies.yaml"), "secrets": str(sample / "secrets.json"),
                             "home": str(home)}, {})


@pytest.fixture(scope="module")
def materialized(tiny_sample, tmp_path_factory):
    defs = load_definitions()
    home = tmp_path_factory.mktemp("materialize_home")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        resources={"zentra": _resource(tiny_sample, home)},
        partition_key=DAY, instance=instance, raise_on_error=False,
    )
    yield defs, result, home, instance
    instance.dispose()


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, object]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [key]]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_whole_graph_materializes_for_one_day(materialized):
    defs, result, _, _ = materialized
    assert result.success, failures(result)
    assert failures(result) == []
    materialized_keys = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized_keys == set(defs.resolve_asset_graph().get_all_asset_keys())


def test_every_check_ran_and_every_blocking_check_passed(materialized):
    defs, result, _, _ = materialized
    evaluations = result.get_asset_check_evaluations()
    ran = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations}
    declared = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert ran == declared
    blocking = [e for e in evaluations if e.severity == dg.AssetCheckSeverity.ERROR]
    assert blocking and all(e.passed for e in blocking), [e.check_name for e in blocking if not e.passed]
    assert {"ledger_integrity_invariants", "callbacks_rows_conserved", "one_state_per_provider_ref",
            "landing_files_balanced"} <= {e.check_name for e in blocking}
    # the sample plants negative balances and open clearing accounts: findings warn, never block
    findings = {e.check_name: e for e in evaluations if e.severity == dg.AssetCheckSeverity.WARN}
    assert not findings["no_negative_balances"].passed


def test_packets_are_sealed_only_for_the_partition_day(materialized):
    _, _, home, _ = materialized
    zips = sorted((home / "packets").rglob("v*.zip"))
    assert zips and {p.parent.name for p in zips} == {DAY}
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.sql("SELECT DISTINCT CAST(period AS VARCHAR) FROM packets").fetchall()
    finally:
        con.close()
    assert rows == [(DAY,)]


def test_metadata_a_controller_reads_at_a_glance(materialized):
    _, result, _, _ = materialized
    provider = _metadata(result, "provider_state")
    assert {"received", "accepted", "quarantined", "quarantined_by_code"} <= set(provider)
    assert provider["received"] == provider["accepted"] + provider["quarantined"]
    assert "| code |" in provider["quarantined_by_code"]
    assert {"received", "quarantined", "quarantined_by_code"} <= set(_metadata(result, "intents"))
    assert {"rows", "quarantined", "quarantined_by_code"} <= set(_metadata(result, "settlements"))
    assert "open_reviews" in _metadata(result, "review_queue")
    breaks = _metadata(result, "reconciliation_breaks")
    assert breaks["breaks"] > 0 and "break type" in breaks["breaks_by_type"]
    assert "currency" in breaks["amount_at_risk"]
    health = _metadata(result, "webhook_health")
    assert 0 <= health["webhook_health_pct"] <= 100 and "replay_queue" in health
    assert _metadata(result, "ledger_balances")["balances_checked"] > 0
    packets = _metadata(result, PACKETS_ASSET)
    assert packets["key_id"].startswith("ed25519:") and packets["tenants_sealed"] > 0
    table = packets["packets"]
    for column in ("tenant", "version", "merkle root", "key id", "packet"):
        assert column in table
    assert f"packets/t_alpha/{DAY}/v1.zip" in table


def test_partition_metadata_is_per_day(materialized):
    _, _, _, instance = materialized
    event = instance.get_latest_materialization_event(dg.AssetKey(PACKETS_ASSET))
    mat = event.asset_materialization
    assert mat.partition == DAY
    assert mat.metadata["tenants_sealed"].value > 0


def test_zentra_run_path_seals_every_data_day_in_one_packets_run(tiny_sample, tmp_path):
    sample = tmp_path / "sample"
    shutil.copytree(tiny_sample, sample)
    settings = _settings(sample, tmp_path / "home")
    first = execute(settings)
    assert first.success and failures(first) == [], failures(first)
    upstream, packets = first.results
    assert upstream.dagster_run.tags.get(RANGE_START_TAG) is None
    start, end = date.fromisoformat(packets.dagster_run.tags[RANGE_START_TAG]), \
        date.fromisoformat(packets.dagster_run.tags[RANGE_END_TAG])
    sealed_days = {p.parent.name for p in (settings.home / "packets").rglob("v*.zip")}
    assert sealed_days and min(sealed_days) == start.isoformat() and max(sealed_days) <= end.isoformat()
    assert {m.asset_key.path[0] for m in packets.get_asset_materialization_events()} == {PACKETS_ASSET}
    again = execute(settings)
    assert again.success
    con = duckdb.connect(str(settings.home / "warehouse.duckdb"), read_only=True)
    try:
        created, days = con.sql("SELECT sum(CAST(created AS INT)), count(DISTINCT period) FROM packets_run").fetchall()[0]
    finally:
        con.close()
    assert created == 0 and days == len(sealed_days)  # idempotent: the same inputs seal nothing new
    assert gc.isenabled()  # paused while the definitions load, then given back


PROGRESS_LINE = re.compile(r"^\[ *(\d+\.\d) s\] (.+)$")


def test_progress_names_every_step_as_it_finishes_and_every_check_with_its_verdict(tiny_sample, tmp_path):
    lines: list[str] = []
    result = execute(_settings(tiny_sample, tmp_path / "home"), progress=lines.append)
    assert result.success, failures(result)
    parsed = [PROGRESS_LINE.match(line) for line in lines]
    assert all(parsed), lines
    seconds = [float(m.group(1)) for m in parsed]
    assert seconds == sorted(seconds)
    said = [m.group(2) for m in parsed]
    assets = {"landing_archive", "provider_state", "intents", "policy_controls", "ledger", "routing_decisions",
              "settlements", "delivery_health", "data_contracts", "reconciliation_breaks", "ingest_accounting",
              "intent_timeline", "audit_packets"}
    assert {line[:-len(" done")] for line in said if line.endswith(" done")} == assets
    assert said[-1] == "audit_packets done"  # the packets run comes after every upstream step
    for check, asset in [(LEDGER_INVARIANTS, "ledger_balances"), (CALLBACKS_CONSERVED, "provider_state"),
                         (ONE_STATE_PER_REF, "provider_state"), (FILES_BALANCED, "ingest_accounting"),
                         (DATA_CONTRACT_STRUCTURE, "data_contracts"), (DATA_CONTRACT_VALUES, "data_contracts")]:
        assert f"check {check} on {asset} passed" in said  # the blocking ones
    checks = [line for line in said if line.startswith("check ")]
    assert len(checks) == len(load_definitions().resolve_asset_graph().asset_check_keys) and all(
        line.endswith((" passed", " FAILED (blocking)", " warning (reported, not blocking)")) for line in checks)


def test_a_step_failing_on_its_input_is_told_apart_from_a_failed_check(tiny_sample, tmp_path):
    """A source database without its postings table, met inside the run (the CLI's preflight
    would have refused it first): the ledger step fails on input, so `zentra run` exits 2."""
    import sqlite3

    db = tmp_path / "no_postings.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE accounts (account_id TEXT, tenant_id TEXT, type TEXT, allow_negative BOOLEAN)")
    settings = _settings(tiny_sample, tmp_path / "home", source_db=db)
    progress: list[str] = []
    result = execute(settings, progress=progress.append)
    assert not result.success
    assert input_failure(result)
    assert any(line.endswith("] ledger FAILED") for line in progress), progress
    assert any(line.startswith("step ledger failed: ") and "ledger_postings" in line for line in failures(result))


def test_a_landing_sensor_run_executes_the_whole_graph_over_the_calendar(tiny_sample, tmp_path):
    """What the sensor requests (whole job, range tags over the calendar) really runs, in one run."""
    from dagster_project.defs.schedules import JOB_NAME
    from dagster_project.defs.sensors import landing_files_sensor
    from dagster_project.pipeline import run_config

    settings = _settings(tiny_sample, tmp_path / "home")
    ctx = dg.build_sensor_context(resources={"zentra": ZentraResource(landing=str(settings.landing))})
    [request] = landing_files_sensor.evaluate_tick(ctx).run_requests
    job = load_definitions().resolve_job_def(JOB_NAME)
    result = job.execute_in_process(run_config=run_config(settings), tags=request.tags, raise_on_error=False)
    assert result.success, failures(result)
    packets = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [PACKETS_ASSET]]
    first, last = request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]
    assert packets[0].materialization.partition == first and packets[-1].materialization.partition == last
    sealed = {p.parent.name for p in (settings.home / "packets").rglob("v*.zip")}
    assert sealed and all(first <= day <= last for day in sealed)
    by_day = {e.materialization.partition: e.materialization.metadata["tenants_sealed"].value for e in packets}
    assert {d for d, n in by_day.items() if n} == sealed  # days without data say so: tenants_sealed 0


def test_a_ui_step_on_a_home_a_zentra_run_holds_fails_at_once_naming_that_run(tiny_sample, tmp_path):
    from tests.helpers.home_lock import held_elsewhere

    defs = load_definitions()
    home = tmp_path / "home"
    with held_elsewhere(home) as holder:
        result = dg.materialize([defs.get_assets_def("landing_archive")], resources={"zentra": _resource(tiny_sample, home)},
                                raise_on_error=False)
    assert not result.success
    assert failures(result) == [f"step landing_archive failed: zentra_pipelines.adapters.home_lock.HomeBusyError: "
                                f"another zentra run is using {home} "
                                f"(pid {holder.pid}): run again when it has ended"]
    assert not (home / "warehouse.duckdb").exists()


def test_a_step_meeting_a_warehouse_held_open_elsewhere_fails_on_its_surroundings(materialized, tiny_sample, tmp_path):
    """Exit 2 under `zentra run` (INPUT_ERRORS), with the holder's pid, not a DuckDB stack."""
    from tests.helpers.home_lock import warehouse_open_elsewhere

    defs, _, built, _ = materialized
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(built / "warehouse.duckdb", home / "warehouse.duckdb")
    with warehouse_open_elsewhere(home) as holder:
        result = dg.materialize([defs.get_assets_def("routing_decisions")],
                                resources={"zentra": _resource(tiny_sample, home)}, raise_on_error=False)
    assert input_failure(result)
    assert failures(result) == [f"step routing_decisions failed: zentra_pipelines.adapters.warehouse.WarehouseBusyError: "
                                f"{home / 'warehouse.duckdb'} is open in another process (pid {holder.pid}): "
                                "close that session and run again"]


def test_landing_archive_says_every_landing_entry_was_input(materialized):
    _, _, _, instance = materialized
    mat = instance.get_latest_materialization_event(dg.AssetKey("landing_archive")).asset_materialization
    assert mat.metadata["not_read"].value == "_every entry of the landing folder is input_"
