"""Cheap checks on every row segment a memory reads, and finding which file of a segment is damaged.

Every row the memory ever stored was checked to be a finite, L2-normalised float16 vector with a valid
class id and source number before it was written (draft.py). Reading it back, anything else is damage on
the disk (a truncated or emptied chunk, flipped bytes, a broken `zarr.json`), so each segment is checked
when it is loaded, before its rows reach a search, an export or a write: the arrays' declared shapes and
types first (before anything is decoded, so a damaged `zarr.json` declaring a huge shape allocates
nothing), then the values. A failure names the segment's file and is a `DamagedMemoryError`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from support_memory.errors import DamagedMemoryError
from support_memory.storage import Storage

NORM_TOLERANCE = 1e-2  # float16 rounding moves a unit vector's norm by ~1e-3 at most
ARRAYS = ("vectors", "class_ids", "source_nums")
CHECK_BLOCK = 16384


def check_declared(location: str, prefix: str, arrays: list[Any], n_rows: int, dim: int) -> None:
    """The arrays' metadata (zarr.json) must match the commit's segment record: checked before decoding."""
    expected = {"vectors": ((n_rows, dim), np.float16), "class_ids": ((n_rows,), np.int32),
                "source_nums": ((n_rows,), np.int32)}  # fmt: skip
    for key, array in zip(ARRAYS, arrays, strict=True):
        shape, dtype = expected[key]
        if tuple(array.shape) != shape or np.dtype(array.dtype) != dtype:
            raise DamagedMemoryError(
                location, f"{prefix}/{key}/zarr.json",
                f"declares {np.dtype(array.dtype)} {tuple(array.shape)}, the commit says "
                f"{np.dtype(dtype)} {shape}",
            )


def check_values(
    location: str, prefix: str, first_row: int, vectors: np.ndarray, class_ids: np.ndarray,
    source_nums: np.ndarray, next_class_id: int, next_source_num: int,
) -> None:  # fmt: skip
    """Rows as decoded: finite unit vectors, class ids and source numbers the state can have issued."""
    # In blocks (a float32 copy of a whole segment would double its size in RAM); NaN and inf give norms
    # that fail the comparison.
    norms = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), CHECK_BLOCK):
        block = vectors[start : start + CHECK_BLOCK].astype(np.float32)
        norms[start : start + len(block)] = np.sqrt(np.einsum("ij,ij->i", block, block))
    bad = np.flatnonzero(~(np.abs(norms - 1.0) <= NORM_TOLERANCE))
    if bad.size:
        row = int(bad[0])
        raise DamagedMemoryError(
            location, f"{prefix}/vectors",
            f"row {first_row + row} has norm {norms[row]:.4g}, not 1 ({bad.size} such row(s)): flipped, "
            "zeroed or missing bytes",
        )
    for key, values, limit in (("class_ids", class_ids, next_class_id), ("source_nums", source_nums,
                                                                         next_source_num)):  # fmt: skip
        wrong = np.flatnonzero((values < 0) | (values >= limit))
        if wrong.size:
            row = int(wrong[0])
            raise DamagedMemoryError(
                location, f"{prefix}/{key}",
                f"row {first_row + row} holds {int(values[row])}, outside [0, {limit}) ({wrong.size} such "
                "row(s))",
            )


def find_damaged_file(storage: Storage, prefix: str, error: BaseException) -> tuple[str, str]:
    """(the file of a segment that fails to read, what is wrong with it), found by reading it piece by piece
    after `error` ended a read of the whole segment; the segment folder itself when nothing narrower fails."""
    import zarr

    reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
    for key in ("zarr.json",) + tuple(f"{a}/zarr.json" for a in ARRAYS):
        try:
            document = json.loads(storage.read(f"{prefix}/{key}"))
        except FileNotFoundError:
            return f"{prefix}/{key}", "missing"
        except (OSError, ValueError) as problem:
            return f"{prefix}/{key}", f"not readable JSON ({type(problem).__name__}: {problem})"
        if not isinstance(document, dict) or "node_type" not in document:
            return f"{prefix}/{key}", "not zarr metadata"
    try:
        group = zarr.open_group(store=storage.zarr_store(prefix, read_only=True), mode="r")
        for key in ARRAYS:
            array = group[key]
            step = array.chunks[0]
            for chunk, start in enumerate(range(0, array.shape[0], step)):
                try:
                    np.asarray(array[start : start + step])
                except Exception as problem:  # noqa: BLE001 - any decoder's failure is this chunk's damage
                    suffix = "/0" * (array.ndim - 1)
                    why = f"truncated, emptied or garbled ({type(problem).__name__}: {problem})"
                    return f"{prefix}/{key}/c/{chunk}{suffix}", why[:300]
    except Exception as problem:  # noqa: BLE001
        return f"{prefix}/zarr.json", f"unreadable ({type(problem).__name__}: {problem})"[:300]
    return prefix, f"unreadable ({reason})"
