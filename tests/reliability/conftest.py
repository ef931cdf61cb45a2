"""Session fixtures of the reliability suite: one small sample, one clean reference run.

Measured figures (rates, RSS, timings, trial counts) are collected in ``figures`` and
written to ``var/reliability/figures.json`` at the end of the session; docs/reliability.md
quotes them.
"""

from __future__ import annotations

import json

import pytest

from tests.reliability._support import REPO, Sample, make_sample, run_measured

FIGURES_PATH = REPO / "var" / "reliability" / "figures.json"
_FIGURES: dict[str, object] = {}


@pytest.fixture(scope="session")
def figures() -> dict[str, object]:
    return _FIGURES


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001 - pytest hook signature
    if not _FIGURES:
        return
    try:
        FIGURES_PATH.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(FIGURES_PATH.read_text()) if FIGURES_PATH.exists() else {}
        old.update(_FIGURES)
        FIGURES_PATH.write_text(json.dumps(old, indent=2, sort_keys=True, default=str) + "\n")
    except OSError:
        pass


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> Sample:
    """`zentra sample --intents 20 --seed 3`: every planted failure case, 3 tenants, 2 days."""
    return make_sample(tmp_path_factory.mktemp("rel_sample"), intents=20, seed=3)


@pytest.fixture(scope="session")
def reference(sample: Sample, tmp_path_factory, figures) -> dict:
    """A clean `zentra run` of the sample: the tables and packets every fault must converge to."""
    home = tmp_path_factory.mktemp("rel_reference")
    rc, out, err, seconds, rss = run_measured("-m", "dagster_project.cli", sample.run_args(home))
    assert rc == 0, out + err
    figures["reference_run"] = {"seconds": round(seconds, 2), "peak_rss_mib": round(rss / 1024, 1)}
    return {"home": home, "stdout": out, "stderr": err, "seconds": seconds, "rss_kib": rss}
