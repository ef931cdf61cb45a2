"""Warehouse.publish_parts: one table written-audited-published from a sequence of frames."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from zentra_pipelines.adapters.warehouse import InPlace, IntegrityError, Warehouse

SCHEMA = {"tenant_id": pl.String, "at": pl.Datetime("us"), "n": pl.Int64}


def part(tenant: str, *ns: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"tenant_id": [tenant] * len(ns), "at": [datetime(2026, 1, 1, n % 24) for n in ns], "n": list(ns)},
        schema=SCHEMA,
    )


@pytest.fixture
def con(tmp_path) -> Iterator[duckdb.DuckDBPyConnection]:
    with Warehouse(tmp_path / "home").connect() as con:
        yield con


def tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {t for (t,) in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}


def published(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql('SELECT * FROM "intent_timeline"').pl()


def test_parts_are_staged_in_order_and_equal_one_published_concatenation(con, tmp_path):
    parts = [part("t_b", 5, 3), part("t_a", 1), part("t_c", 9, 8, 7)]
    assert Warehouse.publish_parts(con, "intent_timeline", iter(parts)) == 6
    assert_frame_equal(published(con), pl.concat(parts))
    with Warehouse(tmp_path / "whole").connect() as whole:
        Warehouse.publish(whole, {"intent_timeline": pl.concat(parts)})
        assert whole.sql('DESCRIBE "intent_timeline"').fetchall() == con.sql('DESCRIBE "intent_timeline"').fetchall()
        assert_frame_equal(published(whole), published(con))
    assert "_stage_intent_timeline" not in tables(con)


def test_only_one_part_is_alive_while_the_next_is_built(con):
    """The stage keeps no reference to a part it has staged: a generator's previous part
    can be freed before the next one is built."""
    import gc
    import weakref

    alive: list[weakref.ref] = []

    def gen() -> Iterator[pl.DataFrame]:
        for tenant in ("t_a", "t_b", "t_c"):
            gc.collect()
            assert all(ref() is None for ref in alive), "a staged part is still referenced"
            frame = part(tenant, 1, 2)
            alive.append(weakref.ref(frame))
            yield frame
            del frame

    assert Warehouse.publish_parts(con, "intent_timeline", gen()) == 6


def test_a_failure_mid_way_leaves_the_published_table_and_no_stage(con):
    old = part("t_old", 42)
    Warehouse.publish(con, {"intent_timeline": old})

    def gen() -> Iterator[pl.DataFrame]:
        yield part("t_a", 1)
        yield part("t_b", 2)
        raise RuntimeError("tenant t_c failed")

    with pytest.raises(RuntimeError, match="t_c"):
        Warehouse.publish_parts(con, "intent_timeline", gen())
    assert_frame_equal(published(con), old)
    assert "_stage_intent_timeline" not in tables(con)


def test_a_part_with_another_schema_is_refused(con):
    old = part("t_old", 42)
    Warehouse.publish(con, {"intent_timeline": old})
    with pytest.raises(ValueError, match="schema"):
        Warehouse.publish_parts(con, "intent_timeline", [part("t_a", 1), part("t_b", 2).with_columns(pl.col("n").cast(pl.Int32))])
    assert_frame_equal(published(con), old)
    assert "_stage_intent_timeline" not in tables(con)


def test_an_audit_sees_every_part_and_any_violation_refuses_the_whole_table(con):
    old = part("t_old", 42)
    Warehouse.publish(con, {"intent_timeline": old})
    seen: list[int] = []

    def audit(frames):
        frame = frames["intent_timeline"]
        seen.append(frame.height)
        return [f"negative n in {t}" for t in frame.filter(pl.col("n") < 0)["tenant_id"]]

    with pytest.raises(IntegrityError, match="negative n in t_b"):
        Warehouse.publish_parts(con, "intent_timeline", [part("t_a", 1), part("t_b", -2), part("t_c", 3, 4)], audit=audit)
    assert seen == [1, 1, 2]
    assert_frame_equal(published(con), old)
    assert "_stage_intent_timeline" not in tables(con)


def test_empty_is_refused_unless_allowed(con):
    old = part("t_old", 42)
    Warehouse.publish(con, {"intent_timeline": old})
    for parts in ([], [part("t_a"), part("t_b")]):
        with pytest.raises(IntegrityError, match="unexpectedly empty"):
            Warehouse.publish_parts(con, "intent_timeline", iter(parts), schema=SCHEMA)
        assert_frame_equal(published(con), old)
        assert "_stage_intent_timeline" not in tables(con)


def test_allowed_empty_publishes_an_empty_table_of_the_schema(con):
    Warehouse.publish(con, {"intent_timeline": part("t_old", 42)})
    assert Warehouse.publish_parts(con, "intent_timeline", [part("t_a"), part("t_b")], allow_empty=True) == 0
    assert_frame_equal(published(con), part("t_a"))
    assert Warehouse.publish_parts(con, "intent_timeline", [], schema=SCHEMA, allow_empty=True) == 0
    assert_frame_equal(published(con), pl.DataFrame(schema=SCHEMA))
    with pytest.raises(ValueError, match="no schema"):
        Warehouse.publish_parts(con, "intent_timeline", [], allow_empty=True)
    assert_frame_equal(published(con), pl.DataFrame(schema=SCHEMA))


def test_an_empty_first_part_does_not_drop_the_next_ones(con):
    assert Warehouse.publish_parts(con, "intent_timeline", [part("t_a"), part("t_b", 1, 2)]) == 2
    assert_frame_equal(published(con), part("t_b", 1, 2))


def test_aware_timestamps_are_stored_as_naive_utc_like_publish(con):
    aware = part("t_a", 1).with_columns(pl.col("at").dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Paris"))
    Warehouse.publish_parts(con, "intent_timeline", [aware, part("t_b", 2).with_columns(
        pl.col("at").dt.replace_time_zone("UTC"))])
    assert published(con)["at"].to_list() == [datetime(2026, 1, 1, 1), datetime(2026, 1, 1, 2)]
    assert aware["at"][0] == datetime(2026, 1, 1, 1, tzinfo=timezone.utc)


def test_only_allowlisted_tables(con):
    with pytest.raises(ValueError, match="allowlist"):
        Warehouse.publish_parts(con, "not_a_table", [part("t_a", 1)])
    with pytest.raises(ValueError, match="allowlist"):
        Warehouse.publish_parts(con, "x; DROP TABLE intents", [part("t_a", 1)])


def test_publish_stores_every_column_type_and_value_as_given(con):
    """Strings short and long (Polars keeps them as views), nulls, nested, dates: the
    published table holds the frame's values and DuckDB's usual types for them."""
    frame = pl.DataFrame(
        {
            "s": ["a", None, "x" * 40, ""],
            "b": [b"a", None, b"y" * 40, b""],
            "ls": [["a"], None, ["b" * 30, None], []],
            "st": [{"a": 1, "b": "x"}, None, {"a": 2, "b": "y" * 30}, {"a": None, "b": None}],
            "at": [datetime(2026, 1, 1, tzinfo=timezone.utc), None, datetime(2026, 1, 2, 3, tzinfo=timezone.utc), None],
            "day": [datetime(2026, 1, 1).date(), None, datetime(2026, 1, 2).date(), None],
            "n": [1, None, -(2**63), 2**63 - 1],
            "ok": [True, None, False, True],
        }
    )
    Warehouse.publish(con, {"intent_timeline": frame})
    assert [(c, t) for c, t, *_ in con.sql('DESCRIBE "intent_timeline"').fetchall()] == [
        ("s", "VARCHAR"), ("b", "BLOB"), ("ls", "VARCHAR[]"), ("st", "STRUCT(a BIGINT, b VARCHAR)"),
        ("at", "TIMESTAMP"), ("day", "DATE"), ("n", "BIGINT"), ("ok", "BOOLEAN"),
    ]
    expected = frame.with_columns(pl.col("at").dt.replace_time_zone(None))
    assert_frame_equal(published(con), expected)


def test_count_and_count_by_are_zero_and_empty_for_a_table_not_published(con):
    assert Warehouse.count(con, "intent_timeline") == 0
    assert Warehouse.count_by(con, "intent_timeline", "tenant_id") == []


def test_count_by_counts_every_value_null_included(con):
    frame = pl.concat([part("t_a", 1, 2), part("t_b", 3)]).with_columns(
        tenant_id=pl.Series(["t_a", "t_a", None]))
    Warehouse.publish(con, {"intent_timeline": frame})
    assert Warehouse.count(con, "intent_timeline") == 3
    assert sorted(Warehouse.count_by(con, "intent_timeline", "tenant_id"), key=str) == [("t_a", 2), (None, 1)]


def test_count_by_refuses_a_column_the_table_does_not_have(con):
    Warehouse.publish(con, {"intent_timeline": part("t_a", 1)})
    with pytest.raises(ValueError, match="no column"):
        Warehouse.count_by(con, "intent_timeline", 'n" FROM x; --')


def test_keep_and_add_keeps_the_kept_keys_rows_drops_the_others_and_adds(con):
    Warehouse.publish(con, {"intent_timeline": pl.concat([part("t_a", 1, 2), part("t_b", 3), part("t_c", 4)])})
    kept = pl.DataFrame({"tenant_id": ["t_a", "t_z"]})
    rows = Warehouse.keep_and_add(con, "intent_timeline", kept, part("t_b", 5).select("n", "at", "tenant_id"))
    assert rows == 3
    assert_frame_equal(published(con), pl.concat([part("t_a", 1, 2), part("t_b", 5)]))
    assert "_added_rows" not in {n for (n,) in con.sql("SELECT view_name FROM duckdb_views()").fetchall()}


def test_keep_and_add_matches_a_null_key_to_a_null_key(con):
    frame = pl.concat([part("t_a", 1), part("t_a", 2).with_columns(tenant_id=pl.lit(None, pl.String))])
    Warehouse.publish(con, {"intent_timeline": frame})
    Warehouse.keep_and_add(con, "intent_timeline", pl.DataFrame({"tenant_id": [None]}, schema={"tenant_id": pl.String}),
                           pl.DataFrame(schema=SCHEMA))
    assert_frame_equal(published(con), frame.slice(1))


def test_a_failing_keep_and_add_leaves_the_published_table(con):
    Warehouse.publish(con, {"intent_timeline": part("t_a", 1, 2)})
    with pytest.raises(duckdb.Error):
        Warehouse.keep_and_add(con, "intent_timeline", pl.DataFrame({"tenant_id": ["t_b"]}),
                               part("t_b", 3).with_columns(extra=pl.lit(1)))
    assert_frame_equal(published(con), part("t_a", 1, 2))


def test_keep_and_add_refuses_a_key_the_table_lacks(con):
    Warehouse.publish(con, {"intent_timeline": part("t_a", 1)})
    with pytest.raises(ValueError, match="no key"):
        Warehouse.keep_and_add(con, "intent_timeline", pl.DataFrame({'n" FROM x; --': [1]}), part("t_a", 2))
    assert_frame_equal(published(con), part("t_a", 1))


def test_publish_updates_an_in_place_table_with_the_staged_ones(con):
    Warehouse.publish(con, {"intent_timeline": part("t_a", 1, 2), "intents": part("t_x", 9)})
    whole = pl.concat([part("t_a", 1), part("t_b", 3)])
    update = InPlace(pl.DataFrame({"n": [1]}), part("t_b", 3))
    assert Warehouse.publish(con, {"intent_timeline": whole, "intents": part("t_y", 8)},
                             in_place={"intent_timeline": update}) == {"intent_timeline": 2, "intents": 1}
    assert_frame_equal(published(con), whole)
    assert_frame_equal(con.sql('SELECT * FROM "intents"').pl(), part("t_y", 8))


def test_an_in_place_replacement_drops_the_removed_keys_rows_keeps_the_others_and_adds(con):
    start = pl.concat([part("t_a", 1), part("t_b", 2), part("t_a", 3).with_columns(tenant_id=pl.lit(None, pl.String))])
    Warehouse.publish(con, {"intent_timeline": start})
    removed = pl.DataFrame({"tenant_id": ["t_b", None, "t_z"]}, schema={"tenant_id": pl.String})
    whole = pl.concat([part("t_a", 1), part("t_b", 4)])
    assert Warehouse.publish(con, {"intent_timeline": whole},
                             in_place={"intent_timeline": InPlace.replacing(removed, part("t_b", 4))}) == {
        "intent_timeline": 2}
    assert_frame_equal(published(con), whole)


def test_an_in_place_update_names_either_kept_or_removed_keys():
    keys = pl.DataFrame({"n": [1]})
    for kept, removed in ((None, None), (keys, keys)):
        with pytest.raises(ValueError, match="either the kept or the removed"):
            InPlace(kept, part("t_a", 1), removed)


OID = "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'intent_timeline'"


def test_a_rebuild_published_as_its_changes_replaces_only_the_keys_whose_rows_differ(con):
    Warehouse.publish(con, {"intent_timeline": pl.concat([part("t_a", 1, 2), part("t_b", 3), part("t_c", 4)])})
    oid = con.sql(OID).fetchall()
    # t_a keeps 1 but 2 becomes 5, t_b is unchanged, t_c is gone, t_d is new
    rebuilt = pl.concat([part("t_a", 1, 5), part("t_b", 3), part("t_d", 6)])
    update = Warehouse.changes(con, "intent_timeline", rebuilt, ["tenant_id"])
    assert sorted(update.removed["tenant_id"].to_list()) == ["t_a", "t_c", "t_d"]
    assert_frame_equal(update.added.sort("n"), pl.concat([part("t_a", 1, 5), part("t_d", 6)]))
    Warehouse.publish(con, {"intent_timeline": rebuilt}, in_place={"intent_timeline": update})
    assert con.sql(OID).fetchall() == oid
    assert_frame_equal(published(con).sort("n"), rebuilt.sort("n"))


def test_an_unchanged_rebuild_changes_no_row_and_another_schema_is_rewritten(con):
    Warehouse.publish(con, {"intent_timeline": part("t_a", 1, 2)})
    same = Warehouse.changes(con, "intent_timeline", part("t_a", 1, 2), ["tenant_id"])
    assert (same.removed.height, same.added.height, same.rows) == (0, 0, 2)
    assert Warehouse.changes(con, "intent_timeline", part("t_a", 1).with_columns(extra=pl.lit(1)), ["tenant_id"]) is None
    assert Warehouse.changes(con, "intents", part("t_a", 1), ["tenant_id"]) is None  # not published


def test_an_in_place_update_that_misses_the_audited_rows_publishes_nothing(con):
    Warehouse.publish(con, {"intent_timeline": part("t_a", 1, 2), "intents": part("t_x", 9)})
    whole = pl.concat([part("t_a", 1, 2), part("t_b", 3)])  # what was audited: 3 rows
    update = InPlace(pl.DataFrame({"n": [1]}), part("t_b", 3))  # leaves 2
    with pytest.raises(IntegrityError, match="left 2 rows, not the 3 audited"):
        Warehouse.publish(con, {"intent_timeline": whole, "intents": part("t_y", 8)},
                          in_place={"intent_timeline": update})
    assert_frame_equal(published(con), part("t_a", 1, 2))
    assert_frame_equal(con.sql('SELECT * FROM "intents"').pl(), part("t_x", 9))
    assert not {t for t in tables(con) if t.startswith("_stage")}


def test_a_reader_reads_in_utc_what_the_connection_committed_and_cannot_change_settings(con):
    Warehouse.publish(con, {"intent_timeline": part("t_a", 1, 2)})
    with Warehouse.reader(con) as reader:
        assert reader.sql("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
        assert_frame_equal(reader.sql('SELECT * FROM "intent_timeline"').pl(), part("t_a", 1, 2))
        with pytest.raises(duckdb.Error, match="locked"):
            reader.execute("SET TimeZone = 'America/New_York'")


def test_a_failed_publish_stops_the_reader_thread_before_the_reader_closes(con):
    """The pattern run_timeline uses: parts built on a helper thread through a reader,
    staged through the connection; a refused part leaves the published table as it was."""
    from contextlib import closing

    from zentra_pipelines.domain.prefetch import prefetched

    Warehouse.publish(con, {"intent_timeline": part("t_a", 1)})

    def parts(reader):
        yield part("t_b", 2)
        yield part("t_c", 3).with_columns(extra=pl.lit(1))  # refused: another schema
        for n in range(4, 1000):  # the helper is reading through the reader when the stop comes
            yield pl.concat([reader.sql('SELECT * FROM "intent_timeline"').pl(), part("t_d", n)])

    with pytest.raises(ValueError, match="schema"), Warehouse.reader(con) as reader, closing(
        prefetched(parts(reader), 0, name="test-timeline")
    ) as stream:
        Warehouse.publish_parts(con, "intent_timeline", stream)
    assert not any(t.name == "test-timeline" for t in threading.enumerate())
    assert_frame_equal(published(con), part("t_a", 1))
