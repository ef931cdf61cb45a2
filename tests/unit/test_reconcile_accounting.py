"""run_accounting counts lines per file in the engine: the same frame per_file_accounting builds
from every line (rows, quarantine matches, a CSV header, a CSV line 1 that is no header, files
listed out of order)."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain.accounting import per_file_accounting
from zentra_pipelines.domain.settlements import HEADER, is_header_line
from zentra_pipelines.reconciliation_stage import QUARANTINE_TABLES, run_accounting


def lines(source: str, file: str, n: int, first: str = "{}") -> pl.DataFrame:
    return pl.DataFrame({"source_file": [file] * n, "file_sha256": [f"sha_{file}"] * n,
                         "line_no": list(range(1, n + 1)), "source": [source] * n,
                         "text": [first] + ["row 7"] * (n - 1), "frame_error": [None] * n},
                        schema_overrides={"frame_error": pl.String})


def quarantine(*rows: tuple[str, int]) -> pl.DataFrame:
    return pl.DataFrame({"source_file": [f for f, _ in rows], "file_sha256": [f"sha_{f}" for f, _ in rows],
                         "line_no": [n for _, n in rows]}, schema={"source_file": pl.String, "file_sha256": pl.String,
                                                                    "line_no": pl.Int64})


def test_engine_counts_equal_the_line_by_line_accounting(tmp_path):
    landing = pl.concat([lines("callbacks", "cb/2.jsonl", 3), lines("callbacks", "cb/1.jsonl", 4),
                         lines("settlements", "st/1.csv", 3, '\ufeff"provider",' + HEADER.split(",", 1)[1] + "\r"),
                         lines("settlements", "st/2.csv", 2, "acme_pay,ap_1,t_alpha"), lines("intents", "in/1.jsonl", 2)])
    quarantined = {
        "callbacks": quarantine(("cb/1.jsonl", 2), ("cb/1.jsonl", 4)),
        "intents": quarantine(),
        "settlements": quarantine(("st/1.csv", 3), ("st/2.csv", 1), ("st/2.csv", 2)),
        "deliveries": quarantine(),
    }
    expected = []
    for source, table in QUARANTINE_TABLES.items():
        header = (pl.col("source") == "settlements") & (pl.col("line_no") == 1) & is_header_line(pl.col("text"))
        rows = landing.filter((pl.col("source") == source) & ~header)
        rows = rows.select("source_file", "file_sha256", "line_no").sort("source_file", "file_sha256", "line_no")
        q = quarantined[source]
        expected.append(per_file_accounting(rows, rows.join(q, on=["file_sha256", "line_no"], how="anti"), q, source))
    with Warehouse(tmp_path / "home").connect() as con:
        Warehouse.publish(con, {"landing_lines": landing, **{QUARANTINE_TABLES[s]: f for s, f in quarantined.items()}},
                          allow_empty={QUARANTINE_TABLES[s] for s in quarantined})
        got = run_accounting(con)
    assert_frame_equal(got, pl.concat(expected))
    assert got.select("source_file", "accepted", "quarantined").rows() == [
        ("cb/1.jsonl", 2, 2), ("cb/2.jsonl", 3, 0), ("in/1.jsonl", 2, 0), ("st/1.csv", 1, 1), ("st/2.csv", 0, 2)]


def test_a_row_without_a_file_digest_joins_its_own_counts():
    """The source database's row has no file_sha256: its counts still meet, and balance is judged."""
    from zentra_pipelines.domain.accounting import file_accounting

    key = {"source_file": pl.String, "file_sha256": pl.String}
    def one(column: str, n: int) -> pl.DataFrame:
        return pl.DataFrame({"source_file": ["sqlite:///s.db"], "file_sha256": [None], column: [n]},
                            schema=key | {column: pl.Int64})
    rows = file_accounting(one("received", 10), one("accepted", 7), one("quarantined", 2), "ledger_postings").rows()
    assert rows == [("ledger_postings", "sqlite:///s.db", None, 10, 7, 2, False)]
    rows = file_accounting(one("received", 9), one("accepted", 7), one("quarantined", 2), "ledger_postings").rows()
    assert rows == [("ledger_postings", "sqlite:///s.db", None, 9, 7, 2, True)]
