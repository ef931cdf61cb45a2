"""Landing folder: list append-only input files and split them into framed lines.

Framing is the first quarantine gate and the only place raw bytes are touched: a line
that is too large, not UTF-8 or holds a NUL byte never reaches a parser. Every line
comes out as a row (``received`` is counted here), so nothing can vanish later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

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


@dataclass(frozen=True)
class LandingFile:
    source: str
    source_file: str  # path relative to the landing folder, '/'-separated: data, not a path part
    path: Path
    sha256: str
    size: int


def list_files(landing: Path, source: str) -> list[LandingFile]:
    """Files of one source, sorted by name, each with its content hash (its identity)."""
    folder = landing / source
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(SOURCES[source])):
        if not path.is_file():
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        found.append(
            LandingFile(source, f"{source}/{path.name}", path, digest.hexdigest(), path.stat().st_size)
        )
    return found


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the file ends the last line; it opens none
    return lines


def frame_lines(file: LandingFile, data: bytes | None = None) -> pl.DataFrame:
    """One row per line: valid text, or the raw bytes plus a framing error code."""
    if data is None:
        data = file.path.read_bytes()
    lines = _split_lines(data)
    n = len(lines)
    fast = b"\x00" not in data and all(len(line) <= MAX_LINE_BYTES for line in lines)
    if fast:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            fast = False
    if fast:
        texts = text.split("\n")
        if texts and texts[-1] == "" and len(texts) == n + 1:
            texts.pop()
        return pl.DataFrame(
            {
                "source_file": [file.source_file] * n,
                "file_sha256": [file.sha256] * n,
                "line_no": list(range(1, n + 1)),
                "text": texts,
                "raw": pl.Series([None] * n, dtype=pl.Binary),
                "frame_error": pl.Series([None] * n, dtype=pl.String),
                "frame_detail": pl.Series([None] * n, dtype=pl.String),
            },
            schema=LINES_SCHEMA,
        )
    rows = [_frame_one(line) for line in lines]
    return pl.DataFrame(
        {
            "source_file": [file.source_file] * n,
            "file_sha256": [file.sha256] * n,
            "line_no": list(range(1, n + 1)),
            "text": [r[0] for r in rows],
            "raw": [r[1] for r in rows],
            "frame_error": [r[2] for r in rows],
            "frame_detail": [r[3] for r in rows],
        },
        schema=LINES_SCHEMA,
    )


def _frame_one(line: bytes) -> tuple[str | None, bytes | None, str | None, str | None]:
    if len(line) > MAX_LINE_BYTES:
        digest = hashlib.sha256(line).hexdigest()
        return None, None, errors.LINE_TOO_LARGE, f"{len(line)} bytes > {MAX_LINE_BYTES}; sha256 {digest}"
    if b"\x00" in line:
        return None, line, errors.NUL_BYTE, f"NUL byte at offset {line.index(NUL)}"
    try:
        return line.decode("utf-8"), None, None, None
    except UnicodeDecodeError as exc:
        return None, line, errors.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}"
