"""run_packets reads one tenant-day at a time: the same tables as cutting whole days up."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.reliability._support import make_sample, run_stages
from zentra_pipelines import evidence_stage
from zentra_pipelines.adapters import packet_store
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import packet_plan
from zentra_pipelines.domain.evidence import canonical_frame


def whole_day_frames(con, day, tenants) -> dict[str, pl.DataFrame]:
    """The reference: every packet table's rows of ``day`` for ``tenants``, whole (the way
    run_packets read them before it read one tenant-day at a time)."""
    where = 'WHERE list_contains($days, CAST(t."{col}" AS DATE)) AND list_contains($tenants, t.tenant_id)'
    params = {"days": [day], "tenants": sorted(tenants)}
    frames = {}
    for name, (table, column) in packet_plan.DAY_COLUMNS.items():
        if name != "intent_timeline" and Warehouse.exists(con, table):
            frames[name] = con.sql(f'SELECT * FROM "{table}" AS t {where.format(col=column)}', params=params).pl()
    frames["intent_timeline"] = con.sql(
        'SELECT t.*, i.created_at AS intent_created_at FROM "intent_timeline" AS t '
        'JOIN "intents" AS i ON t.tenant_id = i.tenant_id AND t.intent_id = i.intent_id '
        + where.replace("t.", "i.").format(col="created_at"),
        params=params,
    ).pl()
    return frames


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[str]]:
    """The sample's warehouse with every table a packet seals from (no packets yet)."""
    sample = make_sample(tmp_path_factory.mktemp("packets_sample"), intents=20, seed=3)
    home = tmp_path_factory.mktemp("packets_home")
    run_stages(home, sample.landing, sample.source_db, sample.policies, sample.secrets, packets=False)
    return home, evidence_stage.configured_tenants(sample.policies, sample.secrets)


def test_tenant_day_frames_equal_the_whole_day_cut_by_tenant(built):
    home, tenants = built
    with Warehouse(home).connect(read_only=True) as con:
        days = evidence_stage.packet_days(con, tenants)
        assert len(days) >= 2
        compared = 0
        for day in days:
            plan = packet_plan.allocate(whole_day_frames(con, day, tenants), tenants)
            for tenant in tenants + ["t_not_configured_anywhere"]:
                got = evidence_stage.tenant_day_frames(con, tenant, day)
                want = plan.get(packet_plan.TenantDay(tenant, day), {}) if tenant in tenants else {}
                assert sorted(got) == sorted(want), (tenant, day)
                for name, frame in want.items():
                    if name == "intent_timeline":  # a join: its row order is not the table's
                        assert_frame_equal(canonical_frame(got[name]), canonical_frame(frame))
                    else:
                        assert_frame_equal(got[name], frame)
                    compared += 1
        assert compared > 20
        assert not any(c in f.columns for f in got.values() for c in packet_plan.DROP_COLUMNS)


def test_run_packets_holds_at_most_seal_workers_packets(built, tmp_path, monkeypatch):
    """Every tenant-day read is sealed before more than SEAL_WORKERS are held; rows come
    back in (day, tenant) order."""
    home, tenants = built
    monkeypatch.setattr(evidence_stage, "SEAL_WORKERS", 2)
    lock, held, most = threading.Lock(), [0], [0]
    read, seal = evidence_stage.tenant_day_frames, packet_store.seal

    def counted_read(*args):
        tables = read(*args)
        if tables:
            with lock:
                held[0] += 1
                most[0] = max(most[0], held[0])
        return tables

    def counted_seal(*args):
        try:
            return seal(*args)
        finally:
            with lock:
                held[0] -= 1

    monkeypatch.setattr(evidence_stage, "tenant_day_frames", counted_read)
    monkeypatch.setattr(packet_store, "seal", counted_seal)
    with Warehouse(home).connect() as con:
        report = evidence_stage.run_packets(con, tmp_path, tenants, None)
        days = evidence_stage.packet_days(con, tenants)
    assert report.packets.height >= len(days) and report.sealed_now == report.packets.height
    assert 1 <= most[0] <= 2 and held[0] == 0  # "at most": how many overlap depends on the scheduler
    assert report.packets.select("period", "tenant_id").rows() == sorted(
        report.packets.select("period", "tenant_id").rows())
    assert report.packets.filter(pl.col("path").str.starts_with(str(tmp_path))).height == report.packets.height
