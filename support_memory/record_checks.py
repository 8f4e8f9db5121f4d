"""Cheap checks on every commit record and checkpoint read: a state must be one the writers could have made.

A record edited by hand or damaged into other valid JSON (a negative count, a row range past the stored
rows, a class id outside the table, a segment name that climbs out of the memory's folder) would otherwise
be used as it is: searches over rows that do not exist, prototypes divided by negative counts. The checks
cost the size of what is read (the header, and the sources a record puts), never a walk over the whole
memory; the full cross-check of rows against the tables is `SupportMemory.check()` (consistency.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from support_memory.errors import DamagedMemoryError
from support_memory.manifest import Manifest, SourceRecord, name_key

SEGMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def check_header(manifest: Manifest, location: str, key: str) -> None:
    """The counters, segments and class table of a state (small: every record carries them)."""

    def fail(problem: str) -> None:
        raise DamagedMemoryError(location, key, problem)

    counters = (manifest.seq, manifest.generation - 1, manifest.next_class_id, manifest.next_source_num)
    if min(counters) < 0:
        fail(f"negative or zero counters (commit {manifest.seq}, generation {manifest.generation}, next "
             f"class id {manifest.next_class_id}, next source number {manifest.next_source_num})")
    if manifest.dim is not None and manifest.dim < 1:
        fail(f"dimension {manifest.dim}")
    if manifest.fingerprint is not None and not isinstance(manifest.fingerprint, dict):
        fail("the fingerprint is not an object")
    if (manifest.segments or manifest.classes) and manifest.dim is None:
        fail("rows or classes but no dimension")
    stop, names = 0, set()
    for segment in manifest.segments:
        if not SEGMENT_NAME.fullmatch(segment.name) or segment.name in names:
            fail(f"segment name {segment.name!r} is not a segment of this memory")
        if segment.start != stop or segment.n_rows < 1:
            fail(f"segment {segment.name} covers rows [{segment.start}, {segment.stop}), expected to start "
                 f"at {stop} with at least one row")  # fmt: skip
        names.add(segment.name)
        stop = segment.stop
    keys = set()
    for class_id, record in manifest.classes.items():
        if not isinstance(record.name, str) or not record.name.strip() or name_key(record.name) in keys:
            fail(f"class {class_id} has an empty or repeated name {record.name!r}")
        keys.add(name_key(record.name))
        if class_id != record.id or not 0 <= record.id < manifest.next_class_id:
            fail(f"class {record.name!r} has id {record.id}, outside [0, {manifest.next_class_id})")
        if record.count < 1:
            fail(f"class {record.name!r} has {record.count} prototypes")
        if record.text is not None and not isinstance(record.text, str):
            fail(f"class {record.name!r} has a text prompt that is not a string")


def check_sources(manifest: Manifest, sources: Iterable[SourceRecord], location: str, key: str) -> None:
    """The given source records against the state's header: numbers issued, ranges inside the stored rows,
    classes in the table."""
    known = {name_key(c.name) for c in manifest.classes.values()}
    n_rows = manifest.n_rows
    for source in sources:
        where = f"source {source.source_id!r}"
        if not source.source_id:
            raise DamagedMemoryError(location, key, "a source has an empty id")
        if not 0 <= source.num < manifest.next_source_num:
            raise DamagedMemoryError(location, key, f"{where} has number {source.num}, outside "
                                     f"[0, {manifest.next_source_num})")  # fmt: skip
        previous = 0
        for start, stop in source.ranges:
            if not previous <= start < stop <= n_rows:
                raise DamagedMemoryError(location, key, f"{where} has row range [{start}, {stop}), outside "
                                         f"the {n_rows} stored rows or overlapping its other ranges")
            previous = stop
        unknown = [n for n in source.class_names if name_key(n) not in known]
        if unknown or (source.ranges and not source.class_names):
            raise DamagedMemoryError(location, key, f"{where} names classes {unknown or '(none)'} that the "
                                     "class table does not hold")  # fmt: skip


def check_sums(manifest: Manifest, ids: list[int], rows: np.ndarray, location: str, key: str) -> None:
    """The per-class sums a record sets: class ids it may hold, finite values."""
    if any(not 0 <= i < manifest.next_class_id for i in ids) or not np.isfinite(rows).all():
        raise DamagedMemoryError(location, key, "per-class sums name unknown class ids or are not finite")
