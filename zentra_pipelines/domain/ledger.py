"""The ledger (contract 2.3): validate source postings, chain them, rebuild balances.

Pure: frames in, frames out. No database, file, clock or environment access, so the
same rows always give the same entries, hashes and balances whatever the order they
were read in (a property test pins this).

Pipeline, in order:

1. ``validate_postings``: every distinct source row is either an accepted posting or
   one quarantine row with a stable code (``received = accepted + quarantined +
   collapsed``, where *collapsed* counts re-reads of identical content). Row checks
   first (identifiers, currency, amount, timestamp, account, tenant), then re-read
   conflicts (every copy), then journals that no longer balance (the whole journal).
2. ``chain_entries``: a per-tenant SHA-256 hash chain over the accepted postings in
   (posted_at, journal_id, posting_id) order; ``verify_chain`` recomputes it.
3. ``rebuild_balances``: balances and daily opening/movements/closing, summed in
   Int128 so hostile amounts near the 64-bit limit cannot wrap around.
4. Views for reconciliation and findings: ``intent_ledger_view``,
   ``duplicate_journals``, ``ledger_findings``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import polars as pl

from zentra_pipelines.domain import errors, frames
from zentra_pipelines.domain.money import IDENTIFIER_PATTERN, INT64_MAX, INT64_MIN, currency_exponents
from zentra_pipelines.domain.prefetch import prefetched

# ----------------------------------------------------------------------- schemas ---

#: Raw source row as the adapter delivers it: every value as text, never coerced.
#: ``amount_type`` is the storage type of amount_minor (SQLite vocabulary: integer,
#: real, text, blob, null; plus boolean/other:<name> from PostgreSQL).
SOURCE_SCHEMA: dict[str, pl.DataType] = {
    "posting_id": pl.String(),
    "journal_id": pl.String(),
    "intent_id": pl.String(),
    "tenant_id": pl.String(),
    "account_id": pl.String(),
    "currency": pl.String(),
    "amount_minor": pl.String(),
    "amount_type": pl.String(),
    "posted_at_text": pl.String(),
    "actor_id": pl.String(),
    "idempotency_key": pl.String(),
}
SOURCE_COLUMNS = list(SOURCE_SCHEMA)

ACCOUNT_SCHEMA: dict[str, pl.DataType] = {
    "account_id": pl.String(),
    "tenant_id": pl.String(),
    "type": pl.String(),
    "allow_negative": pl.Boolean(),
}

UTC_US = pl.Datetime("us", "UTC")

POSTING_SCHEMA: dict[str, pl.DataType] = {
    "posting_id": pl.String(),
    "journal_id": pl.String(),
    "intent_id": pl.String(),
    "tenant_id": pl.String(),
    "account_id": pl.String(),
    "currency": pl.String(),
    "amount_minor": pl.Int64(),
    "posted_at": UTC_US,
    "actor_id": pl.String(),
    "idempotency_key": pl.String(),
}
POSTING_COLUMNS = list(POSTING_SCHEMA)
ENTRY_SCHEMA: dict[str, pl.DataType] = {
    **POSTING_SCHEMA,
    "entry_seq": pl.Int64(),
    "prev_hash": pl.String(),
    "entry_hash": pl.String(),
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "posting_id": pl.String(),
    "journal_id": pl.String(),
    "error_code": pl.String(),
    "detail": pl.String(),
    "posted_at": UTC_US,
    # beyond the brief's minimum: what an operator needs to see the row again
    "account_id": pl.String(),
    "currency": pl.String(),
    "amount_minor": pl.String(),
    "amount_type": pl.String(),
    "posted_at_text": pl.String(),
}
BALANCE_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "account_id": pl.String(),
    "currency": pl.String(),
    "balance_minor": pl.Int64(),
}
DAILY_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "account_id": pl.String(),
    "currency": pl.String(),
    "day": pl.Date(),
    "opening_minor": pl.Int64(),
    "movements_minor": pl.Int64(),
    "closing_minor": pl.Int64(),
}
FINDING_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "finding_type": pl.String(),
    "account_id": pl.String(),
    "intent_id": pl.String(),
    "currency": pl.String(),
    "amount_minor": pl.Int64(),
    "since": UTC_US,
    "age_days": pl.Int64(),
    "overdue": pl.Boolean(),
    "detail": pl.String(),
}

#: Identifier columns in check order. Required ones may not be null; the optional ones
#: may be null (opening-balance journals belong to no intent) but, when present, must
#: be well-formed like any other identifier.
REQUIRED_IDS = ("posting_id", "journal_id", "tenant_id", "account_id")
OPTIONAL_IDS = ("intent_id", "actor_id", "idempotency_key")
ID_CHECK_ORDER = ("posting_id", "journal_id", "intent_id", "tenant_id", "account_id", "actor_id", "idempotency_key")

ENTRY_ORDER = ["tenant_id", "posted_at", "journal_id", "posting_id"]
BALANCE_KEY = ["tenant_id", "account_id", "currency"]
ZERO_HASH = "0" * 64
CLEARING_TYPES = ("reserved", "settlement")

AMOUNT_RE = r"^-?[0-9]+$"
# ISO 8601 / SQL timestamp, UTC only: date, 'T' or ' ', seconds, up to 6 fraction
# digits, then nothing, 'Z', '+00:00', '+0000' or '+00'. No leap second (23:59:60 cannot be
# represented, and rolling it over would be a coercion). [0-9], not \d: Rust's \d is Unicode.
TIMESTAMP_RE = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])(\.[0-9]{1,6})?(?:Z|\+00(?::?00)?)?$"
)
_DETAIL_VALUE_MAX = 80


# ------------------------------------------------------------------- primitives ---


def parse_utc_timestamp(text: pl.Expr) -> pl.Expr:
    """Text -> Datetime(us, UTC); null when not an ISO 8601 UTC timestamp.

    Accepts 'YYYY-MM-DD HH:MM:SS[.ffffff]', with 'T', optionally suffixed 'Z', '+00:00',
    '+0000' or '+00'. Any other offset is refused rather than converted: the contract
    says the column is UTC, so '+01:00' means the writer is confused.
    """
    parts = text.str.extract_groups(TIMESTAMP_RE)
    frac = pl.coalesce(parts.struct.field("3"), pl.lit(".")).str.pad_end(7, "0")
    normal = pl.concat_str([parts.struct.field("1"), pl.lit(" "), parts.struct.field("2"), frac])
    return (
        normal.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False)
        .dt.replace_time_zone("UTC")
    )


def _shown(col: str) -> pl.Expr:
    """An untrusted value for a detail message: truncated, never interpreted."""
    value = pl.col(col)
    return (
        pl.when(value.str.len_chars() > _DETAIL_VALUE_MAX)
        .then(value.str.slice(0, _DETAIL_VALUE_MAX) + pl.lit("..."))
        .otherwise(value)
    )


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks columns {missing}")
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def in_order(frame: pl.DataFrame, keys: list[str]) -> bool:
    """Whether the rows are already strictly ascending by ``keys`` (no nulls, no ties).

    Cheap next to a sort: one comparison with the previous row, no gather. Sorting a
    frame that is already in order still copies every column (at 6M entries ~2 GB), so
    callers sort only when this is False; with ties or nulls the answer is False and
    the caller's sort decides, exactly as before.
    """
    if frame.height < 2:
        return frame.select(pl.any_horizontal(pl.col(keys).is_null()).any()).item() is not True
    after: pl.Expr = pl.lit(False)  # all keys equal: a tie, not strictly after
    for key in reversed(keys):
        col, prev = pl.col(key), pl.col(key).shift(1)
        after = (col > prev) | ((col == prev) & after)
    checks = frame.select(
        ordered=after.slice(1).all(),
        nulls=pl.any_horizontal(pl.col(keys).is_null()).any(),
    )
    return bool(checks["ordered"][0]) and not bool(checks["nulls"][0])


def _sorted(frame: pl.DataFrame, keys: list[str], *, nulls_last: bool = False) -> pl.DataFrame:
    """``frame.sort(keys, nulls_last=...)``, without the copy when it is already sorted."""
    return frame if in_order(frame, keys) else frame.sort(keys, nulls_last=nulls_last)


def _utc_posted(frame: pl.DataFrame) -> pl.DataFrame:
    """posted_at as Datetime(us, UTC) whatever it arrived as: the warehouse stores UTC
    without a zone attached (naive), frames in memory carry the zone."""
    if "posted_at" in frame.columns and frame.schema["posted_at"] != UTC_US:
        return frame.with_columns(pl.col("posted_at").cast(UTC_US))
    return frame


def _like_input(out: pl.DataFrame, entries: pl.DataFrame, column: str) -> pl.DataFrame:
    """Give a derived timestamp the input's convention back (naive UTC in, naive UTC out),
    so callers joining it with other warehouse columns see one type."""
    dtype = entries.schema.get("posted_at")
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        return out.with_columns(pl.col(column).dt.replace_time_zone(None))
    return out


def normalise_accounts(accounts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(accounts, ambiguous): one row per account_id; ids defined twice differently are set aside.

    The source declares account_id a primary key, but a hostile SQLite file need not
    enforce it. An account defined twice with different content is ambiguous, so
    postings to it are refused (account_unknown) instead of guessing.
    """
    acc = _conform(accounts, ACCOUNT_SCHEMA).unique(keep="first")
    counts = acc.group_by("account_id").len("definitions")
    ambiguous = acc.join(counts.filter(pl.col("definitions") > 1), on="account_id", how="inner", nulls_equal=False)
    ok = acc.join(ambiguous.select("account_id").unique(), on="account_id", how="anti").filter(
        pl.col("account_id").is_not_null()
    )
    return ok.sort("tenant_id", "account_id", nulls_last=True), ambiguous.sort("account_id", "tenant_id")


# -------------------------------------------------------------------- validation ---


def _row_checks() -> list[tuple[pl.Expr, str, pl.Expr]]:
    """(condition, code, detail) per check, in order: the first failing check wins."""
    steps: list[tuple[pl.Expr, str, pl.Expr]] = []
    for col in ID_CHECK_ORDER:
        if col in REQUIRED_IDS:
            steps.append((pl.col(col).is_null(), errors.MISSING_FIELD, pl.lit(f"{col} is null")))
        steps.append(
            (
                pl.col(col).is_not_null() & ~pl.col(col).str.contains(IDENTIFIER_PATTERN),
                errors.INVALID_IDENTIFIER,
                pl.format(f"{col} {{}} is not a valid identifier", _shown(col)),
            )
        )
    iso = sorted(currency_exponents())
    steps += [
        (pl.col("currency").is_null(), errors.MISSING_FIELD, pl.lit("currency is null")),
        (
            ~pl.col("currency").is_in(iso),
            errors.CURRENCY_UNKNOWN,
            pl.format("currency {} is not an ISO 4217 code", _shown("currency")),
        ),
    ]
    amount, kind = pl.col("amount_minor"), pl.col("amount_type")
    steps += [
        (amount.is_null() | (kind == "null"), errors.AMOUNT_MISSING, pl.lit("amount_minor is null")),
        (kind == "real", errors.AMOUNT_FLOAT, pl.format("amount_minor {} is stored as a float: never coerced", _shown("amount_minor"))),
        (kind == "text", errors.AMOUNT_STRING, pl.format("amount_minor {} is stored as text: never coerced", _shown("amount_minor"))),
        (kind == "boolean", errors.AMOUNT_BOOLEAN, pl.format("amount_minor {} is a boolean", _shown("amount_minor"))),
        (
            (kind != "integer") | ~amount.str.contains(AMOUNT_RE),
            errors.AMOUNT_INVALID,
            pl.format("amount_minor {} (stored as {}) is not an integer", _shown("amount_minor"), kind),
        ),
        (
            amount.str.to_integer(strict=False, dtype=pl.Int64).is_null(),
            errors.AMOUNT_OUT_OF_RANGE,
            pl.format("amount_minor {} is outside signed 64-bit", _shown("amount_minor")),
        ),
        (pl.col("posted_at_text").is_null(), errors.MISSING_FIELD, pl.lit("posted_at is null")),
        (
            pl.col("posted_at").is_null(),
            errors.INVALID_TIMESTAMP,
            pl.format("posted_at {} is not an ISO 8601 UTC timestamp", _shown("posted_at_text")),
        ),
        (
            pl.col("_acc_tenant").is_null() & pl.col("_acc_ambiguous"),
            errors.ACCOUNT_UNKNOWN,
            pl.format("account {} is defined several times with different content", "account_id"),
        ),
        (
            pl.col("_acc_tenant").is_null(),
            errors.ACCOUNT_UNKNOWN,
            pl.format("account {} is not in the accounts table", "account_id"),
        ),
        (
            pl.col("_acc_tenant") != pl.col("tenant_id"),
            errors.TENANT_MISMATCH,
            pl.format("posting tenant {} but account {} belongs to tenant {}", "tenant_id", "account_id", "_acc_tenant"),
        ),
    ]
    return steps


def _first_match(steps: list[tuple[pl.Expr, pl.Expr]]) -> pl.Expr:
    out: pl.Expr = pl.lit(None, pl.String)
    for cond, value in reversed(steps):  # built inside-out so the first step wins
        out = pl.when(cond.fill_null(False)).then(value).otherwise(out)
    return out


def _row_verdicts(rows: pl.DataFrame) -> tuple[pl.Series, pl.DataFrame]:
    """(fails, bad): whether each row fails a row check, and the failing rows with the
    error_code and detail of their first failing check.

    One cheap pass computes whether any check fails; which one, and the message, are
    worked out on the failing rows only. ``rows`` itself is never copied.
    """
    steps = _row_checks()
    fails = rows.select(pl.any_horizontal([cond.fill_null(False) for cond, _, _ in steps])).to_series()
    bad = rows.filter(fails).with_columns(
        error_code=_first_match([(c, pl.lit(code)) for c, code, _ in steps]),
        detail=_first_match([(c, d) for c, _, d in steps]),
    )
    return fails, bad


def validate_postings(raw: pl.DataFrame, accounts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(postings, quarantine) from raw source rows (``SOURCE_SCHEMA``) and the accounts table.

    Every distinct row ends up in exactly one of the two frames; identical re-reads
    (same content, whatever the timestamp's spelling) collapse into one.

    Memory: the rows are never copied whole on the way. Each rule narrows a boolean
    ``_good`` column (and quarantines the rows it refuses, a few at most); the accepted
    postings are gathered once, already in entry order, at the end. At 6M postings a
    full-width copy is ~1 GB, and the step-by-step filters held two or three at once.
    """
    acc, ambiguous = normalise_accounts(accounts)
    rows = _conform(raw, SOURCE_SCHEMA).with_columns(posted_at=parse_utc_timestamp(pl.col("posted_at_text")))

    # Re-reads. A row's content is what it says, not how: a re-read that only spells
    # the timestamp differently is the same posting. Only rows whose posting_id occurs
    # more than once can be re-reads, so the (wide) distinct runs on those alone; with
    # no repeated posting_id at all (a first read) the rows stay as they are.
    content = [c for c in SOURCE_COLUMNS if c != "posted_at_text"] + ["posted_at", "_posted_at_bad"]
    repeated = frames.repeated(rows, pl.col("posting_id"))
    if repeated.any():
        rows = rows.with_columns(repeated.alias("_repeated"))
        rows = pl.concat(
            [
                rows.filter(~pl.col("_repeated")).with_columns(
                    _posted_at_bad=pl.lit(None, pl.String), _copies=pl.lit(1, pl.UInt32)
                ),
                rows.filter(pl.col("_repeated"))
                .with_columns(_posted_at_bad=pl.when(pl.col("posted_at").is_null()).then(pl.col("posted_at_text")))
                .unique(subset=content, keep="first")
                .with_columns(_copies=pl.len().over("posting_id").cast(pl.UInt32)),
            ],
            how="vertical",
        ).drop("_repeated", "_posted_at_bad")
    else:
        rows = rows.with_columns(_copies=pl.lit(1, pl.UInt32))
    del repeated

    # The account's tenant, looked up in place (account_id is unique in ``acc``). An
    # expression, not a join: a join would gather every column of every row, and a
    # column built apart (one chunk) would make the next step re-chunk the whole frame.
    rows = rows.with_columns(
        _acc_tenant=pl.col("account_id").replace_strict(
            acc["account_id"], acc["tenant_id"], default=None, return_dtype=pl.String
        ),
        _acc_ambiguous=pl.col("account_id").is_in(ambiguous["account_id"].implode()),
    )
    fails, bad = _row_verdicts(rows)
    good = pl.col("_good")
    rows = rows.with_columns((~fails).alias("_good"))
    del fails

    # A posting_id read with several contents: no copy wins (the copies that failed a
    # row check keep that code). A valid posting_id is required to get this far.
    conflict = rows.filter(good & (pl.col("_copies") > 1)).drop("_good").with_columns(
        error_code=pl.lit(errors.POSTING_CONFLICT),
        detail=pl.format("posting_id {} was read with {} different contents; no copy wins", "posting_id", "_copies"),
    )
    rows = rows.with_columns(_good=good & (pl.col("_copies") == 1))
    bad = pl.concat([bad, conflict], how="vertical")

    # A journal with a quarantined posting no longer balances: quarantine the rest of it.
    # each posting once: its conflicting copies are several quarantined rows of one posting
    taint = (
        bad.filter(pl.col("journal_id").is_not_null())
        .unique(subset=["journal_id", "posting_id", "error_code"])
        .sort("posting_id", "error_code", nulls_last=True)
        .group_by("journal_id", maintain_order=True)
        .agg(
            pl.col("posting_id").n_unique().alias("_n"),
            pl.format("{} ({})", pl.col("posting_id").fill_null("?"), "error_code").head(3).str.join(", ").alias("_why"),
        )
    )
    in_taint = pl.col("journal_id").is_in(taint["journal_id"].implode())
    tainted = (
        rows.filter(good & in_taint)
        .drop("_good")
        .join(taint, on="journal_id", how="left", maintain_order="left")
        .with_columns(
            error_code=pl.lit(errors.JOURNAL_UNBALANCED),
            detail=pl.format("journal {} lost {} posting(s) to quarantine: {}; it no longer balances", "journal_id", "_n", "_why"),
        )
        .drop("_n", "_why")
    )
    rows = rows.with_columns(_good=good & ~in_taint.fill_null(False))
    refused = pl.concat([bad, tainted], how="vertical")
    del bad, conflict, tainted

    # Journals (per tenant) whose remaining postings do not sum to zero per currency.
    amount = pl.col("amount_minor").str.to_integer(dtype=pl.Int64)
    sums = (
        rows.lazy()
        .filter(good)
        .select("tenant_id", "journal_id", "currency", amount.alias("amount"))
        .group_by("tenant_id", "journal_id", "currency")
        .agg(pl.col("amount").cast(pl.Int128).sum().alias("_sum"))
        .filter(pl.col("_sum") != 0)
        .sort("currency")
        .group_by("tenant_id", "journal_id")
        .agg(pl.format("{} {}", "currency", pl.col("_sum").cast(pl.String)).str.join(", ").alias("_off"))
        .collect()
    )
    if sums.height:
        keys = ["tenant_id", "journal_id"]
        off = pl.struct(keys).is_in(sums.select(pl.struct(keys)).to_series().implode())
        unbalanced = (
            rows.filter(good & off)
            .join(sums, on=keys, how="left", maintain_order="left")
            .with_columns(
                error_code=pl.lit(errors.JOURNAL_UNBALANCED),
                detail=pl.format("journal {} does not sum to zero: {}", "journal_id", "_off"),
            )
        )
        rows = rows.with_columns(_good=good & ~off)
    else:
        unbalanced = rows.clear().with_columns(error_code=pl.lit(None, pl.String), detail=pl.lit(None, pl.String))
    del sums

    # The accepted postings: one gather, in entry order (posting_id is unique among
    # them, so the order is total and no tie is left to the sort). The sort runs on the
    # four key columns alone; the gather goes column by column, each made contiguous
    # first (a gather from one chunk is ~5x cheaper than from the read's many).
    order = (
        rows.select(*ENTRY_ORDER, _row=pl.int_range(pl.len(), dtype=pl.UInt32), _good=good)
        .filter(good)
        .sort(ENTRY_ORDER)
        .get_column("_row")
    )
    postings = pl.DataFrame([rows.get_column(c).rechunk().gather(order) for c in POSTING_COLUMNS])
    postings = postings.with_columns(amount_minor=amount)
    del order
    postings, removed = _split_balance_overflow(postings)
    overflowing = rows.filter(good & pl.col("posting_id").is_in(removed["posting_id"].implode())).with_columns(
        error_code=pl.lit(errors.AMOUNT_OUT_OF_RANGE),
        detail=pl.format("journal {} would carry account {} {} outside signed 64-bit", "journal_id",
                         "account_id", "currency"),
    )
    quarantine = (
        pl.concat(
            [
                refused.select(list(QUARANTINE_SCHEMA)),
                unbalanced.select(list(QUARANTINE_SCHEMA)),
                overflowing.select(list(QUARANTINE_SCHEMA)),
            ],
            how="vertical",
        )
        .select([pl.col(c).cast(t) for c, t in QUARANTINE_SCHEMA.items()])
        .sort(["tenant_id", "posting_id", "error_code", "detail", "posted_at_text", "amount_minor"], nulls_last=True)
    )
    return postings, quarantine


def _split_balance_overflow(postings: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(postings, removed): balanced journals whose amounts would carry an account
    balance outside signed 64-bit are removed (``removed`` holds their postings);
    ``postings`` come in entry order (``ENTRY_ORDER``), which the running sums rely on.

    Each amount fits int64, yet two of them can push a balance past it; summed in Int128,
    the journals touching such an account are quarantined (amount_out_of_range) instead of
    stopping the whole ledger. Removing whole journals keeps every other journal balanced;
    repeat until no running balance leaves the range.
    """
    account = ["tenant_id", "account_id", "currency"]
    removed = postings.clear()
    # No running balance can leave the range when all amounts together stay inside it
    # (the usual case: then no per-account window over every posting at all).
    total = postings.select(pl.col("amount_minor").cast(pl.Int128).abs().sum()).item()
    if total is None or total <= INT64_MAX:
        return postings, removed
    while postings.height:
        running = postings.with_columns(
            # in entry order already (sorted by the caller; anti joins keep the order)
            _run=pl.col("amount_minor").cast(pl.Int128).cum_sum().over(account)
        )
        off = running.filter((pl.col("_run") > INT64_MAX) | (pl.col("_run") < INT64_MIN)).select(account).unique()
        if off.height == 0:
            break
        journals = postings.join(off, on=account, how="semi").select("tenant_id", "journal_id").unique()
        removed = pl.concat([removed, postings.join(journals, on=["tenant_id", "journal_id"], how="semi")])
        postings = postings.join(journals, on=["tenant_id", "journal_id"], how="anti", maintain_order="left")
    return postings, removed


def collapsed_rereads(raw: pl.DataFrame) -> int:
    """How many raw rows are re-reads of another row's content (they collapse into it).

    Computed on its own, not by ``validate_postings``, so that the conservation check
    received = accepted + quarantined + collapsed compares two independent counts.
    Only rows sharing a posting_id can share a content (it holds the posting_id), so the
    distinct count runs on those rows: the same number, without a wide distinct over
    millions of rows that are all different.
    """
    rows = _conform(raw, SOURCE_SCHEMA)
    rows = rows.filter(frames.repeated(rows, pl.col("posting_id")))
    rows = rows.with_columns(posted_at=parse_utc_timestamp(pl.col("posted_at_text")))
    content = rows.select(
        *[c for c in SOURCE_COLUMNS if c != "posted_at_text"],
        "posted_at",
        pl.when(pl.col("posted_at").is_null()).then(pl.col("posted_at_text")).alias("_posted_at_bad"),
    )
    return rows.height - content.unique().height


# ------------------------------------------------------------------------- chain ---


def canonical_text() -> pl.Expr:
    """The hashed text of an entry: ten fields joined by '|' (never in an identifier).

    posting_id|journal_id|intent_id|tenant_id|account_id|currency|amount_minor|
    posted_at (ISO 8601, UTC, microseconds, 'Z')|actor_id|idempotency_key; null -> ''.
    """
    fields = [
        pl.col("posting_id"), pl.col("journal_id"), pl.col("intent_id"), pl.col("tenant_id"),
        pl.col("account_id"), pl.col("currency"), pl.col("amount_minor").cast(pl.String),
        pl.col("posted_at").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),  # UTC: conformed to UTC_US
        pl.col("actor_id"), pl.col("idempotency_key"),
    ]
    return pl.concat_str([f.fill_null("") for f in fields], separator="|")


_CHUNK = 262_144


def _canonical_chunks(frame: pl.DataFrame, text: pl.Expr) -> Iterator[tuple[pl.DataFrame, list[bytes]]]:
    """(chunk, ``text`` of its rows as UTF-8 bytes) in order, the next chunk's built while this one is hashed.

    Polars releases the GIL while it builds strings, so a helper thread (``prefetched``)
    overlaps the vectorised part with the Python hashing loop; memory stays bounded to
    three chunks (the one hashed, one ready, one being built). The texts come out as
    bytes (Polars' own UTF-8), so the loop never encodes.
    """

    def texts(offset: int) -> tuple[pl.DataFrame, list[bytes]]:
        chunk = frame.slice(offset, _CHUNK)
        return chunk, chunk.select(text.cast(pl.Binary)).to_series().to_list()

    yield from prefetched(map(texts, range(0, frame.height, _CHUNK)), 1, name="zentra-chain-text")


#: What precedes a chain segment, per tenant: the last entry before it (its seq,
#: hash and entry-order key). ``chain_entries`` / ``verify_chain`` given these work on
#: a tenant's tail alone, as if the earlier entries were still in front of it.
SEED_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "entry_seq": pl.Int64(),
    "entry_hash": pl.String(),
    "posted_at": UTC_US,
    "journal_id": pl.String(),
    "posting_id": pl.String(),
}


def chain_seeds(entries: pl.DataFrame) -> pl.DataFrame:
    """The last entry of each tenant in ``entries`` (already chained), as ``SEED_SCHEMA``."""
    return (
        _sorted(_utc_posted(entries), ["tenant_id", "entry_seq"])
        .group_by("tenant_id", maintain_order=True)
        .last()
        .select(list(SEED_SCHEMA))
    )


def _seeded(ordered: pl.DataFrame, seeds: pl.DataFrame | None) -> pl.DataFrame:
    """(_rank, _seq0, _start) per row of ``ordered`` (sorted by tenant): its rank within its
    tenant, the seq before the tenant's first row (0 without a seed) and, on that first
    row only, the prev_hash it links to (64 zeros without a seed)."""
    rank = pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("tenant_id")
    if seeds is None or seeds.height == 0:
        return ordered.select(
            _rank=rank, _seq0=pl.lit(0, pl.Int64),
            _start=pl.when(rank == 1).then(pl.lit(ZERO_HASH)),
        )
    joined = ordered.select("tenant_id").join(
        seeds.select("tenant_id", _seq=pl.col("entry_seq"), _hash=pl.col("entry_hash")),
        on="tenant_id", how="left", maintain_order="left", nulls_equal=True,
    )
    return joined.select(
        _rank=rank, _seq0=pl.col("_seq").fill_null(0),
        _start=pl.when(rank == 1).then(pl.col("_hash").fill_null(pl.lit(ZERO_HASH))),
    )


def chain_entries(postings: pl.DataFrame, seeds: pl.DataFrame | None = None) -> pl.DataFrame:
    """ledger_entries: postings in (tenant, posted_at, journal, posting) order, hash-chained.

    ``entry_hash = sha256_hex(prev_hash + '\\n' + canonical_text)``; the first
    ``prev_hash`` of each tenant is 64 zeros and ``entry_seq`` runs 1..n per tenant.
    Canonical text is built vectorised by Polars; only the inherently sequential
    hashing is a Python loop, processed in chunks to bound memory.

    ``seeds`` (``SEED_SCHEMA``, see ``chain_seeds``) continue existing chains: a seeded
    tenant's first posting links to the seed's entry_hash and its seq follows the seed's,
    so chaining only a tenant's tail after its unchanged prefix gives the very rows the
    whole chain would have (the hash of an entry depends on its content and the entry
    before it alone). The caller guarantees that every posting sorts after its seed.
    """
    # validate_postings already returns this order: then no sort (and no copy) at all.
    ordered = _sorted(_conform(postings, POSTING_SCHEMA), ENTRY_ORDER)
    seeded = _seeded(ordered, seeds)
    ordered = ordered.with_columns(entry_seq=seeded["_rank"] + seeded["_seq0"], _start=seeded["_start"])
    del seeded
    sha256 = hashlib.sha256
    prev = ZERO_HASH.encode()
    newline_text = pl.concat_str([pl.lit("\n"), canonical_text()])
    # Each chunk's digests become a Series at once: 6M bytes objects alive together
    # held ~600 MB until the end of the chain.
    entry_hash = pl.Series("entry_hash", [], dtype=pl.String)
    for chunk, texts in _canonical_chunks(ordered, newline_text):
        starts = chunk["_start"].to_list()
        hashes: list[bytes] = []
        append = hashes.append
        for text, start in zip(texts, starts):
            if start is not None:
                prev = start.encode()
            prev = sha256(prev + text).hexdigest().encode()
            append(prev)
        entry_hash.append(pl.Series(hashes, dtype=pl.Binary).cast(pl.String))
        del hashes, texts
    entry_hash = entry_hash.rechunk()  # one chunk, like every other column of ``ordered``
    return ordered.with_columns(entry_hash).with_columns(
        prev_hash=pl.when(pl.col("_start").is_not_null()).then(pl.col("_start")).otherwise(pl.col("entry_hash").shift(1))
    ).select(list(ENTRY_SCHEMA))


def _after_seeds(frame: pl.DataFrame, seeds: pl.DataFrame | None) -> pl.Expr:
    """Per row of ``frame`` (sorted by tenant, seq): False on a tenant's first row when it
    does not sort strictly after that tenant's seed in entry order; True elsewhere."""
    if seeds is None or seeds.height == 0:
        return pl.lit(True)
    keys = ["posted_at", "journal_id", "posting_id"]
    seed = seeds.select("tenant_id", *[pl.col(k).alias(f"_s_{k}") for k in keys])
    if seed.schema["_s_posted_at"] != frame.schema["posted_at"]:
        seed = seed.with_columns(pl.col("_s_posted_at").cast(frame.schema["posted_at"]))
    joined = frame.select("tenant_id", *keys).join(seed, on="tenant_id", how="left", maintain_order="left", nulls_equal=True)
    after: pl.Expr = pl.lit(False)
    for key in reversed(keys):
        col, other = pl.col(key), pl.col(f"_s_{key}")
        after = (col > other) | ((col == other) & after)
    first = (pl.col("tenant_id") != pl.col("tenant_id").shift(1)).fill_null(True)
    verdict = joined.select(
        pl.when(first & pl.col("_s_posting_id").is_not_null()).then(after.fill_null(False)).otherwise(True)
    ).to_series()
    return pl.lit(verdict)


def verify_chain(entries: pl.DataFrame, *, limit: int = 1000, seeds: pl.DataFrame | None = None) -> list[str]:
    """Violations of the hash chain, recomputed from the entries' own content.

    Checks, per tenant in entry_seq order: seq is 1..n, the first prev_hash is zeros,
    each prev_hash is the previous entry_hash, each entry_hash matches its content, and
    the seq order is the (posted_at, journal_id, posting_id) order. Any edited field,
    deleted, inserted or reordered row breaks at least one of them.

    With ``seeds`` (``SEED_SCHEMA``: the entry just before each tenant's first row here)
    ``entries`` is a chain's tail: a seeded tenant's seq continues the seed's, its first
    prev_hash is the seed's entry_hash and its first row sorts after the seed. Verifying
    the prefix up to the seeds and the tail from them checks exactly what one pass over
    the whole chain checks.
    """
    frame = _sorted(_conform(entries, ENTRY_SCHEMA), ["tenant_id", "entry_seq"], nulls_last=True)
    if seeds is None or seeds.height == 0:
        first = (pl.col("tenant_id") != pl.col("tenant_id").shift(1)).fill_null(True)
        expected_prev = pl.when(first).then(pl.lit(ZERO_HASH)).otherwise(pl.col("entry_hash").shift(1))
        expected_seq = pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("tenant_id")
    else:
        seeded = _seeded(frame, seeds)
        expected_prev = pl.when(seeded["_rank"] == 1).then(seeded["_start"]).otherwise(pl.col("entry_hash").shift(1))
        expected_seq = pl.lit(seeded["_rank"] + seeded["_seq0"])
        del seeded
    boundary_ok = _after_seeds(frame, seeds)
    # The seq order must be the entry order: compare with the same rows sorted by it
    # (only posting_id is gathered in that order, not every column). The verdicts are
    # three boolean columns of their own: attached to ``frame`` (read in many chunks)
    # they would make every later step re-chunk all its columns.
    # Rows already strictly in entry order (as chain_entries writes them) need no sort:
    # sorting them again would give the very same order.
    order_ok = (
        pl.lit(True)
        if in_order(frame, ENTRY_ORDER)
        else (pl.col("posting_id") == pl.col("posting_id").sort_by(ENTRY_ORDER, nulls_last=True)).fill_null(False)
    )
    ok = frame.select(
        _seq_ok=(pl.col("entry_seq") == expected_seq).fill_null(False),
        _link_ok=(pl.col("prev_hash") == expected_prev).fill_null(False),
        _order_ok=order_ok & boundary_ok,
    )

    # Content hashes: independent per row (each from its stored prev_hash; the links
    # above tie them together), so vectorised, a morsel at a time (bounded memory).
    hashed = pl.concat_str([pl.col("prev_hash").fill_null(""), pl.lit("\n"), canonical_text()])
    bad_hash = (
        frame.lazy().filter(~(frames.sha256_hex_of(hashed) == pl.col("entry_hash")).fill_null(False))
        .collect(engine="streaming")
    )

    where = pl.format(
        "{}#{} posting {}",
        pl.col("tenant_id").fill_null("?"), pl.col("entry_seq").cast(pl.String).fill_null("?"),
        pl.col("posting_id").fill_null("?"),
    )
    problems = [
        (frame.filter(~ok["_seq_ok"]), "entry_seq out of sequence"),
        (frame.filter(~ok["_link_ok"]), "prev_hash does not link to the previous entry_hash"),
        (frame.filter(~ok["_order_ok"]), "entry out of (posted_at, journal_id, posting_id) order"),
        (bad_hash, "entry_hash does not match the entry's content"),
    ]
    violations = [
        f"{at}: {message}" for rows, message in problems for at in rows.select(where).to_series().to_list()
    ]
    if len(violations) > limit:
        violations = violations[:limit] + [f"(+{len(violations) - limit} more chain violations)"]
    return violations


# ---------------------------------------------------------------------- balances ---


def rebuild_balances(entries: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(ledger_balances, daily_balances) from the entries, exact (Int128) sums.

    daily_balances has one row per account, currency and UTC day with movement:
    closing = opening + movements, and a day's opening is the closing of the
    account's previous day with movement (0 for its first). A sum outside signed
    64-bit becomes null, which the schema invariant then refuses to publish.
    """
    frame = _utc_posted(entries).select(
        "tenant_id", "account_id", "currency", "amount_minor", day=pl.col("posted_at").dt.date()
    )
    balances = (
        frame.group_by(BALANCE_KEY)
        .agg(pl.col("amount_minor").cast(pl.Int128).sum().alias("balance_minor"))
        .with_columns(pl.col("balance_minor").cast(pl.Int64, strict=False))
        .sort(BALANCE_KEY)
    )
    daily = (
        frame.group_by(BALANCE_KEY + ["day"])
        .agg(pl.col("amount_minor").cast(pl.Int128).sum().alias("movements"))
        .sort(BALANCE_KEY + ["day"])
        .with_columns(closing=pl.col("movements").cum_sum().over(BALANCE_KEY))
        .select(
            *BALANCE_KEY, "day",
            opening_minor=(pl.col("closing") - pl.col("movements")).cast(pl.Int64, strict=False),
            movements_minor=pl.col("movements").cast(pl.Int64, strict=False),
            closing_minor=pl.col("closing").cast(pl.Int64, strict=False),
        )
    )
    return balances.select(list(BALANCE_SCHEMA)), daily.select(list(DAILY_SCHEMA))


def closing_balances_at(daily_balances: pl.DataFrame, day: date) -> pl.DataFrame:
    """Every account-currency's closing balance at the end of UTC ``day``.

    Accounts without movement that day carry the closing of their last day with
    movement; accounts with no movement up to that day have no row. Columns:
    tenant_id, account_id, currency, day, last_movement_day, balance_minor (the packet's
    ``closing_balances`` table, named like ``ledger_balances``).
    """
    return (
        daily_balances.filter(pl.col("day") <= day)
        .sort(BALANCE_KEY + ["day"])
        .group_by(BALANCE_KEY, maintain_order=True)
        .agg(pl.col("day").last().alias("last_movement_day"), pl.col("closing_minor").last().alias("balance_minor"))
        .select(*BALANCE_KEY, pl.lit(day, pl.Date).alias("day"), "last_movement_day", "balance_minor")
        .sort(BALANCE_KEY)
    )


# ------------------------------------------------------------ reconciliation views ---


def _typed(entries: pl.DataFrame, accounts: pl.DataFrame) -> pl.DataFrame:
    acc, _ = normalise_accounts(accounts)
    return _utc_posted(entries).join(
        acc.select("account_id", pl.col("type").alias("account_type")), on="account_id", how="left"
    )


INTENT_VIEW_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "intent_id": pl.String(),
    "ledger_amount_minor": pl.Int64(),
    "ledger_currency": pl.String(),
    "journals": pl.Int64(),
    "first_posted_at": UTC_US,
    "released": pl.Boolean(),
    "captured": pl.Boolean(),
    "settled": pl.Boolean(),
    "ledger_fee_minor": pl.Int64(),
}


def intent_ledger_view(entries: pl.DataFrame, accounts: pl.DataFrame) -> pl.DataFrame:
    """One row per (tenant_id, intent_id) with postings: what the ledger says about it.

    first_posted_at follows the input's convention (naive UTC from the warehouse, UTC-aware
    from memory).

    ledger_amount_minor sums the positive postings into `reserved` accounts, counting
    each idempotency_key once (the journal with the lowest journal_id), so a duplicate
    write by the core shows up as a duplicate_journal break, not as a doubled amount.
    ledger_currency is that currency (comma-joined if several, which reconciliation
    then reports). captured: a posting to a `settlement` account; settled: a posting out
    of one (the settle journal pays the merchant and the fees from it); ledger_fee_minor:
    what that journal posted into `fees` (0 when nothing, null with no settle journal);
    released: the reserved account nets to zero for the intent and nothing was captured.
    """
    key = ["tenant_id", "intent_id"]
    typed = _typed(entries, accounts).filter(pl.col("intent_id").is_not_null())
    reserved = pl.col("account_type") == "reserved"
    base = typed.group_by(key).agg(
        pl.col("journal_id").n_unique().cast(pl.Int64).alias("journals"),
        pl.col("posted_at").min().alias("first_posted_at"),
        reserved.any().alias("_has_reserved"),
        pl.col("amount_minor").filter(reserved).cast(pl.Int128).sum().alias("_reserved_net"),
        (pl.col("account_type") == "settlement").any().alias("captured"),
        ((pl.col("account_type") == "settlement") & (pl.col("amount_minor") < 0)).any().alias("settled"),
    )
    # Each idempotency_key counts once: only its lowest journal_id contributes.
    first_journal = (
        typed.filter(pl.col("idempotency_key").is_not_null())
        .group_by(*key, "idempotency_key")
        .agg(pl.col("journal_id").min().alias("_first_journal"))
    )

    def credits_once(into: pl.Expr) -> pl.DataFrame:
        """Positive postings into ``into`` accounts, each idempotency_key's first journal only."""
        return (
            typed.filter(into & (pl.col("amount_minor") > 0))
            .join(first_journal, on=[*key, "idempotency_key"], how="left", nulls_equal=False)
            .filter(pl.col("idempotency_key").is_null() | (pl.col("journal_id") == pl.col("_first_journal")))
        )

    reserve_in = credits_once(reserved)
    # the settle journal's fee (positive postings into `fees`)
    fees = credits_once(pl.col("account_type") == "fees").group_by(key).agg(
        pl.col("amount_minor").cast(pl.Int128).sum().alias("_fee")
    )
    amounts = reserve_in.group_by(key).agg(
        pl.col("amount_minor").cast(pl.Int128).sum().alias("_amount"),
        pl.col("currency").min().alias("_cmin"),
        pl.col("currency").max().alias("_cmax"),
    )
    mixed = amounts.filter(pl.col("_cmin") != pl.col("_cmax")).select(key)
    if mixed.height:  # rare: an intent reserved in several currencies; reconciliation reports it
        joined = (
            reserve_in.join(mixed, on=key, how="semi")
            .group_by(key)
            .agg(pl.col("currency").unique().sort().str.join(",").alias("_joined"))
        )
        amounts = amounts.join(joined, on=key, how="left")
    else:
        amounts = amounts.with_columns(_joined=pl.lit(None, pl.String))
    view = (
        base.join(amounts, on=key, how="left")
        .join(fees, on=key, how="left")
        .with_columns(
            ledger_amount_minor=pl.col("_amount").cast(pl.Int64, strict=False),
            # a settle journal without a posting into fees posted a fee of 0; no settle journal, no fee
            ledger_fee_minor=pl.when(pl.col("settled")).then(pl.col("_fee").fill_null(0)).otherwise(pl.col("_fee"))
            .cast(pl.Int64, strict=False),
            ledger_currency=pl.coalesce("_joined", "_cmin"),
            released=pl.col("_has_reserved") & (pl.col("_reserved_net") == 0) & ~pl.col("captured"),
        )
        .select(list(INTENT_VIEW_SCHEMA))
        .sort(key)
    )
    return _like_input(view, entries, "first_posted_at")


DUPLICATE_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "intent_id": pl.String(),
    "idempotency_key": pl.String(),
    "journal_ids": pl.String(),
    "journals": pl.Int64(),
    "amount_minor": pl.Int64(),
    "currency": pl.String(),
}


def duplicate_journals(entries: pl.DataFrame) -> pl.DataFrame:
    """idempotency_keys carried by more than one journal_id (a duplicate write by the core).

    Both journals stay in the ledger as posted; this is the break list. amount_minor is
    the positive side of the duplicated (lowest journal_id) journal.
    """
    # only the columns used: filtering whole entries copied every column (~2 GB at 6M)
    keyed = entries.select(
        "tenant_id", "idempotency_key", "journal_id", "intent_id", "amount_minor", "currency"
    ).filter(pl.col("idempotency_key").is_not_null())
    # Only keys with several journals are listed: count the journals per key first and
    # build the sorted journal lists for those keys alone (at 6M entries nearly every
    # key has one journal, and listing all of them cost ~13 CPU s).
    several = (
        keyed.group_by("tenant_id", "idempotency_key")
        .agg(pl.col("journal_id").n_unique().alias("_n"))
        .filter(pl.col("_n") > 1)
        .drop("_n")
    )
    keyed = keyed.join(several, on=["tenant_id", "idempotency_key"], how="semi", nulls_equal=True)
    del several
    per_key = keyed.group_by("tenant_id", "idempotency_key").agg(
        pl.col("journal_id").unique().sort().alias("_journals"),
        pl.col("intent_id").drop_nulls().min().alias("intent_id"),
    ).filter(pl.col("_journals").list.len() > 1)
    first = per_key.with_columns(journal_id=pl.col("_journals").list.first())
    positive = (
        keyed.filter(pl.col("amount_minor") > 0)
        .join(first.select("tenant_id", "idempotency_key", "journal_id"), on=["tenant_id", "idempotency_key", "journal_id"], how="inner")
        .group_by("tenant_id", "idempotency_key")
        .agg(
            pl.col("amount_minor").cast(pl.Int128).sum().cast(pl.Int64, strict=False).alias("amount_minor"),
            pl.col("currency").unique().sort().str.join(",").alias("currency"),
        )
    )
    return (
        first.join(positive, on=["tenant_id", "idempotency_key"], how="left")
        .with_columns(
            journal_ids=pl.col("_journals").list.join(","),
            journals=pl.col("_journals").list.len().cast(pl.Int64),
        )
        .select(list(DUPLICATE_SCHEMA))
        .sort("tenant_id", "idempotency_key")
    )


# ---------------------------------------------------------------------- findings ---


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def ledger_findings(
    entries: pl.DataFrame,
    accounts: pl.DataFrame,
    daily_balances: pl.DataFrame,
    as_of: datetime,
    clearing_window: timedelta = timedelta(days=3),
) -> pl.DataFrame:
    """Business findings as of ``as_of`` (not blocking: the ledger is what was posted).

    - ``negative_balance``: an account that may not go negative closed a UTC day below
      zero. amount_minor = its lowest closing; since = the first such day;
      overdue = still negative at as_of.
    - ``clearing_not_zero``: per intent and clearing account (reserved, settlement) and
      currency, the postings do not net to zero. since = the first posting;
      age_days = whole days to as_of; overdue = older than the clearing window.
    """
    as_of = _as_utc(as_of)
    as_of_lit = pl.lit(as_of, dtype=UTC_US)
    acc, _ = normalise_accounts(accounts)
    strict = acc.filter(~pl.col("allow_negative").fill_null(False)).select("account_id", "tenant_id")

    daily = daily_balances.filter(pl.col("day") <= as_of.date()).join(strict, on=["tenant_id", "account_id"], how="semi")
    negative = (
        daily.sort(BALANCE_KEY + ["day"])
        .group_by(BALANCE_KEY, maintain_order=True)
        .agg(
            pl.col("day").filter(pl.col("closing_minor") < 0).first().alias("_first_day"),
            pl.col("closing_minor").min().alias("amount_minor"),
            pl.col("closing_minor").last().alias("_current"),
        )
        .filter(pl.col("_first_day").is_not_null())
        .with_columns(since=pl.col("_first_day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        .with_columns(
            finding_type=pl.lit("negative_balance"),
            intent_id=pl.lit(None, pl.String),
            age_days=(as_of_lit - pl.col("since")).dt.total_days(),
            overdue=pl.col("_current") < 0,
            detail=pl.format(
                "account may not go negative: closed below zero from {}; lowest closing {}; closing at as_of {}",
                pl.col("_first_day").cast(pl.String), pl.col("amount_minor").cast(pl.String), pl.col("_current").cast(pl.String),
            ),
        )
    )

    window_days = clearing_window / timedelta(days=1)
    # only the columns used: the join gathers every column it is given (~2 GB at 6M entries)
    used = entries.select("tenant_id", "intent_id", "account_id", "currency", "amount_minor", "posted_at")
    typed = _typed(used, accounts).filter(
        pl.col("account_type").is_in(list(CLEARING_TYPES)) & (pl.col("posted_at") <= as_of_lit)
    )
    del used
    clearing = (
        typed.group_by("tenant_id", "intent_id", "account_id", "currency")
        .agg(
            pl.col("amount_minor").cast(pl.Int128).sum().alias("_net"),
            pl.col("posted_at").min().alias("since"),
            pl.col("account_type").first().alias("_type"),
        )
        .filter(pl.col("_net") != 0)
        .with_columns(
            finding_type=pl.lit("clearing_not_zero"),
            amount_minor=pl.col("_net").cast(pl.Int64, strict=False),
            age_days=(as_of_lit - pl.col("since")).dt.total_days(),
        )
        .with_columns(
            overdue=(as_of_lit - pl.col("since")) > pl.duration(microseconds=int(clearing_window / timedelta(microseconds=1))),
            detail=pl.format(
                "{} account holds {} for intent {} since {} ({} days; window {} days)",
                "_type", pl.col("_net").cast(pl.String), pl.col("intent_id").fill_null("(none)"),
                pl.col("since").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"), pl.col("age_days").cast(pl.String),
                pl.lit(f"{window_days:g}"),
            ),
        )
    )
    columns = list(FINDING_SCHEMA)
    return (
        pl.concat(
            [
                negative.select([pl.col(c).cast(t) for c, t in FINDING_SCHEMA.items()]),
                clearing.select([pl.col(c).cast(t) for c, t in FINDING_SCHEMA.items()]),
            ],
            how="vertical",
        )
        .sort("tenant_id", "finding_type", "account_id", "intent_id", "currency", nulls_last=True)
        .select(columns)
    )


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)
