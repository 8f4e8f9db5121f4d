"""Retrieval speed of the support memory: one image's patches against 10k / 100k / 1M stored prototypes.

    /work/venv/bin/python benchmarks/retrieval.py [--sizes 10000,100000,1000000] [--repeats 5]

Data (synthetic, seeded): `--clusters` random unit centres in d=512; stored prototypes are centre + Gaussian
noise, renormalised (cosine to their centre ~0.8); the 1036 queries (one 448-px image, a 37 x 28 patch
grid) are drawn the same way with more noise (cosine ~0.7), so true neighbours sit inside one cluster and
rank among near-ties, as patch features and per-image prototypes of one class do. Rows go through
SupportMemory (float16 on disk), so "exact" is the real chunked exact search and recall@4 compares the
approximate index with it. Prints medians over repeats; index build and incremental update times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from support_memory import IndexConfig, SourceEntry, SupportMemory
from support_memory.index import default_factory, faiss_available

DIM = 512
N_QUERIES = 37 * 28
ROWS_PER_SOURCE = 1000
NAME = "object"


def clustered(rng: np.random.Generator, centres: np.ndarray, n: int, noise: float) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), size=n)]
    vectors = picks + rng.standard_normal(picks.shape, dtype=np.float32) * np.float32(noise / np.sqrt(DIM))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / exact.shape[1] for a, e in zip(approx, exact, strict=True)]))


def run_size(n: int, args: argparse.Namespace, root: Path) -> None:
    rng = np.random.default_rng(n)
    centres = rng.standard_normal((args.clusters, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    config = IndexConfig(approximate_threshold=1, nprobe=args.nprobe)
    memory = SupportMemory.open(root / f"memory-{n}", index_config=config)
    fingerprint = {"benchmark": "retrieval", "dim": DIM}
    start = time.perf_counter()
    for first in range(0, n, 100 * ROWS_PER_SOURCE):
        stop = min(n, first + 100 * ROWS_PER_SOURCE)
        vectors = clustered(rng, centres, stop - first, noise=0.75)
        entries = [
            SourceEntry(f"s{s}", vectors[s - first : s - first + ROWS_PER_SOURCE], [NAME] * ROWS_PER_SOURCE)
            for s in range(first, stop, ROWS_PER_SOURCE)
        ]
        memory.put_sources(entries, fingerprint=fingerprint)
    fill_s = time.perf_counter() - start
    queries = clustered(rng, centres, N_QUERIES, noise=1.0)
    exact_repeats = args.repeats if n <= 100_000 else 1
    exact_s, exact = timed(lambda: memory.search(queries, 4, exact=True), exact_repeats)
    line = f"n={n:>9,}  fill {fill_s:6.1f} s  exact {1000 * exact_s:9.1f} ms (median of {exact_repeats})"
    if not faiss_available():
        print(line + "  approximate: faiss not installed", flush=True)
        return
    start = time.perf_counter()
    memory.build_index()
    build_s = time.perf_counter() - start
    approx_s, approx = timed(lambda: memory.search(queries, 4), args.repeats)
    nprobe = memory._index.nprobe(memory._index._loaded)  # effective: at least min_scanned_rows per query
    recall = recall_at_k(approx.rows, exact.rows)
    # Incremental update: add 1% more rows; the first search folds them into the loaded index (more than
    # IndexConfig.exact_tail_rows), later ones are back to normal; build_index() then saves the index.
    extra = clustered(rng, centres, max(n // 100, 1000), noise=0.75)
    memory.put_source("extra", extra, ["object"] * len(extra), fingerprint=fingerprint)
    first_s, _ = timed(lambda: memory.search(queries, 4), 1)
    after_s, _ = timed(lambda: memory.search(queries, 4), args.repeats)
    start = time.perf_counter()
    memory.build_index()
    save_s = time.perf_counter() - start
    print(
        f"{line}\n    {default_factory(n)} nprobe={nprobe}: build {build_s:6.1f} s, "
        f"search {1000 * approx_s:7.1f} ms (median of {args.repeats}), recall@4 {recall:.3f}\n"
        f"    +{len(extra)} rows: first search {1000 * first_s:7.1f} ms, then {1000 * after_s:7.1f} ms, "
        f"save {save_s:5.2f} s",
        flush=True,
    )


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated stored-row counts")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clusters", type=int, default=4000)
    parser.add_argument("--nprobe", type=int, default=IndexConfig().nprobe, help="minimum lists probed")
    parser.add_argument("--dir", default=None, help="where to build the memories (default: a temp dir)")
    args = parser.parse_args()
    print(
        f"data: {args.clusters} random unit centres, d={DIM}; rows = centre + noise (cos ~0.8), float16; "
        f"{N_QUERIES} queries (37x28 patches) = centre + noise (cos ~0.7); k=4",
        flush=True,
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            run_size(n, args, Path(tmp))


if __name__ == "__main__":
    main()
