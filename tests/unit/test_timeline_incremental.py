"""run_timeline rebuilds only the intents whose inputs moved, and the published timeline is
exactly the one a full rebuild gives (fresh home, code change, nothing new)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from zentra_pipelines import reconciliation_stage as stage
from zentra_pipelines.adapters.warehouse import Warehouse

T0 = datetime(2026, 11, 1, 9, 0)


def at(minute: int) -> datetime:
    return T0.replace(minute=minute)


def intents(*rows: tuple[str, str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"tenant_id": t, "intent_id": i, "created_at": at(m), "actor_id": "u1", "kind": "payment",
          "amount_minor": 100, "currency": "EUR", "corridor": "EUR:sepa:EUR", "scope": "payments"}
         for t, i, m in rows]
    )


def decisions(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"tenant_id": t, "intent_id": i, "decided_at": at(1), "service": "svc_policy", "actor_id": "u1",
          "outcome": o, "reason": "ok", "policy_version": "p1", "owner": None} for t, i, o in rows],
        schema_overrides={"owner": pl.String},
    )


def routes(*rows: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"tenant_id": t, "intent_id": i, "decided_at": at(2), "service": "svc_routing", "status": "routed",
          "reason": "rail", "provider_ref": f"ref_{i}"} for t, i in rows]
    )


def events(*rows: tuple[str, str, str, int]) -> pl.DataFrame:
    """(tenant, event_id, intent, received minute): copies of one event share its content."""
    return pl.DataFrame(
        [{"tenant_id": t, "provider": "acme", "event_id": e, "intent_id": i, "type": "payment.captured",
          "sequence": 1, "amount_minor": 100, "currency": "EUR", "occurred_at": at(3), "received_at": at(m)}
         for t, e, i, m in rows]
    )


def deliveries(*rows: tuple[str, str, str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"tenant_id": t, "event_id": e, "delivery_id": d, "endpoint": "https://hook", "attempt": 1,
          "attempted_at": at(m), "status_code": 200, "error": None} for t, e, d, m in rows],
        schema_overrides={"error": pl.String, "status_code": pl.Int64},
    )


def entries(*rows: tuple[str, str, str, int, int]) -> pl.DataFrame:
    """(tenant, intent, journal, seq, amount)."""
    return pl.DataFrame(
        [{"tenant_id": t, "intent_id": i, "journal_id": j, "posted_at": at(4), "actor_id": "svc",
          "idempotency_key": f"k_{j}", "entry_hash": f"h{seq}", "entry_seq": seq, "amount_minor": a,
          "currency": "EUR"} for t, i, j, seq, a in rows]
    )


BASE = {
    "intents": intents(("t_a", "in_1", 10), ("t_a", "in_3", 11), ("t_b", "in_2", 12)),
    "policy_decisions": decisions(("t_a", "in_1", "accepted"), ("t_a", "in_3", "accepted"), ("t_b", "in_2", "accepted")),
    "routing_decisions": routes(("t_a", "in_1"), ("t_a", "in_3"), ("t_b", "in_2")),
    "callback_events": events(("t_a", "e1", "in_1", 20), ("t_a", "e1", "in_1", 21), ("t_b", "e2", "in_2", 22)),
    "deliveries": deliveries(("t_a", "e1", "d1", 30), ("t_b", "e2", "d2", 31)),
    "ledger_entries": entries(("t_a", "in_1", "j1", 1, 100), ("t_a", "in_1", "j1", 2, -100),
                              ("t_a", "in_3", "j3", 3, 50), ("t_b", "in_2", "j2", 1, 70)),
}


def later(base: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """A new day: a new intent between two old ones, a late copy of an old event, a new event and
    its delivery for another old intent; in_3 untouched."""
    out = dict(base)
    out["intents"] = pl.concat([base["intents"], intents(("t_a", "in_2", 40))]).sort("tenant_id", "intent_id")
    out["policy_decisions"] = pl.concat([base["policy_decisions"], decisions(("t_a", "in_2", "accepted"))])
    out["callback_events"] = pl.concat([base["callback_events"],
                                        events(("t_a", "e1", "in_1", 5), ("t_b", "e3", "in_2", 41))])
    out["deliveries"] = pl.concat([base["deliveries"], deliveries(("t_b", "e3", "d3", 42))])
    out["ledger_entries"] = pl.concat([base["ledger_entries"], entries(("t_a", "in_2", "j4", 4, 10))])
    return out


@pytest.fixture
def con(tmp_path) -> Iterator[duckdb.DuckDBPyConnection]:
    with Warehouse(tmp_path / "home").connect() as con:
        yield con


def load(con: duckdb.DuckDBPyConnection, tables: dict[str, pl.DataFrame]) -> None:
    Warehouse.publish(con, tables)


def timeline(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The published timeline as a set: an incremental run updates it in place, so its
    physical order is not a full build's."""
    return con.sql('SELECT * FROM "intent_timeline" ORDER BY ALL').pl()


def full_rebuild(tmp_path, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    with Warehouse(tmp_path / "fresh").connect() as fresh:
        load(fresh, tables)
        stage.run_timeline(fresh)
        return timeline(fresh)


def table_oid(con: duckdb.DuckDBPyConnection, name: str) -> int:
    return con.sql("SELECT table_oid FROM duckdb_tables() WHERE table_name = $t", params={"t": name}).fetchall()[0][0]


def test_first_run_builds_every_intent_and_stores_their_fingerprints(con):
    load(con, BASE)
    rows = stage.run_timeline(con)
    assert rows == timeline(con).height > 0
    stored = con.sql(f'SELECT tenant_id, intent_id FROM "{stage.TIMELINE_FINGERPRINTS}"').pl()
    assert stored.rows() == [("t_a", "in_1"), ("t_a", "in_3"), ("t_b", "in_2")]


def test_incremental_run_equals_a_full_rebuild_of_the_same_inputs(con, tmp_path):
    load(con, BASE)
    stage.run_timeline(con)
    load(con, later(BASE))
    stage.run_timeline(con)
    assert_frame_equal(timeline(con), full_rebuild(tmp_path, later(BASE)))


def test_only_changed_intents_are_rebuilt(con, monkeypatch):
    load(con, BASE)
    stage.run_timeline(con)
    load(con, later(BASE))
    rebuilt: list[list[tuple[str, str]]] = []
    original = stage._timeline_of_intents
    monkeypatch.setattr(stage, "_timeline_of_intents", lambda c, keys: rebuilt.append(sorted(keys.rows())) or original(c, keys))
    monkeypatch.setattr(stage, "_tenant_timeline", None)  # no tenant is rebuilt whole
    stage.run_timeline(con)
    assert rebuilt == [[("t_a", "in_1"), ("t_a", "in_2"), ("t_b", "in_2")]]


def test_nothing_new_rewrites_nothing(con):
    load(con, BASE)
    rows = stage.run_timeline(con)
    before = timeline(con), table_oid(con, "intent_timeline"), table_oid(con, stage.TIMELINE_FINGERPRINTS)
    assert stage.run_timeline(con) == rows
    assert (table_oid(con, "intent_timeline"), table_oid(con, stage.TIMELINE_FINGERPRINTS)) == before[1:]
    assert_frame_equal(timeline(con), before[0])


def test_removed_intent_loses_its_rows(con, tmp_path):
    load(con, BASE)
    stage.run_timeline(con)
    smaller = dict(BASE, intents=BASE["intents"].filter(pl.col("intent_id") != "in_3"))
    load(con, smaller)
    stage.run_timeline(con)
    assert "in_3" not in timeline(con)["intent_id"].to_list()
    assert_frame_equal(timeline(con), full_rebuild(tmp_path, smaller))


def test_fingerprints_of_another_code_version_rebuild_every_intent(con, tmp_path, monkeypatch):
    load(con, BASE)
    stage.run_timeline(con)
    # a published timeline the stored fingerprints do not describe: only a full rebuild repairs it
    Warehouse.publish(con, {"intent_timeline": timeline(con).with_columns(detail=pl.lit("stale"))})
    monkeypatch.setattr(stage, "timeline_version", lambda: "another version")
    stage.run_timeline(con)
    assert_frame_equal(timeline(con), full_rebuild(tmp_path, BASE))


def test_missing_fingerprint_table_means_full_rebuild(con, tmp_path):
    load(con, BASE)
    Warehouse.publish(con, {"intent_timeline": full_rebuild(tmp_path, BASE).with_columns(detail=pl.lit("stale"))})
    stage.run_timeline(con)
    assert_frame_equal(timeline(con), full_rebuild(tmp_path, BASE))


def test_a_published_timeline_of_other_columns_is_rebuilt_whole(con, tmp_path, monkeypatch):
    load(con, BASE)
    stage.run_timeline(con)
    # as code that had no `ref` column left it, with fingerprints that still match
    Warehouse.publish(con, {"intent_timeline": timeline(con).drop("ref")})
    monkeypatch.setattr(stage, "_timeline_of_intents", None)  # no intent is rebuilt alone
    stage.run_timeline(con)
    assert_frame_equal(timeline(con), full_rebuild(tmp_path, BASE))


def test_no_intent_kept_means_the_tenant_by_tenant_build(con, tmp_path, monkeypatch):
    load(con, BASE)
    stage.run_timeline(con)
    monkeypatch.setattr(stage, "timeline_version", lambda: "another version")
    monkeypatch.setattr(stage, "_timeline_of_intents", None)  # every intent changed: built per tenant
    stage.run_timeline(con)
    assert_frame_equal(timeline(con), full_rebuild(tmp_path, BASE))
