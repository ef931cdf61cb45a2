"""Convergence of at-least-once, unordered callbacks into provider_state (contract 2.1).

Unit tests drive ``converge`` with tiny hand-built ``callback_checked`` frames; the
properties prove that any permutation, duplication and split across files of one
callback stream gives byte-identical state: first on verdict rows (fast, many
examples), then through landing files, archive and the verification SQL end to end.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.helpers.callbacks import (
    BETA_SECRET,
    GAMMA_SECRET,
    T0,
    TS0,
    flat_body,
    make_callback,
    nested_body,
    run_lines,
    write_landing,
    write_secrets,
)
from zentra_pipelines.adapters.config import load_webhook_keys
from zentra_pipelines.adapters.warehouse import Warehouse
from zentra_pipelines.domain import errors
from zentra_pipelines.domain.callbacks import QUARANTINE_COLUMNS, STATE_COLUMNS, converge
from zentra_pipelines.ingest import archive_landing, ensure_archive, verify_new_callbacks

EXAMPLES = int(os.environ.get("ZENTRA_HYPOTHESIS_EXAMPLES", "500"))
E2E_EXAMPLES = int(os.environ.get("ZENTRA_HYPOTHESIS_E2E_EXAMPLES", "50"))

# ------------------------------------------------------- hand-built frames ---

CHECKED_SCHEMA = {
    "source_file": pl.String, "file_sha256": pl.String, "line_no": pl.Int64, "tenant_id": pl.String,
    "provider": pl.String, "received_at": pl.Datetime("us"), "webhook_id": pl.String,
    "webhook_timestamp": pl.Int64, "api_version": pl.String, "event_id": pl.String, "type": pl.String,
    "intent_id": pl.String, "provider_ref": pl.String, "amount_minor": pl.Int64, "currency": pl.String,
    "sequence": pl.Int64, "occurred_at": pl.Datetime("us"), "error_code": pl.String, "detail": pl.String,
    "content_hash": pl.String,
}
R0 = datetime(2026, 11, 24, 10, 0, 0)


def row(line_no: int, event_id: str = "evt_1", *, sequence: int = 1, amount: int = 100, ref: str = "pr_1",
        type: str = "payment.captured", webhook_id: str | None = None, tenant: str = "t_alpha",
        received: int = 0, error: str | None = None, file: str = "callbacks/a.jsonl") -> dict:
    """One callback_checked row; content_hash over the canonical fields as the SQL does."""
    occurred = R0 - timedelta(seconds=5)
    if error:
        return {"source_file": file, "file_sha256": "sha_" + file, "line_no": line_no, "tenant_id": tenant,
                "provider": "acme_pay", "received_at": R0 + timedelta(seconds=received),
                "error_code": error, "detail": f"detail for {error}"}
    canonical = "|".join(map(str, (event_id, type, "int_1", ref, amount, "EUR", sequence, occurred.isoformat())))
    return {
        "source_file": file, "file_sha256": "sha_" + file, "line_no": line_no, "tenant_id": tenant,
        "provider": "acme_pay", "received_at": R0 + timedelta(seconds=received),
        "webhook_id": webhook_id or f"msg_{event_id}", "webhook_timestamp": TS0, "api_version": "2026-01-01",
        "event_id": event_id, "type": type, "intent_id": "int_1", "provider_ref": ref, "amount_minor": amount,
        "currency": "EUR", "sequence": sequence, "occurred_at": occurred, "error_code": None, "detail": None,
        "content_hash": hashlib.sha256(canonical.encode()).hexdigest(),
    }


def frame(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame([{c: r.get(c) for c in CHECKED_SCHEMA} for r in rows], schema=CHECKED_SCHEMA)


def state_of(*events: tuple) -> pl.DataFrame:
    """Expected provider_state rows: (ref, event_id, type, amount, sequence, received_s, events_seen)."""
    return pl.DataFrame(
        [
            {"tenant_id": "t_alpha", "provider": "acme_pay", "provider_ref": ref, "intent_id": "int_1",
             "type": typ, "amount_minor": amount, "currency": "EUR", "sequence": seq, "event_id": eid,
             "occurred_at": R0 - timedelta(seconds=5), "received_at": R0 + timedelta(seconds=rec),
             "events_seen": seen}
            for ref, eid, typ, amount, seq, rec, seen in events
        ],
        schema={**{c: CHECKED_SCHEMA[c] for c in STATE_COLUMNS if c != "events_seen"}, "events_seen": pl.UInt32},
    ).select(STATE_COLUMNS)


def test_duplicate_webhook_id_collapses():
    checked = frame(row(1, webhook_id="msg_x", received=0), row(2, webhook_id="msg_x", received=40),
                    row(3, webhook_id="msg_x", received=-2))
    result = converge(checked)
    assert_frame_equal(result.state, state_of(("pr_1", "evt_1", "payment.captured", 100, 1, -2, 1)))
    assert result.quarantine.height == 0 and result.conflicts.height == 0
    assert result.events["copies"].to_list() == [3, 3, 3]
    assert result.events["first_received_at"].unique().to_list() == [R0 - timedelta(seconds=2)]


def test_same_event_id_under_a_new_webhook_id_collapses():
    checked = frame(row(1, webhook_id="msg_first", received=10), row(2, webhook_id="msg_retry", received=5))
    result = converge(checked)
    assert_frame_equal(result.state, state_of(("pr_1", "evt_1", "payment.captured", 100, 1, 5, 1)))
    assert result.quarantine.height == 0 and result.conflicts.height == 0
    assert result.events.height == 2  # every accepted line is kept, with its copy count
    assert result.events["copies"].to_list() == [2, 2]


def test_highest_sequence_wins_when_it_arrives_first():
    checked = frame(
        row(1, "evt_3", sequence=3, type="payment.settled", amount=90, received=0),
        row(2, "evt_1", sequence=1, type="payment.authorized", received=10),
        row(3, "evt_2", sequence=2, received=20),
    )
    expected = state_of(("pr_1", "evt_3", "payment.settled", 90, 3, 0, 3))
    assert_frame_equal(converge(checked).state, expected)
    assert_frame_equal(converge(checked.reverse()).state, expected)


def test_equal_sequences_tie_break_by_event_id_not_arrival():
    a = row(1, "evt_b", sequence=5, amount=1)
    b = row(2, "evt_a", sequence=5, amount=2)
    expected = state_of(("pr_1", "evt_a", "payment.captured", 2, 5, 0, 2))
    assert_frame_equal(converge(frame(a, b)).state, expected)
    assert_frame_equal(converge(frame(b, a)).state, expected)


def test_conflict_quarantines_both_copies_and_state_comes_from_the_others():
    checked = frame(
        row(1, "evt_1", sequence=1, received=0),
        row(2, "evt_9", sequence=9, amount=500, received=1),
        row(3, "evt_9", sequence=9, amount=501, received=2),
        row(4, "evt_2", sequence=2, amount=200, received=3),
    )
    for attempt in (checked, checked.reverse()):
        result = converge(attempt)
        assert_frame_equal(result.state, state_of(("pr_1", "evt_2", "payment.captured", 200, 2, 3, 2)))
        assert result.quarantine.select("line_no", "error_code").to_dicts() == [
            {"line_no": 2, "error_code": errors.EVENT_CONFLICT},
            {"line_no": 3, "error_code": errors.EVENT_CONFLICT},
        ]
        assert result.quarantine.columns == QUARANTINE_COLUMNS
        assert sorted(result.events["event_id"].to_list()) == ["evt_1", "evt_2"]
        assert result.conflicts.select("event_id", "contents", "copies").to_dicts() == [
            {"event_id": "evt_9", "contents": 2, "copies": 2}]


def test_conflicting_copies_naming_two_intents_are_reported_against_both():
    other = row(2, "evt_9", ref="pr_2", amount=7, received=1) | {"intent_id": "int_2", "content_hash": "other"}
    checked = frame(row(1, "evt_9", received=0), other)
    for attempt in (checked, checked.reverse()):
        result = converge(attempt)
        assert result.conflicts.select("event_id", "intent_id", "provider_ref", "contents", "copies").to_dicts() == [
            {"event_id": "evt_9", "intent_id": "int_1", "provider_ref": "pr_1", "contents": 2, "copies": 1},
            {"event_id": "evt_9", "intent_id": "int_2", "provider_ref": "pr_2", "contents": 2, "copies": 1},
        ]


def test_only_conflicting_events_leave_a_ref_without_state():
    result = converge(frame(row(1, "evt_1", amount=1), row(2, "evt_1", amount=2), row(3, "evt_1", amount=1)))
    assert result.state.height == 0 and result.events.height == 0
    assert result.quarantine["error_code"].to_list() == [errors.EVENT_CONFLICT] * 3


def test_quarantined_lines_pass_through_with_their_code():
    checked = frame(row(1, "evt_1"), row(2, error=errors.REPLAY_WINDOW), row(3, error=errors.AMOUNT_FLOAT, tenant=None))
    result = converge(checked)
    assert result.quarantine.select("line_no", "tenant_id", "error_code").rows() == [
        (2, "t_alpha", errors.REPLAY_WINDOW), (3, None, errors.AMOUNT_FLOAT)]
    assert result.events.height + result.quarantine.height == checked.height


def test_state_is_one_row_per_tenant_provider_ref():
    checked = frame(
        row(1, "evt_1", ref="pr_1"), row(2, "evt_2", ref="pr_2", sequence=2),
        row(3, "evt_1", ref="pr_1", tenant="t_beta", amount=7),  # same ids, other tenant: no conflict
    )
    state = converge(checked).state
    assert state.select("tenant_id", "provider_ref", "amount_minor").rows() == [
        ("t_alpha", "pr_1", 100), ("t_alpha", "pr_2", 100), ("t_beta", "pr_1", 7)]


def test_empty_input_converges_to_empty_frames():
    result = converge(frame())
    assert result.state.columns == STATE_COLUMNS
    assert (result.state.height, result.events.height, result.quarantine.height, result.conflicts.height) == (0, 0, 0, 0)


# ------------------------------------------------------------- the stream ---

def _pool() -> list[str]:
    """A callback stream with several tenants, refs, sequences, duplicate deliveries,
    redeliveries under new webhook-ids, both api versions, a sequence tie, a conflict
    and a few lines that fail verification."""
    lines: list[str] = []
    for tenant, secret in (("t_alpha", None), ("t_beta", BETA_SECRET)):
        kw = {"tenant": tenant, **({"secret": secret} if secret else {})}
        for r in range(3):
            ref, intent = f"pr_{r}", f"int_{r}"
            for seq in (1, 2, 3):
                eid = f"evt_{r}_{seq}"
                typ = ("payment.authorized", "payment.captured", "payment.settled")[seq - 1]
                flat = flat_body(event_id=eid, provider_ref=ref, intent_id=intent, sequence=seq * 10,
                                 amount_minor=1000 * (r + 1) + seq, type=typ)
                nested = nested_body(event_id=eid, sequence=seq * 10, type=typ,
                                     obj={"provider_ref": ref, "intent_id": intent},
                                     amount={"value": 1000 * (r + 1) + seq, "currency": "EUR"})
                ts = TS0 + 60 * seq + r
                lines.append(make_callback(flat, ts=ts, **kw))
                if (r + seq) % 2 == 0:  # same webhook-id delivered again, later
                    lines.append(make_callback(flat, ts=ts, received_at=datetime.fromtimestamp(ts + 200, T0.tzinfo), **kw))
                if (r + seq) % 3 == 0:  # same event, new webhook-id, other api version
                    lines.append(make_callback(nested, ts=ts + 30, webhook_id=f"msg_re_{tenant}_{eid}", **kw))
    tie = flat_body(event_id="evt_0_tie", provider_ref="pr_0", intent_id="int_0", sequence=30, amount_minor=7)
    lines.append(make_callback(tie, ts=TS0 + 500))
    for amount, wid in ((111, "msg_conf_a"), (222, "msg_conf_b")):
        body = flat_body(event_id="evt_1_conf", provider_ref="pr_1", intent_id="int_1", sequence=99,
                         amount_minor=amount, type="payment.refunded")
        lines.append(make_callback(body, ts=TS0 + 700, webhook_id=wid))
    lines.append(make_callback(flat_body(event_id="evt_forged", provider_ref="pr_2", sequence=10**6),
                               sign_with=GAMMA_SECRET))
    lines.append(make_callback(flat_body(event_id="evt_float", provider_ref="pr_2", amount_minor=1.5)))
    lines.append(make_callback(flat_body(event_id="evt_stale", provider_ref="pr_2", sequence=10**6),
                               ts=TS0, received_at=T0 + timedelta(hours=2)))
    return lines


POOL = _pool()


@pytest.fixture(scope="module")
def pool_checked(tmp_path_factory) -> pl.DataFrame:
    """The verification SQL's verdict for every pool line (line_no = pool index + 1)."""
    checked, _ = run_lines(tmp_path_factory.mktemp("pool"), POOL)
    assert checked.height == len(POOL)
    return checked.sort("line_no")


def test_pool_is_a_rich_stream(pool_checked):
    result = converge(pool_checked)
    assert result.conflicts["event_id"].to_list() == ["evt_1_conf"]
    assert sorted(result.quarantine["error_code"].to_list()) == sorted(
        [errors.EVENT_CONFLICT] * 2 + [errors.SIGNATURE_MISMATCH, errors.AMOUNT_FLOAT, errors.REPLAY_WINDOW])
    assert result.state.height == 6  # 2 tenants x 3 refs
    assert result.events.height > result.events.select("tenant_id", "event_id").n_unique()  # duplicates exist
    assert set(pool_checked["api_version"].drop_nulls()) == {"2026-01-01", "2026-06-01"}
    alpha_pr0 = result.state.filter(tenant_id="t_alpha", provider_ref="pr_0").row(0, named=True)
    assert (alpha_pr0["event_id"], alpha_pr0["sequence"]) == ("evt_0_3", 30)  # tie: smallest event_id


@st.composite
def deliveries(draw, size: int):
    """(lines picked once each in canonical order, the same lines permuted, duplicated and split)."""
    picks = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=size, unique=True))
    extra = draw(st.lists(st.sampled_from(picks), max_size=2 * len(picks)))
    order = draw(st.permutations(picks + extra))
    files = draw(st.integers(1, 4))
    assign = draw(st.lists(st.integers(0, files - 1), min_size=len(order), max_size=len(order)))
    split: dict[int, list[int]] = {}
    for index, f in zip(order, assign, strict=True):
        split.setdefault(f, []).append(index)
    return sorted(picks), split


def _as_files(pool: pl.DataFrame, split: dict[int, list[int]]) -> pl.DataFrame:
    """Verdict rows re-homed as if the lines had landed in these files, in this order."""
    parts = []
    for f, indexes in split.items():
        sha = hashlib.sha256(repr(indexes).encode()).hexdigest()
        parts.append(
            pool[indexes].with_columns(
                source_file=pl.lit(f"callbacks/part-{f}.jsonl"),
                file_sha256=pl.lit(sha),
                line_no=pl.int_range(1, len(indexes) + 1, dtype=pl.Int64),
            )
        )
    return pl.concat(parts)


def _parquet(df: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.rechunk().write_parquet(buffer)
    return buffer.getvalue()


def _same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    if not got.equals(want):  # fast path; assert_frame_equal only to explain a difference
        assert_frame_equal(got, want)


def _assert_same_outcome(got, want) -> None:
    assert _parquet(got.state) == _parquet(want.state)
    assert got.state.to_dicts() == want.state.to_dicts()
    # `copies` counts delivered lines, which duplication legitimately changes
    _same(got.conflicts.drop("copies"), want.conflicts.drop("copies"))
    key = ["tenant_id", "provider", "event_id", "content_hash", "first_received_at"]
    _same(got.events.select(key).unique().sort(key), want.events.select(key).unique().sort(key))
    q = ["tenant_id", "error_code", "received_at", "detail"]
    _same(got.quarantine.select(q).unique().sort(q, nulls_last=True),
          want.quarantine.select(q).unique().sort(q, nulls_last=True))


@settings(max_examples=EXAMPLES, deadline=None)
@given(stream=deliveries(len(POOL)))
def test_any_order_duplication_and_split_gives_the_same_state(pool_checked, stream):
    picks, split = stream
    canonical = converge(pool_checked[picks])
    shuffled = converge(_as_files(pool_checked, split))
    _assert_same_outcome(shuffled, canonical)
    lines = sum(len(v) for v in split.values())
    assert shuffled.events.height + shuffled.quarantine.height == lines  # nothing vanishes


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """One real warehouse file for every end-to-end example; each example starts from an empty archive."""
    root = tmp_path_factory.mktemp("e2e")
    keys = load_webhook_keys(write_secrets(root))
    with Warehouse(root / "home").connect() as con:
        ensure_archive(con)
        yield con, keys


@settings(max_examples=E2E_EXAMPLES, deadline=None)
@given(stream=deliveries(len(POOL)))
def test_end_to_end_files_and_sql_give_the_same_state(pool_checked, warehouse, stream):
    picks, split = stream
    con, keys = warehouse
    for table in ("landing_files", "landing_lines", "callback_checked"):
        con.execute(f"DELETE FROM {table}")
    files = {f"part-{f}.jsonl": [POOL[i] for i in indexes] for f, indexes in split.items()}
    with tempfile.TemporaryDirectory() as tmp:
        archived = archive_landing(con, write_landing(Path(tmp), files))
    verified = verify_new_callbacks(con, keys)
    checked = con.sql("SELECT * FROM callback_checked").pl()
    result = converge(checked)
    _assert_same_outcome(result, converge(pool_checked[picks]))
    # files with identical bytes are archived once; every archived line is judged and accounted for
    assert archived.new_files + archived.skipped_files == len(files)
    assert verified == archived.new_lines == checked.height
    assert result.events.height + result.quarantine.height == checked.height


def test_state_equals_the_over_and_unique_reference_across_tenants_and_refs():
    """The run-length state (grouped by provider_ref first) is the old sort + over + unique."""
    checked = frame(
        row(1, "evt_1", ref="pr_9", sequence=1), row(2, "evt_2", ref="pr_9", sequence=3),
        row(3, "evt_3", ref="pr_1", sequence=2), row(4, "evt_4", ref="pr_1", sequence=2),
        row(5, "evt_1", ref="pr_0", tenant="t_beta", amount=7), row(6, "evt_5", ref="pr_9", tenant="t_beta"),
        row(7, "evt_2", ref="pr_9", sequence=3, received=5),  # a copy
    )
    events = converge(checked).events
    unique_events = events.group_by("tenant_id", "provider", "event_id").agg(
        pl.col("provider_ref", "intent_id", "type", "amount_minor", "currency", "sequence", "occurred_at").first(),
        pl.col("received_at").min(),
    )
    reference = (
        unique_events.sort(["tenant_id", "provider", "provider_ref", "sequence", "event_id"],
                           descending=[False, False, False, True, False])
        .with_columns(pl.len().over("tenant_id", "provider", "provider_ref").alias("events_seen"))
        .unique(subset=["tenant_id", "provider", "provider_ref"], keep="first", maintain_order=True)
        .select(STATE_COLUMNS)
    )
    state = converge(checked).state
    assert_frame_equal(state, reference)
    assert state.select("tenant_id", "provider_ref", "event_id", "events_seen").rows() == [
        ("t_alpha", "pr_1", "evt_3", 2), ("t_alpha", "pr_9", "evt_2", 2),
        ("t_beta", "pr_0", "evt_1", 1), ("t_beta", "pr_9", "evt_5", 1)]
