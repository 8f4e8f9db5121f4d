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

The index covers rows [0, n_indexed) of one generation of one store; `index/meta.json` (replaced
atomically, after the index file it names is fsynced) is its commit point. It is:
- used only if its store id and generation match the manifest, else ignored and rebuilt (compaction
  renumbers rows, so an index of another generation would point at wrong rows);
- updated incrementally: a few committed rows past n_indexed (up to `exact_tail_rows`) are searched
  exactly and merged; more are added to the loaded index (cheaper than scanning them exactly for every
  query), which is saved once the rows missing from the saved file exceed `max_tail_fraction`, if no
  writer holds the lock;
- told about removals by a selector: rows outside the snapshot's live ranges are excluded at search time.
Restricting a search to a few classes falls back to the exact search (an IVF probe of a few lists would
often find too few rows of a rare class).
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from support_memory import durability
from support_memory.locking import WriterLock
from support_memory.oserrors import translate_os_error
from support_memory.search import DistinctQueries, SearchResult, exact_search, merge_results

if TYPE_CHECKING:
    from support_memory.manifest import Manifest
    from support_memory.store import SupportMemory, _Snapshot

META_NAME = "meta.json"
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
    max_tail_fraction: the share of rows missing from the saved index file that triggers a save.
    """

    enabled: bool = True
    approximate_threshold: int = 200_000
    nprobe: int = 2
    min_scanned_rows: int = 400
    factory: str | None = None
    exact_tail_rows: int = 256
    max_tail_fraction: float = 0.05
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
    return f"IVF{min(nlist, 16384)},SQfp16"


@dataclass
class _Loaded:
    index: Any
    store_id: str
    generation: int
    n_indexed: int
    factory: str
    n_saved: int  # rows covered by the saved file; the loaded index may hold more


class IndexManager:
    """Builds, loads, updates, saves and searches the approximate index of one memory directory."""

    def __init__(self, directory: Path, config: IndexConfig) -> None:
        self.directory = directory
        self.config = config
        self._loaded: _Loaded | None = None

    # -- policy ---------------------------------------------------------------------------------------------
    def wanted(self, manifest: Manifest) -> bool:
        large = manifest.n_live >= self.config.approximate_threshold
        return self.config.enabled and large and faiss_available()

    def describe(self, manifest: Manifest) -> dict[str, Any] | None:
        meta = self._read_meta()
        if meta is None:
            return None
        valid = self._matches(meta["store_id"], meta["generation"], manifest)
        valid = valid and meta.get("layout", 1) == INDEX_LAYOUT
        return {"factory": meta["factory"], "n_indexed": meta["n_indexed"], "valid": valid}

    # -- search ---------------------------------------------------------------------------------------------
    def search(
        self,
        memory: SupportMemory,
        snapshot: _Snapshot,
        queries: np.ndarray,
        k: int,
        allowed_classes: np.ndarray | None,
    ) -> SearchResult | None:
        """Approximate top-k, or None when the caller should search exactly (class restriction)."""
        if allowed_classes is not None:
            return None
        import faiss

        loaded = self._ready(memory, snapshot)
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
            tail = memory._blocks(snapshot, n_covered, manifest.n_rows, distinct.rows.shape[0], None)
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

    def build(self, memory: SupportMemory, snapshot: _Snapshot) -> dict[str, Any] | None:
        """Bring the index up to date with the snapshot and save it; None when faiss is not installed."""
        if not faiss_available() or snapshot.manifest.n_rows == 0:
            return None
        self._ready(memory, snapshot, force_save=True)
        return self.describe(snapshot.manifest)

    # -- maintenance ----------------------------------------------------------------------------------------
    def _ready(self, memory: SupportMemory, snapshot: _Snapshot, force_save: bool = False) -> _Loaded:
        manifest = snapshot.manifest
        loaded = self._loaded
        if loaded is None or not self._matches(loaded.store_id, loaded.generation, manifest):
            loaded = self._load(manifest)
        trained = loaded is None
        if loaded is None:
            loaded = self._train(memory, snapshot)
        tail = manifest.n_rows - loaded.n_indexed
        if tail > 0 and (force_save or trained or tail > self.config.exact_tail_rows):
            self._add_rows(memory, snapshot, loaded, manifest.n_rows)
        self._loaded = loaded
        unsaved = loaded.n_indexed - loaded.n_saved
        if force_save or trained or unsaved > self.config.max_tail_fraction * manifest.n_rows:
            self._save(memory, loaded, wait=force_save)
        return loaded

    @staticmethod
    def _matches(store_id: str, generation: int, manifest: Manifest) -> bool:
        return store_id == manifest.store_id and generation == manifest.generation

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.directory / META_NAME).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _load(self, manifest: Manifest) -> _Loaded | None:
        import faiss

        meta = self._read_meta()
        if meta is None or not self._matches(meta.get("store_id", ""), meta.get("generation", -1), manifest):
            return None
        if meta.get("layout", 1) != INDEX_LAYOUT:
            return None
        try:
            index = faiss.read_index(str(self.directory / meta["file"]))
        except (RuntimeError, KeyError):  # missing or damaged: rebuild rather than fail a search
            return None
        if index.ntotal != meta["n_indexed"] or index.d != manifest.dim:
            return None
        n_indexed = int(meta["n_indexed"])
        return _Loaded(index, meta["store_id"], meta["generation"], n_indexed, meta["factory"], n_indexed)

    def _train(self, memory: SupportMemory, snapshot: _Snapshot) -> _Loaded:
        import faiss

        manifest = snapshot.manifest
        factory = self.config.factory or default_factory(manifest.n_live)
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
        vectors = memory._gather(snapshot, sample)
        index.train(vectors)
        return _Loaded(index, manifest.store_id, manifest.generation, 0, factory, 0)

    def _add_rows(self, memory: SupportMemory, snapshot: _Snapshot, loaded: _Loaded, stop: int) -> None:
        """Add committed rows [n_indexed, stop) in order, so that faiss ids equal row numbers."""
        generation = snapshot.manifest.generation
        vectors_array = memory._array(generation, "vectors")
        for start in range(loaded.n_indexed, stop, BUILD_BLOCK_ROWS):
            block = np.asarray(vectors_array[start : min(stop, start + BUILD_BLOCK_ROWS)], dtype=np.float32)
            loaded.index.add(block)
        loaded.n_indexed = stop

    def _save(self, memory: SupportMemory, loaded: _Loaded, wait: bool) -> None:
        """Persist index then meta (the commit point); skipped (retried at a later search) when another
        writer holds the lock."""
        import faiss

        lock = WriterLock(memory.path)
        if wait:
            lock.acquire()
        else:
            try:
                if not lock.try_acquire():
                    return
            except OSError:  # a read-only memory: the index stays in this process, searches still work
                return
        n_saving = loaded.n_indexed
        try:
            self.directory.mkdir(exist_ok=True)
            name = f"faiss-{uuid.uuid4().hex[:12]}.index"
            faiss.write_index(loaded.index, str(self.directory / name))
            durability.fsync_files([self.directory / name])
            meta = {
                "store_id": loaded.store_id,
                "generation": loaded.generation,
                "n_indexed": loaded.n_indexed,
                "factory": loaded.factory,
                "file": name,
                "layout": INDEX_LAYOUT,
            }
            durability.atomic_write_json(self.directory / META_NAME, meta)
            for old in self.directory.glob("faiss-*.index"):
                if old.name != name:
                    old.unlink(missing_ok=True)
            for tmp in self.directory.glob(f"{META_NAME}.*.tmp"):
                tmp.unlink(missing_ok=True)
            loaded.n_saved = n_saving
        except OSError as error:
            # Saving the index is an optimisation during a search: a full disk must not fail the search.
            if wait:
                raise translate_os_error(error, memory.path, "saving the search index") or error from None
        finally:
            lock.release()
