"""`RowArrays`: the memory's rows, stored as immutable zarr segments; the only code that reads or writes them.

A segment is three zarr arrays under `segments/<name>/` (vectors float16 [m, d], class_ids and source_nums
int32 [m]), written once by the commit that adds its rows and never modified: a write therefore costs the
rows it adds, a crashed write leaves only an unreferenced folder (collected later), and a reader may cache
a segment for as long as it likes. Row numbers run across the state's segments in order
(`Manifest.segments`). The store, the write draft, the approximate index and the consistency check all read
rows through this class.
"""

from __future__ import annotations

import bisect
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from support_memory.errors import DamagedMemoryError, InvalidInputError
from support_memory.manifest import Manifest, SegmentRecord
from support_memory.search import block_rows_for
from support_memory.snapshot import Snapshot
from support_memory.storage import LocalStorage, Storage, unreachable
from support_memory.verify import ARRAYS, check_declared, check_values, find_damaged_file

SEGMENTS = "segments"
CHUNK_ROWS = 4096
# Decoded segments kept in RAM per open memory (segments never change, so a cached one is never stale).
DEFAULT_CACHE_BYTES = 1 << 30


@dataclass
class PendingRows:
    """Rows queued by a write, not yet stored."""

    vectors: np.ndarray  # float16 [m, d]
    class_ids: np.ndarray  # int32 [m]
    source_nums: np.ndarray  # int32 [m]

    @classmethod
    def concatenate(cls, parts: list[PendingRows]) -> PendingRows:
        return cls(
            np.concatenate([p.vectors for p in parts]),
            np.concatenate([p.class_ids for p in parts]),
            np.concatenate([p.source_nums for p in parts]),
        )


def new_segment_name() -> str:
    """Unique and ordered by creation time (garbage collection spares young unreferenced segments)."""
    return f"s{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


def segment_created_s(name: str) -> float | None:
    """When a segment was created (seconds since the epoch), from its name; None for foreign names."""
    head = name.split("-", 1)[0]
    return int(head[1:]) / 1e9 if head[:1] == "s" and head[1:].isdigit() else None


class _Segment:
    """One segment's arrays: numpy when cached in RAM, else zarr arrays read slice by slice."""

    def __init__(self, vectors: Any, class_ids: Any, source_nums: Any) -> None:
        self.vectors, self.class_ids, self.source_nums = vectors, class_ids, source_nums
        self.verified = False  # True once every row was checked (segments cached in RAM)

    def check(self, location: str, prefix: str, first_row: int, a: int, b: int, manifest: Manifest) -> None:
        check_values(location, prefix, first_row, self.vectors[a:b], self.class_ids[a:b],
                     self.source_nums[a:b], manifest.next_class_id, manifest.next_source_num)  # fmt: skip

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.vectors.shape)) * 2 + 8 * int(self.class_ids.shape[0])


class RowArrays:
    """Reads and writes the row segments of one memory, caching decoded segments in RAM."""

    def __init__(self, storage: Storage, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.storage = storage
        self.location = storage.location
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, _Segment] = OrderedDict()
        self._cached_bytes = 0
        self._cache_lock = threading.Lock()  # a background index rebuild reads rows beside searches
        self._raw_cache: OrderedDict[str, list[tuple[int, list[Any]]]] = OrderedDict()  # for repair
        self._raw_bytes: dict[str, int] = {}

    # -- writing --------------------------------------------------------------------------------------------
    def write_segment(self, rows: PendingRows) -> str:
        """Store rows as a new immutable segment (durable before this returns); returns its name."""
        name = new_segment_name()
        prefix = f"{SEGMENTS}/{name}"
        store = self.storage.zarr_store(prefix, read_only=False)
        group = zarr.open_group(store=store, mode="w", zarr_format=3)
        n, dim = rows.vectors.shape
        chunk = max(1, min(CHUNK_ROWS, n))
        # Fill values no stored row can have: a chunk file that goes missing reads back as invalid rows,
        # which the checks on reading catch (with 0, a lost chunk would read as class 0, source 0).
        group.create_array("vectors", data=rows.vectors.astype(np.float16), chunks=(chunk, dim),
                           compressors=None, fill_value=np.nan)  # fmt: skip
        group.create_array("class_ids", data=rows.class_ids.astype(np.int32), chunks=(chunk,), fill_value=-1)
        group.create_array("source_nums", data=rows.source_nums.astype(np.int32), chunks=(chunk,),
                           fill_value=-1)  # fmt: skip
        if isinstance(self.storage, LocalStorage):
            self.storage.sync_tree(prefix)
        return name

    def delete_segment(self, name: str) -> None:
        self._cache.pop(name, None)
        self.storage.delete(f"{SEGMENTS}/{name}")

    def stored_segments(self) -> list[str]:
        return self.storage.list(SEGMENTS)

    # -- reading --------------------------------------------------------------------------------------------
    def segment(self, record: SegmentRecord, manifest: Manifest) -> _Segment:
        """One segment of `manifest`, checked when first loaded (see verify.py): damage is one line."""
        with self._cache_lock:
            return self._segment(record, manifest)

    def _segment(self, record: SegmentRecord, manifest: Manifest) -> _Segment:
        name = record.name
        cached = self._cache.get(name)
        if cached is not None:
            self._cache.move_to_end(name)
            return cached
        prefix = f"{SEGMENTS}/{name}"
        arrays = self._open_arrays(
            prefix, f"missing (it holds rows {record.start}..{record.stop} of commit {manifest.seq}); a "
            "reader kept an old commit open past the retention time, or files were lost",
        )
        check_declared(self.location, prefix, arrays, record.n_rows, manifest.dim or 0)
        segment = _Segment(*arrays)
        if segment.nbytes <= self.cache_bytes:
            try:
                segment = _Segment(*(np.asarray(a[...]) for a in arrays))
            except Exception as error:
                raise self._damaged(prefix, error) from None
            segment.check(self.location, prefix, record.start, 0, record.n_rows, manifest)
            segment.verified = True
            self._cache[name] = segment
            self._cached_bytes += segment.nbytes
            while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cached_bytes -= evicted.nbytes
        return segment

    def _open_arrays(self, prefix: str, missing: str) -> list[Any]:
        """A segment's arrays (metadata only, nothing decoded); a segment that is gone is `missing`, one
        that cannot be opened names its damaged file, an unreachable store says so."""
        try:
            group = zarr.open_group(store=self.storage.zarr_store(prefix, read_only=True), mode="r")
            return [group[key] for key in ARRAYS]
        except Exception as error:
            if unreachable(error, self.location) is None and not self.storage.list(prefix):
                raise DamagedMemoryError(self.location, prefix, missing) from None
            raise self._damaged(prefix, error) from None

    def _damaged(self, prefix: str, error: BaseException) -> Exception:
        """The one-line error for a segment that failed to read, naming its damaged file."""
        translated = unreachable(error, self.location)
        if translated is not None:
            return translated
        part, problem = find_damaged_file(self.storage, prefix, error)
        return DamagedMemoryError(self.location, part, problem)

    def _slice(self, record: SegmentRecord, manifest: Manifest, a: int, b: int) -> tuple[np.ndarray, ...]:
        """Vectors, class ids and source numbers of a segment's local rows [a, b), checked."""
        segment = self.segment(record, manifest)
        if segment.verified:
            return segment.vectors[a:b], segment.class_ids[a:b], segment.source_nums[a:b]
        prefix = f"{SEGMENTS}/{record.name}"
        try:
            parts = tuple(np.asarray(array[a:b]) for array in (segment.vectors, segment.class_ids,
                                                               segment.source_nums))  # fmt: skip
        except Exception as error:
            raise self._damaged(prefix, error) from None
        _Segment(*parts).check(self.location, prefix, record.start + a, 0, b - a, manifest)
        return parts

    def stored_length(self, name: str) -> int | None:
        """The row count a stored segment's metadata declares (None when unreadable): for repair."""
        try:
            store = self.storage.zarr_store(f"{SEGMENTS}/{name}", read_only=True)
            return int(zarr.open_group(store=store, mode="r")["class_ids"].shape[0])
        except Exception:  # noqa: BLE001 - any failure means "not usable"
            return None

    def raw_rows(self, record: SegmentRecord, dim: int, a: int, b: int) -> tuple[np.ndarray, ...]:
        """A segment's local rows [a, b) as stored, values unchecked (repair checks them per source); a chunk
        that cannot be read is a DamagedMemoryError naming its file, and only rows in it are lost."""
        columns = self._raw_segment(record, dim)
        if b <= a:
            empty = np.zeros(0, dtype=np.int32)
            return np.zeros((0, dim), dtype=np.float16), empty, empty
        out = []
        for step, pieces in columns:
            parts = []
            for i in range(a // step, (b - 1) // step + 1):
                piece = pieces[i]
                if isinstance(piece, DamagedMemoryError):
                    raise piece
                parts.append(piece[max(a, i * step) - i * step : min(b, (i + 1) * step) - i * step])
            out.append(np.concatenate(parts))
        return tuple(out)

    def _raw_segment(self, record: SegmentRecord, dim: int) -> list[tuple[int, list[Any]]]:
        """Per array, (rows per chunk, each chunk decoded or its DamagedMemoryError); cached like segments,
        so that checking every source of a memory reads each chunk once."""
        cached = self._raw_cache.get(record.name)
        if cached is not None:
            self._raw_cache.move_to_end(record.name)
            return cached
        prefix = f"{SEGMENTS}/{record.name}"
        arrays = self._open_arrays(prefix, "missing")
        check_declared(self.location, prefix, arrays, record.n_rows, dim)
        columns = []
        for key, array in zip(ARRAYS, arrays, strict=True):
            step, pieces = int(array.chunks[0]), []
            for i, start in enumerate(range(0, record.n_rows, step)):
                try:
                    pieces.append(np.asarray(array[start : start + step]))
                except Exception as error:  # noqa: BLE001 - any decoder's failure is this chunk's damage
                    translated = unreachable(error, self.location)
                    if translated is not None:
                        raise translated from None
                    part = f"{prefix}/{key}/c/{i}" + "/0" * (array.ndim - 1)
                    why = f"truncated, emptied or garbled ({type(error).__name__}: {error})"[:300]
                    pieces.append(DamagedMemoryError(self.location, part, why))
            columns.append((step, pieces))
        self._raw_cache[record.name] = columns
        self._raw_bytes[record.name] = int(np.prod(arrays[0].shape)) * 2 + 8 * record.n_rows
        while sum(self._raw_bytes.values()) > self.cache_bytes and len(self._raw_cache) > 1:
            evicted, _ = self._raw_cache.popitem(last=False)
            self._raw_bytes.pop(evicted, None)
        return columns

    def pieces(self, snapshot: Snapshot, start: int, stop: int) -> Iterator[tuple[SegmentRecord, int, int]]:
        """(segment, local start, local stop) covering committed rows [start, stop), in order."""
        segments = snapshot.manifest.segments
        starts = [s.start for s in segments]
        i = max(bisect.bisect_right(starts, start) - 1, 0)
        while start < stop and i < len(segments):
            record = segments[i]
            a, b = max(start, record.start), min(stop, record.stop)
            if a < b:
                yield record, a - record.start, b - record.start
                start = b
            i += 1

    def read(self, snapshot: Snapshot, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Stored (float16) vectors and class ids of committed rows [start, stop)."""
        vectors, class_ids = self.read_all(snapshot, start, stop)[:2]
        return vectors, class_ids

    def read_all(
        self, snapshot: Snapshot, start: int, stop: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectors (float16), class ids and source numbers of committed rows [start, stop)."""
        parts = []
        for record, a, b in self.pieces(snapshot, start, stop):
            parts.append(self._slice(record, snapshot.manifest, a, b))
        dim = snapshot.manifest.dim or 0
        if not parts:
            empty = np.zeros(0, dtype=np.int32)
            return np.zeros((0, dim), dtype=np.float16), empty, empty
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]

    def blocks(
        self,
        snapshot: Snapshot,
        start: int,
        stop: int,
        n_queries: int,
        allowed_classes: np.ndarray | None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Blocks of committed rows in [start, stop) as float32, with the mask of rows a search may return."""
        live = snapshot.live_mask()
        step = block_rows_for(n_queries, CHUNK_ROWS)
        for record, a, b in self.pieces(snapshot, start, stop):
            for block_start in range(a, b, step):
                block_stop = min(b, block_start + step)
                first = record.start + block_start
                allowed = live[first : record.start + block_stop].copy()
                if not allowed.any():
                    continue
                vectors16, class_ids, _ = self._slice(record, snapshot.manifest, block_start, block_stop)
                if allowed_classes is not None:
                    allowed &= np.isin(class_ids, allowed_classes)
                if allowed.any():
                    vectors = np.asarray(vectors16, dtype=np.float32)
                    rows = np.arange(first, first + len(allowed), dtype=np.int64)
                    yield rows, vectors, None if allowed.all() else allowed

    def lookup(self, snapshot: Snapshot, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectors (float32) and class ids (int64) of live rows of `snapshot`, in the order asked."""
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise InvalidInputError(f"rows must be a 1-D integer array, got shape {rows.shape}, {rows.dtype}")
        dim = snapshot.manifest.dim or 0
        if rows.size == 0:
            return np.zeros((0, dim), dtype=np.float32), np.zeros(0, dtype=np.int64)
        live = snapshot.live_mask()
        if rows.min() < 0 or rows.max() >= snapshot.manifest.n_rows or not live[rows].all():
            bad = rows[(rows < 0) | (rows >= len(live))]
            bad = bad if bad.size else rows[~live[rows]]
            raise InvalidInputError(f"row {int(bad[0])} is not a stored prototype (drop -1 padding first)")
        unique, inverse = np.unique(rows, return_inverse=True)
        vectors, class_ids = self._gather(snapshot, unique)
        return vectors[inverse].astype(np.float32), class_ids[inverse].astype(np.int64)

    def gather(self, snapshot: Snapshot, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of sorted committed rows (live or not)."""
        return self._gather(snapshot, np.asarray(rows, dtype=np.int64))[0].astype(np.float32)

    def _gather(self, snapshot: Snapshot, sorted_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        segments = snapshot.manifest.segments
        starts = np.array([s.start for s in segments], dtype=np.int64)
        which = np.searchsorted(starts, sorted_rows, side="right") - 1
        vectors, class_ids = [], []
        for i in np.unique(which):
            record = segments[int(i)]
            local = sorted_rows[which == i] - record.start
            segment = self.segment(record, snapshot.manifest)
            if segment.verified:
                vectors.append(segment.vectors[local])
                class_ids.append(segment.class_ids[local])
            else:  # a segment too large to cache: read (and check) only the rows asked for
                prefix = f"{SEGMENTS}/{record.name}"
                try:
                    picked = _Segment(*(np.asarray(array.get_orthogonal_selection(
                        (local,) + (slice(None),) * (array.ndim - 1))) for array in (
                        segment.vectors, segment.class_ids, segment.source_nums)))  # fmt: skip
                except Exception as error:
                    raise self._damaged(prefix, error) from None
                picked.check(self.location, prefix, record.start, 0, len(local), snapshot.manifest)
                vectors.append(picked.vectors)
                class_ids.append(picked.class_ids)
        return np.concatenate(vectors), np.concatenate(class_ids)

    def forget(self) -> None:
        """Drop every cached segment."""
        self._cache.clear()
        self._cached_bytes = 0
        self._raw_cache.clear()
        self._raw_bytes.clear()
