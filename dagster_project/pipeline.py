"""In-process execution of the Dagster definitions for `zentra run`.

One code path with the UI: the very ``Definitions`` object ``dagster dev`` serves, its
implicit asset job, and the CLI's paths passed as run config of the ``zentra`` resource.
``zentra run`` materializes the whole graph in two runs of that job:

1. every unpartitioned asset (ingest → controls → ledger → routing → events →
   reconciliation) with its checks; a failed step or a failed blocking check stops here,
   so nothing is sealed on top of a broken state;
2. ``audit_packets`` for the partition range covering every UTC day present in the data
   (read from the warehouse the first run just wrote), as one run — the same shape a
   single-run backfill takes in the UI.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb

from dagster_project.defs.lifecycle import PACKETS_ASSET
from dagster_project.defs.partitions import calendar_bounds, range_tags
from dagster_project.defs.sensors import error_chain, root_message
from dagster_project.progress import WATCH_LOGGER, StepWatch, progress_hook, step_watch_logger, still_running
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain.packet_plan import DAY_COLUMNS
from zentra_pipelines.evidence_stage import configured_tenants
from zentra_pipelines.settings import Settings
from zentra_pipelines.summary import render

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
#: A step failing with one of these failed on its input (a source database without its
#: tables, an unusable signing key, a bad configuration file, a landing file rewritten
#: while read) or its surroundings (the warehouse file held open by another process):
#: exit 2, as when the CLI's preflight catches it before the run, not 1 (a failed check).
INPUT_ERRORS = frozenset({"LedgerSourceError", "SigningKeyError", "ConfigError", "WarehouseBusyError",
                          "LandingFileChanged"})

#: The Dagster instance ``make ui`` and the UI tests use: writers to the DuckDB file are
#: serialised by the ``zentra_warehouse`` pool (every asset declares it) at one slot.
INSTANCE_YAML = """\
# Managed by `make ui` (dagster_project.pipeline.write_instance_yaml): edits are overwritten.
concurrency:
  pools:
    default_limit: 1   # zentra_warehouse: one DuckDB writer at a time, across runs
    granularity: op
telemetry:
  enabled: false
"""


def write_instance_yaml(dagster_home: str | Path) -> Path:
    home = Path(dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    path.write_text(INSTANCE_YAML)
    return path


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


def upstream_keys(defs: dg.Definitions) -> list[dg.AssetKey]:
    """Every asset that is not partitioned: the state the packets are sealed from."""
    graph = defs.resolve_asset_graph()
    return sorted(
        (k for k in graph.get_all_asset_keys()
         if graph.get(k).is_materializable and graph.get(k).partitions_def is None),
        key=lambda k: k.to_user_string(),
    )


def data_days(con: duckdb.DuckDBPyConnection, tenants: list[str]) -> tuple[date, date] | None:
    """First and last UTC day holding a row of a configured tenant in any packet table.

    Table and column names come from the packet plan (an allowlist); tenant ids are bound.
    """
    lows, highs = [], []
    for name, (table, column) in DAY_COLUMNS.items():
        if name == "intent_timeline" or not Warehouse.exists(con, table):
            continue  # the timeline is dated by its intent, already counted through `intents`
        low, high = con.sql(
            f'SELECT min(CAST("{column}" AS DATE)), max(CAST("{column}" AS DATE)) FROM "{table}" '
            "WHERE list_contains($tenants, tenant_id)",
            params={"tenants": tenants},
        ).fetchall()[0]
        if low is not None:
            lows.append(low)
            highs.append(high)
    return (min(lows), max(highs)) if lows else None


@dataclass
class PipelineResult:
    """Both runs of `zentra run`; reads like one ``ExecuteInProcessResult``."""

    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.results) and all(r.success for r in self.results)

    @property
    def all_events(self) -> list[dg.DagsterEvent]:
        return [e for r in self.results for e in r.all_events]


def execute(settings: Settings, instance: dg.DagsterInstance | None = None,
            now: datetime | None = None, progress: Callable[[str], None] | None = None) -> PipelineResult:
    """Both runs (see the module docstring); ``progress`` receives a line per finished step
    and one per long step still running (``dagster_project.progress``)."""
    # Great Expectations takes seconds to import and set up; build it on a second core
    # while the first stages (DuckDB, Polars: GIL released) run. See data_contracts.prewarm.
    from zentra_pipelines import data_contracts

    with _long_lived_heap():
        data_contracts.prewarm(on_ready=gc.freeze)
        defs = load_definitions()
        job = defs.resolve_implicit_global_asset_job_def()
    config = run_config(settings)
    watching: AbstractContextManager = nullcontext()
    if progress is not None:
        watch, start = StepWatch(), time.monotonic()
        job = job.with_hooks({progress_hook(progress, start)}).with_logger_defs(
            {**job.loggers, WATCH_LOGGER: step_watch_logger(watch)})
        config["loggers"][WATCH_LOGGER] = {}
        watching = still_running(watch, progress, start)
    with watching:
        return _execute_runs(settings, job, upstream_keys(defs), config, instance, now)


def _execute_runs(settings: Settings, job: dg.JobDefinition, upstream: list[dg.AssetKey], config: dict,
                  instance: dg.DagsterInstance | None, now: datetime | None) -> PipelineResult:
    out = PipelineResult()
    with (dg.DagsterInstance.ephemeral() if instance is None else _borrowed(instance)) as inst:
        first = job.execute_in_process(run_config=config, instance=inst, raise_on_error=False,
                                       asset_selection=upstream)
        out.results.append(first)
        if not first.success or failures(first):
            out.notes.append("audit packets not sealed: the upstream run did not pass")
            return out
        tenants = configured_tenants(settings.policies, settings.secrets)
        with Warehouse(settings.home).connect() as con:
            span = data_days(con, tenants)
        if span is None:
            out.notes.append("no dated rows for a configured tenant: no audit packets to seal")
            return out
        first_day, last_day = _clip(span, now, out.notes)
        if first_day > last_day:
            return out
        out.results.append(job.execute_in_process(
            run_config=config, instance=inst, raise_on_error=False,
            asset_selection=[dg.AssetKey(PACKETS_ASSET)], tags=range_tags(first_day, last_day),
        ))
    return out


@contextmanager
def _long_lived_heap() -> Iterator[None]:
    """Load what lives until the process ends, then take it out of the cyclic collector.

    Dagster's definitions, and the GX engine built on the prewarm thread (which freezes
    again when it is ready), leave ~450k tracked objects that are never freed: every
    full collection walked them all, and so did the interpreter's last one at exit. The
    collector is paused while they load and they are frozen after (``gc.freeze``); rows
    never become Python objects, so the collections left during the stages are small.
    Measured on one day of 3.2k intents: 11.1-12.1 -> 9.6-10.7 s wall (CPU -2.2 s), of
    which process teardown after the summary 1.39 -> 0.12 s; that day added to a 30-day
    history 20.6-21.3 -> 17.9-19.4 s; the bundled sample 9.4 -> 8.2 s (bench).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _clip(span: tuple[date, date], now: datetime | None, notes: list[str]) -> tuple[date, date]:
    """Keep the range inside the evidence calendar (2026-01-01 .. today, UTC)."""
    low, high = calendar_bounds(now or datetime.now(timezone.utc))
    first, last = max(span[0], low), min(span[1], high)
    if span[0] < low or span[1] > high:
        notes.append(f"data spans {span[0]}..{span[1]} but the evidence calendar is {low}..{high}: "
                     f"days outside it are not sealed")
    return first, last


class _borrowed:
    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    def __enter__(self) -> dg.DagsterInstance:
        return self.instance

    def __exit__(self, *exc: object) -> None:
        return None


def failures(result: dg.ExecuteInProcessResult | PipelineResult | Iterable) -> list[str]:
    """Human-readable reasons: failed steps and failed blocking checks."""
    reasons = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            message = root_message(event.step_failure_data.error)
            reasons.append(f"step {event.step_key} failed: {message}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed and data.severity == dg.AssetCheckSeverity.ERROR:
                reasons.append(f"check {data.check_name} on {data.asset_key.to_user_string()} failed")
    return reasons


def input_failure(result: dg.ExecuteInProcessResult | PipelineResult | Iterable) -> bool:
    """Whether a step failed on bad input: an :data:`INPUT_ERRORS` class anywhere in the
    chain from Dagster's wrapper to the driver's error it was raised from."""
    return any(
        error.cls_name in INPUT_ERRORS
        for event in result.all_events if event.event_type_value == "STEP_FAILURE"
        for error in error_chain(event.step_failure_data.error)
    )


def _stderr_line(text: str) -> None:
    print(f"zentra: {text}", file=sys.stderr, flush=True)


def _configured(settings: Settings) -> set[str] | None:
    """The configured tenants for the summary; None if the files stopped loading mid-run
    (the summary then falls back to the tenants with packets)."""
    try:
        return set(configured_tenants(settings.policies, settings.secrets))
    except ValueError:  # ConfigError
        return None


def run_pipeline(settings: Settings) -> int:
    result = execute(settings, progress=_stderr_line)
    with Warehouse(settings.home).connect() as con:
        # a second run is the packets run: without it, nothing was sealed this time
        print(render(con, settings.home, _configured(settings), packets_ran=len(result.results) > 1))
    for note in result.notes:
        print(f"zentra: {note}", file=sys.stderr)
    problems = failures(result)
    if problems or not result.success:
        for line in problems or ["the run did not succeed"]:
            print(f"zentra: {line}", file=sys.stderr)
        return EXIT_USAGE if input_failure(result) else EXIT_CHECK_FAILED
    return EXIT_OK
