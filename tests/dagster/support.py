"""Helpers for the Dagster wiring tests: environment, free ports, a `dagster dev` process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "zentra"
REPOSITORY = "__repository__"


def zentra_env(sample: Path, home: Path) -> dict[str, str]:
    """ZENTRA_* variables pointing at a sample: how `dagster dev` finds its inputs."""
    return {
        "ZENTRA_LANDING": str(sample / "landing"),
        "ZENTRA_SOURCE_DB": str(sample / "source.sqlite"),
        "ZENTRA_POLICIES": str(sample / "policies.yaml"),
        "ZENTRA_SECRETS": str(sample / "secrets.json"),
        "ZENTRA_HOME": str(home),
    }


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without ZENTRA_*/DAGSTER_* leaking in, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENTRA_", "DAGSTER_"))}
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_signals() -> None:
    # A background job inherits SIGINT/SIGTERM as ignored; give the server its defaults back
    # so it can shut down its webserver, daemon and code server cleanly.
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


@dataclass
class DagsterServer:
    url: str
    home: Path
    zentra_home: Path
    sample: Path
    log: Path

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.load(resp)
        assert "errors" not in payload, payload["errors"]
        return payload["data"]

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def wait_ready(server: DagsterServer, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=5) as resp:
                if resp.status == 200:
                    data = server.graphql(
                        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                        "locationOrLoadError { __typename } } } } }")
                    entries = data["workspaceOrError"]["locationEntries"]
                    if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                        kinds = {e["locationOrLoadError"]["__typename"] for e in entries}
                        if kinds != {"RepositoryLocation"}:
                            raise RuntimeError(f"code location failed to load: {entries}\n{server.log_tail()}")
                        return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(1)
    raise TimeoutError(f"dagster dev not ready after {timeout:.0f}s:\n{server.log_tail()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of its own group is left
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
