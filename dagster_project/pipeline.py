"""In-process execution of the Dagster definitions for `zentra run`."""

from __future__ import annotations

import sys

import dagster as dg

from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.settings import Settings
from zentra_pipelines.summary import render

EXIT_OK, EXIT_CHECK_FAILED = 0, 1


def run_config(settings: Settings) -> dict:
    """The CLI's paths become the `zentra` resource's config: the same knobs the UI shows."""
    return {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "resources": {
            "zentra": {
                "config": {
                    "landing": str(settings.landing),
                    "source_db": settings.source_db,
                    "policies": str(settings.policies),
                    "secrets": str(settings.secrets),
                    "home": str(settings.home),
                }
            }
        }
    }


def load_definitions() -> dg.Definitions:
    from dagster_project.definitions import defs

    return defs() if callable(defs) else defs


def execute(settings: Settings, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    job = load_definitions().resolve_implicit_global_asset_job_def()
    with (dg.DagsterInstance.ephemeral() if instance is None else _borrowed(instance)) as inst:
        return job.execute_in_process(run_config=run_config(settings), instance=inst, raise_on_error=False)


class _borrowed:
    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    def __enter__(self) -> dg.DagsterInstance:
        return self.instance

    def __exit__(self, *exc: object) -> None:
        return None


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """Human-readable reasons: failed steps and failed blocking checks."""
    reasons = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            err = event.step_failure_data.error
            message = err.message.strip().splitlines()[-1] if err else "failed"
            reasons.append(f"step {event.step_key} failed: {message}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed and data.severity == dg.AssetCheckSeverity.ERROR:
                reasons.append(f"check {data.check_name} on {data.asset_key.to_user_string()} failed")
    return reasons


def run_pipeline(settings: Settings) -> int:
    result = execute(settings)
    with Warehouse(settings.home).connect() as con:
        print(render(con, settings.home))
    problems = failures(result)
    if problems or not result.success:
        for line in problems or ["the run did not succeed"]:
            print(f"zentra: {line}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK
