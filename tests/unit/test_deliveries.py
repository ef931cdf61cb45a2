"""Outbound deliveries (contract 2.5): SQL judging, duplicates, health, retries, replay."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from zentra_pipelines import events_stage, intake
from zentra_pipelines.adapters import landing
from zentra_pipelines.adapters.sql_files import load_sql
from zentra_pipelines.domain import deliveries as dv
from zentra_pipelines.domain import errors
from zentra_pipelines.domain.dedupe import split_conflicts

T0 = datetime(2026, 11, 24, 10, 0, 0)
GOOD = {
    "delivery_id": "dlv_001", "event_id": "evt_001", "tenant_id": "t_alpha",
    "endpoint": "https://hooks.alpha.example/zentra", "attempt": 1, "attempted_at": "2026-11-24T10:00:00Z",
    "status_code": 200, "error": None, "latency_ms": 120,
}


# ------------------------------------------------------------------- helpers ---


def landing_con(files: dict[str, bytes]) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse whose archive holds these deliveries files, framed for real."""
    con = duckdb.connect()
    con.execute(load_sql("create_archive"))
    for name, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        file = landing.LandingFile("deliveries", f"deliveries/{name}", Path("unused"), sha, len(data))
        frame = landing.frame_bytes(file, data).with_columns(source=pl.lit("deliveries"))
        con.register("frame", frame)
        con.execute(
            "INSERT INTO landing_lines SELECT source_file, file_sha256, line_no, text, raw, frame_error, "
            "frame_detail, source FROM frame"
        )
        con.unregister("frame")
    return con


def jsonl(*records: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode()) + b"\n"
                    for r in records)


def parse(*records: object) -> pl.DataFrame:
    return intake.parse_source(landing_con({"a.jsonl": jsonl(*records)}), "deliveries", "parse_deliveries",
                               "delivery_lines")


def code_of(record: object) -> str | None:
    parsed = parse(record)
    assert parsed.height == 1
    return parsed["error_code"][0]


def good(**changes: object) -> dict:
    out = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            del out[key]
        else:
            out[key] = value
    return out


def attempts(rows: list[tuple]) -> pl.DataFrame:
    """Accepted deliveries from (endpoint, event_id, attempt, seconds after T0, status, error, latency)."""
    return pl.DataFrame(
        [
            ("t_alpha", f"dlv_{i:03d}", event, endpoint, attempt, T0 + timedelta(seconds=s), status, error,
             latency, 1, f"h{i}")
            for i, (endpoint, event, attempt, s, status, error, latency) in enumerate(rows)
        ],
        schema=dv.DELIVERY_SCHEMA,
        orient="row",
    )


# ----------------------------------------------------------------- SQL: accepted ---


def test_valid_line_is_typed_exactly():
    parsed = parse(GOOD).drop("content_hash")
    expected = pl.DataFrame(
        {
            "source_file": ["deliveries/a.jsonl"], "file_sha256": [hashlib.sha256(jsonl(GOOD)).hexdigest()],
            "line_no": [1], "tenant_id": ["t_alpha"], "delivery_id": ["dlv_001"], "event_id": ["evt_001"],
            "endpoint": ["https://hooks.alpha.example/zentra"], "attempt": [1], "attempted_at": [T0],
            "status_code": [200], "error": [None], "latency_ms": [120], "error_code": [None], "detail": [None],
        },
        schema=parsed.schema,
    )
    assert_frame_equal(parsed, expected)


def test_connection_failure_has_null_status_and_an_error():
    parsed = parse(good(status_code=None, error="connect timeout", latency_ms=None))
    assert parsed.select("status_code", "error", "latency_ms", "error_code").row(0) == (
        None, "connect timeout", None, None
    )


def test_absent_optional_keys_read_as_null():
    parsed = parse(good(status_code=..., error=..., latency_ms=...))
    assert parsed.select("status_code", "error", "latency_ms", "error_code").row(0) == (None, None, None, None)


def test_offset_timestamp_is_converted_to_utc():
    parsed = parse(good(attempted_at="2026-11-24T11:00:00.5+01:00"))
    assert parsed["attempted_at"].to_list() == [T0 + timedelta(milliseconds=500)]


def test_endpoint_of_2048_characters_is_accepted():
    endpoint = "https://a.example/" + "p" * (2048 - len("https://a.example/"))
    assert code_of(good(endpoint=endpoint)) is None


def test_content_hash_distinguishes_null_from_text():
    a = parse(good(status_code=None, error="500"))["content_hash"][0]
    b = parse(good(status_code=500, error=None))["content_hash"][0]
    assert a is not None and b is not None and a != b


# -------------------------------------------------------------- SQL: framing ---


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ('{"delivery_id": "dlv_001", "event_id": "ev', errors.MALFORMED_JSON),
        (json.dumps(GOOD) + " trailing", errors.MALFORMED_JSON),
        ("", errors.MALFORMED_JSON),
        ('{"delivery_id": "\\ud800"}', errors.MALFORMED_JSON),
        ("[1, 2]", errors.NOT_AN_OBJECT),
        ('"just a string"', errors.NOT_AN_OBJECT),
        ("null", errors.NOT_AN_OBJECT),
        (json.dumps(GOOD)[:-1] + ', "attempt": 2}', errors.DUPLICATE_JSON_KEY),
    ],
)
def test_line_level_codes(line, code):
    assert code_of(line) == code


def test_keys_in_another_order_are_checked_for_duplicates_too():
    """The SQL skips the duplicate-key count only for the contract's exact key list."""
    reordered = dict(reversed(list(GOOD.items())))
    assert code_of(reordered) is None
    assert code_of(json.dumps(reordered)[:-1] + ', "delivery_id": "dlv_002"}') == errors.DUPLICATE_JSON_KEY
    assert code_of(good(extra="x")) is None


def test_every_bad_identifier_is_named_in_order():
    parsed = parse(good(delivery_id="-bad", tenant_id="t alpha"))
    assert parsed.select("error_code", "detail", "tenant_id", "delivery_id").row(0) == (
        errors.INVALID_IDENTIFIER, "not a contract identifier: delivery_id, tenant_id", None, None)


def test_nul_byte_arrives_pre_flagged():
    parsed = parse(json.dumps(GOOD).replace("dlv_001", "dlv\x00001").encode())
    assert parsed.select("tenant_id", "error_code", "detail").row(0) == (None, errors.NUL_BYTE, "NUL byte at offset 20")


def test_invalid_utf8_arrives_pre_flagged():
    parsed = parse(json.dumps(GOOD).encode().replace(b"dlv_001", b"dlv_\xff01"))
    assert parsed["error_code"].to_list() == [errors.INVALID_UTF8]


# --------------------------------------------------------------- SQL: fields ---


@pytest.mark.parametrize("field", ["delivery_id", "event_id", "tenant_id", "endpoint", "attempt", "attempted_at"])
@pytest.mark.parametrize("how", ["absent", "null"])
def test_required_field_absent_or_null_is_missing_field(field, how):
    parsed = parse(good(**{field: ... if how == "absent" else None}))
    assert parsed.select("error_code", "detail").row(0) == (
        errors.MISSING_FIELD, f"required field(s) absent or null: {field}"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("delivery_id", 1), ("event_id", ["evt_001"]), ("tenant_id", {"id": "t_alpha"}), ("endpoint", 5),
        ("attempted_at", 1764064800), ("error", 500), ("error", {"message": "x"}),
    ],
)
def test_wrong_json_type_is_invalid_field_type(field, value):
    parsed = parse(good(**{field: value}))
    assert parsed.select("error_code", "detail").row(0) == (
        errors.INVALID_FIELD_TYPE, f"field(s) of the wrong JSON type: {field}"
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://hooks.alpha.example/x", "hooks.alpha.example/x", "HTTPS://hooks.alpha.example", "https://",
        "https://hooks alpha.example", "https://hooks.alpha.example/\x07", "https://a.example/\u200e",
        "https://a.example/\u00a0", "https://a.example/\n", "https://a.example/" + "p" * 2031, " https://a.example",
    ],
)
def test_bad_endpoint_is_invalid_field_type(endpoint):
    parsed = parse(good(endpoint=endpoint))
    assert parsed["error_code"].to_list() == [errors.INVALID_FIELD_TYPE]
    assert parsed["detail"][0].startswith("endpoint is not an http(s):// URL")


@pytest.mark.parametrize("field", ["delivery_id", "event_id", "tenant_id"])
@pytest.mark.parametrize("value", ["t'alpha", "../t_beta", "t_alpha/x", "..", "t alpha", "t\x01a", "x" * 129, ""])
def test_bad_identifier_is_invalid_identifier(field, value):
    assert code_of(good(**{field: value})) == errors.INVALID_IDENTIFIER


def test_quarantine_keeps_only_a_valid_tenant():
    bad_tenant = parse(good(tenant_id="t/alpha"))
    bad_event = parse(good(event_id="e/1"))
    assert bad_tenant.select("tenant_id", "delivery_id").row(0) == (None, "dlv_001")
    assert bad_event.select("tenant_id", "delivery_id", "event_id").row(0) == ("t_alpha", "dlv_001", None)


@pytest.mark.parametrize(
    "value",
    ["2026-11-24T10:00:00", "2026-11-24 10:00:00Z", "2026-11-24", "2026-02-30T10:00:00Z",
     "2026-11-24T24:00:00Z", "2026-11-24T10:00:00+24:00", "2026-11-24T10:00:00.1234567Z", "yesterday",
     "0000-01-01T00:00:00Z"],
)
def test_bad_attempted_at_is_invalid_timestamp(value):
    parsed = parse(good(attempted_at=value))
    assert parsed.select("error_code", "attempted_at").row(0) == (errors.INVALID_TIMESTAMP, None)


@pytest.mark.parametrize("value", [0, -1, 1.0, 1.5, "1", True, 2**63, 2**64, 10**30, [1], {"n": 1}])
def test_bad_attempt_is_attempt_invalid(value):
    assert code_of(good(attempt=value)) == errors.ATTEMPT_INVALID


@pytest.mark.parametrize("value", ["abc", "200", 99, 600, -200, 200.0, True, 2**64, [200]])
def test_bad_status_code_is_status_code_invalid(value):
    assert code_of(good(status_code=value)) == errors.STATUS_CODE_INVALID


@pytest.mark.parametrize("value", [100, 599])
def test_status_code_bounds_are_inclusive(value):
    assert code_of(good(status_code=value)) is None


@pytest.mark.parametrize("value", [-1, 1.5, "120", False, 2**63])
def test_bad_latency_is_latency_invalid(value):
    assert code_of(good(latency_ms=value)) == errors.LATENCY_INVALID


def test_zero_latency_is_accepted():
    assert code_of(good(latency_ms=0)) is None


# ------------------------------------------------------------ accept/dedupe ---


def test_identical_copies_collapse():
    deliveries, quarantine = dv.accept_deliveries(parse(GOOD, GOOD, good(delivery_id="dlv_002")))
    assert deliveries.select("delivery_id", "copies").rows() == [("dlv_001", 2), ("dlv_002", 1)]
    assert deliveries.schema == pl.Schema(dv.DELIVERY_SCHEMA)
    assert quarantine.height == 0


def test_conflicting_copies_are_all_quarantined():
    deliveries, quarantine = dv.accept_deliveries(parse(GOOD, good(status_code=500), good(delivery_id="dlv_002")))
    assert deliveries["delivery_id"].to_list() == ["dlv_002"]
    assert quarantine.select("tenant_id", "delivery_id", "line_no", "error_code", "detail").rows() == [
        ("t_alpha", "dlv_001", 1, dv.DELIVERY_CONFLICT, "delivery_id dlv_001 arrived with 2 different contents; no copy wins"),
        ("t_alpha", "dlv_001", 2, dv.DELIVERY_CONFLICT, "delivery_id dlv_001 arrived with 2 different contents; no copy wins"),
    ]


def test_same_delivery_id_in_two_tenants_is_not_a_conflict():
    deliveries, quarantine = dv.accept_deliveries(parse(GOOD, good(tenant_id="t_beta", status_code=500)))
    assert deliveries.select("tenant_id", "status_code").rows() == [("t_alpha", 200), ("t_beta", 500)]
    assert quarantine.height == 0


def test_quarantine_schema_and_parse_errors():
    _, quarantine = dv.accept_deliveries(parse("{", good(attempt=0)))
    assert quarantine.schema == pl.Schema(dv.QUARANTINE_SCHEMA)
    assert quarantine["error_code"].to_list() == [errors.MALFORMED_JSON, errors.ATTEMPT_INVALID]


def test_runner_reads_the_archive():
    con = landing_con({"a.jsonl": jsonl(GOOD, "nope"), "b.jsonl": jsonl(GOOD)})
    deliveries, quarantine = events_stage.parse_delivery_lines(con)
    assert deliveries.select("delivery_id", "copies").rows() == [("dlv_001", 2)]
    assert quarantine.select("source_file", "line_no", "error_code").rows() == [
        ("deliveries/a.jsonl", 2, errors.MALFORMED_JSON)
    ]


def test_runner_with_no_deliveries():
    deliveries, quarantine = events_stage.parse_delivery_lines(landing_con({}))
    assert deliveries.height == quarantine.height == 0
    assert deliveries.schema == pl.Schema(dv.DELIVERY_SCHEMA)


# ---------------------------------------------------------- health and retries ---

A = "https://a.example/hook"
B = "https://b.example/hook"
# endpoint A: one event failing four times with a textbook 1 s, 2 s, 4 s backoff
# endpoint B: evt_2 retried after 0.5 s (too fast) and delivered; evt_3 delivered first time
TWO_ENDPOINTS = [
    (A, "evt_1", 1, 0.0, 500, None, 100),
    (A, "evt_1", 2, 1.0, 500, None, 200),
    (A, "evt_1", 3, 3.0, 503, None, 300),
    (A, "evt_1", 4, 7.0, None, "connect timeout", None),
    (B, "evt_2", 1, 0.0, 500, None, 50),
    (B, "evt_2", 2, 0.5, 200, None, 80),
    (B, "evt_3", 1, 10.0, 200, None, 40),
]


def test_webhook_health_by_hand():
    health = dv.webhook_health(attempts(TWO_ENDPOINTS), as_of=T0 + timedelta(days=1))
    expected = pl.DataFrame(
        [
            # attempts, successes, failures, rate, events, delivered, last_at, last_status,
            # failing_now, consecutive, fast, p95
            ("t_alpha", A, 4, 0, 4, 0.0, 1, 0, T0 + timedelta(seconds=7), None, True, 4, 0, 300),
            ("t_alpha", B, 3, 2, 1, 66.67, 2, 2, T0 + timedelta(seconds=10), 200, False, 0, 1, 80),
        ],
        schema=dv.HEALTH_SCHEMA,
        orient="row",
    )
    assert_frame_equal(health, expected)


def test_retry_spacing_by_hand():
    spacing = dv.retry_spacing(attempts(TWO_ENDPOINTS))
    assert spacing.select("endpoint", "event_id", "attempt", "gap_s", "min_gap_s", "fast_retry").rows() == [
        (A, "evt_1", 1, None, None, False),
        (A, "evt_1", 2, 1.0, 1.0, False),
        (A, "evt_1", 3, 2.0, 2.0, False),
        (A, "evt_1", 4, 4.0, 4.0, False),
        (B, "evt_2", 1, None, None, False),
        (B, "evt_2", 2, 0.5, 1.0, True),
        (B, "evt_3", 1, None, None, False),
    ]


def test_backoff_that_stops_doubling_is_a_fast_retry():
    spacing = dv.retry_spacing(attempts([(A, "e", 1, 0, 500, None, 1), (A, "e", 2, 1, 500, None, 1),
                                         (A, "e", 3, 2.999999, 500, None, 1)]))
    assert spacing["fast_retry"].to_list() == [False, False, True]


def test_failing_now_needs_three_failures_in_a_row():
    two = dv.webhook_health(attempts([(A, "e", 1, 0, 200, None, 1), (A, "e2", 1, 5, 500, None, 1),
                                      (A, "e2", 2, 6, 500, None, 1)]), as_of=T0 + timedelta(hours=1))
    assert two.select("consecutive_failures", "failing_now", "last_status").row(0) == (2, False, 500)
    recovered = dv.webhook_health(attempts([(A, "e", 1, 0, 500, None, 1), (A, "e", 2, 1, 500, None, 1),
                                            (A, "e", 3, 3, 500, None, 1), (A, "e", 4, 7, 204, None, 1)]),
                                  as_of=T0 + timedelta(hours=1))
    assert recovered.select("consecutive_failures", "failing_now", "last_status").row(0) == (0, False, 204)


def test_health_ignores_attempts_after_as_of():
    health = dv.webhook_health(attempts(TWO_ENDPOINTS), as_of=(T0 + timedelta(seconds=3)).replace(tzinfo=UTC))
    assert health.select("endpoint", "attempts", "consecutive_failures", "failing_now").rows() == [
        (A, 3, 3, True),
        (B, 2, 0, False),
    ]


def test_p95_is_nearest_rank():
    rows = [(A, f"e{i}", 1, i, 200, None, latency) for i, latency in enumerate(range(10, 210, 10))]  # 20 values
    rows.append((A, "e_null", 1, 100, None, "dns", None))
    health = dv.webhook_health(attempts(rows), as_of=T0 + timedelta(days=1))
    # ceil(0.95 * 20) = 19th smallest of 10..200
    assert health.select("p95_latency_ms", "success_rate_pct").row(0) == (190, 95.24)


def test_success_rate_rounds_half_up():
    rows = [(A, f"e{i}", 1, i, 200 if i == 0 else 500, None, None) for i in range(8)]  # 1/8 = 12.5 %
    health = dv.webhook_health(attempts(rows), as_of=T0 + timedelta(days=1))
    assert health.select("success_rate_pct", "p95_latency_ms").row(0) == (12.5, None)
    rows = [(A, f"e{i}", 1, i, 200 if i < 2 else 500, None, None) for i in range(3)]  # 2/3
    assert dv.webhook_health(attempts(rows), as_of=T0 + timedelta(days=1))["success_rate_pct"][0] == 66.67


def test_success_rate_is_the_double_nearest_its_two_decimals():
    """147 of 148 is 99.32 %: written as 99.32, never 99.32000000000001, in the packet's CSV."""
    rows = [(A, f"e{i}", 1, i, 200 if i else 500, None, None) for i in range(148)]
    health = dv.webhook_health(attempts(rows), as_of=T0 + timedelta(days=1))
    assert repr(health["success_rate_pct"][0]) == "99.32"
    assert health.select("success_rate_pct").write_csv() == "success_rate_pct\n99.32\n"


def test_health_of_no_deliveries_is_empty_with_schema():
    health = dv.webhook_health(attempts([]), as_of=T0)
    assert health.height == 0
    assert health.schema == pl.Schema(dv.HEALTH_SCHEMA)


# ---------------------------------------------------------------- replay queue ---


def test_replay_queue_holds_events_whose_latest_attempt_failed():
    queue = dv.replay_queue(attempts(TWO_ENDPOINTS))
    expected = pl.DataFrame(
        [("t_alpha", "evt_1", A, 4, T0 + timedelta(seconds=7), None, "connect timeout", True)],
        schema=dv.REPLAY_SCHEMA,
        orient="row",
    )
    assert_frame_equal(queue, expected)


def test_replay_latest_is_highest_attempt_not_latest_clock():
    # attempt 2 (failed) was logged with an earlier clock than attempt 1 (delivered): attempt 2 decides
    queue = dv.replay_queue(attempts([(A, "e", 1, 10, 200, None, 1), (A, "e", 2, 5, 500, "boom", 1)]))
    assert queue.select("event_id", "attempts", "last_status", "last_error").rows() == [("e", 2, 500, "boom")]


def test_replay_tie_on_attempt_is_broken_by_time():
    queue = dv.replay_queue(attempts([(A, "e", 3, 10, 502, None, 1), (A, "e", 3, 11, 200, None, 1)]))
    assert queue.height == 0


def test_replay_queue_is_per_endpoint():
    queue = dv.replay_queue(attempts([(A, "e", 1, 0, 500, None, 1), (B, "e", 1, 0, 200, None, 1)]))
    assert queue.select("event_id", "endpoint").rows() == [("e", A)]


def test_replay_queue_is_sorted_and_independent_of_input_order():
    rows = attempts(TWO_ENDPOINTS + [(B, "evt_0", 1, 20, 410, None, 5)])
    a = dv.replay_queue(rows)
    b = dv.replay_queue(rows.reverse())
    assert_frame_equal(a, b)
    assert a["event_id"].to_list() == ["evt_0", "evt_1"]
    assert_frame_equal(dv.webhook_health(rows, T0 + timedelta(days=1)), dv.webhook_health(rows.reverse(), T0 + timedelta(days=1)))


def test_deliveries_come_in_key_order_across_tenants():
    """Stable sort by tenant_id after the firsts: the same order as sort(KEY)."""
    parsed = parse(good(delivery_id="dlv_b", tenant_id="t_2"), good(delivery_id="dlv_c", tenant_id="t_1"),
                   good(delivery_id="dlv_a", tenant_id="t_2"), good(delivery_id="dlv_c", tenant_id="t_1"))
    deliveries, _ = dv.accept_deliveries(parsed)
    assert_frame_equal(deliveries, deliveries.sort(dv.KEY))
    assert deliveries.select(*dv.KEY, "copies").rows() == [("t_1", "dlv_c", 2), ("t_2", "dlv_a", 1),
                                                            ("t_2", "dlv_b", 1)]


def test_split_on_sorted_runs_equals_split_conflicts_and_first_copies():
    """Conflicts found on neighbouring sorted copies (null content included) = dedupe.split_conflicts;
    the firsts = the first copy per KEY in line order with the group's size."""
    parsed = parse(good(delivery_id="dlv_3"), GOOD, good(status_code=500), GOOD, good(delivery_id="dlv_2"),
                   good(delivery_id="dlv_3"), good(delivery_id="dlv_4", tenant_id="t_beta"))
    parsed = parsed.with_columns(
        content_hash=pl.when(pl.col("delivery_id") == "dlv_4").then(None).otherwise(pl.col("content_hash")))
    parsed = pl.concat([parsed, parsed.filter(pl.col("delivery_id") == "dlv_4").with_columns(
        line_no=pl.lit(99, pl.Int64), content_hash=pl.lit("x"))])
    deliveries, quarantine = dv.accept_deliveries(parsed)
    split = split_conflicts(parsed.filter(pl.col("error_code").is_null()), dv.KEY)
    line_order = ["source_file", "line_no", "file_sha256"]
    expected = dv._shape(
        split.accepted.sort(dv.KEY + line_order).with_columns(copies=pl.len().over(dv.KEY))
        .unique(subset=dv.KEY, keep="first", maintain_order=True), dv.DELIVERY_SCHEMA)
    assert_frame_equal(deliveries, expected)
    assert quarantine.select("delivery_id", "line_no").rows() == [
        ("dlv_001", 2), ("dlv_001", 3), ("dlv_001", 4), ("dlv_4", 7), ("dlv_4", 99)]
    assert deliveries.select("delivery_id", "copies").rows() == [("dlv_2", 1), ("dlv_3", 2)]
