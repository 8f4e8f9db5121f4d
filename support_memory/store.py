"""`SupportMemory`: a crash-safe zarr store of labelled prototype rows, with its class and source tables.

Layout of a memory directory:

    manifest.json            the only commit point (see manifest.py); replaced atomically
    .lock                    writer lock (see locking.py)
    zarr.json                root zarr group
    rows/g000001/vectors     float16 [capacity, d]   one generation of row arrays; rows past the
    rows/g000001/class_ids   int32   [capacity]      manifest's n_rows are uncommitted and invisible
    rows/g000001/source_nums int32   [capacity]
    sums/s00000007           float64 [n_class_ids, d] per-class sums of the stored (float16) rows,
                             copy-on-write: one array per commit that changes them
    index/                   optional approximate index (see index.py)

A write takes the lock, re-reads the committed manifest, appends new rows past the committed length,
writes a new sums array, fsyncs, then replaces the manifest. Removals only drop row ranges from the
manifest; when dead rows pile up, the same commit writes a fresh generation of arrays holding only live rows
(compaction). Old generations and sums arrays are deleted after the commit, keeping the previous one so that
readers that opened just before the commit can finish.

A `SupportMemory` object reads from the snapshot it opened (or last wrote); `refresh()` picks up commits by
other processes. Sums are exact: float16 values summed in float64 are exact, so adding and subtracting rows
never drifts.

This module is the public face; the work is done by one module per job, each importing only downwards:
snapshot.py (a committed state and reading it), rows.py (the row arrays: the only code touching them),
draft.py (a write being prepared), commit.py (making a draft durable, creating, garbage collection),
search.py / index.py (exact and approximate kNN), consistency.py (`check`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from support_memory.commit import COMPACT_MIN_DEAD, abandon, collect_garbage, create_if_missing, write_commit
from support_memory.draft import (
    Draft,
    refuse_other_fingerprint,
    validate_entry,
    validate_fingerprint,
)
from support_memory.errors import (
    CorruptMemoryError,
    InvalidInputError,
    MemoryLockedError,
    UnknownEntryError,
)
from support_memory.identity import content_id
from support_memory.index import IndexConfig, IndexManager
from support_memory.locking import LOCK_FILE_NAME, ReaderPin, WriterLock
from support_memory.manifest import (
    Manifest,
)
from support_memory.oserrors import translate_os_error
from support_memory.records import ClassInfo, SourceEntry, SourceInfo
from support_memory.rows import RowArrays
from support_memory.search import SearchResult, class_filter, exact_search, validate_queries
from support_memory.snapshot import Snapshot, load_committed

T = TypeVar("T")


class SupportMemory:
    """A support memory on disk. Create or open one with `SupportMemory.open(path)`."""

    def __init__(
        self,
        path: Path,
        snapshot: Snapshot,
        *,
        lock_timeout_s: float,
        index_config: IndexConfig,
        compact_min_dead: int,
    ) -> None:
        self.path = path
        self._snapshot = snapshot
        self._lock_timeout_s = lock_timeout_s
        self._compact_min_dead = compact_min_dead
        self._rows = RowArrays(path)
        self._index = IndexManager(path / "index", index_config)
        self._pin: ReaderPin | None = None
        self._pinned_generation: int | None = None

    # ------------------------------------------------------------------------------------------------------
    # opening
    # ------------------------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        create: bool = True,
        *,
        lock_timeout_s: float = 300.0,
        index_config: IndexConfig | None = None,
        compact_min_dead: int = COMPACT_MIN_DEAD,
    ) -> SupportMemory:
        """Open the memory at `path`, creating an empty one there if allowed and nothing is there yet.

        A path that holds anything else (a file, a directory with other files) is refused with
        NotAMemoryError, so a mistyped path never scribbles into an unrelated folder.
        """
        path = Path(path).expanduser()
        create_if_missing(path, create, lock_timeout_s)
        memory = cls(
            path,
            Snapshot(Manifest(), np.zeros((0, 0))),
            lock_timeout_s=lock_timeout_s,
            index_config=index_config or IndexConfig(),
            compact_min_dead=compact_min_dead,
        )
        memory.refresh()
        return memory

    def refresh(self) -> None:
        """Load the latest committed state (commits made by other processes since this object last looked)."""
        for _ in range(100):
            snapshot = load_committed(self.path)
            if self._adopt(snapshot):
                return
        raise MemoryLockedError(f"memory {self.path} keeps changing under this reader; retry later")

    def close(self) -> None:
        """Release this reader's pin on its generation of rows (also done at process exit)."""
        if self._pin is not None:
            self._pin.release()
            self._pin = None
            self._pinned_generation = None

    def __enter__(self) -> SupportMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _pin_path(self, generation: int) -> Path:
        return self.path / "readers" / f"g{generation:06d}.lock"

    def _adopt(self, snapshot: Snapshot) -> bool:
        """Make `snapshot` the one this object reads, pinning its rows; False if they vanished meanwhile."""
        generation = snapshot.manifest.generation
        if snapshot.manifest.n_rows and generation != self._pinned_generation:
            pin = ReaderPin(self._pin_path(generation))
            pinned = pin.acquire()
            if not pinned or not self._rows.exists(generation):
                pin.release()
                return False
            self.close()
            self._pin, self._pinned_generation = pin, generation
        self._snapshot = snapshot
        return True

    # ------------------------------------------------------------------------------------------------------
    # writing
    # ------------------------------------------------------------------------------------------------------
    def _write(self, edit: Callable[[Draft], T]) -> T:
        try:
            lock = WriterLock(self.path, self._lock_timeout_s)
            lock.acquire()
        except OSError as error:
            raise translate_os_error(error, self.path, "taking the writer lock") or error from None
        try:
            base = load_committed(self.path)
            draft = Draft(self._rows, base)
            result = edit(draft)
            if draft.changed:
                try:
                    self._commit(draft)
                except OSError as error:
                    translated = translate_os_error(error, self.path, "writing a commit")
                    if translated is None:
                        raise
                    abandon(self._rows, draft)
                    raise translated from None
            elif not self._adopt(base):
                raise CorruptMemoryError(f"memory {self.path}: the committed rows are missing")
        finally:
            lock.release()
        return result

    def _commit(self, draft: Draft) -> None:
        snapshot = write_commit(self._rows, draft, self._compact_min_dead)
        if not self._adopt(snapshot):
            raise CorruptMemoryError(f"memory {self.path}: the rows just committed are missing")
        collect_garbage(self._rows, snapshot.manifest.generation,
                        keep_sums={snapshot.manifest.sums_name, draft.base.manifest.sums_name},
                        pin_path=self._pin_path)  # fmt: skip

    def check_writable(self) -> None:
        """Raise ReadOnlyMemoryError now if this memory cannot be written (before any expensive work)."""
        try:
            os.close(os.open(self.path / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o644))
        except OSError as error:
            raise translate_os_error(error, self.path, "checking that it can be written") or error from None

    # ------------------------------------------------------------------------------------------------------
    # public API: writing
    # ------------------------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The backbone + feature settings the stored rows were made with (None while the memory is empty)."""
        return self._snapshot.manifest.fingerprint

    @property
    def n_prototypes(self) -> int:
        """Stored prototypes a reader sees (`stats()["n_prototypes"]` without walking the folder)."""
        return self._snapshot.manifest.n_live

    @property
    def commit(self) -> int:
        """The number of the commit this object reads (`stats()["commit"]`)."""
        return self._snapshot.manifest.seq

    @property
    def dim(self) -> int | None:
        """The dimension of the stored rows (None while the memory is empty)."""
        return self._snapshot.manifest.dim

    def put_source(
        self,
        source_id: str,
        vectors: np.ndarray,
        class_names: Sequence[str],
        *,
        fingerprint: dict[str, Any],
        content_key: str = "",
        class_texts: Mapping[str, str | None] | None = None,
    ) -> str:
        """Store one source's prototypes: "added", "replaced" (new content key) or "unchanged" (same key).

        vectors: [n, d] L2-normalised rows, one per entry of class_names (a name may repeat).
        class_texts: per class name, the text prompt, or None when the name is not usable as text; a
        name missing from it keeps the class's current prompt (a new class uses its name).
        """
        entry = SourceEntry(source_id, vectors, class_names, content_key, class_texts)
        return self.put_sources([entry], fingerprint=fingerprint)[0]

    def check_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        """Raise FingerprintMismatchError now if rows made under `fingerprint` would be refused.

        Callers check before expensive work (feature extraction, a whole folder run); every put checks
        again under the writer lock, so this is an early answer, not the guard.
        """
        stored = self._snapshot.manifest.fingerprint
        if stored is not None:
            refuse_other_fingerprint(self.path, stored, validate_fingerprint(fingerprint))

    def put_sources(
        self,
        entries: Sequence[SourceEntry],
        *,
        fingerprint: dict[str, Any],
        drop: Mapping[str, Sequence[str] | None] | None = None,
    ) -> list[str]:
        """Store many sources in one atomic commit; returns one status per entry (see put_source).

        `drop` removes, in the same commit and before the puts, sources (value None) or only some classes'
        rows of a source (value: class names); sources the memory does not hold are ignored. It lets a
        caller replace part of what it stored earlier without a moment where both or neither are visible.
        """
        fingerprint = validate_fingerprint(fingerprint)
        valid = [validate_entry(entry) for entry in entries]
        seen: set[str] = set()
        for entry in valid:
            if entry.source_id in seen:
                raise InvalidInputError(f"source {entry.source_id!r} appears twice in one put_sources call")
            seen.add(entry.source_id)
        drops = dict(drop or {})
        if not valid and not drops:
            return []

        def edit(draft: Draft) -> list[str]:
            for source_id, names in drops.items():
                draft.drop(source_id, names)
            if not valid:
                return []
            draft.accept_fingerprint(fingerprint)
            for entry in valid:
                draft.accept_dim(entry.vectors16.shape[1])
            return [draft.put(entry) for entry in valid]

        return self._write(edit)

    def remove_source(self, source_id: str) -> None:
        """Remove a source and all its prototypes (UnknownEntryError if the memory does not hold it)."""
        self._write(lambda draft: draft.remove_source(source_id))

    def remove_class(self, name: str) -> None:
        """Remove a class and its prototypes from every source (sources left empty are removed too)."""
        self._write(lambda draft: draft.remove_class(name))

    def compact(self) -> None:
        """Rewrite the live rows into a fresh generation now, dropping all dead rows."""

        def edit(draft: Draft) -> None:
            if draft.manifest.n_rows > draft.manifest.n_live:
                draft.changed = draft.force_compaction = True

        self._write(edit)

    # ------------------------------------------------------------------------------------------------------
    # public API: reading
    # ------------------------------------------------------------------------------------------------------
    def classes(self) -> list[ClassInfo]:
        """The class table, by id."""
        manifest = self._snapshot.manifest
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
            for s in sorted(self._snapshot.manifest.sources.values(), key=lambda s: s.num)
        ]

    def content_id(self) -> str:
        """An identity of everything a reader gets from this memory (see identity.py).

        It changes whenever a prototype, class or text prompt changes, and differs between memories of
        different content even at the same commit number, so it can key caches of results.
        """
        return content_id(self._snapshot.manifest)

    def live_rows(self) -> np.ndarray:
        """Row numbers of every stored prototype, in storage order (what `rows()` accepts).

        Rows of removed sources are not listed, so this is the whole memory as a reader sees it.
        """
        return np.flatnonzero(self._snapshot.live_mask()).astype(np.int64)

    def source_rows(self, source_id: str) -> np.ndarray:
        """Row numbers of one source's prototypes (for exports and tools that work per support image)."""
        record = self._snapshot.manifest.sources.get(source_id)
        if record is None:
            raise UnknownEntryError(f"memory {self.path} holds no source {source_id!r}")
        parts = [np.arange(start, stop, dtype=np.int64) for start, stop in record.ranges]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def stats(self) -> dict[str, Any]:
        """Sizes and settings, for status displays and logs."""
        manifest = self._snapshot.manifest
        size = 0
        for dirpath, _dirnames, filenames in os.walk(self.path):
            for name in filenames:
                with contextlib.suppress(FileNotFoundError):
                    size += (Path(dirpath) / name).stat().st_size
        return {
            "path": str(self.path),
            "n_prototypes": manifest.n_live,
            "n_rows_stored": manifest.n_rows,
            "n_dead_rows": manifest.n_rows - manifest.n_live,
            "n_classes": len(manifest.classes),
            "n_sources": len(manifest.sources),
            "dim": manifest.dim,
            "fingerprint": manifest.fingerprint,
            "generation": manifest.generation,
            "commit": manifest.seq,
            "bytes_on_disk": size,
            "index": self._index.describe(manifest),
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
        queries = validate_queries(queries, k, self._snapshot.manifest.dim, self.path)
        allowed_classes = class_filter(class_ids, self._snapshot.manifest.classes, self.path)
        snapshot = self._snapshot
        if snapshot.manifest.n_live == 0 or (allowed_classes is not None and len(allowed_classes) == 0):
            return SearchResult(
                scores=np.full((queries.shape[0], k), -np.inf, dtype=np.float32),
                rows=np.full((queries.shape[0], k), -1, dtype=np.int64),
            )
        if not exact and self._index.wanted(snapshot.manifest):
            result = self._index.search(self._rows, snapshot, queries, k, allowed_classes)
            if result is not None:
                return result
        return exact_search(queries, k, self._rows.blocks(snapshot, 0, snapshot.manifest.n_rows,
                                                     queries.shape[0], allowed_classes))  # fmt: skip

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors (float32) and class ids (int64) of live rows, as returned by `search` (no -1 entries)."""
        return self._rows.lookup(self._snapshot, rows)

    def class_prototypes(self, class_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(class ids [c], vectors [c, d]): per class, the normalised mean of its per-source prototypes."""
        manifest = self._snapshot.manifest
        ids = np.array(sorted(manifest.classes) if class_ids is None else list(class_ids), dtype=np.int64)
        unknown = [int(c) for c in ids if int(c) not in manifest.classes]
        if unknown:
            raise UnknownEntryError(f"memory {self.path} has no class id(s) {unknown}")
        dim = manifest.dim or 0
        if ids.size == 0:
            return ids, np.zeros((0, dim), dtype=np.float32)
        counts = np.array([manifest.classes[int(c)].count for c in ids], dtype=np.float64)
        means = self._snapshot.sums[ids] / counts[:, None]
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        return ids, (means / np.maximum(norms, 1e-12)).astype(np.float32)

    def build_index(self) -> dict[str, Any] | None:
        """Build (or bring up to date) and save the approximate index now; None when faiss is missing."""
        self.refresh()
        return self._index.build(self._rows, self._snapshot)

    # ------------------------------------------------------------------------------------------------------
    # consistency
    # ------------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Verify the committed state on disk; raises CorruptMemoryError naming the first problem found."""
        from support_memory.consistency import check_snapshot

        self.refresh()
        check_snapshot(self._rows, self._snapshot)
