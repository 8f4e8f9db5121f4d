"""`SupportMemory`: a crash-safe, zarr-backed store of labelled prototype rows, with its class and source
tables, in a local folder or at an object-store URL (s3://...).

Layout (the same keys in a folder or under a URL prefix; see docs/MEMORY_STORAGE.md):

    memory.json                   marker: format and store id
    log/c000000000042.json        commit 42: what changed (the commit point: created only if absent)
    checkpoints/c...40.<t>.json   the whole state as of a commit (so opening replays few records)
    segments/s<time>-<id>/...     immutable zarr arrays: vectors float16 [m, d], class_ids, source_nums
    retired/s<time>-<id>          when a merge or compaction took a segment out of the state
    index/                        optional approximate index (see index.py)

A write reads the newest state, writes its rows as a new segment, and creates the next commit record; if
another writer created it first, the write is redone on the newer state (optimistic concurrency: no lock,
which object stores do not offer, and no example is ever lost). Readers read the state of one commit and
immutable segments, so they always see one consistent commit. Removals only drop row ranges; when dead rows
pile up, a commit rewrites the live rows into one segment (compaction). Old commits and segments stay
readable for `commit.KEEP_S` and are then collected.

A `SupportMemory` object reads from the commit it opened (or last wrote); `refresh()` picks up commits by
other processes, and `open(..., commit=n)` opens an older one. Sums are exact: float16 values summed in
float64 are exact, so adding and subtracting rows never drifts.

This module is the public face (opening and writing; the read queries are reading.py's `MemoryReading`);
the work is done by one module per job, each importing only downwards:
storage.py (where objects live), log.py (commit records), snapshot.py (a committed state and reading it),
rows.py (the segments: the only code touching rows), draft.py (a write being prepared), commit.py (making a
draft durable, merging, collecting), search.py / index.py (exact and approximate kNN), consistency.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from support_memory.commit import (
    COMPACT_MIN_DEAD,
    KEEP_S,
    collect_garbage,
    create_if_missing,
)
from support_memory.draft import (
    Draft,
    refuse_other_fingerprint,
    validate_entry,
    validate_fingerprint,
)
from support_memory.errors import (
    DamagedMemoryError,
    InvalidInputError,
    MemoryStoreError,
    NotAMemoryError,
    UnknownEntryError,
)
from support_memory.index import IndexConfig, IndexManager
from support_memory.log import MARKER
from support_memory.oserrors import translate_os_error
from support_memory.reading import MemoryReading
from support_memory.records import SourceEntry
from support_memory.rows import RowArrays
from support_memory.snapshot import Snapshot, head_seq, load_committed
from support_memory.storage import LocalStorage, Storage, open_storage
from support_memory.writer import commit_edit

if TYPE_CHECKING:
    from support_memory.repair import RepairResult
    from support_memory.salvage import Damage

T = TypeVar("T")


class SupportMemory(MemoryReading):
    """A support memory. Create or open one with `SupportMemory.open(location)`."""

    def __init__(
        self,
        storage: Storage,
        *,
        lock_timeout_s: float,
        index_config: IndexConfig,
        compact_min_dead: int,
    ) -> None:
        self.storage = storage
        self.location = storage.location  # the folder or URL, as messages name it
        # A local memory's folder as a Path (callers build paths from it); a URL stays a string.
        self.path: Path | str = storage.root if isinstance(storage, LocalStorage) else storage.location
        self._lock_timeout_s = lock_timeout_s
        self._compact_min_dead = compact_min_dead
        self._rows = RowArrays(storage)
        self._index = IndexManager(storage, index_config)
        self._snapshot: Snapshot | None = None
        self._pinned = False

    # ------------------------------------------------------------------------------------------------------
    # opening
    # ------------------------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str],
        create: bool = True,
        *,
        commit: int | None = None,
        lock_timeout_s: float = 300.0,
        index_config: IndexConfig | None = None,
        compact_min_dead: int = COMPACT_MIN_DEAD,
        load: bool = True,
    ) -> SupportMemory:
        """Open the memory at a folder or URL, creating an empty one there if allowed and nothing is there.

        `commit=n` opens that (older) commit and keeps reading it: `refresh()` then does nothing, so every
        worker of a distributed run sees the same rows. A location that holds anything else (a file, a
        folder with other files) is refused with NotAMemoryError, so a mistyped path never scribbles into
        an unrelated folder. `lock_timeout_s` bounds how long a write retries while other writers keep
        committing first. `load=False` reads the state only when first needed, so that `check()` and
        `repair()` can run on a memory whose newest state cannot be read.
        """
        storage = open_storage(location)
        try:
            create_if_missing(storage, create and commit is None)
        except FileNotFoundError as error:  # e.g. an S3 bucket that does not exist
            raise NotAMemoryError(
                f"cannot create a support memory at {storage.location} ({error}); check the location, or "
                "create the bucket first"
            ) from None
        except OSError as error:  # a read-only or full file system, an unreachable server: one line
            raise translate_os_error(error, storage.location, "creating the memory") or MemoryStoreError(
                f"memory {storage.location} cannot be reached ({error}); check the location and, for an "
                "object store, its endpoint (AWS_ENDPOINT_URL) and credentials"
            ) from None
        memory = cls(
            storage,
            lock_timeout_s=lock_timeout_s,
            index_config=index_config or IndexConfig(),
            compact_min_dead=compact_min_dead,
        )
        if commit is not None:
            newest = head_seq(storage)
            if not 0 <= commit <= newest:
                raise UnknownEntryError(
                    f"memory {storage.location} has no commit {commit} (its newest is {newest}); name one "
                    "of its commits"
                )
            memory._snapshot = load_committed(storage, at=commit)
            memory._pinned = True
        elif load:
            memory.refresh()
        return memory

    @staticmethod
    def exists(location: str | os.PathLike[str]) -> bool:
        """Whether a memory is at `location` (its marker is there); reads nothing else."""
        try:
            return open_storage(location).exists(MARKER)
        except (OSError, MemoryStoreError):
            return False

    @property
    def _state(self) -> Snapshot:
        if self._snapshot is None:  # opened with load=False, or just repaired
            self.refresh()
        assert self._snapshot is not None
        return self._snapshot

    def refresh(self) -> None:
        """Load the newest committed state (commits made by other processes since this object looked)."""
        if not self._pinned:
            self._snapshot = load_committed(self.storage, known=self._snapshot)

    def close(self) -> None:
        """Drop cached rows (kept for symmetry with files: nothing is held open between calls)."""
        self._rows.forget()

    def __enter__(self) -> SupportMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------------
    # writing
    # ------------------------------------------------------------------------------------------------------
    def _refuse_if_pinned(self) -> None:
        if self._pinned:
            raise InvalidInputError(f"memory {self.path} was opened at commit {self.commit}: it is read-only")

    def _write(self, edit: Callable[[Draft], T]) -> T:
        """Run `edit` on the newest state and commit it (see writer.py)."""
        self._refuse_if_pinned()
        result, self._snapshot = commit_edit(self._rows, self._snapshot, edit,
                                             compact_min_dead=self._compact_min_dead,
                                             timeout_s=self._lock_timeout_s)  # fmt: skip
        return result

    def check_writable(self) -> None:
        """Raise ReadOnlyMemoryError now if this memory cannot be written (before any expensive work)."""
        self._refuse_if_pinned()
        try:
            self.storage.probe_writable()
        except OSError as error:
            raise translate_os_error(error, self.path, "checking that it can be written") or error from None

    # ------------------------------------------------------------------------------------------------------
    # public API: writing
    # ------------------------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The backbone + feature settings the stored rows were made with (None while the memory is empty)."""
        return self._state.manifest.fingerprint

    @property
    def n_prototypes(self) -> int:
        """Stored prototypes a reader sees (`stats()["n_prototypes"]` without walking the folder)."""
        return self._state.n_live

    @property
    def commit(self) -> int:
        """The number of the commit this object reads (`stats()["commit"]`)."""
        return self._state.manifest.seq

    @property
    def dim(self) -> int | None:
        """The dimension of the stored rows (None while the memory is empty)."""
        return self._state.manifest.dim

    def put_source(
        self,
        source_id: str,
        vectors: np.ndarray,
        class_names: Sequence[str],
        *,
        fingerprint: dict[str, Any],
        content_key: str = "",
        class_texts: Mapping[str, str | None] | None = None,
    ) -> str:
        """Store one source's prototypes: "added", "replaced" (new content key) or "unchanged" (same key).

        vectors: [n, d] L2-normalised rows, one per entry of class_names (a name may repeat).
        class_texts: per class name, the text prompt, or None when the name is not usable as text; a
        name missing from it keeps the class's current prompt (a new class uses its name).
        """
        entry = SourceEntry(source_id, vectors, class_names, content_key, class_texts)
        return self.put_sources([entry], fingerprint=fingerprint)[0]

    def check_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        """Raise FingerprintMismatchError now if rows made under `fingerprint` would be refused.

        Callers check before expensive work (feature extraction, a whole folder run); every put checks
        again under the writer lock, so this is an early answer, not the guard.
        """
        stored = self._state.manifest.fingerprint
        if stored is not None:
            refuse_other_fingerprint(self.path, stored, validate_fingerprint(fingerprint))

    def put_sources(
        self,
        entries: Sequence[SourceEntry],
        *,
        fingerprint: dict[str, Any],
        drop: Mapping[str, Sequence[str] | None] | None = None,
    ) -> list[str]:
        """Store many sources in one atomic commit; returns one status per entry (see put_source).

        `drop` removes, in the same commit and before the puts, sources (value None) or only some classes'
        rows of a source (value: class names); sources the memory does not hold are ignored. It lets a
        caller replace part of what it stored earlier without a moment where both or neither are visible.
        """
        fingerprint = validate_fingerprint(fingerprint)
        valid = [validate_entry(entry) for entry in entries]
        seen: set[str] = set()
        for entry in valid:
            if entry.source_id in seen:
                raise InvalidInputError(f"source {entry.source_id!r} appears twice in one put_sources call")
            seen.add(entry.source_id)
        drops = dict(drop or {})
        if not valid and not drops:
            return []

        def edit(draft: Draft) -> list[str]:
            for source_id, names in drops.items():
                draft.drop(source_id, names)
            if not valid:
                return []
            draft.accept_fingerprint(fingerprint)
            for entry in valid:
                draft.accept_dim(entry.vectors16.shape[1])
            return [draft.put(entry) for entry in valid]

        return self._write(edit)

    def update_meta(self, updates: Mapping[str, Mapping[str, str | None]]) -> None:
        """Merge per-source meta in one atomic commit: {source_id: {key: value, or None to delete}}.

        Rows, classes and the content identity stay as they are (meta is what writers attach, e.g. where an
        example came from or a score it earned); UnknownEntryError names a source the memory does not hold.
        """
        clean = {str(sid): {str(k): None if v is None else str(v) for k, v in meta.items()}
                 for sid, meta in updates.items()}  # fmt: skip
        if not clean:
            return

        def edit(draft: Draft) -> None:
            for source_id, meta in clean.items():
                draft.update_meta(source_id, meta)

        self._write(edit)

    def remove_source(self, source_id: str) -> None:
        """Remove a source and all its prototypes (UnknownEntryError if the memory does not hold it)."""
        self._write(lambda draft: draft.remove_source(source_id))

    def remove_class(self, name: str) -> None:
        """Remove a class and its prototypes from every source (sources left empty are removed too)."""
        self._write(lambda draft: draft.remove_class(name))

    def compact(self) -> None:
        """Rewrite the live rows into one new segment now, dropping all dead rows."""

        def edit(draft: Draft) -> None:
            if draft.manifest.n_rows > draft.manifest.n_live:
                draft.changed = draft.force_compaction = True

        self._write(edit)

    def build_index(self) -> dict[str, Any] | None:
        """Build (or bring up to date) and save the approximate index now; None when faiss is missing."""
        self.refresh()
        return self._index.build(self._rows, self._state)

    def reindex(self) -> dict[str, Any] | None:
        """Train the approximate index afresh on today's rows and save it (what `rns memory reindex` runs)."""
        self.refresh()
        return self._index.build(self._rows, self._state, retrain=True)

    def collect_garbage(self, older_than_s: float = KEEP_S) -> None:
        """Delete old commits and unused segments now (commits collect them too, keeping `KEEP_S`)."""
        self.refresh()
        collect_garbage(self._rows, self._state, older_than_s)

    # ------------------------------------------------------------------------------------------------------
    # damage: checking and repairing (salvage.py, repair.py)
    # ------------------------------------------------------------------------------------------------------
    def diagnose(self) -> list[Damage]:
        """Read and verify everything the newest state depends on; every damaged part found (none: clean).

        It reads every row, so it costs a pass over the memory; reads check cheaply as they go.
        """
        from support_memory.salvage import diagnose

        return diagnose(self._rows).damage

    def check(self) -> None:
        """Raise DamagedMemoryError naming the first damaged part (and how many there are) unless clean."""
        damage = self.diagnose()
        if damage:
            more = f" (and {len(damage) - 1} more damaged part(s))" if len(damage) > 1 else ""
            raise DamagedMemoryError(str(self.location), damage[0].part, damage[0].problem + more)

    def repair(self) -> RepairResult:
        """Commit every intact source of a damaged memory, dropping the rest; deletes nothing (repair.py)."""
        from support_memory.repair import repair

        self._refuse_if_pinned()
        result = repair(self._rows)
        self._rows.forget()
        self._snapshot = None
        return result
