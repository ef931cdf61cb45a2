"""``pipeline.progress_hook`` on a tiny graph of its own: the verdict each kind of check
outcome is shown with, and a failed step (the sample never fails a blocking check)."""

from __future__ import annotations

import dagster as dg

from dagster_project.pipeline import progress_hook


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

