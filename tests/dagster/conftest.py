"""Fixtures for the Dagster wiring tests: a tiny generated sample and a live `dagster dev`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dagster.support import (
    BIN,
    REPO,
    DagsterServer,
    clean_env,
    default_signals,
    free_port,
    stop,
    wait_ready,
    zentra_env,
)


@pytest.fixture(scope="session")
def tiny_sample(tmp_path_factory) -> Path:
    try:
        from zentra_pipelines.sample import generate_sample
    except ImportError as exc:  # pragma: no cover - the generator ships with the package
        pytest.skip(f"zentra_pipelines.sample.generate_sample is not available: {exc}")
    out = tmp_path_factory.mktemp("tiny_sample")
    generate_sample(out, intents=20, seed=3)
    return out


@pytest.fixture(scope="module")
def dagster_server(tiny_sample: Path, tmp_path_factory) -> Iterator[DagsterServer]:
    """`dagster dev` on a free loopback port, DAGSTER_HOME in tmp, inputs from the tiny sample."""
    from dagster_project.pipeline import write_instance_yaml

    root = tmp_path_factory.mktemp("ui")
    dagster_home, zentra_home = root / "dagster_home", root / "zentra_home"
    write_instance_yaml(dagster_home)
    port = free_port()
    server = DagsterServer(f"http://127.0.0.1:{port}", dagster_home, zentra_home, tiny_sample, root / "dagster_dev.log")
    env = clean_env(DAGSTER_HOME=str(dagster_home), **zentra_env(tiny_sample, zentra_home))
    with server.log.open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=default_signals,
        )
    try:
        wait_ready(server, proc, timeout=240)
        yield server
    finally:
        stop(proc)
