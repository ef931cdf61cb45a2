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
from zentra_pipelines.domain.dedupe import LINE_KEY, Deduped, quarantine_all, same_as_previous

#: Not (yet) in errors.CATALOGUE: one delivery_id reported with two different contents.
DELIVERY_CONFLICT = errors.DELIVERY_CONFLICT

KEY = ["tenant_id", "delivery_id"]
ENDPOINT_KEY = ["tenant_id", "endpoint"]
EVENT_KEY = ["tenant_id", "endpoint", "event_id"]
EVENT_ORDER = ["attempt", "attempted_at", "delivery_id"]
ENDPOINT_ORDER = ["attempted_at", "attempt", "delivery_id"]
#: The same groups as EVENT_KEY, in the same order inside each group, led by the id with
#: the most distinct values: Polars breaks ties on a low-cardinality leading string
#: (tenant, endpoint) by comparing row by row, ~4x slower than sorting by event_id first
#: (267k attempts: 0.85 vs 0.22 CPU s). For work that needs each event's attempts
#: contiguous and ordered, not the events themselves in EVENT_KEY order.
EVENT_GROUP_SORT = ["event_id", "tenant_id", "endpoint"] + EVENT_ORDER
#: KEY with its high-cardinality column first, for the same reason (0.61 vs 0.19 CPU s).
KEY_GROUP_SORT = ["delivery_id", "tenant_id"]

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


def _ordered_runs(rows: pl.DataFrame, key: list[str], order: list[str]) -> pl.DataFrame:
    """``rows`` sorted by ``key + order`` with ``_same`` (continues the previous row's key)
    and ``_run`` (the key's run number)."""
    return rows.sort(key + order).with_columns(_same=_same_as_previous(key)).with_columns(
        _run=(~pl.col("_same")).cum_sum()
    )


def _split_sorted(ordered: pl.DataFrame, key: list[str], content: str = "content_hash") -> Deduped:
    """``split_conflicts(ordered, key)`` on ``_ordered_runs`` rows: ``accepted`` keeps their
    order and helper columns, ``conflict_lines`` and ``conflicts`` are as there."""
    differs = pl.col("_same") & ~pl.col(content).eq_missing(pl.col(content).shift(1))
    bad_runs = ordered.filter(differs).get_column("_run").unique()
    if bad_runs.len() == 0:
        lines = ordered.clear()
        accepted = ordered
    else:
        in_bad = pl.col("_run").is_in(bad_runs.implode())
        lines = ordered.filter(in_bad)
        accepted = ordered.filter(~in_bad)
    conflicts = lines.group_by(key).agg(pl.col(content).n_unique().alias("contents")).sort(key)
    return Deduped(
        accepted=accepted,
        conflict_lines=lines.drop("_same", "_run").join(conflicts, on=key, how="inner"),
        conflicts=conflicts,
    )


def _firsts_of_sorted(ordered: pl.DataFrame) -> pl.DataFrame:
    """The first row of each run of ``_split_sorted(...).accepted``, with ``copies`` = the
    run's length (the rows of a run are contiguous and a run is never cut in two)."""
    position = pl.int_range(pl.len(), dtype=pl.Int64)
    firsts = ordered.with_columns(_pos=position).filter(~pl.col("_same"))
    return firsts.with_columns(
        copies=(pl.col("_pos").shift(-1).fill_null(ordered.height) - pl.col("_pos")).cast(pl.UInt32)
    ).drop("_same", "_run", "_pos")


def accept_deliveries(parsed: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(deliveries, quarantine): one row per accepted delivery_id; one per rejected line."""
    ok = parsed.filter(pl.col("error_code").is_null())
    # One sort does both jobs: each KEY's copies contiguous (led by delivery_id, see
    # KEY_GROUP_SORT) and in line order. A KEY has several contents exactly when two
    # neighbouring copies differ (null-aware, like n_unique), so conflicts are found on
    # the sorted rows instead of hashing every id again (split_conflicts: 267k lines
    # ~0.6 CPU s); the first copy of each remaining KEY wins, with its run's length.
    ordered = _ordered_runs(ok, KEY_GROUP_SORT, ["source_file", "line_no", "file_sha256"])
    split = _split_sorted(ordered, KEY)
    # Those firsts are in (delivery_id, tenant_id) order with KEY unique, so a stable sort
    # by tenant_id alone leaves them in KEY order: 267k deliveries 0.64 -> 0.07 CPU s
    # against sort(KEY), whose low-cardinality leading string is compared row by row.
    deliveries = _shape(_firsts_of_sorted(split.accepted), DELIVERY_SCHEMA).sort("tenant_id", maintain_order=True)
    columns = list(QUARANTINE_SCHEMA)
    quarantine = _shape(
        quarantine_all(
            parsed, split, DELIVERY_CONFLICT,
            pl.format("delivery_id {} arrived with {} different contents; no copy wins", "delivery_id", "contents"),
            columns,
        ),
        QUARANTINE_SCHEMA,
    ).sort(LINE_KEY)
    return deliveries, quarantine


_same_as_previous = same_as_previous


def _event_sorted(deliveries: pl.DataFrame) -> pl.DataFrame:
    return deliveries.sort(EVENT_KEY + EVENT_ORDER)


#: What the event-ordered work (spacing, replay) reads of an attempt.
_EVENT_COLUMNS = [*EVENT_KEY, "attempt", "attempted_at", "delivery_id", "status_code", "error"]


def _event_grouped(deliveries: pl.DataFrame) -> pl.DataFrame:
    """Each event's attempts contiguous and in EVENT_ORDER (see EVENT_GROUP_SORT), with
    only the columns spacing and replay read (no hashes or latencies carried through)."""
    return deliveries.select(_EVENT_COLUMNS).sort(EVENT_GROUP_SORT)


def _spacing_of_sorted(ordered: pl.DataFrame) -> pl.DataFrame:
    """``retry_spacing``'s columns on rows with each event's attempts contiguous and in
    EVENT_ORDER (``_event_sorted`` or ``_event_grouped``)."""
    same = _same_as_previous(EVENT_KEY)
    return ordered.with_columns(_same=same).with_columns(
        _gap_us=pl.when(pl.col("_same")).then(pl.col("attempted_at").diff()).dt.total_microseconds()
    ).with_columns(
        _min_gap_us=pl.when(pl.col("_gap_us").is_null())
        .then(None)
        .otherwise(
            pl.when(pl.col("_same")).then(pl.col("_gap_us").shift(1))
            .mul(BACKOFF_FACTOR).fill_null(FIRST_RETRY_MIN_US)
        )
    ).with_columns(
        fast_retry=(pl.col("_gap_us") < pl.col("_min_gap_us")).fill_null(False),
    )


def retry_spacing(deliveries: pl.DataFrame) -> pl.DataFrame:
    """One row per attempt: gap to the event's previous attempt (s) and the backoff verdict.

    ``gap_s``/``min_gap_s`` are null for an event's first attempt. The verdict itself is
    computed on integer microseconds, never on the float seconds shown.
    """
    spaced = _spacing_of_sorted(_event_sorted(deliveries))
    return _shape(
        spaced.with_columns(
            # round(6): the double nearest the microseconds as seconds (see success_rate_pct)
            gap_s=(pl.col("_gap_us") / 1_000_000).round(6),
            min_gap_s=(pl.col("_min_gap_us") / 1_000_000).round(6),
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
    return health_and_replay(deliveries, as_of, replay=False)[0]


def health_and_replay(
    deliveries: pl.DataFrame, as_of: datetime, *, replay: bool = True
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(``webhook_health(deliveries, as_of)``, ``replay_queue(deliveries)``), sharing the
    one sort of the attempts by event when the cut-off keeps every attempt."""
    cutoff = as_of.astimezone(UTC).replace(tzinfo=None) if as_of.tzinfo is not None else as_of
    d = deliveries.filter(pl.col("attempted_at") <= cutoff).with_columns(_ok=_ok())
    ordered = _event_grouped(d)
    queue = None
    if replay:
        queue = _replay_of_sorted(ordered if d.height == deliveries.height else _event_grouped(deliveries))

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
        _spacing_of_sorted(ordered)
        .group_by(ENDPOINT_KEY)
        .agg(pl.col("fast_retry").sum().alias("fast_retries"))
    )

    # nearest rank ceil(0.95 n) of each endpoint's non-null latencies, sorted per group
    latency = pl.col("latency_ms").sort()
    latencies = (
        d.filter(pl.col("latency_ms").is_not_null())
        .group_by(ENDPOINT_KEY)
        .agg(latency.get((pl.len() * 95 + 99) // 100 - 1).alias("p95_latency_ms"))
    )

    attempts = pl.col("attempts").cast(pl.Int64)
    health = (
        base.join(fast, on=ENDPOINT_KEY, how="left")
        .join(latencies, on=ENDPOINT_KEY, how="left")
        .with_columns(
            failures=pl.col("attempts") - pl.col("successes"),
            # hundredths as an integer, then the double nearest that decimal: Polars divides
            # by a literal as a multiplication by its reciprocal (9932 / 100 -> 99.32000000000001
            # in the packet's CSV); round(2) lands on the nearest double (0..10000 all checked)
            success_rate_pct=(((pl.col("successes").cast(pl.Int64) * 20_000 + attempts) // (2 * attempts)) / 100).round(2),
            failing_now=pl.col("consecutive_failures") >= FAILING_STREAK,
            fast_retries=pl.col("fast_retries").fill_null(0),
        )
    )
    return _shape(health, HEALTH_SCHEMA).sort(ENDPOINT_KEY), queue


def replay_queue(deliveries: pl.DataFrame) -> pl.DataFrame:
    """Every (tenant_id, event_id, endpoint) whose latest attempt failed: ready to replay.

    Latest = highest attempt number, then latest attempted_at, then delivery_id. An
    event delivered once and failing on a later attempt is queued too: the latest
    outcome is what the tenant's system last saw.
    """
    return _replay_of_sorted(_event_grouped(deliveries))


def _replay_of_sorted(ordered: pl.DataFrame) -> pl.DataFrame:
    """``replay_queue`` on rows with each event's attempts contiguous and in EVENT_ORDER
    (``_event_grouped``; the queue is sorted at the end): each event's last row, with the event's attempt count (run lengths on sorted rows, no grouping)."""
    position = pl.int_range(pl.len(), dtype=pl.Int64)
    marked = ordered.with_columns(_same=_same_as_previous(EVENT_KEY)).with_columns(
        _attempts=(position - pl.when(~pl.col("_same")).then(position).forward_fill() + 1).cast(pl.UInt32),
        _last=~pl.col("_same").shift(-1).fill_null(False),
    )
    latest = marked.filter(pl.col("_last")).select(
        *EVENT_KEY,
        pl.col("_attempts").alias("attempts"),
        pl.col("attempted_at").alias("last_attempt_at"),
        pl.col("status_code").alias("last_status"),
        pl.col("error").alias("last_error"),
    )
    failed = pl.col("last_status").is_between(200, 299).fill_null(False).not_()
    return _shape(
        latest.filter(failed).with_columns(replay_ready=pl.lit(True)),
        REPLAY_SCHEMA,
    ).sort("tenant_id", "event_id", "endpoint")
