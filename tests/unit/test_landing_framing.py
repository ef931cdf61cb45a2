"""Framing streams: batches cut at newlines give the rows one whole-file framing gives."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from zentra_pipelines.adapters import landing
from zentra_pipelines.domain import errors


def _file(tmp_path: Path, data: bytes) -> landing.LandingFile:
    folder = tmp_path / "callbacks"
    folder.mkdir(exist_ok=True)
    (folder / "f.jsonl").write_bytes(data)
    return landing.list_files(tmp_path, "callbacks")[0]


def _streamed(
    file: landing.LandingFile, batch_bytes: int, max_line_bytes: int = landing.MAX_LINE_BYTES
) -> pl.DataFrame:
    return pl.concat(list(landing.frame_lines(file, batch_bytes, max_line_bytes)))


def test_lines_crossing_batch_boundaries_are_framed_whole_and_numbered_across_batches(tmp_path):
    data = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * (i % 13)) for i in range(200))
    data += b"bad\x00line\n\xff\xfe\nlast line without newline"
    file = _file(tmp_path, data)

    assert_frame_equal(_streamed(file, batch_bytes=37), landing.frame_bytes(file, data))


def test_a_line_over_the_limit_is_hashed_as_it_streams_with_the_detail_of_whole_framing(tmp_path):
    huge = b"y" * 1000
    data = b"first\n" + huge + b"\nthird\n"
    file = _file(tmp_path, data)

    streamed = _streamed(file, batch_bytes=64, max_line_bytes=100)

    assert streamed["line_no"].to_list() == [1, 2, 3]
    assert streamed["text"].to_list() == ["first", None, "third"]
    assert streamed["frame_error"].to_list() == [None, errors.LINE_TOO_LARGE, None]
    assert streamed["frame_detail"][1] == f"1000 bytes > 100; sha256 {hashlib.sha256(huge).hexdigest()}"
    assert_frame_equal(streamed, landing.frame_bytes(file, data, max_line_bytes=100))


def test_an_oversized_last_line_without_newline_is_one_row(tmp_path):
    file = _file(tmp_path, b"ok\n" + b"z" * 50)

    streamed = _streamed(file, batch_bytes=8, max_line_bytes=10)

    assert streamed["frame_error"].to_list() == [None, errors.LINE_TOO_LARGE]
    assert streamed["frame_detail"][1].startswith("50 bytes > 10; sha256 ")


def test_an_empty_file_frames_no_rows(tmp_path):
    assert list(landing.frame_lines(_file(tmp_path, b""))) == []


def test_lines_read_with_the_end_of_a_too_large_line_are_framed_like_whole_framing(tmp_path):
    # the batch that ends the 100-byte line also brings 'ab' and 57 bytes of the next
    # (too-large) line; the next batch adds 64 more without a newline, so the carried
    # part outgrows what one batch plus the line limit leaves room for
    data = b"x" * 100 + b"\nab\n" + b"y" * 130 + b"\nlast\n"
    file = _file(tmp_path, data)

    streamed = _streamed(file, batch_bytes=64, max_line_bytes=10)

    assert streamed["text"].to_list() == [None, "ab", None, "last"]
    assert_frame_equal(streamed, landing.frame_bytes(file, data, max_line_bytes=10))


def test_frames_held_together_keep_their_own_lines_and_raw_bytes(tmp_path):
    # a reused read buffer must never show through a frame the caller still holds
    data = b"".join(b"line %d %s\n" % (i, b"\xff\x00" if i % 17 == 0 else b"ok") for i in range(500))
    file = _file(tmp_path, data)

    frames = list(landing.frame_lines(file, batch_bytes=50))

    assert len(frames) > 50
    assert_frame_equal(pl.concat(frames), landing.frame_bytes(file, data))


def test_lines_appended_after_the_file_was_hashed_wait_for_the_next_run(tmp_path):
    """Framed are the bytes the hash was taken over, and only those: a line an uploader
    appends meanwhile is not archived under a hash of content that never held it."""
    file = _file(tmp_path, b'{"n":1}\n{"n":2}\n')
    with file.path.open("ab") as fh:
        fh.write(b'{"n":3}\n')
    framed = _streamed(file, batch_bytes=4)
    assert framed["text"].to_list() == ['{"n":1}', '{"n":2}']
    assert (framed["file_sha256"] == hashlib.sha256(b'{"n":1}\n{"n":2}\n').hexdigest()).all()
    grown = landing.list_files(tmp_path, "callbacks")[0]
    assert _streamed(grown, batch_bytes=4)["text"].to_list() == ['{"n":1}', '{"n":2}', '{"n":3}']


def test_a_file_cut_short_after_it_was_hashed_is_refused(tmp_path):
    file = _file(tmp_path, b'{"n":1}\n{"n":2}\n')
    file.path.write_bytes(b'{"n":1}\n')
    with pytest.raises(landing.LandingFileChanged, match=r"callbacks/f.jsonl shrank while it was read \(8 of the 16 "):
        _streamed(file, batch_bytes=4)
