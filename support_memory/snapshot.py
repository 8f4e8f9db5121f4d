"""`Snapshot`: one committed state of a memory as a reader sees it (the manifest plus the sums it names),
and `load_committed`, which reads the current one from disk.

It is its own module so that the store, the write draft, the index and the consistency check can all name
the type without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from support_memory.errors import CorruptMemoryError
from support_memory.manifest import MANIFEST_NAME, Manifest, read_manifest


@dataclass
class Snapshot:
    """A committed state as one reader sees it: the manifest plus the per-class sums it names."""

    manifest: Manifest
    sums: np.ndarray  # float64 [next_class_id, dim]; empty when the memory has no rows yet
    _live: np.ndarray | None = field(default=None, repr=False)

    def live_mask(self) -> np.ndarray:
        """Which stored rows belong to a source the manifest still lists (computed once per snapshot)."""
        if self._live is None:
            live = np.zeros(self.manifest.n_rows, dtype=bool)
            for source in self.manifest.sources.values():
                for start, stop in source.ranges:
                    live[start:stop] = True
            self._live = live
        return self._live


def load_committed(path: Path) -> Snapshot:
    """Read the committed manifest of the memory at `path` and the per-class sums it names."""
    # A writer may delete the sums array named by a manifest two commits old between our two reads;
    # re-reading the manifest then finds the current one.
    last_error: Exception | None = None
    for _ in range(20):
        manifest = read_manifest(path / MANIFEST_NAME)
        try:
            return Snapshot(manifest, _read_sums(path, manifest))
        except FileNotFoundError as error:
            last_error = error
    raise CorruptMemoryError(
        f"memory {path}: the sums array named by the manifest is missing ({last_error}); "
        "restore the memory from a backup or rebuild it"
    )


def _read_sums(path: Path, manifest: Manifest) -> np.ndarray:
    dim = manifest.dim or 0
    if manifest.sums_name is None:
        return np.zeros((manifest.next_class_id, dim), dtype=np.float64)
    location = path / manifest.sums_name
    if not (location / "zarr.json").exists():
        raise FileNotFoundError(location)
    sums = zarr.open_array(str(location), mode="r")[...]
    if sums.shape != (manifest.next_class_id, dim):
        raise CorruptMemoryError(
            f"memory {path}: sums array {manifest.sums_name} has shape {sums.shape}, expected "
            f"{(manifest.next_class_id, dim)}; restore the memory from a backup or rebuild it"
        )
    return np.asarray(sums, dtype=np.float64)
