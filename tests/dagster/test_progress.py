"""``dagster_project.progress`` on tiny graphs of its own: the verdict each kind of check
outcome is shown with, a failed step (the sample never fails a blocking check), and the
"still running" line of a long step (its rule with plain numbers, the run logger that
tells it which step runs, the thread that says it)."""

from __future__ import annotations

import threading

import dagster as dg

from dagster_project.progress import WATCH_LOGGER, StepWatch, progress_hook, step_watch_logger, still_running


@dg.asset
def journal() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 2})


@dg.asset_check(asset=journal, blocking=True)
def balances() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)


@dg.asset_check(asset=journal)
def reserve_not_negative() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=journal)
def rows_conserved() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset
def broken() -> None:
    raise ValueError("no rows")


def _said(assets: list, checks: list | None = None) -> list[str]:
    lines: list[str] = []
    job = dg.Definitions(assets=assets, asset_checks=checks or []).resolve_implicit_global_asset_job_def()
    job.with_hooks({progress_hook(lines.append)}).execute_in_process(raise_on_error=False)
    return [line.split("] ", 1)[1] for line in lines]


def test_each_check_outcome_has_its_own_words():
    said = _said([journal], [balances, reserve_not_negative, rows_conserved])
    assert said[0] == "journal done"
    assert sorted(said[1:]) == [
        "check balances on journal FAILED (blocking)",
        "check reserve_not_negative on journal warning (reported, not blocking)",
        "check rows_conserved on journal passed",
    ]


def test_a_failed_step_says_failed():
    assert _said([broken]) == ["broken FAILED"]


# ------------------------------------------------------------------ still running ---


def test_a_step_is_reported_once_it_has_run_for_the_interval():
    watch = StepWatch(every=30.0)
    watch.started("ledger", at=100.0)
    assert watch.due(129.9) == []
    assert watch.due(130.0) == ["ledger still running (30 s)"]
    assert watch.due(131.0) == []  # said once per interval


def test_the_report_repeats_at_each_multiple_of_the_interval():
    watch = StepWatch(every=30.0)
    watch.started("audit_packets", at=0.0)
    assert [watch.due(t) for t in (30.0, 59.0, 60.0, 90.5)] == [
        ["audit_packets still running (30 s)"], [], ["audit_packets still running (60 s)"],
        ["audit_packets still running (90 s)"],
    ]


def test_a_late_look_says_the_time_once_and_keeps_the_rhythm():
    watch = StepWatch(every=30.0)
    watch.started("ledger", at=0.0)
    assert watch.due(95.0) == ["ledger still running (95 s)"]
    assert watch.due(119.0) == []
    assert watch.due(120.0) == ["ledger still running (120 s)"]


def test_an_ended_step_is_not_reported():
    watch = StepWatch(every=30.0)
    watch.started("ledger", at=0.0)
    watch.ended("ledger")
    assert watch.due(300.0) == []
    assert watch.running() == []


def test_the_run_logger_tells_the_watch_which_step_runs():
    watch = StepWatch()
    seen: list[list[str]] = []

    @dg.asset
    def postings() -> None:
        seen.append(watch.running())

    @dg.asset(deps=[postings])
    def balances() -> None:
        seen.append(watch.running())

    job = dg.Definitions(assets=[postings, balances]).resolve_implicit_global_asset_job_def()
    job = job.with_logger_defs({**job.loggers, WATCH_LOGGER: step_watch_logger(watch)})
    result = job.execute_in_process(run_config={"loggers": {WATCH_LOGGER: {}}})
    assert result.success
    assert seen == [["postings"], ["balances"]]
    assert watch.running() == []


def test_the_reporting_thread_says_what_is_due():
    watch = StepWatch(every=30.0)
    watch.started("ledger", at=10.0)
    lines: list[str] = []
    said = threading.Event()

    def report(line: str) -> None:
        lines.append(line)
        said.set()

    with still_running(watch, report, start=0.0, clock=lambda: 52.1, poll=0.01):
        assert said.wait(10.0)
    assert lines[0] == "[    52.1 s] ledger still running (42 s)"
