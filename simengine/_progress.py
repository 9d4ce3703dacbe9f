"""Progress: a tqdm bar on a terminal, log lines with an ETA otherwise (a batch's log file); phase clocks."""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time

log = logging.getLogger("simengine")


def duration(seconds: float) -> str:
    """``12.3s``, ``4m05s`` or ``1h02m03s``; ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def eta(elapsed: float, done: float, total: float) -> float:
    """Seconds left at the speed so far (NaN before anything is done)."""
    return elapsed / done * (total - done) if done else math.nan


class Progress:
    """A bar on a terminal, a log line per update otherwise.

    Parameters
    ----------
    total : int
        Units (paths) to do.
    label : str
        What is being done (a scenario name).
    enabled : bool or None
        False: silent; None or True: shown.
    """

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.total, self.label, self.done = total, label, 0
        self.start = time.perf_counter()
        self.enabled = enabled if enabled is not None else True
        self.bar = None
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="path", unit_scale=True, leave=False)

    def update(self, n: int) -> None:
        """``n`` more units done."""
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        elapsed = time.perf_counter() - self.start
        log.info("%s: %d/%d paths (%.0f%%), %.1fs elapsed, ETA %.1fs", self.label, self.done, self.total,
                 100.0 * self.done / self.total, elapsed, eta(elapsed, self.done, self.total))

    def retotal(self, total: int) -> None:
        """The total changed (a batch learns a scenario's rounded path count)."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class PhaseClock:
    """Wall and CPU seconds per named phase of a run, exclusive of the phases nested inside it
    (the summary's own work, not the channel attribution it asks for), so the phases add up.

    CPU seconds are the process's (every thread's, numba's included): on a loaded machine they
    say what a phase cost where wall seconds say how long it waited.
    """

    def __init__(self):
        self.seconds: dict[str, dict[str, float]] = {}
        self._inner: list[tuple[float, float]] = []

    @contextlib.contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        self._inner.append((0.0, 0.0))
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            inner_wall, inner_cpu = self._inner.pop()
            entry = self.seconds.setdefault(name, {"wall_seconds": 0.0, "cpu_seconds": 0.0})
            entry["wall_seconds"] += wall - inner_wall
            entry["cpu_seconds"] += cpu - inner_cpu
            if self._inner:
                w, c = self._inner[-1]
                self._inner[-1] = (w + wall, c + cpu)
