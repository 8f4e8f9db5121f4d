"""A memory state being edited, and the checks on what callers offer it.

`Draft` holds a copy of a committed state (manifest and per-class sums) and applies puts and removals to
it, queuing new rows; nothing is visible to readers until `commit.write_commit` writes the rows and creates
the commit record. Source records are replaced, never edited, so the copy is cheap and the commit record
is exactly the records that changed. Inputs are validated here, before anything is read, so a bad call
writes nothing; an edit may run again on a newer state when another writer commits first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from support_memory.errors import (
    FingerprintMismatchError,
    InvalidInputError,
    UnknownEntryError,
)
from support_memory.identity import rows_digest
from support_memory.manifest import (
    ClassRecord,
    SourceRecord,
    fingerprint_differences,
    name_key,
    normalise_fingerprint,
)
from support_memory.records import SourceEntry
from support_memory.rows import PendingRows

if TYPE_CHECKING:
    from support_memory.rows import RowArrays
    from support_memory.snapshot import Snapshot

NORM_TOLERANCE = 1e-2


def refuse_other_fingerprint(path: str, stored: dict[str, Any], offered: dict[str, Any]) -> None:
    """The one place that decides whether rows made under `offered` may join a memory made under `stored`."""
    if stored != offered:
        differences = "; ".join(fingerprint_differences(stored, offered))
        raise FingerprintMismatchError(
            f"memory {path} holds features made with other model settings ({differences}); use another "
            "memory for these settings, or the model settings the memory was built with"
        )


class Draft:
    """A state being edited; nothing is visible until `commit.write_commit`."""

    def __init__(self, rows: RowArrays, base: Snapshot) -> None:
        self.rows = rows
        self.path = rows.location
        self.base = base
        self.manifest = base.manifest.clone()
        self.sums = base.sums.copy()
        self.pending: list[PendingRows] = []
        self.n_pending = 0
        self.changed = False
        self.sums_changed = False
        self.force_compaction = False
        self.full = False  # set by write_commit: this commit rewrote every live row (compaction)
        self.written: list[str] = []  # segments this draft's commit wrote (deleted if it fails)
        self.touched: set[str] = set()  # source ids put, replaced, pruned or removed (the commit's delta)
        self.released: list[tuple[int, int]] = []  # committed row ranges this draft makes dead

    def next_snapshot_hints(self) -> tuple[int, np.ndarray | None]:
        """Live rows after this draft, and its live mask when the base had one (derived, not recomputed:
        both cost a walk over every source otherwise, at every commit)."""
        n_live = self.base.n_live + self.n_pending - sum(stop - start for start, stop in self.released)
        base_live = self.base.cached_live_mask()
        if base_live is None:
            return n_live, None
        live = np.concatenate([base_live, np.ones(self.n_pending, dtype=bool)])
        for start, stop in self.released:
            live[start:stop] = False
        return n_live, live

    # -- fingerprint and dimension ------------------------------------------------------------------------
    def accept_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        stored = self.manifest.fingerprint
        if stored is None:
            self.manifest.fingerprint = fingerprint
            self.changed = True
            return
        refuse_other_fingerprint(self.path, stored, fingerprint)

    def accept_dim(self, dim: int) -> None:
        if self.manifest.dim is None:
            self.manifest.dim = dim
            self.sums = np.zeros((self.manifest.next_class_id, dim), dtype=np.float64)
            self.changed = True
        elif self.manifest.dim != dim:
            raise InvalidInputError(
                f"vectors have dimension {dim} but memory {self.path} holds dimension "
                f"{self.manifest.dim}; use the same backbone as the memory or another memory"
            )

    # -- classes --------------------------------------------------------------------------------------------
    def class_id_for(self, name: str) -> int:
        record = self.manifest.class_by_name(name)
        if record is not None:
            return record.id
        class_id = self.manifest.next_class_id
        self.manifest.next_class_id += 1
        self.manifest.classes[class_id] = ClassRecord(class_id, name, name, 0)
        self.sums = np.vstack([self.sums, np.zeros((1, self.sums.shape[1]), dtype=np.float64)])
        self.changed = True
        return class_id

    def set_text(self, name: str, text: str | None) -> None:
        record = self.manifest.class_by_name(name)
        if record is not None and record.text != text:
            record.text = text
            self.changed = True

    def _count(self, class_ids: np.ndarray, vectors16: np.ndarray, sign: int) -> None:
        for class_id in np.unique(class_ids):
            rows = vectors16[class_ids == class_id].astype(np.float64)
            self.sums[class_id] += sign * rows.sum(axis=0)
            self.manifest.classes[int(class_id)].count += sign * rows.shape[0]
        self.sums_changed = True
        self.changed = True

    def _drop_empty_classes(self) -> None:
        for class_id in [c.id for c in self.manifest.classes.values() if c.count == 0]:
            del self.manifest.classes[class_id]
            self.sums[class_id] = 0.0

    # -- rows -----------------------------------------------------------------------------------------------
    def _append(self, vectors16: np.ndarray, class_ids: np.ndarray, source_num: int) -> tuple[int, int]:
        start = self.manifest.n_rows + self.n_pending
        self.pending.append(
            PendingRows(vectors16, class_ids.astype(np.int32), np.full(len(class_ids), source_num, np.int32))
        )
        self.n_pending += len(class_ids)
        self._count(class_ids, vectors16, +1)
        return start, start + len(class_ids)

    def _release_ranges(self, ranges: list[tuple[int, int]]) -> None:
        for start, stop in ranges:
            vectors16, class_ids = self.rows.read(self.base, start, stop)
            self._count(class_ids, vectors16, -1)
        self.released.extend(ranges)

    # -- operations -----------------------------------------------------------------------------------------
    def put(self, entry: ValidEntry) -> str:
        existing = self.manifest.sources.get(entry.source_id)
        if existing is not None and existing.content_key == entry.content_key and not existing.pruned:
            for name, text in entry.class_texts.items():
                self.set_text(name, text)
            return "unchanged"
        if existing is not None:
            self._release_ranges(existing.ranges)
            del self.manifest.sources[entry.source_id]
            self.touched.add(entry.source_id)
        class_ids = np.array([self.class_id_for(name) for name in entry.class_names], dtype=np.int32)
        for name, text in entry.class_texts.items():
            self.set_text(name, text)
        # A class keeps the spelling it was first stored under ("Car" added later joins "car").
        stored_names = [self.manifest.classes[int(c)].name for c in class_ids]
        num = self.manifest.next_source_num
        self.manifest.next_source_num += 1
        ranges = [self._append(entry.vectors16, class_ids, num)] if len(class_ids) else []
        self.touched.add(entry.source_id)
        self.manifest.sources[entry.source_id] = SourceRecord(
            source_id=entry.source_id,
            num=num,
            content_key=entry.content_key,
            ranges=ranges,
            class_names=list(dict.fromkeys(stored_names)),
            rows_digest=rows_digest(entry.vectors16, stored_names),
            meta=dict(entry.meta),
        )
        self._drop_empty_classes()
        self.changed = True
        return "replaced" if existing is not None else "added"

    def remove_source(self, source_id: str) -> None:
        existing = self.manifest.sources.get(source_id)
        if existing is None:
            raise UnknownEntryError(
                f"memory {self.path} has no source {source_id!r}; name one of the source ids the memory lists"
            )
        self._release_ranges(existing.ranges)
        del self.manifest.sources[source_id]
        self.touched.add(source_id)
        self._drop_empty_classes()
        self.changed = True

    def remove_class(self, name: str) -> None:
        record = self.manifest.class_by_name(name)
        if record is None:
            raise UnknownEntryError(
                f"memory {self.path} has no class {name!r}; list the memory's classes to see its names"
            )
        for source in list(self.manifest.sources.values()):
            self._prune(source, {record.id})
        self._drop_empty_classes()
        self.changed = True

    def drop(self, source_id: str, class_names: Sequence[str] | None) -> None:
        """Remove a source (class_names None) or only its rows of those classes; absent ones are ignored."""
        source = self.manifest.sources.get(source_id)
        if source is None:
            return
        if class_names is None:
            self.remove_source(source_id)
            return
        ids = {r.id for r in (self.manifest.class_by_name(n) for n in class_names) if r is not None}
        self._prune(source, ids)
        self._drop_empty_classes()
        self.changed = True

    def update_meta(self, source_id: str, updates: dict[str, str | None]) -> None:
        """Merge `updates` into a source's meta (None deletes a key); its rows and identity stay unchanged."""
        source = self.manifest.sources.get(source_id)
        if source is None:
            raise UnknownEntryError(
                f"memory {self.path} has no source {source_id!r}; name one of the source ids the memory lists"
            )
        meta = dict(source.meta)
        for key, value in updates.items():
            if value is None:
                meta.pop(key, None)
            else:
                meta[key] = value
        if meta == source.meta:
            return
        self.manifest.sources[source_id] = replace(source, meta=meta)
        self.touched.add(source_id)
        self.changed = True

    def _prune(self, source: SourceRecord, class_ids: set[int]) -> None:
        """Drop a source's rows of `class_ids` (the source goes when nothing is left)."""
        names = {name_key(self.manifest.classes[c].name) for c in class_ids}
        if not names & {name_key(n) for n in source.class_names}:
            return
        kept: list[tuple[int, int]] = []
        kept_vectors: list[np.ndarray] = []
        kept_names: list[str] = []
        for start, stop in source.ranges:
            vectors16, row_classes = self.rows.read(self.base, start, stop)
            doomed = np.isin(row_classes, list(class_ids))
            self._count(row_classes[doomed], vectors16[doomed], -1)
            kept.extend(row_runs(start, ~doomed))
            self.released.extend(row_runs(start, doomed))
            kept_vectors.append(vectors16[~doomed])
            kept_names.extend(self.manifest.classes[int(c)].name for c in row_classes[~doomed])
        digest = source.rows_digest
        if kept_vectors and digest is not None:
            digest = rows_digest(np.concatenate(kept_vectors), kept_names)
        if not kept:
            del self.manifest.sources[source.source_id]
            self.touched.add(source.source_id)
            return
        self.touched.add(source.source_id)
        self.manifest.sources[source.source_id] = replace(
            source, ranges=kept, class_names=[n for n in source.class_names if name_key(n) not in names],
            pruned=True, rows_digest=digest,
        )  # fmt: skip


@dataclass
class ValidEntry:
    source_id: str
    vectors16: np.ndarray
    class_names: list[str]
    content_key: str
    class_texts: dict[str, str | None]
    meta: dict[str, str] = field(default_factory=dict)


def row_runs(start: int, keep: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous [a, b) row ranges where keep is True, offset by start."""
    ranges: list[tuple[int, int]] = []
    run_start = None
    for i, flag in enumerate(keep.tolist()):
        if flag and run_start is None:
            run_start = i
        elif not flag and run_start is not None:
            ranges.append((start + run_start, start + i))
            run_start = None
    if run_start is not None:
        ranges.append((start + run_start, start + len(keep)))
    return ranges


def validate_fingerprint(fingerprint: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(fingerprint, dict) or not fingerprint:
        raise InvalidInputError("fingerprint must be a non-empty dict of the backbone and feature settings")
    try:
        return normalise_fingerprint(fingerprint)
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"fingerprint must be JSON-serialisable: {error}") from None


def validate_entry(entry: SourceEntry) -> ValidEntry:
    """Check one source's inputs before anything is written; returns float16 rows ready to store."""
    if not isinstance(entry.source_id, str) or not entry.source_id:
        raise InvalidInputError(f"source_id must be a non-empty string, got {entry.source_id!r}")
    where = f"source {entry.source_id!r}"
    if not isinstance(entry.content_key, str):
        raise InvalidInputError(f"{where}: content_key must be a string, got {entry.content_key!r}")
    vectors = np.asarray(entry.vectors)
    if vectors.ndim != 2:
        raise InvalidInputError(f"{where}: vectors must be a 2-D array [n, d], got shape {vectors.shape}")
    if not (np.issubdtype(vectors.dtype, np.floating) or np.issubdtype(vectors.dtype, np.integer)):
        raise InvalidInputError(f"{where}: vectors must be numeric, got dtype {vectors.dtype}")
    if vectors.shape[1] < 1:
        raise InvalidInputError(f"{where}: vectors have dimension 0")
    names = list(entry.class_names)
    if any(not isinstance(name, str) or not name.strip() for name in names):
        raise InvalidInputError(f"{where}: class names must be non-empty strings, got {names!r}")
    if len(names) != vectors.shape[0]:
        raise InvalidInputError(
            f"{where}: {vectors.shape[0]} vectors but {len(names)} class names; give one name per row"
        )
    vectors32 = vectors.astype(np.float32)
    if not np.isfinite(vectors32).all():
        raise InvalidInputError(f"{where}: vectors contain NaN or infinite values")
    norms = np.linalg.norm(vectors32, axis=1)
    if norms.size and not np.all(np.abs(norms - 1.0) <= NORM_TOLERANCE):
        worst = float(norms[np.argmax(np.abs(norms - 1.0))])
        raise InvalidInputError(f"{where}: vectors must be L2-normalised (found a row of norm {worst:.4g})")
    texts: dict[str, str | None] = {}
    keys = {name_key(name) for name in names}
    for name, text in (entry.class_texts or {}).items():
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise InvalidInputError(f"{where}: text for class {name!r} must be a non-empty string or None")
        if name_key(name) in keys:
            texts[name] = text
    meta = {str(k): str(v) for k, v in (entry.meta or {}).items()}
    return ValidEntry(entry.source_id, vectors32.astype(np.float16), names, entry.content_key, texts, meta)
