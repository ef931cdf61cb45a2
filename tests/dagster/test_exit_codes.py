"""Which step failures `zentra run` reports as bad input (exit 2) rather than a failed check (1)."""

from __future__ import annotations

from types import SimpleNamespace as Plain

import pytest

from dagster_project.pipeline import INPUT_ERRORS, input_failure


def _failed_step(inner: str) -> Plain:
    """A STEP_FAILURE event as Dagster serialises it: its wrapper, caused by ``inner``."""
    error = Plain(cls_name="DagsterExecutionStepExecutionError", message="step failed",
                  cause=Plain(cls_name=inner, message="...", cause=None))
    return Plain(event_type_value="STEP_FAILURE", step_failure_data=Plain(error=error))


@pytest.mark.parametrize("inner", sorted(INPUT_ERRORS))
def test_each_input_error_anywhere_in_the_chain_is_bad_input(inner):
    assert input_failure(Plain(all_events=[_failed_step(inner)]))


def test_a_landing_file_rewritten_while_read_is_among_them():
    assert "LandingFileChanged" in INPUT_ERRORS


def test_any_other_failure_is_not():
    assert not input_failure(Plain(all_events=[_failed_step("IntegrityError")]))
