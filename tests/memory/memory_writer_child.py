"""A writer process for the support-memory crash and concurrency tests (run with sys.executable).

    memory_writer_child.py ops MEMORY SEED N_OPS      run the seeded operation script (see `script_ops`)
    memory_writer_child.py add MEMORY PREFIX N        add N one-row sources named PREFIX-0 .. PREFIX-N-1

It prints "ready" once imports are done and the memory is open, so the parent can time its SIGKILL to land
among the writes rather than during interpreter start-up. The operation script and the rows of each source
version are pure functions of their arguments, so the parent can replay them to know every valid state.
"""

from __future__ import annotations

import contextlib
import sys
import zlib

import numpy as np

from support_memory import SourceEntry, SupportMemory, UnknownEntryError

DIM = 8
N_SOURCES = 10
CLASS_POOL = ["c0", "c1", "c2", "c3", "c4"]
FINGERPRINT = {"model": "test", "dim": DIM}
COMPACT_MIN_DEAD = 12  # compact often, so kills also land inside compactions


def source_rows(source_id: str, version: str) -> tuple[np.ndarray, list[str]]:
    """The unit vectors and class names that source `source_id` holds at `version`."""
    rng = np.random.default_rng(zlib.crc32(f"{source_id}/{version}".encode()))
    n = int(rng.integers(1, 6))
    names = [CLASS_POOL[i] for i in rng.integers(0, len(CLASS_POOL), size=n)]
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), names


def script_ops(seed: int, n_ops: int) -> list[tuple]:
    """The operation script: ("put", [(source, version), ...]) | ("remove", source) | ("remove_class", c)."""
    rng = np.random.default_rng(seed)
    ops: list[tuple] = []
    for i in range(n_ops):
        roll = rng.random()
        if roll < 0.55:
            source = f"s{rng.integers(N_SOURCES)}"
            version = f"{seed}-{i}" if rng.random() < 0.8 else f"{seed}-{max(i - 1, 0)}"
            ops.append(("put", [(source, version)]))
        elif roll < 0.75:
            sources = rng.choice(N_SOURCES, size=3, replace=False)
            ops.append(("put", [(f"s{s}", f"{seed}-{i}") for s in sources]))
        elif roll < 0.93:
            ops.append(("remove", f"s{rng.integers(N_SOURCES)}"))
        else:
            ops.append(("remove_class", CLASS_POOL[int(rng.integers(len(CLASS_POOL)))]))
    return ops


def run_ops(memory: SupportMemory, seed: int, n_ops: int) -> None:
    for op in script_ops(seed, n_ops):
        if op[0] == "put":
            entries = []
            for source, version in op[1]:
                vectors, names = source_rows(source, version)
                entries.append(SourceEntry(source, vectors, names, content_key=version))
            memory.put_sources(entries, fingerprint=FINGERPRINT)
        else:
            with contextlib.suppress(UnknownEntryError):
                memory.remove_source(op[1]) if op[0] == "remove" else memory.remove_class(op[1])


def run_adds(memory: SupportMemory, prefix: str, n: int) -> None:
    for i in range(n):
        vectors, names = source_rows(f"{prefix}-{i}", "v")
        memory.put_source(f"{prefix}-{i}", vectors, names, fingerprint=FINGERPRINT, content_key="v")


def main(argv: list[str]) -> None:
    mode, path = argv[0], argv[1]
    memory = SupportMemory.open(path, compact_min_dead=COMPACT_MIN_DEAD)
    print("ready", flush=True)
    if mode == "ops":
        run_ops(memory, int(argv[2]), int(argv[3]))
    elif mode == "add":
        run_adds(memory, argv[2], int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
