"""archive_landing gathers framed batches into large DuckDB appends (``_LineAppender``):
every line still lands once, in file and line order, within its source's transaction."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from zentra_pipelines.adapters import landing
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.ingest import _LineAppender, archive_landing, ensure_archive


def _lines(first: int, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"source_file": ["intents/a.jsonl"] * n, "file_sha256": ["0" * 64] * n,
         "line_no": list(range(first, first + n)), "text": [f"line {i}" for i in range(first, first + n)],
         "raw": [None] * n, "frame_error": [None] * n, "frame_detail": [None] * n, "source": ["intents"] * n},
        schema={**landing.LINES_SCHEMA, "source": pl.String},
    )


def _archived(con) -> pl.DataFrame:
    return con.sql("SELECT line_no, text FROM landing_lines ORDER BY rowid").pl()


def test_batches_are_appended_once_enough_rows_are_gathered_and_on_flush(tmp_path):
    with Warehouse(tmp_path / "home").connect() as con:
        ensure_archive(con)
        appender = _LineAppender(con, append_rows=3)
        appender.add(_lines(1, 2))
        assert _archived(con).height == 0  # 2 rows gathered, below 3
        appender.add(_lines(3, 2))
        assert _archived(con)["line_no"].to_list() == [1, 2, 3, 4]
        appender.add(_lines(5, 2))
        appender.flush()
        appender.flush()  # nothing left: appends nothing
        assert_frame_equal(_archived(con), _lines(1, 6).select("line_no", "text"))


def test_a_file_of_several_batches_lands_whole_and_in_order_beside_a_small_one(tmp_path):
    folder = tmp_path / "landing" / "intents"
    folder.mkdir(parents=True)
    big = [f'{{"n": {i}, "pad": "{"x" * 90}"}}' for i in range(2 * landing.BATCH_BYTES // 100)]
    (folder / "a.jsonl").write_text("\n".join(big) + "\n")
    (folder / "b.jsonl").write_text("tail\n")
    with Warehouse(tmp_path / "home").connect() as con:
        result = archive_landing(con, tmp_path / "landing")
        lines = con.sql("SELECT source_file, line_no, text FROM landing_lines ORDER BY rowid").pl()
        files = con.sql("SELECT source_file, lines FROM landing_files ORDER BY source_file").fetchall()
    assert (result.new_files, result.new_lines) == (2, len(big) + 1)
    assert lines["text"].to_list() == [*big, "tail"]
    assert lines["line_no"].to_list() == [*range(1, len(big) + 1), 1]
    assert files == [("intents/a.jsonl", len(big)), ("intents/b.jsonl", 1)]


def test_a_copy_under_another_name_is_recorded_as_a_duplicate_once_never_archived_twice(tmp_path):
    folder = tmp_path / "landing" / "intents"
    folder.mkdir(parents=True)
    (folder / "b.jsonl").write_text("one\ntwo\n")
    with Warehouse(tmp_path / "home").connect() as con:
        first = archive_landing(con, tmp_path / "landing")
        (folder / "a-copy.jsonl").write_text("one\ntwo\n")  # sorts first, arrives later
        (folder / "c-copy.jsonl").write_text("one\ntwo\n")
        second = archive_landing(con, tmp_path / "landing")
        third = archive_landing(con, tmp_path / "landing")
        files = con.sql("SELECT source_file, lines, duplicate_of FROM landing_files ORDER BY source_file").fetchall()
        (archived,) = con.sql("SELECT count(*) FROM landing_lines").fetchall()[0]
    assert files == [("intents/a-copy.jsonl", 0, "intents/b.jsonl"), ("intents/b.jsonl", 2, None),
                     ("intents/c-copy.jsonl", 0, "intents/b.jsonl")]
    assert archived == 2
    assert (first.new_files, first.duplicate_files) == (1, 0)
    assert (second.new_files, second.duplicate_files, second.new_lines) == (0, 2, 0)
    assert (third.new_files, third.duplicate_files) == (0, 0)
