"""A survey of a memory on a bad disk: every damaged part, and which sources (support images) are intact.

`SupportMemory.check()` reports the survey; `SupportMemory.repair()` (repair.py) writes a commit from it.
The survey trusts nothing it has not verified:

- the commit log, from the newest readable checkpoint to the newest record: a record missing or failing
  its checks (record_checks.py) is damage, and what it changed is unknown; the records after it still
  describe the sources they put (each record carries its whole header: segments and class table), and
  the source records a damaged one still holds in readable form are kept as candidates too;
- every candidate source's rows, read as stored from the segments its record names (or from any other
  layout of the same row numbering, when a segment was merged away or lost): they must be readable, unit
  vectors of classes the tables know, owned by that source, and hash to the digest written with them.

A source passing all of this is intact, whatever else is damaged; any other is dropped with its reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np

from support_memory.errors import CorruptMemoryError, DamagedMemoryError
from support_memory.identity import rows_digest
from support_memory.log import (
    CHECKPOINTS,
    MARKER,
    commit_key,
    decode_checkpoint,
    parse_checkpoint_name,
    read_marker,
    read_record,
    salvage_puts,
)
from support_memory.manifest import ClassRecord, Manifest, SegmentRecord, SourceRecord, name_key
from support_memory.record_checks import check_header
from support_memory.rows import SEGMENTS, RowArrays
from support_memory.snapshot import Snapshot, head_seq, load_committed
from support_memory.verify import NORM_TOLERANCE


@dataclass(frozen=True)
class Damage:
    """One damaged part: its key under the memory's root, and what is wrong with it."""

    part: str
    problem: str

    def __str__(self) -> str:
        return f"{self.part}: {self.problem}"


@dataclass
class IntactSource:
    """A source whose rows were read and verified, ready to be written again."""

    source: SourceRecord
    vectors: np.ndarray  # float16 [n, d], in the source's row order
    class_ids: np.ndarray  # int32 [n]


@dataclass(frozen=True)
class DroppedSource:
    """A source repair cannot keep: its id, why, and what its writer attached (e.g. the image's path)."""

    source_id: str
    why: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class _Candidate:
    source: SourceRecord
    layouts: list[Manifest]  # where its row numbers may be read, best first
    trusted: bool  # described by a record that passed its checks
    origin: str  # the key of the record or checkpoint describing it


@dataclass
class Survey:
    """What `survey` found (see the module docstring)."""

    store_id: str
    head: int  # the newest commit number the log names
    damage: list[Damage] = field(default_factory=list)
    intact: list[IntactSource] = field(default_factory=list)
    dropped: list[DroppedSource] = field(default_factory=list)
    classes: dict[int, ClassRecord] = field(default_factory=dict)  # names and prompts by id, newest wins
    newest: Manifest | None = None  # the newest header that passed its checks
    generation: int = 1
    next_class_id: int = 0
    next_source_num: int = 0
    records_lost: bool = False  # a record is missing or damaged: some changes are unknown
    segments_named: set[str] = field(default_factory=set)
    protected: set[str] = field(default_factory=set)  # keys repair must never let garbage collection delete

    @property
    def clean(self) -> bool:
        return not self.damage

    def note(self, part: str, problem: str) -> None:
        if all(d.part != part for d in self.damage):
            self.damage.append(Damage(part, problem))
        self.protected.add(part if not part.startswith(f"{SEGMENTS}/") else "/".join(part.split("/")[:2]))


def survey(rows: RowArrays) -> Survey:
    """Read and verify everything the newest state depends on (see the module docstring)."""
    storage = rows.storage
    location = storage.location
    found = Survey(read_marker(storage.read(MARKER), f"{location}/{MARKER}"), head_seq(storage))
    base = _newest_readable_checkpoint(rows, found)
    origin = commit_key(base.seq)
    candidates = {s.source_id: _Candidate(s, [base.manifest], True, origin)
                  for s in base.manifest.sources.values()}  # fmt: skip
    layouts = [base.manifest]
    for seq in range(base.seq + 1, found.head + 1):
        key = commit_key(seq)
        try:
            data = storage.read(key)
        except FileNotFoundError:
            found.note(key, "missing: what this commit changed is unknown (images it added cannot be found)")
            found.records_lost = True
            continue
        try:
            record = read_record(data, location, key)
            if record.header.seq != seq:
                raise DamagedMemoryError(location, key, f"says it is commit {record.header.seq}")
        except DamagedMemoryError as error:
            found.note(key, error.detail + "; what this commit changed is unknown")
            found.records_lost = True
            guesses = _guess_layouts(rows, data, layouts)
            for source in salvage_puts(data):
                candidates[source.source_id] = _Candidate(source, guesses, False, key)
            continue
        layouts.append(record.header)
        if record.full:
            candidates = {}
        for source_id in record.removed:
            candidates.pop(source_id, None)
        candidates.update((s.source_id, _Candidate(s, [record.header], True, key)) for s in record.put)
    for layout in layouts:
        _learn(found, layout)
    for candidate in sorted(candidates.values(), key=lambda c: c.source.num):
        # Row numbers hold within a generation (merges keep them): any layout of its generation will do;
        # a source from a damaged record may be of any generation.
        own = candidate.layouts[0].generation if candidate.trusted else None
        others = [m for m in reversed(layouts)
                  if own in (None, m.generation) and all(m is not c for c in candidate.layouts)]  # fmt: skip
        _verify(rows, found, candidate, candidate.layouts + others)
    if found.records_lost:  # rows of sources nobody can name may lie in any segment: keep them all
        found.protected.update(f"{SEGMENTS}/{name}" for name in found.segments_named)
        _note_unnamed_rows(rows, found, {c.source.num for c in candidates.values()})
    return found


def _note_unnamed_rows(rows: RowArrays, found: Survey, named: set[int]) -> None:
    """Report rows of the newest layout that no readable record names (sources a lost commit added)."""
    layout = found.newest
    if layout is None or layout.dim is None:
        return
    for segment in layout.segments:
        try:
            owners = rows.raw_rows(segment, layout.dim, 0, segment.n_rows)[2]
        except DamagedMemoryError:
            continue
        unnamed = sorted({int(n) for n in owners} - named)
        if unnamed:
            count = int(np.isin(owners, unnamed).sum())
            found.note(f"{SEGMENTS}/{segment.name}", f"holds {count} row(s) of source number(s) {unnamed} "
                       "that no readable record names (kept on disk)")  # fmt: skip


def _guess_layouts(rows: RowArrays, data: bytes, layouts: list[Manifest]) -> list[Manifest]:
    """Where the rows of a damaged record's sources may be: its own header if that still passes its checks,
    else the newest known layout extended by the segments on disk that no layout names, in the order they
    were written (what the lost commit most likely appended). Only a guess: repair keeps a source only if
    its rows hash to its digest."""
    guesses = []
    try:
        header = Manifest.from_header(json.loads(data), {}, rows.location)
        check_header(header, rows.location, "")
        guesses.append(header)
    except (CorruptMemoryError, ValueError, TypeError, AttributeError):
        pass
    base = layouts[-1]
    named = {s.name for layout in layouts for s in layout.segments}
    segments = list(base.segments)
    for name in rows.stored_segments():  # names sort by creation time
        length = rows.stored_length(name) if name not in named else None
        if length:
            segments.append(SegmentRecord(name, segments[-1].stop if segments else 0, length))
    if len(segments) > len(base.segments) and base.dim is not None:
        guesses.append(replace(base, segments=segments))
    return guesses


def _newest_readable_checkpoint(rows: RowArrays, found: Survey) -> Snapshot:
    storage = rows.storage
    names = sorted((p[0], n) for n in storage.list(CHECKPOINTS) if (p := parse_checkpoint_name(n)))
    for seq, name in reversed(names):
        if seq > found.head:
            continue
        key = f"{CHECKPOINTS}/{name}"
        try:
            manifest, sums = decode_checkpoint(storage.read(key), storage.location, key)
        except FileNotFoundError:
            continue
        except DamagedMemoryError as error:
            found.note(key, error.detail)
            continue
        return Snapshot(manifest, sums, location=storage.location)
    return Snapshot(Manifest(store_id=found.store_id), np.zeros((0, 0)), location=storage.location)


def _learn(found: Survey, layout: Manifest) -> None:
    """Take in what a verified header says about classes, counters and segments (newer ones win)."""
    found.classes.update(layout.classes)
    found.generation = max(found.generation, layout.generation)
    found.next_class_id = max(found.next_class_id, layout.next_class_id)
    found.next_source_num = max(found.next_source_num, layout.next_source_num)
    found.segments_named.update(s.name for s in layout.segments)
    if found.newest is None or layout.seq >= found.newest.seq:
        found.newest = layout


def _verify(rows: RowArrays, found: Survey, candidate: _Candidate, layouts: list[Manifest]) -> None:
    """Keep the candidate if some layout yields rows that pass every check; else drop it with the reason."""
    source = candidate.source
    reason = "no readable description of where its rows are"
    suspects: list[tuple[str, str]] = []
    for layout in layouts:
        if layout.dim is None or any(stop > layout.n_rows for _, stop in source.ranges):
            continue
        try:
            vectors, class_ids, owners, segment_of = _read_source(rows, source, layout)
        except DamagedMemoryError as error:
            found.note(error.part, error.detail)
            reason = f"its rows are in a damaged part ({error.part})"
            continue
        problem = _row_problem(found, candidate, vectors, class_ids, owners)
        if problem is None:
            found.intact.append(IntactSource(source, vectors, class_ids.astype(np.int32)))
            return
        reason = problem
        if candidate.trusted:
            suspects.append((f"{SEGMENTS}/{segment_of}", f"rows of source {source.source_id!r}: {problem}"))
    if _recover_by_owner(rows, found, candidate, layouts):
        found.note(candidate.origin, f"source {source.source_id!r} has wrong row ranges (its rows were found "
                   "by their owner column)")  # fmt: skip
        return
    for part, problem in suspects:
        found.note(part, problem)
    found.dropped.append(DroppedSource(source.source_id, reason, dict(source.meta)))
    found.protected.update(_segments_holding(source, layouts))


def _segments_holding(source: SourceRecord, layouts: list[Manifest]) -> set[str]:
    """Keys of the segments that hold (or held) a source's rows in any of these layouts."""
    return {f"{SEGMENTS}/{s.name}" for layout in layouts for s in layout.segments
            for start, stop in source.ranges if start < s.stop and s.start < stop}  # fmt: skip


def _recover_by_owner(rows: RowArrays, found: Survey, candidate: _Candidate, layouts: list[Manifest]) -> bool:
    """When a source's recorded row ranges are wrong (an edited record) but its rows carry a digest, find
    them by their owner column instead: rows that hash to the digest are the source's, whatever the record
    says."""
    source = candidate.source
    if source.rows_digest is None:
        return False
    for layout in layouts[:2]:
        if layout.dim is None:
            continue
        picked: list[tuple[np.ndarray, np.ndarray]] = []
        for segment in layout.segments:
            try:
                vectors, class_ids, owners = rows.raw_rows(segment, layout.dim, 0, segment.n_rows)
            except DamagedMemoryError:
                continue
            mine = owners == source.num
            if mine.any():
                picked.append((vectors[mine], class_ids[mine]))
        if not picked:
            continue
        vectors = np.concatenate([p[0] for p in picked])
        class_ids = np.concatenate([p[1] for p in picked])
        owners = np.full(len(class_ids), source.num)
        trial = replace(candidate, source=replace(source, ranges=[(0, len(class_ids))]))
        if _row_problem(found, trial, vectors, class_ids, owners) is None:
            found.intact.append(IntactSource(source, vectors, class_ids.astype(np.int32)))
            return True
    return False


def _read_source(rows: RowArrays, source: SourceRecord, layout: Manifest) -> tuple:
    """(vectors, class ids, source numbers) of a source's rows as stored under `layout`, and the name of
    the segment holding its first row."""
    assert layout.dim is not None
    snapshot = Snapshot(layout, np.zeros((0, 0)))
    parts, first_segment = [], ""
    for start, stop in source.ranges:
        for segment, a, b in rows.pieces(snapshot, start, stop):
            parts.append(rows.raw_rows(segment, layout.dim, a, b))
            first_segment = first_segment or segment.name
    if not parts:
        empty = np.zeros(0, dtype=np.int32)
        return np.zeros((0, layout.dim), dtype=np.float16), empty, empty, first_segment
    columns = [np.concatenate(column) for column in zip(*parts, strict=True)]
    return columns[0], columns[1], columns[2], first_segment


def _row_problem(found: Survey, candidate: _Candidate, vectors: np.ndarray, class_ids: np.ndarray,
                 owners: np.ndarray) -> str | None:  # fmt: skip
    """Why these rows are not the source's intact rows; None when they are."""
    source = candidate.source
    if len(vectors) != source.n_rows:
        return f"{len(vectors)} rows read, {source.n_rows} expected"
    if np.any(owners != source.num):
        return "rows owned by another source number (damaged ownership column)"
    vectors32 = vectors.astype(np.float32)
    if not np.isfinite(vectors32).all():
        return "NaN or infinite values (flipped or missing bytes)"
    norms = np.linalg.norm(vectors32, axis=1)
    if np.any(np.abs(norms - 1.0) > NORM_TOLERANCE):
        return f"a row of norm {float(norms[np.argmax(np.abs(norms - 1.0))]):.4g}, not 1 (flipped bytes)"
    unknown = sorted({int(c) for c in class_ids} - set(found.classes))
    if unknown:
        return f"rows of unknown class ids {unknown}"
    names = [found.classes[int(c)].name for c in class_ids]
    if {name_key(n) for n in names} != {name_key(n) for n in source.class_names}:
        return "its rows' classes differ from the classes its record lists"
    if source.rows_digest is not None:
        if rows_digest(vectors, names) != source.rows_digest:
            return "its rows differ from what was written (digest mismatch: changed bytes)"
    elif not candidate.trusted:
        return "its record is damaged and its rows carry no digest to verify them against"
    return None


def diagnose(rows: RowArrays) -> Survey:
    """The survey plus the full consistency check of the newest state, when it loads (tables against
    rows: counts, sums, ownership): what `SupportMemory.check()` reports."""
    from support_memory.consistency import check_snapshot

    found = survey(rows)
    try:
        check_snapshot(rows, load_committed(rows.storage))
    except DamagedMemoryError as error:
        found.note(error.part, error.detail)
    return found
