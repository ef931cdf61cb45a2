"""Convergence: duplicate, replayed and out-of-order callbacks become one state.

Input is the verdict of every callback line (``callback_checked``); output is a
function of the *set* of lines only, never of their order, so any permutation or
duplication of the same deliveries gives the same bytes:

* copies of one event (same tenant, provider, event_id and content) collapse;
* one event_id with two contents is a conflict: every copy is quarantined, none wins;
* per provider_ref, the remaining event with the highest sequence is the state
  (ties broken by event_id so the answer never depends on arrival order).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from zentra_pipelines.domain import errors
from zentra_pipelines.domain.dedupe import quarantine_all, requarantined, same_as_previous, split_conflicts
from zentra_pipelines.domain.ledger import in_order

EVENT_KEY = ["tenant_id", "provider", "event_id"]
STATE_KEY = ["tenant_id", "provider", "provider_ref"]

QUARANTINE_COLUMNS = ["tenant_id", "source_file", "line_no", "error_code", "detail", "received_at", "file_sha256"]
STATE_COLUMNS = [
    "tenant_id", "provider", "provider_ref", "intent_id", "type", "amount_minor", "currency", "sequence",
    "event_id", "occurred_at", "received_at", "events_seen",
]


@dataclass(frozen=True)
class Convergence:
    events: pl.DataFrame  # one row per accepted line (duplicates included, `copies` counted)
    quarantine: pl.DataFrame  # one row per quarantined line
    state: pl.DataFrame  # provider_state: one row per (tenant, provider, provider_ref)
    conflicts: pl.DataFrame  # per event and (intent_id, provider_ref) named: contents, copies, first_received_at


def converge(checked: pl.DataFrame) -> Convergence:
    """The convergence of every judged line.

    Only the lines judged bad (a few) and those judged ok are kept from ``checked``:
    a caller that passes the frame without keeping it (``converge(read())``) lets it go
    here, so the whole read and its ok copy are not both held to the end.
    """
    ok = checked.filter(pl.col("error_code").is_null())
    judged_bad = checked.filter(pl.col("error_code").is_not_null())
    del checked
    split = split_conflicts(ok, EVENT_KEY)
    accepted = split.accepted
    # one row per conflicting event and each (intent, ref) its copies name: copies that
    # disagree on the intent are reported against every intent named, not just the first
    conflicts = (
        split.conflict_lines.group_by(*EVENT_KEY, "intent_id", "provider_ref")
        .agg(
            pl.col("contents").first(),
            pl.len().alias("copies"),
            pl.col("received_at").min().alias("first_received_at"),
        )
        .sort(*EVENT_KEY, "intent_id", "provider_ref", nulls_last=True)
    )
    quarantine = quarantine_all(
        judged_bad, split, errors.EVENT_CONFLICT,
        pl.format("event_id {} arrived with {} different contents; no copy wins", "event_id", "contents"),
        QUARANTINE_COLUMNS,
    )

    # Lines are judged in landing order, so usually already in this one: then no sort
    # (a sort of rows already in order would still copy every column).
    line_order = ["source_file", "line_no", "file_sha256"]
    ordered = in_order(accepted, line_order)
    events = accepted.with_columns(
        pl.len().over(EVENT_KEY).alias("copies"),
        pl.col("received_at").min().over(EVENT_KEY).alias("first_received_at"),
    )
    if not ordered:
        events = events.sort(line_order)

    # the columns it needs first: grouping the whole wide frame costs far more memory
    unique_events = accepted.select(
        *EVENT_KEY, "provider_ref", "intent_id", "type", "amount_minor", "currency", "sequence", "occurred_at",
        "received_at",
    ).group_by(EVENT_KEY).agg(
        pl.col("provider_ref", "intent_id", "type", "amount_minor", "currency", "sequence", "occurred_at").first(),
        pl.col("received_at").min(),
    )
    # Each provider_ref's events contiguous (STATE_KEY never null on accepted lines), best
    # event first, led by provider_ref, the key column with the most distinct values (a
    # low-cardinality leading string is compared row by row: 99k refs 1.1 -> 0.33 CPU s
    # with the run lengths below instead of over() + unique()). The first row of each
    # run is the state, the run's length events_seen; one row per STATE_KEY remains,
    # in (provider_ref, tenant_id, provider) order, so a stable sort by (tenant_id,
    # provider) leaves them in STATE_KEY order.
    grouped = ["provider_ref", "tenant_id", "provider"]
    best_first = unique_events.sort(grouped + ["sequence", "event_id"], descending=[False, False, False, True, False])
    position = pl.int_range(pl.len(), dtype=pl.Int64)
    firsts = best_first.with_columns(_same=same_as_previous(grouped), _pos=position).filter(~pl.col("_same"))
    state = (
        firsts.with_columns(
            events_seen=(pl.col("_pos").shift(-1).fill_null(best_first.height) - pl.col("_pos")).cast(pl.UInt32)
        )
        .sort(["tenant_id", "provider"], maintain_order=True)
        .select(STATE_COLUMNS)
    )
    return Convergence(events=events, quarantine=quarantine, state=state, conflicts=conflicts)


@dataclass(frozen=True)
class ConvergedChanges:
    converged: Convergence  # quarantine, state, conflicts whole; events: the rows of `redone` events
    redone: pl.DataFrame  # EVENT_KEY of every event converged again: its published rows are replaced


def converge_changes(
    lines: pl.DataFrame, new_files: list[str], state: pl.DataFrame, quarantine: pl.DataFrame,
    conflicts: pl.DataFrame,
) -> ConvergedChanges:
    """What ``converge`` of every judged line gives, from its published result over every
    line but those of ``new_files`` (``state``, ``quarantine``, ``conflicts``) and
    ``lines``: every line of the new files and every accepted-so-far line of each event
    that shares a provider_ref with an event of theirs (``select_changed_callback_lines``).

    Only those events and refs can change: an event's copies, first arrival and conflict
    are decided by its own lines, a ref's state by the events naming it, and ``lines``
    holds all of theirs. Their rows are converged again and replace the published ones;
    the tables come back whole, in ``converge``'s order, except ``events``: the rows of the
    ``redone`` events only (a conflict now has none).
    """
    ok = lines.filter(pl.col("error_code").is_null())
    new_events = ok.filter(pl.col("file_sha256").is_in(new_files)).select(EVENT_KEY).unique()
    refs = ok.join(new_events, on=EVENT_KEY, how="semi").select(STATE_KEY).unique()
    part = converge(lines)
    redone = ok.select(EVENT_KEY).unique()
    return ConvergedChanges(
        converged=Convergence(
            events=part.events,
            quarantine=requarantined(quarantine, ok, part.quarantine),
            state=pl.concat(
                [state.join(refs, on=STATE_KEY, how="anti"), part.state.join(refs, on=STATE_KEY, how="semi")]
            ).sort(STATE_KEY),
            conflicts=pl.concat([conflicts.join(redone, on=EVENT_KEY, how="anti"), part.conflicts]).sort(
                *EVENT_KEY, "intent_id", "provider_ref", nulls_last=True
            ),
        ),
        redone=redone,
    )
