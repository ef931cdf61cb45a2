"""Ledgered and reconciled state → one sealed, signed packet per tenant and UTC day."""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from zentra_pipelines import packet_inputs
from zentra_pipelines.adapters import packet_store
from zentra_pipelines.adapters.config import load_policies, load_webhook_keys
from zentra_pipelines.adapters.signing import load_signer
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import deliveries as delivery_health
from zentra_pipelines.domain import ledger as ledger_domain
from zentra_pipelines.domain import packet_plan
from zentra_pipelines.domain.errors import first_line
from zentra_pipelines.domain.evidence import PacketInput

#: Tenant-days sealed at once (each holds one packet's tables and bytes in memory).
SEAL_WORKERS = max(1, min(4, os.cpu_count() or 1))

#: Every table a packet seals from (and ``daily_balances``, its closing balances). Sealing
#: on a warehouse without one of them would sign a day with part of its books left out.
SEALED_FROM = tuple(sorted({table for table, _ in packet_plan.DAY_COLUMNS.values()} | {"daily_balances"}))


def missing_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """What the packets asset refuses to seal without. ``run_packets`` itself seals from
    what there is (stage-level callers build only some tables, data contracts aside)."""
    return [t for t in SEALED_FROM if not Warehouse.exists(con, t)]


@dataclass(frozen=True)
class Refused:
    """A tenant-day not sealed: its own rows failed an integrity check of the packet, or
    its packet could not be written (a folder not writable, a latest version refused)."""

    tenant_id: str
    period: date
    failed: tuple[str, ...]  # the failed day checks' "name: detail", or why it was not written

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.period.isoformat()}: " + "; ".join(self.failed)


@dataclass(frozen=True)
class PacketOutcomes:
    """What sealing did with each tenant-day; the three add up to the tenant-days listed."""

    sealed: int  # a new version written
    unchanged: int | None  # inputs and sealed version as recorded: not read, not rebuilt
    rebuilt_same: int | None  # rebuilt (digest or code moved) to the content already sealed


def packet_outcomes(packets: pl.DataFrame) -> PacketOutcomes:
    """From a ``packets`` frame (``created``, ``rebuilt``). A null or absent ``rebuilt``
    (a table written before the column existed) counts as rebuilt; absent, the last two
    figures are unknown (None)."""
    created = packets["created"].fill_null(False)
    sealed = int(created.sum())
    if "rebuilt" not in packets.columns:
        return PacketOutcomes(sealed, None, None)
    rebuilt = packets["rebuilt"].fill_null(True)
    return PacketOutcomes(sealed, int((~rebuilt).sum()), int((rebuilt & ~created).sum()))


@dataclass(frozen=True)
class EvidenceReport:
    packets: pl.DataFrame  # tenant_id, period, version, created, rebuilt, path, merkle_root, key_id
    key_kind: str
    key_id: str
    refused: tuple[Refused, ...] = ()  # tenant-days whose rows failed a day check: not sealed

    @property
    def sealed_now(self) -> int:
        return packet_outcomes(self.packets).sealed

    @property
    def unchanged(self) -> int:
        """Tenant-days whose inputs and sealed version were as recorded: not read, not rebuilt."""
        return packet_outcomes(self.packets).unchanged

    @property
    def rebuilt_same(self) -> int:
        """Tenant-days rebuilt (their digest moved, or the code did) to the content already sealed."""
        return packet_outcomes(self.packets).rebuilt_same


def configured_tenants(policies_path: Path, secrets_path: Path) -> list[str]:
    """Packets are only ever made for tenants named in configuration (ids used in paths)."""
    tenants = set(load_policies(policies_path)["tenants"]) | set(load_webhook_keys(secrets_path)["tenant_id"])
    return sorted(t for t in tenants if isinstance(t, str))


def packet_queries(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Packet table name -> the SELECT of some tenants' sealed rows of one day (``$tenants``, ``$day``).

    Built once per run: which tables exist and their sealed columns come from the catalog,
    and each catalog lookup costs milliseconds (``Warehouse.exists`` ~8 ms), which per
    table per tenant-day added up to most of the time of reading a small packet.
    """
    queries: dict[str, str] = {}
    for name, (table, column) in packet_plan.DAY_COLUMNS.items():
        if name == "intent_timeline" or not Warehouse.exists(con, table):
            continue
        queries[name] = (
            f'SELECT {_sealed_columns(con, table, "t")} FROM "{table}" AS t '
            f'WHERE list_contains($tenants, t.tenant_id) AND CAST(t."{column}" AS DATE) = $day'
        )
    if Warehouse.exists(con, "intent_timeline") and Warehouse.exists(con, "intents"):
        queries["intent_timeline"] = (
            f'SELECT {_sealed_columns(con, "intent_timeline", "t")}, i.created_at AS intent_created_at '
            'FROM "intent_timeline" AS t '
            'JOIN "intents" AS i ON t.tenant_id = i.tenant_id AND t.intent_id = i.intent_id '
            'WHERE list_contains($tenants, t.tenant_id) AND list_contains($tenants, i.tenant_id) '
            'AND CAST(i.created_at AS DATE) = $day'
        )
    return queries


def tenant_day_frames(
    con: duckdb.DuckDBPyConnection, tenant: str, day: date, queries: dict[str, str] | None = None
) -> dict[str, pl.DataFrame]:
    """The tables of one tenant-day packet, as :func:`packet_plan.allocate` would cut
    them out of the whole day's rows: only that tenant's rows of that UTC day,
    without the never-sealed columns, empty tables left out. Filtered in DuckDB, so only
    one packet's rows reach Python (a whole day at 1M intents is ~1 GB of frames).
    ``queries``: :func:`packet_queries`, when the caller reads many tenant-days."""
    return tenant_days_frames(con, [tenant], day, queries).get(tenant, {})


def tenant_days_frames(
    con: duckdb.DuckDBPyConnection, tenants: list[str], day: date, queries: dict[str, str] | None = None
) -> dict[str, dict[str, pl.DataFrame]]:
    """:func:`tenant_day_frames` of several tenants of one day, one query per table.

    Each query costs a scan of its table whatever the rows it returns (~5-7 ms at 100k
    intents): reading a day's tenants together cut the reads of 15 resealed tenant-days
    from 1.1-1.4 s to 0.65 s. Each tenant's rows keep the scan order of its own read."""
    out: dict[str, dict[str, pl.DataFrame]] = {}
    params = {"tenants": sorted(set(tenants)), "day": day}
    for name, sql in (queries or packet_queries(con)).items():
        frame = con.sql(sql, params=params).pl()
        if len(params["tenants"]) == 1:
            # the query kept that tenant's rows only: nothing to cut, and partition_by
            # would copy every row (a large tenant-day is read alone: ~3 CPU s at 1M)
            if frame.height:
                out.setdefault(params["tenants"][0], {})[name] = frame
            continue
        for (tenant,), rows in frame.partition_by("tenant_id", as_dict=True, maintain_order=True).items():
            if tenant in params["tenants"] and rows.height:
                out.setdefault(tenant, {})[name] = rows
    return out


def _sealed_columns(con: duckdb.DuckDBPyConnection, table: str, alias: str) -> str:
    """A table's sealed columns in table order, quoted, for a SELECT list."""
    return ", ".join(f"{alias}.{packet_inputs.quote(c)}" for c, _ in packet_inputs.sealed_columns(con, table))


def packet_days(con: duckdb.DuckDBPyConnection, tenants: list[str]) -> list[date]:
    """Every UTC day holding a row of a configured tenant in a packet table."""
    found: set[date] = set()
    for name, (table, column) in packet_plan.DAY_COLUMNS.items():
        if name == "intent_timeline" or not Warehouse.exists(con, table):
            continue  # dated by its intent, already counted through `intents`
        found.update(d for (d,) in con.sql(
            f'SELECT DISTINCT CAST("{column}" AS DATE) FROM "{table}" WHERE list_contains($tenants, tenant_id)',
            params={"tenants": sorted(tenants)},
        ).fetchall() if d is not None)
    return sorted(found)


def run_packets(
    con: duckdb.DuckDBPyConnection,
    home: Path,
    tenants: list[str],
    signing_key: str | None,
    days: set[date] | None = None,
) -> EvidenceReport:
    """Seal every tenant-day (or only ``days``, for a partitioned run); unchanged days seal nothing.

    Only the rows of the packets being sealed are read from the warehouse (at 1M intents
    the whole state is many GB, one day's rows of every tenant ~1 GB of frames): the
    tenant-days of one day are read together while their rows (counted by the
    fingerprints) stay within READ_BATCH_ROWS, a larger one alone, and sealed on a small
    thread pool while the next are read; at most SEAL_WORKERS packets' rows plus one such
    read are held at once. A tenant-day whose input digest
    (:mod:`zentra_pipelines.packet_inputs`) and latest sealed version are what this
    warehouse recorded when it sealed that version is not read or rebuilt at all.

    Never signs a packet whose own integrity checks fail (journals balance, the chain
    links, closing balances net to zero): such a tenant-day is left unsealed and listed
    in ``refused``, as is one whose packet cannot be written (errors are data: one
    unwritable folder does not stop the other tenant-days, and what was sealed is
    recorded), while the other tenant-days are sealed as usual.
    """
    signer = load_signer(home, signing_key)
    packet_store.sweep_staging(home)  # temp packets of a killed run: never evidence, never kept
    daily = Warehouse.read(con, "daily_balances")
    # the day checks only look for journals whose sum is not zero; so do the fingerprints
    journal_sums = packet_inputs.unbalanced_journal_sums(con)
    daily_by_tenant = (
        daily.partition_by("tenant_id", as_dict=True) if daily is not None and daily.height else {}
    )
    todo = sorted(days) if days is not None else packet_days(con, tenants)
    present: dict[packet_inputs.Key, dict[str, int]] = {}
    sources = packet_inputs.provenance(con, tenants, todo)
    digests = packet_inputs.fingerprints(con, tenants, todo, signer.key_id, present, journal_sums, sources)
    queries = packet_queries(con)
    sealed_here = packet_inputs.recorded(con)
    prior = {} if packet_inputs.rebuild_all_requested() else sealed_here

    def seal_one(key: packet_plan.TenantDay, tables: dict[str, pl.DataFrame]) -> tuple:
        tenant_daily = daily_by_tenant.get((key.tenant_id,))
        if tenant_daily is not None:
            tables["closing_balances"] = ledger_domain.closing_balances_at(tenant_daily, key.period)
        if "reconciliation_breaks" in tables:
            tables["reconciliation_breaks"] = packet_plan.age_at_day_end(tables["reconciliation_breaks"], key.period)
        report = {}
        if "deliveries" in tables:
            as_of = packet_plan.day_end(key.period)
            tables["webhook_health"], tables["replay_queue"] = delivery_health.health_and_replay(
                tables["deliveries"], as_of)
        inp = PacketInput(
            tenant_id=key.tenant_id,
            period=key.period.isoformat(),
            tables=tables,
            counts=packet_plan.day_counts(tables),
            policy_versions=sorted(set(tables["policy_decisions"]["policy_version"]))
            if "policy_decisions" in tables else [],
            source_inputs=_source_inputs(tables, sources.get((key.tenant_id, key.period), [])),
            checks=packet_plan.day_checks(tables, journal_sums),
            report=report,
        )
        failed = tuple(f"{c['name']}: {c['detail']}" for c in inp.checks if not c["passed"])
        if failed:
            return Refused(key.tenant_id, key.period, failed)
        recorded = sealed_here.get((key.tenant_id, key.period))
        try:
            result = packet_store.seal(home, inp, signer, recorded[2] if recorded else None)
        except (packet_store.PacketStoreError, OSError) as exc:  # this tenant-day only: the others go on
            why = f"{type(exc).__name__}: {first_line(exc, cap=None)}"[:300]
            return Refused(key.tenant_id, key.period, (f"not sealed: {why}",))
        return (key.tenant_id, key.period, result.version, result.created, True, str(result.path),
                result.merkle_root, result.key_id, result.manifest_sha256)

    # Tenant-days are independent (own folder, own version chain) and the work is Parquet,
    # CSV, deflate (ISA-L), inflate and SHA-256 on large buffers, all of which release the GIL: seal them on
    # a small pool while this thread (the only one using ``con``) reads the next one.
    # Rows come back in (day, tenant) order whatever the thread schedule.
    rows, refused = [], []
    pending: deque[Future | tuple] = deque()  # a tuple: an unchanged day, already answered

    def settle(item: Future | tuple) -> None:
        done = item.result() if isinstance(item, Future) else item
        (refused if isinstance(done, Refused) else rows).append(done)

    with ThreadPoolExecutor(max_workers=SEAL_WORKERS, thread_name_prefix="zentra-seal") as pool:
        for day in todo:
            day_tenants = sorted(set(tenants))
            kept = {t: _unchanged(home, t, day, digests.get((t, day)), prior.get((t, day))) for t in day_tenants}
            rebuild = [t for t in day_tenants if kept[t] is None and present.get((t, day))]
            read: dict[str, dict[str, pl.DataFrame]] = {}
            for tenant in day_tenants:
                if len(pending) >= SEAL_WORKERS:  # bound the packets in memory
                    settle(pending.popleft())
                if kept[tenant] is not None:
                    pending.append(kept[tenant])
                    continue
                if tenant not in rebuild:
                    continue  # a tenant without a row that day has no packet
                if tenant not in read:
                    batch = _read_batch(rebuild[rebuild.index(tenant):], day, present)
                    # only the tables the fingerprints saw a row of these tenant-days in
                    wanted = {n for t in batch for n in present[(t, day)]}
                    read = tenant_days_frames(con, batch, day, {n: q for n, q in queries.items() if n in wanted})
                    read.update({t: {} for t in batch if t not in read})
                tables = read.pop(tenant)
                if tables:
                    pending.append(pool.submit(seal_one, packet_plan.TenantDay(tenant, day), tables))
                del tables  # held by the task only, freed when it is sealed
        while pending:
            settle(pending.popleft())
    packet_inputs.record(con, [
        (tenant, day, version, digests[(tenant, day)], manifest_sha)
        for tenant, day, version, *_, manifest_sha in rows if (tenant, day) in digests
    ], days)
    packets = pl.DataFrame(
        [row[:-1] for row in rows],
        schema={"tenant_id": pl.String, "period": pl.Date, "version": pl.Int64, "created": pl.Boolean,
                "rebuilt": pl.Boolean, "path": pl.String, "merkle_root": pl.String, "key_id": pl.String},
        orient="row",
    )
    _record_packets(con, packets, days, refused)
    return EvidenceReport(packets=packets, key_kind=signer.key_kind, key_id=signer.key_id, refused=tuple(refused))


#: Rows (all packet tables) read at once for the tenant-days of one day: small days are
#: read in one query per table, a large tenant-day (~1.5M rows at 1M intents) alone.
READ_BATCH_ROWS = 250_000


def _read_batch(tenants: list[str], day: date, present: dict[packet_inputs.Key, dict[str, int]]) -> list[str]:
    """The first of ``tenants`` and those after it while their rows stay within READ_BATCH_ROWS."""
    batch, rows = [], 0
    for tenant in tenants:
        rows += sum(present[(tenant, day)].values())
        if batch and rows > READ_BATCH_ROWS:
            break
        batch.append(tenant)
    return batch


def _unchanged(home: Path, tenant: str, day: date, digest: str | None, prior: tuple | None) -> tuple | None:
    """The packets row of a tenant-day left as it is, or ``None`` if it must be rebuilt.

    Unchanged means: its input digest is the one recorded when its latest version was
    sealed, and that version is still the latest in the store with the same manifest.
    """
    if digest is None or prior is None or prior[1] != digest:
        return None
    try:
        found = packet_store.latest_manifest(home, tenant, day.isoformat())
    except packet_store.PacketStoreError:
        return None  # rebuilt, and sealing reports what is wrong with the stored version
    if found is None:
        return None
    version, path, manifest_raw = found
    manifest_sha = hashlib.sha256(manifest_raw).hexdigest()
    if (version, manifest_sha) != (prior[0], prior[2]):
        return None
    manifest = json.loads(manifest_raw)
    return (tenant, day, version, False, False, str(path), manifest["merkle_root"], manifest["key_id"], manifest_sha)


#: Columns of what one run did to a tenant-day: sealed a version, rebuilt its packet.
RUN_FLAGS = ["created", "rebuilt"]


def _record_packets(con: duckdb.DuckDBPyConnection, packets: pl.DataFrame, days: set[date] | None,
                    refused: list[Refused]) -> None:
    """Keep the ``packets`` table whole: a partitioned run replaces only the rows of its
    days, and a refused tenant-day keeps the row of the version it still has. That
    registry holds no per-run flag, so a rerun that seals nothing leaves it unchanged;
    ``packets_run`` says what this run did to each of its tenant-days (the summary's
    "sealed this run"), replaced by every packets run."""
    run = packets.select("tenant_id", "period", *RUN_FLAGS).sort("tenant_id", "period")
    packets = packets.drop(RUN_FLAGS)
    old = Warehouse.read(con, "packets") if days is not None or refused else None
    if old is not None and old.height:
        old = old.drop(RUN_FLAGS, strict=False)  # a table written when it held them
        still = pl.DataFrame([(r.tenant_id, r.period) for r in refused],
                             schema={"tenant_id": pl.String, "period": pl.Date}, orient="row")
        kept = pl.concat([
            old.filter(~pl.col("period").is_in(sorted(days))) if days is not None else old.clear(),
            old.join(still, on=["tenant_id", "period"], how="semi"),
        ])
        packets = pl.concat([kept, packets], how="diagonal_relaxed").select(packets.columns)
    Warehouse.publish(con, {"packets": packets.sort("tenant_id", "period"), "packets_run": run},
                      allow_empty={"packets", "packets_run"})


def _source_inputs(tables: dict[str, pl.DataFrame], parsed: list[list[str]]) -> list[dict[str, str]]:
    """The landing files that contributed rows to this packet, by content hash: those its
    rows name, and ``parsed`` (``packet_inputs.provenance``: the files behind its accepted
    intents, deliveries and settlements, tables that name no file of their own)."""
    seen: set[tuple[str, str]] = {(path, sha) for path, sha in parsed}
    for frame in tables.values():
        if {"source_file", "file_sha256"} <= set(frame.columns):
            seen.update(frame.select("source_file", "file_sha256").unique().iter_rows())
    entries = tables.get("ledger_entries")
    if entries is not None and entries.height:
        head = entries.sort("entry_seq")["entry_hash"][-1]
        seen.add(("source_db:ledger_postings (chain head)", head))
    return [{"path": p, "sha256": h} for p, h in sorted(seen) if p and h]
