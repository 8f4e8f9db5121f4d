"""`RowArrays`: the zarr row arrays of one memory directory, the only code that reads or writes them.

One generation of rows is three arrays under `rows/gNNNNNN/` (vectors float16 [capacity, d], class_ids and
source_nums int32 [capacity]). The store, the write draft, the approximate index and the consistency check
all read rows through this class, so none of them reaches into another's privates, and a different backend
(object storage) would be one replacement of this class.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from support_memory.errors import CorruptMemoryError, InvalidInputError
from support_memory.search import block_rows_for
from support_memory.snapshot import Snapshot

CHUNK_ROWS = 1024


@dataclass
class PendingRows:
    """Rows queued by a write, not yet stored."""

    vectors: np.ndarray  # float16 [m, d]
    class_ids: np.ndarray  # int32 [m]
    source_nums: np.ndarray  # int32 [m]


def generation_group(generation: int) -> str:
    """The folder (relative to the memory) that holds one generation of row arrays."""
    return f"rows/g{generation:06d}"


class RowArrays:
    """Opens (and caches) the row arrays of the memory at `path`; reads and writes blocks of rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._arrays: dict[str, zarr.Array] = {}

    def array(self, generation: int, name: str) -> zarr.Array:
        """One of "vectors", "class_ids", "source_nums" of a generation (CorruptMemoryError if missing)."""
        key = f"{generation_group(generation)}/{name}"
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

    def exists(self, generation: int) -> bool:
        """Whether a generation's vectors array has been created."""
        return (self.path / generation_group(generation) / "vectors" / "zarr.json").exists()

    def create_generation(self, generation: int, dim: int, n_rows: int) -> None:
        """Create empty arrays for a generation, replacing debris a dead write may have left there."""
        group_path = self.path / generation_group(generation)
        if group_path.exists():  # debris of a write that died before committing it
            shutil.rmtree(group_path)
        for key in list(self._arrays):
            if key.startswith(generation_group(generation)):
                del self._arrays[key]
        root = zarr.open_group(str(self.path), mode="a", zarr_format=3)
        group = root.require_group(generation_group(generation))
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

    def read(self, snapshot: Snapshot, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Stored (float16) vectors and class ids of committed rows [start, stop)."""
        generation = snapshot.manifest.generation
        vectors = np.asarray(self.array(generation, "vectors")[start:stop])
        class_ids = np.asarray(self.array(generation, "class_ids")[start:stop])
        return vectors, class_ids

    def write(self, generation: int, start: int, rows: PendingRows) -> list[Path]:
        """Write rows at [start, start+m) of a generation (growing it if needed); returns files to fsync."""
        stop = start + rows.vectors.shape[0]
        touched: list[Path] = []
        for name, data in (("vectors", rows.vectors), ("class_ids", rows.class_ids),
                           ("source_nums", rows.source_nums)):  # fmt: skip
            array = self.array(generation, name)
            if array.shape[0] < stop:
                array.resize((stop, *array.shape[1:]))
                touched.append(self.path / generation_group(generation) / name / "zarr.json")
            array[start:stop] = data
            chunk_dir = self.path / generation_group(generation) / name / "c"
            for chunk in range(start // CHUNK_ROWS, (stop - 1) // CHUNK_ROWS + 1):
                touched.append(chunk_dir / str(chunk) / "0" if name == "vectors" else chunk_dir / str(chunk))
        return touched

    def blocks(
        self,
        snapshot: Snapshot,
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
                class_ids = np.asarray(self.array(generation, "class_ids")[block_start:block_stop])
                allowed &= np.isin(class_ids, allowed_classes)
            if allowed.any():
                vectors = np.asarray(self.array(generation, "vectors")[block_start:block_stop],
                                     dtype=np.float32)  # fmt: skip
                rows = np.arange(block_start, block_stop, dtype=np.int64)
                yield rows, vectors, None if allowed.all() else allowed
            block_start = block_stop

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
        generation = snapshot.manifest.generation
        vectors_array = self.array(generation, "vectors")
        vectors = np.asarray(vectors_array.get_orthogonal_selection((unique, slice(None))))
        class_ids = np.asarray(self.array(generation, "class_ids").get_orthogonal_selection(unique))
        return vectors[inverse].astype(np.float32), class_ids[inverse].astype(np.int64)

    def gather(self, snapshot: Snapshot, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of sorted committed rows (live or not), read a block at a time."""
        vectors_array = self.array(snapshot.manifest.generation, "vectors")
        parts = []
        for start in range(0, len(rows), 65536):
            part = rows[start : start + 65536]
            parts.append(np.asarray(vectors_array.get_orthogonal_selection((part, slice(None)))))
        return np.concatenate(parts).astype(np.float32)

    def forget(self) -> None:
        """Drop every cached array handle (after a failed commit may have left them pointing at debris)."""
        self._arrays.clear()

    def forget_missing(self) -> None:
        """Drop cached handles of arrays that garbage collection deleted."""
        self._arrays = {k: v for k, v in self._arrays.items() if (self.path / k / "zarr.json").exists()}
