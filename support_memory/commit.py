"""Making a `Draft` durable: write its rows and sums, fsync, replace the manifest; and cleaning up after.

The store calls `write_commit` under the writer lock; the manifest replacement is the single commit point,
so a process killed anywhere before it leaves the previous state intact. `abandon` frees what a failed
commit wrote; `collect_garbage` deletes what the new manifest no longer names; `create_if_missing`
makes the first, empty state of a new memory.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr

from support_memory import durability
from support_memory.draft import Draft
from support_memory.errors import NotAMemoryError
from support_memory.locking import LOCK_FILE_NAME, WriterLock, try_remove_unpinned
from support_memory.manifest import MANIFEST_NAME, Manifest
from support_memory.oserrors import translate_os_error
from support_memory.rows import PendingRows, RowArrays, generation_group
from support_memory.snapshot import Snapshot

# Compact when at least this many rows are dead and they are at least this fraction of the stored rows.
COMPACT_MIN_DEAD = 4096
COMPACT_DEAD_FRACTION = 0.25


def write_commit(rows: RowArrays, draft: Draft, compact_min_dead: int) -> Snapshot:
    """Write the draft's rows and sums, then atomically replace the manifest; returns the new state."""
    path = rows.path
    manifest = draft.manifest
    base = draft.base.manifest
    total = base.n_rows + draft.n_pending
    dead = total - manifest.n_live
    to_sync: list[Path] = []
    if draft.force_compaction or (dead >= compact_min_dead and dead > COMPACT_DEAD_FRACTION * total):
        _compact_into_new_generation(rows, draft)
        to_sync_tree = [path / generation_group(manifest.generation)]
    else:
        to_sync_tree = []
        if draft.n_pending:
            if not rows.exists(manifest.generation):
                rows.create_generation(manifest.generation, manifest.dim or 0, 0)
                to_sync_tree.append(path / generation_group(manifest.generation))
            # One write for the whole batch: each zarr chunk is then rewritten once, not once per source.
            batch = PendingRows(
                np.concatenate([p.vectors for p in draft.pending]),
                np.concatenate([p.class_ids for p in draft.pending]),
                np.concatenate([p.source_nums for p in draft.pending]),
            )
            to_sync.extend(rows.write(manifest.generation, base.n_rows, batch))
        manifest.n_rows = total
    manifest.seq = base.seq + 1
    if draft.sums_changed:
        manifest.sums_name = f"sums/s{manifest.seq:08d}"
        location = path / manifest.sums_name
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
    durability.atomic_write_json(path / MANIFEST_NAME, manifest.to_json())
    return Snapshot(manifest, draft.sums)


def _compact_into_new_generation(rows: RowArrays, draft: Draft) -> None:
    """Rewrite the live rows (committed and pending) into generation+1, one range per source."""
    manifest = draft.manifest
    base = draft.base
    pending_vectors = np.concatenate([p.vectors for p in draft.pending]) if draft.pending else None
    pending_classes = np.concatenate([p.class_ids for p in draft.pending]) if draft.pending else None
    new_generation = base.manifest.generation + 1
    rows.create_generation(new_generation, manifest.dim or 0, manifest.n_live)
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
                vectors16, class_ids = rows.read(base, start, stop)
                parts_v.append(vectors16)
                parts_c.append(class_ids.astype(np.int32))
        if not parts_v:
            source.ranges = []
            continue
        batch = PendingRows(
            np.concatenate(parts_v), np.concatenate(parts_c),
            np.full(sum(len(c) for c in parts_c), source.num, np.int32),
        )  # fmt: skip
        rows.write(new_generation, offset, batch)
        np.add.at(sums, batch.class_ids, batch.vectors.astype(np.float64))
        source.ranges = [(offset, offset + len(batch.class_ids))]
        offset += len(batch.class_ids)
    manifest.generation = new_generation
    manifest.n_rows = offset
    draft.sums = sums
    draft.sums_changed = True


def abandon(rows: RowArrays, draft: Draft) -> None:
    """After a failed commit: delete what it wrote that no manifest names, freeing the space again.

    Rows appended past the committed length of the current generation stay (they are invisible and
    the next append overwrites them); a new sums array or generation, and a manifest temp file, go.
    """
    path = rows.path
    committed = draft.base.manifest
    shutil.rmtree(path / f"sums/s{committed.seq + 1:08d}", ignore_errors=True)
    shutil.rmtree(path / generation_group(committed.generation + 1), ignore_errors=True)
    if committed.n_rows == 0:  # nothing committed in the current generation either: no reader needs it
        shutil.rmtree(path / generation_group(committed.generation), ignore_errors=True)
    for child in path.glob(f"{MANIFEST_NAME}.*.tmp"):
        with contextlib.suppress(OSError):
            child.unlink()
    rows.forget()


def collect_garbage(
    rows: RowArrays,
    current_generation: int,
    keep_sums: set[str | None],
    pin_path: Callable[[int], Path],
) -> None:
    """Delete arrays the manifest no longer names: generations no reader pins, all but the last sums.

    The previous sums array is kept because a reader may have read the previous manifest and not yet
    the sums it names (it retries on a miss, see SupportMemory._load_committed).
    """
    path = rows.path
    generations = {int(p.name[1:]) for p in (path / "rows").glob("g*") if p.is_dir()}
    generations |= {int(p.stem[1:]) for p in (path / "readers").glob("g*.lock")}
    for generation in sorted(generations - {current_generation}):
        group = path / generation_group(generation)
        try_remove_unpinned(pin_path(generation), lambda g=group: shutil.rmtree(g, ignore_errors=True))
    sums_dir = path / "sums"
    if sums_dir.is_dir():
        for child in sums_dir.iterdir():
            if child.is_dir() and f"sums/{child.name}" not in keep_sums:
                shutil.rmtree(child, ignore_errors=True)
    for child in path.glob(f"{MANIFEST_NAME}.*.tmp"):
        child.unlink(missing_ok=True)
    rows.forget_missing()


# Files that may exist in a directory that is not (yet) a memory without it being "something else".
_IGNORABLE = {LOCK_FILE_NAME, ".DS_Store"}


def create_if_missing(path: Path, create: bool, lock_timeout_s: float) -> None:
    """Make `path` an empty memory if nothing is there (and `create`); refuse anything that is not a memory.

    A path that holds anything else (a file, a directory with other files) is refused with
    NotAMemoryError, so a mistyped path never scribbles into an unrelated folder.
    """
    manifest_path = path / MANIFEST_NAME
    if path.exists() and not path.is_dir():
        raise NotAMemoryError(f"{path} is a file, not a support memory; a memory is a directory")
    if manifest_path.exists():
        return
    if path.is_dir() and any(child.name not in _IGNORABLE for child in path.iterdir()):
        raise NotAMemoryError(
            f"{path} is a directory but not a support memory (no {MANIFEST_NAME}); "
            "use an empty or new directory, or an existing memory"
        )
    if not create:
        raise NotAMemoryError(f"no support memory at {path}; add examples to it first, or check the path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NotAMemoryError(
            f"cannot create a support memory at {path} ({error.strerror}); use a writable directory"
        ) from None
    try:
        with WriterLock(path, lock_timeout_s):
            if not manifest_path.exists():
                zarr.open_group(str(path), mode="a", zarr_format=3)
                durability.fsync_tree(path)
                durability.atomic_write_json(manifest_path, Manifest().to_json())
    except OSError as error:  # a read-only or full file system: one line, not a traceback
        raise translate_os_error(error, path, "creating the memory") or error from None
