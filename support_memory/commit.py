"""Making a `Draft` durable: write its rows as a new segment, then claim the next commit number; and
cleaning up after.

`write_commit` never overwrites anything: the rows go to a segment under a fresh name, and the commit
becomes visible when its record is created under `log/c<n+1>.json`, which the storage allows only once
(see storage.py). A process killed anywhere before that leaves the previous state intact plus an
unreferenced segment; a writer that loses the race to another gets None back, deletes its segment and is
retried by the store on the newer state. Segments are merged in the background of writes (size tiers, so
each row is rewritten a few times at most) and compacted when dead rows pile up; both are ordinary commits.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from dataclasses import replace

import numpy as np

from support_memory.draft import Draft
from support_memory.errors import CorruptMemoryError, NotAMemoryError
from support_memory.log import (
    CHECKPOINTS,
    LOG,
    MARKER,
    MIN_CHECKPOINT_GAP_BYTES,
    checkpoint_key,
    commit_key,
    encode_checkpoint,
    encode_commit,
    marker_payload,
    parse_checkpoint_name,
    parse_commit_name,
    read_marker,
)
from support_memory.manifest import SegmentRecord
from support_memory.rows import SEGMENTS, PendingRows, RowArrays, segment_created_s
from support_memory.snapshot import Snapshot
from support_memory.storage import LocalStorage, Storage

# Compact when at least this many rows are dead and they are at least this fraction of the stored rows.
COMPACT_MIN_DEAD = 4096
COMPACT_DEAD_FRACTION = 0.25
# Merge the newest segments when this many of them share a size tier (tiers grow by this factor).
MERGE_FANOUT = 16
# Old commits (records, checkpoints) and the segments they use stay readable at least this long, so a
# reader that opened one (a long folder run pinned to a commit) keeps working; then they are collected.
KEEP_S = 24 * 3600.0
RETIRED = "retired"
# Reports written by `SupportMemory.repair()`; the objects they name are never collected (see repair.py).
DAMAGED = "damaged"


def protected_keys(storage: Storage) -> set[str] | None:
    """Every object a repair report keeps for a person to look at; None if a report cannot be read (then
    nothing is collected: a damaged report must not let the objects it names go)."""
    keys: set[str] = set()
    for name in storage.list(DAMAGED):
        try:
            keys.update(str(k) for k in json.loads(storage.read(f"{DAMAGED}/{name}"))["protected"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
    return keys


def write_commit(rows: RowArrays, draft: Draft, compact_min_dead: int) -> Snapshot | None:
    """Write the draft's rows, then try to create its commit record; None when another writer got there."""
    manifest = draft.manifest
    base = draft.base
    total = base.manifest.n_rows + draft.n_pending
    n_live, live = draft.next_snapshot_hints()
    dead = total - n_live
    retired: list[str] = []
    full = draft.force_compaction or (dead >= compact_min_dead and dead > COMPACT_DEAD_FRACTION * total)
    draft.full = full
    if full:
        retired = [s.name for s in base.manifest.segments]
        _compact(rows, draft)
    elif draft.n_pending:
        name = rows.write_segment(PendingRows.concatenate(draft.pending))
        draft.written.append(name)
        manifest.segments.append(SegmentRecord(name, base.manifest.n_rows, draft.n_pending))
        retired = _merge_tail(rows, draft)
    manifest.seq = base.seq + 1
    mark_retired(rows.storage, retired)
    record = encode_commit(base.manifest, base.sums, manifest, draft.sums, full=full, retired=retired,
                           touched=draft.touched)  # fmt: skip
    if not rows.storage.create(commit_key(manifest.seq), record):
        abandon(rows, draft)
        return None
    # A segment this commit wrote and then merged away was never named by any commit: delete it now
    # rather than leave it for the 24-hour collection.
    named = {s.name for s in manifest.segments}
    for name in draft.written:
        if name not in named:
            with contextlib.suppress(OSError):
                rows.delete_segment(name)
    if full:
        # After a compaction every stored row is live.
        return Snapshot(manifest, draft.sums, log_bytes=0, checkpoint_bytes=len(record),
                        location=rows.location, _live=np.ones(manifest.n_rows, dtype=bool),
                        _n_live=manifest.n_rows)  # fmt: skip
    return Snapshot(manifest, draft.sums, log_bytes=base.log_bytes + len(record), location=rows.location,
                    checkpoint_bytes=base.checkpoint_bytes, _live=live, _n_live=n_live)  # fmt: skip


def size_tier(n_rows: int) -> int:
    return int(math.log(max(n_rows, 1), MERGE_FANOUT))


def _merge_tail(rows: RowArrays, draft: Draft) -> list[str]:
    """Merge the newest MERGE_FANOUT segments into one when they share a size tier (row numbers unchanged)."""
    segments = draft.manifest.segments
    retired: list[str] = []
    while len(segments) >= MERGE_FANOUT:
        tail = segments[-MERGE_FANOUT:]
        if len({size_tier(s.n_rows) for s in tail}) != 1:
            break
        probe = Snapshot(draft.manifest, draft.sums, location=rows.location)
        vectors, class_ids, source_nums = rows.read_all(probe, tail[0].start, tail[-1].stop)
        name = rows.write_segment(PendingRows(vectors, class_ids, source_nums))
        draft.written.append(name)
        retired.extend(s.name for s in tail if s.name not in draft.written)
        segments[-MERGE_FANOUT:] = [SegmentRecord(name, tail[0].start, tail[-1].stop - tail[0].start)]
    return retired


def _compact(rows: RowArrays, draft: Draft) -> None:
    """Rewrite the live rows (committed and pending) into one new segment, one range per source."""
    manifest = draft.manifest
    base = draft.base
    n_base = base.manifest.n_rows
    pending = PendingRows.concatenate(draft.pending) if draft.pending else None
    parts: list[PendingRows] = []
    sums = np.zeros_like(draft.sums)
    offset = 0
    for source in sorted(manifest.sources.values(), key=lambda s: s.num):
        vectors_parts, class_parts = [], []
        for start, stop in source.ranges:
            if start >= n_base:
                assert pending is not None
                vectors_parts.append(pending.vectors[start - n_base : stop - n_base])
                class_parts.append(pending.class_ids[start - n_base : stop - n_base])
            else:
                vectors16, class_ids = rows.read(base, start, stop)
                vectors_parts.append(vectors16)
                class_parts.append(class_ids.astype(np.int32))
        n = sum(len(c) for c in class_parts)
        if n:
            part = PendingRows(np.concatenate(vectors_parts), np.concatenate(class_parts),
                               np.full(n, source.num, np.int32))  # fmt: skip
            parts.append(part)
            np.add.at(sums, part.class_ids, part.vectors.astype(np.float64))
        manifest.sources[source.source_id] = replace(source, ranges=[(offset, offset + n)] if n else [])
        offset += n
    manifest.segments = []
    if parts:
        name = rows.write_segment(PendingRows.concatenate(parts))
        draft.written.append(name)
        manifest.segments = [SegmentRecord(name, 0, offset)]
    manifest.generation = base.manifest.generation + 1
    draft.sums = sums


def mark_retired(storage: Storage, names: list[str]) -> None:
    """Note when segments leave the state, before the commit that drops them (collection waits KEEP_S)."""
    now = int(time.time())
    for name in names:
        storage.write(f"{RETIRED}/{name}", str(now).encode())


def abandon(rows: RowArrays, draft: Draft) -> None:
    """After a failed or lost commit: delete what it wrote, so nothing but the previous state remains."""
    for name in draft.written:
        with contextlib.suppress(OSError):
            rows.delete_segment(name)
            rows.storage.delete(f"{RETIRED}/{name}")
    draft.written.clear()


def maybe_checkpoint(storage: Storage, snapshot: Snapshot, *, force: bool = False) -> Snapshot:
    """Write a checkpoint when the records since the last one outweigh it, or after a full record (best
    effort: a checkpoint only saves replaying records)."""
    if not force and snapshot.log_bytes < max(snapshot.checkpoint_bytes, MIN_CHECKPOINT_GAP_BYTES):
        return snapshot
    data = encode_checkpoint(snapshot.manifest, snapshot.sums)
    try:
        storage.create(checkpoint_key(snapshot.seq, time.time()), data)
    except OSError:  # a full disk: the commit is done; replay stays correct, only slower
        return snapshot
    return replace(snapshot, log_bytes=0, checkpoint_bytes=len(data))


def collect_garbage(rows: RowArrays, head: Snapshot, keep_s: float = KEEP_S) -> None:
    """Delete what no commit younger than `keep_s` can need: old records and checkpoints, retired segments
    and segments of writes that never committed. Best effort: anything left is collected next time."""
    storage = rows.storage
    now = time.time()
    protected = protected_keys(storage)
    if protected is None:
        return
    checkpoints = sorted(p + (n,) for n in storage.list(CHECKPOINTS) if (p := parse_checkpoint_name(n)))
    old = [c for c in checkpoints if c[1] < now - keep_s and c[0] <= head.seq]
    if old:
        floor = old[-1][0]
        for seq, _written, name in checkpoints:
            if seq < floor and f"{CHECKPOINTS}/{name}" not in protected:
                storage.delete(f"{CHECKPOINTS}/{name}")
        for name in storage.list(LOG):
            seq = parse_commit_name(name)
            if seq is not None and seq < min(floor + 1, head.seq) and f"{LOG}/{name}" not in protected:
                storage.delete(f"{LOG}/{name}")  # the head's record always stays
    in_use = {s.name for s in head.manifest.segments}
    retired = {}
    for name in storage.list(RETIRED):
        with contextlib.suppress(FileNotFoundError, ValueError):
            retired[name] = float(storage.read(f"{RETIRED}/{name}").decode())
    for name in rows.stored_segments():
        if name in in_use or f"{SEGMENTS}/{name}" in protected:
            continue
        since = retired.get(name, segment_created_s(name))
        if since is not None and since < now - keep_s:
            rows.delete_segment(name)
            storage.delete(f"{RETIRED}/{name}")


def create_if_missing(storage: Storage, create: bool) -> None:
    """Make the location an empty memory if nothing is there (and `create`); refuse anything else.

    A local folder that holds anything else (a file, other files) is refused with NotAMemoryError, so a
    mistyped path never scribbles into an unrelated folder.
    """
    where = storage.location
    if isinstance(storage, LocalStorage):
        path = storage.root
        if path.exists() and not path.is_dir():
            raise NotAMemoryError(f"{path} is a file, not a support memory; a memory is a directory")
        if (path / "manifest.json").exists() and not (path / MARKER).exists():
            raise CorruptMemoryError(
                f"memory {path} was written by an older rns (support_memory/1); rebuild it: add the examples "
                "again into a new --memory"
            )
    try:
        read_marker(storage.read(MARKER), f"{where}/{MARKER}")
        return
    except (FileNotFoundError, NotADirectoryError):
        pass
    if isinstance(storage, LocalStorage) and storage.root.is_dir():
        if any(not child.name.startswith(".") for child in storage.root.iterdir()):
            raise NotAMemoryError(
                f"{where} is a directory but not a support memory (no {MARKER}); use an empty or new "
                "directory, or an existing memory"
            )
    elif not isinstance(storage, LocalStorage) and storage.list(""):
        raise NotAMemoryError(
            f"{where} holds other objects but no support memory ({MARKER}); use an empty prefix or a memory"
        )
    if not create:
        raise NotAMemoryError(f"no support memory at {where}; add examples to it first, or check the path")
    if isinstance(storage, LocalStorage):
        try:
            storage.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise NotAMemoryError(
                f"cannot create a support memory at {where} ({error.strerror}); use a writable directory"
            ) from None
    storage.create(MARKER, marker_payload(uuid.uuid4().hex))  # a concurrent creator may win: same result
    read_marker(storage.read(MARKER), f"{where}/{MARKER}")
