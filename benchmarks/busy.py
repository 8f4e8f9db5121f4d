"""Background load for speed benchmarks: N CPU-bound processes of the benchmark's own (`--busy N`).

Users run rns beside other work, so the benchmarks measure that case too, reproducibly: `BusyCores(n)`
starts `n` Python processes that spin on one core each. They can be paused (SIGSTOP) and resumed
(SIGCONT), so that one run measures every image both quiet and loaded, interleaved, and drifting machine
load touches both columns alike. They are bounded three ways: each exits by itself after `limit_s`
seconds of wall time; on Linux each is killed by the kernel when the benchmark dies (even by SIGKILL,
when nothing of it runs any more); and leaving the `with` block, also by Ctrl-C or an error, stops them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

SPIN = "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"


def _die_with_parent() -> None:
    """In the child before exec (Linux): the kernel sends SIGKILL when the benchmark's process exits."""
    import contextlib
    import ctypes

    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class BusyCores:
    """`n` spinning processes; `with BusyCores(2) as busy:` then `busy.pause()` / `busy.resume()`."""

    def __init__(self, n: int, limit_s: float = 3600.0) -> None:
        if n < 0:
            raise ValueError(f"--busy takes a number of processes >= 0, not {n}")
        self.n, self.limit_s = n, limit_s
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> BusyCores:
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        for _ in range(self.n):
            self.processes.append(subprocess.Popen([sys.executable, "-c", SPIN.format(limit=self.limit_s)],
                                                   preexec_fn=preexec))  # fmt: skip
        return self

    def _signal(self, number: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, number)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def __exit__(self, *exc: object) -> None:
        self._signal(signal.SIGCONT)  # a stopped process does not act on SIGTERM until it runs again
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


@contextmanager
def loaded(busy: BusyCores | None) -> Iterator[None]:
    """Run the block with the background load on (if any), paused again afterwards."""
    if busy is None:
        yield
        return
    busy.resume()
    try:
        yield
    finally:
        busy.pause()


def load_average() -> str:
    """The 1-minute load average, for the record beside every figure."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"
