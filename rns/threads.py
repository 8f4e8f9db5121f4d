"""How many torch CPU threads each stage uses: all cores for the backbone, one for the small per-image work.

A thread pool pays off when every thread has enough work to outweigh handing it over. The backbone's
matrix products do; the per-image stages after it (relevance, anchors, the head fit's 700 small steps,
merging retrieved rows, upsampling a `[gh, gw, C]` grid) do not: a 550 x 513 x 11 product is a few
microseconds of work per op. Run with several threads, each of those ops waits until every thread of the
pool holds a core; on a machine shared with other work (a laptop, several Ray actors, a CI box) that wait
is a scheduler time slice per op, and a 150 ms head fit became 6 s (issue 24). So such a stage runs with
the threads its work can use (`threads_for`), and gives the caller's setting back afterwards, also when it
raises: the caller (a notebook, a server thread, the backbone's next forward) keeps its own setting.

torch's intra-op setting is per thread under OpenMP (new threads start from the process-wide value), so a
stage narrowed in one thread never narrows another thread's work. Inter-op threads are never touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch

# Multiply-adds per op that make one more thread worth its hand-off on a busy machine: an op of this size
# takes milliseconds on one core, more than a scheduler time slice that a thread can wait for a core.
WORK_PER_THREAD = 50_000_000


def threads_for(work: float, available: int | None = None) -> int:
    """Threads for a stage whose largest op does `work` multiply-adds: one per `WORK_PER_THREAD`, at least
    one, at most `available` (default: the caller's current setting, so a stage never widens it)."""
    available = torch.get_num_threads() if available is None else available
    return max(1, min(int(available), int(work // WORK_PER_THREAD)))


@contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """Run the block with `count` torch intra-op threads; restore the caller's count on the way out.

    Restores also when the block raises. Nothing is called when `count` is the current setting already.
    """
    if count < 1:
        raise ValueError(f"a stage needs at least one thread, not {count}")
    previous = torch.get_num_threads()
    if count != previous:
        torch.set_num_threads(count)
    try:
        yield count
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def stage_threads(work: float) -> AbstractContextManager[int]:
    """`torch_threads(threads_for(work))`: the context a small per-image stage runs in."""
    return torch_threads(threads_for(work))


def threads_per_worker(cpus: float, workers: int) -> int:
    """torch threads for each of `workers` processes sharing `cpus` cores (Ray actors on a node): an even
    share, at least one, so that N actors do not each start a pool as wide as the whole node."""
    return max(1, int(cpus) // max(1, workers))


__all__ = ["WORK_PER_THREAD", "stage_threads", "threads_for", "threads_per_worker", "torch_threads"]
