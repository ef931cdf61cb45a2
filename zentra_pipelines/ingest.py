"""Landing → warehouse: archive every new file once, byte-exact, then verify callbacks.

A file's identity is its content hash: re-running over the same landing folder adds
nothing, and a grown folder only adds its new files. Archive and bookkeeping rows are
appended in one transaction so a crash never leaves half a file archived.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from zentra_pipelines import intake, stage_inputs
from zentra_pipelines.adapters import landing
from zentra_pipelines.adapters.code_version import code_version
from zentra_pipelines.adapters.config import load_webhook_keys
from zentra_pipelines.adapters.sql_files import ensure_macros, load_sql
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import errors
from zentra_pipelines.domain.accounting import count_by, rows_conserved_violations
from zentra_pipelines.domain.callbacks import EVENT_KEY, converge, converge_changes
from zentra_pipelines.domain.money import IDENTIFIER_PATTERN, currency_exponents
from zentra_pipelines.domain.prefetch import prefetched

#: Standard Webhooks tolerance, applied on both sides of received_at.
MAX_SKEW_MS = 300_000

FILES_SCHEMA = {
    "source": pl.String, "source_file": pl.String, "file_sha256": pl.String,
    "bytes": pl.Int64, "lines": pl.Int64, "duplicate_of": pl.String,
}

log = logging.getLogger("zentra.landing")


@dataclass(frozen=True)
class ArchiveResult:
    new_files: int
    new_lines: int
    skipped_files: int
    #: files first seen this run whose bytes an archived file already holds (recorded
    #: in landing_files with duplicate_of, no line archived twice)
    duplicate_files: int = 0
    #: (entry, why) of what lies in the landing folder and is not input (``landing.not_read``)
    not_read: tuple[tuple[str, str], ...] = ()
    #: files archived before under the same name with other bytes (grown or rewritten in
    #: place, which the contract rules out): archived again as new files
    rewritten: tuple[str, ...] = ()


def ensure_archive(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(load_sql("create_archive"))


#: Framed batches (~4 MiB of lines each) allowed ahead of the DuckDB appends: at 1M
#: intents (2.3 GB, 6.9M lines) archiving took 28.6 s with framing and appending in
#: turn, 19.2 s with 4 batches of lead and 15.4 s with 16 (framing and hashing ~9 s,
#: DuckDB ~13 s: the lead absorbs their uneven pace).
PREFETCH_BATCHES = 16

#: Framed lines gathered before one append to DuckDB. DuckDB writes the row groups
#: (122,880 rows) of one insert on all its threads, but a ~4 MiB batch (~7k lines at 1M
#: intents) is a fraction of one, written by one thread. On 1.15M callback lines: 160
#: appends of one batch 2.7-2.8 s, 3 appends of ~64 batches (~400k lines) 1.9 s.
APPEND_ROWS = 4 * 122_880


class _LineAppender:
    """Appends framed line batches to ``landing_lines`` in inserts of ``APPEND_ROWS`` or
    more rows (the last one smaller): the caller flushes before it records the files and
    commits, so what is committed is every line of every file recorded."""

    def __init__(self, con: duckdb.DuckDBPyConnection, append_rows: int = APPEND_ROWS) -> None:
        self._con = con
        self._append_rows = append_rows
        self._frames: list[pl.DataFrame] = []
        self._rows = 0

    def add(self, frame: pl.DataFrame) -> None:
        self._frames.append(frame)
        self._rows += frame.height
        if self._rows >= self._append_rows:
            self.flush()

    def flush(self) -> None:
        if self._frames:
            frame = self._frames[0] if len(self._frames) == 1 else pl.concat(self._frames, how="vertical")
            self._frames, self._rows = [], 0
            Warehouse.append(self._con, "landing_lines", frame)


@dataclass(frozen=True)
class _FileEnd:
    """In the framed stream: the end of one landing file (after its batches, if new)."""

    file: landing.LandingFile
    skipped: bool  # its content was archived before (or earlier in this run)


def _framed_landing(
    landing_dir: Path, source: str, known: dict[str, str], stats: dict[str, tuple[landing.StatKey, str]]
) -> Iterator[pl.DataFrame | _FileEnd]:
    """Each file of ``source``: its framed batches, if its content is new, then its end.

    ``known`` (content hash -> the file archived with it) grows with each new file, so a
    second file with the same bytes in one run is skipped like one archived on an earlier
    run. ``stats``: the stat cache (``landing.list_files``).
    """
    for file in landing.list_files(landing_dir, source, stats):
        if file.sha256 in known:
            yield _FileEnd(file, skipped=True)
            continue
        known[file.sha256] = file.source_file
        for lines in landing.frame_lines(file):  # bounded batches: a file larger than RAM still frames
            yield lines.with_columns(source=pl.lit(source))
        yield _FileEnd(file, skipped=False)


def archive_landing(con: duckdb.DuckDBPyConnection, landing_dir: Path) -> ArchiveResult:
    """Append every not-yet-seen landing file (by sha256) to landing_files/landing_lines.

    One transaction per source: every new file of the source is appended with its
    bookkeeping row, then committed at once (a crash leaves no file half archived, and
    one commit instead of one per file saves DuckDB a flush per file). Files are hashed
    and framed on a helper thread (``prefetched``) while this one appends to DuckDB.
    """
    ensure_archive(con)
    known = dict(con.sql("SELECT file_sha256, source_file FROM landing_files WHERE duplicate_of IS NULL").fetchall())
    # a copy of an archived file under another name is recorded once (duplicate_of), so
    # every file that landed is accounted for, none of its lines archived twice
    copies = set(con.sql("SELECT source_file, file_sha256 FROM landing_files WHERE duplicate_of IS NOT NULL")
                 .fetchall())
    archived_as = {name: sha for sha, name in known.items()}
    rewritten: list[str] = []
    stats = _read_stat_cache(con)
    listed: dict[str, tuple[landing.StatKey, str]] = {}
    new_files = new_lines = skipped = duplicates = 0
    for source in landing.SOURCES:
        records = []
        began = False
        line_count = 0
        lines = _LineAppender(con)
        try:
            # closed on any failure too: the helper stops reading files before the rollback
            with closing(prefetched(_framed_landing(landing_dir, source, known, stats), PREFETCH_BATCHES)) as stream:
                for item in stream:
                    if isinstance(item, _FileEnd) and item.file.stat_key is not None:
                        listed[item.file.source_file] = (item.file.stat_key, item.file.sha256)
                    if isinstance(item, _FileEnd) and item.skipped:
                        skipped += 1
                        file = item.file
                        original = known[file.sha256]
                        if original == file.source_file or (file.source_file, file.sha256) in copies:
                            continue
                        copies.add((file.source_file, file.sha256))
                        duplicates += 1
                        item = (source, file.source_file, file.sha256, file.size, 0, original)
                    if not began:
                        con.execute("BEGIN TRANSACTION")
                        began = True
                    if isinstance(item, tuple):
                        records.append(item)
                    elif isinstance(item, _FileEnd):
                        file = item.file
                        if archived_as.get(file.source_file, file.sha256) != file.sha256:
                            rewritten.append(file.source_file)
                        records.append((source, file.source_file, file.sha256, file.size, line_count, None))
                        new_lines += line_count
                        line_count = 0
                    else:
                        lines.add(item)
                        line_count += item.height
                    del item
            if began:
                lines.flush()
                Warehouse.append(con, "landing_files", pl.DataFrame(records, schema=FILES_SCHEMA, orient="row"))
                con.execute("COMMIT")
        except Exception:
            if began:
                con.execute("ROLLBACK")
            raise
        new_files += sum(1 for record in records if record[-1] is None)
    if listed != stats:
        _write_stat_cache(con, listed)
    unread = tuple(landing.not_read(landing_dir))
    if not any((landing_dir / source).is_dir() for source in landing.SOURCES):
        log.warning("landing: %s holds none of %s: nothing to read (is it the right folder?)", landing_dir,
                    ", ".join(f"{source}/" for source in landing.SOURCES))
    if unread:
        shown = "; ".join(f"{entry} ({why})" for entry, why in unread[:5])
        log.warning("landing: %d entr%s not read: %s%s", len(unread), "y" if len(unread) == 1 else "ies", shown,
                    f" (+{len(unread) - 5} more)" if len(unread) > 5 else "")
    if rewritten:
        log.warning("landing: %d file(s) changed since they were archived (%s%s): archived again as new files, so "
                    "the lines they held before are counted twice; landing files must not be rewritten or appended "
                    "to (write new lines to a new file)", len(rewritten), ", ".join(rewritten[:5]),
                    f" +{len(rewritten) - 5} more" if len(rewritten) > 5 else "")
    return ArchiveResult(new_files, new_lines, skipped, duplicate_files=duplicates, not_read=unread,
                         rewritten=tuple(rewritten))


#: source_file -> the stat its content hash was read under (``landing.list_files``). A cache:
#: losing it costs one re-read of the landing folder, never a file; rewritten whole, so a
#: file gone from the folder leaves it.
STAT_CACHE = "landing_file_stats"
STAT_CACHE_SCHEMA = {
    "source_file": pl.String, "bytes": pl.Int64, "mtime_ns": pl.Int64, "ctime_ns": pl.Int64,
    "inode": pl.UInt64, "device": pl.UInt64, "file_sha256": pl.String,
}


def _read_stat_cache(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[landing.StatKey, str]]:
    cached = Warehouse.read(con, STAT_CACHE)
    if cached is None or dict(cached.schema) != STAT_CACHE_SCHEMA:
        return {}  # none yet, or written by other code: hash everything once
    return {name: ((size, mtime, ctime, inode, device), sha)
            for name, size, mtime, ctime, inode, device, sha in cached.iter_rows()}


def _write_stat_cache(con: duckdb.DuckDBPyConnection, listed: dict[str, tuple[landing.StatKey, str]]) -> None:
    rows = [(name, *key, sha) for name, (key, sha) in sorted(listed.items())]
    Warehouse.publish(con, {STAT_CACHE: pl.DataFrame(rows, schema=STAT_CACHE_SCHEMA, orient="row")},
                      allow_empty={STAT_CACHE})


#: Verdicts that depended on the configured keys: a changed secrets file (a tenant or a
#: provider added, a secret fixed) may turn them around, so they are judged again.
KEY_VERDICTS = (errors.UNKNOWN_TENANT, errors.SIGNATURE_MISMATCH)


def keys_fingerprint(webhook_keys: pl.DataFrame) -> str:
    """Which keys judged the callbacks, as a value nothing secret can be recovered from:
    PBKDF2-SHA256 (100k rounds) over the sorted set of (tenant, provider, key pad), so
    the order of a provider's secrets does not count and a guess costs 100k hashes."""
    keys = sorted(set(webhook_keys.select("tenant_id", "provider", "ikey").iter_rows()))
    blob = b"".join(f"{t}\0{p}\0".encode() + bytes(k) + b"\0" for t, p, k in keys)
    return hashlib.pbkdf2_hmac("sha256", blob, b"zentra.callback_keys/1", 100_000).hex()


def verify_new_callbacks(con: duckdb.DuckDBPyConnection, webhook_keys: pl.DataFrame,
                         fingerprint: str | None = None) -> int:
    """Verify callback lines not verified before; append one judged row per line.

    The verdict is kept as evidence of what was checked at receipt, so a later secret
    rotation never re-judges a line that was accepted (a secret retired since does not
    make it a forgery). A line quarantined for want of a key (``KEY_VERDICTS``) is judged
    again whenever the keys changed: a tenant added to the secrets file, or a secret
    corrected, takes effect on the lines already landed, as on a fresh home. The
    verdicts go straight from the query into the table inside DuckDB: at 1M intents
    (2.45M lines) holding them as a frame first cost ~0.7 GB that stayed resident
    through the convergence that follows.
    """
    ensure_archive(con)
    ensure_macros(con)
    fingerprint = fingerprint or keys_fingerprint(webhook_keys)
    con.execute("BEGIN TRANSACTION")
    try:
        if con.sql("SELECT fingerprint FROM callback_keys_judged").fetchall() not in ([], [(fingerprint,)]):
            (again,) = con.execute("DELETE FROM callback_checked WHERE list_contains($codes, error_code)",
                                   {"codes": list(KEY_VERDICTS)}).fetchall()[0]
            if again:
                log.warning("the webhook secrets changed: %d callback line(s) quarantined as %s are judged again",
                            again, " or ".join(KEY_VERDICTS))
        con.execute(load_sql("select_pending_callbacks"))
        con.register("webhook_secrets", webhook_keys)
        con.register("iso_currencies", pl.DataFrame({"currency": sorted(currency_exponents())}))
        (judged,) = con.execute(
            "INSERT INTO callback_checked BY NAME SELECT * FROM (\n" + load_sql("verify_callbacks") + "\n)",
            {"identifier": IDENTIFIER_PATTERN.strip("^$"), "max_skew_ms": MAX_SKEW_MS},
        ).fetchall()[0]
        con.execute("DELETE FROM callback_keys_judged")
        con.execute("INSERT INTO callback_keys_judged VALUES ($f)", {"f": fingerprint})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("webhook_secrets")
        con.unregister("iso_currencies")
        con.execute("DROP VIEW IF EXISTS callback_lines_new")
    return int(judged)


#: Published with the callback tables: the digest of what they were built from.
CALLBACK_INPUTS = "callbacks_inputs"
CALLBACK_TABLES = ("callbacks_quarantine", "callback_events", "provider_state", "callback_conflicts")


@dataclass(frozen=True)
class CallbackReport:
    verified_now: int
    received: int
    accepted: int
    quarantined: int
    quarantined_by_code: dict[str, int]
    provider_refs: int
    distinct_events: int
    duplicates_collapsed: int
    conflicts: int


def run_callbacks(con: duckdb.DuckDBPyConnection, secrets_path: Path) -> CallbackReport:
    """Verify newly archived callback lines, then converge every judged line.

    When the judged lines and the code are those the published tables were built from
    (``stage_inputs``), nothing is rebuilt: the report is read from those tables. When
    they are those plus the lines of the files verified now, only what those lines can
    change is converged again (``_publish_changes``).
    """
    keys = load_webhook_keys(secrets_path)
    fingerprint = keys_fingerprint(keys)
    ensure_archive(con)
    new_files = intake.uncached_files(con, "callbacks", "callback_checked")
    verified = verify_new_callbacks(con, keys, fingerprint)
    (received,) = con.sql("SELECT count(*) FROM callback_checked").fetchall()[0]
    # the keys count: lines judged again keep their count and line numbers, not their verdict
    parts = [code_version(), fingerprint]
    inputs = stage_inputs.digest(con, "callback_checked", parts)
    if stage_inputs.unchanged(con, CALLBACK_INPUTS, inputs, CALLBACK_TABLES):
        return _published_report(con, verified, received)
    if stage_inputs.built_without(con, CALLBACK_INPUTS, "callback_checked", parts, new_files, CALLBACK_TABLES):
        _publish_changes(con, new_files, received, inputs)
        return _published_report(con, verified, received)
    # handed over without a name here, so converge can release it once split into
    # ok and bad lines (2.45M lines at 1M intents: ~0.7 GB not held to the end)
    result = converge(con.sql("SELECT * FROM callback_checked").pl())
    Warehouse.publish(
        con,
        {
            "callbacks_quarantine": result.quarantine,
            "callback_events": result.events,
            "provider_state": result.state,
            "callback_conflicts": result.conflicts,
            CALLBACK_INPUTS: stage_inputs.frame(inputs),
        },
        audit=lambda frames: rows_conserved_violations(
            received, frames["callback_events"].height, frames["callbacks_quarantine"].height, "callbacks"
        ),
        allow_empty=_callbacks_allow_empty(result.events.height),
    )
    distinct = result.events.select("tenant_id", "provider", "event_id").n_unique() if result.events.height else 0
    return CallbackReport(
        verified_now=verified,
        received=received,
        accepted=result.events.height,
        quarantined=result.quarantine.height,
        quarantined_by_code=count_by(result.quarantine, "error_code"),
        provider_refs=result.state.height,
        distinct_events=distinct,
        duplicates_collapsed=result.events.height - distinct,
        conflicts=result.conflicts.select(EVENT_KEY).n_unique() if result.conflicts.height else 0,
    )


def _callbacks_allow_empty(accepted: int) -> set[str]:
    """Provider state may only be empty when no line at all passed verification."""
    return {"callbacks_quarantine", "callback_conflicts"} | (
        {"callback_events", "provider_state"} if accepted == 0 else set())


def _publish_changes(con: duckdb.DuckDBPyConnection, new_files: list[str], received: int, inputs: str) -> None:
    """Publish the convergence of every judged line from the published one, built on every
    line but those of ``new_files``: the lines those can change are converged again
    (``converge_changes``), ``callback_events`` has the rows of those events replaced in
    place, and the other tables (small, or contract tables) are rewritten whole, in a full
    build's order.

    Why: at 100k intents over 30 days, a day's run converged all 245k lines again (0.4-0.8 s)
    and rewrote callback_events (245k rows x 22 columns, ~0.9 s staged and checkpointed)
    for the ~8k lines it added. callback_events is then a set whose physical order is the
    order of its updates; its readers order what they read, or take values every copy of
    an event shares.
    """
    lines = con.sql(load_sql("select_changed_callback_lines"), params={"files": new_files}).pl()
    changes = converge_changes(
        lines, new_files, *(Warehouse.read(con, t) for t in ("provider_state", "callbacks_quarantine",
                                                             "callback_conflicts"))
    )
    result = changes.converged
    events = Warehouse.replacement(con, "callback_events", changes.redone, result.events)
    Warehouse.publish(
        con,
        {
            "callbacks_quarantine": result.quarantine,
            "provider_state": result.state,
            "callback_conflicts": result.conflicts,
            CALLBACK_INPUTS: stage_inputs.frame(inputs),
        },
        audit=lambda frames: rows_conserved_violations(
            received, events.rows, frames["callbacks_quarantine"].height, "callbacks"
        ),
        allow_empty=_callbacks_allow_empty(events.rows),
        in_place={"callback_events": events},
    )


def _published_report(con: duckdb.DuckDBPyConnection, verified: int, received: int) -> CallbackReport:
    """The report of the published callback tables, read from them."""
    quarantine = Warehouse.read(con, "callbacks_quarantine")
    accepted, distinct = con.sql(
        "SELECT count(*), count(DISTINCT (tenant_id, provider, event_id)) FROM callback_events"
    ).fetchall()[0]
    (refs,) = con.sql("SELECT count(*) FROM provider_state").fetchall()[0]
    (conflicts,) = con.sql(
        "SELECT count(DISTINCT (tenant_id, provider, event_id)) FROM callback_conflicts"
    ).fetchall()[0]
    return CallbackReport(
        verified_now=verified, received=received, accepted=accepted, quarantined=quarantine.height,
        quarantined_by_code=count_by(quarantine, "error_code"), provider_refs=refs,
        distinct_events=distinct, duplicates_collapsed=accepted - distinct, conflicts=conflicts,
    )
