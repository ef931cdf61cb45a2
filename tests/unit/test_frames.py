"""Frame helpers: frames.repeated (the mask of ``is_duplicated``, found by a sort of hashes) and frames.sha256_hex_of."""

import hashlib

import polars as pl
import pytest
from polars.testing import assert_series_equal

from zentra_pipelines.domain import frames

CASES = {
    "strings_with_repeats": (pl.DataFrame({"k": ["a", "b", "a", "c", "a"]}), pl.col("k")),
    "nulls_repeat_each_other": (pl.DataFrame({"k": [None, "x", None, "y"]}), pl.col("k")),
    "one_null_is_not_repeated": (pl.DataFrame({"k": [None, "x", "y"]}), pl.col("k")),
    "all_distinct": (pl.DataFrame({"k": [3, 1, 2]}), pl.col("k")),
    "all_equal": (pl.DataFrame({"k": [7, 7, 7]}), pl.col("k")),
    "empty": (pl.DataFrame({"k": []}, schema={"k": pl.String}), pl.col("k")),
    "compound_partly_null": (
        pl.DataFrame({"a": ["t1", "t1", "t1", None, None], "b": [1, None, None, None, None]}), pl.struct("a", "b")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_repeated_is_the_is_duplicated_mask(case):
    frame, key = CASES[case]
    want = frame.select(key.is_duplicated()).to_series().alias("repeated")
    assert_series_equal(frames.repeated(frame, key), want)


def test_repeated_marks_every_occurrence():
    frame = pl.DataFrame({"k": ["p1", "p2", "p1", "p3", "p1"]})
    assert frames.repeated(frame, pl.col("k")).to_list() == [True, False, True, False, True]


def test_sha256_hex_of_is_hashlib_over_utf8_bytes():
    values = ["", "a", "tenant-1|42:ünïcödé|€", "x" * 5000, None]
    got = pl.DataFrame({"v": values}).select(frames.sha256_hex_of(pl.col("v"))).to_series().to_list()
    expected = [hashlib.sha256(v.encode()).hexdigest() if v is not None else None for v in values]
    assert got == expected
