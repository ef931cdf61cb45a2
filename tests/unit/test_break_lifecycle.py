from datetime import date, datetime

import polars as pl
from polars.testing import assert_frame_equal

from zentra_pipelines.domain.break_lifecycle import update_log

SCHEMA = {"tenant_id": pl.String, "intent_id": pl.String, "provider_ref": pl.String, "break_type": pl.String,
          "day": pl.Date, "first_seen": pl.Datetime("us"), "owner": pl.String, "ledger_amount_minor": pl.Int64,
          "provider_amount_minor": pl.Int64, "currency": pl.String, "reason": pl.String}


def breaks(*intents: str) -> pl.DataFrame:
    return pl.DataFrame(
        [("t_alpha", i, None, "missing_at_provider", date(2026, 11, 20), datetime(2026, 11, 20, 9), "provider_ops",
          125000, None, "EUR", "no callback") for i in intents],
        schema=SCHEMA, orient="row",
    )


def test_current_breaks_are_open():
    log = update_log(None, breaks("in_1"), datetime(2026, 11, 21))
    assert log["status"].to_list() == ["open"] and log["resolved_as_of"].to_list() == [None]


def test_a_break_that_disappears_is_resolved_at_the_data_time():
    log = update_log(update_log(None, breaks("in_1", "in_2"), datetime(2026, 11, 21)), breaks("in_2"),
                     datetime(2026, 11, 22))
    assert log.select("intent_id", "status").rows() == [("in_1", "resolved"), ("in_2", "open")]
    assert log["resolved_as_of"][0] == datetime(2026, 11, 22)


def test_resolution_time_is_kept_on_later_runs():
    first = update_log(update_log(None, breaks("in_1"), datetime(2026, 11, 21)), breaks(), datetime(2026, 11, 22))
    again = update_log(first, breaks(), datetime(2026, 11, 30))
    assert_frame_equal(first, again)


def test_a_break_that_returns_is_open_again():
    resolved = update_log(update_log(None, breaks("in_1"), datetime(2026, 11, 21)), breaks(), datetime(2026, 11, 22))
    assert update_log(resolved, breaks("in_1"), datetime(2026, 11, 23))["status"].to_list() == ["open"]
