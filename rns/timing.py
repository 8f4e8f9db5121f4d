"""Stage timing that is honest on a GPU: wait for queued device work before reading the clock."""

from __future__ import annotations

import time

import torch


def device_time(device: torch.device) -> float:
    """`time.perf_counter()` after `device` has finished its queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class StageClock:
    """Laps between stages of one image, and the total since the clock was made."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = self.last = device_time(device)

    def lap(self) -> float:
        """Seconds since the previous lap (or the start)."""
        now = device_time(self.device)
        elapsed, self.last = now - self.last, now
        return elapsed

    def total(self) -> float:
        return device_time(self.device) - self.start
