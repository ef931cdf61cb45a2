"""The definitions load, validate and say what the finance team needs to read in the UI."""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.defs.lifecycle import GROUPS, OWNERS, PACKETS_ASSET, POOL, STAGES
from dagster_project.defs.partitions import DAILY, RANGE_END_TAG, RANGE_START_TAG, calendar_bounds, window_days
from dagster_project.defs.resources import ZentraResource
from dagster_project.defs.schedules import JOB_NAME, daily_reconciliation_schedule
from dagster_project.defs.sensors import (
    FAILURES_FILE,
    append_failure,
    failure_record,
    landing_files_sensor,
    redact,
    root_message,
)
from dagster_project.pipeline import INSTANCE_YAML, load_definitions, upstream_keys
from tests.dagster.support import BIN, REPO, clean_env


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return load_definitions()


@pytest.fixture(scope="module")
def graph(defs):
    return defs.resolve_asset_graph()


def test_dagster_definitions_validate_the_workspace(tmp_path):
    proc = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=clean_env(DAGSTER_HOME=str(tmp_path)), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful for code location zentra" in proc.stdout + proc.stderr


def test_dg_lists_every_definition(tmp_path, defs, graph):
    proc = subprocess.run(
        [str(BIN / "dg"), "list", "defs", "--json"],
        cwd=REPO, env=clean_env(DAGSTER_HOME=str(tmp_path)), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = json.loads(proc.stdout[proc.stdout.index("{"):])
    keys = {a["asset_key"] for a in listed["assets"]}
    assert keys == {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {a["group_name"] for a in listed["assets"]} == set(GROUPS)
    assert {s["name"] for s in listed["schedules"]} == {"daily_reconciliation_schedule"}
    assert {s["name"] for s in listed["sensors"]} == {"landing_files_sensor", "record_run_failures"}
    assert JOB_NAME in {j["name"] for j in listed["jobs"]}
    assert {r["name"] for r in listed["resources"]} == {"zentra"}
    checks = {c["name"] for c in listed["asset_checks"]}
    assert {"callbacks_rows_conserved", "one_state_per_provider_ref", "landing_files_balanced",
            "ledger_integrity_invariants", "no_negative_balances", "clearing_accounts_return_to_zero"} <= checks


def test_every_asset_reads_in_finance_terms(graph):
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.group_name in GROUPS, name
        assert node.tags.get("lifecycle") in STAGES, name
        assert node.description and len(node.description) > 40, name
        assert set(OWNERS) <= set(node.owners), name
        assert node.pools == {POOL}, f"{name} must write through the one-writer pool"
    assert {graph.get(k).tags["lifecycle"] for k in graph.get_all_asset_keys()} == set(STAGES)


def test_only_the_packets_are_partitioned_by_utc_day(defs, graph):
    packets = graph.get(dg.AssetKey(PACKETS_ASSET))
    assert packets.partitions_def == DAILY
    assert isinstance(DAILY, dg.DailyPartitionsDefinition)
    assert DAILY.timezone == "UTC" and DAILY.start == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert packets.backfill_policy == dg.BackfillPolicy.single_run()
    today = datetime.now(timezone.utc).date()
    assert DAILY.get_last_partition_key() == today.isoformat()  # end_offset=1: today's partition exists
    upstream = upstream_keys(defs)
    assert dg.AssetKey(PACKETS_ASSET) not in upstream
    assert len(upstream) == len(graph.get_all_asset_keys()) - 1
    assert all(graph.get(k).partitions_def is None for k in upstream)


def test_window_days_and_calendar():
    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    assert window_days(start, datetime(2026, 11, 23, tzinfo=timezone.utc)) == {
        date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)}
    assert calendar_bounds(datetime(2026, 3, 5, 12, tzinfo=timezone.utc)) == (date(2026, 1, 1), date(2026, 3, 5))


def test_schedule_closes_the_previous_utc_day(defs):
    assert daily_reconciliation_schedule.cron_schedule == "0 2 * * *"
    assert daily_reconciliation_schedule.execution_timezone == "UTC"
    assert daily_reconciliation_schedule.job_name == JOB_NAME
    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 21, 2, 0, tzinfo=timezone.utc),
                                    repository_def=defs.get_repository_def())
    request = daily_reconciliation_schedule.evaluate_tick(ctx).run_requests[0]
    assert request.partition_key == "2026-11-20"
    assert request.run_key == "close-2026-11-20"


def test_schedule_job_covers_the_whole_graph(defs, graph):
    job = defs.resolve_job_def(JOB_NAME)
    assert job.partitions_def == DAILY
    assert set(job.asset_layer.selected_asset_keys) == set(graph.get_all_asset_keys())
    assert job.executor_def.name == "in_process"
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"


def _sensor(landing: Path, cursor: str | None):
    ctx = dg.build_sensor_context(cursor=cursor, resources={"zentra": ZentraResource(landing=str(landing))})
    return landing_files_sensor.evaluate_tick(ctx)


def test_landing_sensor_requests_one_run_per_new_set_of_files(tmp_path):
    landing = tmp_path / "landing"
    missing = _sensor(landing, None)
    assert not missing.run_requests and "does not exist" in missing.skip_message
    (landing / "callbacks").mkdir(parents=True)
    (landing / "callbacks" / "2026-11-20.jsonl").write_text("{}\n")
    (landing / "callbacks" / ".upload.part").write_text("partial")
    first = _sensor(landing, None)
    [request] = first.run_requests
    low, high = calendar_bounds(datetime.now(timezone.utc))
    assert request.tags[RANGE_START_TAG] == low.isoformat() and request.tags[RANGE_END_TAG] == high.isoformat()
    assert request.tags["zentra/landing_files"] == "1"  # the dotfile is an upload in progress
    assert request.job_name in (None, JOB_NAME) and request.asset_selection is None  # upstream + packets
    again = _sensor(landing, first.cursor)
    assert not again.run_requests and "unchanged" in again.skip_message
    (landing / "callbacks" / "2026-11-20.jsonl").write_text("{}\n{}\n")  # a file that grew counts too
    grown = _sensor(landing, first.cursor)
    assert len(grown.run_requests) == 1 and grown.cursor != first.cursor
    assert grown.run_requests[0].run_key != request.run_key


def test_landing_sensor_resolves_the_folder_from_env_at_tick_time(tmp_path, monkeypatch):
    landing = tmp_path / "from_env"
    (landing / "intents").mkdir(parents=True)
    (landing / "intents" / "a.jsonl").write_text("{}\n")
    monkeypatch.setenv("ZENTRA_LANDING", str(landing))
    ctx = dg.build_sensor_context(resources={"zentra": ZentraResource()})
    [request] = landing_files_sensor.evaluate_tick(ctx).run_requests
    assert request.tags["zentra/landing_files"] == "1"


def test_failure_records_carry_no_secrets(tmp_path):
    run = dg.DagsterRun(job_name=JOB_NAME, run_id="r-1", tags={"dagster/partition": "2026-11-20"})
    message = ("could not connect to postgresql://ledger:s3cr3t@db:5432/core with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw "
               "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
    record = failure_record(run, message, [("ledger", message)], datetime(2026, 11, 21, 2, 5, tzinfo=timezone.utc))
    path = append_failure(tmp_path, record)
    assert path == tmp_path / FAILURES_FILE
    text = path.read_text()
    for secret in ("s3cr3t", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "AAAA"):
        assert secret not in text
    line = json.loads(text.splitlines()[0])
    assert line["run_id"] == "r-1" and line["job"] == JOB_NAME and line["partition"] == "2026-11-20"
    assert line["time"] == "2026-11-21T02:05:00+00:00" and line["outcome"] == "failure"
    assert "postgresql://ledger:***@db:5432/core" in line["error"]
    assert len(redact("x" * 10_000)) <= 500


def test_root_message_digs_out_the_cause():
    class Err:
        def __init__(self, message, cause=None):
            self.message, self.cause = message, cause

    wrapped = Err("DagsterExecutionStepExecutionError: Error occurred while executing op",
                  Err("Traceback...\nIntegrityError: ledger_entries: 2 integrity violation(s)"))
    assert root_message(wrapped) == "IntegrityError: ledger_entries: 2 integrity violation(s)"
    assert root_message(None) == "failed"


def test_instance_yaml_serialises_warehouse_writers(tmp_path):
    import yaml

    config = yaml.safe_load(INSTANCE_YAML)
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML)
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        assert inst.get_concurrency_config().pool_config.default_pool_limit == 1


def test_make_ui_writes_the_instance_config():
    makefile = (REPO / "Makefile").read_text()
    ui = makefile[makefile.index("\nui:"):].split("\n\n")[0]
    assert "write_instance_yaml" in ui and "var/dagster_home" in ui and "dagster dev" in ui


def test_markdown_helpers_render_finance_tables():
    import polars as pl

    from dagster_project.defs.metadata import md_amounts, md_rows

    table = md_rows([{"tenant": "t_a|x", "version": "v2", "rows": 1234, "new": True}],
                    ["tenant", "version", "rows", "new"]).md_str
    assert table.splitlines()[1] == "| --- | --- | ---: | --- |"
    assert "| t_a\\|x | v2 | 1,234 | yes |" in table
    assert md_rows([], ["a"], empty="_nothing_").md_str == "_nothing_"
    at_risk = pl.DataFrame({"break_type": ["amount_mismatch", "amount_mismatch", "missing_in_ledger"],
                            "currency": ["EUR", "EUR", "USD"], "amount_minor": [-150, 50, 1000]})
    md = md_amounts(at_risk).md_str
    assert "| amount_mismatch | EUR | 200 |" in md and "| missing_in_ledger | USD | 1,000 |" in md
    assert md_amounts(at_risk.head(0)).md_str == "_nothing at risk_"
