"""run_packets reads one tenant-day at a time: the same tables as cutting whole days up."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.reliability._support import make_sample, run_stages
from zentra_pipelines import evidence_stage, packet_inputs
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


def test_a_days_tenants_read_together_equal_their_own_reads(built):
    home, tenants = built
    with Warehouse(home).connect(read_only=True) as con:
        compared = 0
        for day in evidence_stage.packet_days(con, tenants):
            together = evidence_stage.tenant_days_frames(con, tenants + ["t_not_configured_anywhere"], day)
            assert set(together) <= set(tenants)
            for tenant in tenants:
                alone = evidence_stage.tenant_day_frames(con, tenant, day)
                assert sorted(together.get(tenant, {})) == sorted(alone), (tenant, day)
                for name, frame in alone.items():
                    got = together[tenant][name]
                    if name == "intent_timeline":  # a join: its row order is not the table's
                        assert_frame_equal(canonical_frame(got), canonical_frame(frame))
                    else:
                        assert_frame_equal(got, frame)
                    compared += 1
        assert compared > 20


def test_fingerprints_name_exactly_the_tables_a_tenant_day_reads(built):
    """run_packets queries only the tables ``present`` names for a rebuilt tenant-day: they
    must be exactly the non-empty tables of its full read."""
    home, tenants = built
    with Warehouse(home).connect(read_only=True) as con:
        days = evidence_stage.packet_days(con, tenants)
        present: dict = {}
        packet_inputs.fingerprints(con, tenants, days, "key", present)
        for day in days:
            for tenant in tenants:
                got = evidence_stage.tenant_day_frames(con, tenant, day)
                assert set(got) == set(present.get((tenant, day), {})), (tenant, day)
                assert {n: f.height for n, f in got.items()} == present.get((tenant, day), {}), (tenant, day)


def test_run_packets_holds_at_most_seal_workers_packets(built, tmp_path, monkeypatch):
    """Every tenant-day read is sealed before more than SEAL_WORKERS are held; rows come
    back in (day, tenant) order."""
    home, tenants = built
    monkeypatch.setattr(evidence_stage, "SEAL_WORKERS", 2)
    monkeypatch.setattr(evidence_stage, "READ_BATCH_ROWS", 0)  # one tenant-day per read
    lock, held, most = threading.Lock(), [0], [0]
    read, seal = evidence_stage.tenant_days_frames, packet_store.seal

    def counted_read(*args):
        tables = read(*args)
        with lock:
            held[0] += sum(1 for frames in tables.values() if frames)
            most[0] = max(most[0], held[0])
        return tables

    def counted_seal(*args):
        try:
            return seal(*args)
        finally:
            with lock:
                held[0] -= 1

    monkeypatch.setattr(evidence_stage, "tenant_days_frames", counted_read)
    monkeypatch.setattr(packet_store, "seal", counted_seal)
    with Warehouse(home).connect() as con:
        report = evidence_stage.run_packets(con, tmp_path, tenants, None)
        days = evidence_stage.packet_days(con, tenants)
    assert report.packets.height >= len(days) and report.sealed_now == report.packets.height
    assert 1 <= most[0] <= 2 and held[0] == 0  # "at most": how many overlap depends on the scheduler
    assert report.packets.select("period", "tenant_id").rows() == sorted(
        report.packets.select("period", "tenant_id").rows())
    assert report.packets.filter(pl.col("path").str.starts_with(str(tmp_path))).height == report.packets.height


# ---------------------------------------------------------------- unchanged days ---


@pytest.fixture
def sealed(built, tmp_path) -> tuple[Path, list[str], evidence_stage.EvidenceReport]:
    """A copy of the built warehouse whose every tenant-day has been sealed once."""
    home, tenants = built
    copy = tmp_path / "home"
    copy.mkdir()
    (copy / "warehouse.duckdb").write_bytes((home / "warehouse.duckdb").read_bytes())
    with Warehouse(copy).connect() as con:
        first = evidence_stage.run_packets(con, copy, tenants, None)
    return copy, tenants, first


def _rerun(home: Path, tenants: list[str]) -> evidence_stage.EvidenceReport:
    with Warehouse(home).connect() as con:
        return evidence_stage.run_packets(con, home, tenants, None)


def _zips(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted((home / "packets").rglob("*.zip"))}


def test_a_rerun_with_nothing_new_rebuilds_no_day(sealed):
    home, tenants, first = sealed
    before = _zips(home)
    again = _rerun(home, tenants)
    assert first.unchanged == 0 and first.sealed_now == first.packets.height
    assert again.unchanged == again.packets.height == first.packets.height and again.sealed_now == 0
    assert_frame_equal(again.packets.drop("created", "rebuilt"), first.packets.drop("created", "rebuilt"))
    assert _zips(home) == before


def test_a_changed_row_reseals_only_its_tenant_day(sealed):
    home, tenants, first = sealed
    tenant, day = first.packets.row(0)[:2]
    with Warehouse(home).connect() as con:
        con.execute(
            "UPDATE callback_events SET detail = 'late correction' WHERE rowid = ("
            "SELECT min(rowid) FROM callback_events WHERE tenant_id = $t AND CAST(received_at AS DATE) = $d)",
            {"t": tenant, "d": day},
        )
    again = _rerun(home, tenants)
    resealed = again.packets.filter(pl.col("created")).select("tenant_id", "period", "version").rows()
    assert resealed == [(tenant, day, 2)]
    assert again.unchanged == first.packets.height - 1


def test_an_earlier_balance_change_reseals_every_later_day_of_that_tenant(sealed):
    """Closing balances carry forward: a late posting on day 1 moves day 2's closings too."""
    home, tenants, first = sealed
    tenant = first.packets["tenant_id"][0]
    days = sorted(first.packets.filter(pl.col("tenant_id") == tenant)["period"])
    assert len(days) >= 2
    with Warehouse(home).connect() as con:
        digests = packet_inputs.fingerprints(con, tenants, days, "key")
        con.execute(
            "UPDATE daily_balances SET closing_minor = closing_minor + 1 WHERE rowid = ("
            "SELECT min(rowid) FROM daily_balances WHERE tenant_id = $t AND day = $d)",
            {"t": tenant, "d": days[0]},
        )
        moved = packet_inputs.fingerprints(con, tenants, days, "key")
    assert all(moved[(tenant, d)] != digests[(tenant, d)] for d in days)
    assert all(moved[k] == digests[k] for k in digests if k[0] != tenant)


def test_a_version_sealed_elsewhere_is_not_taken_as_unchanged(sealed):
    """The record names the version it describes: a newer version in the store (another
    run, a restore) makes the day go through sealing again, which compares content."""
    home, tenants, first = sealed
    tenant, day = first.packets.row(0)[:2]
    folder = home / "packets" / tenant / day.isoformat()
    (folder / "v1.zip").unlink()
    again = _rerun(home, tenants)
    assert again.unchanged == first.packets.height - 1
    assert again.packets.filter((pl.col("tenant_id") == tenant) & (pl.col("period") == day))["created"].to_list() == [True]


def test_a_damaged_latest_version_is_not_skipped(sealed):
    home, tenants, first = sealed
    tenant, day = first.packets.row(0)[:2]
    (home / "packets" / tenant / day.isoformat() / "v1.zip").chmod(0o644)
    (home / "packets" / tenant / day.isoformat() / "v1.zip").write_bytes(b"not a zip")
    again = _rerun(home, tenants)  # refused, never chained onto; the other days go on
    assert [(r.tenant_id, r.period) for r in again.refused] == [(tenant, day)]
    assert "not sealed: PacketStoreError: latest sealed packet" in str(again.refused[0])
    assert "fails verification" in str(again.refused[0])


def test_rebuild_all_ignores_the_record_and_seals_nothing_new(sealed, monkeypatch):
    home, tenants, first = sealed
    monkeypatch.setenv(packet_inputs.REBUILD_ALL_ENV, "1")
    again = _rerun(home, tenants)
    assert again.unchanged == 0 and again.sealed_now == 0 and again.packets.height == first.packets.height
    assert again.rebuilt_same == again.packets.height  # every tenant-day accounted for: rebuilt, same content
    assert first.rebuilt_same == 0


def test_the_summary_accounts_for_every_tenant_day(sealed, monkeypatch):
    """sealed + unchanged + rebuilt to the same content = tenant-days, in the run summary."""
    from zentra_pipelines.summary import render

    home, tenants, first = sealed
    n = first.packets.height
    with Warehouse(home).connect() as con:
        assert f"Audit packets: {n:,} tenant-days, {n:,} sealed this run, 0 unchanged (not rebuilt)\n" in render(con, home)
    monkeypatch.setenv(packet_inputs.REBUILD_ALL_ENV, "1")
    _rerun(home, tenants)
    with Warehouse(home).connect() as con:
        assert (f"Audit packets: {n:,} tenant-days, 0 sealed this run, 0 unchanged (not rebuilt), "
                f"{n:,} rebuilt to the same content (no new version)\n") in render(con, home)


def test_the_digest_does_not_depend_on_row_order(built, tmp_path):
    home, tenants = built
    with Warehouse(home).connect(read_only=True) as con:
        days = evidence_stage.packet_days(con, tenants)
        want = packet_inputs.fingerprints(con, tenants, days, "key")
    copy = tmp_path / "home"
    copy.mkdir()
    (copy / "warehouse.duckdb").write_bytes((home / "warehouse.duckdb").read_bytes())
    with Warehouse(copy).connect() as con:
        con.execute("CREATE TABLE reversed AS SELECT * FROM ledger_entries ORDER BY entry_seq DESC")
        con.execute("DROP TABLE ledger_entries")
        con.execute("ALTER TABLE reversed RENAME TO ledger_entries")
        assert packet_inputs.fingerprints(con, tenants, days, "key") == want
        assert packet_inputs.fingerprints(con, tenants, days, "another key") != want


def test_a_one_day_run_keeps_the_other_days_records(sealed):
    home, tenants, first = sealed
    day = first.packets["period"][0]
    with Warehouse(home).connect() as con:
        one = evidence_stage.run_packets(con, home, tenants, None, days={day})
        kept = packet_inputs.recorded(con)
    assert one.unchanged == one.packets.height == first.packets.filter(pl.col("period") == day).height
    assert sorted(kept) == sorted(first.packets.select("tenant_id", "period").rows())
    assert _rerun(home, tenants).unchanged == first.packets.height


def test_break_ages_moving_with_the_run_do_not_count_as_a_change(sealed):
    """reconciliation_breaks.age_days is as of the run; the packet ages breaks at its day's end."""
    home, tenants, first = sealed
    with Warehouse(home).connect() as con:
        assert con.sql("SELECT count(*) FROM reconciliation_breaks").fetchall()[0][0] > 0
        con.execute("UPDATE reconciliation_breaks SET age_days = age_days + 1")
    assert _rerun(home, tenants).unchanged == first.packets.height


def test_an_unbalanced_journal_moves_its_tenant_days_fingerprint(built, tmp_path):
    """The journals not summing to zero are part of a day's digest (its day checks report
    them); handing the packet step's own sums over gives the digests computed here."""
    home, tenants = built
    copy = tmp_path / "home"
    copy.mkdir()
    (copy / "warehouse.duckdb").write_bytes((home / "warehouse.duckdb").read_bytes())
    with Warehouse(copy).connect() as con:
        days = evidence_stage.packet_days(con, tenants)
        before = packet_inputs.fingerprints(con, tenants, days, "key")
        tenant, day = con.execute(
            "SELECT tenant_id, CAST(posted_at AS DATE) FROM ledger_entries WHERE rowid = (SELECT min(rowid) FROM ledger_entries)"
        ).fetchall()[0]
        con.execute("UPDATE ledger_entries SET amount_minor = amount_minor + 1 WHERE rowid = (SELECT min(rowid) FROM ledger_entries)")
        sums = packet_inputs.unbalanced_journal_sums(con)
        assert sums.height == 1
        after = packet_inputs.fingerprints(con, tenants, days, "key")
        assert packet_inputs.fingerprints(con, tenants, days, "key", journal_sums=sums) == after
        # the sums themselves enter the digest, beside the edited entry's own row
        unseen = packet_inputs.fingerprints(
            con, tenants, days, "key", journal_sums=pl.DataFrame(schema=packet_inputs.JOURNAL_SUMS_SCHEMA))
        assert unseen[(tenant, day)] != after[(tenant, day)]
    assert after[(tenant, day)] != before[(tenant, day)]
    assert all(after[k] == before[k] for k in before if k != (tenant, day))


def test_source_inputs_name_the_files_behind_intents_deliveries_and_settlements(sealed):
    """Those tables keep no file of their own; the manifest still names every landing
    file a tenant-day's rows came from, read from the parse caches by each line's day."""
    import json
    import zipfile

    home, _, report = sealed
    with Warehouse(home).connect(read_only=True) as con:
        expected = {
            (t, p, f, s) for t, p, f, s in con.sql(
                "SELECT DISTINCT tenant_id, CAST(created_at AS DATE), source_file, file_sha256 FROM intents_parsed "
                "WHERE error_code IS NULL UNION SELECT DISTINCT tenant_id, CAST(attempted_at AS DATE), source_file, "
                "file_sha256 FROM deliveries_parsed WHERE error_code IS NULL UNION SELECT DISTINCT tenant_id, "
                "CAST(settled_at AS DATE), source_file, file_sha256 FROM settlements_parsed WHERE error_code IS NULL"
            ).fetchall()
        }
    sources = {"intents/": 0, "deliveries/": 0, "settlements/": 0}
    for row in report.packets.iter_rows(named=True):
        with zipfile.ZipFile(row["path"]) as zf:
            listed = {(s["path"], s["sha256"]) for s in json.loads(zf.read("manifest.json"))["source_inputs"]}
        mine = {(f, s) for t, p, f, s in expected if (t, p) == (row["tenant_id"], row["period"])}
        assert mine <= listed, (row["tenant_id"], row["period"], mine - listed)
        for prefix in sources:
            sources[prefix] += sum(1 for f, _ in mine if f.startswith(prefix))
    assert all(sources.values()), sources  # every kind was named somewhere


def test_an_intent_retried_in_another_file_reseals_its_day_naming_that_file(sealed):
    """The retry collapses into the intent already accepted (no table row changes), but
    the manifest's source_inputs gain the file: the day is resealed, as a fresh home
    holding both files would seal it."""
    import json
    import zipfile

    home, tenants, first = sealed
    with Warehouse(home).connect() as con:
        tenant, day = con.sql(
            "SELECT tenant_id, CAST(created_at AS DATE) FROM intents_parsed WHERE error_code IS NULL "
            "ORDER BY source_file, line_no LIMIT 1").fetchall()[0]
        con.execute(
            "INSERT INTO intents_parsed SELECT * REPLACE ('intents/retry.jsonl' AS source_file, "
            "repeat('e', 64) AS file_sha256) FROM intents_parsed WHERE rowid = (SELECT min(rowid) FROM intents_parsed "
            "WHERE error_code IS NULL AND tenant_id = $t AND CAST(created_at AS DATE) = $d)", {"t": tenant, "d": day})
    again = _rerun(home, tenants)
    assert again.packets.filter(pl.col("created")).select("tenant_id", "period", "version").rows() == [
        (tenant, day, 2)]
    path = again.packets.filter((pl.col("tenant_id") == tenant) & (pl.col("period") == day))["path"][0]
    with zipfile.ZipFile(path) as zf:
        listed = json.loads(zf.read("manifest.json"))["source_inputs"]
    assert {"path": "intents/retry.jsonl", "sha256": "e" * 64} in listed


def test_a_rerun_leaves_the_packets_table_as_it_was_and_says_what_it_did_in_packets_run(sealed):
    """Running again on the same inputs changes no table but the run's own log."""
    home, tenants, first = sealed
    with Warehouse(home).connect(read_only=True) as con:
        before = con.sql("SELECT * FROM packets").pl()
    _rerun(home, tenants)
    with Warehouse(home).connect(read_only=True) as con:
        assert_frame_equal(con.sql("SELECT * FROM packets").pl(), before)
        assert "created" not in before.columns
        assert con.sql("SELECT count(*), sum(CAST(created AS INT)), sum(CAST(rebuilt AS INT)) FROM packets_run"
                       ).fetchall() == [(first.packets.height, 0, 0)]


def test_a_packet_whose_own_journals_do_not_balance_is_refused_and_keeps_its_row(sealed):
    """run_packets never signs a tenant-day whose rows fail its day checks; the packets
    table still lists the version that tenant-day has."""
    home, tenants, first = sealed
    with Warehouse(home).connect() as con:
        tenant, day, posting = con.sql(
            "SELECT tenant_id, CAST(posted_at AS DATE), posting_id FROM ledger_entries WHERE amount_minor > 0 "
            "ORDER BY tenant_id, posting_id LIMIT 1").fetchall()[0]
        con.execute("UPDATE ledger_entries SET amount_minor = amount_minor + 100 WHERE posting_id = ?", [posting])
    again = _rerun(home, tenants)
    assert [(r.tenant_id, r.period) for r in again.refused] == [(tenant, day)]
    assert again.refused[0].failed[0].startswith("journals_balance: ") and "1 not summing to zero" in str(
        again.refused[0])
    assert again.sealed_now == 0
    with Warehouse(home).connect(read_only=True) as con:
        assert con.sql("SELECT version FROM packets WHERE tenant_id = $t AND period = $d",
                       params={"t": tenant, "d": day}).fetchall() == [(1,)]


def test_a_tenant_day_that_cannot_be_written_does_not_stop_the_others(sealed):
    """Errors are data: the folder of one tenant-day is unusable, every other changed
    tenant-day is still sealed and recorded, and the refusal names the error."""
    home, tenants, first = sealed
    with Warehouse(home).connect() as con:
        (tenant, day), (other, other_day) = con.sql(
            "SELECT DISTINCT tenant_id, CAST(received_at AS DATE) FROM callback_events "
            "WHERE list_contains($tenants, tenant_id) ORDER BY ALL LIMIT 2", params={"tenants": tenants}).fetchall()
        for t, d in ((tenant, day), (other, other_day)):
            con.execute(
                "UPDATE callback_events SET detail = 'late correction' WHERE rowid = (SELECT min(rowid) "
                "FROM callback_events WHERE tenant_id = $t AND CAST(received_at AS DATE) = $d)", {"t": t, "d": d})
    folder = home / "packets" / tenant / day.isoformat()
    for version in folder.iterdir():
        version.unlink()
    folder.rmdir()
    folder.write_text("not a folder\n")
    again = _rerun(home, tenants)
    assert [(r.tenant_id, r.period) for r in again.refused] == [(tenant, day)]
    assert again.refused[0].failed[0].startswith("not sealed: ")
    assert again.packets.filter(pl.col("created")).select("tenant_id", "period", "version").rows() == [
        (other, other_day, 2)]
