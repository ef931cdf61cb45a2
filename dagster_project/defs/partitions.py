"""The evidence calendar: one partition per UTC day, from 2026-01-01 up to today.

Only ``audit_packets`` is partitioned: the upstream assets rebuild the full state
incrementally (ingest is append-only, the ledger reads from a watermark) and a packet
seals one tenant-day of that state. ``end_offset=1`` makes today's partition exist, so
an operator can seal the current day before it closes (a later run re-seals it as
``v<N+1>`` when its content changes).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg

START = "2026-01-01"

DAILY = dg.DailyPartitionsDefinition(start_date=START, timezone="UTC", end_offset=1)

#: Run tags that make one run cover a range of partitions (what a single-run backfill sets).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def key_of(day: date) -> str:
    return day.isoformat()


def day_of(key: str) -> date:
    return date.fromisoformat(key)


def days_between(start: date, end_inclusive: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end_inclusive - start).days + 1)]


def window_days(start: datetime, end: datetime) -> set[date]:
    """The UTC days of a partition time window ``[start, end)``."""
    first = start.date()
    return {first + timedelta(days=i) for i in range((end - start).days)}


def range_tags(first: date, last: date) -> dict[str, str]:
    return {RANGE_START_TAG: key_of(first), RANGE_END_TAG: key_of(last)}


def calendar_bounds(now: datetime | None = None) -> tuple[date, date]:
    """First and last day that have a partition at ``now`` (the last one is today)."""
    keys = DAILY.get_partition_keys(current_time=now)
    return day_of(keys[0]), day_of(keys[-1])
