"""What ``zentra run`` tells whoever started it while it runs.

A line per finished step (``progress_hook``), and, for a step still running after
``STILL_RUNNING_EVERY_S``, a line saying which one and for how long, repeated at that
interval (``StepWatch`` fed by ``step_watch_logger``, spoken by ``still_running``). At 1M
intents the ledger step runs for about a minute and the packets step for one and a half,
and without it the terminal showed nothing between two step lines::

    [   22.1 s] landing_archive done
    [   52.1 s] ledger still running (30 s)
    [   82.1 s] ledger still running (60 s)
    [   90.8 s] ledger done

The seconds count from the run's start and go to the report function only, never into a
table or a packet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg

PROGRESS_HOOK = "zentra_progress"
#: The run logger through which step starts reach the watch (a run config key).
WATCH_LOGGER = "zentra_step_watch"
#: A step running this long is reported, and again each time as long again.
STILL_RUNNING_EVERY_S = 30.0
#: How often the reporting thread looks at the watch.
POLL_S = 1.0


def stamp(start: float, now: float) -> str:
    return f"[{now - start:8.1f} s]"


def progress_hook(report: Callable[[str], None], start: float | None = None) -> dg.HookDefinition:
    """One line per finished step::

        [   63.2 s] ledger done
        [   68.9 s] check ledger_integrity_invariants on ledger_balances passed

    A check's line says its verdict (a failed ERROR-severity check is what stops the
    packets); a failed step says FAILED, its reason follows in the run's last lines.
    ``start`` (``time.monotonic()``) is the run's start, by default the hook's creation."""
    start = time.monotonic() if start is None else start

    def hook(context: dg.HookContext, events: list[dg.DagsterEvent]) -> dg.HookExecutionResult:
        at = stamp(start, time.monotonic())
        for line in _step_outcome(context.step_key, events):
            report(f"{at} {line}")
        return dg.HookExecutionResult(hook_name=PROGRESS_HOOK, is_skipped=False)

    return dg.HookDefinition(name=PROGRESS_HOOK, hook_fn=hook)


def _step_outcome(step_key: str, events: list[dg.DagsterEvent]) -> list[str]:
    """What a finished step says: each check's verdict (a failed blocking check fails its
    step too: the verdict says it all), or the step done or FAILED."""
    checks = [e.event_specific_data for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    said = [f"check {c.check_name} on {c.asset_key.to_user_string()} " + (
        "passed" if c.passed else
        "FAILED (blocking)" if c.severity == dg.AssetCheckSeverity.ERROR else
        "warning (reported, not blocking)") for c in checks]
    materialized = any(e.event_type_value == "ASSET_MATERIALIZATION" for e in events)
    if checks and not materialized:
        return said  # a check step
    failed = any(e.event_type_value == "STEP_FAILURE" for e in events)
    return said + [f"{step_key} {'FAILED' if failed else 'done'}"]  # an asset (its own checks first)


class StepWatch:
    """The steps running now and since when; which of them are due a "still running" line.

    No clock of its own: callers pass ``time.monotonic()`` readings, so the rule can be
    shown with plain numbers. Thread-safe: Dagster's executing thread starts and ends
    steps while the reporting thread asks what is due.
    """

    def __init__(self, every: float = STILL_RUNNING_EVERY_S):
        self.every = every
        self._lock = threading.Lock()
        self._running: dict[str, tuple[float, float]] = {}  # step -> (started at, next line at)

    def started(self, step: str, at: float) -> None:
        with self._lock:
            self._running[step] = (at, at + self.every)

    def ended(self, step: str) -> None:
        with self._lock:
            self._running.pop(step, None)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def due(self, now: float) -> list[str]:
        """A line for each step whose next report time has come; the next one is the
        following multiple of ``every`` (a late look says the time once, not each missed one)."""
        lines = []
        with self._lock:
            for step, (began, next_at) in sorted(self._running.items()):
                if now >= next_at:
                    ran = now - began
                    lines.append(f"{step} still running ({ran:.0f} s)")
                    self._running[step] = (began, began + (ran // self.every + 1) * self.every)
        return lines


_ENDS = frozenset({"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"})


class _WatchHandler(logging.Handler):
    """Step starts and ends from the run's log records (each event is logged with it)."""

    def __init__(self, watch: StepWatch, clock: Callable[[], float]):
        super().__init__(level=logging.DEBUG)
        self.watch, self.clock = watch, clock

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if isinstance(meta, dict) else None
        kind, step = getattr(event, "event_type_value", None), getattr(event, "step_key", None)
        if step is None:
            return
        if kind == "STEP_START":
            self.watch.started(step, self.clock())
        elif kind in _ENDS:
            self.watch.ended(step)


def step_watch_logger(watch: StepWatch, clock: Callable[[], float] = time.monotonic) -> dg.LoggerDefinition:
    """A run logger (enable it as ``WATCH_LOGGER`` in the run config) that keeps ``watch``
    current. Dagster hooks only run when a step ends; its log records say when one starts."""

    @dg.logger
    def watch_logger(_init_context: dg.InitLoggerContext) -> logging.Logger:
        log = logging.Logger(WATCH_LOGGER, level=logging.DEBUG)
        log.addHandler(_WatchHandler(watch, clock))
        return log

    return watch_logger


@contextmanager
def still_running(watch: StepWatch, report: Callable[[str], None], start: float,
                  clock: Callable[[], float] = time.monotonic, poll: float = POLL_S) -> Iterator[None]:
    """While the block runs, a daemon thread reports ``watch.due`` lines every ``poll`` s."""
    stop = threading.Event()

    def speak() -> None:
        while not stop.wait(poll):
            now = clock()
            for line in watch.due(now):
                report(f"{stamp(start, now)} {line}")

    thread = threading.Thread(target=speak, name="zentra-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
