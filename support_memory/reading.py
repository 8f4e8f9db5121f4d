"""The read side of a `SupportMemory`: its tables, row lookups, statistics and nearest-neighbour search.

A mixin so that `store.py` (opening, writing, repair) stays one job: everything here only reads the state
of the commit the object holds (`self._state`) through `RowArrays` (`self._rows`) and the optional index
(`self._index`); nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from support_memory.errors import UnknownEntryError
from support_memory.identity import content_id
from support_memory.records import ClassInfo, SourceInfo
from support_memory.search import SearchResult, class_filter, exact_search, validate_queries

if TYPE_CHECKING:
    from support_memory.index import IndexManager
    from support_memory.rows import RowArrays
    from support_memory.snapshot import Snapshot
    from support_memory.storage import Storage


class MemoryReading:
    """What every reader of a memory asks: classes, sources, rows, stats, search (see `SupportMemory`)."""

    path: Path | str
    storage: Storage
    _rows: RowArrays
    _index: IndexManager

    @property
    def _state(self) -> Snapshot:  # provided by SupportMemory
        raise NotImplementedError

    def classes(self) -> list[ClassInfo]:
        """The class table, by id."""
        manifest = self._state.manifest
        n_sources = {record.id: 0 for record in manifest.classes.values()}
        for source in manifest.sources.values():
            for name in source.class_names:
                record = manifest.class_by_name(name)
                if record is not None:
                    n_sources[record.id] += 1
        return [
            ClassInfo(c.id, c.name, c.text, c.text is not None, c.count, n_sources[c.id])
            for c in sorted(manifest.classes.values(), key=lambda c: c.id)
        ]

    def sources(self) -> list[SourceInfo]:
        """The sources, in the order they were (last) put."""
        return [
            SourceInfo(s.source_id, s.content_key, tuple(s.class_names), s.n_rows, dict(s.meta), s.pruned)
            for s in sorted(self._state.manifest.sources.values(), key=lambda s: s.num)
        ]

    def content_id(self) -> str:
        """An identity of everything a reader gets from this memory (see identity.py).

        It changes whenever a prototype, class or text prompt changes, and differs between memories of
        different content even at the same commit number, so it can key caches of results.
        """
        return content_id(self._state.manifest)

    def live_rows(self) -> np.ndarray:
        """Row numbers of every stored prototype, in storage order (what `rows()` accepts).

        Rows of removed sources are not listed, so this is the whole memory as a reader sees it.
        """
        return np.flatnonzero(self._state.live_mask()).astype(np.int64)

    def source_rows(self, source_id: str) -> np.ndarray:
        """Row numbers of one source's prototypes (for exports and tools that work per support image)."""
        record = self._state.manifest.sources.get(source_id)
        if record is None:
            raise UnknownEntryError(f"memory {self.path} holds no source {source_id!r}")
        parts = [np.arange(start, stop, dtype=np.int64) for start, stop in record.ranges]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def stats(self) -> dict[str, Any]:
        """Sizes and settings, for status displays and logs."""
        snapshot = self._state
        manifest = snapshot.manifest
        return {
            "path": str(self.path),
            "n_prototypes": snapshot.n_live,
            "n_rows_stored": manifest.n_rows,
            "n_dead_rows": manifest.n_rows - snapshot.n_live,
            "n_segments": len(manifest.segments),
            "n_classes": len(manifest.classes),
            "n_sources": len(manifest.sources),
            "dim": manifest.dim,
            "fingerprint": manifest.fingerprint,
            "generation": manifest.generation,
            "commit": manifest.seq,
            "bytes_on_disk": self.storage.size_bytes(),
            "index": self._index.describe(snapshot),
        }

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        class_ids: Sequence[int] | None = None,
        exact: bool = False,
    ) -> SearchResult:
        """The k stored prototypes with the largest inner product per query, best first.

        class_ids restricts the candidates to those classes. Large memories are searched with the
        approximate index when faiss is installed (see IndexConfig); exact=True forces the exact search.
        """
        queries = validate_queries(queries, k, self._state.manifest.dim, self.path)
        allowed_classes = class_filter(class_ids, self._state.manifest.classes, self.path)
        snapshot = self._state
        if snapshot.n_live == 0 or (allowed_classes is not None and len(allowed_classes) == 0):
            return SearchResult(
                scores=np.full((queries.shape[0], k), -np.inf, dtype=np.float32),
                rows=np.full((queries.shape[0], k), -1, dtype=np.int64),
            )
        if not exact and self._index.wanted(snapshot):
            result = self._index.search(self._rows, snapshot, queries, k, allowed_classes)
            if result is not None:
                return result
        return exact_search(queries, k, self._rows.blocks(snapshot, 0, snapshot.manifest.n_rows,
                                                     queries.shape[0], allowed_classes))  # fmt: skip

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors (float32) and class ids (int64) of live rows, as returned by `search` (no -1 entries)."""
        return self._rows.lookup(self._state, rows)

    def class_prototypes(self, class_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(class ids [c], vectors [c, d]): per class, the normalised mean of its per-source prototypes."""
        manifest = self._state.manifest
        ids = np.array(sorted(manifest.classes) if class_ids is None else list(class_ids), dtype=np.int64)
        unknown = [int(c) for c in ids if int(c) not in manifest.classes]
        if unknown:
            raise UnknownEntryError(f"memory {self.path} has no class id(s) {unknown}")
        dim = manifest.dim or 0
        if ids.size == 0:
            return ids, np.zeros((0, dim), dtype=np.float32)
        counts = np.array([manifest.classes[int(c)].count for c in ids], dtype=np.float64)
        means = self._state.sums[ids] / counts[:, None]
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        return ids, (means / np.maximum(norms, 1e-12)).astype(np.float32)
