"""`SupportMemory.check`: verify that a committed state is internally consistent.

It re-derives from the stored rows everything the manifest and the sums claim (counts, sums, which classes
each source holds, which source owns each row) and reports the first disagreement. It reads the rows in
blocks, so it works on memories larger than RAM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from support_memory.errors import DamagedMemoryError
from support_memory.log import commit_key

if TYPE_CHECKING:
    from support_memory.rows import RowArrays
    from support_memory.snapshot import Snapshot

CHECK_BLOCK_ROWS = 16384
NORM_TOLERANCE = 1e-2
SUM_TOLERANCE = 1e-6


def check_snapshot(rows: RowArrays, snapshot: Snapshot) -> None:
    """Raise CorruptMemoryError unless the snapshot's manifest, sums and rows agree."""
    manifest = snapshot.manifest

    def fail(problem: str) -> None:
        key = commit_key(manifest.seq)
        raise DamagedMemoryError(rows.location, key, f"its state disagrees with the stored rows: {problem}")

    names = [c.name for c in manifest.classes.values()]
    if len(set(names)) != len(names):
        fail("two classes share a name")
    for record in manifest.classes.values():
        if not 0 <= record.id < manifest.next_class_id:
            fail(f"class {record.name!r} has id {record.id} outside [0, {manifest.next_class_id})")
        if record.count <= 0:
            fail(f"class {record.name!r} has {record.count} prototypes")
    nums = [s.num for s in manifest.sources.values()]
    if len(set(nums)) != len(nums) or any(not 0 <= n < manifest.next_source_num for n in nums):
        fail("source numbers are duplicated or out of range")
    spans = sorted((a, b, s.source_id) for s in manifest.sources.values() for a, b in s.ranges)
    previous_stop = 0
    for start, stop, source_id in spans:
        if not (previous_stop <= start < stop <= manifest.n_rows):
            fail(f"source {source_id!r} has a bad or overlapping row range [{start}, {stop})")
        previous_stop = stop
    dim = manifest.dim or 0
    if snapshot.sums.shape != (manifest.next_class_id, dim):
        fail(f"sums have shape {snapshot.sums.shape}, expected {(manifest.next_class_id, dim)}")
    if not np.isfinite(snapshot.sums).all():
        fail("sums contain NaN or infinite values")

    counts = np.zeros(manifest.next_class_id, dtype=np.int64)
    sums = np.zeros((manifest.next_class_id, dim), dtype=np.float64)
    name_of = {c.id: c.name for c in manifest.classes.values()}
    if manifest.n_rows:
        previous = 0
        for segment in manifest.segments:
            if segment.start != previous or segment.n_rows <= 0:
                fail(f"row segment {segment.name} starts at {segment.start}, expected {previous}")
            stored = rows.segment(segment, manifest)
            vectors = stored.vectors
            if vectors.dtype != np.float16 or vectors.ndim != 2 or vectors.shape[1] != dim:
                fail(f"row segment {segment.name} has dtype {stored.vectors.dtype} and shape "
                     f"{stored.vectors.shape}")  # fmt: skip
            if stored.vectors.shape[0] != segment.n_rows or stored.class_ids.shape[0] != segment.n_rows:
                fail(f"row segment {segment.name} holds {stored.vectors.shape[0]} rows, not {segment.n_rows}")
            previous = segment.stop
        for source in manifest.sources.values():
            present: set[str] = set()
            for range_start, range_stop in source.ranges:
                for start in range(range_start, range_stop, CHECK_BLOCK_ROWS):
                    stop = min(range_stop, start + CHECK_BLOCK_ROWS)
                    vectors, class_ids, owners = rows.read_all(snapshot, start, stop)
                    class_ids = class_ids.astype(np.int64)
                    if not np.isfinite(vectors).all():
                        fail(f"rows {start}..{stop} hold NaN or infinite values")
                    norms = np.linalg.norm(vectors.astype(np.float32), axis=1)
                    if np.any(np.abs(norms - 1.0) > NORM_TOLERANCE):
                        fail(f"rows {start}..{stop} are not unit vectors")
                    if np.any(owners != source.num):
                        fail(f"rows {start}..{stop} are not owned by source {source.source_id!r}")
                    unknown = sorted(set(class_ids.tolist()) - set(name_of))
                    if unknown:
                        fail(f"rows {start}..{stop} name unknown class ids {unknown}")
                    np.add.at(counts, class_ids, 1)
                    np.add.at(sums, class_ids, vectors.astype(np.float64))
                    present.update(name_of[c] for c in set(class_ids.tolist()))
            if present != set(source.class_names):
                fail(f"source {source.source_id!r} lists classes {sorted(source.class_names)} "
                     f"but its rows hold {sorted(present)}")  # fmt: skip
    elif manifest.sources and any(s.ranges for s in manifest.sources.values()):
        fail("sources own rows but no rows are committed")
    for class_id in range(manifest.next_class_id):
        expected = manifest.classes[class_id].count if class_id in manifest.classes else 0
        if counts[class_id] != expected:
            fail(f"class id {class_id} has {counts[class_id]} live rows but the table says {expected}")
    scale = np.maximum(counts, 1)[:, None]
    if sums.size and np.max(np.abs(sums - snapshot.sums) / scale) > SUM_TOLERANCE:
        fail("per-class sums disagree with the stored rows")
