"""`SupportMemory.repair()`: a new commit holding every intact source of a damaged memory, deleting nothing.

From a survey (salvage.py) it rewrites the verified rows of every intact source into one new segment and
commits a full record of them (a compaction: new row numbers, class counts and sums recomputed from the
rows themselves), numbered after every record the log names, damaged ones included, so readers start from
it and never need the damaged records again. Before committing it writes a report,
`damaged/repair-c<n>.json`: the damaged parts, the sources dropped and why, and the objects it keeps for
a person to look at (damaged segments and records, and segments holding rows of dropped or unknown
sources). Garbage collection never deletes what a report names, so nothing a person could still recover
is lost; they delete those objects by hand once done with them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace

import numpy as np

from support_memory.commit import DAMAGED, mark_retired, maybe_checkpoint
from support_memory.errors import MemoryLockedError
from support_memory.log import commit_key, encode_commit
from support_memory.manifest import ClassRecord, Manifest, SegmentRecord
from support_memory.rows import PendingRows, RowArrays
from support_memory.salvage import Damage, DroppedSource, Survey, survey
from support_memory.snapshot import Snapshot, head_seq


@dataclass
class RepairResult:
    """What `repair` did: the commit it wrote (None: nothing was damaged), what it kept and dropped."""

    commit: int | None
    damage: list[Damage] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # source ids
    dropped: list[DroppedSource] = field(default_factory=list)
    report: str | None = None  # key of the report it wrote
    kept_objects: list[str] = field(default_factory=list)  # damaged objects left in place


def repair(rows: RowArrays, attempts: int = 20) -> RepairResult:
    """Survey the memory and, if anything is damaged, commit its intact sources (see the module docstring)."""
    storage = rows.storage
    for _ in range(attempts):
        found = survey(rows)
        if found.clean:
            return RepairResult(None)
        manifest, sums, pending = _rebuild(found)
        manifest.seq = max(found.head, head_seq(storage)) + 1
        name = rows.write_segment(pending) if pending is not None else None
        if name is not None:
            manifest.segments = [SegmentRecord(name, 0, len(pending.class_ids))]
        report = f"{DAMAGED}/repair-c{manifest.seq:012d}.json"
        storage.write(report, _report_json(found, manifest.seq))
        # Readers of older commits keep their segments for the usual retention time (see commit.KEEP_S).
        mark_retired(storage, sorted(found.segments_named))
        record = encode_commit(manifest, sums, manifest, sums, full=True, retired=[], touched=set())
        if storage.create(commit_key(manifest.seq), record):
            maybe_checkpoint(storage, Snapshot(manifest, sums, checkpoint_bytes=len(record),
                                               location=storage.location), force=True)  # fmt: skip
            return RepairResult(manifest.seq, found.damage, [i.source.source_id for i in found.intact],
                                found.dropped, report, sorted(found.protected))  # fmt: skip
        # Another writer committed first: drop what this attempt wrote and survey the newer state.
        storage.delete(report)
        if name is not None:
            rows.delete_segment(name)
        time.sleep(0.05)
    raise MemoryLockedError(f"memory {storage.location}: other writers kept committing during the repair; "
                            "retry when they are done")  # fmt: skip


def _rebuild(found: Survey) -> tuple[Manifest, np.ndarray, PendingRows | None]:
    """The state holding exactly the intact sources, rows renumbered from 0 in source order."""
    newest = found.newest
    dim = newest.dim if newest is not None and newest.dim else None
    if dim is None and found.intact:
        dim = int(found.intact[0].vectors.shape[1])
    next_class_id = max([found.next_class_id] + [int(i.class_ids.max()) + 1 for i in found.intact
                                                  if len(i.class_ids)])  # fmt: skip
    next_source_num = max([found.next_source_num] + [i.source.num + 1 for i in found.intact])
    sums = np.zeros((next_class_id, dim or 0), dtype=np.float64)
    counts = np.zeros(next_class_id, dtype=np.int64)
    parts, sources, offset = [], {}, 0
    for intact in sorted(found.intact, key=lambda i: i.source.num):
        n = len(intact.class_ids)
        if n:
            parts.append(PendingRows(intact.vectors, intact.class_ids,
                                     np.full(n, intact.source.num, np.int32)))  # fmt: skip
            np.add.at(sums, intact.class_ids, intact.vectors.astype(np.float64))
            np.add.at(counts, intact.class_ids, 1)
        sources[intact.source.source_id] = replace(intact.source, ranges=[(offset, offset + n)] if n else [])
        offset += n
    classes = {
        i: ClassRecord(i, found.classes[i].name, found.classes[i].text, int(counts[i]))
        for i in range(next_class_id) if counts[i] > 0
    }  # fmt: skip
    manifest = Manifest(
        store_id=found.store_id,
        generation=found.generation + 1,
        dim=dim,
        fingerprint=newest.fingerprint if newest is not None else None,
        next_class_id=next_class_id,
        next_source_num=next_source_num,
        classes=classes,
        sources=sources,
    )
    return manifest, sums, PendingRows.concatenate(parts) if parts else None


def _report_json(found: Survey, seq: int) -> bytes:
    payload = {
        "repair_commit": seq,
        "time": time.time(),
        "damage": [{"part": d.part, "problem": d.problem} for d in found.damage],
        "kept": [i.source.source_id for i in found.intact],
        "dropped": [{"source_id": d.source_id, "why": d.why, "meta": d.meta} for d in found.dropped],
        "protected": sorted(found.protected),
    }
    return json.dumps(payload, indent=1).encode("utf-8")
