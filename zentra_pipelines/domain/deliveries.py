"""Outbound webhook delivery attempts to tenants (contract 2.5): health, retries, replay.

Lines are judged by ``sql/parse_deliveries.sql`` (one verdict per line); this module is
pure polars from there on.

* ``accept_deliveries``: copies of one (tenant_id, delivery_id) with identical content
  collapse (``copies``); different contents are a ``delivery_conflict``: every copy is
  quarantined, none wins.
* ``retry_spacing``: per attempt, the gap to the previous attempt of the same event to
  the same endpoint, and whether it violates exponential backoff: the first retry must
  wait >= 1 s, every later retry >= twice the previous gap.
* ``webhook_health``: one row per (tenant_id, endpoint).
* ``replay_queue``: one row per (tenant_id, event_id, endpoint) whose latest attempt failed.

Conventions: an attempt *succeeds* when its status_code is 2xx; anything else (another
status, or null = no response) is a failure. An event's attempts are ordered by
(attempt, attempted_at, delivery_id); an endpoint's attempts across events by
(attempted_at, attempt, delivery_id). Attempts to different endpoints are separate
deliveries (fan-out): each (event, endpoint) pair has its own retry schedule and its
own place in the replay queue.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from zentra_pipelines.domain import errors
from zentra_pipelines.domain.dedupe import quarantine_all, split_conflicts

#: Not (yet) in errors.CATALOGUE: one delivery_id reported with two different contents.
DELIVERY_CONFLICT = errors.DELIVERY_CONFLICT

KEY = ["tenant_id", "delivery_id"]
ENDPOINT_KEY = ["tenant_id", "endpoint"]
EVENT_KEY = ["tenant_id", "endpoint", "event_id"]
EVENT_ORDER = ["attempt", "attempted_at", "delivery_id"]
ENDPOINT_ORDER = ["attempted_at", "attempt", "delivery_id"]

#: Backoff rule: first retry at least 1 s after the first attempt, then gaps at least double.
FIRST_RETRY_MIN_US = 1_000_000
BACKOFF_FACTOR = 2
#: failing_now: at least this many failures in a row, the latest attempt among them.
FAILING_STREAK = 3

DELIVERY_SCHEMA = {
    "tenant_id": pl.String,
    "delivery_id": pl.String,
    "event_id": pl.String,
    "endpoint": pl.String,
    "attempt": pl.Int64,
    "attempted_at": pl.Datetime("us"),
    "status_code": pl.Int64,
    "error": pl.String,
    "latency_ms": pl.Int64,
    "copies": pl.UInt32,
    "content_hash": pl.String,
}
QUARANTINE_SCHEMA = {
    "tenant_id": pl.String,
    "delivery_id": pl.String,
    "source_file": pl.String,
    "line_no": pl.Int64,
    "error_code": pl.String,
    "detail": pl.String,
    "attempted_at": pl.Datetime("us"),
    "file_sha256": pl.String,
}
SPACING_SCHEMA = {
    "tenant_id": pl.String,
    "endpoint": pl.String,
    "event_id": pl.String,
    "delivery_id": pl.String,
    "attempt": pl.Int64,
    "attempted_at": pl.Datetime("us"),
    "gap_s": pl.Float64,
    "min_gap_s": pl.Float64,
    "fast_retry": pl.Boolean,
}
HEALTH_SCHEMA = {
    "tenant_id": pl.String,
    "endpoint": pl.String,
    "attempts": pl.UInt32,
    "successes": pl.UInt32,
    "failures": pl.UInt32,
    "success_rate_pct": pl.Float64,
    "events": pl.UInt32,
    "events_delivered": pl.UInt32,
    "last_attempt_at": pl.Datetime("us"),
    "last_status": pl.Int64,
    "failing_now": pl.Boolean,
    "consecutive_failures": pl.UInt32,
    "fast_retries": pl.UInt32,
    "p95_latency_ms": pl.Int64,
}
REPLAY_SCHEMA = {
    "tenant_id": pl.String,
    "event_id": pl.String,
    "endpoint": pl.String,
    "attempts": pl.UInt32,
    "last_attempt_at": pl.Datetime("us"),
    "last_status": pl.Int64,
    "last_error": pl.String,
    "replay_ready": pl.Boolean,
}


def _ok() -> pl.Expr:
    return pl.col("status_code").is_between(200, 299).fill_null(False)


def _shape(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def accept_deliveries(parsed: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(deliveries, quarantine): one row per accepted delivery_id; one per rejected line."""
    ok = parsed.filter(pl.col("error_code").is_null())
    split = split_conflicts(ok, KEY)
    deliveries = _shape(
        split.accepted.sort(KEY + ["source_file", "line_no", "file_sha256"])
        .with_columns(pl.len().over(KEY).alias("copies"))
        .unique(subset=KEY, keep="first", maintain_order=True),
        DELIVERY_SCHEMA,
    ).sort(KEY)
    columns = list(QUARANTINE_SCHEMA)
    quarantine = _shape(
        quarantine_all(
            parsed, split, DELIVERY_CONFLICT,
            pl.format("delivery_id {} arrived with {} different contents; no copy wins", "delivery_id", "contents"),
            columns,
        ),
        QUARANTINE_SCHEMA,
    ).sort("source_file", "line_no", "file_sha256")
    return deliveries, quarantine


def retry_spacing(deliveries: pl.DataFrame) -> pl.DataFrame:
    """One row per attempt: gap to the event's previous attempt (s) and the backoff verdict.

    ``gap_s``/``min_gap_s`` are null for an event's first attempt. The verdict itself is
    computed on integer microseconds, never on the float seconds shown.
    """
    ordered = deliveries.sort(EVENT_KEY + EVENT_ORDER)
    gap_us = pl.col("attempted_at").diff().over(EVENT_KEY).dt.total_microseconds()
    spaced = ordered.with_columns(_gap_us=gap_us).with_columns(
        _min_gap_us=pl.when(pl.col("_gap_us").is_null())
        .then(None)
        .otherwise(
            pl.col("_gap_us").shift(1).over(EVENT_KEY).mul(BACKOFF_FACTOR).fill_null(FIRST_RETRY_MIN_US)
        )
    )
    return _shape(
        spaced.with_columns(
            gap_s=pl.col("_gap_us") / 1_000_000,
            min_gap_s=pl.col("_min_gap_us") / 1_000_000,
            fast_retry=(pl.col("_gap_us") < pl.col("_min_gap_us")).fill_null(False),
        ),
        SPACING_SCHEMA,
    )


def webhook_health(deliveries: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """Health of every (tenant_id, endpoint) from its attempts at or before ``as_of``.

    ``as_of`` is a cut-off taken from the data (e.g. the end of a packet day), never the
    wall clock, so the figures are reproducible. Naive datetimes are read as UTC.

    * success_rate_pct: 100 * successes / attempts, rounded half up to 2 decimals with
      integer arithmetic (a rate for display, not money);
    * events / events_delivered: distinct event_ids attempted / with a 2xx attempt;
    * consecutive_failures: failures since the endpoint's latest success (all, if none);
    * failing_now: consecutive_failures >= 3 (the latest attempt and the two before it
      all failed; an endpoint with fewer than 3 attempts is never failing_now);
    * fast_retries: attempts flagged by ``retry_spacing``;
    * p95_latency_ms: nearest-rank 95th percentile (the ceil(0.95 n)-th smallest) of the
      non-null latencies, null when there are none.
    """
    cutoff = as_of.astimezone(UTC).replace(tzinfo=None) if as_of.tzinfo is not None else as_of
    d = deliveries.filter(pl.col("attempted_at") <= cutoff).with_columns(_ok=_ok())

    by_time = ENDPOINT_ORDER
    base = d.group_by(ENDPOINT_KEY).agg(
        pl.len().alias("attempts"),
        pl.col("_ok").sum().cast(pl.UInt32).alias("successes"),
        pl.col("event_id").n_unique().alias("events"),
        pl.col("event_id").filter(pl.col("_ok")).n_unique().alias("events_delivered"),
        pl.col("attempted_at").max().alias("last_attempt_at"),
        pl.col("status_code").sort_by(by_time).last().alias("last_status"),
        # failures after the last success: rows where no success remains from there on
        (pl.col("_ok").sort_by(by_time).cast(pl.UInt32).cum_sum(reverse=True) == 0)
        .sum()
        .alias("consecutive_failures"),
    )

    fast = (
        retry_spacing(d)
        .group_by(ENDPOINT_KEY)
        .agg(pl.col("fast_retry").sum().alias("fast_retries"))
    )

    latencies = (
        d.filter(pl.col("latency_ms").is_not_null())
        .sort(ENDPOINT_KEY + ["latency_ms"])
        .with_columns(
            _rank=pl.int_range(1, pl.len() + 1).over(ENDPOINT_KEY),
            _n=pl.len().over(ENDPOINT_KEY),
        )
        .filter(pl.col("_rank") == (pl.col("_n") * 95 + 99) // 100)
        .select(*ENDPOINT_KEY, pl.col("latency_ms").alias("p95_latency_ms"))
    )

    attempts = pl.col("attempts").cast(pl.Int64)
    health = (
        base.join(fast, on=ENDPOINT_KEY, how="left")
        .join(latencies, on=ENDPOINT_KEY, how="left")
        .with_columns(
            failures=pl.col("attempts") - pl.col("successes"),
            success_rate_pct=((pl.col("successes").cast(pl.Int64) * 20_000 + attempts) // (2 * attempts)) / 100,
            failing_now=pl.col("consecutive_failures") >= FAILING_STREAK,
            fast_retries=pl.col("fast_retries").fill_null(0),
        )
    )
    return _shape(health, HEALTH_SCHEMA).sort(ENDPOINT_KEY)


def replay_queue(deliveries: pl.DataFrame) -> pl.DataFrame:
    """Every (tenant_id, event_id, endpoint) whose latest attempt failed: ready to replay.

    Latest = highest attempt number, then latest attempted_at, then delivery_id. An
    event delivered once and failing on a later attempt is queued too: the latest
    outcome is what the tenant's system last saw.
    """
    latest = (
        deliveries.sort(EVENT_KEY + EVENT_ORDER)
        .group_by(EVENT_KEY, maintain_order=True)
        .agg(
            pl.len().alias("attempts"),
            pl.col("attempted_at").last().alias("last_attempt_at"),
            pl.col("status_code").last().alias("last_status"),
            pl.col("error").last().alias("last_error"),
        )
    )
    failed = pl.col("last_status").is_between(200, 299).fill_null(False).not_()
    return _shape(
        latest.filter(failed).with_columns(replay_ready=pl.lit(True)),
        REPLAY_SCHEMA,
    ).sort("tenant_id", "event_id", "endpoint")
