"""Sensors: new landing files start a reconciliation; failed runs leave a record.

``landing_files_sensor`` watches the landing folder the ``zentra`` resource resolves
when the sensor ticks (config → ZENTRA_LANDING → bundled sample), never at import.
Its cursor is a SHA-256 over the sorted ``(relative path, size)`` of every file, so a
new file or a grown file starts one run, and the same folder never starts two.

Which days does a new file touch? Not only the days in its name: a late callback changes
the breaks of the day its intent was *created*, a re-sent settlement file the days of the
refs it settles. Guessing from names would leave stale packets. The run therefore targets
the upstream assets plus every ``audit_packets`` partition of the evidence calendar
(2026-01-01 .. today) as one single run; sealing is idempotent, so only the tenant-days
whose content actually changed get a new version, and days without data seal nothing.
"""

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from dagster_project.defs.partitions import calendar_bounds, range_tags
from dagster_project.defs.resources import ZentraResource
from dagster_project.defs.schedules import JOB_NAME

FAILURES_FILE = "run_failures.jsonl"
_MAX_ERROR = 500


def landing_fingerprint(landing: Path) -> tuple[str, int]:
    """SHA-256 of the sorted ``relative/path<TAB>size`` lines, and the file count.

    Dotfiles (partial uploads such as ``.part`` or editor swap files) are ignored.
    """
    lines = []
    for path in landing.rglob("*"):
        relative = path.relative_to(landing)
        if any(part.startswith(".") for part in relative.parts):
            continue
        try:
            if path.is_file():
                lines.append(f"{relative.as_posix()}\t{path.stat().st_size}")
        except OSError:  # moved away between listing and stat: the next tick sees the final state
            continue
    lines.sort()
    return hashlib.sha256("\n".join(lines).encode()).hexdigest(), len(lines)


@dg.sensor(
    name="landing_files_sensor",
    job_name=JOB_NAME,
    minimum_interval_seconds=60,
    description="New or changed files in the landing folder: rebuild the state and re-seal every day's "
    "packets in one run (only days whose content changed get a new version).",
)
def landing_files_sensor(context: dg.SensorEvaluationContext, zentra: ZentraResource):
    landing = zentra.settings().landing
    if not landing.is_dir():
        return dg.SkipReason(f"landing folder {landing} does not exist")
    digest, count = landing_fingerprint(landing)
    if digest == context.cursor:
        return dg.SkipReason(f"no new landing files ({count} files unchanged)")
    first, last = calendar_bounds(datetime.now(timezone.utc))
    request = dg.RunRequest(
        run_key=f"landing-{digest[:16]}",
        tags={**range_tags(first, last), "zentra/trigger": "landing_files", "zentra/landing_files": str(count)},
    )
    return dg.SensorResult(run_requests=[request], cursor=digest)


_CREDENTIALS = [
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),  # user:password@ in URLs
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), "whsec_***"),  # webhook secrets
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), "[private key]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    return text[:_MAX_ERROR]


def error_chain(error: object) -> Iterator[object]:
    """A serialized error, then its cause, its cause's cause...: Dagster's wrapper first,
    the user code's error and what it was raised from after it."""
    while error is not None:
        yield error
        error = getattr(error, "cause", None)


def root_message(error: object) -> str:
    """The innermost cause's last line (``SchemaError: ...``), not Dagster's wrapper."""
    chain = list(error_chain(error))
    error = chain[-1] if chain else None  # no error info at all: "failed"
    lines = (getattr(error, "message", "") or "").strip().splitlines()
    return lines[-1] if lines else "failed"


def failure_record(run: dg.DagsterRun, message: str, step_errors: list[tuple[str, str]],
                   at: datetime) -> dict[str, object]:
    """What, when, where and outcome of a failed run — ids, names and error text, never config."""
    tags = run.tags
    return {
        "time": at.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": tags.get("dagster/partition")
        or ("{}..{}".format(tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"])
            if "dagster/asset_partition_range_start" in tags else None),
        "trigger": tags.get("zentra/trigger") or tags.get("dagster/schedule_name") or tags.get("dagster/sensor_name"),
        "outcome": "failure",
        "error": redact(message.strip()),
        "steps": [{"step": step, "error": redact(err)} for step, err in step_errors],
    }


def append_failure(home: Path, record: dict[str, object]) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / FAILURES_FILE
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
    return path


@dg.run_failure_sensor(
    name="record_run_failures",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every failed run in this code location appended to <home>/run_failures.jsonl "
    "(run id, job, partition, time, error; never config or secrets).",
)
def record_run_failures(context: dg.RunFailureSensorContext, zentra: ZentraResource) -> None:
    steps = [(event.step_key or "", root_message(event.step_failure_data.error))
             for event in context.get_step_failure_events()]
    record = failure_record(context.dagster_run, context.failure_event.message or "", steps,
                            datetime.now(timezone.utc))
    path = append_failure(zentra.settings().home, record)
    context.log.info(f"recorded failure of run {context.dagster_run.run_id} in {path}")
