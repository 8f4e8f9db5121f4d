"""Optional approximate index (FAISS) for large memories, persisted beside the zarr store.

Exact search costs q x n x d multiply-adds: about 0.5 T for one 448-px image (1036 patches) against a
million rows, seconds on a small CPU. Above `IndexConfig.approximate_threshold` live rows (and only when
`faiss` is installed) the memory searches an inverted-file index instead:

    IVF{nlist},SQfp16   nlist ~ 4 sqrt(n) lists chosen by a flat (exact, BLAS) coarse quantizer, rows kept
                        as float16 and scored directly (not as residuals): the same numbers as the zarr
                        rows, so the scores of the candidates it returns are exact and only the candidate
                        set is approximate. nprobe 2.

This choice was measured (benchmarks/retrieval.py, 1036 queries, d=512, 2 cores; numbers in
ARCHITECTURE.md): an HNSW graph over the list centroids missed the query's best lists (centroids of
clustered features are close to random points in 512-d, the worst case for a graph), so it needed 8
probes and still lost recall; exact list choice by one matrix product finds them, and 2 probes then beat
it on both time and recall (1M rows: 46 ms, recall@4 0.999, against 145 ms, 0.952). Smaller memories have
smaller lists (~sqrt(n)/4 rows), so more lists are probed there: at least `min_scanned_rows` per query.
PQ codes (even with exact re-ranking) lost too much recall
among the close neighbours inside one cluster; 8-bit scalar codes capped recall@4 near 0.93.

Queries that are exact duplicates (flat image regions give identical patch features) are searched once.

The index covers rows [0, n_indexed) of one generation of one store; `index/meta.json` names the saved
index object (written before the meta, under a unique name) and is its commit point. It is:
- used only if its store id and generation match the state, else ignored and rebuilt (compaction renumbers
  rows, so an index of another generation would point at wrong rows);
- updated incrementally and never rewritten for an add: committed rows past n_indexed are searched
  exactly while they are few (`exact_tail_rows`), then added to the loaded index in RAM (each process
  adds the rows committed since the save: cheap next to a search). Writes therefore stay proportional to
  what they add, on a local disk and on an object store alike;
- rebuilt only when its quality drops: once the rows it was trained and sized for have grown by
  `rebuild_growth` (the lists were chosen for the smaller memory and grow long and unbalanced), a
  rebuild starts in a background thread of the searching process (searches go on with the old index) and
  is saved when done; `SupportMemory.reindex()` (`rns memory reindex`) does it now;
- told about removals by a selector: rows outside the state's live ranges are excluded at search time.
Restricting a search to a few classes falls back to the exact search (an IVF probe of a few lists would
often find too few rows of a rare class).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from support_memory.oserrors import translate_os_error
from support_memory.search import DistinctQueries, SearchResult, exact_search, merge_results

if TYPE_CHECKING:
    from support_memory.manifest import Manifest
    from support_memory.rows import RowArrays
    from support_memory.snapshot import Snapshot
    from support_memory.storage import Storage

INDEX = "index"
META_KEY = f"{INDEX}/meta.json"
# Saved index objects that a newer meta no longer names are deleted once this old (a reader may be loading
# one right now).
STALE_INDEX_S = 3600.0
# Bumped when the way indexes are built changes: an index saved by an older layout (e.g. the HNSW coarse
# quantizer searched with 8 probes) would lose recall under today's settings, so it is rebuilt.
INDEX_LAYOUT = 2
BUILD_BLOCK_ROWS = 65536


@dataclass(frozen=True)
class IndexConfig:
    """When and how the approximate index is used.

    enabled: False never uses an index (exact search always).
    approximate_threshold: live rows from which searches are approximate (below it, exact is fast enough).
    nprobe: inverted lists visited per query at least (recall vs time, see benchmarks/retrieval.py).
    min_scanned_rows: more lists are visited when nprobe lists hold fewer rows than this on average: in a
      small memory a list (~sqrt(n)/4 rows) can be smaller than the group of rows a query's neighbours
      come from (20k clustered rows, 512 lists: recall@4 0.94 with 2 probes).
    factory: a faiss index_factory string to use instead of the default "IVF{nlist},SQfp16".
    exact_tail_rows: committed rows not yet in the index that are searched exactly and merged; beyond
      this they are added to the loaded index first (scanning them per query would cost more).
    rebuild_growth: rebuild (in the background) once the rows have grown by this fraction since the
      saved index was trained; 1.0 = when the memory has doubled.
    background: False rebuilds in the searching thread instead (tests, benchmarks).
    """

    enabled: bool = True
    approximate_threshold: int = 200_000
    nprobe: int = 2
    min_scanned_rows: int = 400
    factory: str | None = None
    exact_tail_rows: int = 256
    rebuild_growth: float = 1.0
    background: bool = True
    train_rows_per_list: int = 40


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def default_factory(n_rows: int) -> str:
    """IVF with ~4 sqrt(n) lists (a power of two, 64..16384) and a flat coarse quantizer, float16 rows.

    A query costs nlist inner products to choose lists (one matrix product for all queries, fast per
    product) plus nprobe * n / nlist to scan them (float16 decoding, slower per product). Measured at 1M
    rows, nprobe 2: 2048 lists 63 ms, 4096 lists 41 ms, 8192 lists 41 ms with less recall (0.977 against
    0.999). The cap keeps the quantizer's matrix product small.
    """
    nlist = 2 ** int(round(math.log2(max(4 * math.sqrt(max(n_rows, 1)), 64))))
    # A tiny memory (an explicit reindex) cannot train more lists than it has rows: keep >= 8 rows a list.
    nlist = min(nlist, 2 ** int(math.log2(max(n_rows // 8, 1))))
    return f"IVF{min(nlist, 16384)},SQfp16"


@dataclass
class _Loaded:
    index: Any
    store_id: str
    generation: int
    n_indexed: int
    factory: str
    n_trained_for: int  # rows the memory had when this index was trained (its lists were sized for them)
    n_saved: int = -1  # rows in the saved copy (-1: not saved by this process)


class IndexManager:
    """Builds, loads, updates, saves and searches the approximate index of one memory."""

    def __init__(self, storage: Storage, config: IndexConfig) -> None:
        self.storage = storage
        self.config = config
        self._loaded: _Loaded | None = None
        self._rebuilding: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- policy ---------------------------------------------------------------------------------------------
    def wanted(self, snapshot: Snapshot) -> bool:
        large = snapshot.n_live >= self.config.approximate_threshold
        return self.config.enabled and large and faiss_available()

    def describe(self, snapshot: Snapshot) -> dict[str, Any] | None:
        meta = self._read_meta()
        if meta is None:
            return None
        valid = self._matches(meta["store_id"], meta["generation"], snapshot.manifest)
        valid = valid and meta.get("layout", 1) == INDEX_LAYOUT
        return {"factory": meta["factory"], "n_indexed": meta["n_indexed"], "valid": valid,
                "n_trained_for": meta.get("n_trained_for", meta["n_indexed"])}  # fmt: skip

    def stale(self, loaded: _Loaded, manifest: Manifest) -> bool:
        """Whether the rows have outgrown what the index was trained and sized for."""
        return manifest.n_rows > (1.0 + self.config.rebuild_growth) * max(loaded.n_trained_for, 1)

    # -- search ---------------------------------------------------------------------------------------------
    def search(
        self,
        row_arrays: RowArrays,
        snapshot: Snapshot,
        queries: np.ndarray,
        k: int,
        allowed_classes: np.ndarray | None,
    ) -> SearchResult | None:
        """Approximate top-k, or None when the caller should search exactly (class restriction)."""
        if allowed_classes is not None:
            return None
        import faiss

        with self._lock:
            loaded = self._ready(row_arrays, snapshot)
        manifest = snapshot.manifest
        n_covered = min(loaded.n_indexed, manifest.n_rows)
        live = snapshot.live_mask()
        distinct = DistinctQueries(queries)
        params = faiss.SearchParametersIVF()
        params.nprobe = self.nprobe(loaded)
        bitmap = None
        if loaded.n_indexed > n_covered or not live[:n_covered].all():
            bitmap = np.packbits(live[:n_covered], bitorder="little")
            params.sel = faiss.IDSelectorBitmap(n_covered, faiss.swig_ptr(bitmap))
        scores, rows = loaded.index.search(distinct.rows, k, params=params)
        result = SearchResult(scores=scores.astype(np.float32), rows=rows.astype(np.int64))
        del bitmap  # the selector points into it; keep it alive until the search is done
        if n_covered < manifest.n_rows:
            tail = row_arrays.blocks(snapshot, n_covered, manifest.n_rows, distinct.rows.shape[0], None)
            result = merge_results([result, exact_search(distinct.rows, k, tail)], k)
        return distinct.scatter(result)

    def nprobe(self, loaded: _Loaded) -> int:
        """Lists to visit: config.nprobe, or enough lists to scan config.min_scanned_rows rows on average."""
        import faiss

        if "IVF" not in loaded.factory:
            return self.config.nprobe
        nlist = faiss.extract_index_ivf(loaded.index).nlist
        rows_per_list = max(loaded.n_indexed / nlist, 1.0)
        wanted = max(self.config.nprobe, math.ceil(self.config.min_scanned_rows / rows_per_list))
        return min(wanted, nlist)

    def build(
        self, row_arrays: RowArrays, snapshot: Snapshot, *, retrain: bool = False
    ) -> dict[str, Any] | None:
        """Bring the index up to date and save it (`retrain`: train afresh); None when faiss is missing."""
        if not faiss_available() or snapshot.manifest.n_rows == 0:
            return None
        with self._lock:
            if retrain:
                self._loaded = None
                loaded = self._train(row_arrays, snapshot)
            else:
                loaded = self._ready(row_arrays, snapshot)
            self._add_rows(row_arrays, snapshot, loaded, snapshot.manifest.n_rows)
            self._loaded = loaded
            if loaded.n_saved != loaded.n_indexed:
                self._save(loaded, strict=True)
        return self.describe(snapshot)

    # -- maintenance ----------------------------------------------------------------------------------------
    def _ready(self, row_arrays: RowArrays, snapshot: Snapshot) -> _Loaded:
        manifest = snapshot.manifest
        loaded = self._loaded
        if loaded is None or not self._matches(loaded.store_id, loaded.generation, manifest):
            loaded = self._load(manifest)
        if loaded is None:
            loaded = self._train(row_arrays, snapshot)
            self._add_rows(row_arrays, snapshot, loaded, manifest.n_rows)
            self._save(loaded, strict=False)
        elif manifest.n_rows - loaded.n_indexed > self.config.exact_tail_rows:
            self._add_rows(row_arrays, snapshot, loaded, manifest.n_rows)
        self._loaded = loaded
        if self.stale(loaded, manifest):
            self._rebuild(row_arrays, snapshot)
        return self._loaded

    def _rebuild(self, row_arrays: RowArrays, snapshot: Snapshot) -> None:
        """Train a fresh index for today's rows: now, or in a background thread while searches go on."""

        def run() -> None:
            fresh = self._train(row_arrays, snapshot)
            self._add_rows(row_arrays, snapshot, fresh, snapshot.manifest.n_rows)
            self._save(fresh, strict=False)
            # In the foreground this runs inside _ready, which already holds the lock.
            with self._lock if self.config.background else contextlib.nullcontext():
                current = self._loaded
                if current is None or current.generation == fresh.generation:
                    self._loaded = fresh

        if not self.config.background:
            run()
            return
        if self._rebuilding is None or not self._rebuilding.is_alive():
            self._rebuilding = threading.Thread(target=run, name="rns-index-rebuild", daemon=True)
            self._rebuilding.start()

    @staticmethod
    def _matches(store_id: str, generation: int, manifest: Manifest) -> bool:
        return store_id == manifest.store_id and generation == manifest.generation

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.storage.read(META_KEY))
        except (FileNotFoundError, ValueError):
            return None

    def _load(self, manifest: Manifest) -> _Loaded | None:
        import faiss

        meta = self._read_meta()
        if meta is None or not self._matches(meta.get("store_id", ""), meta.get("generation", -1), manifest):
            return None
        if meta.get("layout", 1) != INDEX_LAYOUT:
            return None
        try:
            blob = self.storage.read(f"{INDEX}/{meta['file']}")
            index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
        except (RuntimeError, KeyError, FileNotFoundError):  # missing or damaged: rebuild, not fail a search
            return None
        if index.ntotal != meta["n_indexed"] or index.d != manifest.dim:
            return None
        n_indexed = int(meta["n_indexed"])
        return _Loaded(index, meta["store_id"], meta["generation"], n_indexed, meta["factory"],
                       int(meta.get("n_trained_for", n_indexed)), n_saved=n_indexed)  # fmt: skip

    def _train(self, row_arrays: RowArrays, snapshot: Snapshot) -> _Loaded:
        import faiss

        manifest = snapshot.manifest
        factory = self.config.factory or default_factory(snapshot.n_live)
        index = faiss.index_factory(manifest.dim, factory, faiss.METRIC_INNER_PRODUCT)
        nlist = 1
        if "IVF" in factory:
            ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
            nlist = ivf.nlist
            if isinstance(ivf, faiss.IndexIVFScalarQuantizer):
                # Score the stored float16 rows themselves, not residuals from their list centre: the
                # scores then equal the exact search's, and scanning skips the centre term.
                ivf.by_residual = False
        n_train = min(manifest.n_rows, max(self.config.train_rows_per_list * nlist, 10_000))
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(manifest.n_rows, size=n_train, replace=False))
        vectors = row_arrays.gather(snapshot, sample)
        index.train(vectors)
        return _Loaded(index, manifest.store_id, manifest.generation, 0, factory, manifest.n_rows)

    def _add_rows(self, row_arrays: RowArrays, snapshot: Snapshot, loaded: _Loaded, stop: int) -> None:
        """Add committed rows [n_indexed, stop) in order, so that faiss ids equal row numbers."""
        for start in range(loaded.n_indexed, stop, BUILD_BLOCK_ROWS):
            vectors16, _ = row_arrays.read(snapshot, start, min(stop, start + BUILD_BLOCK_ROWS))
            loaded.index.add(vectors16.astype(np.float32))
        loaded.n_indexed = max(loaded.n_indexed, stop)

    def _save(self, loaded: _Loaded, *, strict: bool) -> None:
        """Persist the index object, then the meta that names it (the commit point). A failure (a read-only
        memory, a full disk) keeps the index in this process only, unless `strict` (an explicit reindex)."""
        import faiss

        name = f"faiss-{int(time.time())}-{uuid.uuid4().hex[:8]}.index"
        try:
            self.storage.write(f"{INDEX}/{name}", faiss.serialize_index(loaded.index).tobytes())
            meta = {
                "store_id": loaded.store_id,
                "generation": loaded.generation,
                "n_indexed": loaded.n_indexed,
                "n_trained_for": loaded.n_trained_for,
                "factory": loaded.factory,
                "file": name,
                "layout": INDEX_LAYOUT,
            }
            self.storage.write(META_KEY, json.dumps(meta, indent=1, sort_keys=True).encode())
            loaded.n_saved = loaded.n_indexed
            for old in self.storage.list(INDEX):
                created = _index_created_s(old)
                if old != name and created is not None and created < time.time() - STALE_INDEX_S:
                    self.storage.delete(f"{INDEX}/{old}")
        except OSError as error:
            if strict:
                translated = translate_os_error(error, self.storage.location, "saving the search index")
                raise translated or error from None


def _index_created_s(name: str) -> float | None:
    parts = name.split("-")
    return float(parts[1]) if len(parts) == 3 and parts[0] == "faiss" and parts[1].isdigit() else None
