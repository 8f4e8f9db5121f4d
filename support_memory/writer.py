"""The write loop: apply an edit to the newest state and commit it, again on a newer state if another
writer committed first (optimistic concurrency; see commit.py and docs/MEMORY_STORAGE.md).

An edit is a function of a `Draft`; it may run more than once, so it must only describe the change (put
these sources, drop that class), never count on the state it first saw.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from typing import TypeVar

from support_memory.commit import abandon, collect_garbage, maybe_checkpoint, write_commit
from support_memory.draft import Draft
from support_memory.errors import MemoryLockedError, MemoryStoreError
from support_memory.oserrors import translate_os_error
from support_memory.rows import RowArrays
from support_memory.snapshot import Snapshot, load_committed

T = TypeVar("T")


def commit_edit(
    rows: RowArrays,
    known: Snapshot | None,
    edit: Callable[[Draft], T],
    *,
    compact_min_dead: int,
    timeout_s: float,
) -> tuple[T, Snapshot]:
    """(what `edit` returned, the state after its commit, or the newest state when it changed nothing)."""
    where = rows.location
    deadline = time.monotonic() + timeout_s
    base = load_committed(rows.storage, known=known)
    attempt = 0
    while True:
        draft = Draft(rows, base)
        result = edit(draft)
        if not draft.changed:
            return result, base
        try:
            snapshot = write_commit(rows, draft, compact_min_dead)
        except OSError as error:
            abandon(rows, draft)
            raise translate_os_error(error, where, "writing a commit") or error from None
        if snapshot is not None:
            return result, _after_commit(rows, snapshot, full=draft.full)
        if time.monotonic() > deadline:
            raise MemoryLockedError(
                f"memory {where}: other writers kept committing first for {timeout_s:.0f} s; retry later"
            )
        # Back off a random, growing while so that writers racing for the same commit number spread out.
        time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
        attempt += 1
        base = load_committed(rows.storage, known=base)


def _after_commit(rows: RowArrays, snapshot: Snapshot, full: bool) -> Snapshot:
    """Checkpoint and collect garbage when due; failures here never undo the commit that was made."""
    checkpointed = maybe_checkpoint(rows.storage, snapshot, force=full)
    if checkpointed is not snapshot:
        with contextlib.suppress(OSError, MemoryStoreError):
            collect_garbage(rows, checkpointed)
    return checkpointed
