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
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import zarr

from support_memory import durability
from support_memory.draft import (
    Draft,
    PendingRows,
    refuse_other_fingerprint,
    validate_entry,
    validate_fingerprint,
)
from support_memory.errors import (
    CorruptMemoryError,
    InvalidInputError,
    MemoryLockedError,
    NotAMemoryError,
    UnknownEntryError,
)
from support_memory.identity import content_id
from support_memory.index import IndexConfig, IndexManager
from support_memory.locking import LOCK_FILE_NAME, ReaderPin, WriterLock, try_remove_unpinned
from support_memory.manifest import (
    MANIFEST_NAME,
    Manifest,
    read_manifest,
)
from support_memory.oserrors import translate_os_error
from support_memory.records import ClassInfo, SourceEntry, SourceInfo
from support_memory.search import SearchResult, block_rows_for, exact_search

T = TypeVar("T")

CHUNK_ROWS = 1024
# Compact when at least this many rows are dead and they are at least this fraction of the stored rows.
COMPACT_MIN_DEAD = 4096
COMPACT_DEAD_FRACTION = 0.25
# Files that may exist in a directory that is not (yet) a memory without it being "something else".
_IGNORABLE = {LOCK_FILE_NAME, ".DS_Store"}


@dataclass
class _Snapshot:
    """A committed state as one reader sees it: the manifest plus the per-class sums it names."""

    manifest: Manifest
    sums: np.ndarray  # float64 [next_class_id, dim]; empty when the memory has no rows yet
    _live: np.ndarray | None = field(default=None, repr=False)

    def live_mask(self) -> np.ndarray:
        if self._live is None:
            live = np.zeros(self.manifest.n_rows, dtype=bool)
            for source in self.manifest.sources.values():
                for start, stop in source.ranges:
                    live[start:stop] = True
            self._live = live
        return self._live


def _generation_group(generation: int) -> str:
    return f"rows/g{generation:06d}"


class SupportMemory:
    """A support memory on disk. Create or open one with `SupportMemory.open(path)`."""

    def __init__(
        self,
        path: Path,
        snapshot: _Snapshot,
        *,
        lock_timeout_s: float,
        index_config: IndexConfig,
        compact_min_dead: int,
    ) -> None:
        self.path = path
        self._snapshot = snapshot
        self._lock_timeout_s = lock_timeout_s
        self._compact_min_dead = compact_min_dead
        self._arrays: dict[str, zarr.Array] = {}
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
        manifest_path = path / MANIFEST_NAME
        if path.exists() and not path.is_dir():
            raise NotAMemoryError(f"{path} is a file, not a support memory; a memory is a directory")
        if not manifest_path.exists():
            if path.is_dir() and any(child.name not in _IGNORABLE for child in path.iterdir()):
                raise NotAMemoryError(
                    f"{path} is a directory but not a support memory (no {MANIFEST_NAME}); "
                    "use an empty or new directory, or an existing memory"
                )
            if not create:
                raise NotAMemoryError(
                    f"no support memory at {path}; add examples to it first, or check the path"
                )
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise NotAMemoryError(
                    f"cannot create a support memory at {path} ({error.strerror}); use a writable "
                    "directory"
                ) from None
            try:
                with WriterLock(path, lock_timeout_s):
                    if not manifest_path.exists():
                        zarr.open_group(str(path), mode="a", zarr_format=3)
                        durability.fsync_tree(path)
                        durability.atomic_write_json(manifest_path, Manifest().to_json())
            except OSError as error:  # a read-only or full file system: one line, not a traceback
                raise translate_os_error(error, path, "creating the memory") or error from None
        memory = cls(
            path,
            _Snapshot(Manifest(), np.zeros((0, 0))),
            lock_timeout_s=lock_timeout_s,
            index_config=index_config or IndexConfig(),
            compact_min_dead=compact_min_dead,
        )
        memory.refresh()
        return memory

    def refresh(self) -> None:
        """Load the latest committed state (commits made by other processes since this object last looked)."""
        for _ in range(100):
            snapshot = self._load_committed()
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

    def _adopt(self, snapshot: _Snapshot) -> bool:
        """Make `snapshot` the one this object reads, pinning its rows; False if they vanished meanwhile."""
        generation = snapshot.manifest.generation
        if snapshot.manifest.n_rows and generation != self._pinned_generation:
            pin = ReaderPin(self._pin_path(generation))
            pinned = pin.acquire()
            vectors_meta = self.path / _generation_group(generation) / "vectors" / "zarr.json"
            if not pinned or not vectors_meta.exists():
                pin.release()
                return False
            self.close()
            self._pin, self._pinned_generation = pin, generation
        self._snapshot = snapshot
        return True

    def _load_committed(self) -> _Snapshot:
        # A writer may delete the sums array named by a manifest two commits old between our two reads;
        # re-reading the manifest then finds the current one.
        last_error: Exception | None = None
        for _ in range(20):
            manifest = read_manifest(self.path / MANIFEST_NAME)
            try:
                return _Snapshot(manifest, self._read_sums(manifest))
            except FileNotFoundError as error:
                last_error = error
        raise CorruptMemoryError(
            f"memory {self.path}: the sums array named by the manifest is missing ({last_error}); "
            "restore the memory from a backup or rebuild it"
        )

    def _read_sums(self, manifest: Manifest) -> np.ndarray:
        dim = manifest.dim or 0
        if manifest.sums_name is None:
            return np.zeros((manifest.next_class_id, dim), dtype=np.float64)
        location = self.path / manifest.sums_name
        if not (location / "zarr.json").exists():
            raise FileNotFoundError(location)
        sums = zarr.open_array(str(location), mode="r")[...]
        if sums.shape != (manifest.next_class_id, dim):
            raise CorruptMemoryError(
                f"memory {self.path}: sums array {manifest.sums_name} has shape {sums.shape}, expected "
                f"{(manifest.next_class_id, dim)}; restore the memory from a backup or rebuild it"
            )
        return np.asarray(sums, dtype=np.float64)

    # ------------------------------------------------------------------------------------------------------
    # arrays
    # ------------------------------------------------------------------------------------------------------
    def _array(self, generation: int, name: str) -> zarr.Array:
        key = f"{_generation_group(generation)}/{name}"
        array = self._arrays.get(key)
        if array is None:
            location = self.path / key
            if not (location / "zarr.json").exists():
                raise CorruptMemoryError(
                    f"memory {self.path}: row array {key} is missing; restore the memory from a backup"
                )
            array = zarr.open_array(str(location), mode="r+")
            self._arrays[key] = array
        return array

    def _create_generation(self, generation: int, dim: int, n_rows: int) -> None:
        group_path = self.path / _generation_group(generation)
        if group_path.exists():  # debris of a write that died before committing it
            shutil.rmtree(group_path)
        for key in list(self._arrays):
            if key.startswith(_generation_group(generation)):
                del self._arrays[key]
        root = zarr.open_group(str(self.path), mode="a", zarr_format=3)
        group = root.require_group(_generation_group(generation))
        encoding = {"name": "default", "separator": "/"}
        group.create_array(
            "vectors", shape=(n_rows, dim), chunks=(CHUNK_ROWS, dim), dtype="float16",
            compressors=None, fill_value=float("nan"), chunk_key_encoding=encoding,
        )  # fmt: skip
        for name in ("class_ids", "source_nums"):
            group.create_array(
                name, shape=(n_rows,), chunks=(CHUNK_ROWS,), dtype="int32", fill_value=-1,
                chunk_key_encoding=encoding,
            )  # fmt: skip

    def _read_committed(self, snapshot: _Snapshot, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        generation = snapshot.manifest.generation
        vectors = np.asarray(self._array(generation, "vectors")[start:stop])
        class_ids = np.asarray(self._array(generation, "class_ids")[start:stop])
        return vectors, class_ids

    def _write_rows(self, generation: int, start: int, rows: PendingRows) -> list[Path]:
        """Write rows at [start, start+m) of a generation (growing it if needed); returns files to fsync."""
        stop = start + rows.vectors.shape[0]
        touched: list[Path] = []
        for name, data in (("vectors", rows.vectors), ("class_ids", rows.class_ids),
                           ("source_nums", rows.source_nums)):  # fmt: skip
            array = self._array(generation, name)
            if array.shape[0] < stop:
                array.resize((stop, *array.shape[1:]))
                touched.append(self.path / _generation_group(generation) / name / "zarr.json")
            array[start:stop] = data
            chunk_dir = self.path / _generation_group(generation) / name / "c"
            for chunk in range(start // CHUNK_ROWS, (stop - 1) // CHUNK_ROWS + 1):
                touched.append(chunk_dir / str(chunk) / "0" if name == "vectors" else chunk_dir / str(chunk))
        return touched

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
            base = self._load_committed()
            draft = Draft(self, base)
            result = edit(draft)
            if draft.changed:
                try:
                    self._commit(draft)
                except OSError as error:
                    translated = translate_os_error(error, self.path, "writing a commit")
                    if translated is None:
                        raise
                    self._abandon(draft)
                    raise translated from None
            elif not self._adopt(base):
                raise CorruptMemoryError(f"memory {self.path}: the committed rows are missing")
        finally:
            lock.release()
        return result

    def _abandon(self, draft: Draft) -> None:
        """After a failed commit: delete what it wrote that no manifest names, freeing the space again.

        Rows appended past the committed length of the current generation stay (they are invisible and
        the next append overwrites them); a new sums array or generation, and a manifest temp file, go.
        """
        committed = draft.base.manifest
        shutil.rmtree(self.path / f"sums/s{committed.seq + 1:08d}", ignore_errors=True)
        shutil.rmtree(self.path / _generation_group(committed.generation + 1), ignore_errors=True)
        if committed.n_rows == 0:  # nothing committed in the current generation either: no reader needs it
            shutil.rmtree(self.path / _generation_group(committed.generation), ignore_errors=True)
        for child in self.path.glob(f"{MANIFEST_NAME}.*.tmp"):
            with contextlib.suppress(OSError):
                child.unlink()
        self._arrays.clear()

    def check_writable(self) -> None:
        """Raise ReadOnlyMemoryError now if this memory cannot be written (before any expensive work)."""
        try:
            os.close(os.open(self.path / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o644))
        except OSError as error:
            raise translate_os_error(error, self.path, "checking that it can be written") or error from None

    def _commit(self, draft: Draft) -> None:
        manifest = draft.manifest
        base = draft.base.manifest
        total = base.n_rows + draft.n_pending
        dead = total - manifest.n_live
        to_sync: list[Path] = []
        if draft.force_compaction or (
            dead >= self._compact_min_dead and dead > COMPACT_DEAD_FRACTION * total
        ):
            self._compact_into_new_generation(draft)
            to_sync_tree = [self.path / _generation_group(manifest.generation)]
        else:
            to_sync_tree = []
            if draft.n_pending:
                if not (
                    self.path / _generation_group(manifest.generation) / "vectors" / "zarr.json"
                ).exists():
                    self._create_generation(manifest.generation, manifest.dim or 0, 0)
                    to_sync_tree.append(self.path / _generation_group(manifest.generation))
                # One write for the whole batch: each zarr chunk is then rewritten once, not once per source.
                rows = PendingRows(
                    np.concatenate([p.vectors for p in draft.pending]),
                    np.concatenate([p.class_ids for p in draft.pending]),
                    np.concatenate([p.source_nums for p in draft.pending]),
                )
                to_sync.extend(self._write_rows(manifest.generation, base.n_rows, rows))
            manifest.n_rows = total
        manifest.seq = base.seq + 1
        if draft.sums_changed:
            manifest.sums_name = f"sums/s{manifest.seq:08d}"
            location = self.path / manifest.sums_name
            if location.exists():
                shutil.rmtree(location)
            zarr.create_array(
                str(location), data=draft.sums, chunks=draft.sums.shape if draft.sums.size else "auto",
                compressors=None, overwrite=True,
            )  # fmt: skip
            to_sync_tree.append(location)
        durability.fsync_files(to_sync)
        for tree in to_sync_tree:
            durability.fsync_tree(tree)
        durability.atomic_write_json(self.path / MANIFEST_NAME, manifest.to_json())
        if not self._adopt(_Snapshot(manifest, draft.sums)):
            raise CorruptMemoryError(f"memory {self.path}: the rows just committed are missing")
        self._collect_garbage(manifest.generation, keep_sums={manifest.sums_name, base.sums_name})

    def _compact_into_new_generation(self, draft: Draft) -> None:
        """Rewrite the live rows (committed and pending) into generation+1, one range per source."""
        manifest = draft.manifest
        base = draft.base
        pending_vectors = np.concatenate([p.vectors for p in draft.pending]) if draft.pending else None
        pending_classes = np.concatenate([p.class_ids for p in draft.pending]) if draft.pending else None
        new_generation = base.manifest.generation + 1
        self._create_generation(new_generation, manifest.dim or 0, manifest.n_live)
        sums = np.zeros_like(draft.sums)
        offset = 0
        for source in sorted(manifest.sources.values(), key=lambda s: s.num):
            parts_v, parts_c = [], []
            for start, stop in source.ranges:
                if start >= base.manifest.n_rows:
                    assert pending_vectors is not None and pending_classes is not None
                    a, b = start - base.manifest.n_rows, stop - base.manifest.n_rows
                    parts_v.append(pending_vectors[a:b])
                    parts_c.append(pending_classes[a:b])
                else:
                    vectors16, class_ids = self._read_committed(base, start, stop)
                    parts_v.append(vectors16)
                    parts_c.append(class_ids.astype(np.int32))
            if not parts_v:
                source.ranges = []
                continue
            rows = PendingRows(
                np.concatenate(parts_v), np.concatenate(parts_c),
                np.full(sum(len(c) for c in parts_c), source.num, np.int32),
            )  # fmt: skip
            self._write_rows(new_generation, offset, rows)
            np.add.at(sums, rows.class_ids, rows.vectors.astype(np.float64))
            source.ranges = [(offset, offset + len(rows.class_ids))]
            offset += len(rows.class_ids)
        manifest.generation = new_generation
        manifest.n_rows = offset
        draft.sums = sums
        draft.sums_changed = True

    def _collect_garbage(self, current_generation: int, keep_sums: set[str | None]) -> None:
        """Delete arrays the manifest no longer names: generations no reader pins, all but the last sums.

        The previous sums array is kept because a reader may have read the previous manifest and not yet
        the sums it names (it retries on a miss, see _load_committed).
        """
        generations = {int(p.name[1:]) for p in (self.path / "rows").glob("g*") if p.is_dir()}
        generations |= {int(p.stem[1:]) for p in (self.path / "readers").glob("g*.lock")}
        for generation in sorted(generations - {current_generation}):
            group = self.path / _generation_group(generation)
            try_remove_unpinned(
                self._pin_path(generation), lambda g=group: shutil.rmtree(g, ignore_errors=True)
            )
        sums_dir = self.path / "sums"
        if sums_dir.is_dir():
            for child in sums_dir.iterdir():
                if child.is_dir() and f"sums/{child.name}" not in keep_sums:
                    shutil.rmtree(child, ignore_errors=True)
        for child in self.path.glob(f"{MANIFEST_NAME}.*.tmp"):
            child.unlink(missing_ok=True)
        self._arrays = {k: v for k, v in self._arrays.items() if (self.path / k / "zarr.json").exists()}

    # ------------------------------------------------------------------------------------------------------
    # public API: writing
    # ------------------------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The backbone + feature settings the stored rows were made with (None while the memory is empty)."""
        return self._snapshot.manifest.fingerprint

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
        """Sizes and settings, for `rns memory stats` and for logs."""
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

    def _validate_queries(self, queries: np.ndarray, k: int) -> np.ndarray:
        if not isinstance(k, int | np.integer) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        queries = np.asarray(queries)
        if queries.ndim != 2 or not np.issubdtype(queries.dtype, np.number):
            raise InvalidInputError(f"queries must be a 2-D numeric array [q, d], got shape {queries.shape}")
        dim = self._snapshot.manifest.dim
        if dim is not None and queries.shape[1] != dim:
            raise InvalidInputError(
                f"queries have dimension {queries.shape[1]} but memory {self.path} holds dimension {dim}"
            )
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not np.isfinite(queries).all():
            raise InvalidInputError("queries contain NaN or infinite values")
        return queries

    def _class_filter(self, class_ids: Sequence[int] | None) -> np.ndarray | None:
        if class_ids is None:
            return None
        wanted = np.unique(np.asarray(list(class_ids), dtype=np.int64))
        unknown = [int(c) for c in wanted if int(c) not in self._snapshot.manifest.classes]
        if unknown:
            raise UnknownEntryError(f"memory {self.path} has no class id(s) {unknown}")
        return wanted

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
        queries = self._validate_queries(queries, k)
        allowed_classes = self._class_filter(class_ids)
        snapshot = self._snapshot
        if snapshot.manifest.n_live == 0 or (allowed_classes is not None and len(allowed_classes) == 0):
            return SearchResult(
                scores=np.full((queries.shape[0], k), -np.inf, dtype=np.float32),
                rows=np.full((queries.shape[0], k), -1, dtype=np.int64),
            )
        if not exact and self._index.wanted(snapshot.manifest):
            result = self._index.search(self, snapshot, queries, k, allowed_classes)
            if result is not None:
                return result
        return exact_search(queries, k, self._blocks(snapshot, 0, snapshot.manifest.n_rows,
                                                     queries.shape[0], allowed_classes))  # fmt: skip

    def _blocks(
        self,
        snapshot: _Snapshot,
        start: int,
        stop: int,
        n_queries: int,
        allowed_classes: np.ndarray | None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Blocks of committed rows in [start, stop) as float32, with the mask of rows a search may return."""
        generation = snapshot.manifest.generation
        live = snapshot.live_mask()
        step = block_rows_for(n_queries, CHUNK_ROWS)
        block_start = start
        while block_start < stop:
            block_stop = min(stop, (block_start // CHUNK_ROWS) * CHUNK_ROWS + step)
            allowed = live[block_start:block_stop].copy()
            if allowed_classes is not None and allowed.any():
                class_ids = np.asarray(self._array(generation, "class_ids")[block_start:block_stop])
                allowed &= np.isin(class_ids, allowed_classes)
            if allowed.any():
                vectors = np.asarray(self._array(generation, "vectors")[block_start:block_stop],
                                     dtype=np.float32)  # fmt: skip
                rows = np.arange(block_start, block_stop, dtype=np.int64)
                yield rows, vectors, None if allowed.all() else allowed
            block_start = block_stop

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors (float32) and class ids (int64) of live rows, as returned by `search` (no -1 entries)."""
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise InvalidInputError(f"rows must be a 1-D integer array, got shape {rows.shape}, {rows.dtype}")
        snapshot = self._snapshot
        dim = snapshot.manifest.dim or 0
        if rows.size == 0:
            return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
        live = snapshot.live_mask()
        if rows.min() < 0 or rows.max() >= snapshot.manifest.n_rows or not live[rows].all():
            bad = rows[(rows < 0) | (rows >= len(live))]
            bad = bad if bad.size else rows[~live[rows]]
            raise InvalidInputError(f"row {int(bad[0])} is not a stored prototype (drop -1 padding first)")
        unique, inverse = np.unique(rows, return_inverse=True)
        generation = snapshot.manifest.generation
        vectors = np.asarray(
            self._array(generation, "vectors").get_orthogonal_selection((unique, slice(None)))
        )
        class_ids = np.asarray(self._array(generation, "class_ids").get_orthogonal_selection(unique))
        return vectors[inverse].astype(np.float32), class_ids[inverse].astype(np.int64)

    def _gather(self, snapshot: _Snapshot, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of sorted committed rows (live or not), read a block at a time."""
        vectors_array = self._array(snapshot.manifest.generation, "vectors")
        parts = []
        for start in range(0, len(rows), 65536):
            part = rows[start : start + 65536]
            parts.append(np.asarray(vectors_array.get_orthogonal_selection((part, slice(None)))))
        return np.concatenate(parts).astype(np.float32)

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
        return self._index.build(self, self._snapshot)

    # ------------------------------------------------------------------------------------------------------
    # consistency
    # ------------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Verify the committed state on disk; raises CorruptMemoryError naming the first problem found."""
        from support_memory.consistency import check_snapshot

        self.refresh()
        check_snapshot(self, self._snapshot)
