"""The control room for real: `dagster dev` on loopback, queried and driven through GraphQL.

One server per module (see ``dagster_server`` in conftest): the asset graph, checks,
schedule and sensors as the UI sees them, a partitioned run of the whole graph for one
day, a single-run backfill of a range of days, and a headless-browser screenshot of the
asset graph (saved to docs/img/asset-graph.png with ZENTRA_SAVE_SCREENSHOT=1).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from dagster_project.defs.lifecycle import GROUPS, PACKETS_ASSET, POOL
from dagster_project.pipeline import load_definitions
from tests.dagster.support import LOCATION, REPO, REPOSITORY, DagsterServer

pytestmark = pytest.mark.slow

DAY = "2026-11-20"
SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
TERMINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def defs():
    return load_definitions()


def _type_fields(server: DagsterServer, name: str) -> dict[str, dict]:
    data = server.graphql(
        "query($n: String!) { __type(name: $n) { fields { name args { name type { name ofType { name } } } } "
        "inputFields { name type { name ofType { name } } } } }", {"n": name})
    t = data["__type"]
    assert t is not None, f"GraphQL type {name} is missing"
    return {f["name"]: f for f in (t["fields"] or t["inputFields"] or [])}


def _wait_run(server: DagsterServer, run_id: str, timeout: float = 420) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = server.graphql("query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }",
                             {"id": run_id})["runOrError"]
        if run.get("status") in TERMINAL_RUN:
            return run["status"]
        time.sleep(1)
    raise TimeoutError(f"run {run_id} not finished after {timeout:.0f}s:\n{server.log_tail()}")


def _failure_report(server: DagsterServer, run_id: str) -> str:
    data = server.graphql(
        "query($id: ID!) { logsForRun(runId: $id, limit: 1000) { ... on EventConnection { events { __typename "
        "... on ExecutionStepFailureEvent { stepKey error { message cause { message } } } } } } }", {"id": run_id})
    events = data["logsForRun"].get("events", [])
    return "\n".join(f"{e['stepKey']}: {e['error']}" for e in events if e["__typename"] == "ExecutionStepFailureEvent")


def test_graphql_serves_the_asset_graph_with_groups(dagster_server, defs):
    nodes = dagster_server.graphql(
        "{ assetNodes { assetKey { path } groupName isPartitioned pools description "
        "tags { key value } backfillPolicy { policyType } partitionDefinition { type description } } }")["assetNodes"]
    graph = defs.resolve_asset_graph()
    assert {"/".join(n["assetKey"]["path"]) for n in nodes} == {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {n["groupName"] for n in nodes} == set(GROUPS)
    for node in nodes:
        assert node["pools"] == [POOL] and node["description"], node["assetKey"]
        assert any(t["key"] == "lifecycle" for t in node["tags"]), node["assetKey"]
    [packets] = [n for n in nodes if n["assetKey"]["path"] == [PACKETS_ASSET]]
    assert packets["isPartitioned"] and packets["partitionDefinition"]["type"] == "TIME_WINDOW"
    assert "Daily" in packets["partitionDefinition"]["description"]
    assert packets["backfillPolicy"]["policyType"] == "SINGLE_RUN"
    assert [n for n in nodes if n["isPartitioned"]] == [packets]


def test_graphql_serves_every_asset_check(dagster_server, defs):
    nodes = dagster_server.graphql(
        "{ assetNodes { assetKey { path } assetChecksOrError { __typename "
        "... on AssetChecks { checks { name blocking description } } } } }")["assetNodes"]
    served = {("/".join(n["assetKey"]["path"]), c["name"]): c for n in nodes
              for c in n["assetChecksOrError"].get("checks", [])}
    declared = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert set(served) == declared
    assert served[("ledger_balances", "ledger_integrity_invariants")]["blocking"] is True
    assert served[("ledger_balances", "no_negative_balances")]["blocking"] is False
    assert all(c["description"] for c in served.values())


def test_graphql_serves_schedule_sensors_and_job(dagster_server):
    repo = dagster_server.graphql(
        "query($s: RepositorySelector!) { repositoryOrError(repositorySelector: $s) { __typename ... on Repository { "
        "jobs { name isAssetJob } schedules { name cronSchedule executionTimezone pipelineName } "
        "sensors { name sensorType defaultStatus } } } }", {"s": SELECTOR})["repositoryOrError"]
    assert repo["__typename"] == "Repository", repo
    [schedule] = repo["schedules"]
    assert schedule == {"name": "daily_reconciliation_schedule", "cronSchedule": "0 2 * * *",
                        "executionTimezone": "UTC", "pipelineName": "daily_reconciliation"}
    sensors = {s["name"]: s for s in repo["sensors"]}
    assert sensors["landing_files_sensor"]["sensorType"] == "STANDARD"
    assert sensors["record_run_failures"]["sensorType"] == "RUN_STATUS"
    assert sensors["record_run_failures"]["defaultStatus"] == "RUNNING"
    assert "daily_reconciliation" in {j["name"] for j in repo["jobs"]}


def test_partitioned_run_of_the_whole_graph_through_graphql(dagster_server, defs):
    # Verify the mutation's shape against the served schema before relying on it.
    mutation = _type_fields(dagster_server, "Mutation")["launchRun"]
    assert [a["name"] for a in mutation["args"]] == ["executionParams"]
    params = _type_fields(dagster_server, "ExecutionParams")
    assert {"selector", "runConfigData", "executionMetadata"} <= set(params)
    assert "tags" in _type_fields(dagster_server, "ExecutionMetadata")
    assert {"repositoryLocationName", "repositoryName", "jobName"} <= set(_type_fields(dagster_server,
                                                                                     "JobOrPipelineSelector"))
    launched = dagster_server.graphql(
        "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
        "... on RunConfigValidationInvalid { errors { message } } } }",
        {"p": {"selector": {**SELECTOR, "jobName": "daily_reconciliation"}, "runConfigData": {},
               "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DAY}]}}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    status = _wait_run(dagster_server, run_id)
    assert status == "SUCCESS", _failure_report(dagster_server, run_id) or dagster_server.log_tail()

    run = dagster_server.graphql(
        "query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } assetSelection { path } } } }",
        {"id": run_id})["runOrError"]
    assert {"key": "dagster/partition", "value": DAY} in run["tags"]
    graph = defs.resolve_asset_graph()
    node = dagster_server.graphql(
        "query($k: [AssetKeyInput!]) { assetNodes(assetKeys: $k) { partitionStats { numMaterialized } "
        "assetMaterializations(partitions: [\"" + DAY + "\"]) { partition metadataEntries { label } } } }",
        {"k": [{"path": [PACKETS_ASSET]}]})["assetNodes"][0]
    assert node["partitionStats"]["numMaterialized"] == 1
    labels = {e["label"] for e in node["assetMaterializations"][0]["metadataEntries"]}
    assert {"tenants_sealed", "versions", "packets", "key_id"} <= labels
    zips = sorted((dagster_server.zentra_home / "packets").rglob("v*.zip"))
    assert zips and {p.parent.name for p in zips} == {DAY}
    every = dagster_server.graphql("{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }")
    materialized = {"/".join(n["assetKey"]["path"]) for n in every["assetNodes"]
                    if n["assetMaterializations"] and n["assetMaterializations"][0]["runId"] == run_id}
    assert materialized == {k.to_user_string() for k in graph.get_all_asset_keys()}


def test_backfill_of_a_day_range_is_one_run(dagster_server):
    launched = dagster_server.graphql(
        "mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename "
        "... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }",
        {"p": {"assetSelection": [{"path": [PACKETS_ASSET]}], "partitionNames": ["2026-11-20", "2026-11-21"],
               "title": "re-seal two days"}})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.monotonic() + 420
    while True:
        backfill = dagster_server.graphql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status "
            "runs { runId status tags { key value } } } } }", {"id": launched["backfillId"]})["partitionBackfillOrError"]
        if backfill["status"] not in ("REQUESTED", "CANCELING") and all(
                r["status"] in TERMINAL_RUN for r in backfill["runs"]):
            break
        assert time.monotonic() < deadline, f"backfill still {backfill['status']}:\n{dagster_server.log_tail()}"
        time.sleep(2)
    assert backfill["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), backfill
    [run] = backfill["runs"]  # BackfillPolicy.single_run(): the whole range in one run
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/asset_partition_range_start"] == "2026-11-20"
    assert tags["dagster/asset_partition_range_end"] == "2026-11-21"
    assert run["status"] == "SUCCESS"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI's .ci/run installs it)")
def test_asset_graph_renders_in_a_headless_browser(dagster_server, tmp_path):
    dagster_server.graphql("mutation { setNuxSeen }")  # no first-visit newsletter dialog over the graph
    expanded = ",".join(f"global@global:{g}" for g in GROUPS)
    url = f"{dagster_server.url}/asset-groups?expanded={urllib.parse.quote(expanded, safe='')}"
    shot = tmp_path / "asset-graph.png"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1600,2000",
         "--virtual-time-budget=15000", f"--screenshot={shot}", url],
        capture_output=True, text=True, timeout=180,
    )
    assert shot.exists(), proc.stdout + proc.stderr
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1600, 2000)
    assert len(data) > 50_000, "a blank page compresses to a few kB; the graph does not"
    if os.environ.get("ZENTRA_SAVE_SCREENSHOT") == "1":
        target = REPO / "docs" / "img" / "asset-graph.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
