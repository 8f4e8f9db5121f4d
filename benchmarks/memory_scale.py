"""What adding one image costs a support memory of 10k, 100k and 1M prototypes, and what incremental
index updates do to recall.

    python benchmarks/memory_scale.py [--sizes 10000,100000,1000000] [--adds 1000] [--location DIR|s3://...]

Each memory holds N one-row sources, as rns stores them (one prototype per image and class; synthetic,
seeded, the data of benchmarks/retrieval.py: d=512 unit vectors around 4000 centres, cosine ~0.8 to their
centre; queries cosine ~0.7), with 11 class names. "Add one image" commits 11 new
one-row sources in one `put_sources` call, as `rns add-support` does for a photo with 11 labelled classes.

For every size it prints:
- the time and the bytes written by one add: median, max and mean over `--adds` adds (bytes = new or
  changed objects under the memory, data, log and index alike, found by listing before and after each
  add; the mean includes the checkpoints, which are amortised over many adds);
- recall@4 of the approximate index (the IVF index extended in place by the adds) against exact search,
  for 1,000 queries, after `--adds` incremental adds, then after a fresh build (`reindex`).

Run it from another checkout (PYTHONPATH=that checkout) to measure an older storage design with the same
script: the recall part is skipped where `reindex` does not exist.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import fsspec
import numpy as np

from support_memory import IndexConfig, SourceEntry, SupportMemory

DIM = 512
CLASSES = [f"class{i}" for i in range(11)]
FINGERPRINT = {"benchmark": "memory_scale", "dim": DIM}
BUILD_BATCH = 50_000


def unit_rows(rng: np.random.Generator, centres: np.ndarray, n: int, noise: float = 0.75) -> np.ndarray:
    picks = centres[rng.integers(0, len(centres), size=n)]
    vectors = picks + rng.standard_normal(picks.shape, dtype=np.float32) * np.float32(noise / np.sqrt(DIM))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def entries(rng: np.random.Generator, centres: np.ndarray, first: int, n: int) -> list[SourceEntry]:
    vectors = unit_rows(rng, centres, n)
    names = [CLASSES[(first + i) % 11] for i in range(n)]
    return [SourceEntry(f"img{(first + i) // 11}#{names[i]}", vectors[i : i + 1], [names[i]],
                        content_key=str(first + i)) for i in range(n)]  # fmt: skip


def listing(location: str) -> dict[str, tuple]:
    """Every object under the memory with what changes when it is rewritten (size, time, inode or etag)."""
    if "://" not in location:  # a folder: os.walk is far cheaper than fsspec's find
        found = {}
        for folder, _dirs, names in os.walk(location):
            for name in names:
                info = os.stat(os.path.join(folder, name))
                found[os.path.join(folder, name)] = (info.st_size, info.st_mtime_ns, info.st_ino)
        return found
    fs, root = fsspec.core.url_to_fs(location)
    fs.invalidate_cache()
    found = fs.find(root, detail=True)
    return {k: (v.get("size"), v.get("mtime") or v.get("LastModified"), v.get("ino") or v.get("ETag"))
            for k, v in found.items()}  # fmt: skip


def written_bytes(before: dict[str, tuple], after: dict[str, tuple]) -> int:
    return int(sum(sig[0] or 0 for key, sig in after.items() if before.get(key) != sig))


def recall_at_4(memory: SupportMemory, queries: np.ndarray) -> float:
    approx = memory.search(queries, 4).rows
    exact = memory.search(queries, 4, exact=True).rows
    return float(np.mean([len(set(a) & set(e)) / 4 for a, e in zip(approx, exact, strict=True)]))


def run_size(n: int, args: argparse.Namespace, location: str) -> dict[str, object]:
    rng = np.random.default_rng(n)
    centres = rng.standard_normal((4000, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    config = IndexConfig(approximate_threshold=1, background=False) if hasattr(IndexConfig(), "background") \
        else IndexConfig(approximate_threshold=1)  # fmt: skip
    memory = SupportMemory.open(location, index_config=config)
    start = time.perf_counter()
    for first in range(0, n, BUILD_BATCH):
        memory.put_sources(entries(rng, centres, first, min(BUILD_BATCH, n - first)), fingerprint=FINGERPRINT)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    memory.build_index()
    index_s = time.perf_counter() - start
    times, sizes = [], []
    next_first = n
    start_all = time.perf_counter()
    for _ in range(args.adds):
        before = listing(location)
        batch = entries(rng, centres, next_first, 11)
        next_first += 11
        start = time.perf_counter()
        memory.put_sources(batch, fingerprint=FINGERPRINT)
        times.append(time.perf_counter() - start)
        sizes.append(written_bytes(before, listing(location)))
    result: dict[str, object] = {
        "n": n, "build_s": build_s, "index_s": index_s,
        "add_ms_median": 1e3 * statistics.median(times), "add_ms_max": 1e3 * max(times),
        "add_bytes_median": statistics.median(sizes), "add_bytes_max": max(sizes),
        "add_bytes_mean": statistics.mean(sizes), "adds_total_s": time.perf_counter() - start_all,
    }  # fmt: skip
    queries = unit_rows(np.random.default_rng(7), centres, 1000, noise=1.0)
    if hasattr(memory, "reindex"):
        result["recall_incremental"] = recall_at_4(memory, queries)
        memory.reindex()
        result["recall_fresh"] = recall_at_4(memory, queries)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--adds", type=int, default=1000, help="incremental adds of one image (11 rows)")
    parser.add_argument("--location", default=None, help="a folder or URL prefix (default: a temp folder)")
    args = parser.parse_args()
    base = args.location or tempfile.mkdtemp(prefix="rns-memory-scale-")
    print(f"| prototypes | add one image: time (median / max) | bytes written (median / max / mean) | "
          f"recall@4 after {args.adds} adds / after a fresh build |")
    print("|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        r = run_size(n, args, f"{base.rstrip('/')}/memory-{n}")
        recall = "n/a"
        if "recall_fresh" in r:
            recall = f"{r['recall_incremental']:.3f} / {r['recall_fresh']:.3f}"
        print(f"| {n:,} | {r['add_ms_median']:.0f} / {r['add_ms_max']:.0f} ms | "
              f"{r['add_bytes_median'] / 1024:.1f} / {r['add_bytes_max'] / 1024:.0f} / "
              f"{r['add_bytes_mean'] / 1024:.1f} KiB | {recall} |", flush=True)
        print(f"  (build {r['build_s']:.0f} s, first index build {r['index_s']:.0f} s, "
              f"{args.adds} adds {r['adds_total_s']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
