"""Landing folder: list append-only input files and split them into framed lines.

Framing is the first quarantine gate and the only place raw bytes are touched: a line
that is too large, not UTF-8 or holds a NUL byte never reaches a parser. Every line
comes out as a row (``received`` is counted here), so nothing can vanish later.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from zentra_pipelines.domain import errors

#: A single line above this is quarantined unparsed (hostile 10 MB bodies, runaway files).
MAX_LINE_BYTES = 1 << 20
NUL = b"\x00"

SOURCES = {
    "callbacks": "*.jsonl",
    "intents": "*.jsonl",
    "settlements": "*.csv",
    "deliveries": "*.jsonl",
}

LINES_SCHEMA = {
    "source_file": pl.String,
    "file_sha256": pl.String,
    "line_no": pl.Int64,
    "text": pl.String,
    "raw": pl.Binary,
    "frame_error": pl.String,
    "frame_detail": pl.String,
}


#: What a file's stat says about its bytes: (size, mtime_ns, ctime_ns, inode, device).
StatKey = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class LandingFile:
    source: str
    source_file: str  # path relative to the landing folder, '/'-separated: data, not a path part
    path: Path
    sha256: str
    size: int
    #: The stat the hash holds for, when a later listing may trust it instead of reading
    #: the file again (see ``list_files``); None when the file was too young, changed
    #: while it was hashed, or lies on a file system that reports no ctime.
    stat_key: StatKey | None = None


#: A file whose mtime or ctime is this close to the listing (or later) is hashed again
#: next time. File times come from a coarse clock (a few ms), so a write just after the
#: listing could leave the times as they were; a write one second later cannot.
RACY_NS = 1_000_000_000


def list_files(
    landing: Path, source: str, known: Mapping[str, tuple[StatKey, str]] | None = None, *, racy_ns: int = RACY_NS
) -> list[LandingFile]:
    """Files of one source, sorted by name, each with its content hash (its identity).

    ``known``: source_file -> (stat key, sha256) from an earlier listing. A file whose
    size, mtime, ctime, inode and device are all as recorded is not read again: any
    write, truncation, rename over it or ``touch`` changes its ctime, which no user
    process can set back. Without it every run re-read the whole landing history to
    learn it was already archived (100k intents x 31 days: 223 MB per run, ~1 s beside
    the run's other threads; at 1M intents 2.3 GB per day of history).
    """
    folder = landing / source
    if not folder.is_dir():
        return []
    found = []
    known = known or {}
    listed_at = time.time_ns()
    buffer = bytearray(HASH_READ_BYTES)  # one per listing: a fresh buffer per read costs page faults
    roots = _roots(landing, source)
    for path in sorted(folder.glob(SOURCES[source])):
        if _why_not_read(path, source, roots) is not None:
            continue  # named by ``not_read``
        name = f"{source}/{path.name}"
        before = _stat_key(path)
        recorded = known.get(name)
        if recorded is not None and recorded[0] == before:
            found.append(LandingFile(source, name, path, recorded[1], before[0], before))
            continue
        digest, size = _sha256_of(path, buffer)
        # trusted later only if it held still while read, is past the racy window, and the
        # file system keeps a ctime at all (one reporting 0 could not show a rewrite)
        settled = (before == _stat_key(path) and size == before[0] and before[2] > 0
                   and max(before[1], before[2]) < listed_at - racy_ns)
        found.append(LandingFile(source, name, path, digest, size, before if settled else None))
    return found


def not_read(landing: Path) -> list[tuple[str, str]]:
    """Every entry of the landing folder that no run reads, with why, sorted.

    Only ``<source>/<pattern>`` regular files are input (``SOURCES``). Anything else put
    there (a folder named ``callback``, a ``.txt`` beside the ``.jsonl`` files, a
    subfolder of dated files, a link to a file outside the landing folder) would
    otherwise be skipped without a word: nothing may vanish silently, a whole file
    included. The entries are data (relative, '/'-separated), never paths to open.
    """
    if not landing.is_dir():
        return []
    out = []
    for entry in sorted(landing.iterdir()):
        if entry.name not in SOURCES:
            out.append((entry.name, f"not an input folder ({', '.join(SOURCES)})"))
            continue
        if not entry.is_dir():
            out.append((entry.name, "not a folder"))
            continue
        roots = _roots(landing, entry.name)
        for path in sorted(entry.iterdir()):
            why = _why_not_read(path, entry.name, roots)
            if why is not None:
                out.append((f"{entry.name}/{path.name}", why))
    return out


def _roots(landing: Path, source: str) -> tuple[Path, Path]:
    """Where a source's files may lead (links resolved): the landing folder, or the
    source folder itself when that is a link to storage elsewhere."""
    return landing.resolve(), (landing / source).resolve()


def _why_not_read(path: Path, source: str, roots: tuple[Path, Path]) -> str | None:
    """None for an input file of ``source``; otherwise why it is not read."""
    pattern = SOURCES[source]
    if path.name.startswith("."):  # as the landing sensor: uploads in progress, editor and OS files
        return "a hidden file: partial uploads and tool files are not input"
    if not path.match(pattern):
        if path.is_dir():
            return f"a folder: {source} files are read from {source}/ itself, not its subfolders"
        return f"not a {pattern} file"
    if path.is_symlink():
        try:
            target = path.resolve()
        except (OSError, RuntimeError):  # a loop of links
            return "a link that cannot be followed"
        if not any(target.is_relative_to(root) for root in roots):
            return "a link to a file outside the landing folder"
    if not path.is_file():
        return "not a regular file"
    try:  # one unreadable file is named and left out, not a failed run that archives nothing
        path.open("rb").close()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    return None


def _stat_key(path: Path) -> StatKey:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


#: Bytes read, then hashed, per call when hashing a landing file. Each read and each
#: hash call releases the GIL and takes it back; while another thread holds it (at run
#: start the GX engine is built beside the landing step) each take-back can wait up to a
#: switch interval (5 ms). 233 MB of landing files beside a busy Python thread: 12.1 s in
#: hashlib.file_digest's 256 KiB reads, 3.7 s in 4 MiB ones; alone 0.25 vs 0.20 s (16 MiB
#: no longer fits the caches: 0.27 s alone, and slower archiving at 1M intents).
HASH_READ_BYTES = 4 << 20


def _sha256_of(path: Path, buffer: bytearray) -> tuple[str, int]:
    """(SHA-256 hex, size) of the file's bytes: both from the same read, so a file still
    growing while it is listed never gets the size of one state and the hash of another."""
    digest = hashlib.sha256()
    view = memoryview(buffer)
    total = 0
    with path.open("rb", buffering=0) as fh:
        while size := fh.readinto(buffer):
            digest.update(view[:size])
            total += size
    return digest.hexdigest(), total


#: Bytes read per batch when framing a file: memory stays O(BATCH_BYTES + MAX_LINE_BYTES)
#: whatever the file's size (4 MiB framed the 100k sample's 127 MiB of callbacks in 0.67 s, 183 MiB
#: peak; 8 MiB 0.84 s, 244 MiB; 64 MiB 0.97 s, 329 MiB).
BATCH_BYTES = 4 << 20


def frame_lines(
    file: LandingFile, batch_bytes: int = BATCH_BYTES, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[pl.DataFrame]:
    """The file's lines as a stream of frames, each of whole lines, numbered across batches.

    The file is read ``batch_bytes`` at a time and cut after the last newline of each
    batch, so no frame holds more than a batch plus one carried partial line. A line that
    outgrows ``max_line_bytes`` before its newline is never held whole: it is hashed as it
    streams past and comes out as one ``line_too_large`` row with its size and sha256
    (the same detail ``frame_bytes`` gives a too-large line it holds).

    Batches are read into one buffer, reused for the whole file (what follows the last
    newline is moved to its front). A fresh few-MiB ``bytes`` per read, per join with the
    carried line and per cut was mapped, zeroed and unmapped again by the kernel each
    time. On the 1M-intent scenario's 2.3 GB of landing files: framing 6.1 -> 2.8 s,
    page faults 1.37M -> 59k; the archive step alone 18.8-19.3 -> 15.1 s. ``frame_bytes``
    copies what it keeps, so a frame never points into the buffer.
    """
    line_no = 1
    block = bytearray(batch_bytes + max(batch_bytes, max_line_bytes))
    held = 0  # block[:held]: what the last cut left (a partial line, or lines after a too-large one)
    with file.path.open("rb") as raw:
        fh = _Hashed(raw, file)
        while True:
            if held + batch_bytes > len(block):  # only after a too-large line: rare, grow once
                block = block[:held] + bytearray(batch_bytes)
            view = memoryview(block)
            read = fh.readinto(view[held : held + batch_bytes])
            if not read:
                break
            end = held + read
            cut = block.rfind(b"\n", 0, end)
            if cut >= 0:
                frame = frame_bytes(file, view[: cut + 1], line_no, max_line_bytes)
                rest = bytes(view[cut + 1 : end])  # a copy: it may overlap where it goes
            elif end > max_line_bytes:
                size, sha256, rest = _stream_past_line(fh, bytes(view[:end]), batch_bytes)
                frame = _too_large_row(file, line_no, _too_large_detail(size, max_line_bytes, sha256))
            else:
                held = end
                continue
            block[: len(rest)] = rest
            held = len(rest)
            line_no += frame.height
            yield frame
        if held:
            yield frame_bytes(file, bytes(view[:held]), line_no, max_line_bytes)
        fh.check_complete()


class LandingFileChanged(RuntimeError):
    """A landing file shrank between its hashing and its framing: it is being rewritten,
    which the contract rules out; its lines would not be the content its hash names."""


class _Hashed:
    """A landing file's first ``file.size`` bytes: the content its sha256 was taken over.

    An uploader appending to a file after the listing hashed it would otherwise have its
    new lines archived under the hash of the shorter content (evidence naming bytes that
    content never held); they are archived on the next run, under the grown file's own
    hash. Fewer bytes than hashed (the file shrank) is refused by ``check_complete``."""

    def __init__(self, fh: BinaryIO, file: LandingFile):
        self._fh, self._file, self._left = fh, file, file.size

    def readinto(self, view: memoryview) -> int:
        n = self._fh.readinto(view[: self._left]) if self._left else 0
        self._left -= n
        return n

    def read(self, size: int) -> bytes:
        data = self._fh.read(min(size, self._left)) if self._left else b""
        self._left -= len(data)
        return data

    def check_complete(self) -> None:
        if self._left:
            raise LandingFileChanged(
                f"{self._file.source_file} shrank while it was read ({self._file.size - self._left} of the "
                f"{self._file.size} bytes hashed): it is being rewritten; run again once it is complete")


def _stream_past_line(fh: _Hashed, head: bytes, batch_bytes: int) -> tuple[int, str, bytes]:
    """Hash the rest of an oversized line; return its size, sha256 (hex) and the bytes after it."""
    digest, size = hashlib.sha256(head), len(head)
    while chunk := fh.read(batch_bytes):
        nl = chunk.find(b"\n")
        if nl >= 0:
            digest.update(chunk[:nl])
            return size + nl, digest.hexdigest(), chunk[nl + 1 :]
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest(), b""


def _too_large_detail(size: int, limit: int, sha256: str) -> str:
    return f"{size} bytes > {limit}; sha256 {sha256}"


def _too_large_row(file: LandingFile, line_no: int, detail: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source_file": [file.source_file],
            "file_sha256": [file.sha256],
            "line_no": [line_no],
            "text": [None],
            "raw": [None],
            "frame_error": [errors.LINE_TOO_LARGE],
            "frame_detail": [detail],
        },
        schema=LINES_SCHEMA,
    )


def frame_bytes(
    file: LandingFile, data: bytes | memoryview, first_line_no: int = 1, max_line_bytes: int = MAX_LINE_BYTES
) -> pl.DataFrame:
    """One row per line of ``data`` (whole lines): valid text, or the raw bytes plus a framing error code.

    Vectorised: newlines, NUL bytes, line lengths and non-ASCII bytes are located with
    NumPy over the block, the lines become one Arrow array over the block's own buffer,
    and only *suspect* lines (too large, holding a NUL, or non-ASCII lines of a block
    that is not valid UTF-8 as a whole) are judged one by one by ``_frame_one``, the
    reference rules. A clean block never enters a Python loop.
    """
    if len(data) and data[-1] != 0x0A:
        data = bytes(data) + b"\n"  # the last line ends at the end of the file: same framing as a final newline
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 0x0A)  # index of each line's newline
    n = int(ends.size)
    starts = np.empty(n, dtype=np.int64)
    if n:
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    lengths = ends - starts

    # With newline included, line i is data[starts[i]:ends[i] + 1]: contiguous offsets,
    # so Arrow can view the file's buffer without copying; the slice drops the newline.
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[:n] = starts
    offsets[n] = len(data)
    with_nl = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    lines = pc.binary_slice(with_nl, 0, -1) if n else pa.array([], type=pa.large_binary())

    suspect = lengths > max_line_bytes
    if n:
        suspect[_lines_of(np.flatnonzero(buf == 0), ends)] = True
    try:
        text = lines.cast(pa.large_string())  # validates UTF-8 for the whole file at once
    except pa.ArrowInvalid:
        text = None
        # only lines with a byte >= 0x80 can be invalid UTF-8 (a newline never splits a sequence)
        suspect[_lines_of(np.flatnonzero(buf >= 0x80), ends)] = True
    bad = np.flatnonzero(suspect)
    nothing = pl.repeat(None, n, dtype=pl.String, eager=True)
    columns = {
        "source_file": pl.repeat(file.source_file, n, dtype=pl.String, eager=True),
        "file_sha256": pl.repeat(file.sha256, n, dtype=pl.String, eager=True),
        "line_no": pl.int_range(first_line_no, first_line_no + n, dtype=pl.Int64, eager=True),
        "text": None,
        "raw": pl.repeat(None, n, dtype=pl.Binary, eager=True),
        "frame_error": nothing,
        "frame_detail": nothing,
    }
    if bad.size:
        # the reference rules, line by line, for the few suspect lines only
        verdicts = [_frame_one(bytes(data[starts[i] : ends[i]]), max_line_bytes) for i in bad.tolist()]
        ok = np.ones(n, dtype=bool)
        ok[bad[np.asarray([v[0] is None for v in verdicts], dtype=bool)]] = False
        text = pc.if_else(pa.array(ok), lines, pa.nulls(n, type=pa.large_binary())).cast(pa.large_string())
        raw_values: list[bytes | None] = [None] * n
        codes: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        for i, (_, raw_v, code, detail) in zip(bad.tolist(), verdicts):
            raw_values[i], codes[i], details[i] = raw_v, code, detail
        columns["raw"] = pl.Series(raw_values, dtype=pl.Binary)
        columns["frame_error"] = pl.Series(codes, dtype=pl.String)
        columns["frame_detail"] = pl.Series(details, dtype=pl.String)
    columns["text"] = pl.from_arrow(text) if n else pl.Series([], dtype=pl.String)
    return pl.DataFrame(columns, schema=LINES_SCHEMA)


def _lines_of(positions: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Line index of each byte position (``ends`` holds each line's newline, ascending)."""
    return np.unique(np.searchsorted(ends, positions))


def _frame_one(line: bytes, max_line_bytes: int) -> tuple[str | None, bytes | None, str | None, str | None]:
    if len(line) > max_line_bytes:
        digest = hashlib.sha256(line).hexdigest()
        return None, None, errors.LINE_TOO_LARGE, _too_large_detail(len(line), max_line_bytes, digest)
    if b"\x00" in line:
        return None, line, errors.NUL_BYTE, f"NUL byte at offset {line.index(NUL)}"
    try:
        return line.decode("utf-8"), None, None, None
    except UnicodeDecodeError as exc:
        return None, line, errors.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}"
