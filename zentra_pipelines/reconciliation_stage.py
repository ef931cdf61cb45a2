"""Routed, synchronized, reconciled: the stages that join every story about a payment."""

from __future__ import annotations

import hashlib
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from zentra_pipelines.adapters.code_version import code_version
from zentra_pipelines.adapters.sql_files import load_sql
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import ledger as ledger_domain
from zentra_pipelines.domain.accounting import count_by, file_accounting
from zentra_pipelines.domain.policy import REJECTED, REVIEW
from zentra_pipelines.domain.prefetch import prefetched
from zentra_pipelines.domain.reconcile import reconcile
from zentra_pipelines.domain.routing import routing_decisions
from zentra_pipelines.domain.timeline import TIMELINE_SCHEMA, intent_timeline


def as_of(con: duckdb.DuckDBPyConnection) -> datetime:
    """The newest timestamp in the data: ages are measured against it, never the clock."""
    value = con.sql(load_sql("select_as_of")).fetchall()[0][0]
    return value or datetime(1970, 1, 1)


def _require(con: duckdb.DuckDBPyConnection, name: str) -> None:
    if not Warehouse.exists(con, name):
        raise RuntimeError(f"table {name} has not been built yet: materialize its upstream asset first")


def _columns(
    con: duckdb.DuckDBPyConnection, name: str, columns: tuple[str, ...], tenant: str | None = None
) -> pl.DataFrame:
    """Some columns of a published table, in table order (names: constants, quoted), of
    every tenant or of one (bound, never SQL text)."""
    _require(con, name)
    sql = f'SELECT {", ".join(chr(34) + c + chr(34) for c in columns)} FROM "{name}"'
    if tenant is None:
        return con.sql(sql).pl()
    return con.sql(sql + " WHERE tenant_id = $tenant", params={"tenant": tenant}).pl()


def _quarantined_intents(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    _require(con, "intents_quarantine")
    return con.sql(load_sql("select_quarantined_intents")).pl()


def _quarantined_ledger_intents(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    for name in ("ledger_postings_quarantine", "ledger_source_rows"):
        _require(con, name)
    return con.sql(load_sql("select_quarantined_ledger_intents")).pl()


def _table(con: duckdb.DuckDBPyConnection, name: str) -> pl.DataFrame:
    _require(con, name)
    return Warehouse.read(con, name)


@dataclass(frozen=True)
class RoutingReport:
    routed: int
    pending: int
    by_rail: dict[str, int]


#: What routing reads of its inputs (whole tables were read before: intents alone carries 13 columns).
ROUTING_COLUMNS = {
    "intents": ("tenant_id", "intent_id", "corridor", "created_at"),
    "policy_decisions": ("tenant_id", "intent_id", "outcome"),
    "provider_state": ("tenant_id", "intent_id", "provider", "provider_ref", "type", "received_at"),
}


def run_routing(con: duckdb.DuckDBPyConnection) -> RoutingReport:
    routes = routing_decisions(*(_columns(con, name, cols) for name, cols in ROUTING_COLUMNS.items()))
    update = Warehouse.changes(con, "routing_decisions", routes, ["tenant_id", "intent_id"])
    Warehouse.publish(con, {"routing_decisions": routes}, allow_empty={"routing_decisions"},
                      in_place={"routing_decisions": update} if update else None)
    status = count_by(routes, "status")
    return RoutingReport(status.get("routed", 0), status.get("pending", 0), count_by(routes, "rail"))


@dataclass(frozen=True)
class BreakReport:
    total: int
    by_type: dict[str, int]
    at_risk: pl.DataFrame  # break_type, currency, amount_minor (absolute difference or exposure)
    as_of: datetime


#: What reconciliation reads of the two largest tables (6M entries, 2.45M events at 1M).
LEDGER_VIEW_COLUMNS = ("tenant_id", "intent_id", "journal_id", "account_id", "currency", "amount_minor",
                       "posted_at", "idempotency_key")


#: ledger.intent_ledger_view's rows as of the last reconciliation, each with the fingerprint of
#: the intent's entries it was built from (sql/select_reconcile_entry_fingerprints.sql).
LEDGER_VIEW_CACHE = "reconcile_ledger_view"


def _ledger_view_version(con: duckdb.DuckDBPyConnection) -> str:
    """What a cached view row depends on besides its intent's entries: the code
    (``code_version``) and the accounts (any change there rebuilds every row once)."""
    accounts = con.sql(load_sql("select_reconcile_accounts_digest")).fetchall()[0][0]
    return hashlib.sha256(f"{code_version()}\0{accounts}".encode()).hexdigest()


def _ledger_view(con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """ledger.intent_ledger_view over every entry, and the cache to publish (None: unchanged).

    The view is one row per (tenant_id, intent_id) made of order-free aggregates of that
    intent's entries (and the accounts), so a cached row whose entry fingerprint still
    matches is the row a full build gives; only the other intents' entries are read and
    viewed, and the rows are sorted by the key as the full view is. No cache (fresh home),
    a cache of another shape or a null tenant_id (keys that do not join): the full view."""
    key = ["tenant_id", "intent_id"]
    accounts = _table(con, "ledger_accounts")
    fresh = con.sql(load_sql("select_reconcile_entry_fingerprints"), params={"version": _ledger_view_version(con)}).pl()
    cached = Warehouse.read(con, LEDGER_VIEW_CACHE) if Warehouse.exists(con, LEDGER_VIEW_CACHE) else None
    shape = [*ledger_domain.INTENT_VIEW_SCHEMA, "fingerprint"]
    if cached is None or cached.columns != shape or fresh["tenant_id"].null_count():
        view = ledger_domain.intent_ledger_view(_columns(con, "ledger_entries", LEDGER_VIEW_COLUMNS), accounts)
        return view, view.join(fresh, on=key, how="left", maintain_order="left")
    kept = cached.join(fresh, on=[*key, "fingerprint"], how="semi")
    changed = fresh.join(kept, on=key, how="anti")
    if changed.height == 0 and kept.height == cached.height:
        return cached.drop("fingerprint"), None
    entries = con.sql(
        f'SELECT {", ".join(chr(34) + c + chr(34) for c in LEDGER_VIEW_COLUMNS)} FROM "ledger_entries" '
        "WHERE intent_id IN (SELECT unnest($intents))",
        params={"intents": changed["intent_id"].unique().to_list()},
    ).pl().join(changed.select(key), on=key, how="semi")
    rebuilt = ledger_domain.intent_ledger_view(entries, accounts)
    view = pl.concat([kept.drop("fingerprint").cast(rebuilt.schema), rebuilt]).sort(key)
    return view, view.join(fresh, on=key, how="left", maintain_order="left")


#: What reconcile reads of the other large tables (the break frames pick columns by name,
#: so every column reconcile or its joins could carry into a break is listed).
RECONCILE_COLUMNS = {
    "intents": ("tenant_id", "intent_id", "amount_minor", "currency", "ledger_currency", "created_at"),
    "provider_state": ("tenant_id", "provider", "provider_ref", "intent_id", "type", "amount_minor", "currency",
                       "received_at"),
    "settlements": ("tenant_id", "provider", "provider_ref", "currency", "gross_minor", "fee_minor", "settled_at",
                    "batch_id"),
    "policy_decisions": ("tenant_id", "intent_id", "outcome", "reason"),
}


def _held_intents(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """(tenant_id, intent_id, outcome, decision_reason) of intents policy held in review or
    rejected: the ledger rightly has no postings for them."""
    decisions = _columns(con, "policy_decisions", RECONCILE_COLUMNS["policy_decisions"])
    return decisions.filter(pl.col("outcome").is_in([REVIEW, REJECTED])).rename({"reason": "decision_reason"})


def run_reconciliation(con: duckdb.DuckDBPyConnection) -> BreakReport:
    """Breaks from the current state. The engine does what needs no domain rule: the first
    callback per intent (a min) and the few entries whose idempotency key has several
    journals (duplicate_journals' only candidates) come out of SQL already reduced; the
    ledger view is rebuilt only for the intents whose entries moved (_ledger_view). The
    breaks and the view's cache are published together, in one transaction."""
    for name in ("ledger_entries", "callback_events"):
        _require(con, name)
    first_callbacks = con.sql(load_sql("select_first_callbacks")).pl()
    duplicated = ledger_domain.duplicate_journals(con.sql(load_sql("select_duplicate_key_entries")).pl())
    ledger, cache = _ledger_view(con)
    when = as_of(con)
    breaks = reconcile(
        intents=_columns(con, "intents", RECONCILE_COLUMNS["intents"]),
        ledger=ledger,
        duplicate_journals=duplicated,
        provider_state=_columns(con, "provider_state", RECONCILE_COLUMNS["provider_state"]),
        first_callbacks=first_callbacks,
        callback_conflicts=_table(con, "callback_conflicts"),
        quarantined_intents=_quarantined_intents(con),
        sequence_ties=con.sql(load_sql("select_sequence_ties")).pl(),
        settlements=_columns(con, "settlements", RECONCILE_COLUMNS["settlements"]),
        settlement_conflicts=_table(con, "settlement_conflicts"),
        as_of=when,
        held=_held_intents(con),
        quarantined_postings=_quarantined_ledger_intents(con),
    )
    frames = {"reconciliation_breaks": breaks} | ({LEDGER_VIEW_CACHE: cache} if cache is not None else {})
    Warehouse.publish(con, frames, allow_empty={"reconciliation_breaks", LEDGER_VIEW_CACHE})
    at_risk = (
        breaks.with_columns(
            exposure=pl.when(pl.col("ledger_amount_minor").is_not_null() & pl.col("provider_amount_minor").is_not_null())
            .then((pl.col("ledger_amount_minor") - pl.col("provider_amount_minor")).abs())
            .otherwise(pl.coalesce("ledger_amount_minor", "provider_amount_minor").abs())
        )
        .group_by("break_type", "currency")
        .agg(pl.col("exposure").sum().alias("amount_minor"), pl.len().alias("breaks"))
        .sort("break_type", "currency", nulls_last=True)
    )
    return BreakReport(breaks.height, count_by(breaks, "break_type"), at_risk, when)


#: The columns the timeline reads from each table: only those are loaded (at 1M intents
#: whole tables held ~19 GB; the hash columns alone are ~0.8 GB per 6M entries).
TIMELINE_COLUMNS = {
    "callback_events": ("tenant_id", "provider", "event_id", "intent_id", "type", "sequence", "amount_minor",
                        "currency", "occurred_at", "received_at"),
    "intents": ("tenant_id", "intent_id", "created_at", "actor_id", "kind", "amount_minor", "currency",
                "corridor", "scope"),
    "policy_decisions": ("tenant_id", "intent_id", "decided_at", "service", "actor_id", "outcome", "reason",
                         "policy_version", "owner"),
    "routing_decisions": ("tenant_id", "intent_id", "decided_at", "service", "status", "reason", "provider_ref"),
    "deliveries": ("tenant_id", "event_id", "delivery_id", "endpoint", "attempt", "attempted_at", "status_code",
                   "error"),
}


#: The timeline's ledger layer is one row per journal, aggregated in SQL from these entries.
TIMELINE_JOURNALS_FROM = "ledger_entries"


#: The timeline's per-intent input fingerprints (sql/select_timeline_fingerprints.sql) as of the
#: last published timeline: one row per (tenant_id, intent_id) of intents, in that order.
TIMELINE_FINGERPRINTS = "timeline_fingerprints"
TIMELINE_FINGERPRINT_SCHEMA = {"tenant_id": pl.String, "intent_id": pl.String, "fingerprint": pl.UInt64}

def timeline_version() -> str:
    """What a timeline row depends on besides its inputs: the code that builds it and the
    engines that format and sort it (``code_version``). Mixed into every intent's
    fingerprint, so fingerprints stored by other code never match: the first run after a
    change recomputes every intent."""
    return code_version()


def timeline_fingerprints(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per (tenant_id, intent_id) of intents, a digest of every input row its timeline reads."""
    return con.sql(load_sql("select_timeline_fingerprints"), params={"version": timeline_version()}).pl()


def run_timeline(con: duckdb.DuckDBPyConnection) -> int:
    """Build and publish the timeline one tenant at a time: the timeline is ordered by
    tenant first and no row joins across tenants, so the tenants' parts staged in tenant
    order are the same table, while only one tenant's inputs, intermediates and part are
    held at once (at 1M intents the inputs alone are several GB, the whole timeline
    9M string-heavy rows).

    Incremental: every timeline row belongs to one intent and is a function of that
    intent's input rows alone, so an intent whose input fingerprint equals the one
    stored with the published timeline keeps its published rows; only the others
    (new, changed, or every intent when no fingerprints were stored or the code changed)
    are rebuilt; the published rows of the others are dropped and the rebuilt ones added
    in place: the rows a full rebuild gives, in another physical order (readers sort).
    Nothing changed: nothing is written.
    The fingerprints are published after the timeline, so a failure between the two
    leaves older fingerprints, which can only mark more intents as changed."""
    for name in (*TIMELINE_COLUMNS, TIMELINE_JOURNALS_FROM):  # every input exists, whether or not a tenant has rows
        _require(con, name)
    tenants = [t for (t,) in con.sql('SELECT DISTINCT tenant_id FROM "intents" ORDER BY 1').fetchall()]
    fresh = timeline_fingerprints(con)
    kept = _kept_intents(con, fresh, tenants)
    if kept is None or (kept.height == 0 and fresh.height > 0):  # nothing to keep: the bounded full build
        # The next tenant's part is read and built on a helper thread while this one stages
        # the current part (both mostly outside the GIL); a hand-off: at most two parts
        # alive. The parts stream is closed (its thread stopped) before the reader is.
        with Warehouse.reader(con) as reader, closing(
            prefetched((_tenant_timeline(reader, t) for t in tenants), 0, name="zentra-timeline")
        ) as parts:
            rows = Warehouse.publish_parts(con, "intent_timeline", parts, schema=TIMELINE_SCHEMA, allow_empty=True)
    else:
        key = ["tenant_id", "intent_id"]
        changed = fresh.select(key).join(kept, on=key, how="anti")
        if changed.height == 0 and kept.height == _stored_fingerprint_count(con):
            return con.sql('SELECT count(*) FROM "intent_timeline"').fetchall()[0][0]
        # in place (``Warehouse.keep_and_add``): the kept rows, nearly all of the table on a
        # day's run, are neither read nor rewritten; no intent is both kept and rebuilt
        rebuilt = _timeline_of_intents(con, changed) if changed.height else pl.DataFrame(schema=TIMELINE_SCHEMA)
        rows = Warehouse.keep_and_add(con, "intent_timeline", kept, rebuilt)
    Warehouse.publish(con, {TIMELINE_FINGERPRINTS: fresh}, allow_empty={TIMELINE_FINGERPRINTS})
    return rows


def _stored_fingerprint_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.sql(f'SELECT count(*) FROM "{TIMELINE_FINGERPRINTS}"').fetchall()[0][0]


def _kept_intents(con: duckdb.DuckDBPyConnection, fresh: pl.DataFrame, tenants: list) -> pl.DataFrame | None:
    """The (tenant_id, intent_id) whose published timeline rows still hold, or None when
    nothing published can be trusted (no timeline or no fingerprints stored yet, a stored
    table of another shape, a timeline of other columns) or when a null tenant makes the
    per-tenant parts overlap."""
    if None in tenants or not Warehouse.exists(con, "intent_timeline") or not Warehouse.exists(con, TIMELINE_FINGERPRINTS):
        return None
    stored = Warehouse.read(con, TIMELINE_FINGERPRINTS)
    if dict(stored.schema) != TIMELINE_FINGERPRINT_SCHEMA:
        return None
    if [c for c, _ in Warehouse.columns(con, "intent_timeline")] != list(TIMELINE_SCHEMA):
        return None  # published by code with other columns: rows cannot be added in place
    return fresh.join(stored, on=list(TIMELINE_FINGERPRINT_SCHEMA), how="semi").select("tenant_id", "intent_id")


#: The (tenant_id, intent_id) to rebuild, registered for the duration of one read.
_REDO = "_timeline_redo"

#: How the rows of some intents are picked from each timeline input: by the intent, or, for
#: events and deliveries, by any (tenant_id, event_id) an event copy of the intents carries (an
#: event's copies and the deliveries of an event are matched by event id, whichever intent
#: they name).
_EVENTS_OF_INTENTS = (
    f'(SELECT DISTINCT e.tenant_id, e.event_id FROM "callback_events" AS e SEMI JOIN "{_REDO}" AS r '
    "ON e.tenant_id = r.tenant_id AND e.intent_id = r.intent_id)"
)


def _columns_of_intents(con: duckdb.DuckDBPyConnection, name: str, columns: tuple[str, ...]) -> pl.DataFrame:
    """Some columns of a timeline input, in table order, of the rows the registered intents'
    timeline reads (names: constants)."""
    match = (f"{_EVENTS_OF_INTENTS} AS x ON t.tenant_id = x.tenant_id AND t.event_id = x.event_id"
             if name in ("callback_events", "deliveries")
             else f'"{_REDO}" AS x ON t.tenant_id = x.tenant_id AND t.intent_id = x.intent_id')
    sql = (f'SELECT {", ".join("t." + chr(34) + c + chr(34) for c in columns)} FROM "{name}" AS t '
           f"SEMI JOIN {match} ORDER BY t.rowid")
    return con.sql(sql).pl()


def _timeline_of_intents(con: duckdb.DuckDBPyConnection, keys: pl.DataFrame) -> pl.DataFrame:
    """The timeline rows of the given (tenant_id, intent_id) only (``TIMELINE_SCHEMA``), read
    and built for every tenant at once (the changed intents are few). Their inputs alone are read: whole
    event groups and their deliveries, so each row is the one the whole tenant's build gives;
    the rows come sorted by tenant then as each tenant's part is."""
    con.register(_REDO, keys.select("tenant_id", "intent_id").to_arrow())
    try:
        read = {name: _columns_of_intents(con, name, cols) for name, cols in TIMELINE_COLUMNS.items()}
        journals = con.sql(load_sql("select_timeline_journals_of_intents")).pl()
    finally:
        con.unregister(_REDO)
    return _timeline_from(read, journals).cast(TIMELINE_SCHEMA).select(list(TIMELINE_SCHEMA))


def _tenant_timeline(con: duckdb.DuckDBPyConnection, tenant: str) -> pl.DataFrame:
    """One tenant's whole timeline."""
    read = {name: _columns(con, name, cols, tenant) for name, cols in TIMELINE_COLUMNS.items()}
    journals = con.sql(load_sql("select_timeline_journals"), params={"tenant": tenant}).pl()
    return _timeline_from(read, journals)


def _timeline_from(read: dict[str, pl.DataFrame], journals: pl.DataFrame) -> pl.DataFrame:
    """intent_timeline over the inputs as read (TIMELINE_COLUMNS), events reduced to one row
    per (tenant_id, provider, event_id): its first copy in table order, the earliest arrival."""
    events = read.pop("callback_events")
    unique_events = events.group_by("tenant_id", "provider", "event_id").agg(
        pl.col("intent_id", "type", "sequence", "amount_minor", "currency", "occurred_at").first(),
        pl.col("received_at").min(),
        pl.len().alias("copies"),
    )
    del events
    return intent_timeline(
        read.pop("intents"), read.pop("policy_decisions"), journals,
        read.pop("routing_decisions"), unique_events, read.pop("deliveries"),
    )


QUARANTINE_TABLES = {
    "callbacks": "callbacks_quarantine",
    "intents": "intents_quarantine",
    "settlements": "settlements_quarantine",
    "deliveries": "deliveries_quarantine",
}


def _ledger_accounting(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The source database's postings as one accounting row beside the landing files (none
    before the ledger has run): source_file names the source (its URL without password),
    file_sha256 is null (no file), received counts every distinct row archived from it
    (identical re-reads collapse before the archive), accepted the ledger entries,
    quarantined the postings quarantine."""
    mark = Warehouse.read(con, "ledger_watermark") if Warehouse.exists(con, "ledger_watermark") else None
    rows = []
    if mark is not None and mark.height == 1:
        rows.append((mark["source"][0], None, int(mark["archived_rows"][0]), int(mark["accepted_rows"][0]),
                     Warehouse.count(con, "ledger_postings_quarantine")))
    counts = pl.DataFrame(rows, orient="row", schema={
        "source_file": pl.String, "file_sha256": pl.String,
        "received": pl.Int64, "accepted": pl.Int64, "quarantined": pl.Int64,
    })
    key = ["source_file", "file_sha256"]
    return file_accounting(counts.select(*key, "received"), counts.select(*key, "accepted"),
                           counts.select(*key, "quarantined"), "ledger_postings")


def run_accounting(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """received = accepted + quarantined, per landing file and for the source database's
    postings (one row), stored and returned.

    The lines are counted per file in the engine (sql/count_reconcile_source_rows.sql) and only
    the counts reach Polars; the frame is the one domain.accounting.per_file_accounting builds
    from the lines themselves (same columns, types and order)."""
    for name in ("landing_lines", *QUARANTINE_TABLES.values()):
        _require(con, name)
    key = ["source_file", "file_sha256"]
    parts = []
    for source, table in QUARANTINE_TABLES.items():
        counted = con.sql(
            f'WITH quarantined AS (SELECT file_sha256, line_no FROM "{table}")\n' + load_sql("count_reconcile_source_rows"),
            params={"source": source},
        ).pl()
        quarantined = con.sql(
            f'SELECT source_file, file_sha256, count(*) AS quarantined FROM "{table}" GROUP BY source_file, file_sha256'
        ).pl()
        parts.append(file_accounting(counted.select(*key, "received"), counted.select(*key, "accepted"), quarantined, source))
    parts.append(_ledger_accounting(con))
    accounting = pl.concat(parts)
    Warehouse.publish(
        con,
        {"ingest_accounting": accounting},
        audit=lambda f: [
            f"{r['source_file']}: received {r['received']} != {r['accepted']} + {r['quarantined']}"
            for r in f["ingest_accounting"].filter(~pl.col("balanced")).iter_rows(named=True)
        ],
        allow_empty={"ingest_accounting"},
    )
    return accounting
